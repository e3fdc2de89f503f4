//! The `mpi` plan under the real Open MPI `mpirun` of `shared/ci/mpi-check.sh`:
//! rank 0 runs `calc_mean`'s main and the scheduler, ranks 1.. serve it; the
//! output is sequential's bytes, mpirun exits 0, and no rank or rendezvous file
//! is left. Outside mpirun the plan is an error naming mpirun. The mpirun test
//! skips with a message when mpirun is absent.

mod common;
mod launched;

use common::{hosts_up, TempDir};
use launched::*;
use std::process::{Command, Stdio};

/// The variables that would make the test process itself look like an MPI rank.
const RANK_VARIABLES: [&str; 6] = [
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "PMIX_RANK",
    "SLURM_PROCID",
    "SLURM_STEP_ID",
    "PMIX_NAMESPACE",
];

/// Runs the study under `mpirun MPIRUN_ARGS -n 3 ... --plan mpi` and checks it
/// printed sequential's bytes, every rank exited 0, and no rank or rendezvous file
/// is left.
fn study_under_mpirun(tag: &str, mpirun_args: &[&str]) {
    let dir = TempDir::new(tag);
    let executable = private_calc_mean(&dir, &format!("calc_mean_{tag}"));
    let expected = sequential_bytes(&executable);
    let child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe"])
        .args(["--bind-to", "none"])
        .args(mpirun_args)
        .args(["-n", "3"])
        .arg(&executable)
        .args(STUDY)
        .args(["--plan", "mpi"])
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_output(child, "mpirun -n 3 calc_mean --plan mpi");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mpirun: {errors}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&expected),
        "{errors}"
    );
    assert!(errors.contains("on mpi (2 workers)"), "{errors}");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".wherever-mpi"))
        .collect();
    assert!(left.is_empty(), "rendezvous files left: {left:?}");
    wait_until_none_left(&executable);
}

#[test]
fn calc_mean_under_mpirun_n3_prints_sequentials_bytes_and_every_rank_exits() {
    if !runs("mpirun", &["--version"]) {
        eprintln!("SKIPPED: mpirun is not available here (install openmpi-bin)");
        return;
    }
    study_under_mpirun("mpi", &[]);
}

/// Ranks on two namespace hosts (no default route there): rank 0 must advertise
/// the address that routes toward mpirun's host, not 127.0.0.1. Hosts cih4 and
/// cih5, which no other test cuts or crashes.
#[test]
fn ranks_on_two_hosts_reach_rank_0s_scheduler() {
    if !runs("mpirun", &["--version"]) {
        eprintln!("SKIPPED: mpirun is not available here (install openmpi-bin)");
        return;
    }
    if hosts_up("mpi-hosts", &["cih4", "cih5"]).is_none() {
        return;
    }
    study_under_mpirun("mpi-hosts", &["-H", "cih4:2,cih5:1"]);
}

#[test]
fn the_mpi_plan_outside_mpirun_says_to_start_it_with_mpirun() {
    let dir = TempDir::new("mpi-outside");
    let executable = private_calc_mean(&dir, "calc_mean_no_mpi");
    let mut command = Command::new(&executable);
    command.args(["--plan", "mpi", "--tasks", "1", "--n", "10"]);
    for name in RANK_VARIABLES {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{errors}");
    assert!(
        errors.contains("no MPI rank is set") && errors.contains("mpirun -n"),
        "{errors}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_single_rank_is_an_error_not_a_cluster_without_workers() {
    let dir = TempDir::new("mpi-one-rank");
    let executable = private_calc_mean(&dir, "calc_mean_one_rank");
    let mut command = Command::new(&executable);
    command.args(["--plan", "mpi", "--tasks", "1", "--n", "10"]);
    for name in RANK_VARIABLES {
        command.env_remove(name);
    }
    let output = command
        .env("OMPI_COMM_WORLD_RANK", "0")
        .env("OMPI_COMM_WORLD_SIZE", "1")
        .env("PMIX_NAMESPACE", "test")
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{errors}");
    assert!(errors.contains("at least 2 ranks"), "{errors}");
}
