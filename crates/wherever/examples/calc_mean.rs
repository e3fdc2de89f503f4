//! The tutorial's study: P tasks, each drawing n standard normal numbers and
//! returning their mean and standard deviation.
//!
//! ```text
//! cargo run --release --example calc_mean -- --plan threads:2 --tasks 8 --n 10000000 --seed 1
//! ```
//!
//! Prints a `task mean sd` header and one `i mean sd` line per task, in task order,
//! to stdout (decimal numbers with 7 significant digits, as R and numpy print them),
//! and a one-line timing summary to stderr. With a seed, the output is the same bytes
//! under every plan.

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

/// `x` in decimal notation with up to 7 significant digits (`0.9998228`,
/// `-0.0003141593`), as R and numpy print numbers.
fn significant(x: f64) -> String {
    const DIGITS: i32 = 7;
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (DIGITS - 1 - magnitude).clamp(0, 20) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        // Trailing zeros say nothing (R prints 0.000587827, not 0.0005878270).
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[derive(Parser)]
#[command(about = "The tutorial's calc_mean study: mean and sd of n normals, P times")]
struct Args {
    /// `--plan` (default: threads) and `--seed` (default: unseeded).
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Number of tasks P.
    #[arg(long, default_value_t = 8)]
    tasks: u64,
    /// Normal numbers per task.
    #[arg(long, default_value_t = 10_000_000)]
    n: usize,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("threads")?;

    let started = Instant::now();
    let futures: Vec<_> = (0..args.tasks)
        .map(|i| client.submit(calc_mean, (i, args.n)))
        .collect();
    let results = client.gather(futures)?;
    let elapsed = started.elapsed();

    println!("task mean sd");
    for (i, (mean, sd)) in results.iter().enumerate() {
        println!("{i} {} {}", significant(*mean), significant(*sd));
    }
    let workers = client.workers();
    eprintln!(
        "calc_mean: {} tasks x {} normals on {} ({} worker{}) in {:.3} s",
        args.tasks,
        args.n,
        client.plan(),
        workers,
        if workers == 1 { "" } else { "s" },
        elapsed.as_secs_f64()
    );
    Ok(())
}
