//! Graceful retirement of a worker ([`crate::Event::Retire`]), as Dask's
//! `retire_workers`:
//!
//! 1. the worker is marked **retiring**: it gets no new tasks (it has no room and is
//!    no steal victim or thief);
//! 2. its queued-not-started tasks are asked back ([`Command::Steal`]) and go to other
//!    workers; those it had started run to their end;
//! 3. once nothing is assigned to it, each result it holds that is still wanted (by
//!    a client or an unfinished dependent) and that no other non-retiring worker holds
//!    is copied to one ([`Command::Replicate`]);
//! 4. once every such result has a copy elsewhere and no task running elsewhere may
//!    still fetch an input only from it, the scheduler removes it and says
//!    [`Command::Retired`]: nothing of it is retried, nothing counts against a retry
//!    budget.
//!
//! A retiring worker that dies is removed like any other ([`crate::Event::WorkerRemoved`]).
//! With no other worker to copy to, the retirement waits for one, or for the
//! results to be released; results the client already has
//! ([`crate::Event::Delivered`]) and no dependent needs do not keep it
//! ([`crate::task_limit`]).

use std::collections::BTreeMap;

use crate::task::{Status, StealFlag};
use crate::{Command, Scheduler, SchedulerError, TaskId, WorkerId};

/// The retirement of one worker in progress.
#[derive(Debug, Default)]
pub(crate) struct Retiring {
    /// Copies asked for: task → the worker told to fetch it.
    pub(crate) replicating: BTreeMap<TaskId, WorkerId>,
}

impl Scheduler {
    /// [`crate::Event::Retire`].
    pub(crate) fn retire(&mut self, worker: WorkerId) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        if self.workers[&worker].retiring.is_some() {
            return Ok(());
        }
        self.unindex(worker);
        self.workers.get_mut(&worker).expect("worker").retiring = Some(Retiring::default());
        self.retiring.insert(worker);
        self.index(worker);
        Ok(())
    }

    /// [`crate::Event::ReplicateFailed`]: the copy is asked for again.
    pub(crate) fn replicate_failed(
        &mut self,
        worker: WorkerId,
        task: TaskId,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        for w in self.workers.values_mut() {
            if let Some(r) = w.retiring.as_mut() {
                if r.replicating.get(&task) == Some(&worker) {
                    r.replicating.remove(&task);
                }
            }
        }
        Ok(())
    }

    /// Moves every retirement on: asks queued tasks back, asks for copies, and
    /// removes the workers that are done ([`Command::Retired`]). Costs
    /// `O(results held by retiring workers)` while some worker retires, `O(1)` otherwise.
    pub(crate) fn advance_retirements(&mut self, out: &mut Vec<Command>) {
        if self.retiring.is_empty() {
            return;
        }
        let retiring: Vec<WorkerId> = self.retiring.iter().copied().collect();
        for worker in retiring {
            if !self.workers[&worker].processing.is_empty() {
                self.ask_queued_back(worker, out);
                continue;
            }
            if self.hand_over_results(worker, out) {
                self.remove_retired(worker, out);
            }
        }
    }

    /// Asks `worker` for every assigned task not known to run and not asked yet.
    fn ask_queued_back(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        let queued: Vec<TaskId> = self.workers[&worker]
            .processing
            .values()
            .copied()
            .filter(|id| {
                let t = &self.tasks[id];
                t.placed().steal == StealFlag::None && !t.placed().seceded
            })
            .collect();
        for task in queued {
            self.unindex(worker);
            self.tasks.get_mut(&task).expect("task").placed_mut().steal = StealFlag::Pending;
            self.workers.get_mut(&worker).expect("worker").steal_pending += 1;
            self.steals_in_flight += 1;
            self.index(worker);
            out.push(Command::Steal { worker, task });
        }
    }

    /// Whether a non-retiring worker other than `worker` holds `task`, since before
    /// sequence number `before` (any time if `None`).
    fn held_elsewhere(&self, task: TaskId, worker: WorkerId, before: Option<u64>) -> bool {
        let t = &self.tasks[&task];
        t.placed()
            .who_has
            .iter()
            .zip(&t.placed().holder_since)
            .any(|(&h, &since)| {
                h != worker
                    && self.workers.get(&h).is_some_and(|w| w.retiring.is_none())
                    && before.is_none_or(|b| since < b)
            })
    }

    /// Asks for a copy of each result only `worker` holds that is still needed;
    /// `true` once none is left and no task running elsewhere may still fetch an
    /// input only from `worker`.
    fn hand_over_results(&mut self, worker: WorkerId, out: &mut Vec<Command>) -> bool {
        let mut held: Vec<TaskId> = self.workers[&worker].held.iter().copied().collect();
        held.sort_unstable();
        let mut done = true;
        let mut wanted_copies = Vec::new();
        let has_target = self.copy_target(worker).is_some();
        for task in held {
            let t = &self.tasks[&task];
            let needed = t.wanted || t.active_dependents > 0;
            if !needed {
                continue;
            }
            if !self.held_elsewhere(task, worker, None)
                && self.client_has_it(task, worker, has_target)
            {
                continue; // the client has the value and no dependent waits for it
            }
            if !self.held_elsewhere(task, worker, None) {
                done = false;
                wanted_copies.push(task);
                continue;
            }
            // A dependent sent to run elsewhere before any other holder had the result
            // may still fetch it from here: wait until it ends.
            let waits = t.dependents.iter().any(|d| {
                let dt = &self.tasks[d];
                matches!(dt.status(), Status::Processing(w) if w != worker)
                    && !self.held_elsewhere(task, worker, Some(dt.placed().assign_seq))
            });
            done &= !waits;
        }
        let mut asked = Vec::new();
        for task in wanted_copies {
            let pending = self.workers[&worker]
                .retiring
                .as_ref()
                .and_then(|r| r.replicating.get(&task).copied());
            if pending.is_some_and(|w| self.workers.contains_key(&w)) {
                continue;
            }
            let Some(target) = self.copy_target(worker) else {
                break; // nobody to copy to: wait for a worker
            };
            self.tasks
                .get_mut(&task)
                .expect("task")
                .expect_report(target);
            asked.push((task, target));
            out.push(Command::Replicate {
                worker: target,
                task,
                holders: vec![worker],
            });
        }
        if let Some(r) = self
            .workers
            .get_mut(&worker)
            .and_then(|w| w.retiring.as_mut())
        {
            r.replicating.retain(|task, _| {
                self.tasks
                    .get(task)
                    .is_some_and(|t| t.placed().who_has.contains(&worker))
            });
            r.replicating.extend(asked);
        }
        done
    }

    /// The non-retiring worker to copy a result of `from` to: the one holding the
    /// fewest bytes (ties: lowest id).
    fn copy_target(&self, from: WorkerId) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(&id, w)| id != from && w.retiring.is_none())
            .min_by_key(|(&id, w)| (w.held_bytes, id))
            .map(|(&id, _)| id)
    }

    /// Removes retired `worker` (nothing assigned, its needed results held elsewhere).
    fn remove_retired(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        self.unindex(worker);
        self.retiring.remove(&worker);
        let w = self.workers.remove(&worker).expect("worker");
        debug_assert!(w.processing.is_empty());
        let mut held: Vec<TaskId> = w.held.into_iter().collect();
        held.sort_unstable();
        for task in held {
            self.lose_holder(task, worker, out);
        }
        out.push(Command::Retired { worker });
    }
}
