//! What [`compute`](crate::compute) and [`persist`](crate::persist) accept: one
//! delayed value, a slice, array or `Vec` of delayed values of one type, or a tuple
//! of up to 8 delayed values of different types.

use crate::graph::{NodeRef, SubmittedGraph};
use crate::{Delayed, Future, TaskError, Value};

/// One output of a computation: a [`Delayed`] or a reference to one.
pub trait DelayedOutput {
    /// The type of the value it computes to.
    type Value: Value;
    /// The delayed value.
    fn delayed(&self) -> &Delayed<Self::Value>;
}

impl<T: Value> DelayedOutput for Delayed<T> {
    type Value = T;
    fn delayed(&self) -> &Delayed<T> {
        self
    }
}

impl<T: Value> DelayedOutput for &Delayed<T> {
    type Value = T;
    fn delayed(&self) -> &Delayed<T> {
        self
    }
}

/// The outputs of one [`compute`](crate::compute) or [`persist`](crate::persist)
/// call, and what it returns for them.
pub trait ComputeOutputs {
    /// What `persist` returns: a future per output, in the same shape.
    type Futures;
    /// What `compute` returns: a value per output, in the same shape.
    type Values;
    #[doc(hidden)]
    fn nodes(&self) -> Vec<NodeRef>;
    #[doc(hidden)]
    fn futures(&self, graph: &SubmittedGraph) -> Self::Futures;
    #[doc(hidden)]
    fn values(futures: Self::Futures) -> Result<Self::Values, TaskError>;
}

impl<T: Value> ComputeOutputs for &Delayed<T> {
    type Futures = Future<T>;
    type Values = T;
    fn nodes(&self) -> Vec<NodeRef> {
        vec![self.node()]
    }
    fn futures(&self, graph: &SubmittedGraph) -> Future<T> {
        graph.future(self)
    }
    fn values(future: Future<T>) -> Result<T, TaskError> {
        future.value()
    }
}

impl<E: DelayedOutput> ComputeOutputs for &[E] {
    type Futures = Vec<Future<E::Value>>;
    type Values = Vec<E::Value>;
    fn nodes(&self) -> Vec<NodeRef> {
        self.iter().map(|output| output.delayed().node()).collect()
    }
    fn futures(&self, graph: &SubmittedGraph) -> Self::Futures {
        // Every output is read: fetch large ones as their tasks end.
        self.iter()
            .map(|output| {
                let future = graph.future(output.delayed());
                future.slot.fetch_when_done();
                future
            })
            .collect()
    }
    fn values(futures: Self::Futures) -> Result<Self::Values, TaskError> {
        futures.into_iter().map(Future::value).collect()
    }
}

/// Arrays and vectors of outputs: as their slices.
macro_rules! as_slice_outputs {
    ($([$($generics:tt)*] $outputs:ty),+ $(,)?) => {$(
        impl<E: DelayedOutput, $($generics)*> ComputeOutputs for $outputs {
            type Futures = Vec<Future<E::Value>>;
            type Values = Vec<E::Value>;
            fn nodes(&self) -> Vec<NodeRef> {
                self.as_slice().nodes()
            }
            fn futures(&self, graph: &SubmittedGraph) -> Self::Futures {
                self.as_slice().futures(graph)
            }
            fn values(futures: Self::Futures) -> Result<Self::Values, TaskError> {
                <&[E]>::values(futures)
            }
        }
    )+};
}

as_slice_outputs!([const N: usize] &[E; N], [] &Vec<E>);

/// Tuples of outputs of different types.
macro_rules! tuple_outputs {
    ($($output:ident $index:tt),+) => {
        impl<$($output: DelayedOutput),+> ComputeOutputs for ($($output,)+) {
            type Futures = ($(Future<<$output as DelayedOutput>::Value>,)+);
            type Values = ($(<$output as DelayedOutput>::Value,)+);
            fn nodes(&self) -> Vec<NodeRef> {
                vec![$(self.$index.delayed().node()),+]
            }
            fn futures(&self, graph: &SubmittedGraph) -> Self::Futures {
                ($(graph.future(self.$index.delayed()),)+)
            }
            fn values(futures: Self::Futures) -> Result<Self::Values, TaskError> {
                Ok(($(futures.$index.value()?,)+))
            }
        }
    };
}

tuple_outputs!(A 0);
tuple_outputs!(A 0, B 1);
tuple_outputs!(A 0, B 1, C 2);
tuple_outputs!(A 0, B 1, C 2, D 3);
tuple_outputs!(A 0, B 1, C 2, D 3, E 4);
tuple_outputs!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_outputs!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_outputs!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
