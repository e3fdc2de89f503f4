//! The server's task records: what each client submitted (needed to send the
//! task to a worker, again if it must be recomputed), who owns it, its result on
//! its way to the client and its error. A record lives as long as the scheduler
//! knows the task: released records are swept once the scheduler forgot them.
//! Results and errors are kept beside the records, by id: few tasks have one at a
//! time, and every pending task's record would pay their room.

use super::stored::{StoredTask, TaskStore};
use super::PeerId;
use crate::dense_table::DenseTable;
use crate::id_hash::IdMap;
use crate::protocol::{TaskId, TaskMessage};
use crate::Scheduler;
use wherever_core::{TaskError, TaskErrorKind};

/// One task as the server keeps it.
pub(super) struct Record {
    /// The task as submitted (see [`StoredTask::message`]), and its client.
    pub task: StoredTask,
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
    /// Inline results waiting for the scheduler's `Done`, by task.
    results: IdMap<Vec<u8>>,
    /// The errors workers reported (or the server made), by task.
    errors: IdMap<TaskError>,
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
        // A reused id starts without the result or error of its earlier record.
        forget(&mut self.map, &mut self.results, &mut self.errors, id);
        self.map.insert(id, Record { task });
    }

    pub fn remove(&mut self, task: TaskId) {
        forget(&mut self.map, &mut self.results, &mut self.errors, task);
    }

    /// Keeps `result`, `task`'s inline result, for the scheduler's `Done` (if the
    /// task has a record).
    pub fn set_result(&mut self, task: TaskId, result: Option<Vec<u8>>) {
        match result {
            Some(bytes) if self.map.contains_key(&task) => {
                self.results.insert(task, bytes);
            }
            _ => {
                self.results.remove(&task);
            }
        }
    }

    /// Takes `task`'s inline result, if one is kept.
    pub fn take_result(&mut self, task: TaskId) -> Option<Vec<u8>> {
        if self.results.is_empty() {
            return None;
        }
        self.results.remove(&task)
    }

    /// `task`'s inline result, if one is kept.
    #[cfg(test)]
    pub fn result(&self, task: TaskId) -> Option<&Vec<u8>> {
        self.results.get(&task)
    }

    /// Keeps `error` as `task`'s error (if the task has a record).
    pub fn set_error(&mut self, task: TaskId, error: TaskError) {
        if self.map.contains_key(&task) {
            self.errors.insert(task, error);
        }
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
            self.remove(task);
            return;
        }
        self.released.push(task);
        if self.released.len() >= self.sweep_at.max(MIN_SWEEP) {
            self.sweep(scheduler);
        }
    }

    /// Forgets the released records of tasks the scheduler has forgotten.
    pub fn sweep(&mut self, scheduler: &Scheduler) {
        let (map, results, errors) = (&mut self.map, &mut self.results, &mut self.errors);
        self.released.retain(|task| {
            let known = scheduler.state(*task).is_some();
            if !known {
                forget(map, results, errors, *task);
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
        let cause_error = self.errors.get(&cause).cloned();
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

/// Forgets `task`'s record, result and error.
fn forget(
    map: &mut DenseTable<Record>,
    results: &mut IdMap<Vec<u8>>,
    errors: &mut IdMap<TaskError>,
    task: TaskId,
) {
    map.remove(&task);
    if !results.is_empty() {
        results.remove(&task);
    }
    if !errors.is_empty() {
        errors.remove(&task);
    }
}

#[cfg(test)]
mod tests {
    use super::Records;
    use crate::protocol::TaskMessage;
    use wherever_core::{TaskError, TaskErrorKind};

    #[test]
    fn a_record_stays_small() {
        // One per pending task (issue 14 item 5): the stored task only; results
        // and errors sit beside the records.
        let size = std::mem::size_of::<super::Record>();
        assert!(size <= 56, "a server record is {size} bytes");
    }

    #[test]
    fn results_and_errors_go_with_their_record() {
        let mut records = Records::default();
        records.insert(TaskMessage::new(1, "crate::f", vec![]), 7);
        let error = TaskError::new("crate::f", 0, TaskErrorKind::Runtime, "boom");
        records.set_result(2, Some(vec![1])); // no record: not kept
        records.set_error(2, error.clone());
        assert_eq!((records.results.len(), records.errors.len()), (0, 0));
        records.set_result(1, Some(vec![1, 2]));
        records.set_error(1, error.clone());
        assert_eq!(records.result(1), Some(&vec![1, 2]));
        assert_eq!(records.error_for(1, 1), error);
        records.set_result(1, None);
        assert_eq!(records.take_result(1), None);
        records.set_result(1, Some(vec![3]));
        assert_eq!(records.take_result(1), Some(vec![3]));
        records.set_result(1, Some(vec![4]));
        records.remove(1);
        assert!(records.results.is_empty() && records.errors.is_empty());
    }
}
