//! Many tasks with large results: N tasks each returning a block of B bytes,
//! read one at a time by the client (which keeps only a checksum).
//!
//! ```text
//! cargo run --release --example large_results -- --plan processes:2 --tasks 1000 --bytes 1000000
//! ```
//!
//! Prints `submitted N` on stderr once every task is submitted, and one JSON line
//! `{"tasks":N,"bytes":TOTAL,"checksum":X}` at the end. With `--announce`, each
//! task prints `made block I` on its worker's standard output when it is done.

use clap::Parser;

/// A block of `bytes` bytes, each `i` modulo 256.
#[wherever::task]
fn block(i: u64, bytes: u64, announce: bool) -> Vec<u8> {
    let block = vec![i as u8; bytes as usize];
    if announce {
        println!("made block {i}");
    }
    block
}

#[derive(Parser)]
#[command(about = "Many tasks with large results")]
struct Args {
    /// `--plan` (default: threads) and `--seed`.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// Number of tasks.
    #[arg(long, default_value_t = 100)]
    tasks: u64,
    /// Bytes in each task's result.
    #[arg(long, default_value_t = 1_000_000)]
    bytes: u64,
    /// Each task prints `made block I` when done (for tests to follow).
    #[arg(long)]
    announce: bool,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("threads")?;
    let futures: Vec<_> = (0..args.tasks)
        .map(|i| client.submit(block, (i, args.bytes, args.announce)))
        .collect();
    eprintln!("submitted {}", futures.len());
    let (mut total, mut checksum) = (0u64, 0u64);
    for future in futures {
        let block: Vec<u8> = future.value()?;
        total += block.len() as u64;
        checksum += block.first().copied().unwrap_or_default() as u64;
    }
    println!(
        "{{\"tasks\":{},\"bytes\":{total},\"checksum\":{checksum}}}",
        args.tasks
    );
    Ok(())
}
