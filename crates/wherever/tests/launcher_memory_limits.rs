//! Every launcher gives its workers a memory limit (issue 14, item 2): the plan's
//! `mem=SIZE`, else the memory of the machine the worker runs on divided by the
//! workers sharing it. Each check asks every worker, through a task, for the limit
//! it runs under ([`wherever::worker_memory_limits`]):
//! - `ssh:` against the namespace hosts cih1, cih2 (skipped with a message when
//!   they cannot be reached): `;mem=` on every worker, and by default each host's
//!   memory divided by the workers started on it;
//! - `mpi` under the real `mpirun` (skipped without it): `mpi:N,mem=`, and by
//!   default the node's memory divided by the ranks on it;
//! - workers added by `scale` get the limit of the first ones (`processes` with
//!   `mem=`, and `slurm:jobs`, skipped without Slurm), `processes` without `mem=`
//!   shares the machine among all its workers, and `slurm:jobs` without `mem`
//!   divides the node's memory by the job's workers on it.
//!
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;
#[path = "common/ssh.rs"]
mod ssh;

use slurm::poll;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wherever::prelude::*;

/// Generous: a hang guard, never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(180);

/// Set for this binary's runs under mpirun or in a Slurm batch job: it then runs
/// [`program_printing_limits`].
const PROGRAM_RUN: &str = "WHEREVER_TEST_LIMITS_PROGRAM_RUN";

/// One worker's answer: its process id, the limit it runs under and its machine's
/// memory, both in bytes.
type Report = (u32, u64, u64);

/// Records this worker in `dir`, waits (up to a guard) until `workers` workers have
/// recorded themselves, so that each of them runs exactly one of these tasks, and
/// returns this worker's [`Report`].
#[wherever::task]
fn report_limit(dir: String, workers: u64) -> Report {
    let pid = std::process::id();
    std::fs::write(Path::new(&dir).join(pid.to_string()), b"").expect("a record");
    // Every worker reports at once, so each task holds its worker until all have
    // started: the reports come from `workers` different processes.
    poll::wait_until("every worker's record", HANG_GUARD, || {
        std::fs::read_dir(&dir).map_or(0, |d| d.count()) as u64 >= workers
    });
    let limits = wherever::worker_memory_limits().expect("run in a worker");
    let machine = wherever_cluster::worker::machine_memory().expect("/proc/meminfo");
    (pid, limits.limit, machine)
}

/// A fresh, empty directory for one round of reports.
fn fresh_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wherever-test-limits-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `client` has `workers` connected workers.
fn wait_for_workers(client: &Client, workers: usize) {
    slurm::wait_for(
        || client.connected_workers() == workers,
        &format!("{workers} connected workers"),
        HANG_GUARD,
    );
}

/// One report from each of the `workers` connected workers, sorted by limit.
fn ask_every_worker(client: &Client, workers: usize, tag: &str) -> Vec<Report> {
    wait_for_workers(client, workers);
    let dir = fresh_dir(tag);
    let text = dir.display().to_string();
    let futures: Vec<_> = (0..workers)
        .map(|_| client.submit(report_limit, (text.clone(), workers as u64)))
        .collect();
    let mut reports: Vec<Report> = client.gather(futures).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut pids: Vec<u32> = reports.iter().map(|r| r.0).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), workers, "one report per worker: {reports:?}");
    reports.sort_by_key(|r| r.1);
    reports
}

/// The limits of `reports`, in order.
fn limits(reports: &[Report]) -> Vec<u64> {
    reports.iter().map(|r| r.1).collect()
}

/// The machine's memory every report gives (the hosts here are one machine's
/// namespaces; the check asserts it).
fn machine(reports: &[Report]) -> u64 {
    let machine = reports[0].2;
    assert!(reports.iter().all(|r| r.2 == machine), "{reports:?}");
    machine
}

/// `ssh:...;mem=300MB`: every worker on every host runs under 300 MB.
fn ssh_mem_option_is_each_workers_limit() {
    if !ssh::hosts_up("ssh_mem_option", &["cih1", "cih2"]) {
        return;
    }
    let plan = Plan::parse("ssh:cih1*2,cih2;mem=300MB").unwrap();
    let client = plan.start().unwrap();
    let reports = ask_every_worker(&client, 3, "ssh-mem");
    assert_eq!(limits(&reports), [300_000_000; 3], "{reports:?}");
}

/// `ssh:cih1*2,cih2`: the two workers on cih1 share its memory, the one on cih2
/// has all of cih2's.
fn ssh_default_is_the_hosts_memory_shared_by_its_workers() {
    if !ssh::hosts_up("ssh_default", &["cih1", "cih2"]) {
        return;
    }
    let client = Plan::parse("ssh:cih1*2,cih2").unwrap().start().unwrap();
    let reports = ask_every_worker(&client, 3, "ssh-default");
    let machine = machine(&reports);
    assert_eq!(
        limits(&reports),
        [machine / 2, machine / 2, machine],
        "{reports:?}"
    );
}

/// Whether `mpirun` is here; says SKIPPED when not.
fn mpirun_works() -> bool {
    let works = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !works {
        eprintln!("SKIPPED: mpirun is not available here (install openmpi-bin)");
    }
    works
}

/// Runs this binary under `mpirun -n 3 ... --plan PLAN` (all ranks on this node);
/// rank 0 prints one `limit L machine M` line per worker rank.
fn limits_under_mpirun(plan: &str) -> Vec<(u64, u64)> {
    let dir = fresh_dir("mpi");
    let mpirun = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
            "-n",
            "3",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--plan", plan])
        .env(PROGRAM_RUN, "1")
        .env_remove("WHEREVER_PLAN")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = poll::wait_for_child(mpirun, &format!("mpirun -n 3 --plan {plan}"), HANG_GUARD);
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mpirun --plan {plan}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed_limits(&stdout, 2)
}

/// The program run under mpirun or in a Slurm batch job: starts the plan of
/// `--plan` and prints `limit L machine M` for each of its workers.
fn program_printing_limits() {
    let client = Plan::from_args_or("sequential").unwrap().start().unwrap();
    let workers = client.workers();
    for (_, limit, machine) in ask_every_worker(&client, workers, "program") {
        println!("limit {limit} machine {machine}");
    }
}

/// The `(limit, machine)` pairs of the `limit L machine M` lines of `stdout`,
/// sorted; there must be `workers` of them.
fn printed_limits(stdout: &str, workers: usize) -> Vec<(u64, u64)> {
    let mut found: Vec<(u64, u64)> = stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["limit", limit, "machine", machine] => {
                    Some((limit.parse().ok()?, machine.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect();
    found.sort_unstable();
    assert_eq!(found.len(), workers, "{workers} workers: {stdout}");
    found
}

/// `slurm` inside `sbatch -n 3` (one node): without `--mem` each worker has a third
/// of the node's memory; with `--mem=600M` (per node) each has 200 MiB.
fn slurm_allocation_workers_share_the_nodes_or_the_jobs_memory() {
    if !slurm::checks_need_slurm() {
        return;
    }
    let run = |sbatch_args: &[&str]| {
        let dir = fresh_dir("srun");
        let out = dir.join("out.txt");
        let command = format!(
            "{} --plan slurm",
            std::env::current_exe().unwrap().display()
        );
        let child = Command::new("sbatch")
            .args(["--wait", "--partition=debug", "--time=5", "-n", "3"])
            .arg(format!("--chdir={}", dir.display()))
            .arg(format!("--output={}", out.display()))
            .args(sbatch_args)
            .args(["--wrap", &command])
            .env(PROGRAM_RUN, "1")
            .env_remove("WHEREVER_PLAN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = poll::wait_for_child(child, "sbatch --wait", HANG_GUARD);
        let printed = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(output.status.success(), "sbatch: {output:?}\n{printed}");
        printed_limits(&printed, 3)
    };
    let shared = run(&[]);
    let machine = shared[0].1;
    assert!(
        shared.iter().all(|&(limit, _)| limit == machine / 3),
        "{shared:?} (machine {machine})"
    );
    let given = run(&["--mem=600M"]);
    assert!(
        given.iter().all(|&(limit, _)| limit == 200 << 20),
        "{given:?}"
    );
}

/// `mpi:2,mem=300MB` gives both worker ranks 300 MB; plain `mpi` gives each the
/// node's memory divided by the 3 ranks on it.
fn mpi_mem_option_and_the_default_share_of_the_node() {
    if !mpirun_works() {
        return;
    }
    let given = limits_under_mpirun("mpi:2,mem=300MB");
    assert!(
        given.iter().all(|&(limit, _)| limit == 300_000_000),
        "{given:?}"
    );
    let default = limits_under_mpirun("mpi");
    let machine = default[0].1;
    assert!(
        default.iter().all(|&(limit, _)| limit == machine / 3),
        "{default:?} (machine {machine})"
    );
}

/// `processes:1,mem=250MB` scaled to 3: the two added workers run under 250 MB
/// too; `processes:1` scaled to 2: the two share the machine, half each (the
/// first one's limit is lowered; see `scaled_memory_limits.rs`).
fn workers_added_by_scale_get_the_first_ones_limit() {
    let client = Plan::parse("processes:1,mem=250MB")
        .unwrap()
        .start()
        .unwrap();
    client.scale(3).unwrap();
    let reports = ask_every_worker(&client, 3, "scale-mem");
    assert_eq!(limits(&reports), [250_000_000; 3], "{reports:?}");
    drop(client);

    let client = Plan::parse("processes:1").unwrap().start().unwrap();
    client.scale(2).unwrap();
    let reports = ask_every_worker(&client, 2, "scale-default");
    let machine = machine(&reports);
    assert_eq!(limits(&reports), [machine / 2; 2], "{reports:?}");
}

/// `slurm:jobs=1,workers-per-job=2` without `mem`: each worker has half the
/// node's memory, and so have the workers of the job `scale` adds; with
/// `mem=600M` (Slurm's MiB, per node) each has 300 MiB.
fn slurm_jobs_share_the_node_without_mem_and_scaled_jobs_too() {
    if !slurm::checks_need_slurm() {
        return;
    }
    let name = format!("lml-{}", std::process::id());
    let dir = fresh_dir("slurm");
    std::env::set_var(wherever_cluster::launcher::SLURM_DIR_VARIABLE, &dir);
    let cancel = || {
        let _ = Command::new("scancel").args(["-n", &name]).status();
    };
    let outcome = std::panic::catch_unwind(|| {
        let plan =
            format!("slurm:jobs=1,workers-per-job=2,partition=debug,time=00:05:00,job-name={name}");
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        client.scale(4).unwrap();
        let reports = ask_every_worker(&client, 4, "slurm-default");
        let machine = machine(&reports);
        assert_eq!(limits(&reports), [machine / 2; 4], "{reports:?}");
        drop(client);

        let plan = format!(
            "slurm:jobs=1,workers-per-job=2,mem=600M,partition=debug,time=00:05:00,\
             job-name={name}"
        );
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        let reports = ask_every_worker(&client, 2, "slurm-mem");
        assert_eq!(limits(&reports), [300 << 20; 2], "{reports:?}");
    });
    cancel();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[wherever::main]
fn main() {
    if std::env::var_os(PROGRAM_RUN).is_some() {
        program_printing_limits();
        return;
    }
    harness::run_checks(&[
        (
            "ssh_mem_option_is_each_workers_limit",
            ssh_mem_option_is_each_workers_limit,
        ),
        (
            "ssh_default_is_the_hosts_memory_shared_by_its_workers",
            ssh_default_is_the_hosts_memory_shared_by_its_workers,
        ),
        (
            "mpi_mem_option_and_the_default_share_of_the_node",
            mpi_mem_option_and_the_default_share_of_the_node,
        ),
        (
            "slurm_allocation_workers_share_the_nodes_or_the_jobs_memory",
            slurm_allocation_workers_share_the_nodes_or_the_jobs_memory,
        ),
        (
            "workers_added_by_scale_get_the_first_ones_limit",
            workers_added_by_scale_get_the_first_ones_limit,
        ),
        (
            "slurm_jobs_share_the_node_without_mem_and_scaled_jobs_too",
            slurm_jobs_share_the_node_without_mem_and_scaled_jobs_too,
        ),
    ]);
}
