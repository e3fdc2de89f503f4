//! Scaling a `slurm:jobs` plan down cancels jobs still queued before it retires
//! any connected worker (`Client::scale` below the workers plus those starting),
//! against the namespace nodes of `shared/ci/start-slurm.sh`
//! (`CI_SLURM_NETNS_NODES=3`). This test binary is its own worker program
//! (`harness = false`); it waits on `squeue` and the client's worker count, never
//! on sleeps, and skips with a message when the partition `multi` is absent.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;

use slurm::multi_nodes;

use std::process::Command;
use std::time::Duration;
use wherever::SlurmPlan;
use wherever_cluster::launcher::SLURM_DIR_VARIABLE;

/// How long any wait may take before the test counts as hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn wait_for(condition: impl FnMut() -> bool, what: &str) {
    slurm::wait_for(condition, what, HANG_GUARD)
}

/// `(id, state)` of every job named `name` Slurm still knows.
fn jobs(name: &str) -> Vec<(String, String)> {
    let output = Command::new("squeue")
        .args(["-h", "-t", "all", "-n", name, "-o", "%i %T"])
        .output()
        .unwrap();
    let mut jobs: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            Some((id.to_string(), state.to_string()))
        })
        .collect();
    jobs.sort();
    jobs
}

fn count(jobs: &[(String, String)], state: &str) -> usize {
    jobs.iter().filter(|(_, s)| s == state).count()
}

/// Cancels the test's jobs left and removes its directory.
struct Scene {
    name: String,
    dir: std::path::PathBuf,
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = Command::new("scancel").args(["-n", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three two-CPU jobs fill the three two-CPU nodes; `scale(5)` queues two more
/// (no room); `scale(3)` cancels those two and retires none of the three workers.
fn scaling_down_cancels_queued_jobs_before_retiring_workers() {
    if multi_nodes() != 3 {
        eprintln!(
            "SKIPPED: no Slurm partition `multi` with 3 nodes (start Slurm with \
             CI_SLURM_NETNS_NODES=3)"
        );
        return;
    }
    let name = format!("ssd-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var(SLURM_DIR_VARIABLE, &dir);
    let scene = Scene {
        name: name.clone(),
        dir,
    };
    let plan = SlurmPlan::new()
        .jobs(3)
        .partition("multi")
        .cpus_per_task(2)
        .time("00:05:00")
        .job_name(&name);
    {
        let client = plan.start().unwrap();
        wait_for(|| client.connected_workers() == 3, "three workers");
        client.scale(5).unwrap();
        wait_for(
            || count(&jobs(&name), "PENDING") == 2,
            "two more jobs queued for want of room",
        );
        client.scale(3).unwrap();
        wait_for(
            || count(&jobs(&name), "CANCELLED") == 2,
            "the two queued jobs cancelled",
        );
        let now = jobs(&name);
        assert_eq!(count(&now, "RUNNING"), 3, "no running job retired: {now:?}");
        assert_eq!(client.connected_workers(), 3);
        // Below the connected workers, workers are retired as before.
        client.scale(2).unwrap();
        wait_for(|| client.connected_workers() == 2, "one worker retired");
    }
    wait_for(
        || {
            jobs(&name)
                .iter()
                .all(|(_, s)| s == "COMPLETED" || s == "CANCELLED")
        },
        "every job ended",
    );
    let ended = jobs(&scene.name);
    assert_eq!(count(&ended, "COMPLETED"), 3, "{ended:?}");
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_DASHBOARD", "off");
    harness::run_checks(&[(
        "scaling_down_cancels_queued_jobs_before_retiring_workers",
        scaling_down_cancels_queued_jobs_before_retiring_workers,
    )]);
}
