//! Task errors: what a failing task function produces ([`TaskFailure`]) and what the
//! caller of `value()` / `gather()` receives ([`TaskError`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong inside one call of a task function: a returned `Err` or a panic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// The error's or the panic's message.
    pub message: String,
    /// `true` when the function panicked, `false` when it returned `Err`.
    pub panicked: bool,
    /// The backtrace at the panic, when `RUST_BACKTRACE` enabled one.
    pub backtrace: Option<String>,
}

impl TaskFailure {
    /// A failure from an `Err` value returned by the task function.
    pub fn from_error(error: impl fmt::Display) -> Self {
        TaskFailure {
            message: error.to_string(),
            panicked: false,
            backtrace: None,
        }
    }
}

/// Why a future did not resolve to a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskErrorKind {
    /// The task function panicked.
    Panicked,
    /// The task function returned `Err`.
    Failed,
    /// The future was cancelled before the task ran.
    Cancelled,
    /// A task this one depends on failed; `cause` names it.
    DependencyFailed {
        /// Name and position of the task that failed first.
        cause: String,
    },
    /// The task's workers kept dying; its retry budget is used up.
    WorkerLost {
        /// How many times the task was started.
        attempts: u32,
    },
    /// The runtime could not run the task (unknown task name, codec error, closure on a
    /// remote plan, lost connection…).
    Runtime,
    /// A wait with a deadline (`Future::value_timeout`) ended before the task
    /// finished; the task goes on and its future can still be read.
    TimedOut,
}

/// The error a future resolves to when its task did not produce a value. It names
/// the task, its position in the submission and where it ran, and carries the
/// message and (when enabled) the backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// The registered name of the task function (or `closure`).
    pub task: String,
    /// The task's position in its client's submission order (for `map`, the item's).
    pub position: u64,
    /// What kind of failure this is.
    pub kind: TaskErrorKind,
    /// The error's or panic's message.
    pub message: String,
    /// Where the task ran, e.g. `thread 2 of threads:4 on host1`.
    pub worker: Option<String>,
    /// The backtrace at the panic, when enabled with `RUST_BACKTRACE=1`.
    pub backtrace: Option<String>,
}

impl TaskError {
    /// An error of `kind` for the task `task` at `position`.
    pub fn new(task: &str, position: u64, kind: TaskErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            task: task.to_string(),
            position,
            kind,
            message: message.into(),
            worker: None,
            backtrace: None,
        }
    }

    /// The error for a [`TaskFailure`] of task `task` at `position`.
    pub fn from_failure(task: &str, position: u64, failure: TaskFailure) -> Self {
        let kind = if failure.panicked {
            TaskErrorKind::Panicked
        } else {
            TaskErrorKind::Failed
        };
        TaskError {
            backtrace: failure.backtrace,
            ..TaskError::new(task, position, kind, failure.message)
        }
    }

    /// The same error, recording where the task ran.
    pub fn on_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = Some(worker.into());
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            TaskErrorKind::Panicked => "panicked".to_string(),
            TaskErrorKind::Failed => "failed".to_string(),
            TaskErrorKind::Cancelled => "was cancelled".to_string(),
            TaskErrorKind::DependencyFailed { cause } => {
                format!("did not run: its input {cause} failed")
            }
            TaskErrorKind::WorkerLost { attempts } => {
                format!("was lost: its worker died on each of {attempts} attempts (retry budget used up)")
            }
            TaskErrorKind::Runtime => "could not run".to_string(),
            TaskErrorKind::TimedOut => "had not finished".to_string(),
        };
        write!(f, "task `{}` #{} {}", self.task, self.position, what)?;
        if let Some(worker) = &self.worker {
            write!(f, " on {worker}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(backtrace) = &self.backtrace {
            write!(f, "\nbacktrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_task_position_worker_and_message() {
        let failure = TaskFailure {
            message: "boom".into(),
            panicked: true,
            backtrace: None,
        };
        let error = TaskError::from_failure("study::calc_mean", 3, failure)
            .on_worker("thread 1 of threads:2");
        assert_eq!(
            error.to_string(),
            "task `study::calc_mean` #3 panicked on thread 1 of threads:2: boom"
        );
    }
}
