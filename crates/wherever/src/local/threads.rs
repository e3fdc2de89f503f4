//! `threads:N`: a fixed pool of N threads fed from one bounded queue.

use super::rank::GraphRank;
use super::ranked_jobs::RankedJobs;
use super::Job;
use crossbeam_channel::{Sender, TrySendError};
use std::cell::RefCell;
use std::sync::Arc;
use wherever_core::crew::{Crew, CrewWork, StandIn};

/// How many jobs may wait in a pool's queue before `submit` blocks (back-pressure).
pub const QUEUE_BOUND: usize = 1 << 16;

thread_local! {
    static WORKER_LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
    static WORKER_INDEX: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The event stream's worker id of the current thread: `1..=N` for pool threads, 0 for
/// the calling thread (`sequential`) and stand-in threads.
pub(crate) fn current_worker_index() -> u64 {
    WORKER_INDEX.with(std::cell::Cell::get)
}

/// The label of the pool thread running the current code, if any.
pub(crate) fn current_worker_label() -> Option<String> {
    WORKER_LABEL.with(|label| label.borrow().clone())
}

/// A pool of worker threads. Dropping it closes the queue; the threads finish the
/// jobs already queued and exit.
///
/// A task that blocks waiting on other tasks secedes: a stand-in thread takes its
/// place until it rejoins, after which one thread retires, so waiting tasks never
/// starve the tasks they wait for.
pub(crate) struct ThreadPool {
    queue: Sender<Job>,
    /// Ready graph jobs by rank (the queue holds a ticket for each).
    ranked: RankedJobs,
    threads: usize,
}

/// What pool threads do: run the queued jobs, each thread labelled for the tasks
/// it runs; a stand-in thread is labelled with the pool's plan.
struct PoolWork {
    label: Arc<str>,
}

impl CrewWork for PoolWork {
    type Job = Job;
    type Thread = (u64, String);
    type Blocked = ();

    fn start_thread(&self, (index, label): (u64, String)) {
        WORKER_INDEX.with(|slot| slot.set(index));
        WORKER_LABEL.with(|slot| *slot.borrow_mut() = Some(label));
    }

    fn run(&self, job: Job) -> bool {
        job();
        true
    }

    fn stand_in(&self) -> Option<StandIn<Self>> {
        Some(StandIn {
            name: format!("wherever-stand-in ({})", self.label),
            thread: (0, self.label.to_string()),
            blocked: (),
        })
    }

    fn seceded(&self, (): &()) {}

    fn rejoined(&self, (): ()) {}
}

impl ThreadPool {
    /// Starts `threads` worker threads.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(QUEUE_BOUND);
        let plan = format!("threads:{threads} on {}", super::host_name());
        let crew = Crew::new(
            PoolWork {
                label: plan.clone().into(),
            },
            jobs,
        );
        for index in 0..threads {
            let label = format!("thread {} of {plan}", index + 1);
            let thread = (index as u64 + 1, label);
            crew.spawn_thread(format!("wherever-thread-{}", index + 1), thread)?;
        }
        Ok(ThreadPool {
            queue,
            ranked: RankedJobs::default(),
            threads,
        })
    }

    /// Queues a job; blocks only while the queue holds [`QUEUE_BOUND`] jobs. A task
    /// that submits into a full queue secedes while it waits (a stand-in thread takes
    /// its place), so a task on the pool's only thread never waits on itself.
    pub(crate) fn spawn(&self, job: Job) {
        let sent = match self.queue.try_send(job) {
            Err(TrySendError::Full(job)) => {
                wherever_core::scope::while_blocked(|| self.queue.send(job)).map_err(|_| ())
            }
            other => other.map_err(|_| ()),
        };
        sent.expect("pool threads live as long as the pool");
    }

    /// Queues a ready graph job: among the graph jobs waiting, the best-ranked
    /// runs first (futures submitted directly keep their FIFO order).
    pub(crate) fn spawn_ranked(&self, job: Job, rank: GraphRank) {
        self.spawn(self.ranked.ticket(rank, job));
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}
