//! Reductions of an [`Array`]: one partial per block (generated blocks fold row by
//! row and are never held whole), merged in a tree.

use super::{blocks_of, Array, Over, Source, DEFAULT_TREE_WIDTH};
use crate::chunk::Chunk;
use crate::error::ArrayError;
use crate::geometry::{AxisChunks, Grid};
use crate::reduce::{Lanes, Partial, Reduction};
use crate::tasks::{self, BlockSpec};
use wherever::{delayed, Delayed};

impl Array {
    /// The internal axis a logical one maps to, and the lanes reducing over it.
    fn lanes(&self, over: Over) -> Result<(Lanes, usize), ArrayError> {
        match (over, self.ndim) {
            (Over::All, _) => Ok((Lanes::One, 0)),
            (Over::Axis(a), n) if a >= n => Err(ArrayError::Axis { axis: a, ndim: n }),
            (Over::Axis(_), 1) => Ok((Lanes::One, 0)),
            (Over::Axis(0), _) => Ok((Lanes::PerColumn, 1)),
            (Over::Axis(_), _) => Ok((Lanes::PerRow, 1)),
        }
    }

    /// A reduction as a tree: one partial per block (generated blocks fold row by
    /// row and are never held whole), merged `width` at a time.
    pub fn reduce(
        &self,
        kind: Reduction,
        over: impl Into<Over>,
        width: usize,
    ) -> Result<Array, ArrayError> {
        if width < 2 {
            return Err(ArrayError::Width(width));
        }
        let (lanes, ndim_drop) = self.lanes(over.into())?;
        let [rows, cols] = self.grid.shape();
        let reduced_empty = match lanes {
            Lanes::PerRow => cols == 0,
            Lanes::PerColumn => rows == 0,
            Lanes::One => rows * cols == 0,
        };
        if reduced_empty {
            return Err(ArrayError::Empty(kind, self.shape()));
        }
        let partials: Vec<Delayed<Partial>> = match &self.source {
            Source::Generated(generator) => blocks_of(&self.grid, |rect| {
                let spec = BlockSpec {
                    generator: *generator,
                    rect,
                    ops: self.ops.clone(),
                };
                delayed(tasks::reduce_generated, (spec, kind, lanes))
            }),
            Source::Blocks(blocks) => blocks
                .iter()
                .map(|b| delayed(tasks::reduce_block, (b, self.ops.clone(), kind, lanes)))
                .collect(),
        };
        let [br, bc] = self.grid.blocks();
        let at = |i: usize, j: usize| partials[i * bc + j].clone();
        // Which partials merge into each output block, and the output grid.
        let (groups, grid): (Vec<Vec<Delayed<Partial>>>, Grid) = match lanes {
            Lanes::PerRow => (
                (0..br)
                    .map(|i| (0..bc).map(|j| at(i, j)).collect())
                    .collect(),
                Grid {
                    rows: AxisChunks::from_sizes(vec![1]),
                    cols: self.grid.rows.clone(),
                },
            ),
            Lanes::PerColumn => (
                (0..bc)
                    .map(|j| (0..br).map(|i| at(i, j)).collect())
                    .collect(),
                Grid {
                    rows: AxisChunks::from_sizes(vec![1]),
                    cols: self.grid.cols.clone(),
                },
            ),
            Lanes::One => (
                vec![partials.clone()],
                Grid {
                    rows: AxisChunks::from_sizes(vec![1]),
                    cols: AxisChunks::from_sizes(vec![1]),
                },
            ),
        };
        let blocks = groups
            .into_iter()
            .map(|group| tree(group, kind, width))
            .collect();
        Ok(Array {
            ndim: if lanes == Lanes::One {
                0
            } else {
                self.ndim - ndim_drop
            },
            grid,
            source: Source::Blocks(blocks),
            ops: Vec::new(),
        })
    }

    /// The sum over everything or one axis (a tree of width [`DEFAULT_TREE_WIDTH`]).
    pub fn sum(&self, over: impl Into<Over>) -> Result<Array, ArrayError> {
        self.reduce(Reduction::Sum, over, DEFAULT_TREE_WIDTH)
    }

    /// The mean over everything or one axis.
    pub fn mean(&self, over: impl Into<Over>) -> Result<Array, ArrayError> {
        self.reduce(Reduction::Mean, over, DEFAULT_TREE_WIDTH)
    }

    /// The population standard deviation over everything or one axis.
    pub fn std(&self, over: impl Into<Over>) -> Result<Array, ArrayError> {
        self.reduce(Reduction::Std, over, DEFAULT_TREE_WIDTH)
    }

    /// The smallest element over everything or one axis.
    pub fn min(&self, over: impl Into<Over>) -> Result<Array, ArrayError> {
        self.reduce(Reduction::Min, over, DEFAULT_TREE_WIDTH)
    }

    /// The largest element over everything or one axis.
    pub fn max(&self, over: impl Into<Over>) -> Result<Array, ArrayError> {
        self.reduce(Reduction::Max, over, DEFAULT_TREE_WIDTH)
    }
}

/// Merges `partials` `width` at a time until one task can finish them.
fn tree(mut partials: Vec<Delayed<Partial>>, kind: Reduction, width: usize) -> Delayed<Chunk> {
    while partials.len() > width {
        partials = partials
            .chunks(width)
            .map(|group| delayed(tasks::combine, (group, kind)))
            .collect();
    }
    delayed(tasks::finish_reduction, (&partials, kind))
}
