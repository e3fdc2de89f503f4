//! Large results fetched when read (issue 14): on `processes:2`, a result over the
//! inline limit stays on its worker when its task ends, and the client fetches it
//! only when a future's value is read. Forty results of 10 MB kept as futures do
//! not make the client hold 400 MB; read one at a time and dropped, they cost the
//! client about one result. A holder killed between the end of its task and the
//! read is not a hang: the result is recomputed elsewhere. The test binary is its
//! own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use serde_bytes::ByteBuf;
use std::time::Duration;
use wherever::prelude::*;
use wherever::ReturnWhen;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// The size of each result.
const VALUE: usize = 10_000_000;

/// How many results (400 MB in all).
const COUNT: u64 = 40;

/// The byte at `index` of result `i`.
fn byte(i: u64, index: usize) -> u8 {
    ((i as usize * 31 + index / 4096) % 251) as u8
}

/// Result `i`: [`VALUE`] bytes in its own pattern.
#[wherever::task]
fn ten_megabytes(i: u64) -> ByteBuf {
    ByteBuf::from((0..VALUE).map(|index| byte(i, index)).collect::<Vec<u8>>())
}

/// Result `i`; the first worker to make it writes its process id to `note`.
#[wherever::task]
fn ten_megabytes_noting_pid(i: u64, note: String) -> ByteBuf {
    use std::io::Write;
    if let Ok(mut file) = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&note)
    {
        let _ = write!(file, "{}", std::process::id());
    }
    ByteBuf::from((0..VALUE).map(|index| byte(i, index)).collect::<Vec<u8>>())
}

/// Whether `value` is result `i`.
fn is_result(value: &[u8], i: u64) -> bool {
    value.len() == VALUE
        && value
            .iter()
            .enumerate()
            .all(|(index, &b)| b == byte(i, index))
}

/// This process's resident memory now and its peak (`VmRSS`, `VmHWM`), in bytes.
fn rss_and_peak() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets this process's peak resident memory to its current resident memory.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    rss_and_peak().0
}

fn forty_results_of_10_mb_are_fetched_only_when_read() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let before = reset_peak();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(ten_megabytes, i))
        .collect();
    let outcome = wherever::wait(&futures, Some(HANG_GUARD), ReturnWhen::AllCompleted);
    assert!(
        outcome.not_done.is_empty(),
        "not done: {:?}",
        outcome.not_done
    );
    assert!(futures.iter().all(|f| f.is_resolved()));
    let (_, peak) = rss_and_peak();
    let growth = peak.saturating_sub(before);
    println!(
        "client peak growth with {COUNT} results of {VALUE} bytes done, unread: {growth} bytes"
    );
    assert!(
        growth < 100_000_000,
        "the client grew by {growth} bytes before any value was read (results were fetched)"
    );
    // Read one at a time, each dropped before the next.
    let before = reset_peak();
    for (i, future) in futures.into_iter().enumerate() {
        let value = future.value().unwrap();
        assert!(is_result(&value, i as u64), "result {i}");
    }
    let (_, peak) = rss_and_peak();
    let growth = peak.saturating_sub(before);
    println!("client peak growth reading them one at a time: {growth} bytes");
    assert!(
        growth < 6 * VALUE as u64,
        "the client grew by {growth} bytes reading results of {VALUE} bytes one at a time"
    );
}

fn a_holder_killed_before_the_read_is_recomputed_not_a_hang() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let note = std::env::temp_dir().join(format!("wherever-holder-{}", std::process::id()));
    let _ = std::fs::remove_file(&note);
    let note_text = note.display().to_string();
    let future = client.submit(ten_megabytes_noting_pid, (7u64, note_text));
    let outcome = wherever::wait(
        std::slice::from_ref(&future),
        Some(HANG_GUARD),
        ReturnWhen::AllCompleted,
    );
    assert!(outcome.not_done.is_empty(), "the task did not end");
    // Done and not fetched: its holder dies before the read.
    let holder = std::fs::read_to_string(&note).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", holder.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {holder}");
    let value = future.value_timeout(HANG_GUARD).unwrap();
    assert!(is_result(value, 7), "the recomputed result differs");
    let _ = std::fs::remove_file(&note);
}

fn gather_map_and_compute_read_large_results_equal() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let futures: Vec<_> = (0..6u64).map(|i| client.submit(ten_megabytes, i)).collect();
    let gathered = client.gather(futures).unwrap();
    for (i, value) in gathered.iter().enumerate() {
        assert!(is_result(value, i as u64), "gathered result {i}");
    }
    drop(gathered);
    let mapped = client.map(ten_megabytes, 0..6u64).unwrap();
    for (i, value) in mapped.iter().enumerate() {
        assert!(is_result(value, i as u64), "mapped result {i}");
    }
    drop(mapped);
    let outputs: Vec<Delayed<ByteBuf>> = (0..4u64).map(|i| delayed(ten_megabytes, i)).collect();
    let computed = compute(&client, outputs.as_slice()).unwrap();
    for (i, value) in computed.iter().enumerate() {
        assert!(is_result(value, i as u64), "computed result {i}");
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "forty_results_of_10_mb_are_fetched_only_when_read",
            forty_results_of_10_mb_are_fetched_only_when_read,
        ),
        (
            "gather_map_and_compute_read_large_results_equal",
            gather_map_and_compute_read_large_results_equal,
        ),
        (
            "a_holder_killed_before_the_read_is_recomputed_not_a_hang",
            a_holder_killed_before_the_read_is_recomputed_not_a_hang,
        ),
    ]);
}
