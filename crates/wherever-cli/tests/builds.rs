//! One scheduler, more than one program: against a real `wherever scheduler`, two
//! different example binaries, each with its own workers, share it and both get
//! correct results; a client whose build has no workers is told so.

mod common;

use common::*;
use std::process::{Child, Command, Output, Stdio};

/// A worker of `binary` for `scheduler`.
fn worker(binary: &str, scheduler: &Scheduler) -> Child {
    Command::new(example(binary))
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `binary` as a client of `scheduler` with `args`.
fn client(binary: &str, scheduler: &Scheduler, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(example(binary))
        .args(["--plan", &format!("tcp://{}", scheduler.address)])
        .args(args)
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (with a hang guard) and returns its output.
fn finish(mut child: Child, what: &str) -> Output {
    wait_for_exit(&mut child, what);
    child.wait_with_output().unwrap()
}

#[test]
fn two_programs_share_one_scheduler_and_a_build_without_workers_is_told() {
    let dir = TempDir::new("builds");
    let scheduler = Scheduler::start(&dir.0);
    let mut workers = vec![
        worker("calc_mean", &scheduler),
        worker("trivial_tasks", &scheduler),
    ];
    wait_until("both workers joined", || {
        scheduler.log().matches("joined:").count() >= 2
    });

    let study = ["--seed", "1", "--tasks", "4", "--n", "1000"];
    let means = client("calc_mean", &scheduler, &study, &[]);
    let trivial = client("trivial_tasks", &scheduler, &["--tasks", "200"], &[]);
    let orphan = client(
        "delayed_basics",
        &scheduler,
        &[],
        &[
            ("WHEREVER_NO_WORKERS_NOTICE", "0.2"),
            ("WHEREVER_NO_WORKERS_TIMEOUT", "2"),
        ],
    );

    let means = finish(means, "calc_mean's client ends");
    assert!(
        means.status.success(),
        "{}",
        String::from_utf8_lossy(&means.stderr)
    );
    let expected = run_ok(
        &example("calc_mean"),
        &[&["--plan", "sequential"], &study[..]].concat(),
        &[],
    );
    assert_eq!(means.stdout, expected.stdout, "calc_mean's results");

    let trivial = finish(trivial, "trivial_tasks' client ends");
    let stdout = String::from_utf8_lossy(&trivial.stdout);
    assert!(trivial.status.success(), "{stdout}");
    // inc(i) = i + 1 for i in 0..200.
    assert!(stdout.contains("\"sum\":20100"), "{stdout}");

    let orphan = finish(orphan, "the client without workers gives up");
    let stderr = String::from_utf8_lossy(&orphan.stderr);
    assert!(!orphan.status.success(), "{stderr}");
    assert!(
        stderr.contains("has no workers for this program's build"),
        "{stderr}"
    );
    assert!(
        stderr.contains("had no workers for this program's build"),
        "{stderr}"
    );
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
}
