//! Results stay where they are used (issue 14 item 3), on `processes:2`: a
//! future whose every handle the user dropped, read only by the tasks that take
//! it as an argument, no longer travels to the client (neither its `Done` nor
//! its bytes); a future the user keeps still does. The test binary is its own
//! worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wherever::prelude::*;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// How many values decoded in this process: in the client, each is a result
/// that reached it (workers count in their own processes).
static DECODED: AtomicU64 = AtomicU64::new(0);

/// A part of 10 kB (well under the inline limit) that counts its decodings.
#[derive(Serialize)]
struct Part(serde_bytes::ByteBuf);

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DECODED.fetch_add(1, Ordering::SeqCst);
        serde_bytes::ByteBuf::deserialize(deserializer).map(Part)
    }
}

/// Part `i`, made once the file `gate` exists (so the test controls whether it
/// has ended when its futures are dropped).
#[wherever::task]
fn gated_part(i: u64, gate: String) -> Part {
    let deadline = Instant::now() + HANG_GUARD;
    // Polls the condition with a hang guard; asserts nothing about time.
    while !Path::new(&gate).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Part(serde_bytes::ByteBuf::from(vec![(i % 251) as u8; 10_000]))
}

/// The sum of a part's bytes.
#[wherever::task]
fn part_sum(part: Part) -> u64 {
    part.0.iter().map(|&b| u64::from(b)).sum()
}

/// A fresh gate path (the file does not exist yet).
fn gate() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "wherever-results-stay-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ))
}

fn a_value_only_its_dependents_use_never_reaches_the_client() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let gate = gate();
    let gate_text = gate.to_string_lossy().into_owned();
    let count = 20u64;
    let sums: Vec<wherever::Future<u64>> = (0..count)
        .map(|i| {
            let part = client.submit(gated_part, (i, gate_text.clone()));
            // `part` is dropped here: only `part_sum` reads it.
            client.submit(part_sum, &part)
        })
        .collect();
    let decoded_before = DECODED.load(Ordering::SeqCst);
    std::fs::write(&gate, b"open").unwrap();
    let sums = client.gather(sums).unwrap();
    let expected: Vec<u64> = (0..count).map(|i| (i % 251) * 10_000).collect();
    assert_eq!(sums, expected);
    let arrived = DECODED.load(Ordering::SeqCst) - decoded_before;
    println!("parts that reached the client after their futures were dropped: {arrived}");
    assert_eq!(
        arrived, 0,
        "{arrived} of {count} parts nobody held a future of reached the client"
    );
    let _ = std::fs::remove_file(&gate);
}

fn a_value_the_user_keeps_still_reaches_the_client() {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let gate = gate();
    let kept = client.submit(gated_part, (7, gate.to_string_lossy().into_owned()));
    let sum = client.submit(part_sum, &kept);
    let decoded_before = DECODED.load(Ordering::SeqCst);
    std::fs::write(&gate, b"open").unwrap();
    assert_eq!(sum.value().unwrap(), 70_000);
    let kept = kept.value_timeout(HANG_GUARD).unwrap();
    assert_eq!(kept.0.len(), 10_000);
    assert_eq!(DECODED.load(Ordering::SeqCst) - decoded_before, 1);
    let _ = std::fs::remove_file(&gate);
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_value_only_its_dependents_use_never_reaches_the_client",
            a_value_only_its_dependents_use_never_reaches_the_client,
        ),
        (
            "a_value_the_user_keeps_still_reaches_the_client",
            a_value_the_user_keeps_still_reaches_the_client,
        ),
    ]);
}
