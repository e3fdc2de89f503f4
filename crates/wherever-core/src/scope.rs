//! What the running task is, for code inside it: the stream key its own
//! submissions derive from (nested parallelism), and a hook that lets the runtime
//! give up the task's slot while it waits on other tasks (Dask's secede/rejoin).

use crate::StreamKey;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// The running task, as seen by code inside it.
#[derive(Debug, Clone, Copy)]
pub struct TaskScope {
    /// The stream key of the client that submitted the task.
    pub key: StreamKey,
    /// The task's position in that client's submission order.
    pub position: u64,
    /// Whether the client that submitted the task had a seed set.
    pub seeded: bool,
}

impl TaskScope {
    /// The key of the streams of tasks this task submits (derived on demand: it
    /// costs a ChaCha block, which most tasks never need).
    pub fn child_key(&self) -> StreamKey {
        self.key.child(self.position)
    }
}

/// Called when a task blocks waiting on other tasks; returns what to call when it
/// runs again.
pub type SecedeHook = Arc<dyn Fn() -> Box<dyn FnOnce()> + Send + Sync>;

thread_local! {
    /// The running task's client key and seed flag (the position is kept apart so
    /// that a chunk of a `map` only updates it per item).
    static CURRENT: Cell<Option<(StreamKey, bool)>> = const { Cell::new(None) };
    static POSITION: Cell<u64> = const { Cell::new(0) };
    static SECEDE: RefCell<Option<SecedeHook>> = const { RefCell::new(None) };
}

/// Runs `body` as the task at `position` of a client with stream key `key`.
pub fn in_task<T>(key: StreamKey, seeded: bool, position: u64, body: impl FnOnce() -> T) -> T {
    in_tasks(key, seeded, position, |_| body())
}

/// Runs `body` as tasks of a client with stream key `key`, starting at `position`;
/// `body` moves on to the next task's position with the function it is given
/// (cheaper per item than [`in_task`] for the items of a chunk).
pub fn in_tasks<T>(
    key: StreamKey,
    seeded: bool,
    position: u64,
    body: impl FnOnce(&dyn Fn(u64)) -> T,
) -> T {
    let outer = CURRENT.with(|current| current.replace(Some((key, seeded))));
    let outer_position = POSITION.with(|current| current.replace(position));
    let result = body(&|position| POSITION.with(|current| current.set(position)));
    CURRENT.with(|current| current.set(outer));
    POSITION.with(|current| current.set(outer_position));
    result
}

/// The task running in this thread, if any.
pub fn current_task() -> Option<TaskScope> {
    let (key, seeded) = CURRENT.with(Cell::get)?;
    Some(TaskScope {
        key,
        position: POSITION.with(Cell::get),
        seeded,
    })
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
