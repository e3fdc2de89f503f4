//! Held results read through `gather_async` and `as_completed` (issue 14 item 3),
//! on `processes:2`: the results of 2 MB that ended together are fetched in one
//! request per worker, not one per result, and come back right and in order; a
//! worker killed during the batched fetch leaves no element hanging. The test
//! binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/poll.rs"]
mod poll;

use serde_bytes::ByteBuf;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wherever::prelude::*;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// The size of each result: over the inline limit, so it stays on its worker.
const VALUE: usize = 2_000_000;

/// How many results each check reads.
const COUNT: u64 = 40;

/// Result `i`.
#[wherever::task]
fn two_megabytes(i: u64) -> ByteBuf {
    ByteBuf::from(vec![(i % 251) as u8; VALUE])
}

/// Result `i`, once the file `gate` exists (so the test controls when it ends).
#[wherever::task]
fn gated_two_megabytes(i: u64, gate: String) -> ByteBuf {
    poll::wait_for_path(Path::new(&gate), HANG_GUARD);
    ByteBuf::from(vec![(i % 251) as u8; VALUE])
}

/// Result `i`; the worker making it writes its process id to `dir/i`.
#[wherever::task]
fn two_megabytes_noting_pid(i: u64, dir: String) -> ByteBuf {
    let _ = std::fs::write(
        Path::new(&dir).join(i.to_string()),
        std::process::id().to_string(),
    );
    ByteBuf::from(vec![(i % 251) as u8; VALUE])
}

/// Whether `value` is result `i`.
fn is_result(value: &[u8], i: u64) -> bool {
    value.len() == VALUE && value.iter().all(|&b| b == (i % 251) as u8)
}

/// A fresh path under the temporary directory (nothing there yet).
fn fresh_path(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "wherever-results-stay-async-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ))
}

/// A client on `processes:2`.
fn client() -> Client {
    Plan::parse("processes:2")
        .unwrap()
        .start()
        .unwrap()
        .progress(false)
}

/// Waits until every one of `futures` has ended.
fn wait_all<R>(futures: &[wherever::Future<R>]) {
    let outcome = wherever::wait(futures, Some(HANG_GUARD), ReturnWhen::AllCompleted);
    assert!(
        outcome.not_done.is_empty(),
        "not done: {:?}",
        outcome.not_done
    );
}

/// A single-threaded async runtime: a fetch that blocked its thread would stall
/// every other future on it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `gather` on its own thread's runtime, failing the test if it hangs.
fn gather_on_a_runtime<F>(gather: F) -> Result<Vec<ByteBuf>, wherever::TaskError>
where
    F: std::future::Future<Output = Result<Vec<ByteBuf>, wherever::TaskError>> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(runtime().block_on(gather));
    });
    receiver
        .recv_timeout(HANG_GUARD)
        .expect("gather_async hung")
}

fn gather_async_of_ended_held_results_takes_one_request_per_worker() {
    let client = client();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(two_megabytes, i))
        .collect();
    wait_all(&futures);
    let before = wherever_cluster::fetch::requests_sent();
    let values = gather_on_a_runtime(client.gather_async(futures)).unwrap();
    let requests = wherever_cluster::fetch::requests_sent() - before;
    println!("gather_async of {COUNT} ended results of 2 MB took {requests} fetch requests");
    assert_eq!(values.len(), COUNT as usize);
    for (i, value) in values.iter().enumerate() {
        assert!(is_result(value, i as u64), "result {i} differs");
    }
    assert!(
        requests <= 2,
        "{requests} fetch requests for {COUNT} results held by 2 workers"
    );
}

fn as_completed_of_ended_held_results_takes_one_request_per_worker() {
    let client = client();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(two_megabytes, i))
        .collect();
    wait_all(&futures);
    let before = wherever_cluster::fetch::requests_sent();
    let mut positions = Vec::new();
    for future in wherever::as_completed(futures) {
        let position = future.position();
        let value = future.value().unwrap();
        assert!(is_result(&value, position), "result {position} differs");
        positions.push(position);
    }
    let requests = wherever_cluster::fetch::requests_sent() - before;
    println!("as_completed of {COUNT} ended results of 2 MB took {requests} fetch requests");
    // All had ended: they complete in the order they were given.
    assert_eq!(positions, (0..COUNT).collect::<Vec<_>>());
    assert!(
        requests <= 2,
        "{requests} fetch requests for {COUNT} results held by 2 workers"
    );
}

fn gather_async_of_results_ending_later_gives_them_right_and_in_order() {
    let client = client();
    let gate = fresh_path("gate");
    let gate_text = gate.to_string_lossy().into_owned();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(gated_two_megabytes, (i, gate_text.clone())))
        .collect();
    let before = wherever_cluster::fetch::requests_sent();
    let (sender, receiver) = std::sync::mpsc::channel();
    let gather = client.gather_async(futures);
    let gathering = std::thread::spawn(move || {
        let _ = sender.send(runtime().block_on(gather));
    });
    std::fs::write(&gate, b"open").unwrap();
    let values = receiver
        .recv_timeout(HANG_GUARD)
        .expect("gather_async hung")
        .unwrap();
    gathering.join().unwrap();
    let requests = wherever_cluster::fetch::requests_sent() - before;
    println!("gather_async of {COUNT} results of 2 MB ending meanwhile took {requests} requests");
    for (i, value) in values.iter().enumerate() {
        assert!(is_result(value, i as u64), "result {i} differs");
    }
    assert!(requests <= COUNT, "{requests} requests for {COUNT} results");
    let _ = std::fs::remove_file(&gate);
}

/// Sends `signal` to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Reads the futures to the end on a thread of its own, returning their
/// values by position.
type Reader = Box<dyn FnOnce() -> Result<Vec<ByteBuf>, wherever::TaskError> + Send>;

/// Reads held results with `read` while the worker holding the first is stopped,
/// kills that worker once the batched requests are out, and checks that every
/// element still comes right (those it held recomputed, as a read alone does).
fn kill_a_holder_during_a_batched_read(
    read: impl FnOnce(&Client, Vec<wherever::Future<ByteBuf>>) -> Reader,
) {
    let client = client();
    let dir = fresh_path("pids");
    std::fs::create_dir(&dir).unwrap();
    let dir_text = dir.to_string_lossy().into_owned();
    let futures: Vec<_> = (0..COUNT)
        .map(|i| client.submit(two_megabytes_noting_pid, (i, dir_text.clone())))
        .collect();
    wait_all(&futures);
    let holder = |i: u64| -> u32 {
        std::fs::read_to_string(dir.join(i.to_string()))
            .unwrap()
            .parse()
            .unwrap()
    };
    let victim = holder(0);
    let on_victim = (0..COUNT).filter(|&i| holder(i) == victim).count();
    let holders = if on_victim == COUNT as usize { 1 } else { 2 };
    println!("{on_victim} of {COUNT} results on the worker to be killed");
    // Reading one result of the victim leaves a data connection to it open, so
    // that the batched request reaches it while it is stopped.
    assert!(is_result(futures[0].value_ref().unwrap(), 0));
    signal(victim, "-STOP");
    let before = wherever_cluster::fetch::requests_sent();
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = read(&client, futures);
    std::thread::spawn(move || {
        let _ = sender.send(reader());
    });
    // Both requests are out; the victim, stopped, has not answered its own.
    poll::wait_until("the batched requests", HANG_GUARD, || {
        wherever_cluster::fetch::requests_sent() - before >= holders
    });
    signal(victim, "-KILL");
    let values = receiver
        .recv_timeout(HANG_GUARD)
        .expect("the read hung after a worker died during its fetch")
        .expect("the lost results are recomputed, as when read alone");
    assert_eq!(values.len(), COUNT as usize);
    for (i, value) in values.iter().enumerate() {
        assert!(is_result(value, i as u64), "result {i} differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_worker_killed_during_a_batched_gather_async_leaves_no_element_hanging() {
    kill_a_holder_during_a_batched_read(|client, futures| {
        let gather = client.gather_async(futures);
        Box::new(move || runtime().block_on(gather))
    });
}

fn a_worker_killed_during_a_batched_as_completed_leaves_no_element_hanging() {
    kill_a_holder_during_a_batched_read(|_, futures| {
        Box::new(move || {
            let mut values = Vec::new();
            for future in wherever::as_completed(futures) {
                values.push((future.position(), future.value()?));
            }
            values.sort_by_key(|(position, _)| *position);
            Ok(values.into_iter().map(|(_, value)| value).collect())
        })
    });
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "gather_async_of_ended_held_results_takes_one_request_per_worker",
            gather_async_of_ended_held_results_takes_one_request_per_worker,
        ),
        (
            "as_completed_of_ended_held_results_takes_one_request_per_worker",
            as_completed_of_ended_held_results_takes_one_request_per_worker,
        ),
        (
            "gather_async_of_results_ending_later_gives_them_right_and_in_order",
            gather_async_of_results_ending_later_gives_them_right_and_in_order,
        ),
        (
            "a_worker_killed_during_a_batched_gather_async_leaves_no_element_hanging",
            a_worker_killed_during_a_batched_gather_async_leaves_no_element_hanging,
        ),
        (
            "a_worker_killed_during_a_batched_as_completed_leaves_no_element_hanging",
            a_worker_killed_during_a_batched_as_completed_leaves_no_element_hanging,
        ),
    ]);
}
