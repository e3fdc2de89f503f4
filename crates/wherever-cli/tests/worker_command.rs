//! `wherever worker ADDRESS --threads N --resources R -- PROGRAM`: starts the
//! program as a worker with the environment that says so, and refuses malformed
//! flags with a clear message before starting anything.

mod common;

use common::*;
use std::process::Command;

#[test]
fn the_worker_command_starts_the_program_with_the_worker_environment() {
    let output = Command::new(wherever_binary())
        .args([
            "worker",
            "tcp://127.0.0.1:8786",
            "--threads",
            "3",
            "--resources",
            "gpu=2, mem=4GB",
            "--",
            "sh",
            "-c",
            "echo $WHEREVER_WORKER $WHEREVER_WORKER_THREADS $WHEREVER_WORKER_RESOURCES; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "tcp://127.0.0.1:8786 3 gpu=2,mem=4000000000"
    );
}

#[test]
fn malformed_worker_flags_are_refused_with_a_clear_message() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "tcp://127.0.0.1:8786",
                "--resources",
                "gpu=two",
                "--",
                "true",
            ],
            "`two` is not an amount",
        ),
        (
            &["tcp://127.0.0.1:8786", "--resources", "gpu", "--", "true"],
            "is not NAME=AMOUNT",
        ),
        (&["127.0.0.1", "--", "true"], "expected tcp://HOST:PORT"),
        (
            &["tcp://127.0.0.1:8786", "--threads", "0", "--", "true"],
            "0",
        ),
    ];
    for (args, expected) in cases {
        let output = Command::new(wherever_binary())
            .arg("worker")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = Command::new(wherever_binary())
        .args(["worker", "tcp://127.0.0.1:8786"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
