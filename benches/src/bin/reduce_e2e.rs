//! A reduce over n futures end to end on `processes:2`: n trivial tasks (timed until all
//! resolved), then one task taking all their results (timed until its value is back).
//!
//! ```text
//! cargo run --release -p wherever-benches --bin reduce_e2e [-- n ...]
//! ```

use std::time::Instant;

use wherever::prelude::*;

#[wherever::task]
fn leaf(i: u64) -> u64 {
    i
}

#[wherever::task]
fn total(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a size"))
        .collect();
    let sizes = if args.is_empty() {
        vec![10_000, 80_000, 160_000]
    } else {
        args
    };
    let client = Plan::parse("processes:2")?.start()?;
    println!("| n | leaves | reduce | µs per input |");
    println!("|---|---|---|---|");
    for n in sizes {
        let start = Instant::now();
        let futures: Vec<TaskFuture<u64>> = (0..n).map(|i| client.submit(leaf, i)).collect();
        wait(&futures, None, ReturnWhen::AllCompleted);
        let leaves = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let sum = client.submit(total, &futures).value()?;
        let reduce = start.elapsed().as_secs_f64();
        assert_eq!(sum, n * (n - 1) / 2);
        println!(
            "| {n} | {leaves:.3} s | {reduce:.3} s | {:.2} |",
            (leaves + reduce) * 1e6 / n as f64
        );
    }
    Ok(())
}
