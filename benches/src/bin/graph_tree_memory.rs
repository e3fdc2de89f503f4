//! Peak memory of a wide lazy graph on a local plan: a tree reduction over 2,000
//! leaves of 1 MB, each leaf read by two tasks (pair `i` reads leaves `i` and
//! `i + 1`, wrapping), then the pairs added two by two. Prints the process's peak
//! resident memory (`VmHWM`, reset before the run) in MB and the wall time; on
//! `processes:N`, each worker process's peak over its life as well.
//!
//! ```text
//! cargo build -p wherever-benches --bin graph_tree_memory
//! target/debug/graph_tree_memory sequential      # or threads:2, processes:2; LEAVES=...
//! ```

use serde_bytes::ByteBuf;
use std::time::Instant;
use wherever::prelude::*;

/// Bytes per leaf.
const LEAF_BYTES: usize = 1 << 20;

/// A leaf of 1 MB, every byte written.
#[wherever::task]
fn make_leaf(i: u64) -> ByteBuf {
    ByteBuf::from(vec![(i % 251) as u8; LEAF_BYTES])
}

/// A small summary of two leaves.
#[wherever::task]
fn combine(a: ByteBuf, b: ByteBuf) -> u64 {
    a.iter()
        .chain(b.iter())
        .step_by(4096)
        .map(|&x| x as u64)
        .sum()
}

#[wherever::task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// This worker process's id and peak resident memory in MB over its life (for
/// `processes:N`, where the leaves live in the workers).
#[wherever::task]
fn worker_peak(_i: u64) -> (u32, u64) {
    (std::process::id(), (peak_rss_mb()) as u64)
}

/// The process's peak resident memory in MB since the last reset.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0 / 1e6)
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_PROGRESS", "0");
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "off");
    let plan = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sequential".into());
    let leaves: u64 = std::env::var("LEAVES")
        .ok()
        .map_or(2_000, |text| text.parse().expect("LEAVES: a number"));
    let client = Plan::parse(&plan).expect("a plan").start().expect("start");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let nodes: Vec<Delayed<ByteBuf>> = (0..leaves).map(|i| delayed(make_leaf, i)).collect();
    let mut level: Vec<Delayed<u64>> = (0..nodes.len())
        .map(|i| delayed(combine, (&nodes[i], &nodes[(i + 1) % nodes.len()])))
        .collect();
    drop(nodes);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => delayed(add, (a, b)),
                [a] => a.clone(),
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    let total = level[0].compute(&client).expect("the tree");
    println!(
        "{plan}: {leaves} leaves of 1 MB, peak RSS {:.0} MB, {:.2} s (total {total})",
        peak_rss_mb(),
        started.elapsed().as_secs_f64()
    );
    if plan.starts_with("processes") {
        let mut peaks = client.map(worker_peak, 0..64u64).expect("worker peaks");
        peaks.sort_unstable();
        peaks.dedup();
        for (pid, mb) in peaks {
            println!("  worker process {pid}: peak RSS {mb} MB over its life");
        }
    }
}
