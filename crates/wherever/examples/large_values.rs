//! Values larger than a frame between processes: a result, an argument and a
//! scattered value of hundreds of megabytes, streamed in chunks, checked byte for
//! byte.
//!
//! ```text
//! cargo run --release --example large_values -- --plan processes:2 --result-mb 600 --value-mb 300
//! WHEREVER_MAX_VALUE=1M cargo run --example large_values -- --plan processes:2 --limit
//! ```
//!
//! Prints one line per check; `--limit` checks instead that values over a
//! `WHEREVER_MAX_VALUE` of 1 MiB fail their own tasks, `--fetch-limit` that a
//! result over a client's own limit of 20 MiB fails its task.

#[path = "../tests/common/large_value.rs"]
mod large_value;

use clap::Parser;
use large_value::{
    check_argument, check_fetch_over_the_limit_of_20_mib, check_limit_of_1_mib, check_result,
    check_scatter, MB,
};

#[derive(Parser)]
#[command(about = "Move large values between processes")]
struct Args {
    /// `--plan` (default: processes:2) and `--seed`.
    #[command(flatten)]
    wherever: wherever::PlanArgs,
    /// The size of the result, in millions of bytes.
    #[arg(long, default_value_t = 600)]
    result_mb: u64,
    /// The size of the argument and of the scattered value, in millions of bytes.
    #[arg(long, default_value_t = 300)]
    value_mb: u64,
    /// Check the value limit (with `WHEREVER_MAX_VALUE=1M`) instead.
    #[arg(long)]
    limit: bool,
    /// Check that a result over this client's limit (`WHEREVER_MAX_VALUE=20M`
    /// here only) fails its task instead.
    #[arg(long)]
    fetch_limit: bool,
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let args = Args::parse();
    let client = args.wherever.start_or("processes:2")?;
    if args.fetch_limit {
        check_fetch_over_the_limit_of_20_mib(&client);
        println!("a result over the client's limit failed alone");
        return Ok(());
    }
    if args.limit {
        check_limit_of_1_mib(&client);
        println!("values over the limit failed alone");
        return Ok(());
    }
    let (client_peak, worker_peak) = check_result(&client, args.result_mb * MB);
    println!(
        "{} MB result: ok (peak RSS {client_peak} MiB in the client, {worker_peak} MiB in \
         the worker)",
        args.result_mb
    );
    check_argument(&client, args.value_mb * MB);
    println!("{} MB argument: ok", args.value_mb);
    check_scatter(&client, args.value_mb * MB);
    println!("{} MB scatter: ok", args.value_mb);
    Ok(())
}
