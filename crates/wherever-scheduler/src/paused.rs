//! Paused workers: a worker over its memory pause threshold gets nothing new.

use crate::{Scheduler, SchedulerError, WorkerId};

impl Scheduler {
    /// [`crate::Event::WorkerPaused`].
    pub(crate) fn set_paused(
        &mut self,
        worker: WorkerId,
        paused: bool,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        if self.workers[&worker].paused == paused {
            return Ok(());
        }
        self.unindex(worker);
        self.workers.get_mut(&worker).expect("worker").paused = paused;
        self.index(worker);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{add_worker, computes, ev, finish, sched, submit};
    use crate::{Command, Event, SchedulerError, TaskSpec};

    #[test]
    fn a_paused_worker_gets_no_new_task_until_it_resumes() {
        let mut s = sched();
        add_worker(&mut s, 1, 1);
        add_worker(&mut s, 2, 1);
        ev(
            &mut s,
            Event::WorkerPaused {
                worker: 1,
                paused: true,
            },
        );
        let out = submit(&mut s, (0..6).map(TaskSpec::new).collect());
        assert!(computes(&out).iter().all(|&(w, _)| w == 2), "{out:?}");
        assert!(s.workers().iter().any(|w| w.id == 1 && w.paused));
        // Resuming gives it work at once.
        let out = ev(
            &mut s,
            Event::WorkerPaused {
                worker: 1,
                paused: false,
            },
        );
        assert!(!computes(&out).is_empty(), "{out:?}");
        assert!(computes(&out).iter().all(|&(w, _)| w == 1), "{out:?}");
    }

    #[test]
    fn work_queued_on_a_paused_worker_is_stolen_by_an_idle_one_and_nothing_is_stolen_for_it() {
        let mut s = sched();
        add_worker(&mut s, 1, 1);
        let out = submit(&mut s, (0..2).map(TaskSpec::new).collect());
        assert_eq!(computes(&out).len(), 2); // one running, one queued
        ev(
            &mut s,
            Event::WorkerPaused {
                worker: 1,
                paused: true,
            },
        );
        let out = add_worker(&mut s, 2, 1);
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Steal { worker: 1, .. })),
            "{out:?}"
        );
        // A paused worker with its slot free steals nothing from a busy one.
        let mut s = sched();
        add_worker(&mut s, 1, 1);
        add_worker(&mut s, 2, 1);
        ev(
            &mut s,
            Event::WorkerPaused {
                worker: 1,
                paused: true,
            },
        );
        let out = submit(&mut s, (0..4).map(TaskSpec::new).collect());
        assert!(
            !out.iter().any(|c| matches!(c, Command::Steal { .. })),
            "{out:?}"
        );
        let running = computes(&out)[0].1;
        let out = finish(&mut s, 2, running, 8);
        assert!(computes(&out).iter().all(|&(w, _)| w == 2), "{out:?}");
    }

    #[test]
    fn pausing_an_unknown_worker_is_an_error_and_pausing_twice_a_no_op() {
        let mut s = sched();
        let mut out = Vec::new();
        assert_eq!(
            s.handle(
                Event::WorkerPaused {
                    worker: 9,
                    paused: true
                },
                &mut out
            ),
            Err(SchedulerError::UnknownWorker(9))
        );
        add_worker(&mut s, 1, 1);
        for _ in 0..2 {
            ev(
                &mut s,
                Event::WorkerPaused {
                    worker: 1,
                    paused: true,
                },
            );
        }
        assert!(s.workers()[0].paused);
    }
}
