//! Element-wise operations: the scalar ones an array keeps as a list to fuse into
//! whatever produces or consumes its chunks, and the binary ones between arrays.

use serde::{Deserialize, Serialize};

/// One element-wise operation with a scalar, applied in list order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ElemOp {
    /// `x + c`
    Add(f64),
    /// `x - c`
    Sub(f64),
    /// `c - x`
    SubFrom(f64),
    /// `x * c`
    Mul(f64),
    /// `x / c`
    Div(f64),
    /// `c / x`
    DivInto(f64),
    /// `-x`
    Neg,
}

impl ElemOp {
    /// The operation on one element.
    #[inline]
    pub fn apply(self, x: f64) -> f64 {
        match self {
            ElemOp::Add(c) => x + c,
            ElemOp::Sub(c) => x - c,
            ElemOp::SubFrom(c) => c - x,
            ElemOp::Mul(c) => x * c,
            ElemOp::Div(c) => x / c,
            ElemOp::DivInto(c) => c / x,
            ElemOp::Neg => -x,
        }
    }
}

/// Applies `ops` in order to every element of `values` (one pass per operation,
/// each a simple loop the compiler vectorises).
pub fn apply_all(ops: &[ElemOp], values: &mut [f64]) {
    for &op in ops {
        match op {
            ElemOp::Add(c) => values.iter_mut().for_each(|x| *x += c),
            ElemOp::Mul(c) => values.iter_mut().for_each(|x| *x *= c),
            other => values.iter_mut().for_each(|x| *x = other.apply(*x)),
        }
    }
}

/// An element-wise operation between two arrays of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

impl BinOp {
    /// The operation on one pair of elements.
    #[inline]
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_apply_in_order() {
        let mut v = vec![1.0, 2.0, -4.0];
        apply_all(
            &[
                ElemOp::Mul(2.0),
                ElemOp::Add(1.0),
                ElemOp::SubFrom(10.0),
                ElemOp::DivInto(1.0),
            ],
            &mut v,
        );
        let expected: Vec<f64> = [1.0f64, 2.0, -4.0]
            .iter()
            .map(|x| 1.0 / (10.0 - (x * 2.0 + 1.0)))
            .collect();
        assert_eq!(v, expected);
        apply_all(&[ElemOp::Neg, ElemOp::Sub(1.0), ElemOp::Div(2.0)], &mut v);
        assert_eq!(v[0], (-expected[0] - 1.0) / 2.0);
    }

    #[test]
    fn binary_ops() {
        assert_eq!(
            [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div].map(|op| op.apply(6.0, 3.0)),
            [9.0, 3.0, 18.0, 2.0]
        );
    }
}
