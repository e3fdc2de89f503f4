//! Registered tasks applied to every element of a partition. `#[wherever::task]`
//! gives a function of one element (`fn is_obama(line: &str) -> bool`,
//! `fn parse(line: String) -> Rec`), optionally with a value bound when the
//! operation is built (`fn find(line: &str, query: &Query) -> bool`), entry points
//! that run it over a whole [`Partition`]: [`ElementFns`] in its
//! [`TaskEntry`](crate::registry::TaskEntry). A collection's built-in partition task
//! finds them by the task's registered name, on any plan, so no closure crosses a
//! process and no element is encoded on its own for the trip: the function reads
//! each record in place (a `&str` parameter borrows the line) and its results are
//! appended to one output buffer. A function of an accumulator and an element
//! (`fn add(total: u64, x: u64) -> u64`) also gets a fold over a partition.

use crate::partition::{decode_element, Layout, Partition, PartitionBuilder};
use crate::{TaskContext, TaskFailure};
use serde::{de::DeserializeOwned, Serialize};
use std::any::Any;

/// What a partition task does with an element function's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElementOp {
    /// Each element becomes the function's result.
    Map,
    /// Elements for which the function returns `true` are kept, unchanged.
    Filter,
    /// Each element becomes the elements of the `Vec` the function returns.
    FlatMap,
}

/// One application of an element function to a partition.
pub struct ElementCall<'a> {
    /// What to do with the results.
    pub op: ElementOp,
    /// The partition.
    pub input: &'a Partition,
    /// The encoded value bound to the operation, for a function with a second,
    /// borrowed parameter.
    pub extra: Option<&'a [u8]>,
    /// The context of the partition task (its position and random stream).
    pub ctx: &'a mut TaskContext,
}

/// Runs an element function over a partition.
pub type ApplyFn = fn(ElementCall<'_>) -> Result<Partition, TaskFailure>;

/// Folds a partition's elements into an accumulator (given and returned as a
/// one-element partition).
pub type FoldFn = fn(&Partition, &Partition, &mut TaskContext) -> Result<Partition, TaskFailure>;

/// The element entry points of a registered task.
#[derive(Debug, Clone, Copy)]
pub struct ElementFns {
    /// For a function of one element (and, optionally, a borrowed bound value).
    pub apply: Option<ApplyFn>,
    /// For a function of an accumulator and an element returning the accumulator.
    pub fold: Option<FoldFn>,
}

/// The element entry points of the task registered as `name`, if it has any.
pub fn lookup(name: &str) -> Option<ElementFns> {
    crate::registry::lookup(name).and_then(|entry| entry.element)
}

/// A failure decoding or encoding an element, as a task failure.
pub fn failure(message: String) -> TaskFailure {
    TaskFailure::from_error(message)
}

/// The value bound to an operation, decoded once per partition.
pub fn bound_value<E: DeserializeOwned>(extra: Option<&[u8]>) -> Result<E, TaskFailure> {
    let bytes = extra.ok_or_else(|| {
        failure("this function takes a bound value: use the `_with` form of the operation".into())
    })?;
    crate::codec::decode(bytes).map_err(|e| failure(format!("cannot decode the bound value: {e}")))
}

/// Runs `element` (which reads one record) over `call.input`: the body of a
/// generated [`ApplyFn`] whose function returns an `R`.
pub fn apply<R: Serialize + 'static>(
    call: ElementCall<'_>,
    mut element: impl FnMut(&[u8], &mut TaskContext) -> Result<R, TaskFailure>,
) -> Result<Partition, TaskFailure> {
    let layout = call.input.layout;
    let mut out = PartitionBuilder::default();
    match call.op {
        ElementOp::Map => {
            for record in call.input.records() {
                let value = element(record, call.ctx)?;
                out.push(&value).map_err(failure)?;
            }
        }
        ElementOp::Filter => {
            for record in call.input.records() {
                let value = element(record, call.ctx)?;
                let Some(&keep) = (&value as &dyn Any).downcast_ref::<bool>() else {
                    return Err(failure(format!(
                        "filter needs a function returning bool, not {}",
                        std::any::type_name::<R>()
                    )));
                };
                if keep {
                    out.push_record(layout, record);
                }
            }
        }
        ElementOp::FlatMap => {
            return Err(failure(format!(
                "flat_map needs a function returning a Vec, not {}",
                std::any::type_name::<R>()
            )))
        }
    }
    Ok(out.finish())
}

/// [`apply`] for a function returning `Vec<U>`, which `flat_map` can flatten.
pub fn apply_vec<U: Serialize + 'static>(
    call: ElementCall<'_>,
    mut element: impl FnMut(&[u8], &mut TaskContext) -> Result<Vec<U>, TaskFailure>,
) -> Result<Partition, TaskFailure> {
    if call.op != ElementOp::FlatMap {
        return apply(call, element);
    }
    let mut out = PartitionBuilder::default();
    for record in call.input.records() {
        for value in element(record, call.ctx)? {
            out.push(&value).map_err(failure)?;
        }
    }
    Ok(out.finish())
}

/// Folds `input` into the accumulator `initial` (a one-element partition) with
/// `step`: the body of a generated [`FoldFn`].
pub fn fold<A: Serialize + DeserializeOwned + 'static>(
    initial: &Partition,
    input: &Partition,
    ctx: &mut TaskContext,
    mut step: impl FnMut(A, &[u8], &mut TaskContext) -> Result<A, TaskFailure>,
) -> Result<Partition, TaskFailure> {
    let first = initial
        .records()
        .next()
        .ok_or_else(|| failure("a fold needs an initial value".into()))?;
    let mut acc: A = decode_element(initial.layout, first).map_err(failure)?;
    for record in input.records() {
        acc = step(acc, record, ctx)?;
    }
    let mut out = PartitionBuilder::default();
    out.push(&acc).map_err(failure)?;
    Ok(out.finish())
}

/// An element of type `T` from a record of a partition in `layout` (for generated
/// code reading an owned or `&T` parameter).
pub fn element<T: DeserializeOwned + 'static>(
    layout: Layout,
    record: &[u8],
) -> Result<T, TaskFailure> {
    decode_element(layout, record).map_err(failure)
}

/// The text of a record, borrowed (for generated code reading a `&str` parameter).
pub fn text(layout: Layout, record: &[u8]) -> Result<&str, TaskFailure> {
    crate::partition::text_element(layout, record).map_err(failure)
}
