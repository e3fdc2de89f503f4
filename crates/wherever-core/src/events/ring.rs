//! One emitting thread's ring of events on one bus: a single producer (the thread)
//! and any number of readers (subscriptions), each with its own cursor.
//!
//! A push is six relaxed stores into the thread's own slot and a release store of the
//! thread's own head: no lock, no read-modify-write, no cache line shared with other
//! emitters. A reader copies the slots between its cursor and the head, then reads the
//! head again: slots the producer may have overwritten meanwhile (it laps a slow
//! reader) are discarded and counted as dropped, so a slow reader loses the *oldest*
//! events and never slows the producer.
//!
//! Slots are atomic words, so a reader racing the producer reads stale or mixed words
//! (which it then discards), never undefined behaviour.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::packed::{Record, WORDS};
use super::Event;

/// Slots per ring (a power of two): how many events one thread may emit between two
/// reads of a reader before that reader loses the oldest.
pub const RING_SLOTS: usize = 1 << 13;
const MASK: u64 = RING_SLOTS as u64 - 1;

/// The ring (see the module's documentation).
pub struct Ring {
    /// The number of events pushed so far; written only by the producer.
    head: AtomicU64,
    /// Set when nobody reads this ring any more: its producer drops it and registers a
    /// new one when it emits again.
    retired: AtomicBool,
    /// The task the ring's thread runs now, for readers to report as started: a
    /// sequence number (odd while being written) and the task plus one (0: none),
    /// its worker and its start. Written only by the producer.
    running: [AtomicU64; 4],
    slots: Box<[[AtomicU64; WORDS]]>,
    /// Events that do not fit in a slot (they carry strings), by their index.
    others: Mutex<VecDeque<(u64, Event)>>,
}

/// What a reader got from one ring: records in order, and how many it lost.
pub struct Read {
    /// The intact records, oldest first.
    pub records: Vec<Record>,
    /// Events overwritten before this reader got to them.
    pub lost: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ring {
    /// An empty ring.
    pub fn new() -> Ring {
        Ring {
            head: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            running: std::array::from_fn(|_| AtomicU64::new(0)),
            slots: (0..RING_SLOTS)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            others: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether nobody reads it any more.
    #[inline]
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Marks it as read by nobody.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// How many events were pushed (what a new reader skips).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Pushes a record. Only the ring's own thread calls it.
    #[inline]
    pub fn push(&self, words: [u64; WORDS]) {
        let index = self.head.load(Ordering::Relaxed);
        let slot = &self.slots[(index & MASK) as usize];
        // A reader that sees any word written below also sees `head >= index` after
        // its acquire fence, and so knows this slot's older event is gone.
        fence(Ordering::Release);
        for (word, value) in slot.iter().zip(words) {
            word.store(value, Ordering::Relaxed);
        }
        self.head.store(index + 1, Ordering::Release);
    }

    /// Shows `task` as running on `worker` since `start` (or nothing, with `None`)
    /// to readers. Only the ring's own thread calls it.
    #[inline]
    pub fn set_running(&self, task: Option<(u64, u64, u64)>) {
        let [sequence, task_word, worker_word, start_word] = &self.running;
        let (task, worker, start) = task.map_or((0, 0, 0), |(t, w, s)| (t.wrapping_add(1), w, s));
        let before = sequence.load(Ordering::Relaxed);
        sequence.store(before.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        task_word.store(task, Ordering::Relaxed);
        worker_word.store(worker, Ordering::Relaxed);
        start_word.store(start, Ordering::Relaxed);
        sequence.store(before.wrapping_add(2), Ordering::Release);
    }

    /// The task the ring's thread runs now (task, worker, start), if any and if it
    /// is not being changed at this very moment.
    pub fn running(&self) -> Option<(u64, u64, u64)> {
        let [sequence, task_word, worker_word, start_word] = &self.running;
        let before = sequence.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let task = task_word.load(Ordering::Relaxed);
        let worker = worker_word.load(Ordering::Relaxed);
        let start = start_word.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if sequence.load(Ordering::Relaxed) != before || task == 0 {
            return None;
        }
        Some((task - 1, worker, start))
    }

    /// Pushes an event that does not fit in a slot: it waits in a side queue (bounded
    /// like the ring) and the slot says where.
    pub fn push_other(&self, at: u64, event: Event) {
        let index = self.head.load(Ordering::Relaxed);
        {
            let mut others = lock(&self.others);
            while others
                .front()
                .is_some_and(|(old, _)| old + RING_SLOTS as u64 <= index)
            {
                others.pop_front();
            }
            others.push_back((index, event));
        }
        self.push(Record::other(at, index));
    }

    /// The event pushed with [`Self::push_other`] at `index`, if still held.
    pub fn other(&self, index: u64) -> Option<Event> {
        let others = lock(&self.others);
        let at = others.partition_point(|(held, _)| *held < index);
        match others.get(at) {
            Some((held, event)) if *held == index => Some(event.clone()),
            _ => None,
        }
    }

    /// The records from `cursor` up to `head` (a value of [`Self::head`] read before),
    /// without those overwritten meanwhile.
    pub fn read(&self, cursor: u64, head: u64) -> Read {
        let slots = RING_SLOTS as u64;
        let start = cursor.max(head.saturating_sub(slots));
        let mut copied: Vec<(u64, [u64; WORDS])> =
            Vec::with_capacity(head.saturating_sub(start) as usize);
        for index in start..head {
            let slot = &self.slots[(index & MASK) as usize];
            copied.push((
                index,
                std::array::from_fn(|w| slot[w].load(Ordering::Relaxed)),
            ));
        }
        fence(Ordering::Acquire);
        let now = self.head.load(Ordering::Relaxed);
        // The producer may be writing slot `now` (index `now - slots` is gone with it).
        let intact_from = (now + 1).saturating_sub(slots);
        let records: Vec<Record> = copied
            .into_iter()
            .filter(|(index, _)| *index >= intact_from)
            .map(|(_, words)| Record { words })
            .collect();
        let kept = records.len() as u64;
        Read {
            records,
            lost: head.saturating_sub(cursor) - kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> [u64; WORDS] {
        [1, n, n, n, n, n]
    }

    #[test]
    fn a_reader_gets_what_was_pushed_in_order() {
        let ring = Ring::new();
        for n in 0..10 {
            ring.push(record(n));
        }
        let read = ring.read(3, ring.head());
        assert_eq!(read.lost, 0);
        let got: Vec<u64> = read.records.iter().map(|r| r.words[2]).collect();
        assert_eq!(got, (3..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_lapped_reader_loses_the_oldest_and_counts_them() {
        let ring = Ring::new();
        let total = RING_SLOTS as u64 + 100;
        for n in 0..total {
            ring.push(record(n));
        }
        let read = ring.read(0, ring.head());
        // The slot the producer would write next is not trusted: one more is lost.
        assert_eq!(read.lost, 101);
        assert_eq!(read.records.first().map(|r| r.words[2]), Some(101));
        assert_eq!(read.records.last().map(|r| r.words[2]), Some(total - 1));
    }

    #[test]
    fn the_running_task_is_seen_until_it_is_cleared() {
        let ring = Ring::new();
        assert_eq!(ring.running(), None);
        ring.set_running(Some((7, 2, 1000)));
        assert_eq!(ring.running(), Some((7, 2, 1000)));
        ring.set_running(None);
        assert_eq!(ring.running(), None);
    }

    #[test]
    fn events_with_strings_wait_beside_the_ring_and_are_bounded_like_it() {
        let ring = Ring::new();
        let left = |n: u64| Event::WorkerLeft {
            worker: n,
            reason: format!("gone {n}"),
            name: String::new(),
        };
        for n in 0..(RING_SLOTS as u64 + 5) {
            ring.push_other(0, left(n));
        }
        assert_eq!(ring.other(4), None);
        assert_eq!(
            ring.other(RING_SLOTS as u64 + 4),
            Some(left(RING_SLOTS as u64 + 4))
        );
        assert!(lock(&ring.others).len() <= RING_SLOTS);
    }
}
