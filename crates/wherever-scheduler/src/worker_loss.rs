//! Losing results: a worker removed, a holder lost, dependents pulled back.

use crate::task::{Failure, Status};
use crate::worker::clear_steal;
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

impl Scheduler {
    /// [`crate::Event::WorkerRemoved`]: its assignments are retried (or lost), its results
    /// recomputed where still needed.
    pub(crate) fn worker_removed(
        &mut self,
        worker: WorkerId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        self.unindex(worker);
        self.retiring.remove(&worker);
        let mut w = self.workers.remove(&worker).expect("worker");
        let processing: Vec<TaskId> = w.processing.values().copied().collect();
        for task in processing {
            let t = self.tasks.get_mut(&task).expect("processing task");
            clear_steal(t, &mut w, worker, &mut self.steals_in_flight);
            t.placed_mut().seceded = false;
            t.placed_mut().attempts += 1;
            if t.placed().attempts > t.retries {
                self.fail(task, Failure::Lost, None, out);
            } else {
                self.make_ready(task, false);
            }
        }
        let mut held: Vec<TaskId> = w.held.into_iter().collect();
        held.sort_unstable();
        for task in held {
            self.lose_holder(task, worker, out);
        }
        Ok(())
    }

    /// `worker` (already removed) no longer holds the result of `task`.
    pub(crate) fn lose_holder(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        self.forget_holder(task, worker);
        self.after_holder_lost(task, out);
    }

    /// Stops counting `worker` as a holder of `task` (in memory); `false` if it was not one.
    /// A removed worker's own bookkeeping is gone already.
    pub(crate) fn forget_holder(&mut self, task: TaskId, worker: WorkerId) -> bool {
        let t = self.tasks.get_mut(&task).expect("task");
        let Some(i) = t.placed().who_has.iter().position(|&w| w == worker) else {
            return false;
        };
        t.placed_mut().who_has.remove(i);
        t.placed_mut().holder_since.remove(i);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.held.remove(&task);
            w.held_bytes -= t.placed().nbytes;
        }
        true
    }

    /// `task` (in memory) just lost a holder: dependents that may have been told to fetch it
    /// only from lost holders are sent again; with no holder left, the result is recomputed
    /// from its lineage if still needed (scattered data is lost).
    pub(crate) fn after_holder_lost(&mut self, task: TaskId, out: &mut Vec<Command>) {
        let t = self.tasks.get_mut(&task).expect("task");
        let mut dependents: Vec<TaskId> = t.dependents.iter().copied().collect();
        dependents.sort_unstable();
        if !t.placed().who_has.is_empty() {
            // Dependents sent to compute before any remaining holder had the data cannot
            // fetch it: pull them back and send them again with fresh locations.
            let seqs = t.placed().holder_since.clone();
            for d in dependents {
                let dt = &self.tasks[&d];
                if let Status::Processing(_) = dt.status() {
                    if !seqs.iter().any(|&s| s < dt.placed().assign_seq) {
                        self.dequeue(d, None, out);
                        self.make_ready(d, false);
                    }
                }
            }
            return;
        }
        if t.placed().scattered {
            self.fail(task, Failure::Lost, None, out);
            return;
        }
        // The client has the value of a delivered result: only dependents need it.
        let needed = (t.wanted && !self.delivered.contains(&task)) || t.active_dependents > 0;
        t.set_status(Status::Released);
        for d in dependents {
            let state = self.tasks[&d].status();
            match state {
                Status::Waiting => self.tasks.get_mut(&d).expect("task").missing_deps += 1,
                Status::Ready | Status::Processing(_) => {
                    self.dequeue(d, None, out);
                    let dt = self.tasks.get_mut(&d).expect("task");
                    dt.set_status(Status::Waiting);
                    dt.missing_deps = 1;
                }
                _ => {}
            }
        }
        if needed {
            self.activate(task, false, out);
        } else {
            self.release_candidates.push(task);
        }
    }
}
