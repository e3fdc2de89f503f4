//! Memory of a wide lazy graph: a tree reduction over 2,000 leaves of 1 MB, each
//! leaf used by two tasks, must run depth first (a consumer as soon as its inputs
//! are there, an intermediate result dropped after its last consumer), so only a
//! few leaves are alive at once per slot, not all 2,000 (2 GB). On `processes:2`
//! the leaves stay on the workers that use them: none reaches the client, and each
//! worker's peak memory grows by a few leaves only. The test binary is its own
//! worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/procs.rs"]
mod procs;

use std::sync::atomic::{AtomicI64, Ordering};
use wherever::prelude::*;

/// Leaves in the tree.
const LEAVES: u64 = 2_000;
/// Bytes per leaf.
const LEAF_BYTES: usize = 1 << 20;

/// Leaf buffers alive in this process now, and the most seen at once.
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

/// A leaf buffer that counts itself in [`LIVE`] while it is alive (decoded copies
/// included, since decoding builds a new one).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(from = "Vec<u8>", into = "Vec<u8>")]
struct Counted(Vec<u8>);

impl From<Vec<u8>> for Counted {
    fn from(bytes: Vec<u8>) -> Self {
        let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(live, Ordering::SeqCst);
        Counted(bytes)
    }
}

impl From<Counted> for Vec<u8> {
    fn from(mut counted: Counted) -> Self {
        std::mem::take(&mut counted.0)
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::from(self.0.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[wherever::task]
fn make_leaf(i: u64) -> Counted {
    Counted::from(vec![(i % 251) as u8; LEAF_BYTES])
}

#[wherever::task]
fn combine(a: Counted, b: Counted) -> u64 {
    a.0.iter().step_by(4096).map(|&x| x as u64).sum::<u64>()
        + b.0.iter().step_by(4096).map(|&x| x as u64).sum::<u64>()
}

#[wherever::task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// The tree: leaf `i` feeds pair `i - 1` and pair `i` (pairs wrap around), then
/// the pairs are added two by two, level by level.
fn tree() -> (Delayed<u64>, u64) {
    let leaves: Vec<Delayed<Counted>> = (0..LEAVES).map(|i| delayed(make_leaf, i)).collect();
    let mut level: Vec<Delayed<u64>> = (0..LEAVES as usize)
        .map(|i| {
            let next = &leaves[(i + 1) % leaves.len()];
            delayed(combine, (&leaves[i], next))
        })
        .collect();
    drop(leaves);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => delayed(add, (a, b)),
                [a] => a.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    let per_leaf = |i: u64| (LEAF_BYTES as u64).div_ceil(4096) * (i % 251);
    let expected = (0..LEAVES).map(|i| 2 * per_leaf(i)).sum();
    (level.pop().expect("one root"), expected)
}

/// Computes the tree on `plan`; returns the most leaf buffers alive at once in
/// this process (the client's, for a cluster plan).
fn run_tree(plan: &str) -> i64 {
    let client = Plan::parse(plan).expect("plan").start().expect("start");
    run_tree_on(plan, &client)
}

/// [`run_tree`] on a started `client`.
fn run_tree_on(plan: &str, client: &Client) -> i64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
    let client = client.clone();
    let (root, expected) = tree();
    assert_eq!(root.compute(&client).expect("the tree"), expected);
    let peak = PEAK.load(Ordering::SeqCst);
    println!(
        "{plan}: at most {peak} leaf buffers of 1 MB alive at once; peak RSS {} MB",
        procs::peak_rss(std::process::id()) >> 20
    );
    peak
}

fn sequential_keeps_a_few_leaves_alive() {
    let peak = run_tree("sequential");
    assert!(peak <= 8, "{peak} leaf buffers alive at once on sequential");
}

fn threads_keep_a_few_leaves_alive_per_thread() {
    let peak = run_tree("threads:2");
    assert!(peak <= 16, "{peak} leaf buffers alive at once on threads:2");
}

/// The most a worker's peak resident memory may grow while it runs the tree: a
/// graph root whose kind has made no result yet, or large ones, is queued one task
/// deep (Dask's root-task queueing), so a worker holds a few leaves of 1 MB at a
/// time, not the 2,000 MB of all leaves (13–14 MB seen; 68–82 MB when roots were
/// prefetched 32 deep until the worker held 4 MiB).
const WORKER_GROWTH_MB: u64 = 24;

fn processes_keep_leaves_on_the_workers_and_a_few_at_a_time() {
    let plan = "processes:2";
    let client = Plan::parse(plan)
        .expect("plan")
        .start()
        .expect("start")
        .progress(false);
    // Both workers up and warm before their peaks are taken.
    assert_eq!(
        client.map(add, (0..8u64).map(|i| (i, i))).expect("warm"),
        (0..8u64).map(|i| 2 * i).collect::<Vec<_>>()
    );
    let pids = procs::worker_pids();
    assert_eq!(pids.len(), 2, "not two worker processes: {pids:?}");
    let before: Vec<u64> = pids.iter().map(|&pid| procs::peak_rss(pid) >> 20).collect();
    let client_peak = run_tree_on(plan, &client);
    let after: Vec<u64> = pids.iter().map(|&pid| procs::peak_rss(pid) >> 20).collect();
    println!("{plan}: workers' peak RSS {before:?} MB before the tree, {after:?} MB after");
    assert_eq!(
        client_peak, 0,
        "{client_peak} leaf buffers reached the client, which asked for the root only"
    );
    for ((pid, before), after) in pids.iter().zip(&before).zip(&after) {
        assert!(
            after - before <= WORKER_GROWTH_MB,
            "worker {pid}'s peak grew from {before} MB to {after} MB over the tree"
        );
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "sequential_keeps_a_few_leaves_alive",
            sequential_keeps_a_few_leaves_alive,
        ),
        (
            "threads_keep_a_few_leaves_alive_per_thread",
            threads_keep_a_few_leaves_alive_per_thread,
        ),
        (
            "processes_keep_leaves_on_the_workers_and_a_few_at_a_time",
            processes_keep_leaves_on_the_workers_and_a_few_at_a_time,
        ),
    ]);
}
