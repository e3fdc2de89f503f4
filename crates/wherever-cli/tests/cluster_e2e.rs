//! End-to-end tests of the multi-process plans with real worker processes: the
//! `calc_mean` example under `processes:2` and against a `wherever scheduler`,
//! worker deaths, and no orphans after the client dies.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn calc_mean(plan: &str, tasks: &str, n: &str) -> String {
    let output = run_ok(
        &example("calc_mean"),
        &["--plan", plan, "--seed", "1", "--tasks", tasks, "--n", n],
        &[],
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn processes_plan_prints_the_same_bytes_as_sequential() {
    let sequential = calc_mean("sequential", "8", "1000000");
    assert_eq!(
        sequential.lines().count(),
        1 + 8,
        "a header and one line per task"
    );
    assert_eq!(calc_mean("processes:2", "8", "1000000"), sequential);
}

#[test]
fn killing_a_worker_mid_run_loses_nothing() {
    let expected = calc_mean("sequential", "40", "2000000");
    let mut client = Command::new(example("calc_mean"))
        .args([
            "--plan",
            "processes:2",
            "--seed",
            "1",
            "--tasks",
            "40",
            "--n",
            "2000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers = wait_for_children(client.id(), 2);
    // 10 ticks (0.1 s) of CPU: the worker runs tasks; the whole run takes ~20 times that.
    wait_for_cpu_work(workers[0], 10);
    kill9(workers[0]);
    assert!(
        client.try_wait().unwrap().is_none(),
        "the run should still be going when the worker is killed"
    );
    let output = client.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn a_scheduler_with_hand_started_workers_gives_the_same_bytes() {
    let dir = TempDir::new("tcp");
    let scheduler = Scheduler::start(&dir.0);
    let secret = scheduler.secret_file.display().to_string();
    let worker_address = format!("tcp://{}", scheduler.address);
    // One worker started with the environment variable, one with the flag.
    let mut workers = vec![
        Command::new(example("calc_mean"))
            .env("WHEREVER_WORKER", &worker_address)
            .env("WHEREVER_SECRET_FILE", &secret)
            .spawn()
            .unwrap(),
        Command::new(example("calc_mean"))
            .args(["--wherever-worker", &worker_address])
            .env("WHEREVER_SECRET_FILE", &secret)
            .spawn()
            .unwrap(),
    ];
    let plan = format!("tcp://{}", scheduler.address);
    let output = run_ok(
        &example("calc_mean"),
        &[
            "--plan", &plan, "--seed", "1", "--tasks", "8", "--n", "1000000",
        ],
        &[("WHEREVER_SECRET_FILE", &secret)],
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        calc_mean("sequential", "8", "1000000")
    );
    drop(scheduler);
    // Workers exit on their own once the scheduler is gone.
    for worker in &mut workers {
        wait_for_exit(worker, "a worker exits after its scheduler");
    }
}

#[test]
fn killing_the_client_leaves_no_worker_behind() {
    let mut client = Command::new(example("calc_mean"))
        .args([
            "--plan",
            "processes:2",
            "--seed",
            "1",
            "--tasks",
            "40",
            "--n",
            "5000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let workers = wait_for_children(client.id(), 2);
    // Both workers run tasks when the client dies.
    for &worker in &workers {
        wait_for_cpu_work(worker, 10);
    }
    kill9(client.id());
    client.wait().unwrap();
    wait_until(
        &format!("workers {workers:?} exit after their client"),
        || !workers.iter().any(|&pid| alive(pid)),
    );
}

#[test]
fn nested_study_prints_the_same_bytes_under_every_plan() {
    let run = |plan: &str| {
        let output = run_ok(
            &example("nested_study"),
            &[
                "--plan", plan, "--reps", "5", "--n", "100000", "--seed", "7",
            ],
            &[],
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let expected = run("sequential");
    assert_eq!(expected.lines().count(), 20);
    for plan in ["threads:2", "processes:2", "processes:2/threads:2"] {
        assert_eq!(run(plan), expected, "{plan}");
    }
}

#[test]
fn delayed_basics_computes_five_and_prints_its_graph() {
    let output = run_ok(&example("delayed_basics"), &["--plan", "processes:2"], &[]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("5\ndigraph wherever {"), "{text}");
    assert!(text.contains("\"inc-1\" -> \"add-3\""), "{text}");
}
