//! Each operation against the same computation on a plain `ndarray`.

use super::*;
use crate::reduce::Reduction;
use ndarray::{array, Array1, Ix1, Ix2};
use wherever::Plan;

fn client() -> Client {
    Plan::parse("threads:2").unwrap().start().unwrap()
}

/// A 7 x 5 array with distinct values, in chunks of 3 x 2 (ragged both ways).
fn sample() -> (Array2<f64>, Array) {
    let a = Array2::from_shape_fn((7, 5), |(i, j)| {
        (i * 5 + j) as f64 * 0.5 - 8.0 + (j as f64).sin()
    });
    let x = Array::from_ndarray(&a.clone().into_dyn(), &[3, 2]).unwrap();
    (a, x)
}

fn two_d(a: ArrayD<f64>) -> Array2<f64> {
    a.into_dimensionality::<Ix2>().unwrap()
}

fn one_d(a: ArrayD<f64>) -> Array1<f64> {
    a.into_dimensionality::<Ix1>().unwrap()
}

fn assert_close<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>, b: &ndarray::Array<f64, D>) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn from_ndarray_round_trips() {
    let (a, x) = sample();
    assert_eq!(x.shape(), vec![7, 5]);
    assert_eq!(x.chunks(), vec![vec![3, 3, 1], vec![2, 2, 1]]);
    assert_eq!(two_d(x.compute(&client()).unwrap()), a);
    let v = Array::from_ndarray(&array![1.0, 2.0, 3.0].into_dyn(), &[2]).unwrap();
    assert_eq!(one_d(v.compute(&client()).unwrap()), array![1.0, 2.0, 3.0]);
}

#[test]
fn constants() {
    let c = client();
    assert_eq!(
        two_d(Array::zeros(&[3, 4], &[2, 3]).unwrap().compute(&c).unwrap()),
        Array2::<f64>::zeros((3, 4))
    );
    assert_eq!(
        one_d(Array::ones(&[5], &[2]).unwrap().compute(&c).unwrap()),
        Array1::<f64>::ones(5)
    );
}

#[test]
fn scalar_arithmetic() {
    let (a, x) = sample();
    let y = (2.0 - (&x * 3.0 + 1.0) / 4.0) - 0.5;
    let y = 1.0 / (-y * 2.0 + 100.0);
    let expected = a.mapv(|v| 1.0 / (-((2.0 - (v * 3.0 + 1.0) / 4.0) - 0.5) * 2.0 + 100.0));
    assert_close(&two_d(y.compute(&client()).unwrap()), &expected);
}

#[test]
fn array_arithmetic_with_same_and_different_chunks() {
    let (a, x) = sample();
    let b = a.mapv(|v| v * v + 1.0);
    let same = Array::from_ndarray(&b.clone().into_dyn(), &[3, 2]).unwrap();
    let other = Array::from_ndarray(&b.clone().into_dyn(), &[4, 5]).unwrap();
    let c = client();
    assert_close(&two_d((&x + &same).compute(&c).unwrap()), &(&a + &b));
    assert_close(&two_d((&x - &other).compute(&c).unwrap()), &(&a - &b));
    assert_close(&two_d((&x * &other).compute(&c).unwrap()), &(&a * &b));
    assert_close(
        &two_d((&(&x * 2.0) / &same).compute(&c).unwrap()),
        &(&a * 2.0 / &b),
    );
}

#[test]
fn mismatched_shapes_are_an_error() {
    let (_, x) = sample();
    let y = Array::zeros(&[5, 7], &[2, 2]).unwrap();
    let err = x.zip_with(&y, BinOp::Add).unwrap_err();
    assert_eq!(
        err.to_string(),
        "element-wise: shapes [7, 5] and [5, 7] do not fit"
    );
    assert!(x
        .matmul(&x)
        .unwrap_err()
        .to_string()
        .starts_with("matmul: shapes [7, 5]"));
    assert_eq!(
        x.sum(Axis(2)).unwrap_err().to_string(),
        "axis 2 out of range for an array of 2 dimensions"
    );
    assert_eq!(
        x.reduce(Reduction::Sum, Over::All, 1)
            .unwrap_err()
            .to_string(),
        "a tree reduction needs a width of at least 2, not 1"
    );
    assert!(Array::zeros(&[2, 2, 2], &[1, 1, 1]).is_err());
    assert!(Array::zeros(&[4], &[0]).is_err());
}

#[test]
fn reductions_over_each_axis_and_all() {
    let (a, x) = sample();
    let c = client();
    let std = |v: ndarray::ArrayView1<f64>| v.std(0.0);
    for width in [2, 3, 8] {
        let sum0 = x.reduce(Reduction::Sum, Axis(0), width).unwrap();
        assert_close(&one_d(sum0.compute(&c).unwrap()), &a.sum_axis(Axis(0)));
        let mean1 = x.reduce(Reduction::Mean, Axis(1), width).unwrap();
        assert_close(
            &one_d(mean1.compute(&c).unwrap()),
            &a.mean_axis(Axis(1)).unwrap(),
        );
        let std0 = x.reduce(Reduction::Std, Axis(0), width).unwrap();
        assert_close(
            &one_d(std0.compute(&c).unwrap()),
            &a.columns().into_iter().map(std).collect(),
        );
        let std1 = x.reduce(Reduction::Std, Axis(1), width).unwrap();
        assert_close(
            &one_d(std1.compute(&c).unwrap()),
            &a.rows().into_iter().map(std).collect(),
        );
        let all = x.reduce(Reduction::Std, Over::All, width).unwrap();
        assert_eq!(all.shape(), Vec::<usize>::new());
        assert_close(
            &all.compute(&c).unwrap(),
            &ndarray::arr0(a.std(0.0)).into_dyn(),
        );
    }
    let min = one_d(x.min(Axis(1)).unwrap().compute(&c).unwrap());
    assert_eq!(
        min,
        a.map_axis(Axis(1), |r| r.fold(f64::INFINITY, |m, &v| m.min(v)))
    );
    let max = one_d(x.max(Axis(0)).unwrap().compute(&c).unwrap());
    assert_eq!(
        max,
        a.map_axis(Axis(0), |r| r.fold(f64::NEG_INFINITY, |m, &v| m.max(v)))
    );
    let total = x.sum(Over::All).unwrap().compute(&c).unwrap();
    assert_close(&total, &ndarray::arr0(a.sum()).into_dyn());
    // A reduction of a reduction: the mean of the row means.
    let mm = x
        .mean(Axis(1))
        .unwrap()
        .mean(Axis(0))
        .unwrap()
        .compute(&c)
        .unwrap();
    assert_close(&mm, &ndarray::arr0(a.mean().unwrap()).into_dyn());
}

#[test]
fn transpose_matmul_and_rechunk() {
    let (a, x) = sample();
    let c = client();
    let t = x.t();
    assert_eq!(t.chunks(), vec![vec![2, 2, 1], vec![3, 3, 1]]);
    assert_eq!(two_d(t.compute(&c).unwrap()), a.t());
    // (7 x 5) . (5 x 7), with the right side's rows chunked differently.
    let b = Array::from_ndarray(&a.t().to_owned().into_dyn(), &[3, 4]).unwrap();
    assert_close(
        &two_d(x.matmul(&b).unwrap().compute(&c).unwrap()),
        &a.dot(&a.t()),
    );
    let r = x.rechunk(&[2, 4]).unwrap();
    assert_eq!(r.chunks(), vec![vec![2, 2, 2, 1], vec![4, 1]]);
    assert_eq!(two_d(r.compute(&c).unwrap()), a);
}

#[test]
fn generated_arrays_do_not_depend_on_their_chunks() {
    let c = client();
    let reference = Array::random_normal(&[40, 30], &[40, 30], 5)
        .unwrap()
        .compute(&c)
        .unwrap();
    for chunks in [[10, 10], [40, 5], [3, 30], [7, 11]] {
        let x = Array::random_normal(&[40, 30], &chunks, 5).unwrap();
        assert_eq!(x.compute(&c).unwrap(), reference, "{chunks:?}");
        // Rechunking a generated array changes nothing either.
        assert_eq!(x.rechunk(&[6, 6]).unwrap().compute(&c).unwrap(), reference);
    }
    let u = Array::random_uniform(&[40, 30], &[7, 11], 5)
        .unwrap()
        .compute(&c)
        .unwrap();
    assert!(u.iter().all(|&v| v > 0.0 && v < 1.0));
}

#[test]
fn a_fused_reduction_is_one_task_per_block_plus_the_tree() {
    let x = Array::random_normal(&[40, 30], &[10, 10], 1).unwrap();
    let means = (x.clone() * 2.0 + 1.0).mean(Axis(1)).unwrap();
    let dot = means.to_dot();
    let count = |name: &str| dot.matches(&format!("label=\"{name}\\n")).count();
    // 4 x 3 blocks folded where they are generated, one root per block row.
    assert_eq!(count("reduce_generated"), 12, "{dot}");
    assert_eq!(count("finish_reduction"), 4, "{dot}");
    assert_eq!(count("generate"), 0, "{dot}");
    assert_eq!(count("map_block"), 0, "{dot}");
    let expected = (x.compute(&client()).unwrap().mapv(|v| v * 2.0 + 1.0))
        .mean_axis(Axis(1))
        .unwrap();
    assert_close(&means.compute(&client()).unwrap(), &expected);
}

#[test]
fn persisted_arrays_build_on_stored_blocks() {
    let (a, x) = sample();
    let c = client();
    let p = (&x * 2.0).persist(&c);
    assert_eq!(
        two_d((&p + 1.0).compute(&c).unwrap()),
        a.mapv(|v| v * 2.0 + 1.0)
    );
    assert_close(
        &one_d(p.sum(Axis(0)).unwrap().compute(&c).unwrap()),
        &(a * 2.0).sum_axis(Axis(0)),
    );
}

#[test]
fn empty_arrays_compute_and_refuse_reductions() {
    let empty = Array::zeros(&[0, 3], &[2, 2]).unwrap();
    assert_eq!(empty.compute(&client()).unwrap().shape(), &[0, 3]);
    let err = empty.sum(Axis(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sum over an empty axis: the array has shape [0, 3]"
    );
    assert!(empty.mean(Over::All).is_err());
    // Reducing along the axis that has elements is fine: no rows, no lanes.
    assert_eq!(
        empty
            .sum(Axis(1))
            .unwrap()
            .compute(&client())
            .unwrap()
            .shape(),
        &[0]
    );
}
