//! What workers report about results: finished, erred, replicated; adding a holder.

use crate::task::{Failure, Status};
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

impl Scheduler {
    /// [`crate::Event::TaskErred`].
    pub(crate) fn task_erred(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        if self.tasks.get(&task).is_some_and(|t| t.status().active()) {
            self.fail(task, Failure::Erred(task), Some(worker), out);
        }
        Ok(())
    }

    /// [`crate::Event::TaskFinished`] (`nbytes` known) and [`crate::Event::Replicated`]:
    /// `worker` holds the result of `task`, computed there or copied: one
    /// more holder of a result in memory; the result of a task still to run (a copy of a
    /// result being recomputed is as good); or nothing anyone needs (forgotten, released or
    /// ended meanwhile), which the worker may drop. A report that may have been sent before
    /// the worker dropped the result on `Free` is no news ([`crate::stale_reports`]).
    pub(crate) fn holds_result(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        nbytes: Option<u64>,
        out: &mut Vec<Command>,
    ) {
        if !self.tasks.contains_key(&task) {
            out.push(Command::Free { worker, task });
            return;
        }
        if self.stale_report(worker, task, out) {
            return;
        }
        if let Some(nbytes) = nbytes {
            let kind = self.tasks[&task].kind;
            self.result_sizes.learn(kind, nbytes);
        }
        let t = &self.tasks[&task];
        match t.status() {
            Status::Memory => self.add_holder(task, worker),
            s if s.active() => {
                if let Some(nbytes) = nbytes {
                    self.tasks.get_mut(&task).expect("task").placed_mut().nbytes = nbytes;
                }
                self.make_memory(task, worker, out);
            }
            _ => self.free(worker, task, out),
        }
    }

    /// `worker` now holds the result of `task` (a no-op if it already did).
    pub(crate) fn add_holder(&mut self, task: TaskId, worker: WorkerId) {
        let seq = self.next_seq();
        let t = self.tasks.get_mut(&task).expect("task");
        if t.placed().who_has.contains(&worker) {
            return;
        }
        t.placed_mut().who_has.push(worker);
        t.placed_mut().holder_since.push(seq);
        let w = self.workers.get_mut(&worker).expect("worker");
        w.held.insert(task);
        w.held_bytes += t.placed().nbytes;
    }
}
