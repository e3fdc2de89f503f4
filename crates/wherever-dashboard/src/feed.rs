//! Feeding a dashboard from a `wherever-core` event subscription: the translation
//! of each [`Stamped`] event into an [`Observation`], and the thread that reads the
//! subscription. The subscription is bounded by its owner: a dashboard that reads
//! too slowly loses old events (and shows how many), never slows the scheduler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wherever_core::events::{Event, Stamped, Subscription, WorkerKey};

use crate::graph::GraphNode;
use crate::state::Observation;
use crate::Sink;

/// How often the feeding thread reads what arrived. Reading in batches, rather than
/// waking for each event, keeps the dashboard's cost off the scheduler's cores; the
/// pages update every 250 ms anyway.
pub const BATCH_PERIOD: Duration = Duration::from_millis(100);

/// The name a worker is shown under.
pub fn worker_name(worker: WorkerKey) -> String {
    format!("worker-{worker}")
}

/// What the aggregate makes of one event (`None`: nothing it shows).
pub fn observation(stamped: Stamped) -> Option<Observation> {
    let at = stamped.at;
    Some(match stamped.event {
        Event::TaskSubmitted {
            task, name, items, ..
        } => Observation::Submitted {
            task,
            name: name.into_owned(),
            items: items.max(1),
        },
        Event::TaskStarted { task, worker } => Observation::Started {
            task,
            worker: worker_name(worker),
            at,
        },
        Event::TaskFinished {
            task,
            worker,
            duration,
            ..
        } => Observation::Ended {
            task,
            worker: worker.map(worker_name),
            at,
            ran_for: duration,
            failed: false,
        },
        Event::TaskFailed { task, worker, .. } => Observation::Ended {
            task,
            worker: worker.map(worker_name),
            at,
            ran_for: Duration::ZERO,
            failed: true,
        },
        Event::TaskRetried { task, .. } => Observation::Retried { task },
        Event::TaskReleased { task } => Observation::Released { task },
        Event::WorkerJoined {
            worker,
            host,
            slots,
            ..
        } => Observation::WorkerJoined {
            worker: worker_name(worker),
            host,
            slots: slots as usize,
            at,
        },
        Event::WorkerLeft { worker, reason, .. } => Observation::WorkerLeft {
            worker: worker_name(worker),
            reason,
            at,
        },
        Event::WorkerMemory {
            worker,
            rss_bytes,
            cpu,
            ..
        } => Observation::WorkerMemory {
            worker: worker_name(worker),
            rss_bytes,
            cpu,
            at,
        },
        Event::WorkerLimits { worker, limits } => Observation::WorkerLimits {
            worker: worker_name(worker),
            limits,
            at,
        },
        Event::Dropped { count } => Observation::Dropped { count },
        Event::GraphSubmitted { tasks } => Observation::Graph {
            tasks: tasks
                .into_iter()
                .map(|task| GraphNode {
                    task: task.task,
                    name: task.name,
                    deps: task.deps,
                })
                .collect(),
        },
    })
}

/// The thread reading a subscription into a dashboard. Dropping it stops the
/// thread within [`BATCH_PERIOD`] (without waiting for it).
#[derive(Debug)]
pub struct Feed {
    stop: Arc<AtomicBool>,
}

impl Feed {
    /// Reads `events` into `sink` on a thread of its own until the bus is gone or
    /// the returned [`Feed`] is dropped.
    pub fn start(events: Subscription, sink: Sink) -> std::io::Result<Feed> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("wherever-dashboard-feed".to_string())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let closed = events.is_closed();
                    let batch = events.drain();
                    if !batch.is_empty() {
                        sink.observe(batch.into_iter().filter_map(observation));
                    } else if closed {
                        return;
                    }
                    std::thread::sleep(BATCH_PERIOD);
                }
            })?;
        Ok(Feed { stop })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wherever_core::events::EventBus;

    #[test]
    fn a_bus_feeds_the_dashboard_until_it_is_gone() {
        let dashboard = crate::Dashboard::start(crate::DEFAULT_PORT).unwrap();
        let bus = EventBus::new();
        let feed = Feed::start(bus.subscribe(1024), dashboard.sink()).unwrap();
        bus.emit(Event::TaskSubmitted {
            task: 1,
            name: "square".into(),
            group: "square".into(),
            items: 3,
        });
        bus.emit(Event::TaskStarted { task: 1, worker: 0 });
        bus.emit(Event::TaskFinished {
            task: 1,
            worker: Some(0),
            duration: Duration::from_millis(1),
            result_bytes: 8,
        });
        drop(bus);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let done = dashboard.sink().read(|state| state.totals().done);
            if done == 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the feed never delivered"
            );
            std::thread::yield_now();
        }
        dashboard.sink().read(|state| {
            let run = state.runs_since(0).next().unwrap().clone();
            assert_eq!(run.worker, "worker-0");
            assert_eq!(run.name, "square");
        });
        drop(feed);
    }
}
