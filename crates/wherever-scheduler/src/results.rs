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
        if self.tasks.get(&task).is_some_and(|t| t.status.active()) {
            self.fail(task, Failure::Erred(task), Some(worker), out);
        }
        Ok(())
    }

    /// [`crate::Event::TaskFinished`] (`nbytes` known) and [`crate::Event::Replicated`]:
    /// `worker` holds the result of `task`, computed there or copied: one
    /// more holder of a result in memory; the result of a task still to run (a copy of a
    /// result being recomputed is as good); or nothing anyone needs (forgotten, released or
    /// ended meanwhile), which the worker may drop. A report from a worker told to free the
    /// result and given nothing since that needs it is stale: it only gets `Free` again.
    pub(crate) fn holds_result(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        nbytes: Option<u64>,
        out: &mut Vec<Command>,
    ) {
        let Some(t) = self.tasks.get(&task) else {
            out.push(Command::Free { worker, task });
            return;
        };
        if t.freed_on.contains(&worker) {
            // Sent before the worker dropped its copy on our `Free`: no news. Free again in
            // case the worker fetched a copy since, for a dependent it was given before.
            out.push(Command::Free { worker, task });
            return;
        }
        match t.status {
            Status::Memory => self.add_holder(task, worker),
            s if s.active() => {
                if let Some(nbytes) = nbytes {
                    self.tasks.get_mut(&task).expect("task").nbytes = nbytes;
                }
                self.make_memory(task, worker, out);
            }
            _ => self.free(worker, task, out),
        }
    }

    /// Tells `worker` it may drop its copy of the result of `task` ([`Command::Free`]), and
    /// remembers that its reports of holding it are stale until it is given something
    /// that makes it hold the result again.
    pub(crate) fn free(&mut self, worker: WorkerId, task: TaskId, out: &mut Vec<Command>) {
        out.push(Command::Free { worker, task });
        if let Some(t) = self.tasks.get_mut(&task) {
            if !t.freed_on.contains(&worker) {
                t.freed_on.push(worker);
            }
        }
    }

    /// `worker` now holds the result of `task` (a no-op if it already did).
    pub(crate) fn add_holder(&mut self, task: TaskId, worker: WorkerId) {
        let seq = self.next_seq();
        let t = self.tasks.get_mut(&task).expect("task");
        if t.who_has.contains(&worker) {
            return;
        }
        t.who_has.push(worker);
        t.holder_since.push(seq);
        let w = self.workers.get_mut(&worker).expect("worker");
        w.held.insert(task);
        w.held_bytes += t.nbytes;
    }
}
