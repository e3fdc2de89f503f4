//! What happened, reported to the scheduler by the server: [`Event`].

#[allow(unused_imports)] // named in doc links
use crate::{Command, SchedulerError};
use crate::{Resources, TaskId, TaskSpec, WorkerId};

/// Something that happened, reported to the scheduler by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A worker joined with `slots` task slots (threads).
    WorkerAdded {
        /// The new worker's id.
        worker: WorkerId,
        /// How many tasks it runs at once (at least 1).
        slots: u32,
        /// The resources it has for tasks that ask for some (empty: none).
        resources: Resources,
    },
    /// A worker died or left: its running tasks and held results are lost.
    WorkerRemoved {
        /// The worker.
        worker: WorkerId,
    },
    /// Retire `worker` gracefully ([`crate::retirement`]): it gets no new tasks, its
    /// queued-not-started tasks are asked back, its running ones finish, the results
    /// only it holds that are still wanted are copied to another worker
    /// ([`Command::Replicate`]); then the scheduler removes it and says
    /// [`Command::Retired`]. Retiring a retiring worker is a no-op (`Ok`).
    Retire {
        /// The worker.
        worker: WorkerId,
    },
    /// `worker` could not fetch the copy asked for by [`Command::Replicate`]: the
    /// scheduler asks again (of another worker if there is one).
    ReplicateFailed {
        /// The worker that was asked to fetch a copy.
        worker: WorkerId,
        /// The task whose result it could not fetch.
        task: TaskId,
    },
    /// The scheduler's clock (milliseconds since the Unix epoch, or any fixed
    /// origin shared with the deadlines): it measures durations by it and retires
    /// workers near their deadline ([`crate::walltime`]). A clock going back is
    /// taken as standing still.
    Tick {
        /// The time now, in milliseconds.
        now_ms: u64,
    },
    /// `worker` must be gone by `deadline_ms` on the scheduler's clock (a batch
    /// job's walltime): it gets no task that would not finish in time, and is
    /// retired gracefully once within the margin of it ([`crate::walltime`]).
    WorkerDeadline {
        /// The worker.
        worker: WorkerId,
        /// When it must be gone, in milliseconds.
        deadline_ms: u64,
    },
    /// A client submitted a batch of tasks.
    Submit {
        /// The tasks; dependencies inside the batch may come in any order.
        tasks: Vec<TaskSpec>,
    },
    /// The client put data on workers (no lineage; wanted until released).
    Scattered {
        /// The id under which the data is known.
        task: TaskId,
        /// Workers holding a copy.
        workers: Vec<WorkerId>,
        /// Size of the data.
        nbytes: u64,
    },
    /// A worker finished a task and holds its result.
    TaskFinished {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// Size of the result.
        nbytes: u64,
    },
    /// The user function failed or panicked: not retried; dependents fail.
    TaskErred {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// A worker fetched a copy of a dependency and still holds it.
    Replicated {
        /// The worker that now holds a copy.
        worker: WorkerId,
        /// The task whose result it holds.
        task: TaskId,
    },
    /// The answer to [`Command::Steal`]. Answers carry no assignment number: a worker must
    /// answer every request, in order; answers to requests the scheduler forgot while
    /// pending (the task was taken back, or seceded) are recognised as such and ignored.
    StealResponse {
        /// The worker that was asked.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// `true`: the task was dropped from the queue; `false`: it had started.
        stolen: bool,
    },
    /// The client dropped its last future for the task.
    Release {
        /// The task.
        task: TaskId,
    },
    /// The client cancels the task: if it has not finished, it ends as cancelled (and so do
    /// its unfinished dependents).
    Cancel {
        /// The task.
        task: TaskId,
    },
    /// `task`, running on `worker`, now blocks waiting on other tasks (typically subtasks
    /// it submitted), as Dask's `secede()`.
    ///
    /// The task stays processing on `worker` (its result still comes with
    /// [`Event::TaskFinished`] or [`Event::TaskErred`], and it is re-run like any other
    /// processing task if the worker dies), but it no longer occupies a slot: the worker's
    /// load and capacity (slots + prefetch) are computed without it, so more ready tasks
    /// may be assigned to the worker at once. A seceded task is running, so it is never
    /// asked back with [`Command::Steal`].
    ///
    /// Errors (nothing changes): [`SchedulerError::UnknownWorker`],
    /// [`SchedulerError::UnknownTask`], or [`SchedulerError::NotProcessing`] if the task is
    /// not processing on `worker`. Seceding an already seceded task is a no-op (`Ok`).
    ///
    /// A worker that receives [`Command::Compute`] for a task it is already running
    /// seceded (a re-assignment after a `Cancel` raced with the run) should report
    /// `Secede` again: the new assignment occupies a slot until then.
    Secede {
        /// The worker running the task.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// A seceded `task` on `worker` runs again (Dask's `rejoin()`): it counts toward the
    /// worker's load again. The worker may be over capacity for a while; it gets no new
    /// assignments until it is below. Being known to run, it is not asked back with
    /// [`Command::Steal`] either.
    ///
    /// Errors as for [`Event::Secede`]. Rejoining a task that is processing on `worker`
    /// but not seceded is a no-op (`Ok`).
    Rejoin {
        /// The worker running the task.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// The reporter (the worker named in `requester`, or a client if `requester` is `None`)
    /// could not get the result of `task` from `holders` (they did not answer in time,
    /// refused, or no longer hold it). Dask's "missing-data".
    ///
    /// The scheduler stops counting each of `holders` as a holder of `task` and sends each
    /// of those it counted [`Command::Free`] (it may be alive with a stale copy); workers it
    /// did not count as holders, and unknown or removed ones, are ignored. If no holder is
    /// left, `task` is recomputed from its lineage as when its last holder dies (scattered
    /// data ends [`Command::Lost`]); dependents sent to compute before any remaining holder
    /// had the result are sent again with fresh locations.
    ///
    /// A worker's report names the task it could not start, `requester: Some((worker,
    /// dependent))`: if `dependent` is processing on `worker`, it is taken back
    /// ([`Command::Cancel`]) and sent again once its inputs are in memory. A dependent whose
    /// inputs were reported missing more than [`crate::MISSING_DATA_LIMIT`] times fails with
    /// [`Command::Erred`] (`cause`: the input) instead of cycling forever.
    ///
    /// A client's report (`requester: None`) means the client waits for the result again:
    /// [`Command::Done`] (or the failure) is sent again once `task` is in memory (at once if
    /// other holders remain). A result reported missing by clients more than
    /// [`crate::MISSING_DATA_LIMIT`] times ends [`Command::Lost`].
    ///
    /// Stale reports (a worker's report about a forgotten task, a dependent no longer
    /// processing there, holders already dropped) are ignored with `Ok`. A client's report
    /// about a task the scheduler does not know is [`SchedulerError::UnknownTask`].
    MissingData {
        /// The task whose result could not be fetched.
        task: TaskId,
        /// The workers it could not be fetched from.
        holders: Vec<WorkerId>,
        /// The worker that needed it and the task it needed it for; `None` for a client.
        requester: Option<(WorkerId, TaskId)>,
    },
    /// `worker` went over its memory pause threshold and starts no new task (`paused`),
    /// or came back under it. A paused worker gets no new assignments and has no idle
    /// slots (nothing is stolen for it); the tasks it has keep their place (queued ones may
    /// be stolen by workers with idle slots) and its results stay available. Pausing twice
    /// is a no-op. Errors: [`SchedulerError::UnknownWorker`].
    WorkerPaused {
        /// The worker.
        worker: WorkerId,
        /// `true`: paused; `false`: running again.
        paused: bool,
    },
    /// `worker` takes `max_tasks` tasks in all, those assigned so far included (a
    /// `slurm:per-task` job's worker takes 1): it is never assigned more (a task it
    /// gives back does not count), and is retired gracefully once they are done
    /// ([`crate::task_limit`]). Given before the worker's
    /// [`Event::WorkerAdded`], it applies from its start (no assignment beyond it).
    WorkerTaskLimit {
        /// The worker.
        worker: WorkerId,
        /// How many tasks it takes before it leaves.
        max_tasks: u32,
    },
    /// The client has the value of `task`'s result (it travelled inline with the
    /// task's `Done`): a retiring worker need not stay or hand it over for the
    /// client alone ([`crate::task_limit`]). Errors: [`SchedulerError::UnknownTask`].
    Delivered {
        /// The task.
        task: TaskId,
    },
}
