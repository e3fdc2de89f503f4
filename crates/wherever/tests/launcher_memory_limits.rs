//! Every launcher gives its workers a memory limit (issue 14, item 2): the plan's
//! `mem=SIZE`, else the memory of the machine the worker runs on divided by the
//! workers sharing it. Each check asks every worker, through a task, for the limit
//! it runs under ([`wherever::worker_memory_limits`]):
//! - `ssh:` against the namespace hosts cih1, cih2 (skipped with a message when
//!   they cannot be reached): `;mem=` on every worker, and by default each host's
//!   memory divided by the workers started on it;
//! - `mpi` under the real `mpirun` (skipped without it): `mpi:N,mem=`, and by
//!   default the node's memory divided by the ranks on it;
//! - workers added by `scale` get the limit of the first ones (`processes`, and
//!   `slurm:jobs`, skipped without Slurm), and `slurm:jobs` without `mem` divides
//!   the node's memory by the job's workers on it.
//!
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wherever::prelude::*;

/// Generous: a hang guard, never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(180);

/// Set (to the report directory) for this binary's runs under mpirun.
const MPI_RUN: &str = "WHEREVER_TEST_LIMITS_MPI_RUN";

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
    let deadline = Instant::now() + Duration::from_secs(60);
    while (std::fs::read_dir(&dir).map_or(0, |d| d.count()) as u64) < workers
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// Whether `ssh host true` works without a password; says SKIPPED when not.
fn ssh_hosts_up(test: &str, hosts: &[&str]) -> bool {
    for host in hosts {
        let ok = Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                host,
                "true",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !ok {
            eprintln!(
                "SKIPPED {test}: `ssh {host} true` fails (start the hosts with \
                 CI_NETNS_SSHD=1 shared/ci/netns-hosts.sh up)"
            );
            return false;
        }
    }
    true
}

/// `ssh:...;mem=300MB`: every worker on every host runs under 300 MB.
fn ssh_mem_option_is_each_workers_limit() {
    if !ssh_hosts_up("ssh_mem_option", &["cih1", "cih2"]) {
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
    if !ssh_hosts_up("ssh_default", &["cih1", "cih2"]) {
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
    let mut mpirun = Command::new("mpirun")
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
        .env(MPI_RUN, &dir)
        .env_remove("WHEREVER_PLAN")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    while mpirun.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = mpirun.kill();
            panic!("mpirun -n 3 --plan {plan} never ended");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = mpirun.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mpirun --plan {plan}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    assert_eq!(found.len(), 2, "two worker ranks: {stdout}");
    found
}

/// The program under mpirun: start the plan of `--plan`, ask both worker ranks.
fn mpi_rank_program(dir: &str) {
    let client = Plan::from_args_or("mpi").unwrap().start().unwrap();
    let futures: Vec<_> = (0..2)
        .map(|_| client.submit(report_limit, (dir.to_string(), 2u64)))
        .collect();
    let reports: Vec<Report> = client.gather(futures).unwrap();
    for (_, limit, machine) in reports {
        println!("limit {limit} machine {machine}");
    }
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
/// too; `processes:1` scaled to 2: the added one gets the first one's share (the
/// whole machine), not a share of its own.
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
    assert_eq!(limits(&reports), [machine; 2], "{reports:?}");
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
    if let Some(dir) = std::env::var_os(MPI_RUN) {
        mpi_rank_program(&dir.to_string_lossy());
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
            "workers_added_by_scale_get_the_first_ones_limit",
            workers_added_by_scale_get_the_first_ones_limit,
        ),
        (
            "slurm_jobs_share_the_node_without_mem_and_scaled_jobs_too",
            slurm_jobs_share_the_node_without_mem_and_scaled_jobs_too,
        ),
    ]);
}
