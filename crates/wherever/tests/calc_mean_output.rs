//! What `examples/calc_mean` prints: a header, decimal numbers a person can read,
//! "1 worker" for one; and its flags (`--plan P --tasks 8 --n N --seed S`) parsed by
//! clap through `wherever::PlanArgs`, so that a typo is an error.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The example's binary, which `cargo test` builds with the package's tests.
fn calc_mean() -> PathBuf {
    let deps = std::env::current_exe().expect("the test binary's path");
    let path = deps
        .parent()
        .and_then(|dir| dir.parent())
        .expect("target/PROFILE")
        .join("examples")
        .join("calc_mean");
    assert!(path.exists(), "{} is built by `cargo test`", path.display());
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(calc_mean())
        .args(args)
        .env_remove("WHEREVER_PLAN")
        .env_remove("WHEREVER_SEED")
        .output()
        .expect("calc_mean runs")
}

fn study(plan: &str) -> (String, String) {
    let output = run(&[
        "--plan", plan, "--tasks", "3", "--n", "20000", "--seed", "1",
    ]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

#[test]
fn prints_a_header_decimal_numbers_and_its_worker_count() {
    let (stdout, stderr) = study("sequential");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "task mean sd");
    assert_eq!(lines.len(), 1 + 3);
    for (i, line) in lines[1..].iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], i.to_string());
        for number in &fields[1..] {
            assert!(!number.contains('e'), "decimal, not exponent form: {line}");
            let value: f64 = number.parse().unwrap();
            let digits = number.trim_start_matches(['-', '0', '.']).replace('.', "");
            assert!(digits.len() <= 7, "7 significant digits at most: {number}");
            assert!(value.abs() < 2.0, "{line}");
        }
    }
    assert!(stderr.contains("on sequential (1 worker) in "), "{stderr}");
    let (threads, stderr) = study("threads:2");
    assert_eq!(threads, stdout, "the same bytes under every plan");
    assert!(stderr.contains("on threads:2 (2 workers) in "), "{stderr}");
}

#[test]
fn malformed_flags_are_errors() {
    for args in [
        &["--paln", "sequential"][..],
        &["--plan", "thread"],
        &["--plan"],
        &["--seed", "x"],
        &["--tasks", "many"],
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--plan <PLAN>",
        "WHEREVER_PLAN",
        "--seed <SEED>",
        "--tasks",
        "--n <N>",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}
