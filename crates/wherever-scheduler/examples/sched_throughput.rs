//! Prints how fast the scheduler handles a 20,000-task graph (submit, then every finish).
//!
//! `cargo run --release -p wherever-scheduler --example sched_throughput`

use std::time::Instant;

use wherever_scheduler::{Command, Event, Resources, Scheduler, SchedulerConfig, TaskSpec};

fn main() {
    let n = 20_000u64;
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut out = Vec::new();
    for w in 0..16 {
        s.handle(
            Event::WorkerAdded {
                worker: w,
                slots: 8,
                resources: Resources::new(),
            },
            &mut out,
        )
        .expect("worker");
    }
    // a wide map followed by a tree reduction, every leaf wanted
    let mut specs: Vec<TaskSpec> = (0..n).map(TaskSpec::new).collect();
    let mut level: Vec<u64> = (0..n).collect();
    let mut next = n;
    while level.len() > 1 {
        let mut up = Vec::new();
        for pair in level.chunks(2) {
            specs.push(TaskSpec::new(next).deps(pair.iter().copied()).wanted(false));
            up.push(next);
            next += 1;
        }
        level = up;
    }
    let total = specs.len();
    let start = Instant::now();
    s.handle(Event::Submit { tasks: specs }, &mut out)
        .expect("submit");
    let submitted = start.elapsed();
    let mut events = 1u64;
    while let Some(c) = out.pop() {
        if let Command::Compute { worker, task, .. } = c {
            s.handle(
                Event::TaskFinished {
                    worker,
                    task,
                    nbytes: 8,
                },
                &mut out,
            )
            .expect("finish");
            events += 1;
        }
    }
    let all = start.elapsed();
    println!("submit of {total} tasks: {submitted:?}");
    println!(
        "{events} events in {all:?}: {:.0} events/s",
        events as f64 / all.as_secs_f64()
    );
}
