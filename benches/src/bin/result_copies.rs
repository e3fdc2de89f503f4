//! Copies of a result on the worker path: one task makes a 160 MB result on
//! `processes:1` (a 4 GB limit, so nothing spills), the client reads it, and the
//! worker's peak resident memory (`VmHWM`) is printed beside its resident memory
//! before the task, in MB: (peak - before) / 160 is the copies at the worst moment
//! (the task's value and its encoding, alive together while the registry encodes
//! it), and (resident after - before) / 160 the copies the worker holds once the
//! task returned (the encoding in its store; the result's future is still alive).
//!
//! ```text
//! cargo build --release -p wherever-benches --bin result_copies
//! target/release/result_copies [MEGABYTES]     # default 160; PLAN=... for another plan
//! ```

use serde_bytes::ByteBuf;
use wherever::prelude::*;

/// A result of `megabytes` MB, every byte written.
#[wherever::task]
fn result_of(megabytes: u64) -> ByteBuf {
    ByteBuf::from(vec![7u8; megabytes as usize * 1_000_000])
}

/// The worker's resident and peak resident memory in MB.
#[wherever::task]
fn memory(_x: u64) -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib * 1024.0 / 1e6)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_PROGRESS", "0");
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "off");
    let megabytes: u64 = std::env::args()
        .nth(1)
        .map_or(160, |text| text.parse().expect("a number of MB"));
    let plan = std::env::var("PLAN").unwrap_or_else(|_| "processes:1,mem=4GB".to_string());
    let client = Plan::parse(&plan).unwrap().start().unwrap();
    let (before, _) = client.submit(memory, 0).value().unwrap();
    let result = client.submit(result_of, megabytes);
    let value = result.value_ref().unwrap();
    assert_eq!(value.len(), megabytes as usize * 1_000_000);
    let (after, peak) = client.submit(memory, 1).value().unwrap();
    println!(
        "a {megabytes} MB result: worker resident {before:.0} MB before, peak {peak:.0} MB: \
         {:.2} copies at the worst moment; resident {after:.0} MB after: {:.2} copies held \
         once the task returned",
        (peak - before) / megabytes as f64,
        (after - before) / megabytes as f64
    );
    drop(result);
}
