//! The worker's memory monitor: a thread that samples the process's resident
//! memory every [`PERIOD`] (as Dask's worker does every 100 ms) and acts on the
//! limits ([`MemoryLimits`]): past the target it spills least recently used
//! results until back under; past pause it stops starting tasks ([`Pause`]) and
//! tells the scheduler (`Message::Paused`) until back under; past terminate it
//! tells the scheduler why (`Message::Exiting`) and exits with
//! [`EXIT_STATUS`], for its launcher to start another.

use super::flush::Flushed;
use super::limits::{MemoryLimits, TERMINATE_VARIABLE};
use super::memory::resident_bytes;
use super::store::Store;
use crate::protocol::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often the monitor samples the resident memory.
pub const PERIOD: Duration = Duration::from_millis(50);

/// The exit status of a worker that went past its terminate threshold.
pub const EXIT_STATUS: i32 = 4;

/// Whether the worker starts new tasks; task threads wait here while paused.
#[derive(Default)]
pub struct Pause {
    paused: Mutex<bool>,
    resumed: Condvar,
}

impl Pause {
    /// Waits until the worker is not paused.
    pub fn wait_until_running(&self) {
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        while *paused {
            paused = self.resumed.wait(paused).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether the worker is paused now.
    pub fn is_paused(&self) -> bool {
        *self.paused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses or resumes; `true` if that changed anything.
    pub fn set(&self, value: bool) -> bool {
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *paused != value;
        *paused = value;
        if changed && !value {
            self.resumed.notify_all();
        }
        changed
    }
}

/// What the monitor decides for one sample.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Exit: over the terminate threshold.
    Exit,
    /// Spill one more result (over the target), then sample again.
    Spill,
    /// Nothing to spill: set the pause state to this.
    Settle { paused: bool },
}

/// The step for `rss` bytes resident under `limits`, with `in_memory` bytes of
/// results in memory (spilling needs more than one: the newest stays).
fn decide(limits: &MemoryLimits, rss: u64, spillable: bool) -> Step {
    if limits.terminate.is_some_and(|at| rss > at) {
        return Step::Exit;
    }
    if spillable && limits.target.is_some_and(|at| rss > at) {
        return Step::Spill;
    }
    Step::Settle {
        paused: limits.pause.is_some_and(|at| rss > at),
    }
}

/// The monitor of one connection's store; stops when dropped.
pub struct Monitor {
    stop: Arc<AtomicBool>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the monitor of `store` (it stops when the store is gone or the
/// returned value dropped); `None` where resident memory cannot be read.
pub fn start(
    limits: Arc<Mutex<MemoryLimits>>,
    store: Weak<Store>,
    pause: Arc<Pause>,
    outgoing: UnboundedSender<Message>,
    flushed: Arc<Flushed>,
    reports: Arc<super::reports::HeldReports>,
) -> Option<Monitor> {
    resident_bytes()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let watch = move || {
        while !stopped.load(Ordering::Relaxed) {
            // Reports held behind a long task go out (see `reports.rs`).
            reports.flush_if_old(std::time::Instant::now());
            let Some(store) = store.upgrade() else { break };
            let Some(rss) = resident_bytes() else { break };
            store.set_unmanaged(rss);
            // The scheduler may lower or raise the limit (a plan that scaled).
            let limits = *limits.lock().unwrap_or_else(|p| p.into_inner());
            match decide(&limits, rss, store.bytes().memory > 0) {
                Step::Exit => exit(&limits, rss, &outgoing, &flushed),
                Step::Spill => {
                    if store.spill_one() > 0 {
                        continue;
                    }
                    settle(&limits, rss, &store, &pause, &outgoing);
                }
                Step::Settle { .. } => settle(&limits, rss, &store, &pause, &outgoing),
            }
            drop(store);
            std::thread::sleep(PERIOD);
        }
        // The connection is gone: its task threads must not wait for ever.
        pause.set(false);
    };
    std::thread::Builder::new()
        .name("wherever-memory".to_string())
        .spawn(watch)
        .ok()?;
    Some(Monitor { stop })
}

/// Pauses past the pause threshold, resumes under it, and tells the scheduler of
/// a change (and the event stream, if read).
fn settle(
    limits: &MemoryLimits,
    rss: u64,
    store: &Store,
    pause: &Pause,
    outgoing: &UnboundedSender<Message>,
) {
    let paused = limits.pause.is_some_and(|at| rss > at);
    if pause.set(paused) {
        let _ = outgoing.send(Message::Paused { paused });
        if super::memory::OBSERVED.load(Ordering::Relaxed) {
            let _ = outgoing.send(Message::Memory {
                rss_bytes: rss,
                cpu: super::cpu::cpu_time(),
                spilled_bytes: store.bytes().spilled,
                paused,
            });
        }
        eprintln!(
            "wherever worker (process {}): {} ({} of {} bytes resident)",
            std::process::id(),
            if paused {
                "paused: past the memory pause threshold, no new task starts"
            } else {
                "resumed: back under the memory pause threshold"
            },
            rss,
            limits.limit
        );
    }
}

/// The reason a worker past its terminate threshold gives.
pub fn exit_reason(limits: &MemoryLimits, rss: u64) -> String {
    let fraction = limits
        .terminate
        .map_or(1.0, |at| at as f64 / limits.limit as f64);
    format!(
        "its worker exceeded {:.0}% of its memory limit ({TERMINATE_VARIABLE}): {} of {} \
         resident, and exited (to be restarted)",
        fraction * 100.0,
        megabytes(rss),
        megabytes(limits.limit)
    )
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Tells the scheduler why (waiting a little for the message to go out), removes
/// the spill directory and exits.
fn exit(
    limits: &MemoryLimits,
    rss: u64,
    outgoing: &UnboundedSender<Message>,
    flushed: &Flushed,
) -> ! {
    let reason = exit_reason(limits, rss);
    eprintln!(
        "wherever worker (process {}): exiting, past the memory terminate threshold: {reason}",
        std::process::id()
    );
    let _ = outgoing.send(Message::Exiting { reason });
    flushed.wait(outgoing, Duration::from_secs(2));
    super::spill::remove_directory();
    std::process::exit(EXIT_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MemoryLimits = MemoryLimits {
        limit: 1000,
        target: Some(600),
        pause: Some(800),
        terminate: Some(950),
    };

    #[test]
    fn each_threshold_has_its_step() {
        assert_eq!(decide(&LIMITS, 500, true), Step::Settle { paused: false });
        assert_eq!(decide(&LIMITS, 700, true), Step::Spill);
        assert_eq!(decide(&LIMITS, 700, false), Step::Settle { paused: false });
        assert_eq!(decide(&LIMITS, 900, true), Step::Spill);
        assert_eq!(decide(&LIMITS, 900, false), Step::Settle { paused: true });
        assert_eq!(decide(&LIMITS, 960, true), Step::Exit);
        let off = MemoryLimits {
            target: None,
            pause: None,
            terminate: None,
            ..LIMITS
        };
        assert_eq!(decide(&off, 5000, true), Step::Settle { paused: false });
    }

    #[test]
    fn pausing_blocks_task_threads_until_resumed() {
        let pause = Arc::new(Pause::default());
        assert!(pause.set(true));
        assert!(!pause.set(true));
        let (started, ran) = std::sync::mpsc::channel();
        let waiting = pause.clone();
        let thread = std::thread::spawn(move || {
            waiting.wait_until_running();
            started.send(()).unwrap();
        });
        assert!(
            ran.try_recv().is_err(),
            "a task thread started while paused"
        );
        assert!(pause.set(false));
        ran.recv_timeout(Duration::from_secs(60))
            .expect("the thread was not resumed");
        thread.join().unwrap();
    }

    #[test]
    fn the_exit_reason_names_the_threshold_and_the_memory() {
        let limits = MemoryLimits {
            limit: 200_000_000,
            target: Some(120_000_000),
            pause: Some(160_000_000),
            terminate: Some(190_000_000),
        };
        let reason = exit_reason(&limits, 195_500_000);
        assert!(
            reason.contains("exceeded 95% of its memory limit"),
            "{reason}"
        );
        assert!(reason.contains("195.5 MB of 200.0 MB"), "{reason}");
    }
}
