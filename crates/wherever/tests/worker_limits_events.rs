//! A worker's memory limit and thresholds in the event stream of a real
//! `processes:N` cluster: each worker's `WorkerLimits` follows its
//! `WorkerJoined`, with the plan's `mem=` and the spill, pause and terminate
//! fractions; and headless Chromium sees the limit in the dashboard's worker view,
//! with the thresholds in the memory cell's tooltip (skipped without Chromium).
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/webdriver.rs"]
mod webdriver;

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

fn a_browser_sees_each_worker_s_limit_and_thresholds() {
    let Some(browser) = webdriver::Browser::start() else {
        return;
    };
    let client = Plan::parse("processes:2,mem=300MB")
        .unwrap()
        .start()
        .unwrap();
    let link = client.dashboard_link().unwrap();
    browser.open(&link);
    assert_eq!(client.submit(square, 4).value(), Ok(16));
    // 300 MB is 286.1 MiB; 60% of it 171.7 MiB, 80% 228.9 MiB, 95% 271.8 MiB.
    browser.wait_for(
        "both workers' memory cells name the limit",
        "return Array.from(document.querySelectorAll('#worker-rows tr'))\
         .map((tr) => tr.children[5].textContent).join('|')",
        |cells| {
            cells
                .split('|')
                .filter(|c| c.ends_with(" of 286.1 MiB"))
                .count()
                == 2
        },
    );
    let tooltip = browser.run("return document.querySelector('#worker-rows tr').children[5].title");
    assert_eq!(
        tooltip,
        "spills past 171.7 MiB, pauses past 228.9 MiB, restarts past 271.8 MiB"
    );
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "each_worker_s_limits_follow_its_join",
            each_worker_s_limits_follow_its_join,
        ),
        (
            "a_browser_sees_each_worker_s_limit_and_thresholds",
            a_browser_sees_each_worker_s_limit_and_thresholds,
        ),
    ])
}
