//! A map whose results total 1 GB under a 200 MB memory limit per worker
//! (`processes:2,mem=200MB`): 100 results of 10 MB kept alive as futures, then
//! checked on the workers (as task inputs, read back from disk) and read back on
//! the client one by one, each value dropped before the next. Prints the wall time, each worker's peak resident
//! memory (`VmHWM`, the kernel's high-water mark over its whole life) and what
//! its spill directory held at the end of the map.
//!
//! ```text
//! cargo build --release -p wherever-benches --bin spill_map
//! target/release/spill_map [PLAN]        # default processes:2,mem=200MB
//! ```
//!
//! The Dask side: `python3 benches/compare/spill_map_dask.py`.

use serde_bytes::ByteBuf;
use std::time::Instant;
use wherever::prelude::*;

const VALUE: usize = 10_000_000;
const COUNT: u64 = 100;
const BLOCK: usize = 1 << 20;
/// A hang guard for each wait.
const LONG: std::time::Duration = std::time::Duration::from_secs(600);

fn byte(i: u64, block: usize) -> u8 {
    ((i as usize * 31 + block) % 251) as u8
}

/// Result `i`: 10 MB in its own pattern.
#[wherever::task]
fn ten_megabytes(i: u64) -> ByteBuf {
    let mut value = vec![0u8; VALUE];
    for (block, bytes) in value.chunks_mut(BLOCK).enumerate() {
        bytes.fill(byte(i, block));
    }
    ByteBuf::from(value)
}

fn is_result(value: &[u8], i: u64) -> bool {
    value.len() == VALUE
        && value
            .chunks(BLOCK)
            .enumerate()
            .all(|(block, bytes)| bytes.iter().all(|&b| b == byte(i, block)))
}

/// Whether `value` is result `i` (on a worker).
#[wherever::task]
fn check_on_worker(value: ByteBuf, i: u64) -> bool {
    is_result(&value, i)
}

/// The worker processes: this process's children.
fn worker_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    for thread in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(children) = std::fs::read_to_string(thread.path().join("children")) {
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// A `/proc/PID/status` field in MB.
fn status_mb(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0 / 1e6)
}

/// The bytes in the spill directories of worker `pid`, in MB.
fn spilled_mb(pid: u32) -> f64 {
    let prefix = format!("wherever-spill-{pid}-");
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            for file in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                bytes += file.metadata().map_or(0, |m| m.len());
            }
        }
    }
    bytes as f64 / 1e6
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_PROGRESS", "0");
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "off");
    let plan = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "processes:2,mem=200MB".to_string());
    let client = Plan::parse(&plan).unwrap().start().unwrap();
    let pids = worker_pids();
    let start = Instant::now();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(ten_megabytes, i))
        .collect();
    // Waiting reads no value: each result stays on its worker until read.
    let outcome = wherever::wait(&futures, Some(LONG), wherever::ReturnWhen::AllCompleted);
    assert!(outcome.not_done.is_empty());
    let made = start.elapsed();
    let spilled: Vec<f64> = pids.iter().map(|&pid| spilled_mb(pid)).collect();
    let checks: Vec<_> = futures
        .iter()
        .zip(0..COUNT)
        .map(|(future, i)| client.submit(check_on_worker, (future, i)))
        .collect();
    for check in &checks {
        assert_eq!(check.value_timeout(LONG).ok(), Some(&true));
    }
    // Read back one by one, each value dropped before the next (as Dask's
    // `f.result()` in a loop).
    drop(checks);
    for (i, future) in futures.into_iter().enumerate() {
        assert!(is_result(&future.value().unwrap(), i as u64));
    }
    let wall = start.elapsed();
    let peaks: Vec<String> = pids
        .iter()
        .map(|pid| format!("{:.0}", status_mb(&pid.to_string(), "VmHWM:")))
        .collect();
    let spilled: Vec<String> = spilled.iter().map(|mb| format!("{mb:.0}")).collect();
    println!(
        "wherever {plan}: {COUNT} x {} MB, made in {:.2} s, all checked in {:.2} s; \
         worker peak RSS (MB): {}; spilled at the end of the map (MB): {}; client peak RSS {:.0} MB",
        VALUE / 1_000_000,
        made.as_secs_f64(),
        wall.as_secs_f64(),
        peaks.join(", "),
        spilled.join(", "),
        status_mb("self", "VmHWM:"),
    );
}
