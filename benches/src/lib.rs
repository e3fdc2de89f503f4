//! Shared helpers for the benchmark harness binaries: timing with repeats and
//! a markdown table of the results.

use std::time::{Duration, Instant};

/// How many times each measurement is repeated; the median is reported.
pub const REPEATS: usize = 5;

/// Runs `body` [`REPEATS`] times and returns the median wall time.
pub fn median_time(mut body: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            body();
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[REPEATS / 2]
}

/// Runs each of `bodies` [`REPEATS`] times, taking turns (A, B, A, B, …) so that a
/// change in the machine's load hits all alike, and returns each one's median time.
pub fn alternating_medians<const K: usize>(mut bodies: [&mut dyn FnMut(); K]) -> [Duration; K] {
    let mut times = [[Duration::ZERO; REPEATS]; K];
    for repeat in 0..REPEATS {
        for (body, times) in bodies.iter_mut().zip(times.iter_mut()) {
            let started = Instant::now();
            body();
            times[repeat] = started.elapsed();
        }
    }
    times.map(|mut times| {
        times.sort_unstable();
        times[REPEATS / 2]
    })
}

/// The 1-minute load average, from `/proc/loadavg` (`?` where unavailable).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Microseconds per item for `count` items done in `time`.
pub fn micros_per_item(time: Duration, count: usize) -> f64 {
    time.as_secs_f64() * 1e6 / count as f64
}

/// Items per second for `count` items done in `time`.
pub fn items_per_second(time: Duration, count: usize) -> f64 {
    count as f64 / time.as_secs_f64()
}

/// One row of the results table.
pub struct Row {
    /// What was measured.
    pub measure: String,
    /// The figure, formatted with its unit.
    pub figure: String,
    /// The target for it, or `-`.
    pub target: String,
    /// Whether the target is met (`None` when there is no target).
    pub met: Option<bool>,
}

impl Row {
    /// A row without a target.
    pub fn info(measure: impl Into<String>, figure: impl Into<String>) -> Self {
        Row {
            measure: measure.into(),
            figure: figure.into(),
            target: "-".into(),
            met: None,
        }
    }

    /// A row with a target and whether it is met.
    pub fn checked(
        measure: impl Into<String>,
        figure: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> Self {
        Row {
            measure: measure.into(),
            figure: figure.into(),
            target: target.into(),
            met: Some(met),
        }
    }
}

/// The rows as a markdown table.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut table = String::from("| measure | median of 5 | target | met |\n|---|---:|---|---|\n");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.measure, row.figure, row.target, met
        ));
    }
    table
}
