//! What workers report about results: finished, erred, replicated; adding a holder.

use crate::task::{Failure, Status};
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

impl Scheduler {
    /// [`crate::Event::TaskFinished`].
    pub(crate) fn task_finished(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        nbytes: u64,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        match self.tasks.get(&task).map(|t| t.status) {
            Some(Status::Memory) => self.add_holder(task, worker),
            Some(s) if s.active() => {
                self.tasks.get_mut(&task).expect("task").nbytes = nbytes;
                self.make_memory(task, worker, out);
            }
            // Forgotten, released or ended meanwhile: the worker may drop it.
            _ => out.push(Command::Free { worker, task }),
        }
        Ok(())
    }

    /// [`crate::Event::TaskErred`].
    pub(crate) fn task_erred(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        if self.tasks.get(&task).is_some_and(|t| t.status.active()) {
            self.fail(task, Failure::Erred(task), Some(worker), out);
        }
        Ok(())
    }

    /// [`crate::Event::Replicated`].
    pub(crate) fn replicated(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        match self.tasks.get(&task).map(|t| t.status) {
            Some(Status::Memory) => self.add_holder(task, worker),
            // A copy of a result being recomputed: take it as the result.
            Some(s) if s.active() => self.make_memory(task, worker, out),
            _ => out.push(Command::Free { worker, task }),
        }
        Ok(())
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
