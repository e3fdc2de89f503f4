//! Every kind of array operation under `processes:2`, against the same on
//! `sequential`: the registered tasks run in worker processes and their arguments
//! and results (chunks, partials, lists of chunks) cross the wire. The test binary
//! is its own worker executable (`harness = false`).

#[path = "../../wherever/tests/common/harness.rs"]
mod harness;

use ndarray::{ArrayD, Axis};
use wherever::{Client, Plan};
use wherever_array::{Array, Over};

/// The arrays each plan computes: one per operation.
fn results(client: &Client) -> Vec<ArrayD<f64>> {
    let x = Array::random_normal(&[300, 200], &[70, 90], 11).unwrap();
    let u = Array::random_uniform(&[200, 300], &[50, 120], 12).unwrap();
    let stored = Array::from_ndarray(&x.compute(client).unwrap(), &[100, 100]).unwrap();
    let persisted = (&stored * 3.0).persist(client);
    [
        (&x * 2.0 + 1.0).mean(Axis(1)).unwrap(),
        x.std(Axis(0)).unwrap(),
        x.min(Over::All).unwrap(),
        stored.max(Axis(1)).unwrap(),
        &x - &stored,
        x.matmul(&u).unwrap(),
        x.t(),
        stored.rechunk(&[33, 150]).unwrap(),
        (&persisted / 2.0).sum(Axis(0)).unwrap(),
    ]
    .iter()
    .map(|a| a.compute(client).unwrap())
    .collect()
}

fn every_operation_gives_the_sequential_values() {
    let sequential = results(&Plan::parse("sequential").unwrap().start().unwrap());
    let processes = results(&Plan::parse("processes:2").unwrap().start().unwrap());
    for (k, (a, b)) in sequential.iter().zip(&processes).enumerate() {
        assert_eq!(a.shape(), b.shape(), "operation {k}");
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "operation {k} differs between sequential and processes:2"
        );
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[(
        "every_operation_gives_the_sequential_values",
        every_operation_gives_the_sequential_values,
    )]);
}
