//! The built-in partition tasks every bag graph is made of: [`bag_partition`]
//! reads (or takes) one partition, applies the bag's fused element operations in
//! one pass, and finishes it (keeps it, counts it, sums it, folds it...);
//! [`bag_combine`] merges the partial results of a tree reduction. Both are
//! registered tasks, so every plan runs them; the user's functions they call are
//! found by their registered names.

use crate::read::{read_source, SourceSpec};
use crate::reduce::{combine, finish, Combine, Finish, Partial};
use serde::{Deserialize, Serialize};
use wherever::__private::element::{self, ElementCall, ElementOp};
use wherever::partition::Partition;
use wherever::{TaskContext, TaskFailure};

/// One element operation of a bag: what to do with the results of which task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Op {
    /// Map, filter or flat map.
    pub op: ElementOp,
    /// The registered name of the user's task.
    pub task: String,
    /// The encoded value bound to the operation (`map_with`, `filter_with`).
    pub bound: Option<serde_bytes::ByteBuf>,
}

/// What one partition task does: where its partition comes from, the element
/// operations applied to it in order, and how it is finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartitionJob {
    /// The partition's source.
    pub source: SourceSpec,
    /// The fused element operations.
    pub ops: Vec<Op>,
    /// What becomes of the partition.
    pub finish: Finish,
}

/// Reads (or takes) one partition, applies the operations, finishes it.
#[wherever::task]
pub(crate) fn bag_partition(job: PartitionJob, ctx: &mut TaskContext) -> Result<Partial, String> {
    let partition = read_source(&job.source)?;
    run_job(&job, partition, ctx).map_err(|failure| failure.message)
}

/// Merges partial results of a reduction.
#[wherever::task]
pub(crate) fn bag_combine(
    how: Combine,
    parts: Vec<Partial>,
    ctx: &mut TaskContext,
) -> Result<Partial, String> {
    combine(&how, parts, ctx).map_err(|failure| failure.message)
}

/// Applies `job`'s operations to `partition` and finishes it.
fn run_job(
    job: &PartitionJob,
    mut partition: Partition,
    ctx: &mut TaskContext,
) -> Result<Partial, TaskFailure> {
    for op in &job.ops {
        partition = apply_op(op, &partition, ctx)?;
    }
    finish(&job.finish, partition, ctx)
}

/// One element operation over a whole partition, through the user task's
/// registered entry point.
pub(crate) fn apply_op(
    op: &Op,
    partition: &Partition,
    ctx: &mut TaskContext,
) -> Result<Partition, TaskFailure> {
    let apply = element::lookup(&op.task)
        .and_then(|fns| fns.apply)
        .ok_or_else(|| missing_task(&op.task))?;
    apply(ElementCall {
        op: op.op,
        input: partition,
        extra: op.bound.as_deref().map(|b| b.as_slice()),
        ctx,
    })
}

/// The failure for a task this executable does not have as an element function.
pub(crate) fn missing_task(name: &str) -> TaskFailure {
    TaskFailure::from_error(format!(
        "no element function `{name}` is registered in this executable"
    ))
}
