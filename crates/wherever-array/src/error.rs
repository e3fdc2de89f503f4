//! [`ArrayError`]: what can go wrong building or computing an array.

/// An array operation that cannot be built or computed.
#[derive(Debug, thiserror::Error)]
pub enum ArrayError {
    /// A chunk size of zero.
    #[error("chunk size 0 along an axis of length {len}: chunks need at least one element")]
    ZeroChunk {
        /// The axis' length.
        len: usize,
    },
    /// Two arrays whose shapes do not fit the operation.
    #[error("{op}: shapes {left:?} and {right:?} do not fit")]
    Shapes {
        /// The operation.
        op: &'static str,
        /// The left operand's shape.
        left: Vec<usize>,
        /// The right operand's shape.
        right: Vec<usize>,
    },
    /// An axis the array does not have.
    #[error("axis {axis} out of range for an array of {ndim} dimensions")]
    Axis {
        /// The axis asked for.
        axis: usize,
        /// The array's dimensions.
        ndim: usize,
    },
    /// A shape of more than two dimensions.
    #[error("arrays have 1 or 2 dimensions, not {0}")]
    Dimensions(usize),
    /// A tree reduction width below 2.
    #[error("a tree reduction needs a width of at least 2, not {0}")]
    Width(usize),
    /// A reduction over no elements.
    #[error("{0:?} over an empty axis: the array has shape {1:?}")]
    Empty(crate::Reduction, Vec<usize>),
    /// A task failed while computing.
    #[error(transparent)]
    Task(#[from] wherever::TaskError),
}
