//! The arithmetic operators of [`Array`]: with scalars (kept as pending element-wise
//! operations, fused later) and between arrays (element-wise tasks).

use super::Array;
use crate::ops::{BinOp, ElemOp};

macro_rules! scalar_ops {
    ($($trait:ident $method:ident $op:ident $rev:ident;)*) => {$(
        impl std::ops::$trait<f64> for Array {
            type Output = Array;
            fn $method(self, c: f64) -> Array {
                self.with_op(ElemOp::$op(c))
            }
        }
        impl std::ops::$trait<f64> for &Array {
            type Output = Array;
            fn $method(self, c: f64) -> Array {
                self.with_op(ElemOp::$op(c))
            }
        }
        impl std::ops::$trait<Array> for f64 {
            type Output = Array;
            fn $method(self, x: Array) -> Array {
                x.with_op(ElemOp::$rev(self))
            }
        }
        impl std::ops::$trait<&Array> for f64 {
            type Output = Array;
            fn $method(self, x: &Array) -> Array {
                x.with_op(ElemOp::$rev(self))
            }
        }
    )*};
}

scalar_ops! {
    Add add Add Add;
    Sub sub Sub SubFrom;
    Mul mul Mul Mul;
    Div div Div DivInto;
}

macro_rules! array_ops {
    ($($trait:ident $method:ident $op:ident;)*) => {$(
        impl std::ops::$trait<&Array> for &Array {
            type Output = Array;
            /// Panics when the shapes differ (as `ndarray` does); see [`Array::zip_with`].
            fn $method(self, other: &Array) -> Array {
                self.zip_with(other, BinOp::$op).unwrap_or_else(|e| panic!("{e}"))
            }
        }
        impl std::ops::$trait<Array> for Array {
            type Output = Array;
            /// Panics when the shapes differ (as `ndarray` does); see [`Array::zip_with`].
            fn $method(self, other: Array) -> Array {
                (&self).$method(&other)
            }
        }
    )*};
}

array_ops! {
    Add add Add;
    Sub sub Sub;
    Mul mul Mul;
    Div div Div;
}

impl std::ops::Neg for Array {
    type Output = Array;
    fn neg(self) -> Array {
        self.with_op(ElemOp::Neg)
    }
}

impl std::ops::Neg for &Array {
    type Output = Array;
    fn neg(self) -> Array {
        self.with_op(ElemOp::Neg)
    }
}
