//! The tutorial's parameter sweep with nested parallelism (R future's nested
//! plans, section 7): 4 settings of (mean, sd), each an outer task that runs M
//! replicates as inner tasks of its own; each replicate draws n normal numbers and
//! returns their mean and sd.
//!
//! ```text
//! cargo run --release --example nested_study -- --plan processes:2/threads:2 --reps 5 --n 100000 --seed 7
//! ```
//!
//! Prints `setting rep mean sd` per replicate, in order (floats in the shortest
//! round-trip `{:e}` form), and a timing line on stderr. With a seed, the output is
//! the same bytes under every plan, nested or not.

use clap::Parser;
use rand_distr::Normal;
use std::time::Instant;
use wherever::prelude::*;

/// The (mean, sd) settings of the sweep.
const SETTINGS: [(f64, f64); 4] = [(0.0, 1.0), (0.0, 2.0), (1.0, 1.0), (1.0, 2.0)];

/// One replicate: n draws from Normal(mu, sigma); their mean and sample sd.
#[wherever::task]
fn replicate(mu: f64, sigma: f64, n: usize, rng: &mut TaskRng) -> (f64, f64) {
    let normal = Normal::new(mu, sigma).expect("sigma is positive");
    let (mut mean, mut squares) = (0.0f64, 0.0f64);
    for k in 1..=n {
        let x: f64 = rng.sample(normal);
        let delta = x - mean;
        mean += delta / k as f64;
        squares += delta * (x - mean);
    }
    (
        mean,
        if n > 1 {
            (squares / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        },
    )
}

/// One setting: its replicates, as inner tasks under the plan's next level.
#[wherever::task]
fn setting(mu: f64, sigma: f64, reps: u64, n: usize) -> Result<Vec<(f64, f64)>, wherever::Error> {
    let client = wherever::client()?;
    let futures: Vec<_> = (0..reps)
        .map(|_| client.submit(replicate, (mu, sigma, n)))
        .collect();
    Ok(client.gather(futures)?)
}

#[derive(Parser)]
#[command(about = "A parameter sweep whose settings run their replicates in parallel too")]
struct Args {
    /// `--plan`, e.g. processes:2/threads:2 (default: threads), and `--seed`.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Replicates per setting.
    #[arg(long, default_value_t = 5)]
    reps: u64,
    /// Normal numbers per replicate.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("threads")?;

    let started = Instant::now();
    let futures: Vec<_> = SETTINGS
        .iter()
        .map(|&(mu, sigma)| client.submit(setting, (mu, sigma, args.reps, args.n)))
        .collect();
    let results = client.gather(futures)?;
    let elapsed = started.elapsed();

    for (s, replicates) in results.iter().enumerate() {
        for (rep, (mean, sd)) in replicates.iter().enumerate() {
            println!("{s} {rep} {mean:e} {sd:e}");
        }
    }
    eprintln!(
        "nested_study: {} settings x {} replicates x {} normals on {} in {:.3} s",
        SETTINGS.len(),
        args.reps,
        args.n,
        client.plan(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
