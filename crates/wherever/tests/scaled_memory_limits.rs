//! The default memory limit when a `processes` plan scales (issue 14, item 2):
//! without `mem=`, the workers share the machine, so every worker's limit is the
//! machine's memory divided by the workers, and follows their number.
//! `processes:1` scaled to 3 gives each of the three a third of the machine (the
//! first one is told its lower limit before the others start), and back to 1 the
//! one left gets the whole machine again once the others have gone. With
//! `mem=`, scaling leaves the limit alone. Seen through the event stream's
//! `WorkerLimits`, which each worker sends with the limit it runs under.
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/ssh.rs"]
mod ssh;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wherever::events::{Event, Subscription};
use wherever::prelude::*;

/// A hang guard only; nothing is asserted on time.
const HANG_GUARD: Duration = Duration::from_secs(180);

#[wherever::task]
fn limit_here(_i: u64) -> u64 {
    wherever::worker_memory_limits()
        .expect("run in a worker")
        .limit
}

/// The workers connected and the limit each last reported, from the events.
#[derive(Debug, Default)]
struct Limits(BTreeMap<u64, Option<u64>>);

impl Limits {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::WorkerJoined { worker, .. } => {
                self.0.entry(*worker).or_default();
            }
            Event::WorkerLimits { worker, limits } => {
                self.0.insert(*worker, Some(limits.limit));
            }
            Event::WorkerLeft { worker, .. } => {
                self.0.remove(worker);
            }
            _ => {}
        }
    }

    /// Reads `events` until `workers` workers are connected, each with a limit of
    /// `limit` bytes (failing the test after the hang guard).
    fn wait_for(&mut self, events: &Subscription, workers: usize, limit: u64) {
        let deadline = Instant::now() + HANG_GUARD;
        while !(self.0.len() == workers && self.0.values().all(|l| *l == Some(limit))) {
            let left = deadline.saturating_duration_since(Instant::now());
            let stamped = events.recv_timeout(left).unwrap_or_else(|| {
                panic!("never {workers} workers at {limit} bytes each: {self:?}")
            });
            self.apply(&stamped.event);
        }
    }
}

fn machine() -> u64 {
    wherever_cluster::worker::machine_memory().expect("/proc/meminfo")
}

fn without_mem_the_limit_follows_the_number_of_workers() {
    let machine = machine();
    let client = Plan::parse("processes:1").unwrap().start().unwrap();
    let events = client.events();
    assert_eq!(client.submit(limit_here, 0).value(), Ok(machine));
    let mut limits = Limits::default();
    limits.wait_for(&events, 1, machine);

    client.scale(3).unwrap();
    limits.wait_for(&events, 3, machine / 3);
    let reported: Vec<u64> = client.map(limit_here, 0..12u64).unwrap();
    assert!(reported.iter().all(|&l| l == machine / 3), "{reported:?}");

    client.scale(1).unwrap();
    limits.wait_for(&events, 1, machine);
    assert_eq!(client.submit(limit_here, 1).value(), Ok(machine));
}

fn with_mem_scaling_leaves_the_limit_alone() {
    let client = Plan::parse("processes:1,mem=250MB")
        .unwrap()
        .start()
        .unwrap();
    let events = client.events();
    client.scale(3).unwrap();
    let mut limits = Limits::default();
    limits.wait_for(&events, 3, 250_000_000);
    let reported: Vec<u64> = client.map(limit_here, 0..12u64).unwrap();
    assert!(reported.iter().all(|&l| l == 250_000_000), "{reported:?}");
}

/// An `ssh:` plan's workers are the ones its hosts started: `scale` and `adapt`
/// are errors naming the plan (as the README says), and the workers go on.
fn an_ssh_plan_cannot_scale_and_says_so() {
    if !ssh::hosts_up("an_ssh_plan_cannot_scale_and_says_so", &["cih1"]) {
        return;
    }
    let client = Plan::parse("ssh:cih1;mem=200MB").unwrap().start().unwrap();
    for error in [
        client.scale(2).unwrap_err().to_string(),
        client.adapt(1, 3).unwrap_err().to_string(),
    ] {
        assert!(
            error.contains("`ssh:cih1*1` runs a fixed set of workers"),
            "{error}"
        );
    }
    assert_eq!(client.submit(limit_here, 0).value(), Ok(200_000_000));
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "without_mem_the_limit_follows_the_number_of_workers",
            without_mem_the_limit_follows_the_number_of_workers,
        ),
        (
            "with_mem_scaling_leaves_the_limit_alone",
            with_mem_scaling_leaves_the_limit_alone,
        ),
        (
            "an_ssh_plan_cannot_scale_and_says_so",
            an_ssh_plan_cannot_scale_and_says_so,
        ),
    ])
}
