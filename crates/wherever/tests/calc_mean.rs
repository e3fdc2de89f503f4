//! The tutorial's `calc_mean` study through the API: with a seed, the printed lines
//! are the same bytes under every local plan and every way of submitting, and the
//! statistics are those of standard normal draws.

mod common;

use common::{start, LOCAL_PLANS};
use wherever::prelude::*;

const SEED: u64 = 1;
const TASKS: u64 = 8;
const N: usize = 1_000_000;

/// The body of `examples/calc_mean.rs`, unchanged.
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

/// The example's stdout for these results: `i mean sd`, one line per task.
fn render(results: &[(f64, f64)]) -> String {
    results
        .iter()
        .enumerate()
        .map(|(i, (mean, sd))| format!("{i} {mean:e} {sd:e}\n"))
        .collect()
}

/// What `calc_mean --plan PLAN --seed SEED --tasks TASKS --n n` prints.
fn run_submit(plan: &str, seed: u64, n: usize) -> String {
    let client = start(plan).with_seed(seed);
    let futures: Vec<_> = (0..TASKS)
        .map(|i| client.submit(calc_mean, (i, n)))
        .collect();
    render(&client.gather(futures).expect("calc_mean does not fail"))
}

#[test]
fn seeded_output_is_the_same_bytes_under_every_local_plan_and_looks_standard_normal() {
    let reference = run_submit("sequential", SEED, N);
    for plan in &LOCAL_PLANS[1..] {
        assert_eq!(run_submit(plan, SEED, N), reference, "plan {plan} differs");
    }
    let lines: Vec<&str> = reference.lines().collect();
    assert_eq!(lines.len(), TASKS as usize);
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[0], i.to_string());
        let mean: f64 = fields[1].parse().unwrap();
        let sd: f64 = fields[2].parse().unwrap();
        assert!(mean.abs() < 0.01, "task {i}: mean {mean}");
        assert!((sd - 1.0).abs() < 0.01, "task {i}: sd {sd}");
    }
}

#[test]
fn map_under_every_scheduling_gives_the_bytes_of_one_submit_per_task() {
    let n = 2_000;
    let reference = run_submit("sequential", SEED, n);
    let schedulings = [
        Scheduling::Auto,
        Scheduling::Static,
        Scheduling::Dynamic,
        Scheduling::chunk_size(3).unwrap(),
    ];
    for plan in LOCAL_PLANS {
        for scheduling in schedulings {
            let client = start(plan).with_seed(SEED);
            let results = client
                .map_with(calc_mean, (0..TASKS).map(|i| (i, n)), scheduling)
                .unwrap();
            assert_eq!(render(&results), reference, "{plan} {scheduling:?}");
        }
    }
}

#[test]
fn seeds_choose_the_streams() {
    let n = 1_000;
    assert_eq!(run_submit("threads:2", 7, n), run_submit("threads:2", 7, n));
    assert_ne!(run_submit("threads:2", 7, n), run_submit("threads:2", 8, n));
    let distinct: std::collections::HashSet<String> = run_submit("sequential", 7, n)
        .lines()
        .map(|line| line.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(
        distinct.len(),
        TASKS as usize,
        "each task has its own stream"
    );
}

#[test]
fn a_later_submission_gets_a_later_stream_and_with_seed_restarts_positions() {
    let n = 1_000;
    let client = start("threads:2").with_seed(SEED);
    let first = client.submit(calc_mean, (0, n)).value().unwrap();
    let second = client.submit(calc_mean, (0, n)).value().unwrap();
    assert_ne!(first, second, "position 1 draws from stream 1");
    let again = client
        .with_seed(SEED)
        .submit(calc_mean, (0, n))
        .value()
        .unwrap();
    assert_eq!(first, again);
}
