//! A study program as a user coming from Dask or R's `future` writes it, with every
//! API of issue 10: callable tasks, `result_is_value`, per-call random streams,
//! errors that keep the rest, futures read more than once and with a deadline,
//! async/await, per-task options (resources included), mixed outputs in one
//! compute, sharing without copies, `wherever::Result` in the user's own functions,
//! waiting for workers and `PlanArgs` in the program's own `clap` parser.
//!
//! It is not part of the library: it exists so that `cargo clippy --workspace
//! --all-targets -- -D warnings` (which CI runs) checks that such a program is
//! clean under the default lints, and its test runs it under several plans.
//!
//! `cargo run -p wherever-user-crate -- --plan sequential --seed 42`

use clap::Parser;
use std::time::Duration;
use wherever::prelude::*;
use wherever::PlanArgs;

/// The study's flags: the plan and seed flags of wherever, and its own.
#[derive(Parser, Debug)]
#[command(about = "A small bootstrap study run wherever")]
struct Cli {
    #[command(flatten)]
    wherever: PlanArgs,
    /// Resamples of the bootstrap.
    #[arg(long, default_value_t = 40)]
    resamples: u64,
}

#[wherever::task]
fn square(x: u64) -> u64 {
    x * x
}

/// `Err` here is an answer ("odd"), not a failure of the task.
#[wherever::task(result_is_value)]
fn half(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

/// `Err` here is a failure of the task.
#[wherever::task]
fn inverse(x: i64) -> Result<f64, String> {
    if x == 0 {
        Err("division by zero".to_string())
    } else {
        Ok(1.0 / x as f64)
    }
}

#[wherever::task]
fn draw(i: u64, rng: &mut TaskRng) -> (u64, f64) {
    (i, rng.sample(StandardNormal))
}

#[wherever::task]
fn resample_mean(data: SharedRef<Vec<f64>>, rng: &mut TaskRng) -> f64 {
    let n = data.len();
    (0..n).map(|_| data[rng.random_range(0..n)]).sum::<f64>() / n as f64
}

#[wherever::task]
fn load(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[wherever::task]
fn total(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[wherever::task]
fn describe(values: Vec<u64>) -> String {
    format!("{} values", values.len())
}

/// Halves, or why a number has none.
type Halves = Vec<Result<u64, String>>;

/// A user's own function returning `wherever::Result`, with `?` on tasks' errors.
fn squares_and_halves(client: &Client) -> wherever::Result<(Vec<u64>, Halves)> {
    let squares = client.map(square, 0..5u64)?;
    let halves: Halves = client.map(half, 1..3u64)?;
    Ok((squares, halves))
}

/// Random numbers per call: the same label gives the same numbers, whatever ran before.
fn seeded_calls(client: &Client) -> wherever::Result<()> {
    let first = client.seeded("bootstrap").map(draw, 0..10u64)?;
    let _other = client.map(draw, 0..3u64)?;
    let again = client.seeded("bootstrap").map(draw, 0..10u64)?;
    assert_eq!(first, again);
    Ok(())
}

/// Errors that keep the rest (Dask's `errors="skip"`).
fn errors_that_keep_the_rest(client: &Client) -> usize {
    let results: Vec<Result<f64, TaskError>> = client.map_results(inverse, -2..3i64);
    let futures = (0..3u64).map(|x| client.submit(square, x));
    let gathered = client.gather_results(futures);
    results.iter().filter(|r| r.is_ok()).count() + gathered.len()
}

/// Futures read more than once, with a deadline, and awaited.
fn futures(client: &Client) -> wherever::Result<u64> {
    let future = client.submit(square, 12);
    let first = *future.value_timeout(Duration::from_secs(60))?;
    let copy = future.clone();
    assert_eq!(*future.value_ref()?, first);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let (borrowed, all) = runtime.block_on(async {
        let borrowed = (&future).await;
        let all = client
            .gather_async((0..4u64).map(|x| client.submit(square, x)))
            .await;
        (borrowed, all)
    });
    assert_eq!(borrowed?, first);
    assert_eq!(all?, vec![0, 1, 4, 9]);
    assert_eq!(copy.value()?, future.value()?);
    Ok(first)
}

/// Per-task options, resources included (ignored by local plans).
fn options(client: &Client) -> wherever::Result<u64> {
    let careful = client
        .options()
        .retries(5)
        .priority(10)
        .name("careful")
        .timeout(Duration::from_secs(600))
        .resources("cpus=1")?;
    let typed = client.options().resource("cpus", 1.0);
    Ok(careful.submit(square, 3).value()? + typed.submit(square, 2).value()?)
}

/// Mixed outputs in one compute; sharing a scattered value without copies.
fn graphs_and_sharing(client: &Client, resamples: u64) -> wherever::Result<(u64, String, usize)> {
    let data = delayed(load, 10);
    let (sum, text) = compute(client, (&delayed(total, &data), &delayed(describe, &data)))?;
    let values = SharedRef::new((0..500).map(f64::from).collect::<Vec<f64>>());
    let shared = client.scatter(&values)?;
    let means = client.map_with(
        resample_mean,
        (0..resamples).map(|_| &shared),
        Scheduling::Static,
    )?;
    Ok((sum, text, means.len()))
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let cli = Cli::parse();
    assert_eq!(square(3), 9); // a task is still a function
    let client = cli.wherever.start_or("threads")?;
    let workers = client.workers();
    client.wait_for_workers(workers, Duration::from_secs(60))?;
    let (squares, halves) = squares_and_halves(&client)?;
    seeded_calls(&client)?;
    let kept = errors_that_keep_the_rest(&client);
    let read = futures(&client)?;
    let optioned = options(&client)?;
    let (sum, text, means) = graphs_and_sharing(&client, cli.resamples)?;
    println!("workers: {workers}");
    println!("squares: {squares:?}");
    println!("halves: {halves:?}");
    println!("kept: {kept}, read: {read}, options: {optioned}");
    println!("sum: {sum}, {text}, means: {means}");
    Ok(())
}
