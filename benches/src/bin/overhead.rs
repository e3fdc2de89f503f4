//! Per-task overhead of futures, throughput of `map` beside rayon, and the
//! `calc_mean` speed-up of `threads:2` over `sequential`, in one run.
//!
//! ```text
//! cargo run --release -p wherever-benches --bin overhead
//! ```
//!
//! Prints a markdown table (median of 5 runs of each measurement) to stdout.

use rayon::prelude::*;
use std::hint::black_box;
use wherever::prelude::*;
use wherever_benches::{
    alternating_medians, items_per_second, load_average, markdown_table, median_time,
    micros_per_item, Row,
};

const FUTURES: usize = 100_000;
const ROUND_TRIPS: usize = 20_000;
const MAP_ITEMS: u64 = 1_000_000;
const CALC_MEAN_TASKS: u64 = 8;
const CALC_MEAN_N: usize = 10_000_000;

/// The trivial work of the throughput measurements.
#[inline]
fn scramble_value(x: u64) -> u64 {
    x.wrapping_mul(2_654_435_761) ^ (x >> 7)
}

#[wherever::task]
fn scramble(x: u64) -> u64 {
    scramble_value(x)
}

/// The body of `crates/wherever/examples/calc_mean.rs`.
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
    let sd = if n > 1 {
        (squares / (n - 1) as f64).sqrt()
    } else {
        f64::NAN
    };
    (mean, sd)
}

fn start(plan: &str) -> Client {
    Plan::parse(plan)
        .expect("plan parses")
        .start()
        .expect("plan starts")
}

fn futures_overhead(rows: &mut Vec<Row>) {
    let client = start("threads:2");
    let batch = median_time(|| {
        let futures: Vec<_> = (0..FUTURES as u64)
            .map(|x| client.submit(scramble, x))
            .collect();
        black_box(client.gather(futures).expect("no task fails"));
    });
    let per_task = micros_per_item(batch, FUTURES);
    rows.push(Row::checked(
        format!("threads:2, submit {FUTURES} trivial tasks then gather"),
        format!("{per_task:.2} µs/task"),
        "≤ 5 µs/task",
        per_task <= 5.0,
    ));
    let one_by_one = median_time(|| {
        for x in 0..ROUND_TRIPS as u64 {
            black_box(client.submit(scramble, x).value().expect("no task fails"));
        }
    });
    rows.push(Row::info(
        format!("threads:2, submit → value one at a time ({ROUND_TRIPS} tasks)"),
        format!("{:.2} µs/task", micros_per_item(one_by_one, ROUND_TRIPS)),
    ));
}

fn map_beside_rayon(rows: &mut Vec<Row>) {
    let inputs: Vec<u64> = (0..MAP_ITEMS).collect();
    let expected: Vec<u64> = inputs.iter().map(|&x| scramble_value(x)).collect();
    let client = start("threads:2");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("rayon pool starts");
    let [ours, theirs] = alternating_medians([
        &mut || {
            let results = client
                .map(scramble, inputs.iter().copied())
                .expect("no task fails");
            assert!(results == expected);
        },
        &mut || {
            let results: Vec<u64> =
                pool.install(|| inputs.par_iter().map(|&x| scramble_value(x)).collect());
            assert!(results == expected);
        },
    ]);
    let count = MAP_ITEMS as usize;
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    rows.push(Row::info(
        format!("threads:2, `client.map` over {MAP_ITEMS} trivial items (default chunking)"),
        format!("{:.1} M items/s", items_per_second(ours, count) / 1e6),
    ));
    rows.push(Row::info(
        "rayon, 2-thread pool, `par_iter().map().collect()` on the same items",
        format!("{:.1} M items/s", items_per_second(theirs, count) / 1e6),
    ));
    rows.push(Row::checked(
        "map time, ours / rayon",
        format!("{ratio:.2}×"),
        "≤ 3×",
        ratio <= 3.0,
    ));
}

fn calc_mean_speedup(rows: &mut Vec<Row>) {
    let run = |client: &Client| {
        let futures: Vec<_> = (0..CALC_MEAN_TASKS)
            .map(|i| client.submit(calc_mean, (i, CALC_MEAN_N)))
            .collect();
        black_box(client.gather(futures).expect("no task fails"));
    };
    let (sequential_client, threads_client) = (start("sequential"), start("threads:2"));
    // Control: the same tasks on two plain threads, without wherever, to tell the
    // machine's own parallel speed-up (a busy or shared VM) from ours.
    let mut on_plain_threads = || {
        std::thread::scope(|scope| {
            for half in 0..2 {
                scope.spawn(move || {
                    let key = wherever::StreamKey::from_seed(1);
                    for i in (half..CALC_MEAN_TASKS).step_by(2) {
                        let mut context = wherever::TaskContext::new(key, true, i);
                        black_box(calc_mean(i, CALC_MEAN_N, context.rng()));
                    }
                });
            }
        });
    };
    let [sequential, threads, plain] = alternating_medians([
        &mut || run(&sequential_client.clone().with_seed(1)),
        &mut || run(&threads_client.clone().with_seed(1)),
        &mut on_plain_threads,
    ]);
    let speedup = sequential.as_secs_f64() / threads.as_secs_f64();
    let label = format!("calc_mean, {CALC_MEAN_TASKS} tasks × n = {CALC_MEAN_N}");
    rows.push(Row::info(
        format!("{label}, sequential"),
        format!("{:.3} s", sequential.as_secs_f64()),
    ));
    rows.push(Row::info(
        format!("{label}, threads:2"),
        format!("{:.3} s", threads.as_secs_f64()),
    ));
    rows.push(Row::info(
        format!("{label}, two plain std threads (control, no wherever)"),
        format!(
            "{:.3} s ({:.2}× sequential)",
            plain.as_secs_f64(),
            sequential.as_secs_f64() / plain.as_secs_f64()
        ),
    ));
    rows.push(Row::checked(
        "calc_mean speed-up, sequential / threads:2",
        format!("{speedup:.2}×"),
        "≥ 1.7×",
        speedup >= 1.7,
    ));
}

fn main() {
    wherever::init();
    let load_before = load_average();
    let mut rows = Vec::new();
    futures_overhead(&mut rows);
    map_beside_rayon(&mut rows);
    calc_mean_speedup(&mut rows);
    print!("{}", markdown_table(&rows));
    println!(
        "\n1-minute load average: {load_before} before, {} after.",
        load_average()
    );
}
