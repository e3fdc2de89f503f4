//! The tutorial's Dask array study: the row means of a large array of standard
//! normal draws, generated chunk by chunk and never held whole.
//!
//! ```text
//! cargo run --release -p wherever-array --example row_means -- \
//!     --plan threads:2 --rows 40000 --cols 40000 --chunk-rows 5000 --chunk-cols 5000 --seed 1
//! ```
//!
//! Prints the first five row means and the mean of all row means (7 significant
//! digits, as R and numpy print them) to stdout, then the peak memory of this
//! process (`VmHWM`) and the time taken to stderr. With the same seed, stdout is
//! the same bytes whatever the chunks and the plan (the memory and time lines,
//! which differ from run to run, are on stderr so that a `diff` of two runs' stdout
//! compares only the numbers).

mod report;

use clap::Parser;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Row means of a rows x cols array of standard normal draws")]
struct Args {
    /// `--plan` (default: threads) and `--seed` (default: 1), which seeds the array.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Rows of the array.
    #[arg(long, default_value_t = 4000)]
    rows: usize,
    /// Columns of the array.
    #[arg(long, default_value_t = 3000)]
    cols: usize,
    /// Rows per chunk.
    #[arg(long, default_value_t = 1000)]
    chunk_rows: usize,
    /// Columns per chunk.
    #[arg(long, default_value_t = 1000)]
    chunk_cols: usize,
}

/// This process's peak resident memory in bytes (`VmHWM`), if the system says.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[wherever::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let seed = args.wherever.seed.unwrap_or(1);
    let client = args.wherever.start_or("threads")?;
    let started = Instant::now();
    let shape = [args.rows, args.cols];
    let text = report::row_means(&client, shape, [args.chunk_rows, args.chunk_cols], seed)?;
    let elapsed = started.elapsed();
    print!("{text}");
    match peak_memory() {
        Some(bytes) => eprintln!("peak memory: {:.1} MB", bytes as f64 / 1e6),
        None => eprintln!("peak memory: unknown"),
    }
    eprintln!(
        "row_means: {} x {} in chunks of {} x {} on {} in {:.3} s",
        args.rows,
        args.cols,
        args.chunk_rows,
        args.chunk_cols,
        args.wherever.plan_or("threads")?,
        elapsed.as_secs_f64()
    );
    Ok(())
}
