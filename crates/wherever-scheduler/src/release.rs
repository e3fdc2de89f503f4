//! Reference counting: freeing results nothing needs, dropping computations nothing needs, forgetting tasks.

use crate::task::Status;
use crate::{Command, Scheduler, TaskId};

impl Scheduler {
    /// Applies the deferred reference-counting decisions: free unneeded results, drop
    /// unneeded computations, forget what nothing can need any more.
    pub(crate) fn release_unneeded(&mut self, out: &mut Vec<Command>) {
        loop {
            if let Some(task) = self.abandon_candidates.pop() {
                let Some(t) = self.tasks.get(&task) else {
                    continue;
                };
                if !(t.status().active() && !t.wanted && t.active_dependents == 0) {
                    continue;
                }
                self.dequeue(task, None, out);
                self.tasks
                    .get_mut(&task)
                    .expect("task")
                    .set_status(Status::Released);
                self.stop_waiting_on_deps(task);
                self.release_candidates.push(task);
            } else if let Some(task) = self.release_candidates.pop() {
                let Some(t) = self.tasks.get_mut(&task) else {
                    continue;
                };
                if t.status() == Status::Memory && !t.wanted && t.active_dependents == 0 {
                    t.set_status(Status::Released);
                    let holders = std::mem::take(&mut t.placed_mut().who_has);
                    t.placed_mut().holder_since.clear();
                    let nbytes = t.placed().nbytes;
                    for w in holders {
                        let wk = self.workers.get_mut(&w).expect("holder");
                        wk.held.remove(&task);
                        wk.held_bytes -= nbytes;
                        self.free(w, task, out);
                    }
                    self.release_candidates.push(task);
                } else if matches!(
                    t.status(),
                    Status::Released | Status::Erred | Status::Lost | Status::Cancelled
                ) && !t.wanted
                    && t.dependents.is_empty()
                {
                    let t = self.tasks.remove(&task).expect("task");
                    self.delivered.remove(&task);
                    for d in t.deps {
                        if let Some(dt) = self.tasks.get_mut(&d) {
                            dt.dependents.remove(&task);
                            self.release_candidates.push(d);
                        }
                    }
                }
            } else {
                break;
            }
        }
    }

    /// `task` stopped being active (it finished or was dropped): its dependencies have one
    /// active dependent less, and may no longer be needed.
    pub(crate) fn stop_waiting_on_deps(&mut self, task: TaskId) {
        let deps = std::mem::take(&mut self.tasks.get_mut(&task).expect("task").deps);
        for &d in &deps {
            self.tasks
                .get_mut(&d)
                .expect("dependency")
                .active_dependents -= 1;
            self.abandon_candidates.push(d);
            self.release_candidates.push(d);
        }
        self.tasks.get_mut(&task).expect("task").deps = deps;
    }
}
