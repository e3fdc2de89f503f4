//! A node crash under `slurm:jobs=N,partition=multi` (the namespace nodes of
//! `shared/ci/start-slurm.sh` with `CI_SLURM_NETNS_NODES=3`): one node is crashed
//! (`netns-hosts.sh crash K`, every process in it SIGKILLed) while its worker runs
//! tasks; the scheduler loses that worker, its tasks rerun on the others, and the
//! results are right. The node is restored afterwards (`start-slurm.sh` restarts its
//! slurmd, `netns-hosts.sh up` its sshd) and no job of the test is left (Slurm
//! requeues the crashed node's job: the client cancels it).
//!
//! This test binary is its own worker program (`harness = false`). It waits on
//! files its tasks write, the client's worker count and `squeue`, never on sleeps.
//! It skips with a message when Slurm or the namespace nodes are absent.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use wherever::SlurmPlan;
use wherever_cluster::launcher::SLURM_DIR_VARIABLE;

/// How long any wait may take before the test counts as hung (never a timing
/// assertion). Slurm marks a crashed node down about 30 s after the crash.
const HANG_GUARD: Duration = Duration::from_secs(240);

/// Where the shared CI scripts are.
/// The CI scripts: `shared/ci/` beside the project (the workspace is two levels up
/// from this crate).
const CI_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ci");

/// Writes `DIR/started-I-NODE-PID`, waits until `DIR/go` exists, and returns
/// `(i * i, node)`.
#[wherever::task]
fn square_on_node_after_go(i: u64, dir: String) -> (u64, String) {
    let node = std::env::var("SLURMD_NODENAME").unwrap_or_default();
    let dir = PathBuf::from(dir);
    let mark = dir.join(format!("started-{i}-{node}-{}", std::process::id()));
    std::fs::write(&mark, b"").unwrap();
    wait_for(|| dir.join("go").exists(), "the go file");
    (i * i, node)
}

fn wait_for(condition: impl FnMut() -> bool, what: &str) {
    slurm::wait_for(condition, what, HANG_GUARD)
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let output = match Command::new("sinfo")
        .args(["-h", "-p", "multi", "-o", "%D"])
        .output()
    {
        Err(error) => return Some(format!("no `sinfo` on PATH ({error})")),
        Ok(output) => output,
    };
    let nodes: usize = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if !output.status.success() || nodes < 3 {
        return Some(
            "no Slurm partition `multi` with 3 nodes (start Slurm with \
             CI_SLURM_NETNS_NODES=3)"
                .to_string(),
        );
    }
    if !Path::new(CI_DIR).join("netns-hosts.sh").exists() {
        return Some(format!("no {CI_DIR}/netns-hosts.sh to crash a node with"));
    }
    None
}

/// `(started marks: task, node)` in `dir`.
fn started(dir: &Path) -> Vec<(u64, String)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let mut parts = name.strip_prefix("started-")?.splitn(3, '-');
            let i = parts.next()?.parse().ok()?;
            Some((i, parts.next()?.to_string()))
        })
        .collect()
}

/// The test's jobs that `squeue` lists as not ended.
fn active_jobs(name: &str) -> Vec<(String, String)> {
    let output = Command::new("squeue")
        .args(["-h", "-n", name, "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            Some((id.to_string(), state.to_string()))
        })
        .collect()
}

/// Brings a crashed namespace node back (its slurmd, its sshd) when dropped, and
/// cancels whatever job of the test is left.
struct Restore {
    name: String,
    dir: PathBuf,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let script = |name: &str| Path::new(CI_DIR).join(name);
        // Daemons restarted here keep the working directory they are started in:
        // the scripts' own, not one a test or a worktree may delete (a slurmd in a
        // deleted directory makes every job step print an error into its output).
        let slurm = Command::new("bash")
            .current_dir(CI_DIR)
            .arg(script("start-slurm.sh"))
            .env("CI_SLURM_CPUS", "8")
            .env("CI_SLURM_NETNS_NODES", "3")
            .output();
        let hosts = Command::new("bash")
            .current_dir(CI_DIR)
            .arg(script("netns-hosts.sh"))
            .arg("up")
            .env("CI_NETNS_SSHD", "1")
            .env("CI_NETNS_HOSTS", "7")
            .output();
        for (what, outcome) in [("start-slurm.sh", slurm), ("netns-hosts.sh up", hosts)] {
            match outcome {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "restoring with {what} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(error) => eprintln!("cannot run {what}: {error}"),
            }
        }
        if !active_jobs(&self.name).is_empty() {
            let _ = Command::new("scancel").args(["-n", &self.name]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three one-node jobs on `multi`; the node of one worker running tasks is
/// crashed: the client sees that worker lost, the lost tasks run again on the
/// other nodes, every result is right, and no job is left after the client ends
/// (the crashed node's job is cancelled, not left to Slurm's requeue).
fn a_crashed_nodes_tasks_rerun_elsewhere_and_no_job_is_left() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let name = format!("snc-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var(SLURM_DIR_VARIABLE, &dir);
    let restore = Restore {
        name: name.clone(),
        dir: dir.clone(),
    };
    // Two CPUs a job: the whole of a namespace node, so one job on each.
    let plan = SlurmPlan::new()
        .jobs(3)
        .partition("multi")
        .cpus_per_task(2)
        .time("00:10:00")
        .job_name(&name);
    let dir_text = dir.display().to_string();
    let crashed;
    {
        let client = plan.start().unwrap();
        wait_for(|| client.connected_workers() == 3, "three workers");
        let futures: Vec<_> = (0..6)
            .map(|i| client.submit(square_on_node_after_go, (i, dir_text.clone())))
            .collect();
        wait_for(|| started(&dir).len() == 6, "six tasks running");
        let marks = started(&dir);
        let mut nodes: Vec<&str> = marks.iter().map(|(_, n)| n.as_str()).collect();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "one job on each node: {marks:?}");
        crashed = nodes[0].to_string();
        let lost: Vec<u64> = marks
            .iter()
            .filter(|(_, n)| *n == crashed)
            .map(|(i, _)| *i)
            .collect();
        assert!(!lost.is_empty(), "{marks:?}");
        let k = crashed.trim_start_matches("cih");
        let crash = Command::new("bash")
            .arg(Path::new(CI_DIR).join("netns-hosts.sh"))
            .args(["crash", k])
            .output()
            .unwrap();
        assert!(
            crash.status.success(),
            "crash {k}: {}",
            String::from_utf8_lossy(&crash.stderr)
        );
        // The event: the scheduler lost the crashed node's worker.
        wait_for(
            || client.connected_workers() == 2,
            "the crashed worker lost",
        );
        std::fs::write(dir.join("go"), b"").unwrap();
        let results: Vec<(u64, String)> = client.gather(futures).unwrap();
        for (i, (square, node)) in results.iter().enumerate() {
            assert_eq!(*square, (i * i) as u64, "{results:?}");
            assert_ne!(node, &crashed, "task {i} ended on the crashed node");
        }
        for i in &lost {
            let runs = started(&dir).iter().filter(|(j, _)| j == i).count();
            assert_eq!(
                runs, 2,
                "task {i} ran on {crashed}, then once more elsewhere"
            );
        }
    }
    wait_for(
        || active_jobs(&name).is_empty(),
        &format!("no job named {name} queued or running (requeued ones cancelled)"),
    );
    drop(restore);
    // The node is back.
    wait_for(
        || {
            let output = Command::new("sinfo")
                .args(["-h", "-n", &crashed, "-o", "%T"])
                .output()
                .unwrap();
            let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
            ["idle", "mixed", "allocated"].contains(&state.as_str())
        },
        &format!("{crashed} idle again"),
    );
}

#[wherever::main]
fn main() {
    std::env::set_var("WHEREVER_DASHBOARD", "off");
    harness::run_checks(&[(
        "a_crashed_nodes_tasks_rerun_elsewhere_and_no_job_is_left",
        a_crashed_nodes_tasks_rerun_elsewhere_and_no_job_is_left,
    )]);
}
