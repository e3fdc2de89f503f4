//! Results stay where they are used (issue 14 item 3), on `processes:2`: a
//! future whose every handle the user dropped, read only by the tasks that take
//! it as an argument, no longer travels to the client (neither its `Done` nor
//! its bytes); a future the user keeps still does. The test binary is its own
//! worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/poll.rs"]
mod poll;

use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
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
    poll::wait_for_path(Path::new(&gate), HANG_GUARD);
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

/// Result `i`: 2 MB (over the inline limit: it stays on its worker until read).
#[wherever::task]
fn two_megabytes(i: u64) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![(i % 251) as u8; 2_000_000])
}

/// A client on `processes:2` with both workers connected, and `count` results
/// of 2 MB all ended (held by the workers, not fetched).
fn ended_large_results(count: u64) -> (Client, Vec<wherever::Future<serde_bytes::ByteBuf>>) {
    let client = Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false);
    let futures: Vec<_> = (0..count)
        .map(|i| client.submit(two_megabytes, i))
        .collect();
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
    (client, futures)
}

fn a_gather_after_every_task_ended_fetches_in_one_request_per_worker() {
    let count = 40;
    let (client, futures) = ended_large_results(count);
    let before = wherever_cluster::fetch::requests_sent();
    let values = client.gather(futures).unwrap();
    let requests = wherever_cluster::fetch::requests_sent() - before;
    println!("gathering {count} ended results of 2 MB took {requests} fetch requests");
    for (i, value) in values.iter().enumerate() {
        assert!(value.len() == 2_000_000 && value.iter().all(|&b| b == (i % 251) as u8));
    }
    assert!(
        requests <= 2,
        "{requests} fetch requests for {count} results held by 2 workers"
    );
}

/// A waker that tells a channel each time it is woken.
struct ChannelWaker(std::sync::Mutex<std::sync::mpsc::Sender<()>>);

impl std::task::Wake for ChannelWaker {
    fn wake(self: std::sync::Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

fn awaiting_a_held_value_fetches_it_off_the_executor() {
    use std::future::{Future as _, IntoFuture};
    use std::task::{Context, Poll};
    let (_client, mut futures) = ended_large_results(3);
    let (woken, wakes) = std::sync::mpsc::channel();
    let waker = std::task::Waker::from(std::sync::Arc::new(ChannelWaker(woken.into())));
    let mut cx = Context::from_waker(&waker);
    // Ended, but its value is on a worker: the first poll starts the fetch and
    // returns at once rather than blocking this (executor's) thread.
    let mut first = std::pin::pin!(futures.remove(0).into_future());
    assert!(
        first.as_mut().poll(&mut cx).is_pending(),
        "the poll fetched the held value before returning"
    );
    wakes.recv_timeout(HANG_GUARD).expect("woken once fetched");
    match first.as_mut().poll(&mut cx) {
        Poll::Ready(value) => assert_eq!(value.unwrap().as_slice(), &[0u8; 2_000_000][..]),
        Poll::Pending => panic!("woken but not ready"),
    }
    // The two others, joined on a single-threaded executor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let third = futures.pop().unwrap();
    let second = futures.pop().unwrap();
    let (second, third) = runtime.block_on(async {
        let mut second = std::pin::pin!(second.into_future());
        let mut third = std::pin::pin!((&third).into_future());
        let (mut a, mut b) = (None, None);
        std::future::poll_fn(|cx| {
            if a.is_none() {
                if let Poll::Ready(value) = second.as_mut().poll(cx) {
                    a = Some(value);
                }
            }
            if b.is_none() {
                if let Poll::Ready(value) = third.as_mut().poll(cx) {
                    b = Some(value);
                }
            }
            if a.is_some() && b.is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        (a.unwrap(), b.unwrap())
    });
    assert!(second.unwrap().iter().all(|&b| b == 1));
    assert!(third.unwrap().iter().all(|&b| b == 2));
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
        (
            "a_gather_after_every_task_ended_fetches_in_one_request_per_worker",
            a_gather_after_every_task_ended_fetches_in_one_request_per_worker,
        ),
        (
            "awaiting_a_held_value_fetches_it_off_the_executor",
            awaiting_a_held_value_fetches_it_off_the_executor,
        ),
    ]);
}
