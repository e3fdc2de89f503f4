//! A client's normal exit leaves no warnings in the scheduler's log (it used to
//! log one warning per exit, and earlier about 75 `unknown task` lines).

mod common;

use common::*;
use std::process::{Command, Stdio};

#[test]
fn a_client_that_exits_normally_leaves_no_warning_in_the_scheduler_log() {
    let dir = TempDir::new("quiet-exit");
    let scheduler = Scheduler::start(&dir.0);
    let secret = scheduler.secret_file.display().to_string();
    let address = format!("tcp://{}", scheduler.address);
    let mut worker = start_worker(&scheduler);
    // Many tasks, so that releases and cancels of finished tasks cross the exit.
    let client = Command::new(example("calc_mean"))
        .args([
            "--plan", &address, "--seed", "1", "--tasks", "200", "--n", "1000",
        ])
        .env("WHEREVER_SECRET_FILE", &secret)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = client.id();
    let output = client.wait_with_output().unwrap();
    assert!(output.status.success());
    let label = format!("process {pid} on");
    wait_until("the scheduler to log the client's exit", || {
        scheduler
            .log()
            .lines()
            .any(|line| line.contains(&label) && !line.contains("joined"))
    });
    let log = scheduler.log();
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(!log.contains("unknown task"), "{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(log.contains(&format!("client left: {label}")), "{log}");
}
