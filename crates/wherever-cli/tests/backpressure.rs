//! Back-pressure against a real `wherever scheduler`: a client that stops reading
//! while its tasks finish does not make the scheduler keep every result for it;
//! once it reads again it gets every result (from the workers).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// 400 MB of results: far over what the scheduler may hold for one client (the
// 64 MiB queue limit; the test allows 256 MiB), small enough for a debug build on
// a loaded 2-core machine.
const TASKS: usize = 400;
const BYTES: usize = 1_000_000;

/// Starts a `large_results` worker of `scheduler` whose "made block" lines are
/// counted into `made`.
fn counted_worker(scheduler: &Scheduler, made: &Arc<AtomicUsize>) -> std::process::Child {
    let mut child = Command::new(example("large_results"))
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .env("WHEREVER_WORKER_THREADS", "2")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let made = made.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("made block") {
                made.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    child
}

#[test]
fn a_stopped_client_does_not_make_the_scheduler_hold_its_results() {
    let dir = TempDir::new("backpressure");
    // The client stays stopped for as long as the tasks take: no heartbeat timeout.
    let scheduler = Scheduler::start_with(&dir.0, &["--heartbeat-timeout", "3600"]);
    let pid = scheduler.child.id();
    let made = Arc::new(AtomicUsize::new(0));
    let mut workers: Vec<_> = (0..2).map(|_| counted_worker(&scheduler, &made)).collect();
    wait_until("both workers joined", || {
        scheduler.log().matches("joined:").count() >= 2
    });
    let link = scheduler.dashboard_link();
    reset_peak(pid);
    let start = peak_resident_kib(pid);

    let mut client = Command::new(example("large_results"))
        .args(["--plan", &format!("tcp://{}", scheduler.address)])
        .args(["--tasks", &TASKS.to_string(), "--bytes", &BYTES.to_string()])
        .arg("--announce")
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(client.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("submitted"), "{line}");
    // `submitted` means handed to the client's I/O thread, not yet on the wire:
    // stopping the client before the scheduler has every task would leave the rest
    // unsent (the cause of "only 1 of 400 tasks ran while the client was stopped").
    wait_until("the scheduler has every task", || {
        scheduler.tasks_received(&link) >= TASKS as u64
    });
    signal(client.id(), "-STOP");
    // Every task runs while the client is stopped (the count says how far it got).
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while made.load(Ordering::SeqCst) < TASKS {
        let ran = made.load(Ordering::SeqCst);
        assert!(
            std::time::Instant::now() < deadline,
            "only {ran} of {TASKS} tasks ran while the client was stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The last results reach the scheduler: the workers report them at once, and
    // a look at the peak after the client is done covers them anyway.
    signal(client.id(), "-CONT");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let output = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{rest}");
    let expected: u64 = (0..TASKS as u64).map(|i| i % 256).sum();
    assert!(
        stdout.contains(&format!(
            "\"tasks\":{TASKS},\"bytes\":{},\"checksum\":{expected}",
            TASKS * BYTES
        )),
        "{stdout}"
    );
    let peak = peak_resident_kib(pid);
    eprintln!("scheduler VmHWM: {start} KiB before, {peak} KiB after {TASKS} results of {BYTES} bytes to a stopped client");
    // The queue limit (64 MiB) plus encoding buffers, far below the ~1 GB of results.
    assert!(
        peak < start + 256 * 1024,
        "the scheduler grew from {start} KiB to {peak} KiB"
    );
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
}
