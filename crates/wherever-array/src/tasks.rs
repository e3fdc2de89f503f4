//! The registered tasks an array's graph is made of. Each runs on any plan.

use crate::chunk::Chunk;
use crate::geometry::BlockRect;
use crate::ops::{apply_all, BinOp, ElemOp};
use crate::random::{Generator, RowFiller};
use crate::reduce::{finish, merge, Folder, Lanes, Partial, Reduction};
use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};

/// A generated block: where it sits, what generates it, and the element-wise
/// operations applied after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// What the array's elements are before `ops`.
    pub generator: Generator,
    /// The block's place in the array.
    pub rect: BlockRect,
    /// Applied in order to every element.
    pub ops: Vec<ElemOp>,
}

/// Where one piece of an output block comes from, for [`assemble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Which of the input chunks.
    pub part: u32,
    /// Rows `[r0, r1)` and columns `[c0, c1)` of that chunk.
    pub from: [u64; 4],
    /// The first row and column in the output block.
    pub to: [u64; 2],
}

/// A generated block, whole.
#[wherever::task]
pub fn generate(spec: BlockSpec) -> Chunk {
    let (rows, cols) = (spec.rect.rows as usize, spec.rect.cols as usize);
    let mut values = vec![0.0; rows * cols];
    if cols > 0 {
        let mut filler = RowFiller::new(spec.generator);
        for (r, row) in values.chunks_exact_mut(cols).enumerate() {
            filler.fill(spec.rect.row0 + r as u64, spec.rect.col0, row);
        }
    }
    apply_all(&spec.ops, &mut values);
    Chunk(Array2::from_shape_vec((rows, cols), values).expect("rows x cols"))
}

/// A generated block folded into a reduction's partial row by row: the block
/// itself is never held, only one row of it.
#[wherever::task]
pub fn reduce_generated(spec: BlockSpec, kind: Reduction, lanes: Lanes) -> Partial {
    let (rows, cols) = (spec.rect.rows as usize, spec.rect.cols as usize);
    let mut folder = Folder::new(kind, lanes, rows, cols);
    let mut filler = RowFiller::new(spec.generator);
    let mut row = vec![0.0; cols];
    for r in 0..spec.rect.rows {
        filler.fill(spec.rect.row0 + r, spec.rect.col0, &mut row);
        apply_all(&spec.ops, &mut row);
        folder.row(&row);
    }
    folder.finish()
}

/// A stored block folded into a reduction's partial, after `ops`.
#[wherever::task]
pub fn reduce_block(block: Chunk, ops: Vec<ElemOp>, kind: Reduction, lanes: Lanes) -> Partial {
    let (rows, cols) = block.shape();
    let mut folder = Folder::new(kind, lanes, rows, cols);
    let mut row = vec![0.0; cols];
    for r in block.0.rows() {
        row.iter_mut().zip(r).for_each(|(o, &x)| *o = x);
        apply_all(&ops, &mut row);
        folder.row(&row);
    }
    folder.finish()
}

/// Partials merged (an inner node of a reduction tree).
#[wherever::task]
pub fn combine(parts: Vec<Partial>, kind: Reduction) -> Partial {
    merge(kind, parts)
}

/// Partials merged and finished: the root of a reduction tree, one row of values.
#[wherever::task]
pub fn finish_reduction(parts: Vec<Partial>, kind: Reduction) -> Chunk {
    finish(kind, merge(kind, parts))
}

/// A stored block with `ops` applied.
#[wherever::task]
pub fn map_block(block: Chunk, ops: Vec<ElemOp>) -> Chunk {
    let mut block = block;
    match block.0.as_slice_mut() {
        Some(values) => apply_all(&ops, values),
        None => block
            .0
            .mapv_inplace(|x| ops.iter().fold(x, |x, op| op.apply(x))),
    }
    block
}

/// Two blocks of the same shape combined element by element.
#[wherever::task]
pub fn zip_blocks(a: Chunk, b: Chunk, op: BinOp) -> Result<Chunk, String> {
    if a.shape() != b.shape() {
        return Err(format!(
            "blocks of shapes {:?} and {:?} do not fit",
            a.shape(),
            b.shape()
        ));
    }
    let mut a = a;
    a.0.zip_mut_with(&b.0, |x, &y| *x = op.apply(*x, y));
    Ok(a)
}

/// A block transposed.
#[wherever::task]
pub fn transpose_block(block: Chunk) -> Chunk {
    Chunk(block.0.reversed_axes().as_standard_layout().into_owned())
}

/// One block of a matrix product: the sum over k of `left[k] . right[k]`.
#[wherever::task]
pub fn matmul_blocks(left: Vec<Chunk>, right: Vec<Chunk>) -> Result<Chunk, String> {
    let (rows, cols) = match (left.first(), right.first()) {
        (Some(l), Some(r)) => (l.shape().0, r.shape().1),
        _ => return Err("a block product needs at least one pair of blocks".into()),
    };
    let mut out = Array2::zeros((rows, cols));
    for (l, r) in left.iter().zip(&right) {
        if l.shape().1 != r.shape().0 || l.shape().0 != rows || r.shape().1 != cols {
            return Err(format!(
                "blocks of shapes {:?} and {:?} do not multiply",
                l.shape(),
                r.shape()
            ));
        }
        ndarray::linalg::general_mat_mul(1.0, &l.0, &r.0, 1.0, &mut out);
    }
    Ok(Chunk(out))
}

/// An output block of `rows` x `cols` put together from pieces of input chunks.
#[wherever::task]
pub fn assemble(
    parts: Vec<Chunk>,
    pieces: Vec<Piece>,
    rows: u64,
    cols: u64,
) -> Result<Chunk, String> {
    let mut out = Array2::zeros((rows as usize, cols as usize));
    for p in pieces {
        let part = parts
            .get(p.part as usize)
            .ok_or_else(|| format!("piece names chunk {} of {}", p.part, parts.len()))?;
        let [r0, r1, c0, c1] = p.from.map(|v| v as usize);
        let [tr, tc] = p.to.map(|v| v as usize);
        let src = part.0.slice(s![r0..r1, c0..c1]);
        out.slice_mut(s![tr..tr + (r1 - r0), tc..tc + (c1 - c0)])
            .assign(&src);
    }
    Ok(Chunk(out))
}

/// A block as it is: the node a stored block (`from_ndarray`, `persist`) hangs on.
#[wherever::task]
pub fn stored_block(block: Chunk) -> Chunk {
    block
}
