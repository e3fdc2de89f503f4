//! Task arguments that may be other tasks' results: `client.submit(add, (&x, &y))`
//! with `x` and `y` futures (or scattered values, or lazy graph nodes) runs `add`
//! once both are ready, on their values.
//!
//! Plain arguments are passed through untouched on local plans. As soon as one
//! argument is a dependency, the arguments are encoded with holes where the
//! dependencies' encoded results are spliced in before the task runs (see
//! `wherever_core::holes`), locally or on a worker.

use crate::future::{Future, Shared};
use crate::graph::Delayed;
use crate::{TaskError, Value};
use std::sync::Arc;

/// A dependency found among a task's arguments.
#[derive(Clone)]
pub(crate) enum DepRef {
    /// A future (of any client).
    Future(Arc<dyn crate::future::ErasedSlot>),
    /// A value put on the workers with `scatter`.
    Shared(Arc<crate::future::SharedData>),
    /// A node of a lazy graph, not yet submitted.
    Node(crate::graph::NodeRef),
}

/// Encoded arguments with the dependencies that fill their holes.
#[derive(Default)]
pub(crate) struct Parts {
    pub(crate) bytes: Vec<u8>,
    /// `(offset, dependency)`, in increasing offset order.
    pub(crate) holes: Vec<(usize, DepRef)>,
    pub(crate) error: Option<String>,
}

/// One argument: a plain value or a dependency.
#[doc(hidden)]
pub enum Arg<T> {
    /// A value.
    Plain(T),
    /// Another task's result.
    Dep(DepRefBox),
    /// A `Vec` of other tasks' results: its encoded length, then each result.
    Deps(Vec<u8>, Vec<DepRefBox>),
}

/// An opaque dependency handle (not constructible outside wherever).
#[doc(hidden)]
pub struct DepRefBox(pub(crate) DepRef);

impl<T: Value> Arg<T> {
    fn append(self, parts: &mut Parts) {
        match self {
            Arg::Plain(value) => {
                if let Err(error) = postcard::to_io(&value, &mut parts.bytes) {
                    parts
                        .error
                        .get_or_insert_with(|| format!("cannot encode an argument: {error}"));
                }
            }
            Arg::Dep(DepRefBox(dep)) => parts.holes.push((parts.bytes.len(), dep)),
            Arg::Deps(length, deps) => {
                parts.bytes.extend_from_slice(&length);
                parts.holes.extend(
                    deps.into_iter()
                        .map(|DepRefBox(dep)| (parts.bytes.len(), dep)),
                );
            }
        }
    }
}

/// The arguments of a call, ready to run or to be encoded.
#[doc(hidden)]
pub enum Args<A> {
    /// All plain: the argument tuple itself.
    Plain(A),
    /// Some dependencies: encoded with holes.
    Parts(PartsBox),
}

/// Opaque encoded arguments (not constructible outside wherever).
#[doc(hidden)]
pub struct PartsBox(pub(crate) Parts);

/// Something that can be one argument of type `T`: a `T`, or a reference to a
/// [`Future<T>`], a [`Shared<T>`] or a [`Delayed<T>`]; for a `Vec<T>` argument, also
/// a slice of futures or delayed values (Dask's `delayed(sum)(list_of_delayed)`).
pub trait IntoArg<T> {
    #[doc(hidden)]
    fn into_arg(self) -> Arg<T>;
}

impl<T: Value> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Plain(self)
    }
}

impl<T: Value> IntoArg<T> for &Future<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Dep(DepRefBox(DepRef::Future(self.erased())))
    }
}

impl<T: Value> IntoArg<T> for &Shared<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Dep(DepRefBox(DepRef::Shared(self.data())))
    }
}

impl<T: Value> IntoArg<T> for &Delayed<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Dep(DepRefBox(DepRef::Node(self.node())))
    }
}

/// The encoded length prefix of a `Vec` of `count` elements.
pub(crate) fn length_prefix(count: usize) -> Vec<u8> {
    postcard::to_stdvec(&vec![(); count]).expect("a length always encodes")
}

impl<T: Value> IntoArg<Vec<T>> for &[Future<T>] {
    fn into_arg(self) -> Arg<Vec<T>> {
        let deps = self
            .iter()
            .map(|f| DepRefBox(DepRef::Future(f.erased())))
            .collect();
        Arg::Deps(length_prefix(self.len()), deps)
    }
}

impl<T: Value> IntoArg<Vec<T>> for &[Delayed<T>] {
    fn into_arg(self) -> Arg<Vec<T>> {
        let deps = self
            .iter()
            .map(|d| DepRefBox(DepRef::Node(d.node())))
            .collect();
        Arg::Deps(length_prefix(self.len()), deps)
    }
}

impl<T: Value> IntoArg<Vec<T>> for &Vec<Future<T>> {
    fn into_arg(self) -> Arg<Vec<T>> {
        self.as_slice().into_arg()
    }
}

impl<T: Value> IntoArg<Vec<T>> for &Vec<Delayed<T>> {
    fn into_arg(self) -> Arg<Vec<T>> {
        self.as_slice().into_arg()
    }
}

/// Something that can be the whole argument tuple `A` of a task: for a task of one
/// argument, anything that is [`IntoArg`] of it; for more, a tuple whose elements are.
pub trait IntoArgs<A> {
    #[doc(hidden)]
    fn into_args(self) -> Args<A>;
}

impl IntoArgs<()> for () {
    fn into_args(self) -> Args<()> {
        Args::Plain(())
    }
}

impl<T: Value, X: IntoArg<T>> IntoArgs<(T,)> for X {
    fn into_args(self) -> Args<(T,)> {
        match self.into_arg() {
            Arg::Plain(value) => Args::Plain((value,)),
            dep => {
                let mut parts = Parts::default();
                dep.append(&mut parts);
                Args::Parts(PartsBox(parts))
            }
        }
    }
}

macro_rules! tuple_args {
    ($(($t:ident, $x:ident, $v:ident)),+) => {
        impl<$($t: Value, $x: IntoArg<$t>),+> IntoArgs<($($t,)+)> for ($($x,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Args<($($t,)+)> {
                let ($($v,)+) = self;
                let ($($v,)+) = ($($v.into_arg(),)+);
                match ($($v,)+) {
                    ($(Arg::Plain($v),)+) => Args::Plain(($($v,)+)),
                    ($($v,)+) => {
                        let mut parts = Parts::default();
                        $($v.append(&mut parts);)+
                        Args::Parts(PartsBox(parts))
                    }
                }
            }
        }
    };
}

tuple_args!((T1, X1, v1), (T2, X2, v2));
tuple_args!((T1, X1, v1), (T2, X2, v2), (T3, X3, v3));
tuple_args!((T1, X1, v1), (T2, X2, v2), (T3, X3, v3), (T4, X4, v4));
tuple_args!(
    (T1, X1, v1),
    (T2, X2, v2),
    (T3, X3, v3),
    (T4, X4, v4),
    (T5, X5, v5)
);
tuple_args!(
    (T1, X1, v1),
    (T2, X2, v2),
    (T3, X3, v3),
    (T4, X4, v4),
    (T5, X5, v5),
    (T6, X6, v6)
);
tuple_args!(
    (T1, X1, v1),
    (T2, X2, v2),
    (T3, X3, v3),
    (T4, X4, v4),
    (T5, X5, v5),
    (T6, X6, v6),
    (T7, X7, v7)
);
tuple_args!(
    (T1, X1, v1),
    (T2, X2, v2),
    (T3, X3, v3),
    (T4, X4, v4),
    (T5, X5, v5),
    (T6, X6, v6),
    (T7, X7, v7),
    (T8, X8, v8)
);

/// The error a task gets when a dependency failed: it names the task that failed
/// first (the dependency itself, or what it depended on).
pub(crate) fn dependency_failed(name: &str, position: u64, cause: &TaskError) -> TaskError {
    let original = match &cause.kind {
        crate::TaskErrorKind::DependencyFailed { cause } => cause.clone(),
        _ => format!("`{}` #{}", cause.task, cause.position),
    };
    TaskError::new(
        name,
        position,
        crate::TaskErrorKind::DependencyFailed { cause: original },
        cause.message.clone(),
    )
}
