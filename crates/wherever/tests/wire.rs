//! The wire under `processes:N` with real worker processes: large arguments and
//! results travel in frames of bounded size, and the cluster secret never reaches
//! a task's child process. (Values over a frame and over the value limit:
//! `large_values.rs`.)
//! Like `processes.rs`, this test binary is its own worker executable.

#[path = "common/harness.rs"]
mod harness;

use wherever::prelude::*;

/// The length of a (large) argument.
#[wherever::task]
fn length(text: String) -> u64 {
    text.len() as u64
}

/// A result of `bytes` bytes.
#[wherever::task]
fn text_of(bytes: u64) -> String {
    "r".repeat(bytes as usize)
}

/// What a child process of a task sees in its environment, and whether the
/// worker process itself still has a secret variable.
#[wherever::task]
fn child_environment(_x: u64) -> (String, bool) {
    let output = std::process::Command::new("env")
        .output()
        .expect("`env` runs");
    let own = std::env::vars().any(|(name, _)| name.starts_with("WHEREVER_SECRET"));
    (String::from_utf8_lossy(&output.stdout).into_owned(), own)
}

fn a_task_child_process_never_sees_the_secret() {
    let client = start("processes:2");
    let futures: Vec<_> = (0..4)
        .map(|i| client.submit(child_environment, i))
        .collect();
    for (env, worker_has_it) in client.gather(futures).unwrap() {
        assert!(!worker_has_it, "the worker kept a secret variable");
        assert!(
            env.lines().any(|line| line.starts_with("WHEREVER_WORKER=")),
            "the child's environment is the worker's: {env}"
        );
        assert!(
            !env.lines().any(|line| line.starts_with("WHEREVER_SECRET")),
            "a task's child process sees the secret:\n{env}"
        );
    }
}

fn a_hundred_arguments_of_8_mib_all_arrive() {
    let client = start("processes:2");
    let eight_mib = "a".repeat(8 << 20);
    let futures: Vec<_> = (0..100)
        .map(|_| client.submit(length, eight_mib.clone()))
        .collect();
    let lengths = client.gather(futures).unwrap();
    assert_eq!(lengths, vec![8u64 << 20; 100]);
}

fn a_thousand_results_of_1_mib_all_arrive() {
    let client = start("processes:2");
    // Just under the inline limit, so each travels with its completion message.
    let bytes = (1u64 << 20) - 16;
    let futures: Vec<_> = (0..1000).map(|_| client.submit(text_of, bytes)).collect();
    for future in futures {
        assert_eq!(future.value().unwrap().len() as u64, bytes);
    }
}

fn start(plan: &str) -> Client {
    Plan::parse(plan).unwrap().start().unwrap()
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 3] = [
        (
            "a_task_child_process_never_sees_the_secret",
            a_task_child_process_never_sees_the_secret,
        ),
        (
            "a_hundred_arguments_of_8_mib_all_arrive",
            a_hundred_arguments_of_8_mib_all_arrive,
        ),
        (
            "a_thousand_results_of_1_mib_all_arrive",
            a_thousand_results_of_1_mib_all_arrive,
        ),
    ];
    harness::run_checks(&checks)
}
