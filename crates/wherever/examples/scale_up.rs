//! Time from `scale(4)` to 4 workers connected, and from `scale(1)` to 1 (for
//! BENCHMARKS.md), five rounds on a `processes:1` cluster (or the plan given with
//! `--plan`, when it can scale).
//!
//! `cargo run --example scale_up`

use std::time::{Duration, Instant};
use wherever::prelude::*;

#[wherever::main]
fn main() -> wherever::Result<()> {
    let client = Plan::from_env_or("processes:1")?.start()?;
    println!("| round | scale(4) → 4 connected (s) | scale(1) → 1 connected (s) |");
    println!("|---:|---:|---:|");
    for round in 1..=5 {
        let began = Instant::now();
        client.scale(4)?;
        client.wait_for_workers(4, Duration::from_secs(300))?;
        let up = began.elapsed();
        let began = Instant::now();
        client.scale(1)?;
        while client.connected_workers() > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let down = began.elapsed();
        println!(
            "| {round} | {:.3} | {:.3} |",
            up.as_secs_f64(),
            down.as_secs_f64()
        );
    }
    Ok(())
}
