//! Why an event was refused: [`SchedulerError`].

use std::fmt;

#[allow(unused_imports)] // named in doc links
use crate::Event;
use crate::{TaskId, WorkerId};

/// A bad event: it was ignored and the state did not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerError {
    /// The event names a task the scheduler does not know (never submitted or forgotten).
    UnknownTask(TaskId),
    /// The event names a worker the scheduler does not know (never added or removed).
    UnknownWorker(WorkerId),
    /// A task id that is already in use (or appears twice in one batch).
    DuplicateTask(TaskId),
    /// A worker id that is already in use.
    DuplicateWorker(WorkerId),
    /// A task depends on a task that was never submitted (or is forgotten).
    UnknownDependency {
        /// The task.
        task: TaskId,
        /// Its unknown dependency.
        dep: TaskId,
    },
    /// The dependencies inside a submitted batch form a cycle through this task.
    Cycle(TaskId),
    /// A worker announced with zero slots.
    ZeroSlots(WorkerId),
    /// [`Event::Secede`] or [`Event::Rejoin`] for a task that is not processing on that worker.
    NotProcessing {
        /// The task.
        task: TaskId,
        /// The worker named by the event.
        worker: WorkerId,
    },
}

impl fmt::Display for SchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedulerError::UnknownTask(t) => write!(f, "unknown task {t}"),
            SchedulerError::UnknownWorker(w) => write!(f, "unknown worker {w}"),
            SchedulerError::DuplicateTask(t) => write!(f, "task id {t} is already in use"),
            SchedulerError::DuplicateWorker(w) => write!(f, "worker id {w} is already in use"),
            SchedulerError::UnknownDependency { task, dep } => {
                write!(f, "task {task} depends on unknown task {dep}")
            }
            SchedulerError::Cycle(t) => write!(f, "dependency cycle through task {t}"),
            SchedulerError::ZeroSlots(w) => write!(f, "worker {w} has zero slots"),
            SchedulerError::NotProcessing { task, worker } => {
                write!(f, "task {task} is not processing on worker {worker}")
            }
        }
    }
}

impl std::error::Error for SchedulerError {}
