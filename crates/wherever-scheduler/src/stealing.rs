//! Work stealing: idle slots ask busy workers for queued-but-not-started tasks back.

use crate::per_worker::take_one;
use crate::task::{Status, StealFlag};
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

impl Scheduler {
    /// With nothing ready and idle slots somewhere, ask busy workers for queued tasks back.
    pub(crate) fn balance(&mut self, out: &mut Vec<Command>) {
        if !self.ready.is_empty() {
            return;
        }
        while self.steals_in_flight < self.idle_slots {
            let Some(&(_, victim)) = self.victims.first() else {
                break;
            };
            let w = &self.workers[&victim];
            let task = w.processing.values().rev().copied().find(|&id| {
                let t = &self.tasks[&id];
                t.placed().steal == StealFlag::None
                    && !t.placed().seceded
                    && (t.resources().is_empty() || self.another_worker_fits(id, victim))
            });
            let Some(task) = task else {
                break;
            };
            self.unindex(victim);
            self.tasks.get_mut(&task).expect("task").placed_mut().steal = StealFlag::Pending;
            self.workers.get_mut(&victim).expect("worker").steal_pending += 1;
            self.steals_in_flight += 1;
            self.index(victim);
            out.push(Command::Steal {
                worker: victim,
                task,
            });
        }
    }

    /// [`crate::Event::StealResponse`].
    pub(crate) fn steal_response(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        stolen: bool,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        let Some(t) = self.tasks.get_mut(&task) else {
            return Ok(());
        };
        // Answers carry no assignment number, but a worker answers in order: while requests
        // forgotten unanswered are still to be answered, this answers one of them.
        let stale = t
            .rare_if_made_mut()
            .is_some_and(|rare| take_one(&mut rare.stale_steal_answers, worker));
        if stale {
            return Ok(());
        }
        if t.status() != Status::Processing(worker) || t.placed().steal != StealFlag::Pending {
            return Ok(()); // late: the task finished or moved meanwhile
        }
        // The request is answered.
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("task");
        let w = self.workers.get_mut(&worker).expect("worker");
        w.steal_pending -= 1;
        self.steals_in_flight -= 1;
        t.placed_mut().steal = StealFlag::None;
        if !stolen {
            t.placed_mut().steal = StealFlag::Refused;
            w.steal_refused += 1;
        }
        self.index(worker);
        if stolen {
            self.remove_processing(worker, task);
            self.give_task_back_to(worker);
            self.tasks.get_mut(&task).expect("task").rare_mut().avoid = Some(worker);
            self.make_ready(task, false);
        }
        Ok(())
    }
}
