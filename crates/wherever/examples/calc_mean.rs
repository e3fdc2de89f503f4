//! The tutorial's study: P tasks, each drawing n standard normal numbers and
//! returning their mean and standard deviation.
//!
//! ```text
//! cargo run --release --example calc_mean -- --plan threads:2 --tasks 8 --n 10000000 --seed 1
//! ```
//!
//! Prints `i mean sd` per task, in task order, to stdout (floats in Rust's shortest
//! round-trip `{:e}` form), and a one-line timing summary to stderr. With a seed, the
//! output is the same bytes under every plan.

use clap::Parser;
use std::time::Instant;
use wherever::prelude::*;

/// Draws `n` standard normals from the task's own stream and returns their mean and
/// sample standard deviation (Welford's one-pass algorithm, so memory stays flat).
#[wherever::task]
fn calc_mean(i: u64, n: usize, rng: &mut TaskRng) -> (f64, f64) {
    let _ = i; // the task index only labels the output
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

#[derive(Parser)]
#[command(about = "The tutorial's calc_mean study: mean and sd of n normals, P times")]
struct Args {
    /// How and where to run: sequential, threads[:N], processes[:N], ... (default: $WHEREVER_PLAN or threads)
    #[arg(long)]
    plan: Option<String>,
    /// Number of tasks P.
    #[arg(long, default_value_t = 8)]
    tasks: u64,
    /// Normal numbers per task.
    #[arg(long, default_value_t = 10_000_000)]
    n: usize,
    /// Root seed of the random streams (default: $WHEREVER_SEED, else unseeded).
    #[arg(long)]
    seed: Option<u64>,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let plan = Plan::from_flag_or_env(args.plan.as_deref(), "threads")?;
    let client = plan
        .start()?
        .with_seed_option(wherever::args::seed_or_env(args.seed)?);

    let started = Instant::now();
    let futures: Vec<_> = (0..args.tasks)
        .map(|i| client.submit(calc_mean, (i, args.n)))
        .collect();
    let results = client.gather(futures)?;
    let elapsed = started.elapsed();

    for (i, (mean, sd)) in results.iter().enumerate() {
        println!("{i} {mean:e} {sd:e}");
    }
    eprintln!(
        "calc_mean: {} tasks x {} normals on {} ({} workers) in {:.3} s",
        args.tasks,
        args.n,
        client.plan(),
        client.workers(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
