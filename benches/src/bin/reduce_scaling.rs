//! The scheduler alone on a reduce over n futures: n leaf tasks, then one task depending
//! on all of them, as `processes:2` runs it (two workers), for n = 10k, 80k and 160k.
//!
//! ```text
//! cargo run --release -p wherever-benches --bin reduce_scaling
//! ```
//!
//! Prints, per n, the time of each phase (submit the leaves and finish them, submit the
//! reducer and finish it, release everything; the median of 3 runs each) and the total
//! per input: a linear scheduler keeps the time per input flat as n grows. Sizes given
//! as arguments replace the default ones.

use std::time::{Duration, Instant};

use wherever_scheduler::{Command, Event, Scheduler, SchedulerConfig, TaskId, TaskSpec};

const SIZES: [u64; 3] = [10_000, 80_000, 160_000];
const WORKERS: u64 = 2;
const SLOTS: u32 = 2;

/// Feeds `event` to the scheduler, then lets the simulated workers finish every task it
/// assigns (and everything that unlocks) until nothing is left to run.
fn run(s: &mut Scheduler, event: Event) {
    let mut out = Vec::new();
    s.handle(event, &mut out).expect("valid event");
    while let Some(c) = out.pop() {
        if let Command::Compute { worker, task, .. } = c {
            let finished = Event::TaskFinished {
                worker,
                task,
                nbytes: 8,
            };
            s.handle(finished, &mut out).expect("valid finish");
        }
    }
}

/// Times one phase.
fn timed(phases: &mut Vec<(&'static str, Duration)>, name: &'static str, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    phases.push((name, start.elapsed()));
}

/// One reduce over `n` inputs, phase by phase.
fn reduce(n: u64) -> Vec<(&'static str, Duration)> {
    let mut s = Scheduler::new(SchedulerConfig::default());
    for w in 0..WORKERS {
        run(
            &mut s,
            Event::WorkerAdded {
                worker: w,
                slots: SLOTS,
                resources: Default::default(),
            },
        );
    }
    let reducer: TaskId = n;
    let mut phases = Vec::new();
    timed(&mut phases, "leaves", || {
        // One submit per future, as a client's `submit` loop sends them.
        for i in 0..n {
            run(
                &mut s,
                Event::Submit {
                    tasks: vec![TaskSpec::new(i)],
                },
            );
        }
    });
    timed(&mut phases, "submit reducer", || {
        let mut out = Vec::new();
        let spec = TaskSpec::new(reducer).deps(0..n);
        s.handle(Event::Submit { tasks: vec![spec] }, &mut out)
            .expect("valid submit");
        for c in out {
            if let Command::Compute { worker, task, .. } = c {
                let finished = Event::TaskFinished {
                    worker,
                    task,
                    nbytes: 8,
                };
                s.handle(finished, &mut Vec::new()).expect("valid finish");
            }
        }
    });
    timed(&mut phases, "release", || {
        for i in 0..=n {
            run(&mut s, Event::Release { task: i });
        }
    });
    assert_eq!(s.task_count(), 0, "everything forgotten");
    phases
}

/// The median of `RUNS` runs of each phase of a reduce over `n` inputs.
fn median_reduce(n: u64) -> Vec<(&'static str, Duration)> {
    const RUNS: usize = 3;
    let runs: Vec<_> = (0..RUNS).map(|_| reduce(n)).collect();
    (0..runs[0].len())
        .map(|i| {
            let mut times: Vec<Duration> = runs.iter().map(|r| r[i].1).collect();
            times.sort_unstable();
            (runs[0][i].0, times[RUNS / 2])
        })
        .collect()
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a size"))
        .collect();
    let sizes = if args.is_empty() {
        SIZES.to_vec()
    } else {
        args
    };
    println!("| n | leaves | submit + finish reducer | release | total | per input |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let phases = median_reduce(n);
        let total: Duration = phases.iter().map(|p| p.1).sum();
        let cells: Vec<String> = phases
            .iter()
            .map(|p| format!("{:.3} s", p.1.as_secs_f64()))
            .collect();
        println!(
            "| {n} | {} | {:.3} s | {:.2} µs |",
            cells.join(" | "),
            total.as_secs_f64(),
            total.as_secs_f64() * 1e6 / n as f64
        );
    }
}
