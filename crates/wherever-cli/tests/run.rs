//! `wherever run --plan processes:N -- PROGRAM ARGS...`: the program runs as the
//! client of a cluster started for it, with the same output as on its own, and the
//! command exits with its status; malformed invocations are refused with a reason.

mod common;

use common::*;
use std::process::{Command, Output};

/// `wherever run ARGS` (with the dashboard off unless `ARGS` say otherwise).
fn wherever_run(args: &[&str]) -> Output {
    Command::new(wherever_binary())
        .arg("run")
        .args(args)
        .env_remove("WHEREVER_PLAN")
        .env_remove("WHEREVER_DASHBOARD")
        .env_remove("WHEREVER_PROGRESS")
        .output()
        .expect("wherever runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const STUDY: [&str; 6] = ["--tasks", "6", "--n", "1000", "--seed", "1"];

#[test]
fn the_program_runs_on_the_cluster_with_its_own_output_and_the_dashboard() {
    let calc_mean = example("calc_mean");
    let program = calc_mean.to_str().unwrap();
    let mut args = vec!["--plan", "processes:2", "--", program];
    args.extend(STUDY);
    let output = wherever_run(&args);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let alone = run_ok(
        &calc_mean,
        &[&["--plan", "sequential"][..], &STUDY].concat(),
        &[],
    );
    assert_eq!(
        text(&output.stdout),
        text(&alone.stdout),
        "seeded: the same bytes"
    );
    assert!(
        stderr.contains("dashboard at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tcp://127.0.0.1:"),
        "ran as a tcp:// client: {stderr}"
    );
}

#[test]
fn the_command_exits_with_the_program_s_status() {
    let calc_mean = example("calc_mean");
    let output = wherever_run(&[
        "--plan",
        "processes:1",
        "--dashboard",
        "off",
        "--",
        calc_mean.to_str().unwrap(),
        "--tasks",
        "not-a-number",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn a_terminal_shows_one_bar_over_all_the_tasks() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let calc_mean = example("calc_mean");
    let line = format!(
        "{} run --plan processes:2 --dashboard off -- {} {}",
        wherever_binary().display(),
        calc_mean.display(),
        STUDY.join(" ")
    );
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("WHEREVER_PROGRESS")
        .output()
        .expect("script runs");
    let shown = text(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("run ["), "a bar: {shown}");
    assert!(shown.contains("6/6"), "all six tasks: {shown}");
}

#[test]
fn malformed_invocations_are_refused_with_a_reason() {
    let cases: [(&[&str], &str); 6] = [
        (&["--plan", "processes:2"], "PROGRAM"),
        (
            &["--plan", "threads:2", "--", "true"],
            "inside the program itself",
        ),
        (
            &["--plan", "processes:0", "--", "true"],
            "worker count from 1",
        ),
        (
            &["--plan", "processes:2,mem=lots", "--", "true"],
            "processes option mem=SIZE",
        ),
        (&["--", "true"], "--plan"),
        (
            &[
                "--plan",
                "processes:1",
                "--dashboard",
                "maybe",
                "--",
                "true",
            ],
            "neither `on` nor `off`",
        ),
    ];
    for (args, reason) in cases {
        let output = wherever_run(args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn a_program_that_does_not_exist_is_an_error_not_a_hang() {
    let output = wherever_run(&[
        "--plan",
        "processes:1",
        "--dashboard",
        "off",
        "--",
        "/nonexistent/wherever-program",
    ]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("/nonexistent/wherever-program"), "{stderr}");
}

#[test]
fn a_processes_plan_with_mem_gives_each_worker_that_limit() {
    let program = example("worker_limits");
    let output = wherever_run(&[
        "--plan",
        "processes:2,mem=300MB",
        "--dashboard",
        "off",
        "--",
        program.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        text(&output.stdout),
        "limit=300000000 target=180000000 pause=240000000 terminate=285000000\n",
        "{stderr}"
    );
}

#[test]
fn a_nested_plan_is_taken_and_its_first_level_starts_the_workers() {
    let program = example("worker_limits");
    let output = wherever_run(&[
        "--plan",
        "processes:1,mem=200MB/threads:2",
        "--dashboard",
        "off",
        "--",
        program.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        text(&output.stdout).starts_with("limit=200000000 "),
        "{stderr}"
    );
}

#[test]
fn an_ssh_plan_starts_the_program_s_workers_on_the_hosts_with_their_limit() {
    if hosts_up("ssh_plan", &["cih1"]).is_none() {
        return;
    }
    let program = std::path::absolute(example("worker_limits")).unwrap();
    let output = wherever_run(&[
        "--plan",
        "ssh:cih1*2;mem=250MB",
        "--dashboard",
        "off",
        "--",
        program.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        text(&output.stdout),
        "limit=250000000 target=150000000 pause=200000000 terminate=237500000\n",
        "{stderr}"
    );
}

#[test]
fn a_slurm_jobs_plan_submits_the_program_s_workers_with_sbatch_s_mem() {
    let slurm = Command::new("sinfo").arg("-h").output();
    if !slurm.is_ok_and(|output| output.status.success()) {
        eprintln!("SKIPPED slurm_jobs plan: `sinfo -h` fails (Slurm is not available here)");
        return;
    }
    let program = std::path::absolute(example("worker_limits")).unwrap();
    let output = wherever_run(&[
        "--plan",
        "slurm:jobs=1,partition=debug,mem=300M",
        "--dashboard",
        "off",
        "--",
        program.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // sbatch's sizes: 300M is 300 MiB.
    assert_eq!(
        text(&output.stdout),
        "limit=314572800 target=188743680 pause=251658240 terminate=298844160\n",
        "{stderr}"
    );
}
