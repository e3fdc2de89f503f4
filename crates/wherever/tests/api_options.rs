//! Per-task options (`client.options().retries(..).priority(..).name(..)`) and
//! `Client::wait_for_workers`, under `sequential`, `threads:2`, `processes:2`,
//! and against a scheduler served in this process (`tcp://`), with workers that
//! are copies of this test binary (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;
use wherever::prelude::*;
use wherever::{Error, TaskErrorKind};
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::{ClusterRuntime, Secret};

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(60);

const PLANS: [&str; 3] = ["sequential", "threads:2", "processes:2"];

#[wherever::task]
fn fit(model: u32) -> u32 {
    if model == 7 {
        panic!("diverged")
    }
    model
}

/// Appends a line to `DIR/attempts`, then aborts its worker process.
#[wherever::task]
fn count_and_abort(dir: String) -> u32 {
    use std::io::Write;
    let path = PathBuf::from(dir).join("attempts");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(b"attempt\n").unwrap();
    drop(file);
    std::process::abort()
}

/// Waits until `DIR/go` exists (a hang guard of a minute), then returns 1.
#[wherever::task]
fn wait_for_go(dir: String) -> u32 {
    let go = PathBuf::from(dir).join("go");
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    1
}

/// Works for `millis` milliseconds of wall-clock time (a workload, not a wait).
#[wherever::task]
fn work_for(millis: u64) -> u32 {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(millis) {
        std::hint::spin_loop();
    }
    2
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wherever-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn a_named_task_s_errors_show_its_name_under_every_plan() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let named = client.options().name("model 7");
        let error = named.submit(fit, 7).value_timeout(HANG_GUARD).unwrap_err();
        assert!(
            error.to_string().contains("fit [model 7]`"),
            "{plan}: {error}"
        );
        let error = named.map(fit, 5..9u32).unwrap_err();
        assert!(
            error.to_string().contains("fit [model 7]"),
            "{plan}: {error}"
        );
        // The client's own calls keep no name.
        let error = client.submit(fit, 7).value().unwrap_err();
        assert!(!error.to_string().contains("model 7"), "{plan}: {error}");
        // Options change nothing else: same results, same positions.
        let with = named.options().retries(0).priority(5);
        assert_eq!(with.map(fit, 0..4u32).unwrap(), vec![0, 1, 2, 3], "{plan}");
    }
}

/// The retry budget reaches the scheduler: a task that kills its worker each time
/// runs `retries + 1` times, then fails saying so.
fn retries_bound_the_reruns_after_worker_deaths() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    for retries in [0u32, 1] {
        let dir = temp_dir(&format!("retries-{retries}"));
        let future = client
            .options()
            .retries(retries)
            .submit(count_and_abort, dir.display().to_string());
        let error = future.value_timeout(HANG_GUARD).unwrap_err();
        assert_eq!(
            error.kind,
            TaskErrorKind::WorkerLost {
                attempts: retries + 1
            },
            "{error}"
        );
        let attempts = std::fs::read_to_string(dir.join("attempts")).unwrap();
        assert_eq!(attempts.lines().count() as u32, retries + 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A task past its timeout fails with `TimedOut` naming the timeout; one that ends
/// in time is unaffected.
fn a_task_past_its_timeout_fails_naming_it() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let short = client.options().timeout(Duration::from_millis(100));
        let dir = temp_dir(&format!("timeout-{}", plan.replace(':', "-")));
        let future = if plan == "sequential" {
            // The calling thread runs it: work for far longer than the timeout.
            short.submit(work_for, 3_000)
        } else {
            short.submit(wait_for_go, dir.display().to_string())
        };
        let error = future.value_timeout(HANG_GUARD).unwrap_err();
        std::fs::write(dir.join("go"), b"").unwrap();
        assert_eq!(error.kind, TaskErrorKind::TimedOut, "{plan}: {error}");
        assert!(error.to_string().contains("0.100 s"), "{plan}: {error}");
        let long = client.options().timeout(HANG_GUARD);
        assert_eq!(
            long.submit(work_for, 1).value_timeout(HANG_GUARD).unwrap(),
            &2
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn local_plans_have_their_workers_at_once() {
    for (plan, workers) in [("sequential", 1), ("threads:2", 2), ("processes:2", 2)] {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        assert_eq!(
            client.wait_for_workers(workers, HANG_GUARD).unwrap(),
            workers,
            "{plan}"
        );
        if plan != "processes:2" {
            let error = client
                .wait_for_workers(workers + 1, HANG_GUARD)
                .unwrap_err();
            assert!(matches!(error, Error::Workers { .. }), "{plan}: {error}");
        }
    }
}

/// A `tcp://` client waits for workers that join later, and gives up with an error
/// naming the counts when none join in time.
fn a_tcp_client_waits_for_workers_that_join_later() {
    let runtime = ClusterRuntime::start().unwrap();
    let secret = Secret::generate();
    let address = server::start(
        &runtime,
        "127.0.0.1:0",
        secret.clone(),
        ServerOptions::default(),
    )
    .unwrap()
    .to_string();
    std::env::set_var(SECRET_VARIABLE, secret.to_hex());
    let client = Plan::parse(&format!("tcp://{address}"))
        .unwrap()
        .start()
        .unwrap();
    let error = client
        .wait_for_workers(1, Duration::from_millis(200))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Workers {
                wanted: 1,
                connected: 0,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("0 of the 1 workers"), "{error}");
    let waiter = {
        let client = client.clone();
        std::thread::spawn(move || client.wait_for_workers(1, HANG_GUARD))
    };
    let mut worker: Child = Command::new(std::env::current_exe().unwrap())
        .env(WORKER_VARIABLE, format!("tcp://{address}"))
        .env(SECRET_VARIABLE, secret.to_hex())
        .spawn()
        .unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 1);
    assert_eq!(client.submit(fit, 3).value_timeout(HANG_GUARD).unwrap(), &3);
    let _ = worker.kill();
    let _ = worker.wait();
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_named_task_s_errors_show_its_name_under_every_plan",
            a_named_task_s_errors_show_its_name_under_every_plan,
        ),
        (
            "retries_bound_the_reruns_after_worker_deaths",
            retries_bound_the_reruns_after_worker_deaths,
        ),
        (
            "a_task_past_its_timeout_fails_naming_it",
            a_task_past_its_timeout_fails_naming_it,
        ),
        (
            "local_plans_have_their_workers_at_once",
            local_plans_have_their_workers_at_once,
        ),
        (
            "a_tcp_client_waits_for_workers_that_join_later",
            a_tcp_client_waits_for_workers_that_join_later,
        ),
    ]);
}
