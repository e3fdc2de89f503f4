//! Running task code with panics caught: a panicking task becomes a
//! [`TaskFailure`] carrying its message and, when `RUST_BACKTRACE` enables one, its
//! backtrace; the default panic message is not printed for panics inside tasks.

use crate::TaskFailure;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Installs the panic hook once per process: panics inside tasks are recorded (with
/// location and backtrace) instead of printed; all others go to the previous hook.
pub fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let backtrace = Backtrace::capture();
                let backtrace = (backtrace.status() == BacktraceStatus::Captured)
                    .then(|| backtrace.to_string());
                LAST_PANIC.with(|last| *last.borrow_mut() = Some((location, backtrace)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body` as task code: a panic becomes a [`TaskFailure`] with `panicked` set.
pub fn run_caught<R>(body: impl FnOnce() -> Result<R, TaskFailure>) -> Result<R, TaskFailure> {
    let was_in_task = IN_TASK.with(|flag| flag.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(body));
    IN_TASK.with(|flag| flag.set(was_in_task));
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked with a non-string payload".to_string());
        let (location, backtrace) = LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_default();
        Err(TaskFailure {
            message: format!("{message}{location}"),
            panicked: true,
            backtrace,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_failure_with_its_message_and_location() {
        install_hook();
        let failure = run_caught::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert!(failure.panicked);
        assert!(
            failure.message.starts_with("boom 7 at "),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("panic_capture.rs"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn values_and_errors_pass_through() {
        assert_eq!(run_caught(|| Ok::<_, TaskFailure>(3)).unwrap(), 3);
        let failure = run_caught::<()>(|| Err(TaskFailure::from_error("no"))).unwrap_err();
        assert!(!failure.panicked);
    }
}
