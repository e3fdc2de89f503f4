//! One Slurm job per task against workers that run many: the wall time from
//! `Plan::start()` to the results of `--tasks` tasks of the tutorial's
//! `calc_mean`, and of dropping the client (until `squeue` lists none of its
//! jobs), for `--plan` and `--other`, run alternately (A, B, A, B...).
//!
//! ```text
//! cargo build -p wherever-benches --bin slurm_per_task
//! target/debug/slurm_per_task --plan slurm:per-task,time=00:10:00 \
//!     --other slurm:jobs=6,time=00:10:00 --tasks 6 --repeats 5
//! ```
//!
//! Prints one markdown table row per plan: the median of the runs and stops with
//! their range.

use std::time::{Duration, Instant};
use wherever::prelude::*;

/// The tutorial's `calc_mean`.
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
    (mean, (squares / (n.max(2) - 1) as f64).sqrt())
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

/// One run of `plan`: (start to results, stop).
fn run(plan: &Plan, tasks: u64, n: usize) -> wherever::Result<(Duration, Duration)> {
    let started = Instant::now();
    let client = plan.start()?.with_seed(3);
    let futures: Vec<_> = (0..tasks)
        .map(|i| client.submit(calc_mean, (i, n)))
        .collect();
    let results: Vec<(f64, f64)> = client.gather(futures)?;
    assert_eq!(results.len() as u64, tasks);
    let ran = started.elapsed();
    let stopping = Instant::now();
    drop(client);
    Ok((ran, stopping.elapsed()))
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = || std::env::args();
    let value = |flag: &str| wherever::args::flag_value(args(), flag);
    let plan = Plan::from_args_or("slurm:per-task,time=00:10:00")?;
    let other = match value("--other")? {
        Some(text) => Some(Plan::parse(&text)?),
        None => None,
    };
    let number = |flag: &str, default: usize| -> wherever::Result<usize> {
        Ok(value(flag)?
            .and_then(|text| text.parse::<usize>().ok())
            .unwrap_or(default)
            .max(1))
    };
    let (tasks, repeats, n) = (
        number("--tasks", 6)? as u64,
        number("--repeats", 5)?,
        number("--n", 100_000)?,
    );
    let plans: Vec<Plan> = std::iter::once(plan).chain(other).collect();
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); plans.len()];
    for _ in 0..repeats {
        for (plan, (runs, stops)) in plans.iter().zip(times.iter_mut()) {
            let (ran, stopped) = run(plan, tasks, n)?;
            runs.push(ran);
            stops.push(stopped);
        }
    }
    for (plan, (runs, stops)) in plans.iter().zip(times) {
        println!(
            "| `{plan}` | {tasks} | {} | {} |",
            summary(runs),
            summary(stops)
        );
    }
    Ok(())
}
