//! What the Slurm test binaries share: whether Slurm is here, and waiting for a
//! state of Slurm or of the files tasks write.
//!
//! Slurm tells no one when a job changes state or a node comes back, so these
//! tests poll the condition they wait for (`squeue`, `sinfo`, files) until it holds,
//! with a hang guard; no test asserts on how long anything took.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

#[path = "poll.rs"]
pub mod poll;

/// How often [`wait_for`] looks again (a Slurm query starts a process).
const POLL: Duration = Duration::from_millis(50);

/// Waits until `condition` holds; fails the test naming `what` after `guard`.
pub fn wait_for(condition: impl FnMut() -> bool, what: &str, guard: Duration) {
    poll::wait_until_every(what, guard, POLL, condition);
}

/// Why Slurm cannot run these tests here, if it cannot.
pub fn slurm_missing() -> Option<String> {
    match Command::new("sinfo").arg("-h").output() {
        Err(error) => Some(format!("no `sinfo` on PATH ({error})")),
        Ok(output) if !output.status.success() => Some(format!(
            "`sinfo` fails: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Whether Slurm is here; says SKIPPED and why when it is not.
pub fn checks_need_slurm() -> bool {
    if let Some(why) = slurm_missing() {
        eprintln!("SKIPPED: Slurm is not available here ({why})");
        return false;
    }
    true
}

/// The number of nodes of partition `multi` (the namespace nodes), 0 without it.
pub fn multi_nodes() -> usize {
    Command::new("sinfo")
        .args(["-h", "-p", "multi", "-o", "%D"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}
