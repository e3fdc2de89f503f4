//! Values larger than a frame through a `wherever scheduler` (`tcp://`) with two
//! hand-started workers: a 600 MB result, a 300 MB argument and a 300 MB scattered
//! value arrive byte for byte, and values over `WHEREVER_MAX_VALUE` (or the
//! scheduler's `--max-value`) fail their own tasks. The checks are the
//! `large_values` example's.

mod common;

use common::*;
use std::process::{Child, Command};

/// Starts `count` workers of the `large_values` example for `scheduler`, with `env`.
fn start_workers(scheduler: &Scheduler, count: usize, env: &[(&str, &str)]) -> Vec<Child> {
    let secret = scheduler.secret_file.display().to_string();
    let address = format!("tcp://{}", scheduler.address);
    (0..count)
        .map(|_| {
            Command::new(example("large_values"))
                .env("WHEREVER_WORKER", &address)
                .env("WHEREVER_SECRET_FILE", &secret)
                .envs(env.iter().copied())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Runs the example as a client of `scheduler` with `args` and `env`; its output.
fn run_client(scheduler: &Scheduler, args: &[&str], env: &[(&str, &str)]) -> String {
    let secret = scheduler.secret_file.display().to_string();
    let plan = format!("tcp://{}", scheduler.address);
    let mut all_args = vec!["--plan", &plan];
    all_args.extend_from_slice(args);
    let mut all_env = vec![("WHEREVER_SECRET_FILE", secret.as_str())];
    all_env.extend_from_slice(env);
    let output = run_ok(&example("large_values"), &all_args, &all_env);
    String::from_utf8(output.stdout).unwrap()
}

fn stop(scheduler: Scheduler, mut workers: Vec<Child>) {
    drop(scheduler);
    for worker in &mut workers {
        wait_for_exit(worker, "a worker exits after its scheduler");
    }
}

#[test]
fn values_larger_than_a_frame_travel_through_a_scheduler() {
    let dir = TempDir::new("large");
    let scheduler = Scheduler::start(&dir.0);
    let workers = start_workers(&scheduler, 2, &[]);
    let output = run_client(
        &scheduler,
        &["--result-mb", "600", "--value-mb", "300"],
        &[],
    );
    eprintln!("{output}");
    for line in [
        "600 MB result: ok",
        "300 MB argument: ok",
        "300 MB scatter: ok",
    ] {
        assert!(output.contains(line), "{output}");
    }
    stop(scheduler, workers);
}

#[test]
fn values_over_the_limit_fail_alone_through_a_scheduler() {
    let dir = TempDir::new("limit");
    let scheduler = Scheduler::start(&dir.0);
    let limit = [("WHEREVER_MAX_VALUE", "1M")];
    let workers = start_workers(&scheduler, 2, &limit);
    let output = run_client(&scheduler, &["--limit"], &limit);
    assert!(
        output.contains("values over the limit failed alone"),
        "{output}"
    );
    stop(scheduler, workers);
}

#[test]
fn the_schedulers_value_limit_holds_for_its_clients_and_workers() {
    let dir = TempDir::new("max-value");
    let scheduler = Scheduler::start_with(&dir.0, &["--max-value", "1M"]);
    let workers = start_workers(&scheduler, 2, &[]);
    let output = run_client(&scheduler, &["--limit"], &[]);
    assert!(
        output.contains("values over the limit failed alone"),
        "{output}"
    );
    stop(scheduler, workers);
}

#[test]
fn a_result_over_the_clients_own_limit_fails_its_task_alone() {
    let dir = TempDir::new("fetch-limit");
    let scheduler = Scheduler::start(&dir.0);
    let workers = start_workers(&scheduler, 2, &[]);
    let limit = [("WHEREVER_MAX_VALUE", "20M")];
    let output = run_client(&scheduler, &["--fetch-limit"], &limit);
    assert!(
        output.contains("a result over the client's limit failed alone"),
        "{output}"
    );
    stop(scheduler, workers);
}
