//! Workers that take a limited number of tasks before they leave (a
//! `slurm:per-task` job's worker takes one: R batchtools' model), and results the
//! client already has.
//!
//! * [`crate::Event::WorkerTaskLimit`] says how many tasks a worker takes in all.
//!   The scheduler never assigns it more: each assignment uses one, a task it gives
//!   back when asked ([`crate::Event::StealResponse`] with `stolen`) gives it back.
//! * Once it has used them all and nothing is assigned to it any more, it is
//!   retired gracefully ([`crate::retirement`]).
//! * [`crate::Event::Delivered`]: the client has the value of a task's result
//!   (it travelled inline with its `Done`). A retiring worker is not kept, and no
//!   copy is made, for such a result that no unfinished dependent needs, when the
//!   worker has a task limit or no other worker could take a copy: the client has
//!   the value, and should a later task need it, it is recomputed from its lineage.
//!   A wanted result the client has not had keeps a retiring worker with nobody to
//!   copy to until the client releases it.

use crate::{Scheduler, SchedulerError, TaskId, WorkerId};

impl Scheduler {
    /// [`crate::Event::WorkerTaskLimit`]: `worker` takes `max_tasks` tasks in all
    /// (those already assigned to it count). Given before the worker is added, it
    /// applies from its [`crate::Event::WorkerAdded`] on.
    pub(crate) fn set_task_limit(
        &mut self,
        worker: WorkerId,
        max_tasks: u32,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            self.limits_before_joining.insert(worker, max_tasks);
            return Ok(());
        }
        self.unindex(worker);
        let w = self.workers.get_mut(&worker).expect("worker");
        let assigned = w.processing.len() as u32;
        w.tasks_left = Some(max_tasks.saturating_sub(assigned));
        self.index(worker);
        self.spent_candidates.insert(worker);
        Ok(())
    }

    /// The limit given for `worker` before it was added, if any.
    pub(crate) fn take_limit_before_joining(&mut self, worker: WorkerId) -> Option<u32> {
        if self.limits_before_joining.is_empty() {
            return None;
        }
        self.limits_before_joining.remove(&worker)
    }

    /// An assignment to `worker` uses one of its tasks (call between `unindex`
    /// and `index`).
    pub(crate) fn use_task_of(&mut self, worker: WorkerId) {
        let w = self.workers.get_mut(&worker).expect("worker");
        if let Some(left) = w.tasks_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.spent_candidates.insert(worker);
            }
        }
    }

    /// A task given back by `worker` does not count against its limit.
    pub(crate) fn give_task_back_to(&mut self, worker: WorkerId) {
        self.unindex(worker);
        let w = self.workers.get_mut(&worker).expect("worker");
        if let Some(left) = w.tasks_left.as_mut() {
            *left += 1;
        }
        self.index(worker);
    }

    /// Retires the workers that have used all their tasks and have nothing
    /// assigned any more. Costs `O(workers with a spent limit still running)`.
    pub(crate) fn retire_spent_workers(&mut self) {
        if self.spent_candidates.is_empty() {
            return;
        }
        let candidates: Vec<WorkerId> = self.spent_candidates.iter().copied().collect();
        for worker in candidates {
            let Some(w) = self.workers.get(&worker) else {
                self.spent_candidates.remove(&worker);
                continue;
            };
            if w.retiring.is_some() || w.tasks_left != Some(0) {
                self.spent_candidates.remove(&worker);
                continue;
            }
            if w.processing.is_empty() {
                self.spent_candidates.remove(&worker);
                let _ = self.retire(worker);
            }
        }
    }

    /// [`crate::Event::Delivered`]: the client has the value of `task`'s result.
    pub(crate) fn delivered(&mut self, task: TaskId) -> Result<(), SchedulerError> {
        if !self.tasks.contains_key(&task) {
            return Err(SchedulerError::UnknownTask(task));
        }
        self.delivered.insert(task);
        Ok(())
    }

    /// Whether retiring `worker` may leave without `task`'s result (which only it
    /// holds) being copied: see the [module documentation](self).
    pub(crate) fn client_has_it(&self, task: TaskId, worker: WorkerId, has_target: bool) -> bool {
        let t = &self.tasks[&task];
        t.active_dependents == 0
            && !t.placed().scattered
            && self.delivered.contains(&task)
            && (!has_target || self.workers[&worker].tasks_left.is_some())
    }

    /// How many more tasks `worker` takes (`None`: no limit, or unknown worker).
    pub fn tasks_left(&self, worker: WorkerId) -> Option<u32> {
        self.workers.get(&worker).and_then(|w| w.tasks_left)
    }
}
