//! Start-up of a job-submitting Slurm plan: the time from `Plan::start()` (which
//! submits the jobs with `sbatch`) to all their workers connected (it returns
//! then), and the time to stop them (dropping the client: goodbye, then waiting
//! until `squeue` lists none of the jobs).
//!
//! ```text
//! cargo build -p wherever-benches --bin launch_slurm_jobs
//! target/debug/launch_slurm_jobs --plan slurm:jobs=4,time=00:10:00 --repeats 5
//! target/debug/launch_slurm_jobs --plan slurm:jobs=1,workers-per-job=4 --repeats 5
//! # from `client.scale(4)` on a running one-job cluster to 4 workers connected
//! target/debug/launch_slurm_jobs --plan slurm:jobs=1,time=00:10:00 --scale 4 --repeats 5
//! ```
//!
//! Prints one markdown table row: the median of the starts (or scale-ups) and stops
//! with their range.

use std::time::{Duration, Instant};
use wherever::prelude::*;

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
    let plan = Plan::from_args_or("slurm:jobs=4,time=00:10:00")?;
    let repeats = wherever::args::flag_value(std::env::args(), "--repeats")?
        .map(|text| text.parse::<usize>().unwrap_or(1))
        .unwrap_or(5)
        .max(1);
    let scale_to = wherever::args::flag_value(std::env::args(), "--scale")?
        .and_then(|text| text.parse::<usize>().ok());
    let (mut starts, mut stops, mut workers) = (Vec::new(), Vec::new(), 0);
    for _ in 0..repeats {
        let mut started = Instant::now();
        let client = plan.start()?;
        if let Some(target) = scale_to {
            started = Instant::now();
            client.scale(target)?;
            while client.connected_workers() < target {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        starts.push(started.elapsed());
        workers = client.connected_workers();
        let stopping = Instant::now();
        drop(client);
        stops.push(stopping.elapsed());
    }
    let what = match scale_to {
        Some(target) => format!("`{plan}` then `scale({target})`"),
        None => format!("`{plan}`"),
    };
    println!(
        "| {what} | {workers} | {} | {} |",
        summary(starts),
        summary(stops)
    );
    Ok(())
}
