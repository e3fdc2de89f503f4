//! Launch start-up for Slurm and MPI: the time from `Plan::start()` to all workers
//! connected (it returns then), and the time to stop them (dropping the client).
//!
//! ```text
//! cargo build -p wherever-benches --bin launch_slurm
//! # inside an allocation: `slurm` (one srun step per start) beside processes:N
//! sbatch -n 4 --wait -o out.txt --wrap "target/debug/launch_slurm --plan slurm --repeats 5"
//! # under mpirun: one start per run (the ranks are the workers)
//! mpirun --allow-run-as-root --oversubscribe --bind-to none -n 5 \
//!     target/debug/launch_slurm --plan mpi --repeats 1
//! ```
//!
//! Prints one markdown table row per plan: the median of the starts with their range.

use std::time::{Duration, Instant};
use wherever::prelude::*;

/// Starts `plan` `repeats` times; the start-up and stop times of each, and the
/// workers that joined.
fn measure(plan: &Plan, repeats: usize) -> wherever::Result<(Vec<Duration>, Vec<Duration>, usize)> {
    let (mut starts, mut stops, mut workers) = (Vec::new(), Vec::new(), 0);
    for _ in 0..repeats {
        let started = Instant::now();
        let client = plan.start()?;
        starts.push(started.elapsed());
        workers = client.workers();
        let stopping = Instant::now();
        drop(client);
        stops.push(stopping.elapsed());
    }
    Ok((starts, stops, workers))
}

/// `median (min-max) s` of `times`.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    format!(
        "{:.2} s ({:.2}-{:.2})",
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    )
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let plan = Plan::from_args_or("slurm")?;
    let repeats = wherever::args::flag_value(std::env::args(), "--repeats")?
        .map(|text| text.parse::<usize>().unwrap_or(1))
        .unwrap_or(5)
        .max(1);
    let mut plans = vec![plan.clone()];
    if let wherever::Level::Slurm(_) = plan.first() {
        // The same number of workers on this machine, for comparison.
        let tasks = std::env::var("SLURM_NTASKS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        plans.insert(0, Plan::parse(&format!("processes:{tasks}"))?);
    }
    for plan in plans {
        let (starts, stops, workers) = measure(&plan, repeats)?;
        println!(
            "| `{plan}` | {workers} | {} | {} |",
            summary(starts),
            summary(stops)
        );
    }
    Ok(())
}
