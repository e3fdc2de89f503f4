//! The error type of wherever's own entry points (plans, flags, starting clients).
//! Failed tasks are [`TaskError`]s, which convert into it.

use crate::plan::PlanError;
use crate::TaskError;

/// What can go wrong outside a task: a bad plan or flag, a plan that cannot be
/// started, or (through `?`) a failed task. Its `Debug` form is its message, so
/// `fn main() -> wherever::Result<()>` prints a readable line. It is at most 64
/// bytes (a [`TaskError`] is one boxed pointer), so functions returning
/// [`Result`] are clean under clippy's `result_large_err`.
#[derive(thiserror::Error)]
pub enum Error {
    /// The plan string does not follow the grammar.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The plan is valid but cannot be started here.
    #[error("cannot start plan `{plan}`: {reason}")]
    Start {
        /// The plan, as a string.
        plan: String,
        /// Why it cannot be started.
        reason: String,
    },
    /// [`crate::Client::scale`] or [`crate::Client::adapt`] cannot do what was asked:
    /// the plan's workers are a fixed set, or the options make no sense.
    #[error("cannot scale plan `{plan}`: {reason}")]
    Scale {
        /// The plan, as a string.
        plan: String,
        /// Why.
        reason: String,
    },
    /// A command-line flag is missing its value or has a malformed one.
    #[error("{0}")]
    Args(String),
    /// A task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// [`crate::Client::wait_for_workers`] gave up: fewer workers than wanted.
    #[error(
        "{connected} of the {wanted} workers wanted are connected{}",
        if *waited_ms == 0 { String::new() } else { format!(" after waiting {:.1} s", *waited_ms as f64 / 1000.0) }
    )]
    Workers {
        /// How many workers were wanted.
        wanted: usize,
        /// How many were connected when the wait ended.
        connected: usize,
        /// How long the wait lasted, in milliseconds (0: the plan's workers are fixed).
        waited_ms: u64,
    },
    /// A resource string (`client.options().resources("gpu=1")`) is malformed.
    #[error(transparent)]
    Resources(#[from] wherever_cluster::ResourceError),
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `Result` with wherever's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Clippy's `result_large_err` fires from 128 bytes; stay well below.
    #[test]
    fn errors_are_small_enough_for_clippy() {
        assert!(
            std::mem::size_of::<Error>() <= 64,
            "{}",
            std::mem::size_of::<Error>()
        );
        assert!(std::mem::size_of::<TaskError>() <= 8);
        assert!(std::mem::size_of::<Result<()>>() <= 64);
    }
}
