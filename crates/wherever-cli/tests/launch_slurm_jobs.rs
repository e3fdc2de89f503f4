//! The acceptance line for `slurm:jobs=N` against the real Slurm of
//! `shared/ci/start-slurm.sh`: `calc_mean --seed 3 --tasks 16 --n 1000000 --plan
//! slurm:jobs=2,time=00:05:00` prints sequential's bytes and leaves none of its jobs
//! in `squeue`, and `wherever slurm-script` prints exactly the script Slurm got.
//! Skips with a message when `sinfo` fails.

mod common;
mod launched;

use common::{wherever_binary, TempDir};
use launched::*;
use std::process::Command;

/// Why Slurm cannot run these tests here, if it cannot.
fn slurm_missing() -> Option<String> {
    match Command::new("sinfo").arg("-h").output() {
        Err(error) => Some(format!("no `sinfo` on PATH ({error})")),
        Ok(output) if !output.status.success() => Some(format!(
            "`sinfo` fails: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `(job id, state)` of the jobs named `name` (`all`: ended ones too).
fn jobs_named(name: &str, all: bool) -> Vec<(String, String)> {
    let mut command = Command::new("squeue");
    command.args(["-h", "-n", name, "-o", "%i %T"]);
    if all {
        command.args(["-t", "all"]);
    }
    let output = command.output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            Some((id.to_string(), state.to_string()))
        })
        .collect()
}

/// Cancels whatever job of its name is left when the test ends.
struct JobsNamed(String);

impl Drop for JobsNamed {
    fn drop(&mut self) {
        if !jobs_named(&self.0, false).is_empty() {
            let _ = Command::new("scancel").args(["-n", &self.0]).status();
        }
    }
}

#[test]
fn calc_mean_on_two_jobs_prints_sequentials_bytes_and_leaves_no_job() {
    if let Some(why) = slurm_missing() {
        eprintln!("SKIPPED: Slurm is not available here ({why})");
        return;
    }
    let dir = TempDir::new("slurm-jobs");
    let executable = private_calc_mean(&dir, "calc_mean_jobs");
    let expected = sequential_bytes(&executable);
    let plan = "slurm:jobs=2,time=00:05:00";
    // sbatch's SBATCH_JOB_NAME names this test's jobs without changing the plan
    // or the script (sbatch's environment overrides `#SBATCH` lines).
    let jobs = JobsNamed(format!("sjt-cli-{}", std::process::id()));
    let output = Command::new(&executable)
        .args(STUDY)
        .args(["--plan", plan])
        .current_dir(&dir.0)
        .env("SBATCH_JOB_NAME", &jobs.0)
        .env("WHEREVER_DASHBOARD", "off")
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{errors}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&expected),
        "{errors}"
    );
    assert!(errors.contains("(2 workers)"), "{errors}");
    assert!(
        jobs_named(&jobs.0, false).is_empty(),
        "squeue lists none of its jobs once the program has exited"
    );
    let ended = jobs_named(&jobs.0, true);
    assert_eq!(ended.len(), 2, "{ended:?}");
    let printed = Command::new(wherever_binary())
        .args(["slurm-script", "--plan", plan, "--program"])
        .arg(&executable)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    for (id, state) in &ended {
        assert_eq!(state, "COMPLETED", "job {id}");
        let held = Command::new("scontrol")
            .args(["write", "batch_script", id, "-"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&held.stdout),
            String::from_utf8_lossy(&printed.stdout),
            "job {id}'s script is what slurm-script prints"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".wherever-jobs-"))
        .collect();
    assert!(
        left.is_empty(),
        "no run directory (or secret) left: {left:?}"
    );
    wait_until_none_left(&executable);
}

#[test]
fn slurm_script_rejects_malformed_plans_with_the_reason() {
    for (plan, expected) in [
        ("slurm:jobs=0", "jobs=`0`"),
        ("slurm:jobs=2,time=soon", "time=`soon`"),
        ("threads:2", "slurm-script needs a plan `slurm:jobs=N"),
        ("slurm:jobs=2,bogus=1", "unknown slurm option `bogus`"),
    ] {
        let output = Command::new(wherever_binary())
            .args(["slurm-script", "--plan", plan])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && errors.contains(expected),
            "{plan}: {errors}"
        );
        assert!(output.stdout.is_empty());
    }
}
