//! A worker's memory limit and thresholds in the event stream of a real
//! `processes:N` cluster: each worker's `WorkerLimits` follows its
//! `WorkerJoined`, with the plan's `mem=` and the spill, pause and terminate
//! fractions. The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wherever::events::{Event, MemoryThresholds};
use wherever::prelude::*;

/// How long the test waits for the events before it calls them lost (a hang
/// guard only; nothing is asserted on time).
const HANG_GUARD: Duration = Duration::from_secs(120);

#[wherever::task]
fn square(x: i64) -> i64 {
    x * x
}

fn each_worker_s_limits_follow_its_join() {
    let client = Plan::parse("processes:2,mem=300MB")
        .unwrap()
        .start()
        .unwrap();
    let events = client.events();
    assert_eq!(client.submit(square, 3).value(), Ok(9));
    let mut joined = Vec::new();
    let mut limits: BTreeMap<u64, MemoryThresholds> = BTreeMap::new();
    let deadline = Instant::now() + HANG_GUARD;
    while limits.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let stamped = events
            .recv_timeout(left)
            .unwrap_or_else(|| panic!("never saw both workers' limits: {limits:?}"));
        match stamped.event {
            Event::WorkerJoined { worker, .. } => joined.push(worker),
            Event::WorkerLimits { worker, limits: l } => {
                assert!(
                    joined.contains(&worker),
                    "limits of worker {worker} before its join"
                );
                limits.insert(worker, l);
            }
            _ => {}
        }
    }
    for (worker, l) in limits {
        assert_eq!(
            l,
            MemoryThresholds {
                limit: 300_000_000,
                target: Some(180_000_000),
                pause: Some(240_000_000),
                terminate: Some(285_000_000),
            },
            "worker {worker}"
        );
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[(
        "each_worker_s_limits_follow_its_join",
        each_worker_s_limits_follow_its_join,
    )])
}
