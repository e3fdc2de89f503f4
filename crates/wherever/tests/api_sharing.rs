//! Sharing without copies: a scattered `SharedRef` used by many tasks is never
//! decoded on local plans and decoded once per worker process on `processes:2`,
//! counted by a type whose `Deserialize` increments a counter of its process.
//! Workers are copies of this test binary (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use wherever::prelude::*;

/// How often a [`Counted`] was decoded in this process.
static DECODES: AtomicUsize = AtomicUsize::new(0);

/// The bootstrap's data: 5,000 values, counting its decodes.
#[derive(Serialize)]
struct Counted(Vec<f64>);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(Vec::deserialize(deserializer)?))
    }
}

/// One bootstrap resample's mean, this process's id and its decode count.
#[wherever::task]
fn resample(data: SharedRef<Counted>, rng: &mut TaskRng) -> (f64, u32, usize) {
    let n = data.0.len();
    let mean = (0..n).map(|_| data.0[rng.random_range(0..n)]).sum::<f64>() / n as f64;
    (mean, std::process::id(), DECODES.load(Ordering::SeqCst))
}

/// The same with the data decoded into the task's own copy.
#[wherever::task]
fn resample_copy(data: Counted, rng: &mut TaskRng) -> f64 {
    let n = data.0.len();
    (0..n).map(|_| data.0[rng.random_range(0..n)]).sum::<f64>() / n as f64
}

/// Where item `i` ran: its process and thread, and the data's length.
#[wherever::task]
fn where_item_ran(i: u64, data: SharedRef<Counted>) -> (u64, String, usize) {
    let thread = std::thread::current().name().unwrap_or("?").to_string();
    (i, format!("{} {thread}", std::process::id()), data.0.len())
}

fn data() -> Counted {
    Counted((0..5_000).map(f64::from).collect())
}

const RESAMPLES: usize = 400;

fn local_plans_never_decode_a_scattered_shared_ref() {
    for plan in ["sequential", "threads:2"] {
        let client = Plan::parse(plan).unwrap().start().unwrap().with_seed(3);
        let shared = client.scatter(&SharedRef::new(data())).unwrap();
        let before = DECODES.load(Ordering::SeqCst);
        let futures: Vec<_> = (0..RESAMPLES)
            .map(|_| client.submit(resample, &shared))
            .collect();
        let results = client.gather(futures).unwrap();
        assert_eq!(results.len(), RESAMPLES);
        assert_eq!(DECODES.load(Ordering::SeqCst), before, "{plan}");
        // A plain parameter decodes a copy per task: what SharedRef avoids.
        let copied = client.scatter(&data()).unwrap();
        let before = DECODES.load(Ordering::SeqCst);
        let futures: Vec<_> = (0..10)
            .map(|_| client.submit(resample_copy, &copied))
            .collect();
        client.gather(futures).unwrap();
        assert_eq!(DECODES.load(Ordering::SeqCst) - before, 10, "{plan}");
    }
}

fn each_worker_process_decodes_a_scattered_shared_ref_once() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .with_seed(3);
    let shared = client.scatter(&SharedRef::new(data())).unwrap();
    let futures: Vec<_> = (0..RESAMPLES)
        .map(|_| client.submit(resample, &shared))
        .collect();
    let results = client.gather(futures).unwrap();
    let mut most: HashMap<u32, usize> = HashMap::new();
    for (_, pid, decodes) in &results {
        let entry = most.entry(*pid).or_default();
        *entry = (*entry).max(*decodes);
    }
    assert!(most.values().all(|&decodes| decodes == 1), "{most:?}");
}

fn results_are_the_same_under_every_plan() {
    let means = |plan: &str| -> Vec<u64> {
        let client = Plan::parse(plan).unwrap().start().unwrap().with_seed(9);
        let shared = client.scatter(&SharedRef::new(data())).unwrap();
        let futures: Vec<_> = (0..20).map(|_| client.submit(resample, &shared)).collect();
        let results = client.gather(futures).unwrap();
        results.iter().map(|(mean, _, _)| mean.to_bits()).collect()
    };
    let sequential = means("sequential");
    assert_eq!(means("threads:2"), sequential);
    assert_eq!(means("processes:2"), sequential);
}

/// `map` with a scattered argument honours `Scheduling::Static` (one chunk per
/// worker: each chunk's items run one after the other in one task, so on one
/// thread of one process) instead of submitting one task per item.
fn map_with_a_scattered_argument_honours_its_scheduling() {
    for plan in ["sequential", "threads:2", "processes:2"] {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let shared = client.scatter(&SharedRef::new(data())).unwrap();
        let items = (0..40u64).map(|i| (i, &shared));
        let results = client
            .map_with(where_item_ran, items, Scheduling::Static)
            .unwrap();
        let indices: Vec<u64> = results.iter().map(|(i, _, _)| *i).collect();
        assert_eq!(indices, (0..40).collect::<Vec<_>>(), "{plan}");
        assert!(results.iter().all(|(_, _, len)| *len == 5_000), "{plan}");
        let workers = client.workers();
        for chunk in results.chunks(40 / workers) {
            assert!(
                chunk.iter().all(|(_, place, _)| *place == chunk[0].1),
                "{plan}: a chunk ran in several places: {chunk:?}"
            );
        }
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "local_plans_never_decode_a_scattered_shared_ref",
            local_plans_never_decode_a_scattered_shared_ref,
        ),
        (
            "each_worker_process_decodes_a_scattered_shared_ref_once",
            each_worker_process_decodes_a_scattered_shared_ref_once,
        ),
        (
            "map_with_a_scattered_argument_honours_its_scheduling",
            map_with_a_scattered_argument_honours_its_scheduling,
        ),
        (
            "results_are_the_same_under_every_plan",
            results_are_the_same_under_every_plan,
        ),
    ]);
}
