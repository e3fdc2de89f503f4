//! Launch start-up: the time from `Plan::start()` to all workers connected (it
//! returns then) for `ssh:` with three hosts, beside `processes:3` on this machine,
//! and the time to stop them again (dropping the client).
//!
//! ```text
//! cargo build --release -p wherever-benches --bin launch_ssh
//! target/release/launch_ssh [HOST,HOST,HOST]     # default 127.0.0.1,127.0.0.2,127.0.0.3
//! ```
//!
//! The binary is its own worker executable: the hosts must reach it at the same
//! path (the CI machine's loopback sshd and namespace hosts share the file system).
//! Prints a markdown table (median of 5 starts, with the range) to stdout.

use std::time::{Duration, Instant};
use wherever::prelude::*;
use wherever_benches::{load_average, REPEATS};

/// Starts `plan` [`REPEATS`] times; the start-up and stop times of each.
fn measure(plan: &str, workers: usize) -> wherever::Result<(Vec<Duration>, Vec<Duration>)> {
    let plan = Plan::parse(plan)?;
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let started = Instant::now();
        let client = plan.start()?;
        starts.push(started.elapsed());
        assert_eq!(client.workers(), workers, "all workers of {plan} joined");
        let stopping = Instant::now();
        drop(client);
        stops.push(stopping.elapsed());
    }
    Ok((starts, stops))
}

/// `median (min-max) s` of `times`.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    format!(
        "{:.2} s ({:.2}-{:.2})",
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    )
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let hosts = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1,127.0.0.2,127.0.0.3".to_string());
    let count = hosts.split(',').count();
    let load = load_average();
    println!("| plan | start-up to all workers connected, median of {REPEATS} (range) | stop |");
    println!("|---|---|---|");
    for (plan, workers) in [
        (format!("processes:{count}"), count),
        (format!("ssh:{hosts}"), count),
    ] {
        let (starts, stops) = measure(&plan, workers)?;
        println!("| `{plan}` | {} | {} |", summary(starts), summary(stops));
    }
    println!("\n(1-min load average at the start: {load})");
    Ok(())
}
