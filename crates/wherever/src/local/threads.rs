//! `threads:N`: a fixed pool of N threads fed from one bounded queue.

use super::Job;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many jobs may wait in a pool's queue before `submit` blocks (back-pressure).
pub const QUEUE_BOUND: usize = 1 << 16;

thread_local! {
    static WORKER_LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
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
    threads: usize,
}

/// What pool threads share: the job queue and the count of threads to retire.
#[derive(Clone)]
struct Crew {
    jobs: Receiver<Job>,
    retire: Arc<AtomicUsize>,
    label: Arc<str>,
}

impl Crew {
    fn spawn_thread(&self, name: String, label: String) -> std::io::Result<()> {
        let crew = self.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            WORKER_LABEL.with(|slot| *slot.borrow_mut() = Some(label));
            let hook_crew = crew.clone();
            wherever_core::scope::set_secede_hook(Arc::new(move || hook_crew.secede()));
            for job in &crew.jobs {
                job();
                let retiring = crew
                    .retire
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                if retiring.is_ok() {
                    return;
                }
            }
        })?;
        Ok(())
    }

    /// Starts a stand-in thread; the returned function retires one thread.
    fn secede(&self) -> Box<dyn FnOnce()> {
        let name = format!("wherever-stand-in ({})", self.label);
        if self.spawn_thread(name, self.label.to_string()).is_err() {
            return Box::new(|| {});
        }
        let retire = self.retire.clone();
        Box::new(move || {
            retire.fetch_add(1, Ordering::AcqRel);
        })
    }
}

impl ThreadPool {
    /// Starts `threads` worker threads.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(QUEUE_BOUND);
        let plan = format!("threads:{threads} on {}", super::host_name());
        let crew = Crew {
            jobs,
            retire: Arc::default(),
            label: plan.clone().into(),
        };
        for index in 0..threads {
            let label = format!("thread {} of {plan}", index + 1);
            crew.spawn_thread(format!("wherever-thread-{}", index + 1), label)?;
        }
        Ok(ThreadPool { queue, threads })
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

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}
