//! What the server should do: [`Command`].

#[allow(unused_imports)] // named in doc links
use crate::{Event, Scheduler};
use crate::{TaskId, WorkerId};

/// What the server should do, produced by [`Scheduler::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run `task` on `worker`; `inputs` tells where each dependency's result lives.
    ///
    /// A finish or failure report carries no assignment number, so a worker that already
    /// holds the result of `task` (it finished an earlier assignment whose report may still
    /// be on its way) reports [`Event::TaskFinished`] again instead of queueing it, one
    /// whose user function already failed on `task` reports [`Event::TaskErred`] again, and
    /// one already running it just keeps running it.
    Compute {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// For each dependency (in the spec's order, without duplicates), the workers holding it.
        inputs: Vec<(TaskId, Vec<WorkerId>)>,
    },
    /// Ask `worker` to give back a queued-but-not-started task (answer: [`Event::StealResponse`]).
    Steal {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// `worker` may drop its copy of the result of `task`.
    ///
    /// Reports carry no assignment number: the scheduler counts the reports of holding
    /// `task` ([`Event::TaskFinished`], [`Event::Replicated`]) that `worker` may still send
    /// (one per [`Command::Compute`] there that computes or fetches it, less those received)
    /// and takes the next that many as sent before the worker dropped its copy (messages
    /// between the scheduler and one worker must keep their order): each is answered with
    /// `Compute` again if `task` is assigned to `worker` (a worker that does hold it reports
    /// again), with `Free` otherwise.
    Free {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// Best effort: `worker` should drop the task; the scheduler already considers it gone
    /// from that worker. A result the worker reports anyway is still accepted or freed.
    Cancel {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// `worker` should fetch a copy of the result of `task` from `holders` and keep it
    /// (answer: [`Event::Replicated`], or [`Event::ReplicateFailed`]): a retiring
    /// worker hands over a result only it holds.
    Replicate {
        /// The worker that fetches the copy.
        worker: WorkerId,
        /// The task whose result it copies.
        task: TaskId,
        /// The workers holding it now.
        holders: Vec<WorkerId>,
    },
    /// A retiring worker ran its last task and handed over its results: the scheduler
    /// removed it (nothing of it is retried or lost); tell it goodbye.
    Retired {
        /// The worker.
        worker: WorkerId,
    },
    /// To the client: the wanted result is in memory ([`Scheduler::who_has`] tells where).
    Done {
        /// The task.
        task: TaskId,
    },
    /// To the client: the task failed (`cause == task`) or dependency `cause` failed.
    Erred {
        /// The task.
        task: TaskId,
        /// The task whose failure caused this one.
        cause: TaskId,
    },
    /// To the client: the retry budget is exhausted, the workers running the task kept
    /// dying (Dask's `KilledWorker`); dependents get [`Command::Erred`] with this cause.
    Lost {
        /// The task.
        task: TaskId,
        /// How many times a worker died while running it.
        attempts: u32,
    },
    /// To the client: no worker connected when the task was submitted has the
    /// resources it asks for, so it fails at once; `reason` names the resource and the
    /// most any worker has. A [`Command::Erred`] with `cause == task` follows (and its
    /// dependents fail with it as their cause).
    NoWorkerFits {
        /// The task.
        task: TaskId,
        /// Which resource no worker has enough of, and the most any worker has.
        reason: String,
    },
    /// To the client: the task was cancelled (by [`Event::Cancel`] on it or on a dependency).
    Cancelled {
        /// The task.
        task: TaskId,
    },
}
