//! What the running task is, for code inside it: the stream key its own
//! submissions derive from (nested parallelism), and a hook that lets the runtime
//! give up the task's slot while it waits on other tasks (Dask's secede/rejoin).

use crate::StreamKey;
use std::cell::RefCell;
use std::sync::Arc;

/// The running task, as seen by code inside it.
#[derive(Debug, Clone, Copy)]
pub struct TaskScope {
    /// The key of the streams of tasks this task submits.
    pub child_key: StreamKey,
    /// Whether the client that submitted the task had a seed set.
    pub seeded: bool,
}

/// Called when a task blocks waiting on other tasks; returns what to call when it
/// runs again.
pub type SecedeHook = Arc<dyn Fn() -> Box<dyn FnOnce()> + Send + Sync>;

thread_local! {
    static CURRENT: RefCell<Option<TaskScope>> = const { RefCell::new(None) };
    static SECEDE: RefCell<Option<SecedeHook>> = const { RefCell::new(None) };
}

/// Runs `body` as the task at `position` of a client with stream key `key`.
pub fn in_task<T>(key: StreamKey, seeded: bool, position: u64, body: impl FnOnce() -> T) -> T {
    let scope = TaskScope {
        child_key: key.child(position),
        seeded,
    };
    let outer = CURRENT.with(|current| current.borrow_mut().replace(scope));
    let result = body();
    CURRENT.with(|current| *current.borrow_mut() = outer);
    result
}

/// The task running in this thread, if any.
pub fn current_task() -> Option<TaskScope> {
    CURRENT.with(|current| *current.borrow())
}

/// Installs, for this thread, what to do when a task blocks waiting on others.
pub fn set_secede_hook(hook: SecedeHook) {
    SECEDE.with(|current| *current.borrow_mut() = Some(hook));
}

/// Runs `wait` (a blocking wait on other tasks). Inside a task on a thread with a
/// secede hook, the task's slot is given up for the wait and taken back after, so
/// waiting tasks never starve the tasks they wait for.
pub fn while_blocked<T>(wait: impl FnOnce() -> T) -> T {
    let hook = if current_task().is_some() {
        SECEDE.with(|h| h.borrow().clone())
    } else {
        None
    };
    match hook {
        Some(secede) => {
            let rejoin = secede();
            let result = wait();
            rejoin();
            result
        }
        None => wait(),
    }
}
