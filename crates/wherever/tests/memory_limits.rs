//! Workers under a memory limit (`processes:2,mem=200MB`): a map whose results
//! total 1 GB finishes correctly while its workers spill to disk and stay under
//! the limit; a task that allocates past 95% of the limit gets its worker
//! restarted, and after its retries an error naming the task and the memory.
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/procs.rs"]
mod procs;

use serde_bytes::ByteBuf;
use std::path::PathBuf;
use std::time::Duration;
use wherever::prelude::*;
use wherever::TaskErrorKind;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Each worker's memory limit.
const LIMIT: u64 = 200_000_000;

/// The size of each result of the map.
const VALUE: usize = 10_000_000;

/// How many results (1 GB in all).
const COUNT: u64 = 100;

/// A block of equal bytes in a result.
const BLOCK: usize = 1 << 20;

/// The byte of block `block` of result `i`.
fn byte(i: u64, block: usize) -> u8 {
    ((i as usize * 31 + block) % 251) as u8
}

/// Result `i`: [`VALUE`] bytes, block by block in its own pattern.
#[wherever::task]
fn ten_megabytes(i: u64) -> ByteBuf {
    let mut value = vec![0u8; VALUE];
    for (block, bytes) in value.chunks_mut(BLOCK).enumerate() {
        bytes.fill(byte(i, block));
    }
    ByteBuf::from(value)
}

/// Whether `value` is result `i`.
fn is_result(value: &[u8], i: u64) -> bool {
    value.len() == VALUE
        && value
            .chunks(BLOCK)
            .enumerate()
            .all(|(block, bytes)| bytes.iter().all(|&b| b == byte(i, block)))
}

/// Whether `value` (an input, read back from the worker's store) is result `i`.
#[wherever::task]
fn check_on_worker(value: ByteBuf, i: u64) -> bool {
    is_result(&value, i)
}

/// Allocates and touches `megabytes` MB, then holds them for ever.
#[wherever::task]
fn hog_memory(megabytes: u64) -> u64 {
    let held = vec![1u8; megabytes as usize * 1_000_000];
    loop {
        std::hint::black_box(&held);
        std::thread::park();
    }
}

/// The worker's process id.
#[wherever::task]
fn worker_pid(_i: u64) -> u32 {
    std::process::id()
}

/// The spill directories of worker `pid` and the bytes of the files in them.
fn spilled_on_disk(pid: u32) -> (Vec<PathBuf>, u64) {
    let prefix = format!("wherever-spill-{pid}-");
    let mut directories = Vec::new();
    let mut bytes = 0;
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            for file in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                bytes += file.metadata().map_or(0, |m| m.len());
            }
            directories.push(entry.path());
        }
    }
    (directories, bytes)
}

fn a_1_gb_map_under_a_200_mb_limit_spills_and_stays_under_it() {
    let client = Plan::parse("processes:2,mem=200MB")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let pids = procs::worker_pids();
    assert_eq!(pids.len(), 2, "not two worker processes: {pids:?}");
    let client_before = procs::reset_own_peak();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(ten_megabytes, i))
        .collect();
    // Waiting reads no value: the results stay on the workers.
    let outcome = wherever::wait(
        &futures,
        Some(HANG_GUARD),
        wherever::ReturnWhen::AllCompleted,
    );
    assert!(
        outcome.not_done.is_empty(),
        "not done: {:?}",
        outcome.not_done
    );
    // All 1 GB is held on the workers now (the futures live): most of it on disk.
    let spilled: u64 = pids.iter().map(|&pid| spilled_on_disk(pid).1).sum();
    assert!(
        spilled >= COUNT * VALUE as u64 - 2 * LIMIT,
        "only {spilled} bytes spilled of {} held",
        COUNT * VALUE as u64
    );
    // Read back on the workers, as task inputs, and on the client, one by one.
    let checks: Vec<_> = futures
        .iter()
        .zip(0..COUNT)
        .map(|(future, i)| client.submit(check_on_worker, (future, i)))
        .collect();
    for (i, check) in checks.iter().enumerate() {
        assert_eq!(
            check.value_timeout(HANG_GUARD),
            Ok(&true),
            "result {i} on a worker"
        );
    }
    // Each value is fetched when read and dropped before the next.
    for (i, future) in futures.into_iter().enumerate() {
        let value = future.value().unwrap();
        assert!(is_result(&value, i as u64), "result {i} on the client");
    }
    let client_growth = procs::peak_rss(std::process::id()).saturating_sub(client_before);
    println!("peak RSS growth of the client over the map: {client_growth} bytes");
    assert!(
        client_growth < LIMIT,
        "the client grew by {client_growth} bytes: it held the map's results"
    );
    let peaks: Vec<u64> = pids.iter().map(|&pid| procs::peak_rss(pid)).collect();
    println!("peak RSS of the workers under a {LIMIT}-byte limit: {peaks:?} bytes");
    for (pid, peak) in pids.iter().zip(&peaks) {
        assert!(
            *peak < LIMIT,
            "worker {pid} peaked at {peak} bytes resident, over its limit of {LIMIT}"
        );
    }
    drop(checks);
    drop(client);
    // The workers removed their spill directories when they exited.
    for &pid in &pids {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                !stat
                    .rsplit_once(')')
                    .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
            })
        {
            assert!(
                std::time::Instant::now() < deadline,
                "worker {pid} did not exit"
            );
            std::thread::yield_now();
        }
        let (directories, _) = spilled_on_disk(pid);
        assert!(directories.is_empty(), "left behind: {directories:?}");
    }
}

fn a_task_past_95_percent_restarts_its_worker_and_fails_naming_the_memory() {
    let client = Plan::parse("processes:2,mem=200MB")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let first = procs::worker_pids();
    let hog = client.options().retries(2).submit(hog_memory, 400u64);
    let error = hog.value_timeout(HANG_GUARD).unwrap_err();
    assert_eq!(
        error.kind,
        TaskErrorKind::WorkerLost { attempts: 3 },
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains("hog_memory"), "{text}");
    assert!(
        text.contains("exceeded 95% of its memory limit"),
        "the error does not name the memory reason: {text}"
    );
    // Its workers were restarted (three times), and the new ones run tasks.
    let pids: Vec<u32> = client.map(worker_pid, 0..8u64).unwrap();
    let now = procs::worker_pids();
    assert!(
        now.iter().any(|pid| !first.contains(pid)),
        "no worker was restarted: {first:?} then {now:?}"
    );
    assert!(
        pids.iter().all(|pid| now.contains(pid)),
        "{pids:?} not in {now:?}"
    );
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_1_gb_map_under_a_200_mb_limit_spills_and_stays_under_it",
            a_1_gb_map_under_a_200_mb_limit_spills_and_stays_under_it,
        ),
        (
            "a_task_past_95_percent_restarts_its_worker_and_fails_naming_the_memory",
            a_task_past_95_percent_restarts_its_worker_and_fails_naming_the_memory,
        ),
    ]);
}
