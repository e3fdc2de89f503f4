//! dask-mpi's layout under `mpirun`: with `wherever::init()` first in `main` (what
//! `#[wherever::main]` does) and `--plan mpi`, ranks above 0 become workers before
//! `main`'s body runs, so only rank 0 prints; and a program whose `main` lacks it
//! still gets the layout, from `Plan::start` turning ranks above 0 into workers.
//! This test binary is that program (`harness = false`): run plainly it is the
//! test, which starts itself under `mpirun -n 3` (skipping with a message when
//! mpirun is absent); under mpirun it is the program.

#[path = "common/poll.rs"]
mod poll;

use std::process::{Command, Stdio};
use std::time::Duration;
use wherever::prelude::*;

/// Set for the runs under mpirun.
const RANK_RUN: &str = "WHEREVER_TEST_MPI_RANK_RUN";

#[wherever::task]
fn square(x: i64) -> i64 {
    x * x
}

/// The program under mpirun: `wherever::init()` first when `with_init`, and a line
/// printed before the plan starts.
fn program(with_init: bool) {
    if with_init {
        wherever::init();
    }
    println!("main began");
    let client = Plan::parse("mpi").unwrap().start().unwrap();
    let squares = client.map(square, 1..=4i64).unwrap();
    println!("rank 0 got {squares:?} from {} workers", client.workers());
}

fn main() {
    if let Some(mode) = std::env::var_os(RANK_RUN) {
        program(mode == "init");
        return;
    }
    let mpirun_works = Command::new("mpirun")
        .arg("--version")
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    if !mpirun_works {
        println!("SKIPPED: mpirun is not available here (install openmpi-bin)");
        println!("test result: ok. 0 passed; 0 failed (skipped)");
        return;
    }
    ranks_above_0_run_no_main_with_init_first();
    ranks_above_0_become_workers_in_plan_start();
    println!("test result: ok. 2 passed; 0 failed");
}

/// `--plan mpi` and `wherever::init()` first: one `main began`, from rank 0.
fn ranks_above_0_run_no_main_with_init_first() {
    let stdout = run_under_mpirun("init", &["--plan", "mpi"]);
    assert_eq!(
        stdout,
        "main began\nrank 0 got [1, 4, 9, 16] from 2 workers\n"
    );
    println!("test ranks_above_0_run_no_main_with_init_first ... ok");
}

/// No `wherever::init()`: every rank begins `main`, ranks above 0 stop in
/// `Plan::start` and serve.
fn ranks_above_0_become_workers_in_plan_start() {
    let stdout = run_under_mpirun("fallback", &[]);
    // (mpirun forwards each rank's output on its own: lines of ranks may interleave.)
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "main began",
            "main began",
            "main began",
            "rank 0 got [1, 4, 9, 16] from 2 workers"
        ],
        "{stdout}"
    );
    println!("test ranks_above_0_become_workers_in_plan_start ... ok");
}

/// Runs this binary under `mpirun -n 3` in `mode` with `args`; checks that every
/// rank exited 0 and nothing is left in the working directory; returns stdout.
fn run_under_mpirun(mode: &str, args: &[&str]) -> String {
    let directory =
        std::env::temp_dir().join(format!("wherever-test-mpi-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let mpirun = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .args(["-n", "3"])
        .arg(std::env::current_exe().unwrap())
        .args(args)
        .env(RANK_RUN, mode)
        .current_dir(&directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = poll::wait_for_child(
        mpirun,
        "mpirun -n 3 of the test program",
        Duration::from_secs(120),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "mpirun: {stdout}{stderr}");
    let left: Vec<_> = std::fs::read_dir(&directory).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in the working directory: {left:?}");
    std::fs::remove_dir_all(&directory).unwrap();
    stdout.to_string()
}
