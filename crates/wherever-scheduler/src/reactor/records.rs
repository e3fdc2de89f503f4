//! The server's task records: what each client submitted (needed to send the
//! task to a worker, again if it must be recomputed), who owns it, its result on
//! its way to the client and its error. A record lives as long as the scheduler
//! knows the task: released records are swept once the scheduler forgot them.

use super::stored::{StoredTask, TaskStore};
use super::PeerId;
use crate::dense_table::DenseTable;
use crate::protocol::{TaskId, TaskMessage};
use crate::Scheduler;
use wherever_core::{TaskError, TaskErrorKind};

/// One task as the server keeps it.
pub(super) struct Record {
    /// The task as submitted (see [`StoredTask::message`]), and its client.
    pub task: StoredTask,
    /// An inline result waiting for the scheduler's `Done`.
    pub result: Option<Box<[u8]>>,
    /// The error its worker reported.
    pub error: Option<TaskError>,
}

impl Record {
    pub fn new(task: StoredTask) -> Self {
        Record {
            task,
            result: None,
            error: None,
        }
    }
}

/// The stand-in record of a scattered value (it has no function to run).
pub(super) fn scatter_message(task: TaskId) -> TaskMessage {
    TaskMessage::new(task, "scatter", Vec::new())
}

/// The smallest number of released records that triggers a sweep.
const MIN_SWEEP: usize = 64;

/// All records, and the released ones the scheduler still knew when released.
#[derive(Default)]
pub(super) struct Records {
    map: DenseTable<Record>,
    /// Shares what many records have in common.
    store: TaskStore,
    /// Released by their client while the scheduler still needed them (a graph
    /// intermediate whose dependents have not finished): swept later.
    released: Vec<TaskId>,
    /// Sweep when `released` grows to this length (amortised O(1) per release).
    sweep_at: usize,
}

impl Records {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, task: TaskId) -> bool {
        self.map.contains_key(&task)
    }

    pub fn get(&self, task: TaskId) -> Option<&Record> {
        self.map.get(&task)
    }

    pub fn get_mut(&mut self, task: TaskId) -> Option<&mut Record> {
        self.map.get_mut(&task)
    }

    pub fn owner(&self, task: TaskId) -> Option<PeerId> {
        self.map.get(&task).map(|r| r.task.owner())
    }

    /// Records `message`, submitted by `owner`.
    pub fn insert(&mut self, message: TaskMessage, owner: PeerId) {
        let id = message.id;
        let task = self.store.store(message, owner);
        self.map.insert(id, Record::new(task));
    }

    pub fn remove(&mut self, task: TaskId) {
        self.map.remove(&task);
    }

    /// The tasks `owner` submitted, in id order.
    pub fn owned_by(&self, owner: PeerId) -> Vec<TaskId> {
        let mut owned: Vec<TaskId> = self
            .map
            .iter()
            .filter(|(_, r)| r.task.owner() == owner)
            .map(|(id, _)| id)
            .collect();
        owned.sort_unstable();
        owned
    }

    /// The client no longer wants `task`: forget its record now if the scheduler
    /// forgot the task, or once it does.
    pub fn released(&mut self, task: TaskId, scheduler: &Scheduler) {
        if scheduler.state(task).is_none() {
            self.map.remove(&task);
            return;
        }
        self.released.push(task);
        if self.released.len() >= self.sweep_at.max(MIN_SWEEP) {
            self.sweep(scheduler);
        }
    }

    /// Forgets the released records of tasks the scheduler has forgotten.
    pub fn sweep(&mut self, scheduler: &Scheduler) {
        let map = &mut self.map;
        self.released.retain(|task| {
            let known = scheduler.state(*task).is_some();
            if !known {
                map.remove(task);
            }
            known
        });
        self.sweep_at = 2 * self.released.len();
    }

    /// An error for `task` of `kind`, named after the task.
    pub fn new_error(&self, task: TaskId, kind: TaskErrorKind, message: &str) -> TaskError {
        let (name, position) = self
            .map
            .get(&task)
            .map(|r| (r.task.name(), r.task.position()))
            .unwrap_or(("?", 0));
        TaskError::new(name, position, kind, message)
    }

    /// The error `task` ends with because `cause` (itself or a dependency) failed.
    pub fn error_for(&self, task: TaskId, cause: TaskId) -> TaskError {
        let cause_error = self.map.get(&cause).and_then(|r| r.error.clone());
        if task == cause {
            return cause_error.unwrap_or_else(|| {
                self.new_error(
                    task,
                    TaskErrorKind::Runtime,
                    "failed without an error message",
                )
            });
        }
        let cause_error = cause_error
            .unwrap_or_else(|| self.new_error(cause, TaskErrorKind::Runtime, "was lost"));
        let cause_name = format!("`{}` #{}", cause_error.task, cause_error.position);
        self.new_error(
            task,
            TaskErrorKind::DependencyFailed { cause: cause_name },
            &cause_error.message,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_stays_small() {
        // One per pending task (issue 14 item 5): the stored task, an inline result
        // slot and a boxed error.
        let size = std::mem::size_of::<super::Record>();
        assert!(size <= 80, "a server record is {size} bytes");
    }
}
