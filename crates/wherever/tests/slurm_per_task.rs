//! `slurm:per-task,...` against the real Slurm of `shared/ci/start-slurm.sh`: each
//! task runs in a batch job of its own, whose one worker leaves after it. This
//! test binary is its own worker program (`harness = false`; `#[wherever::main]`).
//! Every test names its jobs with a prefix of its own, waits on `squeue` and on
//! the client's results (never on sleeps), and ends with none of its jobs queued.
//! The tests skip with a message when `sinfo` fails.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;

use slurm::checks_need_slurm;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use wherever::prelude::*;
use wherever::{Future, SlurmPlan, TaskErrorKind};
use wherever_cluster::launcher::SLURM_DIR_VARIABLE;

/// How long any wait may take before the test counts as hung (never a timing
/// assertion: every wait polls a condition).
const HANG_GUARD: Duration = Duration::from_secs(180);

/// The tutorial's `calc_mean`: the mean and standard deviation of `n` draws.
#[wherever::task]
fn calc_mean(i: u64, n: usize, rng: &mut TaskRng) -> (f64, f64) {
    let _ = i;
    let (mut mean, mut squares) = (0.0f64, 0.0f64);
    for k in 1..=n {
        let x: f64 = rng.sample(StandardNormal);
        let delta = x - mean;
        mean += delta / k as f64;
        squares += delta * (x - mean);
    }
    let sd = if n > 1 {
        (squares / (n - 1) as f64).sqrt()
    } else {
        f64::NAN
    };
    (mean, sd)
}

/// Fails for odd `i`, else returns the Slurm job it ran in.
#[wherever::task]
fn even_only(i: u64) -> Result<String, String> {
    if i % 2 == 1 {
        return Err(format!("{i} is odd"));
    }
    Ok(std::env::var("SLURM_JOB_ID").unwrap_or_default())
}

fn wait_for(condition: impl FnMut() -> bool, what: &str) {
    slurm::wait_for(condition, what, HANG_GUARD)
}

/// A test's own directory (the jobs' run directories go there) and job-name
/// prefix; dropping it cancels whatever job of the prefix is left.
struct Scene {
    dir: PathBuf,
    name: String,
}

/// One job as `squeue -t all` lists it.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    name: String,
    state: String,
}

impl Scene {
    fn new(tag: &str) -> Self {
        let name = format!("spt-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var(SLURM_DIR_VARIABLE, &dir);
        Scene { dir, name }
    }

    /// This scene's jobs Slurm still knows (ended ones stay for `MinJobAge`),
    /// those named `NAME` or `NAME-...`.
    fn jobs(&self) -> Vec<Job> {
        let output = Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i|%j|%T"])
            .output()
            .unwrap();
        let prefix = format!("{}-", self.name);
        let mut jobs: Vec<Job> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim().split('|');
                let job = Job {
                    id: parts.next()?.to_string(),
                    name: parts.next()?.to_string(),
                    state: parts.next()?.to_string(),
                };
                (job.name == self.name || job.name.starts_with(&prefix)).then_some(job)
            })
            .collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        jobs
    }

    /// This scene's jobs still queued or running.
    fn active(&self) -> Vec<Job> {
        const ENDED: &[&str] = &[
            "COMPLETED",
            "CANCELLED",
            "FAILED",
            "TIMEOUT",
            "NODE_FAIL",
            "PREEMPTED",
            "OUT_OF_MEMORY",
            "BOOT_FAIL",
            "DEADLINE",
        ];
        self.jobs()
            .into_iter()
            .filter(|j| !ENDED.contains(&j.state.as_str()))
            .collect()
    }

    fn wait_until_none_active(&self) {
        wait_for(
            || self.active().is_empty(),
            &format!("no job of {} queued or running", self.name),
        );
    }

    /// No run directory of the launcher is left (secret, name files and empty
    /// outputs removed).
    fn assert_no_run_dir_left(&self) {
        let left: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".wherever-jobs-"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    fn ids(&self) -> Vec<String> {
        self.jobs().into_iter().map(|j| j.id).collect()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let active: Vec<String> = self.active().into_iter().map(|j| j.id).collect();
        if !active.is_empty() {
            let _ = Command::new("scancel").args(&active).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Six `calc_mean` tasks: six jobs, each named after its task and COMPLETED,
/// results bit for bit those of `sequential`, nothing left in the queue.
fn six_tasks_run_in_six_jobs_that_complete_with_sequentials_results() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("six");
    const SEED: u64 = 3;
    const N: usize = 100_000;
    let expected: Vec<(f64, f64)> = {
        let client = Plan::parse("sequential")
            .unwrap()
            .start()
            .unwrap()
            .with_seed(SEED);
        let futures: Vec<_> = (0..6).map(|i| client.submit(calc_mean, (i, N))).collect();
        client.gather(futures).unwrap()
    };
    let plan = SlurmPlan::new()
        .per_task()
        .partition("debug")
        .time("00:05:00")
        .job_name(&scene.name);
    let job_ids = {
        let client = plan.start().unwrap().with_seed(SEED);
        let futures: Vec<_> = (0..6).map(|i| client.submit(calc_mean, (i, N))).collect();
        let results: Vec<(f64, f64)> = client.gather(futures).unwrap();
        assert_eq!(results.len(), 6);
        let error = client.scale(2).unwrap_err().to_string();
        assert!(
            error.contains("submits one job per task by itself"),
            "{error}"
        );
        for (got, want) in results.iter().zip(&expected) {
            assert_eq!(
                got.0.to_bits(),
                want.0.to_bits(),
                "{results:?} vs {expected:?}"
            );
            assert_eq!(
                got.1.to_bits(),
                want.1.to_bits(),
                "{results:?} vs {expected:?}"
            );
        }
        scene.ids()
    };
    scene.wait_until_none_active();
    let jobs = scene.jobs();
    assert_eq!(
        jobs.len(),
        6,
        "one job per task: {jobs:?} (ids seen {job_ids:?})"
    );
    let mut names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6, "a name per task: {jobs:?}");
    for job in &jobs {
        assert_eq!(job.state, "COMPLETED", "{jobs:?}");
        let rest = job
            .name
            .strip_prefix(&format!("{}-slurm_per_task__calc_mean-", scene.name))
            .unwrap_or_else(|| panic!("job {} is named after its task: {jobs:?}", job.id));
        rest.parse::<u64>()
            .unwrap_or_else(|_| panic!("{} ends in the task's position", job.name));
    }
    scene.assert_no_run_dir_left();
}

/// A task that fails returns its error; the others their values, each from a
/// job of its own; no job is left.
fn a_failing_task_returns_its_error_and_its_job_ends() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("fail");
    let plan = SlurmPlan::new()
        .per_task()
        .time("00:05:00")
        .max_pending(2)
        .job_name(&scene.name);
    {
        let client = plan.start().unwrap();
        // `Result<String, String>`: the result type says `Err` is a failure.
        let futures: Vec<Future<String>> = (0..3).map(|i| client.submit(even_only, i)).collect();
        let results: Vec<Result<String, TaskError>> =
            futures.into_iter().map(|f| f.value()).collect();
        let ok: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 2, "{results:?}");
        assert_ne!(ok[0], ok[1], "two jobs: {results:?}");
        let error = results[1].as_ref().unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::Failed, "{results:?}");
        assert_eq!(error.message, "1 is odd", "{results:?}");
    }
    scene.wait_until_none_active();
    let jobs = scene.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j.state == "COMPLETED"),
        "a failed task is no failed job: {jobs:?}"
    );
    scene.assert_no_run_dir_left();
}

/// A partition Slurm does not have is sbatch's message when the plan starts,
/// not a task waiting for a job that never comes.
fn a_bad_partition_is_an_error_at_start() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("badpart");
    let started = SlurmPlan::new()
        .per_task()
        .partition("no-such-partition")
        .job_name(&scene.name)
        .start();
    let Err(error) = started else {
        panic!("a per-task plan on a partition Slurm does not have started");
    };
    let text = error.to_string();
    assert!(
        text.contains("sbatch refused the job") && text.contains("partition"),
        "{text}"
    );
    assert!(scene.jobs().is_empty(), "{:?}", scene.jobs());
}

fn map_chunks_for_as_many_slots_as_jobs_may_start_at_once() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("slots");
    let client = SlurmPlan::new()
        .per_task()
        .max_pending(3)
        .partition("debug")
        .job_name(&scene.name)
        .start()
        .expect("start");
    // `map`'s default chunking counts slots: not the one a plan without workers
    // would have, so the items do not all go into one job.
    assert_eq!(client.workers(), 3);
    drop(client);
    assert!(scene.jobs().is_empty(), "{:?}", scene.jobs());
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_DASHBOARD", "off");
    harness::run_checks(&[
        (
            "map_chunks_for_as_many_slots_as_jobs_may_start_at_once",
            map_chunks_for_as_many_slots_as_jobs_may_start_at_once,
        ),
        (
            "six_tasks_run_in_six_jobs_that_complete_with_sequentials_results",
            six_tasks_run_in_six_jobs_that_complete_with_sequentials_results,
        ),
        (
            "a_failing_task_returns_its_error_and_its_job_ends",
            a_failing_task_returns_its_error_and_its_job_ends,
        ),
        (
            "a_bad_partition_is_an_error_at_start",
            a_bad_partition_is_an_error_at_start,
        ),
    ]);
}
