//! A cluster task past its timeout that does not stop: its future fails with
//! `TimedOut`, and after the grace period its worker exits and is replaced, so the
//! tasks queued behind it run elsewhere and the cluster keeps its two workers.
//! Under `processes:2`; the test binary is its own worker executable.

#[path = "common/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wherever::prelude::*;
use wherever::TaskErrorKind;

/// How long any wait may take before the test is considered hung (more than the
/// timeout plus the default grace of 5 s).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Writes its worker's process id to `DIR/pid`, then loops for ever without
/// checking anything (a thread that cannot be stopped).
#[wherever::task]
fn spin_forever(dir: String) -> u64 {
    std::fs::write(Path::new(&dir).join("pid"), std::process::id().to_string()).unwrap();
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// The worker's process id.
#[wherever::task]
fn worker_pid(_i: u64) -> u32 {
    std::process::id()
}

/// Whether process `pid` has exited (gone, or a zombie not reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Polls `condition` until it holds; panics naming `what` after [`HANG_GUARD`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "hung waiting for {what}");
        std::thread::yield_now();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wherever-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn a_task_that_does_not_stop_ends_its_worker_and_the_others_run_on() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let dir = temp_dir("timeout-restart");
    let stuck = client
        .options()
        .timeout(Duration::from_secs(2))
        .submit(spin_forever, dir.display().to_string());
    let pid_file = dir.join("pid");
    wait_until("the spinning task to start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|text| text.parse::<u32>().is_ok())
    });
    let stuck_pid: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let error = stuck.value_timeout(HANG_GUARD).unwrap_err();
    assert_eq!(error.kind, TaskErrorKind::TimedOut, "{error}");
    // Tasks submitted now may be queued on the stuck worker (its only thread
    // spins): they run elsewhere once it exits.
    let futures: Vec<_> = (0..20u64).map(|i| client.submit(worker_pid, i)).collect();
    for future in &futures {
        let pid = future.value_timeout(HANG_GUARD).unwrap();
        assert_ne!(*pid, stuck_pid, "a task ran beside the spinning one");
    }
    wait_until("the stuck worker to exit", || exited(stuck_pid));
    // Its replacement serves tasks beside the other worker: two processes again.
    wait_until("two workers other than the stuck one to run tasks", || {
        let mut pids: Vec<u32> = client.map(worker_pid, 0..8u64).unwrap();
        pids.sort_unstable();
        pids.dedup();
        assert!(!pids.contains(&stuck_pid));
        pids.len() == 2
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[wherever::main]
fn main() {
    harness::run_checks(&[(
        "a_task_that_does_not_stop_ends_its_worker_and_the_others_run_on",
        a_task_that_does_not_stop_ends_its_worker_and_the_others_run_on,
    )]);
}
