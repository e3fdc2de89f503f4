//! Helpers for the Slurm and MPI launcher tests: a private copy of the `calc_mean`
//! example (so "no worker left" means processes of this test's own executable),
//! the bytes sequential prints, and waiting for a child with a hang guard.

#![allow(dead_code)]

use crate::common::{example, wait_until, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// The study every launcher test runs.
pub const STUDY: [&str; 6] = ["--seed", "3", "--tasks", "16", "--n", "1000000"];

/// The `calc_mean` example under a name of its own in `dir`: a hard link (a copy
/// would be open for writing while other test threads fork, and running it could
/// fail with "text file busy"), else a copy.
pub fn private_calc_mean(dir: &TempDir, name: &str) -> PathBuf {
    let private = dir.0.join(name);
    if std::fs::hard_link(example("calc_mean"), &private).is_err() {
        std::fs::copy(example("calc_mean"), &private).expect("copies the example");
    }
    private
}

/// What `calc_mean` prints for [`STUDY`] under `--plan sequential`.
pub fn sequential_bytes(executable: &Path) -> Vec<u8> {
    let output = Command::new(executable)
        .args(STUDY)
        .args(["--plan", "sequential"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    output.stdout
}

/// The live processes running `executable`.
pub fn processes_of(executable: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        if exe == executable && crate::common::alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// Waits until no process runs `executable` (a hang guard fails the test).
pub fn wait_until_none_left(executable: &Path) {
    wait_until(
        &format!("no process of {} is left", executable.display()),
        || processes_of(executable).is_empty(),
    );
}

/// Waits (with the hang guard) for `child` to end and collects its output; a child
/// still running at the guard is killed and the test fails.
pub fn wait_with_output(mut child: Child, what: &str) -> Output {
    let deadline = std::time::Instant::now() + crate::common::HANG_GUARD;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what} never ended");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Whether `program --version`-like `args` run successfully (a service's cheap check).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}
