//! Values larger than a frame, shared by the `large_values` test and example: tasks
//! that make and check them, and the checks a client runs under any plan. The
//! values are made and checked cheaply (block fills and compares, no per-byte
//! loop): byte `i` of a value is `(i / BLOCK) % 251`.

use serde_bytes::ByteBuf;
use wherever::prelude::*;
use wherever::TaskErrorKind;

/// The size of a block of equal bytes.
const BLOCK: usize = 1 << 20;

/// A million bytes.
pub const MB: u64 = 1_000_000;

/// A value of `len` bytes in the pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut value = vec![0u8; len];
    for (index, block) in value.chunks_mut(BLOCK).enumerate() {
        block.fill((index % 251) as u8);
    }
    value
}

/// Whether `value` is `len` bytes in the pattern.
pub fn has_pattern(value: &[u8], len: usize) -> bool {
    let mut reference = vec![0u8; BLOCK];
    value.len() == len
        && value.chunks(BLOCK).enumerate().all(|(index, block)| {
            reference.fill((index % 251) as u8);
            block == &reference[..block.len()]
        })
}

/// This process's peak resident memory (`VmHWM`) in MiB; 0 where unknown.
pub fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

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

/// A result of `bytes` bytes arrives whole; returns the peak resident memory of
/// the client and of the worker with the higher peak, in MiB.
pub fn check_result(client: &Client, bytes: u64) -> (u64, u64) {
    let value = client.submit(pattern_of, bytes).value().unwrap();
    assert!(has_pattern(&value, bytes as usize), "the bytes differ");
    drop(value);
    // Every worker reports; the one that made the value has the higher peak.
    let peaks = client
        .gather((0..4).map(|i| client.submit(worker_peak, i)))
        .unwrap();
    let worker = peaks.iter().map(|&(_, peak)| peak).max().unwrap_or(0);
    (peak_rss_mib(), worker)
}

/// An argument of `bytes` bytes arrives whole on a worker.
pub fn check_argument(client: &Client, bytes: u64) {
    let argument = ByteBuf::from(pattern(bytes as usize));
    let checked = client.submit(is_pattern, (argument, bytes));
    assert!(checked.value().unwrap(), "the worker saw other bytes");
}

/// A scattered value of `bytes` bytes arrives whole on the workers.
pub fn check_scatter(client: &Client, bytes: u64) {
    let shared = client
        .scatter(&ByteBuf::from(pattern(bytes as usize)))
        .unwrap();
    let checks: Vec<_> = (0..4)
        .map(|_| client.submit(is_pattern, (&shared, bytes)))
        .collect();
    assert_eq!(client.gather(checks).unwrap(), vec![true; 4]);
}

/// With a value limit of 1 MiB (`WHEREVER_MAX_VALUE=1M` in the client's and
/// workers' environment, or announced by the scheduler), a 2 MiB result and a
/// 3 MiB argument fail their own tasks and a 2 MiB scatter fails, each with its
/// size and the limit, and the tasks around them do not.
pub fn check_limit_of_1_mib(client: &Client) {
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
    let scattered = client.scatter(&ByteBuf::from(pattern(2 << 20)));
    let Err(error) = scattered else {
        panic!("a scatter over the limit fails");
    };
    let error = error.to_string();
    assert!(
        error.contains("value: 20971") && error.contains("limit of 1048576 bytes"),
        "the error gives the size and the limit: {error}"
    );
    assert!(has_pattern(&before.value().unwrap(), 1000));
    assert!(has_pattern(&after.value().unwrap(), 1000));
    assert!(has_pattern(
        &client.submit(pattern_of, 1000).value().unwrap(),
        1000
    ));
}

/// With a value limit of 20 MiB in the client only (`WHEREVER_MAX_VALUE=20M`), a
/// 40 MB result fails its task with its size and the limit (instead of being
/// recomputed and fetched again and again), and a small result still arrives.
pub fn check_fetch_over_the_limit_of_20_mib(client: &Client) {
    let error = client.submit(pattern_of, 40 * MB).value().unwrap_err();
    assert!(
        error.message.contains("4000000") && error.message.contains("limit of 20971520 bytes"),
        "the error gives the size and the limit: {error}"
    );
    assert!(has_pattern(
        &client.submit(pattern_of, 1000).value().unwrap(),
        1000
    ));
}
