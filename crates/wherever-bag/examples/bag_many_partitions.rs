//! A bag over many partitions: `Bag::from_iter(0..N, N).count()` with one element
//! per partition. Prints the time to build the graph, the memory it holds per
//! node (resident memory before and after building, from /proc), and the time
//! to compute it.
//!
//! ```text
//! cargo run --release -p wherever-bag --example bag_many_partitions -- --plan threads:2 --partitions 100000
//! ```

use clap::Parser;
use std::time::Instant;
use wherever::prelude::*;
use wherever_bag::Bag;

/// The command line.
#[derive(Parser)]
struct Args {
    /// The plan.
    #[arg(long, default_value = "threads:2")]
    plan: String,
    /// Partitions (one element each).
    #[arg(long, default_value_t = 100_000)]
    partitions: u64,
}

/// This process's resident memory in bytes (`VmRSS`), 0 where /proc is absent.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[wherever::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Plan::parse(&args.plan)?.start()?;
    let n = args.partitions;
    let bag = Bag::from_iter(0..n, n as usize);
    let before = resident();
    let started = Instant::now();
    let count = bag.count();
    let built = started.elapsed();
    let held = resident().saturating_sub(before);
    let nodes = n + n.div_ceil(8) + n.div_ceil(64) + n.div_ceil(512) + n.div_ceil(4096) + 4;
    let started = Instant::now();
    let total = count.compute(&client)?;
    let computed = started.elapsed();
    assert_eq!(total, n);
    println!("count {total}");
    eprintln!(
        "bag_many_partitions: {n} partitions on {}: build {:.3} s ({:.2} µs/node), {} B/node held, compute {:.3} s",
        client.plan(),
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / nodes as f64,
        held / nodes,
        computed.as_secs_f64()
    );
    Ok(())
}
