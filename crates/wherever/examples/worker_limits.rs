//! Prints the memory limits of the workers that run its tasks, one line per
//! distinct limit: `limit=BYTES target=BYTES pause=BYTES terminate=BYTES` (`off`
//! for a step that is off). The CLI's tests run it under `wherever run`.
//!
//! `cargo run --example worker_limits -- --plan processes:2,mem=300MB`

use std::collections::BTreeSet;
use wherever::prelude::*;

/// The limits of the worker this task runs on, as one line (`none` outside a worker).
#[wherever::task]
fn limits_here(i: u64) -> String {
    let _ = i;
    let step = |bytes: Option<u64>| bytes.map_or("off".to_string(), |b| b.to_string());
    match wherever::worker_memory_limits() {
        Some(limits) => format!(
            "limit={} target={} pause={} terminate={}",
            limits.limit,
            step(limits.target),
            step(limits.pause),
            step(limits.terminate)
        ),
        None => "none".to_string(),
    }
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let client = Plan::from_args_or("processes:2")?.start()?;
    let futures: Vec<_> = (0..8).map(|i| client.submit(limits_here, i)).collect();
    let lines: BTreeSet<String> = client.gather(futures)?.into_iter().collect();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
