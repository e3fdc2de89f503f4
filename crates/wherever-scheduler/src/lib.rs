//! The scheduler of `wherever` as a pure, sans-IO state machine.
//!
//! Events go in through [`Scheduler::handle`], commands come out in a `Vec<Command>`:
//! no sockets, no clocks, no threads. The server (in `wherever-cluster`) owns the I/O,
//! turns messages from clients and workers into [`Event`]s and sends the resulting
//! [`Command`]s on. Dask's distributed scheduler is the reference for the states and
//! transitions:
//!
//! * a task is **waiting** while some dependency is not in memory, **ready** when all
//!   are, **processing** once assigned to a worker, **memory** once its result is held
//!   by at least one worker; it ends **erred**, **lost** (retry budget exhausted) or
//!   **cancelled**, or it is **released** (result dropped, spec kept for lineage) and
//!   finally forgotten;
//! * results are reference counted: a result stays while the client wants it or a
//!   dependent has not finished yet;
//! * a worker that dies loses its running tasks (retried up to `retries` times) and its
//!   results, which are recomputed from their lineage when still needed;
//! * a result that a worker or a client cannot fetch from its holders
//!   ([`Event::MissingData`]) is no longer counted there and, with no holder left,
//!   recomputed the same way; [`MISSING_DATA_LIMIT`] bounds how often;
//! * a task that asks for [`Resources`] (`gpu=1`, `mem=4GB`) is assigned only to a worker
//!   whose free amounts cover them and holds them while assigned there; one that no
//!   worker present at submission could ever fit fails at once ([`Command::NoWorkerFits`]);
//! * a worker can be **retired** gracefully ([`Event::Retire`], see [`retirement`]):
//!   it gets no new tasks, hands back queued ones, finishes running ones and has
//!   the results only it holds copied elsewhere before it leaves;
//! * a worker with a deadline ([`Event::WorkerDeadline`]) gets no task whose kind's
//!   mean duration would not fit before it, and is retired near it ([`walltime`]);
//! * a worker with a task limit ([`Event::WorkerTaskLimit`]) gets no more tasks than
//!   that and is retired once they are done ([`task_limit`]);
//! * idle workers steal queued-but-not-started tasks from busy ones;
//! * workers' reports and steal answers carry no assignment number; as messages between
//!   the scheduler and one worker keep their order, the scheduler counts per task and
//!   worker those that may still come from before a `Free` or a take-back, and does not
//!   take them as news (see [`Command::Free`], [`Event::StealResponse`]);
//! * a running task that blocks on other tasks (typically subtasks it submitted) can
//!   **secede** ([`Event::Secede`]): it stays processing but stops occupying a slot, so
//!   the worker gets more work and nested tasks never deadlock; [`Event::Rejoin`] makes
//!   it count again (as Dask's `secede`/`rejoin`).
//!
//! Every event costs `O(log n)` or amortised `O(deps)`.

#![warn(missing_docs)]

mod command;
use wherever_core::dense_table;
mod error;
mod event;
use wherever_core::id_hash;
mod invariants;
mod lifecycle;
mod missing_data;
mod paused;
mod per_worker;
mod placement;
mod ready_set;
mod release;
mod resources;
mod results;
pub mod retirement;
mod scheduler;
mod spec;
mod stale_reports;
mod stealing;
mod submit;
mod task;
pub mod task_limit;
mod view;
pub mod walltime;
mod worker;
mod worker_loss;

pub mod protocol;
pub mod reactor;

#[cfg(test)]
mod resources_tests;
#[cfg(test)]
mod root_tasks_tests;
#[cfg(test)]
mod task_limit_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod walltime_tests;

pub use command::Command;
pub use error::SchedulerError;
pub use event::Event;
pub use missing_data::MISSING_DATA_LIMIT;
pub use resources::{ResourceError, Resources};
pub use scheduler::Scheduler;
pub use spec::TaskSpec;
pub use view::{SchedulerConfig, TaskState, WorkerInfo};

/// Identifier of a task, chosen by the caller (the server); unique per cluster and never reused.
pub type TaskId = u64;
/// Identifier of a worker, chosen by the caller; never reused after the worker was removed.
pub type WorkerId = u64;
