//! Task transitions: activation (with lineage), reaching memory, failing.

use crate::task::{Failure, Status};
use crate::{Command, Scheduler, TaskId, WorkerId};

impl Scheduler {
    /// Makes a released task active again (or for the first time), recursively
    /// reactivating released dependencies; fails it if a dependency failed.
    pub(crate) fn activate(&mut self, root: TaskId, fresh: bool, out: &mut Vec<Command>) {
        let mut stack = vec![root];
        let mut activated = Vec::new();
        while let Some(task) = stack.pop() {
            let t = &self.tasks[&task];
            if t.status() != Status::Released {
                continue;
            }
            if t.placed().scattered {
                // Released scattered data has no lineage: it is lost for good.
                self.fail(task, Failure::Lost, None, out);
                continue;
            }
            let failure = t.deps.iter().find_map(|d| {
                let dt = &self.tasks[d];
                match dt.status() {
                    Status::Erred => Some(Failure::Erred(dt.cause(*d))),
                    Status::Lost => Some(Failure::Erred(*d)),
                    Status::Cancelled => Some(Failure::Cancelled),
                    _ => None,
                }
            });
            if let Some(f) = failure {
                self.fail(task, f, None, out);
                continue;
            }
            let deps = t.deps.clone();
            let mut missing = 0;
            for d in deps {
                let dt = self.tasks.get_mut(&d).expect("dependency");
                dt.active_dependents += 1;
                match dt.status() {
                    Status::Memory => {}
                    Status::Released => {
                        missing += 1;
                        stack.push(d);
                    }
                    _ => missing += 1,
                }
            }
            let t = self.tasks.get_mut(&task).expect("task");
            t.set_status(Status::Waiting);
            t.missing_deps = missing;
            activated.push(task);
        }
        for task in activated {
            let t = &self.tasks[&task];
            if t.status() == Status::Waiting && t.missing_deps == 0 {
                self.make_ready(task, fresh && task == root);
            }
        }
    }

    /// An active task's result is now held by `worker`.
    pub(crate) fn make_memory(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        self.dequeue(task, Some(worker), out);
        let t = self.tasks.get_mut(&task).expect("task");
        t.set_status(Status::Memory);
        t.clear_avoid();
        // Inline for the usual one or few dependents: no allocation per task.
        let dependents: smallvec::SmallVec<[TaskId; 4]> = t.dependents.iter().copied().collect();
        self.report_end(task, out);
        self.add_holder(task, worker);
        self.stop_waiting_on_deps(task);
        let mut now_ready = Vec::new();
        for d in dependents {
            let dt = self.tasks.get_mut(&d).expect("dependent");
            if dt.status() == Status::Waiting {
                dt.missing_deps -= 1;
                if dt.missing_deps == 0 {
                    now_ready.push(d);
                }
            }
        }
        now_ready.sort_unstable();
        for d in now_ready {
            self.make_ready(d, false);
        }
        self.release_candidates.push(task);
    }

    /// Ends `task` (and, transitively, its unfinished dependents) as failed or cancelled.
    /// `source` is the worker that reported the failure (it gets no `Cancel`).
    pub(crate) fn fail(
        &mut self,
        task: TaskId,
        kind: Failure,
        source: Option<WorkerId>,
        out: &mut Vec<Command>,
    ) {
        let mut work = vec![(task, kind)];
        while let Some((task, kind)) = work.pop() {
            let state = self.tasks[&task].status();
            if state.failed() {
                continue;
            }
            self.dequeue(task, source, out);
            let t = self.tasks.get_mut(&task).expect("task");
            let (new_state, cause, next) = match kind {
                Failure::Erred(c) => (Status::Erred, c, kind),
                Failure::Lost => (Status::Lost, task, Failure::Erred(task)),
                Failure::Cancelled => (Status::Cancelled, task, kind),
            };
            t.set_status(new_state);
            t.set_cause(task, cause);
            self.report_end(task, out);
            let t = self.tasks.get_mut(&task).expect("task");
            let deps = std::mem::take(&mut t.deps);
            let mut dependents: Vec<TaskId> = t.dependents.iter().copied().collect();
            dependents.sort_unstable();
            for d in deps {
                let dt = self.tasks.get_mut(&d).expect("dependency");
                if state.active() {
                    dt.active_dependents -= 1;
                    self.abandon_candidates.push(d);
                }
                dt.dependents.remove(&task);
                self.release_candidates.push(d);
            }
            for d in dependents.into_iter().rev() {
                if self.tasks[&d].status().active() {
                    work.push((d, next));
                }
            }
            self.release_candidates.push(task);
        }
    }

    /// Tells the client how `task` ended (from its status: [`Command::Done`],
    /// [`Command::Erred`], [`Command::Lost`] or [`Command::Cancelled`]) if it is wanted and
    /// the client was not told yet, or waits again after reporting the result missing.
    pub(crate) fn report_end(&mut self, task: TaskId, out: &mut Vec<Command>) {
        let t = self.tasks.get_mut(&task).expect("task");
        if t.ended && !t.client_waits() {
            return;
        }
        t.ended = true;
        t.set_client_waits(false);
        if !t.wanted {
            return;
        }
        out.push(match t.status() {
            Status::Memory => Command::Done { task },
            Status::Erred => Command::Erred {
                task,
                cause: t.cause(task),
            },
            Status::Lost => Command::Lost {
                task,
                attempts: t.placed().attempts,
            },
            Status::Cancelled => Command::Cancelled { task },
            s => unreachable!("task {task} reported as ended while {s:?}"),
        });
    }
}
