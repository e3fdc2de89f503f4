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
        bump(&mut self.placed_mut().reports_due, worker);
    }
}

impl Scheduler {
    /// Tells `worker` it may drop its copy of the result of `task` ([`Command::Free`]):
    /// the reports of holding it still due from that worker are stale from now on.
    pub(crate) fn free(&mut self, worker: WorkerId, task: TaskId, out: &mut Vec<Command>) {
        out.push(Command::Free { worker, task });
        if let Some(t) = self.tasks.get_mut(&task) {
            if let Some(i) = t
                .placed()
                .reports_due
                .iter()
                .position(|(w, _)| *w == worker)
            {
                let (_, due) = t.placed_mut().reports_due.swap_remove(i);
                add(&mut t.rare_mut().stale_reports, worker, due);
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
        let stale = t
            .rare_if_made_mut()
            .is_some_and(|rare| take_one(&mut rare.stale_reports, worker));
        if !stale {
            take_one(&mut t.placed_mut().reports_due, worker);
            return false;
        }
        if t.status() == Status::Processing(worker) {
            t.expect_report(worker);
            let compute = self.compute_command(task, worker);
            out.push(compute);
        } else {
            // Reports still due from `worker` may have been sent before this `Free` too.
            self.free(worker, task, out);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{add_worker, finish, sched, submit};
    use crate::{Command, TaskSpec, TaskState};

    /// The fifth failure the property test found (regression seed `edb6ab6a`, found with
    /// `PROPTEST_CASES=20000`): a stale report answered with `Free` (the task not assigned
    /// there) left the reports still due from that worker counted as fresh, though they too
    /// were sent before the worker got that `Free`; the next one was taken as the result.
    #[test]
    fn a_stale_report_answered_with_free_makes_the_reports_still_due_stale() {
        let mut s = sched();
        add_worker(&mut s, 1, 1);
        // 2 waits for 1, which runs on worker 1.
        submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2).deps([1])]);
        // Worker 1 was told to free 2 with one report of it still on its way, and was sent
        // a compute of 2 since, which was taken back before it answered.
        let t = s.tasks.get_mut(&2).expect("task");
        t.rare_mut().stale_reports = [(1, 1)].into_iter().collect();
        t.placed_mut().reports_due = [(1, 1)].into_iter().collect();
        let free = vec![Command::Free { worker: 1, task: 2 }];
        assert_eq!(finish(&mut s, 1, 2, 1), free);
        // The answer to that compute was sent before worker 1 got this second `Free`.
        assert_eq!(finish(&mut s, 1, 2, 1), free);
        assert_eq!(s.state(2), Some(TaskState::Waiting));
    }
}
