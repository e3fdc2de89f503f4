//! `threads:N`: a fixed pool of N threads fed from one bounded queue.

use super::Job;
use crossbeam_channel::{Receiver, Sender};
use std::cell::RefCell;

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
pub(crate) struct ThreadPool {
    queue: Sender<Job>,
    threads: usize,
}

impl ThreadPool {
    /// Starts `threads` worker threads.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(QUEUE_BOUND);
        for index in 0..threads {
            let jobs: Receiver<Job> = jobs.clone();
            let label = format!(
                "thread {} of threads:{} on {}",
                index + 1,
                threads,
                super::host_name()
            );
            std::thread::Builder::new()
                .name(format!("wherever-thread-{}", index + 1))
                .spawn(move || {
                    WORKER_LABEL.with(|slot| *slot.borrow_mut() = Some(label));
                    for job in jobs {
                        job();
                    }
                })?;
        }
        Ok(ThreadPool { queue, threads })
    }

    /// Queues a job; blocks only while the queue holds [`QUEUE_BOUND`] jobs.
    pub(crate) fn spawn(&self, job: Job) {
        self.queue
            .send(job)
            .expect("pool threads live as long as the pool");
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}
