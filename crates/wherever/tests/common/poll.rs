//! Waiting for what nothing signals (a file another process writes, a process
//! count, a child's exit): the tests poll the condition with an overall hang guard.
//! Nothing here asserts on time; the guard only turns a hang into a failure that
//! says what never happened.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// How long a condition may take before the wait is called hung: generous, as CI
/// machines are loaded.
pub const HANG_GUARD: Duration = Duration::from_secs(180);

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(5);

/// Waits until `condition` holds; panics naming `what` after `guard`.
pub fn wait_until(what: &str, guard: Duration, condition: impl FnMut() -> bool) {
    wait_until_every(what, guard, POLL, condition);
}

/// [`wait_until`], looking at the condition every `every` (for conditions that are
/// costly to look at, such as a Slurm query).
pub fn wait_until_every(
    what: &str,
    guard: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + guard;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "hang guard: waited {guard:?} for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Waits until a file exists at `path` (another process creates it).
pub fn wait_for_path(path: &Path, guard: Duration) {
    wait_until(&format!("{}", path.display()), guard, || path.exists());
}

/// Waits for `child` to end and returns its output; kills it and panics naming
/// `what` after `guard`.
pub fn wait_for_child(mut child: Child, what: &str, guard: Duration) -> Output {
    let deadline = Instant::now() + guard;
    while child.try_wait().expect("the child's status").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("hang guard: {what} never ended in {guard:?}");
        }
        std::thread::sleep(POLL);
    }
    child.wait_with_output().expect("the child's output")
}
