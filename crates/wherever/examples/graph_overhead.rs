//! Per-task overhead of lazy graphs: a tree reduction (sum of pairs) over N leaves,
//! or a map-then-reduce graph (N increments, then one sum over all of them).
//!
//! ```text
//! cargo run --release --example graph_overhead -- --plan threads:2 --workload tree --n 100000
//! cargo run --release --example graph_overhead -- --plan processes:2 --workload mapreduce --n 10000
//! ```
//!
//! Prints one JSON line: `{"workload":W,"tasks":T,"seconds":S,"result":R}` where
//! `seconds` covers building and computing the graph (start-up excluded).

use clap::{Parser, ValueEnum};
use std::time::Instant;
use wherever::prelude::*;

/// A leaf: the number itself.
#[wherever::task]
fn leaf(i: i64) -> i64 {
    i
}

/// Adds one.
#[wherever::task]
fn inc(i: i64) -> i64 {
    i + 1
}

/// Sums a pair.
#[wherever::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Sums a list.
#[wherever::task]
fn total(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[derive(Clone, Copy, ValueEnum)]
enum Workload {
    Tree,
    Mapreduce,
}

#[derive(Parser)]
#[command(about = "Time a lazy graph of trivial tasks under a plan")]
struct Args {
    /// `--plan` (default: threads) and `--seed`.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Which graph.
    #[arg(long, value_enum, default_value_t = Workload::Tree)]
    workload: Workload,
    /// Leaves (tree) or mapped items (mapreduce).
    #[arg(long, default_value_t = 100_000)]
    n: i64,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("threads")?;
    client.submit(inc, 0).value()?; // warm-up: workers connected
    let started = Instant::now();
    let (tasks, result, name) = match args.workload {
        Workload::Tree => {
            let mut level: Vec<Delayed<i64>> = (0..args.n).map(|i| delayed(leaf, i)).collect();
            let mut tasks = level.len();
            while level.len() > 1 {
                level = level
                    .chunks(2)
                    .map(|pair| match pair {
                        [x, y] => delayed(add, (x, y)),
                        [x] => delayed(add, (x, 0)),
                        _ => unreachable!("chunks of two"),
                    })
                    .collect();
                tasks += level.len();
            }
            (tasks, level[0].compute(&client)?, "tree")
        }
        Workload::Mapreduce => {
            let mapped: Vec<Delayed<i64>> = (0..args.n).map(|i| delayed(inc, i)).collect();
            let sum = delayed(total, &mapped);
            (mapped.len() + 1, sum.compute(&client)?, "mapreduce")
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"workload\":\"{name}\",\"tasks\":{tasks},\"seconds\":{seconds},\"result\":{result}}}"
    );
    Ok(())
}
