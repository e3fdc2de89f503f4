//! [`Array`]: a lazy, chunked array of `f64` with 0, 1 or 2 dimensions.

use crate::chunk::Chunk;
use crate::error::ArrayError;
use crate::geometry::Grid;
use crate::ops::{BinOp, ElemOp};
use crate::random::Generator;
use crate::tasks::{self, BlockSpec, Piece};
use ndarray::{s, Array2, ArrayD, Axis, IxDyn};
use wherever::{delayed, Client, Delayed};

/// The default width of reduction trees: how many partials one task merges.
pub const DEFAULT_TREE_WIDTH: usize = 8;

/// What a reduction runs over: every element, or one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Every element: the result has no dimensions.
    All,
    /// One axis: the result has one dimension less.
    Axis(usize),
}

impl From<Axis> for Over {
    fn from(axis: Axis) -> Over {
        Over::Axis(axis.index())
    }
}

/// Where an array's blocks come from.
#[derive(Clone)]
enum Source {
    /// Computed from their position alone (random draws, constants).
    Generated(Generator),
    /// Graph nodes, one per block, row-major.
    Blocks(Vec<Delayed<Chunk>>),
}

/// A chunked array of `f64` with 0, 1 or 2 dimensions, built lazily: operations
/// make graphs (of [`wherever::delayed`] nodes) and nothing runs until
/// [`Array::compute`] or [`Array::persist`].
///
/// Internally every array is 2-D: a 1-D array of length n is one row of n, and a
/// 0-D array one element. An array is a source (a generator, or one graph node per
/// block) plus a list of element-wise operations with scalars still to apply: they
/// fuse into the task that makes or consumes each block.
#[derive(Clone)]
pub struct Array {
    ndim: usize,
    grid: Grid,
    source: Source,
    ops: Vec<ElemOp>,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("shape", &self.shape())
            .field("chunks", &self.chunks())
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

/// Checks a shape of 1 or 2 dimensions and its chunk sizes; gives the 2-D grid.
fn grid_of(shape: &[usize], chunks: &[usize]) -> Result<Grid, ArrayError> {
    if shape.len() != chunks.len() {
        return Err(ArrayError::Shapes {
            op: "chunks",
            left: shape.to_vec(),
            right: chunks.to_vec(),
        });
    }
    match shape.len() {
        1 => Grid::regular([1, shape[0]], [1, chunks[0]]),
        2 => Grid::regular([shape[0], shape[1]], [chunks[0], chunks[1]]),
        n => Err(ArrayError::Dimensions(n)),
    }
}

impl Array {
    fn generated(
        shape: &[usize],
        chunks: &[usize],
        generator: Generator,
    ) -> Result<Array, ArrayError> {
        Ok(Array {
            ndim: shape.len(),
            grid: grid_of(shape, chunks)?,
            source: Source::Generated(generator),
            ops: Vec::new(),
        })
    }

    /// Standard normal draws. Element `(i, j)` depends only on `seed`, `i` and `j`:
    /// not on the chunks, the plan or the order of computation (see the crate docs).
    pub fn random_normal(
        shape: &[usize],
        chunks: &[usize],
        seed: u64,
    ) -> Result<Array, ArrayError> {
        Array::generated(shape, chunks, Generator::Normal { seed })
    }

    /// Uniform draws on (0, 1), independent of the chunks as [`Array::random_normal`].
    pub fn random_uniform(
        shape: &[usize],
        chunks: &[usize],
        seed: u64,
    ) -> Result<Array, ArrayError> {
        Array::generated(shape, chunks, Generator::Uniform { seed })
    }

    /// Every element `value`.
    pub fn full(shape: &[usize], chunks: &[usize], value: f64) -> Result<Array, ArrayError> {
        Array::generated(shape, chunks, Generator::Constant(value))
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], chunks: &[usize]) -> Result<Array, ArrayError> {
        Array::full(shape, chunks, 0.0)
    }

    /// Ones.
    pub fn ones(shape: &[usize], chunks: &[usize]) -> Result<Array, ArrayError> {
        Array::full(shape, chunks, 1.0)
    }

    /// An in-memory array (1-D or 2-D) cut into chunks: each block becomes a graph
    /// node holding its values.
    pub fn from_ndarray(values: &ArrayD<f64>, chunks: &[usize]) -> Result<Array, ArrayError> {
        let grid = grid_of(values.shape(), chunks)?;
        let whole: Array2<f64> = match values.ndim() {
            1 => values
                .view()
                .into_shape_with_order((1, values.len()))
                .map(|v| v.to_owned()),
            _ => values.view().into_dimensionality().map(|v| v.to_owned()),
        }
        .expect("1 or 2 dimensions, checked by grid_of");
        let blocks = blocks_of(&grid, |r| {
            let [r0, c0] = [r.row0 as usize, r.col0 as usize];
            let piece = whole.slice(s![r0..r0 + r.rows as usize, c0..c0 + r.cols as usize]);
            delayed(tasks::stored_block, Chunk(piece.to_owned()))
        });
        Ok(Array {
            ndim: values.ndim(),
            grid,
            source: Source::Blocks(blocks),
            ops: Vec::new(),
        })
    }

    /// The logical shape (no entries for a 0-D array).
    pub fn shape(&self) -> Vec<usize> {
        let [r, c] = self.grid.shape();
        match self.ndim {
            0 => vec![],
            1 => vec![c],
            _ => vec![r, c],
        }
    }

    /// The number of dimensions: 0, 1 or 2.
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// The chunk lengths along each logical axis.
    pub fn chunks(&self) -> Vec<Vec<usize>> {
        match self.ndim {
            0 => vec![],
            1 => vec![self.grid.cols.sizes().to_vec()],
            _ => vec![
                self.grid.rows.sizes().to_vec(),
                self.grid.cols.sizes().to_vec(),
            ],
        }
    }

    /// The number of blocks.
    pub fn block_count(&self) -> usize {
        let [r, c] = self.grid.blocks();
        r * c
    }

    fn with_op(&self, op: ElemOp) -> Array {
        let mut out = self.clone();
        out.ops.push(op);
        out
    }

    /// One graph node per block, row-major, each making its block whole (with the
    /// pending element-wise operations fused in).
    pub fn blocks(&self) -> Vec<Delayed<Chunk>> {
        match &self.source {
            Source::Generated(generator) => blocks_of(&self.grid, |rect| {
                let spec = BlockSpec {
                    generator: *generator,
                    rect,
                    ops: self.ops.clone(),
                };
                delayed(tasks::generate, spec)
            }),
            Source::Blocks(blocks) if self.ops.is_empty() => blocks.clone(),
            Source::Blocks(blocks) => blocks
                .iter()
                .map(|b| delayed(tasks::map_block, (b, self.ops.clone())))
                .collect(),
        }
    }

    /// Computes the array on `client` into an `ndarray` of its logical shape.
    pub fn compute(&self, client: &Client) -> Result<ArrayD<f64>, ArrayError> {
        let blocks = self.blocks();
        let values: Vec<Chunk> = wherever::compute(client, &blocks)?;
        let [rows, cols] = self.grid.shape();
        let mut whole = Array2::zeros((rows, cols));
        let [_, bc] = self.grid.blocks();
        for (k, chunk) in values.into_iter().enumerate() {
            let r = self.grid.block(k / bc, k % bc);
            let [r0, c0] = [r.row0 as usize, r.col0 as usize];
            whole
                .slice_mut(s![r0..r0 + r.rows as usize, c0..c0 + r.cols as usize])
                .assign(&chunk.0);
        }
        let shape = self.shape();
        Ok(whole
            .into_shape_with_order(IxDyn(&shape))
            .expect("the logical shape has the same elements"))
    }

    /// Computes every block on `client` and keeps them on the workers: the array
    /// returned builds on the stored blocks instead of recomputing them.
    pub fn persist(&self, client: &Client) -> Array {
        let futures = wherever::persist(client, &self.blocks());
        Array {
            ndim: self.ndim,
            grid: self.grid.clone(),
            source: Source::Blocks(
                futures
                    .iter()
                    .map(|f| delayed(tasks::stored_block, f))
                    .collect(),
            ),
            ops: Vec::new(),
        }
    }

    /// The graph of this array's blocks in Graphviz DOT (see [`wherever::to_dot`]).
    pub fn to_dot(&self) -> String {
        let blocks = self.blocks();
        wherever::to_dot(&blocks.iter().collect::<Vec<_>>())
    }

    /// The array with its axes swapped (a 1-D or 0-D array is its own transpose).
    pub fn t(&self) -> Array {
        if self.ndim < 2 {
            return self.clone();
        }
        let [br, bc] = self.grid.blocks();
        let blocks = self.blocks();
        let transposed = (0..bc)
            .flat_map(|j| (0..br).map(move |i| (i, j)))
            .map(|(i, j)| delayed(tasks::transpose_block, &blocks[i * bc + j]))
            .collect();
        Array {
            ndim: 2,
            grid: self.grid.transposed(),
            source: Source::Blocks(transposed),
            ops: Vec::new(),
        }
    }

    /// The same values in chunks of `chunks` (one size per logical axis). A
    /// generated array only changes its grid: its values do not depend on it.
    pub fn rechunk(&self, chunks: &[usize]) -> Result<Array, ArrayError> {
        let grid = match self.ndim {
            0 => return Ok(self.clone()),
            _ => grid_of(&self.shape(), chunks)?,
        };
        self.regrid(grid)
    }

    fn regrid(&self, grid: Grid) -> Result<Array, ArrayError> {
        if grid == self.grid {
            return Ok(self.clone());
        }
        if let Source::Generated(_) = self.source {
            return Ok(Array {
                grid,
                ..self.clone()
            });
        }
        let old = self.blocks();
        let [_, obc] = self.grid.blocks();
        let blocks = blocks_of(&grid, |rect| {
            let rows = self
                .grid
                .rows
                .overlapping(rect.row0 as usize, (rect.row0 + rect.rows) as usize);
            let cols = self
                .grid
                .cols
                .overlapping(rect.col0 as usize, (rect.col0 + rect.cols) as usize);
            let mut parts = Vec::new();
            let mut pieces = Vec::new();
            for &(i, r0, r1) in &rows {
                for &(j, c0, c1) in &cols {
                    let to = [
                        (self.grid.rows.start(i) + r0) as u64 - rect.row0,
                        (self.grid.cols.start(j) + c0) as u64 - rect.col0,
                    ];
                    pieces.push(Piece {
                        part: parts.len() as u32,
                        from: [r0, r1, c0, c1].map(|v| v as u64),
                        to,
                    });
                    parts.push(old[i * obc + j].clone());
                }
            }
            let block: Delayed<Chunk> =
                delayed(tasks::assemble, (&parts, pieces, rect.rows, rect.cols));
            block
        });
        Ok(Array {
            ndim: self.ndim,
            grid,
            source: Source::Blocks(blocks),
            ops: Vec::new(),
        })
    }

    /// The matrix product of two 2-D arrays, block by block (`other` is rechunked
    /// along its rows to match this array's columns when they differ).
    pub fn matmul(&self, other: &Array) -> Result<Array, ArrayError> {
        let (a, b) = (self.shape(), other.shape());
        if self.ndim != 2 || other.ndim != 2 || a[1] != b[0] {
            return Err(ArrayError::Shapes {
                op: "matmul",
                left: a,
                right: b,
            });
        }
        let other = other.regrid(Grid {
            rows: self.grid.cols.clone(),
            cols: other.grid.cols.clone(),
        })?;
        let (left, right) = (self.blocks(), other.blocks());
        let [br, bk] = self.grid.blocks();
        let bc = other.grid.blocks()[1];
        let grid = Grid {
            rows: self.grid.rows.clone(),
            cols: other.grid.cols.clone(),
        };
        let blocks = (0..br)
            .flat_map(|i| (0..bc).map(move |j| (i, j)))
            .map(|(i, j)| {
                let l: Vec<_> = (0..bk).map(|k| left[i * bk + k].clone()).collect();
                let r: Vec<_> = (0..bk).map(|k| right[k * bc + j].clone()).collect();
                let block: Delayed<Chunk> = delayed(tasks::matmul_blocks, (&l, &r));
                block
            })
            .collect();
        Ok(Array {
            ndim: 2,
            grid,
            source: Source::Blocks(blocks),
            ops: Vec::new(),
        })
    }

    /// Element-wise with another array of the same shape (rechunked to this
    /// array's chunks when they differ).
    pub fn zip_with(&self, other: &Array, op: BinOp) -> Result<Array, ArrayError> {
        if self.shape() != other.shape() {
            return Err(ArrayError::Shapes {
                op: "element-wise",
                left: self.shape(),
                right: other.shape(),
            });
        }
        let other = other.regrid(self.grid.clone())?;
        let blocks = self
            .blocks()
            .iter()
            .zip(other.blocks().iter())
            .map(|(a, b)| {
                let block: Delayed<Chunk> = delayed(tasks::zip_blocks, (a, b, op));
                block
            })
            .collect();
        Ok(Array {
            ndim: self.ndim,
            grid: self.grid.clone(),
            source: Source::Blocks(blocks),
            ops: Vec::new(),
        })
    }
}

/// One graph node per block of `grid`, row-major.
pub(crate) fn blocks_of<T>(
    grid: &Grid,
    mut node: impl FnMut(crate::geometry::BlockRect) -> T,
) -> Vec<T> {
    let [br, bc] = grid.blocks();
    (0..br)
        .flat_map(|i| (0..bc).map(move |j| (i, j)))
        .map(|(i, j)| node(grid.block(i, j)))
        .collect()
}

#[path = "array_ops.rs"]
mod ops;
#[path = "array_reduce.rs"]
mod reduce;
#[cfg(test)]
#[path = "array_tests.rs"]
mod tests;
