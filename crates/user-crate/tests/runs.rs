//! The user crate's program runs and prints the same results under every plan.

use std::process::Command;

fn run(plan: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wherever-user-crate"))
        .args(["--plan", plan, "--seed", "42", "--resamples", "20"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{plan}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_user_program_gives_the_same_results_under_every_plan() {
    let sequential = run("sequential");
    assert!(sequential.starts_with("workers: 1\n"), "{sequential}");
    assert!(
        sequential.contains("halves: [Err(\"1 is odd\"), Ok(1)]"),
        "{sequential}"
    );
    assert!(
        sequential.contains("kept: 7, read: 144, options: 13"),
        "{sequential}"
    );
    assert!(
        sequential.contains("sum: 45, 10 values, means: 20"),
        "{sequential}"
    );
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    for plan in ["threads:2", "processes:2"] {
        let other = run(plan);
        assert!(other.starts_with("workers: 2\n"), "{plan}: {other}");
        assert_eq!(body(&other), body(&sequential), "{plan}");
    }
}

#[test]
fn a_misspelt_flag_is_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_wherever-user-crate"))
        .args(["--paln", "sequential"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--paln"));
}
