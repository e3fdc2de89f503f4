//! Per-task overhead: N trivial `inc(i) = i + 1` tasks, the peers' benchmark.
//!
//! ```text
//! cargo run --release --example trivial_tasks -- --plan processes:2 --tasks 20000 --mode submit
//! ```
//!
//! `--mode submit` submits one future per task and gathers them; `--mode map` runs
//! one `map` with dynamic scheduling (one task per item); `--mode map-auto` uses the
//! default chunking. Prints one JSON line: `{"tasks":N,"seconds":S,"sum":X}`
//! (start-up excluded, as in the peers' scripts).

use clap::{Parser, ValueEnum};
use std::time::Instant;
use wherever::prelude::*;

/// The trivial task.
#[wherever::task]
fn inc(i: u64) -> u64 {
    i + 1
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Submit,
    Map,
    MapAuto,
}

#[derive(Parser)]
#[command(about = "Time N trivial tasks under a plan")]
struct Args {
    /// `--plan` (default: threads) and `--seed`.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Number of tasks.
    #[arg(long, default_value_t = 20_000)]
    tasks: u64,
    /// How the tasks are submitted.
    #[arg(long, value_enum, default_value_t = Mode::Submit)]
    mode: Mode,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("threads")?;
    client.submit(inc, 0).value()?; // warm-up: workers connected
    let started = Instant::now();
    let results: Vec<u64> = match args.mode {
        Mode::Submit => client.gather(
            (0..args.tasks)
                .map(|i| client.submit(inc, i))
                .collect::<Vec<_>>(),
        )?,
        Mode::Map => client.map_with(inc, 0..args.tasks, Scheduling::Dynamic)?,
        Mode::MapAuto => client.map(inc, 0..args.tasks)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let sum: u64 = results.iter().sum();
    println!(
        "{{\"tasks\":{},\"seconds\":{seconds},\"sum\":{sum}}}",
        args.tasks
    );
    Ok(())
}
