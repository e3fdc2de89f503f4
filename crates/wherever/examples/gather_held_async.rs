//! Held results read through `gather_async` or `as_completed` (issue 14 item 3):
//! COUNT results of 2 MB on `processes:2` (over the 1 MiB inline limit, so they
//! stay on their workers until read), all ended before the read. Prints the
//! seconds the read took and the fetch requests it sent (one per worker for the
//! results that ended together, where it was one per result).
//!
//! ```text
//! cargo build --release -p wherever --example gather_held_async
//! target/release/examples/gather_held_async gather_async [COUNT]   # default 200
//! target/release/examples/gather_held_async as_completed [COUNT]
//! target/release/examples/gather_held_async gather [COUNT]         # blocking, for comparison
//! ```

use serde_bytes::ByteBuf;
use std::time::{Duration, Instant};
use wherever::prelude::*;

/// The size of each result.
const VALUE: usize = 2_000_000;

/// A hang guard for the wait.
const LONG: Duration = Duration::from_secs(600);

/// Result `i`: [`VALUE`] bytes of one value.
#[wherever::task]
fn two_megabytes(i: u64) -> ByteBuf {
    ByteBuf::from(vec![(i % 251) as u8; VALUE])
}

/// Whether `value` is result `i`.
fn is_result(value: &[u8], i: u64) -> bool {
    value.len() == VALUE && value.iter().all(|&b| b == (i % 251) as u8)
}

#[wherever::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gather_held_async gather_async|as_completed|gather [COUNT]";
    let mode = std::env::args().nth(1).ok_or(usage)?;
    let count: u64 = match std::env::args().nth(2) {
        Some(text) => text
            .parse()
            .map_err(|e| format!("COUNT must be a whole number, not `{text}`: {e}"))?,
        None => 200,
    };
    let client = Plan::parse("processes:2")?.start()?.progress(false);
    let futures: Vec<_> = (0..count)
        .map(|i| client.submit(two_megabytes, i))
        .collect();
    let outcome = wherever::wait(&futures, Some(LONG), wherever::ReturnWhen::AllCompleted);
    if !outcome.not_done.is_empty() {
        return Err(format!("{} tasks not done", outcome.not_done.len()).into());
    }
    let requests_before = wherever_cluster::fetch::requests_sent();
    let started = Instant::now();
    match mode.as_str() {
        "gather_async" => {
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            let values = runtime.block_on(client.gather_async(futures))?;
            for (i, value) in values.iter().enumerate() {
                if !is_result(value, i as u64) {
                    return Err(format!("result {i} is wrong").into());
                }
            }
        }
        "gather" => {
            for (i, value) in client.gather(futures)?.iter().enumerate() {
                if !is_result(value, i as u64) {
                    return Err(format!("result {i} is wrong").into());
                }
            }
        }
        "as_completed" => {
            let mut first = None;
            for future in wherever::as_completed(futures) {
                let position = future.position();
                let value = future.value()?;
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                if !is_result(&value, position) {
                    return Err(format!("result {position} is wrong").into());
                }
            }
            println!(
                "as_completed: first value after {:.3} s",
                first.unwrap_or(0.0)
            );
        }
        other => return Err(format!("unknown mode `{other}`; {usage}").into()),
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = wherever_cluster::fetch::requests_sent() - requests_before;
    println!(
        "{mode} of {count} ended results of {VALUE} bytes: {seconds:.3} s, {requests} fetch requests"
    );
    Ok(())
}
