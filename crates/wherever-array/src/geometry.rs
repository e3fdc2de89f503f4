//! Chunk geometry: how an axis of a given length splits into chunks, ragged last
//! chunk included.

use crate::error::ArrayError;

/// The chunk lengths along one axis (all equal but the last, for a regular split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisChunks {
    sizes: Vec<usize>,
    starts: Vec<usize>,
}

impl AxisChunks {
    /// `len` split into chunks of `size` (the last one shorter when `size` does not
    /// divide `len`). A zero `size` is an error; a zero `len` has no chunks.
    pub fn regular(len: usize, size: usize) -> Result<AxisChunks, ArrayError> {
        if size == 0 {
            return Err(ArrayError::ZeroChunk { len });
        }
        let sizes = (0..len.div_ceil(size))
            .map(|k| size.min(len - k * size))
            .collect();
        Ok(AxisChunks::from_sizes(sizes))
    }

    /// Chunks of the given lengths, in order.
    pub fn from_sizes(sizes: Vec<usize>) -> AxisChunks {
        let mut starts = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for &s in &sizes {
            starts.push(at);
            at += s;
        }
        AxisChunks { sizes, starts }
    }

    /// The axis' length.
    pub fn len(&self) -> usize {
        self.starts
            .last()
            .map_or(0, |s| s + self.sizes.last().unwrap())
    }

    /// Whether the axis has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of chunks.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }

    /// The length of chunk `k`.
    pub fn size(&self, k: usize) -> usize {
        self.sizes[k]
    }

    /// The first index of chunk `k`.
    pub fn start(&self, k: usize) -> usize {
        self.starts[k]
    }

    /// The chunk lengths.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The chunks overlapping `[from, to)`: `(chunk, start within it, end within it)`.
    pub fn overlapping(&self, from: usize, to: usize) -> Vec<(usize, usize, usize)> {
        (0..self.count())
            .filter_map(|k| {
                let (s, e) = (self.starts[k], self.starts[k] + self.sizes[k]);
                let (a, b) = (from.max(s), to.min(e));
                (a < b).then(|| (k, a - s, b - s))
            })
            .collect()
    }
}

/// The chunk grid of a 2-D array (a 1-D array has one row of chunks of one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Along axis 0.
    pub rows: AxisChunks,
    /// Along axis 1.
    pub cols: AxisChunks,
}

impl Grid {
    /// A grid of `shape` with chunks of `chunks` (ragged at the ends).
    pub fn regular(shape: [usize; 2], chunks: [usize; 2]) -> Result<Grid, ArrayError> {
        Ok(Grid {
            rows: AxisChunks::regular(shape[0], chunks[0])?,
            cols: AxisChunks::regular(shape[1], chunks[1])?,
        })
    }

    /// Rows and columns of the whole array.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows.len(), self.cols.len()]
    }

    /// Blocks along each axis.
    pub fn blocks(&self) -> [usize; 2] {
        [self.rows.count(), self.cols.count()]
    }

    /// The block `(i, j)`: first row, first column, rows, columns.
    pub fn block(&self, i: usize, j: usize) -> BlockRect {
        BlockRect {
            row0: self.rows.start(i) as u64,
            col0: self.cols.start(j) as u64,
            rows: self.rows.size(i) as u64,
            cols: self.cols.size(j) as u64,
        }
    }

    /// The grid with its axes swapped.
    pub fn transposed(&self) -> Grid {
        Grid {
            rows: self.cols.clone(),
            cols: self.rows.clone(),
        }
    }
}

/// Where a block sits in its array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockRect {
    /// Its first row in the array.
    pub row0: u64,
    /// Its first column in the array.
    pub col0: u64,
    /// Its rows.
    pub rows: u64,
    /// Its columns.
    pub cols: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_chunk_is_ragged() {
        let axis = AxisChunks::regular(10, 4).unwrap();
        assert_eq!(axis.sizes(), &[4, 4, 2]);
        assert_eq!((axis.start(2), axis.len(), axis.count()), (8, 10, 3));
    }

    #[test]
    fn an_exact_split_has_no_ragged_chunk() {
        assert_eq!(AxisChunks::regular(4000, 1000).unwrap().sizes(), &[1000; 4]);
        let axis = AxisChunks::regular(3000, 333).unwrap();
        assert_eq!(axis.count(), 10);
        assert_eq!(axis.size(9), 3);
    }

    #[test]
    fn chunks_larger_than_the_axis_give_one_chunk() {
        assert_eq!(AxisChunks::regular(5, 100).unwrap().sizes(), &[5]);
    }

    #[test]
    fn an_empty_axis_has_no_chunks() {
        let axis = AxisChunks::regular(0, 3).unwrap();
        assert_eq!((axis.count(), axis.len()), (0, 0));
    }

    #[test]
    fn a_zero_chunk_size_is_an_error() {
        let err = AxisChunks::regular(10, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk size 0 along an axis of length 10: chunks need at least one element"
        );
    }

    #[test]
    fn overlapping_chunks_cover_a_range() {
        let axis = AxisChunks::regular(10, 4).unwrap();
        assert_eq!(
            axis.overlapping(3, 9),
            vec![(0, 3, 4), (1, 0, 4), (2, 0, 1)]
        );
        assert_eq!(axis.overlapping(4, 8), vec![(1, 0, 4)]);
    }

    #[test]
    fn blocks_at_the_edges_are_ragged() {
        let grid = Grid::regular([7, 5], [3, 2]).unwrap();
        assert_eq!(grid.blocks(), [3, 3]);
        assert_eq!(
            grid.block(2, 2),
            BlockRect {
                row0: 6,
                col0: 4,
                rows: 1,
                cols: 1
            }
        );
        assert_eq!(grid.transposed().shape(), [5, 7]);
    }
}
