//! Telling stale reports of held results from fresh ones.
//!
//! Reports carry no assignment number, so a worker's report that it holds a result
//! ([`crate::Event::TaskFinished`], [`crate::Event::Replicated`]) may have been sent before it
//! dropped that result on [`Command::Free`]. Messages between the scheduler and one worker
//! keep their order, so such stale reports arrive before any the worker sends after the
//! `Free`. The scheduler counts, per task and worker, the reports still due (one per compute
//! that makes the worker compute or fetch the result, less those received); on `Free`, the
//! reports due become the stale ones to expect, and the next that many reports are not taken
//! as news: the worker is asked again (the task is assigned there) or told to free it.

use crate::per_worker::{add, bump, take_one};
use crate::task::{Status, Task};
use crate::{Command, Scheduler, TaskId, WorkerId};

impl Task {
    /// A compute sent to `worker` may make it report holding this result once more.
    pub(crate) fn expect_report(&mut self, worker: WorkerId) {
        bump(&mut self.reports_due, worker);
    }
}

impl Scheduler {
    /// Tells `worker` it may drop its copy of the result of `task` ([`Command::Free`]):
    /// the reports of holding it still due from that worker are stale from now on.
    pub(crate) fn free(&mut self, worker: WorkerId, task: TaskId, out: &mut Vec<Command>) {
        out.push(Command::Free { worker, task });
        if let Some(t) = self.tasks.get_mut(&task) {
            if let Some(i) = t.reports_due.iter().position(|(w, _)| *w == worker) {
                let (_, due) = t.reports_due.swap_remove(i);
                add(&mut t.stale_reports, worker, due);
            }
        }
    }

    /// A report from `worker` that it holds the result of `task` (known) arrived: `true`
    /// if it may be stale, and then it is answered (a compute again if `task` is assigned
    /// to `worker`, which reports again if it does hold the result; `Free` otherwise).
    pub(crate) fn stale_report(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> bool {
        let t = self.tasks.get_mut(&task).expect("task");
        if !take_one(&mut t.stale_reports, worker) {
            take_one(&mut t.reports_due, worker);
            return false;
        }
        if t.status == Status::Processing(worker) {
            t.expect_report(worker);
            let compute = self.compute_command(task, worker);
            out.push(compute);
        } else {
            out.push(Command::Free { worker, task });
        }
        true
    }
}
