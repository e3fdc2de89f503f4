//! [`crate::Event::MissingData`]: a result could not be fetched from the workers said to
//! hold it.

use crate::task::{Failure, Status};
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

/// How many times the inputs of one task, or the result of one task fetched by clients,
/// may be reported missing ([`crate::Event::MissingData`]) before the scheduler stops
/// recomputing and resending: the dependent then fails with [`Command::Erred`] (the input
/// as its cause), the result ends [`Command::Lost`].
pub const MISSING_DATA_LIMIT: u32 = 5;

impl Scheduler {
    /// [`crate::Event::MissingData`].
    pub(crate) fn missing_data(
        &mut self,
        task: TaskId,
        holders: Vec<WorkerId>,
        requester: Option<(WorkerId, TaskId)>,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        let Some(t) = self.tasks.get(&task) else {
            // A client holds a future for what it reports: an unknown task is a bad event.
            // A worker's report may be late: its dependent moved and the input was forgotten.
            return match requester {
                None => Err(SchedulerError::UnknownTask(task)),
                Some(_) => Ok(()),
            };
        };
        let from_client = requester.is_none();
        // A worker's report counts only if the dependent is still assigned to it.
        let requester = requester.filter(|&(worker, dependent)| {
            t.dependents.contains(&dependent)
                && self.tasks[&dependent].status() == Status::Processing(worker)
        });
        let mut lost_holder = false;
        for worker in holders {
            if self.forget_holder(task, worker) {
                self.free(worker, task, out);
                lost_holder = true;
            }
        }
        if lost_holder {
            self.after_holder_lost(task, out);
        }
        if let Some((worker, dependent)) = requester {
            self.take_back_requester(worker, dependent, task, out);
        } else if from_client {
            self.client_waits_again(task, out);
        }
        Ok(())
    }

    /// `dependent`, assigned to `worker`, could not fetch its input `input`: take it back
    /// and send it again once its inputs are in memory, or fail it past the limit.
    fn take_back_requester(
        &mut self,
        worker: WorkerId,
        dependent: TaskId,
        input: TaskId,
        out: &mut Vec<Command>,
    ) {
        if self.tasks[&dependent].status() == Status::Processing(worker) {
            self.dequeue(dependent, None, out);
            let missing = self.tasks[&dependent]
                .deps
                .iter()
                .filter(|d| self.tasks[*d].status() != Status::Memory)
                .count() as u32;
            if missing == 0 {
                self.make_ready(dependent, false);
            } else {
                let t = self.tasks.get_mut(&dependent).expect("dependent");
                t.set_status(Status::Waiting);
                t.missing_deps = missing;
            }
        }
        let t = self.tasks.get_mut(&dependent).expect("dependent");
        let rare = t.rare_mut();
        rare.missing_input_reports += 1;
        if rare.missing_input_reports > MISSING_DATA_LIMIT && t.status().active() {
            self.fail(dependent, Failure::Erred(input), None, out);
        }
    }

    /// A client could not fetch the result of `task`: it is told again how `task` ends
    /// (at once if it is in memory elsewhere or ended); past the limit, the result is lost.
    fn client_waits_again(&mut self, task: TaskId, out: &mut Vec<Command>) {
        let t = self.tasks.get_mut(&task).expect("task");
        if !t.wanted {
            return; // late: the client released it meanwhile
        }
        let rare = t.rare_mut();
        rare.client_waits = true;
        rare.client_missing_reports += 1;
        if rare.client_missing_reports > MISSING_DATA_LIMIT && !t.status().failed() {
            for worker in t.placed().who_has.clone() {
                self.forget_holder(task, worker);
                self.free(worker, task, out);
            }
            self.fail(task, Failure::Lost, None, out);
        }
        let status = self.tasks[&task].status();
        if status == Status::Memory || status.failed() {
            self.report_end(task, out);
        }
    }
}

#[cfg(test)]
#[path = "missing_data_tests.rs"]
mod tests;
