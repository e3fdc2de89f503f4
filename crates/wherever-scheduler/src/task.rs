//! A task's record inside the scheduler: its status, reference counts and holders.

use std::cmp::Reverse;

use smallvec::SmallVec;

use crate::id_hash::IdSet;
use crate::per_worker::PerWorker;
use crate::{Resources, TaskId, TaskState, WorkerId};

/// Where a task is in its life (the public [`TaskState`] plus the worker it runs on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Some dependency is not in memory.
    Waiting,
    /// All dependencies are in memory; queued in the ready set.
    Ready,
    /// Assigned to this worker.
    Processing(WorkerId),
    /// The result is held by at least one worker.
    Memory,
    /// The result was dropped (or never computed); the spec is kept for lineage.
    Released,
    /// The task or a dependency failed.
    Erred,
    /// The retry budget is exhausted, or scattered data lost all its holders.
    Lost,
    /// The task or a dependency was cancelled.
    Cancelled,
}

impl Status {
    /// Waiting, ready or processing: it still has to run.
    pub(crate) fn active(self) -> bool {
        matches!(
            self,
            Status::Waiting | Status::Ready | Status::Processing(_)
        )
    }

    /// Ended without a result: erred, lost or cancelled.
    pub(crate) fn failed(self) -> bool {
        matches!(self, Status::Erred | Status::Lost | Status::Cancelled)
    }

    /// The state as reported by [`crate::Scheduler::state`].
    pub(crate) fn public(self) -> TaskState {
        match self {
            Status::Waiting => TaskState::Waiting,
            Status::Ready => TaskState::Ready,
            Status::Processing(_) => TaskState::Processing,
            Status::Memory => TaskState::Memory,
            Status::Released => TaskState::Released,
            Status::Erred => TaskState::Erred,
            Status::Lost => TaskState::Lost,
            Status::Cancelled => TaskState::Cancelled,
        }
    }
}

/// Whether the scheduler asked the worker running a task to give it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StealFlag {
    /// Not asked.
    None,
    /// [`crate::Command::Steal`] sent, no answer yet.
    Pending,
    /// The worker had started it (or it is known to run): never ask again.
    Refused,
}

/// How a task ends without a result.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure {
    /// The user function of this task failed.
    Erred(TaskId),
    /// The retry budget is exhausted, or scattered data has no holder left.
    Lost,
    /// Cancelled by the client.
    Cancelled,
}

/// Order of the ready set, best first: (user priority, tier: 0 = unlocked by a finished
/// dependency or re-run, 1 = fresh; order within the tier, task id).
pub(crate) type ReadyKey = (Reverse<i64>, u8, u64, TaskId);

/// The workers holding a result: one is kept inline (the usual case).
pub(crate) type Holders = SmallVec<[WorkerId; 1]>;

/// The scheduler's record of one task.
#[derive(Debug)]
pub(crate) struct Task {
    /// Dependencies, without duplicates, in the spec's order.
    pub(crate) deps: Vec<TaskId>,
    /// Tasks that depend on this one and are not forgotten.
    pub(crate) dependents: IdSet,
    /// User priority; higher runs first.
    pub(crate) priority: i64,
    /// How many worker deaths while running it are retried.
    pub(crate) retries: u32,
    /// What it holds on its worker while assigned there (usually nothing).
    pub(crate) resources: Resources,
    /// Its kind (0: unknown), for learning durations.
    pub(crate) kind: u64,
    /// The scheduler's clock when it was last assigned (ms).
    pub(crate) assigned_at_ms: u64,
    /// Whether its worker's slots were all taken when it was last assigned there.
    pub(crate) assigned_queued: bool,
    /// The client holds a future for it.
    pub(crate) wanted: bool,
    /// The client-view terminal state was reached (first finish, or failure).
    pub(crate) ended: bool,
    /// Data put on workers by the client: no lineage to recompute it from.
    pub(crate) scattered: bool,
    /// Where it is in its life.
    pub(crate) status: Status,
    /// For waiting tasks: dependencies not in memory.
    pub(crate) missing_deps: u32,
    /// Dependents that are waiting, ready or processing.
    pub(crate) active_dependents: u32,
    /// Workers holding the result (in memory only); one holder is kept inline.
    pub(crate) who_has: Holders,
    /// Sequence number at which each holder was added (parallel to `who_has`).
    pub(crate) holder_since: SmallVec<[u64; 1]>,
    /// Size of the result.
    pub(crate) nbytes: u64,
    /// How many times a worker died while running it.
    pub(crate) attempts: u32,
    /// For an erred task, the task whose failure caused it.
    pub(crate) cause: TaskId,
    /// Its key in the ready set while ready.
    pub(crate) ready_key: Option<ReadyKey>,
    /// Sequence number of its current assignment (its key in the worker's `processing`).
    pub(crate) assign_seq: u64,
    /// Whether it was asked back from its worker.
    pub(crate) steal: StealFlag,
    /// A worker not to assign it to next (the one it was just stolen from).
    pub(crate) avoid: Option<WorkerId>,
    /// Processing and seceded: running, but not occupying a slot of its worker.
    pub(crate) seceded: bool,
    /// A client reported the result missing and waits to be told again how it ends.
    pub(crate) client_waits: bool,
    /// How many times clients reported the result missing.
    pub(crate) client_missing_reports: u32,
    /// How many times its worker reported one of its inputs missing.
    pub(crate) missing_input_reports: u32,
    /// Per worker, how many reports of holding the result it may still send: one per
    /// compute of this task, or of a dependent that fetches it, sent there; less those
    /// received (see [`crate::stale_reports`]).
    pub(crate) reports_due: PerWorker,
    /// Per worker told to free the result: how many of its next reports of holding it may
    /// have been sent before it dropped its copy.
    pub(crate) stale_reports: PerWorker,
    /// Per worker, how many steal requests for this task it has still to answer that were
    /// forgotten while pending (the task was taken back or seceded): its next that many
    /// answers about this task are stale.
    pub(crate) stale_steal_answers: PerWorker,
}

impl Task {
    /// A released task (not yet activated) with these dependencies and settings.
    pub(crate) fn new(
        id: TaskId,
        deps: Vec<TaskId>,
        priority: i64,
        retries: u32,
        wanted: bool,
    ) -> Self {
        Task {
            deps,
            dependents: IdSet::default(),
            priority,
            retries,
            resources: Resources::new(),
            kind: 0,
            assigned_at_ms: 0,
            assigned_queued: false,
            wanted,
            ended: false,
            scattered: false,
            status: Status::Released,
            missing_deps: 0,
            active_dependents: 0,
            who_has: Holders::new(),
            holder_since: SmallVec::new(),
            nbytes: 0,
            attempts: 0,
            cause: id,
            ready_key: None,
            assign_seq: 0,
            steal: StealFlag::None,
            avoid: None,
            seceded: false,
            client_waits: false,
            client_missing_reports: 0,
            missing_input_reports: 0,
            reports_due: PerWorker::new(),
            stale_reports: PerWorker::new(),
            stale_steal_answers: PerWorker::new(),
        }
    }
}
