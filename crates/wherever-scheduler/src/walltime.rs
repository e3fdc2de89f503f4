//! Workers with a deadline (a batch job's walltime): the scheduler learns how long
//! each kind of task takes and keeps work off workers that would not finish it in
//! time, and retires a worker gracefully ([`crate::retirement`]) once it is within
//! a margin of its deadline.
//!
//! * Time comes in as a value ([`crate::Event::Tick`]); deadlines
//!   ([`crate::Event::WorkerDeadline`]) are on the same clock.
//! * A task's duration is measured from its assignment (or, when it was queued
//!   behind others on its worker, from that worker's previous finish) to its
//!   finish report; the mean per kind ([`crate::TaskSpec::kind`]) is kept.
//! * A task is placed on a worker with a deadline only if `now + mean <= deadline`;
//!   a kind without history (or kind 0) is assumed to fit. A task that fits on no
//!   worker with room waits, parked, for one that has time.
//! * A worker is retired once `deadline - now <= margin`: the configured
//!   [`crate::SchedulerConfig::walltime_margin_ms`], else twice the longest mean,
//!   at least [`MIN_MARGIN_MS`].

use std::collections::HashMap;

use crate::{Scheduler, SchedulerError, TaskId, WorkerId};

/// The least margin before a deadline at which a worker is retired, unless
/// configured otherwise.
pub const MIN_MARGIN_MS: u64 = 5_000;

/// The scheduler's clock and the durations learned per kind of task.
#[derive(Debug, Default)]
pub(crate) struct Walltime {
    /// The time now (ms), from the last tick.
    pub(crate) now_ms: u64,
    /// Per kind: how many durations were seen and their mean (ms).
    means: HashMap<u64, (u64, f64)>,
    /// The longest mean of any kind (ms).
    longest_mean_ms: f64,
    /// Whether any worker ever had a deadline (nothing to check otherwise).
    any_deadline: bool,
}

impl Walltime {
    /// The mean duration of `kind` (ms), if known.
    pub(crate) fn mean_ms(&self, kind: u64) -> Option<f64> {
        if kind == 0 {
            return None;
        }
        self.means.get(&kind).map(|&(_, mean)| mean)
    }

    /// Adds one duration of `kind`.
    fn learn(&mut self, kind: u64, duration_ms: u64) {
        if kind == 0 {
            return;
        }
        let (count, mean) = self.means.entry(kind).or_insert((0, 0.0));
        *count += 1;
        *mean += (duration_ms as f64 - *mean) / *count as f64;
        self.longest_mean_ms = self.longest_mean_ms.max(*mean);
    }
}

impl Scheduler {
    /// [`crate::Event::Tick`]: the clock moves on; workers near their deadline retire.
    pub(crate) fn tick(&mut self, now_ms: u64) {
        self.walltime.now_ms = self.walltime.now_ms.max(now_ms);
        self.retire_near_deadlines();
    }

    /// [`crate::Event::WorkerDeadline`].
    pub(crate) fn set_deadline(
        &mut self,
        worker: WorkerId,
        deadline_ms: u64,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        self.workers.get_mut(&worker).expect("worker").deadline_ms = Some(deadline_ms);
        self.walltime.any_deadline = true;
        self.unpark_pending |= !self.parked.is_empty();
        self.retire_near_deadlines();
        Ok(())
    }

    /// How long before its deadline a worker is retired (ms).
    pub(crate) fn walltime_margin_ms(&self) -> u64 {
        self.config.walltime_margin_ms.unwrap_or_else(|| {
            ((2.0 * self.walltime.longest_mean_ms).ceil() as u64).max(MIN_MARGIN_MS)
        })
    }

    /// Retires every worker within the margin of its deadline.
    fn retire_near_deadlines(&mut self) {
        if !self.walltime.any_deadline {
            return;
        }
        let limit = self.walltime.now_ms + self.walltime_margin_ms();
        let near: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_none() && w.deadline_ms.is_some_and(|d| d <= limit))
            .map(|(&id, _)| id)
            .collect();
        for worker in near {
            let _ = self.retire(worker);
        }
    }

    /// Whether `task` would finish on `worker` before its deadline (by its kind's
    /// mean duration; a kind without history is assumed to fit).
    pub(crate) fn fits_in_time(&self, task: TaskId, worker: WorkerId) -> bool {
        let Some(deadline) = self.workers[&worker].deadline_ms else {
            return true;
        };
        match self.walltime.mean_ms(self.tasks[&task].kind) {
            None => true,
            Some(mean) => self.walltime.now_ms as f64 + mean <= deadline as f64,
        }
    }

    /// The least loaded worker with room that would finish `task` in time and has
    /// the resources it asks for free.
    pub(crate) fn pick_worker_in_time(&self, task: TaskId) -> Option<WorkerId> {
        let request = self.tasks[&task].resources();
        self.with_room
            .iter()
            .map(|&(_, w)| w)
            .find(|&w| self.workers[&w].free.covers(request) && self.fits_in_time(task, w))
    }

    /// `worker` reports `task` finished: learn its duration if it was assigned there.
    pub(crate) fn learn_duration(&mut self, worker: WorkerId, task: TaskId) {
        let now = self.walltime.now_ms;
        let Some(t) = self.tasks.get(&task) else {
            return;
        };
        if t.status() != crate::task::Status::Processing(worker) {
            return;
        }
        let (kind, assigned, queued) = (
            t.kind,
            t.placed().assigned_at_ms,
            t.placed().assigned_queued,
        );
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        let started = if queued {
            assigned.max(w.last_finish_ms)
        } else {
            assigned
        };
        w.last_finish_ms = now;
        self.walltime.learn(kind, now.saturating_sub(started));
    }
}
