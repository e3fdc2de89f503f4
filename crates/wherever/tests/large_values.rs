//! Values larger than a frame (256 MiB) under `processes:2` with real worker
//! processes: a 600 MB result, a 300 MB argument and a 300 MB scattered value
//! arrive byte for byte (streamed in chunks), and a value over a configured limit
//! (`WHEREVER_MAX_VALUE`) fails its own task with its size and the limit while
//! the others go on. Like `processes.rs`, this test binary is its own worker
//! executable.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/large_value.rs"]
mod large_value;

use large_value::{has_pattern, pattern, peak_rss_mib};
use serde_bytes::ByteBuf;
use wherever::prelude::*;
use wherever::TaskErrorKind;

/// A value of `bytes` bytes in the test pattern.
#[wherever::task]
fn pattern_of(bytes: u64) -> ByteBuf {
    ByteBuf::from(pattern(bytes as usize))
}

/// Whether `value` is `bytes` bytes in the test pattern.
#[wherever::task]
fn is_pattern(value: ByteBuf, bytes: u64) -> bool {
    has_pattern(&value, bytes as usize)
}

/// The worker's process id and peak resident memory in MiB.
#[wherever::task]
fn worker_peak(_x: u64) -> (u32, u64) {
    (std::process::id(), peak_rss_mib())
}

const MB: u64 = 1_000_000;

fn a_600_mb_result_arrives_whole() {
    let client = start("processes:2");
    let result = client.submit(pattern_of, 600 * MB);
    let value = result.value().unwrap();
    assert!(has_pattern(&value, (600 * MB) as usize), "the bytes differ");
    drop(value);
    // Both workers report; the one that made the value has the higher peak.
    let peaks = client
        .gather((0..4).map(|i| client.submit(worker_peak, i)))
        .unwrap();
    let worker = peaks.iter().map(|&(_, peak)| peak).max().unwrap_or(0);
    eprintln!(
        "600 MB result: peak RSS {} MiB in the client, {worker} MiB in the worker",
        peak_rss_mib()
    );
}

fn a_300_mb_argument_arrives_whole() {
    let client = start("processes:2");
    let argument = ByteBuf::from(pattern((300 * MB) as usize));
    let checked = client.submit(is_pattern, (argument, 300 * MB));
    assert!(checked.value().unwrap(), "the worker saw other bytes");
}

fn a_300_mb_scatter_reaches_every_worker() {
    let client = start("processes:2");
    let shared = client
        .scatter(&ByteBuf::from(pattern((300 * MB) as usize)))
        .unwrap();
    let checks: Vec<_> = (0..4)
        .map(|_| client.submit(is_pattern, (&shared, 300 * MB)))
        .collect();
    assert_eq!(client.gather(checks).unwrap(), vec![true; 4]);
}

/// Runs last: it sets `WHEREVER_MAX_VALUE` for this process and its workers.
fn a_value_over_the_limit_fails_its_task_alone() {
    std::env::set_var("WHEREVER_MAX_VALUE", "1M");
    let client = start("processes:2");
    let before = client.submit(pattern_of, 1000);
    let result = client.submit(pattern_of, 2 << 20);
    let argument = client.submit(is_pattern, (ByteBuf::from(pattern(3 << 20)), 3 << 20));
    let after = client.submit(pattern_of, 1000);
    // The sizes are those of the encoded values: 2 MiB and 3 MiB and a few bytes.
    let failures = [
        (result.value().map(|_| ()), "its result: 20971"),
        (argument.value().map(|_| ()), "arguments: 31458"),
    ];
    for (failed, size) in failures {
        let error = failed.unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::Runtime);
        assert!(
            error.message.contains(size) && error.message.contains("limit of 1048576 bytes"),
            "the error gives the size and the limit: {error}"
        );
    }
    assert!(has_pattern(&before.value().unwrap(), 1000));
    assert!(has_pattern(&after.value().unwrap(), 1000));
    assert!(has_pattern(
        &client.submit(pattern_of, 1000).value().unwrap(),
        1000
    ));
}

fn start(plan: &str) -> Client {
    Plan::parse(plan).unwrap().start().unwrap()
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 4] = [
        (
            "a_600_mb_result_arrives_whole",
            a_600_mb_result_arrives_whole,
        ),
        (
            "a_300_mb_argument_arrives_whole",
            a_300_mb_argument_arrives_whole,
        ),
        (
            "a_300_mb_scatter_reaches_every_worker",
            a_300_mb_scatter_reaches_every_worker,
        ),
        (
            "a_value_over_the_limit_fails_its_task_alone",
            a_value_over_the_limit_fails_its_task_alone,
        ),
    ];
    harness::run_checks(&checks)
}
