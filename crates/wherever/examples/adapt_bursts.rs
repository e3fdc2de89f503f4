//! Adapt's worker count over a bursty run (for BENCHMARKS.md): a `processes:1`
//! cluster adapting between 1 and 4 workers gets three bursts of 16 tasks of
//! 250 ms, 4 s apart; the connected workers are sampled every 250 ms.
//!
//! `cargo run --example adapt_bursts` (or with `WHEREVER_PLAN=slurm:jobs=1,...`,
//! any plan that can scale).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wherever::prelude::*;
use wherever::AdaptOptions;

#[wherever::task]
fn busy(i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(250));
    i
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let client = Plan::from_env_or("processes:1")?.start()?;
    client.adapt_with(AdaptOptions {
        interval: Duration::from_millis(200),
        idle_grace: Duration::from_secs(2),
        max_starting: 2,
        ..AdaptOptions::new(1, 4)
    })?;
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (client, done) = (client.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push((start.elapsed(), client.connected_workers()));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };
    let mut bursts = Vec::new();
    for burst in 0..3u64 {
        let began = start.elapsed();
        let futures: Vec<_> = (0..16)
            .map(|i| client.submit(busy, burst * 100 + i))
            .collect();
        client.gather(futures)?;
        bursts.push((began, start.elapsed()));
        std::thread::sleep(Duration::from_secs(4));
    }
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    for (i, (began, ended)) in bursts.iter().enumerate() {
        println!(
            "burst {i}: {:.2} s to {:.2} s ({:.2} s)",
            began.as_secs_f64(),
            ended.as_secs_f64(),
            (*ended - *began).as_secs_f64()
        );
    }
    println!("| t (s) | workers |");
    println!("|---:|---:|");
    let mut last = usize::MAX;
    for (at, workers) in samples {
        if workers != last {
            println!("| {:.2} | {workers} |", at.as_secs_f64());
            last = workers;
        }
    }
    Ok(())
}
