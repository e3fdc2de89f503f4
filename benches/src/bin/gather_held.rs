//! `gather` of results that all ended before it was called and stay on their
//! workers until read (over the 1 MiB inline limit): COUNT results of 2 MB on
//! `processes:2`, waited on with `wait`, then gathered. Prints the seconds the
//! gather took (issue 14 item 3: the results are fetched in one request per
//! worker, not one by one).
//!
//! ```text
//! cargo build --release -p wherever-benches --bin gather_held
//! target/release/gather_held [COUNT]        # default 200
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

#[wherever::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u64 = match std::env::args().nth(1) {
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
    let started = Instant::now();
    let values = client.gather(futures)?;
    let seconds = started.elapsed().as_secs_f64();
    for (i, value) in values.iter().enumerate() {
        if value.len() != VALUE || value.iter().any(|&b| b != (i % 251) as u8) {
            return Err(format!("result {i} is wrong").into());
        }
    }
    println!("gather of {count} ended results of {VALUE} bytes: {seconds:.3} s");
    Ok(())
}
