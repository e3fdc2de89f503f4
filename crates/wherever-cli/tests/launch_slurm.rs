//! The `slurm` plan against the real Slurm of `shared/ci/start-slurm.sh`:
//! `calc_mean --plan slurm` inside `sbatch -n 3` prints sequential's bytes and
//! leaves no worker, step or job behind; outside an allocation the plan is an
//! error that says to use `sbatch`/`salloc`. The tests that need Slurm skip with
//! a message when it is absent.

mod common;
mod launched;

use common::{wait_until, TempDir};
use launched::*;
use std::process::Command;

/// Why Slurm cannot run these tests here, if it cannot.
fn slurm_missing(cpus: usize) -> Option<String> {
    let Ok(output) = Command::new("sinfo").args(["-h", "-o", "%C"]).output() else {
        return Some("no `sinfo` on PATH".to_string());
    };
    if !output.status.success() {
        return Some(format!(
            "`sinfo` fails: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // Allocated/idle/other/total CPUs.
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let total: usize = text
        .lines()
        .filter_map(|line| line.trim().rsplit('/').next()?.parse::<usize>().ok())
        .sum();
    (total < cpus).then(|| {
        format!(
            "Slurm has {total} CPUs, fewer than the {cpus} the test asks for \
             (start it with CI_SLURM_CPUS=8 bash shared/ci/start-slurm.sh)"
        )
    })
}

/// A submitted batch job, cancelled if the test ends before it does.
struct Job(String);

impl Job {
    /// Whether Slurm still lists the job (pending, running or completing).
    fn queued(&self) -> bool {
        let output = Command::new("squeue")
            .args(["-h", "-j", &self.0, "-o", "%T"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&output.stdout).trim().is_empty()
    }

    /// Its steps still listed.
    fn steps(&self) -> String {
        let output = Command::new("squeue")
            .args(["-h", "-s", "-j", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `scontrol show job`'s `KEY=VALUE` for `key`.
    fn field(&self, key: &str) -> String {
        let output = Command::new("scontrol")
            .args(["show", "job", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_default()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.queued() {
            let _ = Command::new("scancel").arg(&self.0).status();
        }
    }
}

/// Submits `script` with `sbatch ARGS` in `dir` (output to `dir/out.txt`, errors
/// to `dir/err.txt`).
fn submit(dir: &TempDir, args: &[&str], command: &str) -> Job {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!("--chdir={}", dir.0.display()))
        .arg(format!("--output={}", dir.0.join("out.txt").display()))
        .arg(format!("--error={}", dir.0.join("err.txt").display()))
        .args(args)
        .args(["--wrap", command])
        .output()
        .unwrap();
    assert!(output.status.success(), "sbatch: {output:?}");
    let id = String::from_utf8_lossy(&output.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    Job(id)
}

/// Runs the study with `--plan slurm` in a batch job submitted with `sbatch_args`;
/// checks it printed sequential's bytes, said `summary` on stderr, ended
/// COMPLETED with exit code 0, and left no step and no worker process behind.
fn study_in_batch_job(tag: &str, sbatch_args: &[&str], summary: &str) {
    let dir = TempDir::new(tag);
    let executable = private_calc_mean(&dir, &format!("calc_mean_{tag}"));
    let expected = sequential_bytes(&executable);
    let command = format!("{} {} --plan slurm", executable.display(), STUDY.join(" "));
    let job = submit(&dir, sbatch_args, &command);
    wait_until(&format!("Slurm job {} ended", job.0), || !job.queued());
    let errors = std::fs::read_to_string(dir.0.join("err.txt")).unwrap_or_default();
    assert_eq!(
        (job.field("JobState"), job.field("ExitCode")),
        ("COMPLETED".to_string(), "0:0".to_string()),
        "{errors}"
    );
    let printed = std::fs::read(dir.0.join("out.txt")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed),
        String::from_utf8_lossy(&expected),
        "{errors}"
    );
    assert!(errors.contains(summary), "{errors}");
    assert_eq!(job.steps(), "", "no step of the job is left");
    wait_until_none_left(&executable);
}

#[test]
fn calc_mean_inside_sbatch_n3_prints_sequentials_bytes_and_leaves_nothing() {
    if let Some(why) = slurm_missing(3) {
        eprintln!("SKIPPED: Slurm is not available here ({why})");
        return;
    }
    study_in_batch_job("slurm-n3", &["-n", "3"], "on slurm (3 workers)");
}

#[test]
fn each_worker_gets_the_cpus_of_its_task_as_task_threads() {
    if let Some(why) = slurm_missing(4) {
        eprintln!("SKIPPED: Slurm is not available here ({why})");
        return;
    }
    // 2 workers x 2 threads: the client counts 4 task slots.
    study_in_batch_job("slurm-c2", &["-n", "2", "-c", "2"], "on slurm (4 workers)");
}

#[test]
fn the_slurm_plan_outside_an_allocation_says_to_use_sbatch_or_salloc() {
    let dir = TempDir::new("slurm-outside");
    let executable = private_calc_mean(&dir, "calc_mean_outside");
    let output = Command::new(&executable)
        .args(["--plan", "slurm", "--tasks", "1", "--n", "10"])
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{errors}");
    assert!(
        errors.contains("SLURM_JOB_ID is not set")
            && errors.contains("sbatch")
            && errors.contains("salloc"),
        "{errors}"
    );
    assert!(output.stdout.is_empty());
    assert!(processes_of(&executable).is_empty());
}

#[test]
fn an_unknown_slurm_option_is_a_clear_error_naming_the_ones_passed_through() {
    let dir = TempDir::new("slurm-option");
    let executable = private_calc_mean(&dir, "calc_mean_option");
    let output = Command::new(&executable)
        .args(["--plan", "slurm:partition=big", "--tasks", "1", "--n", "10"])
        // A made-up allocation: the options are checked before anything starts.
        .env("SLURM_JOB_ID", "999999")
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{errors}");
    assert!(
        errors.contains("unknown slurm option `partition`") && errors.contains("cpus-per-task"),
        "{errors}"
    );
}

#[test]
fn asking_srun_for_more_tasks_than_allocated_fails_the_start_with_sruns_reason() {
    if let Some(why) = slurm_missing(2) {
        eprintln!("SKIPPED: Slurm is not available here ({why})");
        return;
    }
    let dir = TempDir::new("slurm-too-many");
    let executable = private_calc_mean(&dir, "calc_mean_too_many");
    let command = format!(
        "{} --tasks 1 --n 10 --plan slurm:ntasks=4",
        executable.display()
    );
    let job = submit(&dir, &["-n", "2"], &command);
    wait_until(&format!("Slurm job {} ended", job.0), || !job.queued());
    let errors = std::fs::read_to_string(dir.0.join("err.txt")).unwrap_or_default();
    assert_eq!(job.field("JobState"), "FAILED", "{errors}");
    assert!(
        errors.contains("cannot start plan `slurm:ntasks=4`")
            && errors.contains("`srun` exited")
            && errors.contains("0 of 4 workers had connected"),
        "{errors}"
    );
    assert_eq!(job.steps(), "", "no step of the job is left");
    wait_until_none_left(&executable);
}
