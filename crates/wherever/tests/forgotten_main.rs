//! A program that forgot `#[wherever::main]`: its worker processes run `main`'s body.
//! They must refuse to start a plan of their own (rather than each start more
//! workers), and the client must get an error at once naming the likely cause.
//!
//! This test binary is such a program (see `harness = false` in Cargo.toml): its
//! `main` does not call `wherever::init()`, and when started as a worker it goes on
//! to start a plan. Every process started as a worker appends a line to the file
//! named by [`COUNTER_VARIABLE`], so the test counts them without waiting.

#[path = "common/harness.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use wherever::Plan;

/// Names the file that processes started as workers append a line to.
const COUNTER_VARIABLE: &str = "FORGOTTEN_MAIN_COUNTER";

/// Past this many worker starts a worker gives up without starting a plan, so
/// that a regression stays a bounded burst of processes, not a fork bomb.
const WORKER_LIMIT: usize = 4;

/// What `main`'s body does in a process started as a worker: what a program
/// without `#[wherever::main]` does there, start its plan.
fn run_body_as_a_worker() {
    let counter = PathBuf::from(std::env::var_os(COUNTER_VARIABLE).expect("set by the test"));
    if append(&counter, "started") > WORKER_LIMIT {
        std::process::exit(3);
    }
    match Plan::parse("processes:2").expect("a valid plan").start() {
        Ok(_client) => append(&counter, "started a plan"),
        Err(error) => {
            append(&counter, &format!("refused: {error}"));
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
}

/// Appends `line` to `file` and returns the number of `started` lines in it.
fn append(file: &Path, line: &str) -> usize {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("the counter file opens");
    // One write of a short line: appends from several processes do not interleave.
    out.write_all(format!("{line}\n").as_bytes())
        .expect("the counter file takes a line");
    lines(file).iter().filter(|l| *l == "started").count()
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A fresh counter file for one check.
fn counter(check: &str) -> PathBuf {
    let file = std::env::temp_dir().join(format!(
        "wherever-forgotten-main-{}-{check}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&file);
    file
}

fn a_worker_process_refuses_to_start_a_plan() {
    let file = counter("worker");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("WHEREVER_WORKER", "tcp://127.0.0.1:9")
        .env(COUNTER_VARIABLE, &file)
        .output()
        .expect("the worker process runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        "started as a worker",
        "#[wherever::main]",
        "wherever::init()",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in: {stderr}");
    }
    let seen = lines(&file);
    assert_eq!(seen.len(), 2, "one worker, no workers of its own: {seen:?}");
    assert!(seen[1].starts_with("refused: "), "{seen:?}");
    let _ = std::fs::remove_file(&file);
}

fn the_client_gets_an_error_at_once_when_its_workers_run_main() {
    let file = counter("client");
    // The checks of this binary run one after another on the main thread, and the
    // worker processes inherit the variable.
    std::env::set_var(COUNTER_VARIABLE, &file);
    let error = match Plan::parse("processes:2").unwrap().start() {
        Ok(_) => panic!("a cluster of workers that run main's body started"),
        Err(error) => error.to_string(),
    };
    for expected in [
        "exited (exit status: 1) before connecting",
        "#[wherever::main]",
        "wherever::init()",
    ] {
        assert!(error.contains(expected), "`{expected}` in: {error}");
    }
    // Workers are only replaced after start-up, so at most the 2 first ever ran.
    let started = lines(&file).iter().filter(|l| *l == "started").count();
    assert!(
        (1..=2).contains(&started),
        "{started} worker processes started"
    );
    let _ = std::fs::remove_file(&file);
}

fn main() {
    // No `wherever::init()` here: that is the mistake under test.
    if std::env::var_os("WHEREVER_WORKER").is_some() {
        return run_body_as_a_worker();
    }
    harness::run_checks(&[
        (
            "a_worker_process_refuses_to_start_a_plan",
            a_worker_process_refuses_to_start_a_plan,
        ),
        (
            "the_client_gets_an_error_at_once_when_its_workers_run_main",
            the_client_gets_an_error_at_once_when_its_workers_run_main,
        ),
    ])
}
