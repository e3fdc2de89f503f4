//! What the scheduler reports about itself: [`TaskState`], [`WorkerInfo`], and its knobs, [`SchedulerConfig`].

#[allow(unused_imports)] // named in doc links
use crate::{Event, Scheduler};
use crate::{Resources, WorkerId};

/// The state of a task as seen by [`Scheduler::state`] (a forgotten task has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Some dependency is not in memory yet.
    Waiting,
    /// All dependencies are in memory; waiting for a worker with room.
    Ready,
    /// Assigned to a worker.
    Processing,
    /// The result is held by at least one worker.
    Memory,
    /// The task or a dependency failed.
    Erred,
    /// The retry budget is exhausted (or scattered data lost all its holders).
    Lost,
    /// The task or a dependency was cancelled.
    Cancelled,
    /// The result was dropped; the spec is kept because it may be needed for recomputation.
    Released,
}

/// Tuning knobs of the scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How many tasks a worker may have queued beyond its slots; `None` means as many as it
    /// has slots (so a worker holds at most `2 * slots` assigned tasks).
    pub prefetch_per_worker: Option<u32>,
    /// How long before its deadline a worker is retired (ms); `None`: twice the
    /// longest mean task duration, at least [`crate::walltime::MIN_MARGIN_MS`].
    pub walltime_margin_ms: Option<u64>,
}

/// What [`Scheduler::workers`] reports about one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: WorkerId,
    /// Its task slots.
    pub slots: u32,
    /// Tasks assigned to it (running or queued), seceded ones included.
    pub processing: usize,
    /// Of those, the seceded tasks ([`Event::Secede`]): running but not occupying a slot.
    pub seceded: usize,
    /// Results it holds.
    pub held: usize,
    /// Total size of the results it holds.
    pub held_bytes: u64,
    /// The resources it advertised.
    pub resources: Resources,
    /// Of those, the amounts not held by tasks assigned to it.
    pub free: Resources,
    /// Whether it is being retired ([`Event::Retire`]): it gets no new tasks.
    pub retiring: bool,
}
