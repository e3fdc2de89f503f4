//! # wherever-array
//!
//! Chunked arrays of `f64` (Dask's `dask.array`) over wherever's lazy graphs: every
//! operation builds graph nodes, and any client computes them under any plan.
//!
//! ```
//! use ndarray::Axis;
//! use wherever::Plan;
//! use wherever_array::Array;
//!
//! let client = Plan::parse("threads:2")?.start()?;
//! let x = Array::random_normal(&[400, 300], &[100, 100], 7)?;
//! let row_means = (x * 2.0 + 1.0).mean(Axis(1))?.compute(&client)?;
//! assert_eq!(row_means.shape(), &[400]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Chunks
//!
//! A block is a [`Chunk`]: an `ndarray::Array2<f64>` (a 1-D array's blocks have one
//! row; a 0-D array is one element). It travels between processes as one raw
//! little-endian byte buffer with a 16-byte shape header, never element by element.
//!
//! ## Random values that do not depend on the chunks
//!
//! A generated array's element `(i, j)` depends only on the seed, the distribution,
//! `i` and `j`: not on the chunks, the plan, the workers or the order blocks are
//! computed in (Dask's do: dask/dask#1684). The scheme is counter-based:
//!
//! - the ChaCha8 key comes from the seed (`ChaCha8Rng::seed_from_u64(seed)`);
//! - row `i` reads ChaCha stream `i` (uniform) or `i + 2^63` (normal), so the two
//!   kinds are independent and rows never overlap;
//! - element `(i, j)` is the 64-bit word at word position `2 j` of that stream
//!   (ChaCha's position is a block counter, so a block starting at column `j0` seeks
//!   there in O(1) and draws its row segment with one `fill_bytes`);
//! - a uniform is `k 2^-52 + 2^-53` for the word's top 52 bits `k`: on (0, 1),
//!   symmetric about 1/2;
//! - a normal is the inverse normal CDF of that uniform (Wichura's AS 241, with
//!   fdlibm's logarithm so that every machine gives the same bits): a fixed one
//!   word per element, unlike the ziggurat's variable count. It runs in two
//!   vectorised passes (the central formula for all, the tail formula for the 15%
//!   in the tails), with AVX2 where the processor has it.
//!
//! A 1-D array's element `i` is element `(0, i)` of the scheme. Rechunking a generated
//! array is free: only its grid changes.
//!
//! ## Fusion and memory
//!
//! An array is lazily a source (a generator, or one graph node per block) plus a
//! list of element-wise operations with scalars. Those operations fuse into the
//! task that makes or consumes each block, and a reduction over a generated array
//! folds each block row by row as it generates it: `(x * 2.0 + 1.0).mean(Axis(1))`
//! is one task per block plus a merge tree, and no block of `x` (nor of the
//! intermediate arrays) is ever held whole.

#![warn(missing_docs)]

mod array;
mod chunk;
mod error;
mod geometry;
mod ops;
mod random;
mod reduce;
pub mod tasks;

pub use array::{Array, Over, DEFAULT_TREE_WIDTH};
pub use chunk::{Chunk, ChunkError, HEADER_LEN};
pub use error::ArrayError;
pub use geometry::{AxisChunks, BlockRect, Grid};
pub use ops::{BinOp, ElemOp};
pub use random::{inverse_normal_cdf, Generator};
pub use reduce::{Lanes, Partial, Reduction};
