//! Back-pressure on submission: how many submitted tasks wait, not yet written to
//! the scheduler, in the client's queue. Each holds its whole message there (a few
//! hundred bytes), and the submitting thread can outrun the connection's thread by
//! millions of tasks, so past [`MAX_UNSENT`] a submitting thread waits until the
//! writer has taken half of them off the queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How many submitted tasks may wait unwritten before a submitting thread waits.
pub const MAX_UNSENT: usize = 16_384;

/// How often a waiting thread looks again in case a wake-up was missed (a guard
/// only: the writer wakes it).
const RECHECK: Duration = Duration::from_millis(200);

/// The count of unwritten tasks and the waiting room (see the module documentation).
#[derive(Debug)]
pub struct Backlog {
    limit: usize,
    unsent: AtomicUsize,
    closed: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog::with_limit(MAX_UNSENT)
    }
}

impl Backlog {
    /// A backlog that lets `limit` tasks wait unwritten (at least one).
    pub fn with_limit(limit: usize) -> Self {
        Backlog {
            limit: limit.max(1),
            unsent: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    /// How many tasks wait unwritten.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Acquire)
    }

    /// Counts one more queued task; then, if more than the limit wait and `may_block`
    /// (the caller is not the connection's own thread, which must keep writing), waits
    /// until the writer took the queue down to half the limit or the connection closed.
    pub fn queued(&self, may_block: bool) {
        let unsent = self.unsent.fetch_add(1, Ordering::AcqRel) + 1;
        if unsent <= self.limit || !may_block {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.unsent() > self.limit / 2 && !self.closed.load(Ordering::Acquire) {
            guard = self
                .room
                .wait_timeout(guard, RECHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// `n` queued tasks were taken off the queue (written, or refused before).
    pub fn sent(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self
            .unsent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        if before > self.limit / 2 && before.saturating_sub(n) <= self.limit / 2 {
            self.wake();
        }
    }

    /// The connection closed: nothing will be written, nobody waits any more.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;
    use std::sync::mpsc::channel;
    use std::sync::Arc;
    use std::time::Duration;

    /// A hang guard for the waits below (never a timing assertion).
    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn counts_queued_and_sent_tasks_and_never_goes_below_zero() {
        let b = Backlog::with_limit(4);
        for _ in 0..4 {
            b.queued(true); // within the limit: returns at once
        }
        assert_eq!(b.unsent(), 4);
        b.sent(3);
        assert_eq!(b.unsent(), 1);
        b.sent(10); // more than were queued (a refused task counted twice): clamps
        assert_eq!(b.unsent(), 0);
        b.sent(0);
        assert_eq!(b.unsent(), 0);
        assert_eq!(Backlog::with_limit(0).limit, 1, "a zero limit means one");
    }

    #[test]
    fn the_connection_thread_is_never_held_up() {
        let b = Backlog::with_limit(1);
        for _ in 0..100 {
            b.queued(false);
        }
        assert_eq!(b.unsent(), 100);
    }

    #[test]
    fn a_submitter_past_the_limit_waits_until_the_writer_takes_half() {
        let b = Arc::new(Backlog::with_limit(8));
        for _ in 0..8 {
            b.queued(true);
        }
        let (done, finished) = channel();
        let submitter = {
            let b = b.clone();
            std::thread::spawn(move || {
                b.queued(true); // the ninth: waits
                done.send(b.unsent()).unwrap();
            })
        };
        b.sent(5); // 9 -> 4: half the limit, the submitter goes on
        let left = finished
            .recv_timeout(LONG)
            .expect("the submitter was woken");
        assert!(left <= 4, "it went on with {left} unsent");
        submitter.join().unwrap();
    }

    #[test]
    fn closing_releases_every_waiting_submitter() {
        let b = Arc::new(Backlog::with_limit(2));
        b.queued(true);
        b.queued(true);
        let (done, finished) = channel();
        let submitters: Vec<_> = (0..3)
            .map(|_| {
                let (b, done) = (b.clone(), done.clone());
                std::thread::spawn(move || {
                    b.queued(true);
                    done.send(()).unwrap();
                })
            })
            .collect();
        b.close();
        for _ in 0..3 {
            finished.recv_timeout(LONG).expect("released by close");
        }
        submitters.into_iter().for_each(|s| s.join().unwrap());
        b.queued(true); // closed: never waits again
    }
}
