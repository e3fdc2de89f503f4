//! Reductions: each block folds into a [`Partial`] (row by row, so a generated block
//! is never held whole), partials merge in a tree, and the last merge finishes.

use crate::chunk::Chunk;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// What a reduction computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    /// The sum.
    Sum,
    /// The mean.
    Mean,
    /// The population standard deviation (numpy's default, `ddof = 0`).
    Std,
    /// The smallest element (NaN if any is NaN).
    Min,
    /// The largest element (NaN if any is NaN).
    Max,
}

/// Which elements of a block reduce together (in the block's own 2-D axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lanes {
    /// One lane per row: reduces along axis 1.
    PerRow,
    /// One lane per column: reduces along axis 0.
    PerColumn,
    /// One lane: everything.
    One,
}

/// A reduction's running state over part of the data: `count` elements per lane,
/// and per lane the sum (sum, mean), mean and sum of squared deviations (std), or
/// the extreme so far (min, max).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Elements folded into each lane.
    pub count: u64,
    /// Sums, means or extremes, one per lane (one row).
    pub first: Chunk,
    /// Sums of squared deviations (std only; otherwise empty).
    pub second: Chunk,
}

/// Folds rows into a partial.
pub struct Folder {
    kind: Reduction,
    lanes: Lanes,
    rows_seen: u64,
    cols: usize,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl Folder {
    /// A folder for blocks of `rows` x `cols`.
    pub fn new(kind: Reduction, lanes: Lanes, rows: usize, cols: usize) -> Folder {
        let n = match lanes {
            Lanes::PerRow => rows,
            Lanes::PerColumn => cols,
            Lanes::One => 1,
        };
        let start = match kind {
            Reduction::Min => f64::INFINITY,
            Reduction::Max => f64::NEG_INFINITY,
            _ => 0.0,
        };
        Folder {
            kind,
            lanes,
            rows_seen: 0,
            cols,
            first: vec![start; n],
            second: if kind == Reduction::Std {
                vec![0.0; n]
            } else {
                Vec::new()
            },
        }
    }

    /// Folds the next row of the block.
    pub fn row(&mut self, values: &[f64]) {
        let r = self.rows_seen as usize;
        self.rows_seen += 1;
        match self.lanes {
            Lanes::PerColumn => self.fold_columns(values),
            Lanes::PerRow => self.fold_lane(r, values),
            Lanes::One => self.fold_lane(0, values),
        }
    }

    /// Folds a whole row into lane `lane` (rows folded so far into it: `lane_count`).
    fn fold_lane(&mut self, lane: usize, values: &[f64]) {
        let before = if self.lanes == Lanes::One {
            (self.rows_seen - 1) * self.cols as u64
        } else {
            0
        };
        match self.kind {
            Reduction::Sum | Reduction::Mean => self.first[lane] += sum(values),
            Reduction::Min => {
                self.first[lane] = values.iter().fold(self.first[lane], |a, &x| min(a, x))
            }
            Reduction::Max => {
                self.first[lane] = values.iter().fold(self.first[lane], |a, &x| max(a, x))
            }
            Reduction::Std => {
                if values.is_empty() {
                    return;
                }
                let n = values.len() as f64;
                let mean = sum(values) / n;
                let m2 = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
                let (m, s) = chan(
                    before as f64,
                    self.first[lane],
                    self.second[lane],
                    n,
                    mean,
                    m2,
                );
                self.first[lane] = m;
                self.second[lane] = s;
            }
        }
    }

    /// Folds a row element by element into the column lanes.
    fn fold_columns(&mut self, values: &[f64]) {
        let lanes = self.first.iter_mut().zip(values);
        match self.kind {
            Reduction::Sum | Reduction::Mean => lanes.for_each(|(a, &x)| *a += x),
            Reduction::Min => lanes.for_each(|(a, &x)| *a = min(*a, x)),
            Reduction::Max => lanes.for_each(|(a, &x)| *a = max(*a, x)),
            Reduction::Std => {
                // Welford: the row is the k-th value of every column.
                let k = self.rows_seen as f64;
                for ((mean, m2), &x) in self.first.iter_mut().zip(&mut self.second).zip(values) {
                    let delta = x - *mean;
                    *mean += delta / k;
                    *m2 += delta * (x - *mean);
                }
            }
        }
    }

    /// The partial for everything folded.
    pub fn finish(self) -> Partial {
        let count = match self.lanes {
            Lanes::PerRow => self.cols as u64,
            Lanes::PerColumn => self.rows_seen,
            Lanes::One => self.rows_seen * self.cols as u64,
        };
        Partial {
            count,
            first: row_chunk(self.first),
            second: row_chunk(self.second),
        }
    }
}

/// The sum of `values` in eight interleaved lanes (a fixed order the compiler can
/// vectorise, unlike one running sum).
fn sum(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let blocks = values.chunks_exact(8);
    let rest: f64 = blocks.remainder().iter().sum();
    for block in blocks {
        for (lane, &x) in lanes.iter_mut().zip(block) {
            *lane += x;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + b) + (c + d)) + ((e + f) + (g + h)) + rest
}

/// Chan et al.'s merge of two groups' (count, mean, sum of squared deviations).
#[inline]
fn chan(na: f64, ma: f64, sa: f64, nb: f64, mb: f64, sb: f64) -> (f64, f64) {
    if na == 0.0 {
        return (mb, sb);
    }
    if nb == 0.0 {
        return (ma, sa);
    }
    let n = na + nb;
    let delta = mb - ma;
    (ma + delta * nb / n, sa + sb + delta * delta * na * nb / n)
}

/// `min` that keeps NaN (as numpy's `min` does).
#[inline]
fn min(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() {
        f64::NAN
    } else if x < a {
        x
    } else {
        a
    }
}

/// `max` that keeps NaN (as numpy's `max` does).
#[inline]
fn max(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() {
        f64::NAN
    } else if x > a {
        x
    } else {
        a
    }
}

fn row_chunk(values: Vec<f64>) -> Chunk {
    let n = values.len();
    Chunk(Array2::from_shape_vec((usize::from(n > 0), n), values).expect("one row"))
}

/// Merges partials of disjoint parts of the same lanes.
pub fn merge(kind: Reduction, parts: Vec<Partial>) -> Partial {
    let mut parts = parts.into_iter();
    let mut acc = parts
        .next()
        .expect("a reduction merges at least one partial");
    for p in parts {
        let a = acc.first.0.as_slice_mut().expect("one row");
        let b = p.first.0.as_slice().expect("one row");
        match kind {
            Reduction::Sum | Reduction::Mean => a.iter_mut().zip(b).for_each(|(x, y)| *x += y),
            Reduction::Min => a.iter_mut().zip(b).for_each(|(x, &y)| *x = min(*x, y)),
            Reduction::Max => a.iter_mut().zip(b).for_each(|(x, &y)| *x = max(*x, y)),
            Reduction::Std => {
                let s = acc.second.0.as_slice_mut().expect("one row");
                let sb = p.second.0.as_slice().expect("one row");
                for k in 0..a.len() {
                    let (m, v) = chan(acc.count as f64, a[k], s[k], p.count as f64, b[k], sb[k]);
                    a[k] = m;
                    s[k] = v;
                }
            }
        }
        acc.count += p.count;
    }
    acc
}

/// The reduction's values from the merged partial, one row.
pub fn finish(kind: Reduction, partial: Partial) -> Chunk {
    let n = partial.count as f64;
    let mut out = partial.first;
    match kind {
        Reduction::Sum | Reduction::Min | Reduction::Max => {}
        Reduction::Mean => out.0.mapv_inplace(|s| s / n),
        Reduction::Std => {
            out = partial.second;
            out.0.mapv_inplace(|s| (s / n).sqrt());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Axis};

    fn reduce(kind: Reduction, lanes: Lanes, a: &Array2<f64>, split_rows: usize) -> Vec<f64> {
        // Fold the rows in two blocks, merge, finish: as a tree reduction would.
        let blocks = [
            a.slice(ndarray::s![..split_rows, ..]),
            a.slice(ndarray::s![split_rows.., ..]),
        ];
        let parts = blocks
            .iter()
            .map(|b| {
                let mut f = Folder::new(kind, lanes, b.nrows(), b.ncols());
                b.rows().into_iter().for_each(|r| f.row(&r.to_vec()));
                f.finish()
            })
            .collect::<Vec<_>>();
        match lanes {
            // Per-row partials of different row blocks are different lanes.
            Lanes::PerRow => parts
                .into_iter()
                .flat_map(|p| finish(kind, p).0.into_raw_vec_and_offset().0)
                .collect(),
            _ => {
                finish(kind, merge(kind, parts))
                    .0
                    .into_raw_vec_and_offset()
                    .0
            }
        }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    #[test]
    fn every_reduction_matches_ndarray() {
        let a = array![
            [1.0, -2.0, 3.5],
            [4.0, 0.25, -6.0],
            [7.0, 8.0, 9.5],
            [-1.0, 2.0, 0.0]
        ];
        let std = |v: &ndarray::ArrayView1<f64>| v.std(0.0);
        let cases: [(Reduction, Vec<f64>, Vec<f64>, f64); 5] = [
            (
                Reduction::Sum,
                a.sum_axis(Axis(1)).to_vec(),
                a.sum_axis(Axis(0)).to_vec(),
                a.sum(),
            ),
            (
                Reduction::Mean,
                a.mean_axis(Axis(1)).unwrap().to_vec(),
                a.mean_axis(Axis(0)).unwrap().to_vec(),
                a.mean().unwrap(),
            ),
            (
                Reduction::Std,
                a.rows().into_iter().map(|r| std(&r)).collect(),
                a.columns().into_iter().map(|c| std(&c)).collect(),
                a.std(0.0),
            ),
            (
                Reduction::Min,
                vec![-2.0, -6.0, 7.0, -1.0],
                vec![-1.0, -2.0, -6.0],
                -6.0,
            ),
            (
                Reduction::Max,
                vec![3.5, 4.0, 9.5, 2.0],
                vec![7.0, 8.0, 9.5],
                9.5,
            ),
        ];
        for (kind, per_row, per_col, all) in cases {
            for split in [1, 2, 3] {
                assert!(
                    close(&reduce(kind, Lanes::PerRow, &a, split), &per_row),
                    "{kind:?} rows"
                );
                assert!(
                    close(&reduce(kind, Lanes::PerColumn, &a, split), &per_col),
                    "{kind:?} cols"
                );
                assert!(
                    close(&reduce(kind, Lanes::One, &a, split), &[all]),
                    "{kind:?} all"
                );
            }
        }
    }

    #[test]
    fn min_and_max_keep_nan() {
        assert!(min(1.0, f64::NAN).is_nan() && min(f64::NAN, 1.0).is_nan());
        assert!(max(1.0, f64::NAN).is_nan() && max(f64::NAN, -1.0).is_nan());
        assert_eq!((min(1.0, 2.0), max(1.0, 2.0)), (1.0, 2.0));
    }
}
