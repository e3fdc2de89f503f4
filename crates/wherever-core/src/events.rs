//! The event stream: what runs, where and when, for progress bars and the dashboard.
//!
//! One stream per client (and one per scheduler process): the scheduler and the local
//! executors *emit* [`Event`]s on an [`EventBus`]; consumers (progress bars, the
//! dashboard, tests) *subscribe* and read them in order.
//!
//! - **What an event says.** Task transitions (submitted, started, finished, failed,
//!   retried, released) and worker transitions (joined, left, memory), with the task's
//!   name and group. Never argument or result *values*: only names, counts, sizes and
//!   times.
//! - **Times** are [`Duration`]s since the emitting bus was created ([`Stamped::at`]);
//!   events a client receives from a remote scheduler keep the scheduler's times.
//! - **Names and groups.** A task's name is its registered `#[task]` name or the name set
//!   with the per-task name option; its group is the `map` call's label when there is
//!   one, else the name's prefix ([`group_of`], Dask's key prefix: `fit-3` is in `fit`).
//! - **Task ids** are the scheduler's ids (local plans: the client's own numbering), so
//!   that `TaskStarted { task: 7, .. }` and `TaskFinished { task: 7, .. }` pair up.
//! - **Cost when nobody looks.** [`EventBus::emit_with`] is one relaxed atomic load when
//!   there is no subscriber: the event is not even built.
//! - **Bounded.** Each [`Subscription`] holds at most `capacity` events; when a slow
//!   reader lets it fill, the *oldest* events are dropped, and the reader is told how
//!   many with an [`Event::Dropped`] before the next event it reads. Emitting never
//!   waits for a reader.
//!
//! ```
//! use wherever_core::events::{Event, EventBus};
//!
//! let bus = EventBus::new();
//! bus.emit_with(|| Event::TaskReleased { task: 0 }); // nobody listens: nothing happens
//! let events = bus.subscribe(2);
//! for task in 1..=3 {
//!     bus.emit(Event::TaskReleased { task });
//! }
//! let read: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
//! assert_eq!(
//!     read,
//!     vec![
//!         Event::Dropped { count: 1 },
//!         Event::TaskReleased { task: 2 },
//!         Event::TaskReleased { task: 3 },
//!     ]
//! );
//! ```

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A task's id in the stream: the scheduler's id (local plans: the client's numbering).
pub type TaskKey = u64;

/// A worker's id in the stream: the scheduler's id (local plans: the thread's index).
pub type WorkerKey = u64;

/// Why a task failed, without its message (which may quote argument values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The task function panicked.
    Panicked,
    /// The task function returned `Err`.
    Failed,
    /// The task was cancelled.
    Cancelled,
    /// A task it depends on failed.
    DependencyFailed,
    /// Its workers kept dying and its retries are used up.
    WorkerLost,
    /// Anything else (a missing task name, an undecodable argument, a timeout...).
    Other,
}

impl From<&crate::TaskErrorKind> for FailureKind {
    /// The event stream's kind of a task error (the same on every plan).
    fn from(kind: &crate::TaskErrorKind) -> Self {
        use crate::TaskErrorKind;
        match kind {
            TaskErrorKind::Panicked => FailureKind::Panicked,
            TaskErrorKind::Failed => FailureKind::Failed,
            TaskErrorKind::Cancelled => FailureKind::Cancelled,
            TaskErrorKind::DependencyFailed { .. } => FailureKind::DependencyFailed,
            TaskErrorKind::WorkerLost { .. } => FailureKind::WorkerLost,
            _ => FailureKind::Other,
        }
    }
}

/// One thing that happened to a task or a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A task was submitted.
    TaskSubmitted {
        /// The task.
        task: TaskKey,
        /// Its registered or given name (a registered name is shared, not copied).
        name: Cow<'static, str>,
        /// Its group: the `map` call's label, or the name's prefix ([`group_of`]).
        group: Cow<'static, str>,
        /// How many items it computes: 1, or a `map` chunk's length.
        items: u64,
    },
    /// A worker began running a task.
    TaskStarted {
        /// The task.
        task: TaskKey,
        /// The worker running it.
        worker: WorkerKey,
    },
    /// A task finished with a value.
    TaskFinished {
        /// The task.
        task: TaskKey,
        /// The worker that ran it, when known (the client side of a cluster does not know).
        worker: Option<WorkerKey>,
        /// How long it ran on the worker (zero when unknown).
        duration: Duration,
        /// The size of its encoded result.
        result_bytes: u64,
    },
    /// A task failed for good (its future holds the error).
    TaskFailed {
        /// The task.
        task: TaskKey,
        /// The worker it failed on, when it ran on one.
        worker: Option<WorkerKey>,
        /// Why it failed.
        kind: FailureKind,
    },
    /// A task will run again (its worker was lost, or it asked for a retry).
    TaskRetried {
        /// The task.
        task: TaskKey,
        /// How many times it has been started so far.
        attempts: u32,
    },
    /// Nothing refers to a task's result any more: it is forgotten.
    TaskReleased {
        /// The task.
        task: TaskKey,
    },
    /// A worker joined.
    WorkerJoined {
        /// The worker.
        worker: WorkerKey,
        /// The host it runs on.
        host: String,
        /// How many tasks it runs at once.
        slots: u32,
        /// Its name (`WHEREVER_WORKER_NAME`, by default its data address).
        name: String,
    },
    /// A worker left (said goodbye, died, was dropped, or was retired: `reason`
    /// is then `retired`).
    WorkerLeft {
        /// The worker.
        worker: WorkerKey,
        /// Why, in words.
        reason: String,
        /// Its name (empty if it never had one).
        name: String,
    },
    /// A worker's resident memory, reported with its heartbeats.
    WorkerMemory {
        /// The worker.
        worker: WorkerKey,
        /// Its resident set size in bytes.
        rss_bytes: u64,
    },
    /// This reader was too slow: `count` older events were dropped before the next one.
    Dropped {
        /// How many events were lost.
        count: u64,
    },
}

impl Event {
    /// A short name of the event's kind (`"TaskFinished"`...), for counting and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TaskSubmitted { .. } => "TaskSubmitted",
            Event::TaskStarted { .. } => "TaskStarted",
            Event::TaskFinished { .. } => "TaskFinished",
            Event::TaskFailed { .. } => "TaskFailed",
            Event::TaskRetried { .. } => "TaskRetried",
            Event::TaskReleased { .. } => "TaskReleased",
            Event::WorkerJoined { .. } => "WorkerJoined",
            Event::WorkerLeft { .. } => "WorkerLeft",
            Event::WorkerMemory { .. } => "WorkerMemory",
            Event::Dropped { .. } => "Dropped",
        }
    }
}

/// An event and when it happened, since its bus was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Time since the emitting bus was created.
    pub at: Duration,
    /// What happened.
    pub event: Event,
}

/// The group of a task named `name`: its prefix up to the first `-` (Dask's key
/// prefix), or the whole name.
///
/// ```
/// assert_eq!(wherever_core::events::group_of("fit-3"), "fit");
/// assert_eq!(wherever_core::events::group_of("study::calc_mean"), "study::calc_mean");
/// ```
pub fn group_of(name: &str) -> &str {
    match name.find('-') {
        Some(0) | None => name,
        Some(end) => &name[..end],
    }
}

/// Where events are emitted and subscribed to. Cheap to clone (one shared stream).
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    start: Instant,
    subscribers: AtomicUsize,
    /// The subscribers' queues; a [`Subscription`] removes its own when dropped.
    /// Emitters only read it (a shared lock), so that they do not queue behind each
    /// other.
    queues: RwLock<Vec<Arc<Queue>>>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            start: Instant::now(),
            subscribers: AtomicUsize::new(0),
            queues: RwLock::new(Vec::new()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let queues = self
            .queues
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for queue in queues.iter() {
            lock(&queue.state).closed = true;
            queue.ready.notify_all();
        }
    }
}

struct Queue {
    capacity: usize,
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Stamped>,
    dropped: u64,
    closed: bool,
    /// How many readers wait on `ready` (an emitter wakes one only then: a wake-up is a
    /// system call).
    waiting: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field(
                "subscribers",
                &self.inner.subscribers.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl EventBus {
    /// A new stream with no subscriber; its clock starts now.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether anybody subscribed (emitting is free when not).
    #[inline]
    pub fn is_observed(&self) -> bool {
        self.inner.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Time since this bus was created (the clock of [`Stamped::at`]).
    pub fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// Emits `event` to every subscriber, stamped now.
    pub fn emit(&self, event: Event) {
        if self.is_observed() {
            self.deliver(self.now(), event);
        }
    }

    /// Emits the event `make` builds, building it only if somebody subscribed.
    #[inline]
    pub fn emit_with(&self, make: impl FnOnce() -> Event) {
        if self.is_observed() {
            self.deliver(self.now(), make());
        }
    }

    /// Emits `event` stamped at `when` (a clock reading the caller took anyway: one read
    /// of the clock serves the event and the caller's own timing).
    pub fn emit_at(&self, when: Instant, event: Event) {
        if self.is_observed() {
            self.deliver(when.saturating_duration_since(self.inner.start), event);
        }
    }

    /// Emits an event stamped elsewhere (a remote scheduler's event, keeping its time).
    pub fn emit_stamped(&self, stamped: Stamped) {
        if self.is_observed() {
            self.deliver(stamped.at, stamped.event);
        }
    }

    fn deliver(&self, at: Duration, event: Event) {
        let queues = self
            .inner
            .queues
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Every queue but the last gets a copy; the last gets the event itself.
        if let Some((last, others)) = queues.split_last() {
            for queue in others {
                queue.push(Stamped {
                    at,
                    event: event.clone(),
                });
            }
            last.push(Stamped { at, event });
        }
    }

    /// Starts reading the stream: events emitted from now on, at most `capacity`
    /// (at least 1) held unread; older ones are dropped and counted.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let queue = Arc::new(Queue {
            capacity: capacity.max(1),
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
        });
        let mut queues = self
            .inner
            .queues
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.push(Arc::clone(&queue));
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            queue,
            bus: Arc::downgrade(&self.inner),
        }
    }
}

impl Queue {
    fn push(&self, stamped: Stamped) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        if state.events.len() >= self.capacity {
            state.events.pop_front();
            state.dropped += 1;
        }
        state.events.push_back(stamped);
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.ready.notify_one();
        }
    }
}

impl QueueState {
    /// The next thing to hand a reader: first the count of dropped events, if any.
    fn next(&mut self) -> Option<Stamped> {
        if self.dropped > 0 {
            let at = self.events.front().map(|s| s.at).unwrap_or_default();
            let count = std::mem::take(&mut self.dropped);
            return Some(Stamped {
                at,
                event: Event::Dropped { count },
            });
        }
        self.events.pop_front()
    }
}

/// A reader of an [`EventBus`]: a bounded buffer of the events emitted since it was made.
/// Dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<Queue>,
    bus: Weak<Inner>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}

impl Subscription {
    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Stamped> {
        lock(&self.queue.state).next()
    }

    /// The next event, waiting up to `timeout` for one; `None` on timeout or when the bus
    /// is gone and everything was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Stamped> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.queue.state);
        loop {
            if let Some(next) = state.next() {
                return Some(next);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state.waiting += 1;
            state = self
                .queue
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    /// Everything waiting now (a [`Event::Dropped`] first if events were lost).
    pub fn drain(&self) -> Vec<Stamped> {
        let mut state = lock(&self.queue.state);
        let mut out = Vec::with_capacity(state.events.len() + 1);
        while let Some(next) = state.next() {
            out.push(next);
        }
        out
    }

    /// How many events wait unread (not counting a pending [`Event::Dropped`]).
    pub fn len(&self) -> usize {
        lock(&self.queue.state).events.len()
    }

    /// Whether no event waits unread.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bus is gone (no more events will come once the buffer is read).
    pub fn is_closed(&self) -> bool {
        lock(&self.queue.state).closed
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.queue.state).closed = true;
        if let Some(bus) = self.bus.upgrade() {
            bus.subscribers.fetch_sub(1, Ordering::Relaxed);
            bus.queues
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .retain(|queue| !Arc::ptr_eq(queue, &self.queue));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(task: u64) -> Event {
        Event::TaskReleased { task }
    }

    #[test]
    fn nobody_subscribed_builds_nothing() {
        let bus = EventBus::new();
        let mut built = false;
        bus.emit_with(|| {
            built = true;
            released(0)
        });
        assert!(!built);
        assert!(!bus.is_observed());
    }

    #[test]
    fn slow_reader_loses_the_oldest_and_is_told_how_many() {
        let bus = EventBus::new();
        let slow = bus.subscribe(3);
        for task in 0..10 {
            bus.emit(released(task)); // never waits for the reader
        }
        let read: Vec<Event> = slow.drain().into_iter().map(|s| s.event).collect();
        assert_eq!(
            read,
            vec![
                Event::Dropped { count: 7 },
                released(7),
                released(8),
                released(9)
            ]
        );
        bus.emit(released(10));
        assert_eq!(slow.try_recv().map(|s| s.event), Some(released(10)));
        assert_eq!(slow.try_recv(), None);
    }

    #[test]
    fn each_subscriber_has_its_own_bound() {
        let bus = EventBus::new();
        let small = bus.subscribe(1);
        let large = bus.subscribe(100);
        for task in 0..5 {
            bus.emit(released(task));
        }
        assert_eq!(small.drain().len(), 2); // Dropped{4} + the last
        assert_eq!(large.drain().len(), 5);
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let bus = EventBus::new();
        let events = bus.subscribe(4);
        assert!(bus.is_observed());
        drop(events);
        assert!(!bus.is_observed());
    }

    #[test]
    fn reader_wakes_on_emit_from_another_thread_and_ends_when_bus_goes() {
        let bus = EventBus::new();
        let events = bus.subscribe(16);
        let emitter = std::thread::spawn(move || {
            bus.emit(released(1));
            // the bus is dropped here: the reader sees the end
        });
        let first = events.recv_timeout(Duration::from_secs(30));
        assert_eq!(first.map(|s| s.event), Some(released(1)));
        emitter.join().unwrap();
        assert_eq!(events.recv_timeout(Duration::from_secs(30)), None);
        assert!(events.is_closed());
    }

    #[test]
    fn a_waiting_reader_is_woken_by_an_emit() {
        let bus = EventBus::new();
        let events = Arc::new(bus.subscribe(16));
        let reader = {
            let events = Arc::clone(&events);
            std::thread::spawn(move || events.recv_timeout(Duration::from_secs(60)))
        };
        // Emit only once the reader waits, so that the wake-up is what it needs.
        let guard = Instant::now() + Duration::from_secs(60);
        while lock(&events.queue.state).waiting == 0 {
            assert!(Instant::now() < guard, "the reader never waited");
            std::thread::yield_now();
        }
        bus.emit(released(1));
        assert_eq!(reader.join().unwrap().map(|s| s.event), Some(released(1)));
    }

    #[test]
    fn emitting_with_several_subscribers_gives_each_the_event() {
        let bus = EventBus::new();
        let (a, b, c) = (bus.subscribe(4), bus.subscribe(4), bus.subscribe(4));
        bus.emit(released(5));
        drop(b);
        bus.emit(released(6));
        let read =
            |s: &Subscription| -> Vec<Event> { s.drain().into_iter().map(|s| s.event).collect() };
        assert_eq!(read(&a), vec![released(5), released(6)]);
        assert_eq!(read(&c), vec![released(5), released(6)]);
    }

    #[test]
    fn an_event_emitted_at_an_instant_is_stamped_with_it() {
        let bus = EventBus::new();
        let events = bus.subscribe(4);
        let when = Instant::now() + Duration::from_secs(3);
        bus.emit_at(when, released(1));
        let stamped = events.try_recv().unwrap();
        assert_eq!(stamped.at, when - bus.inner.start);
        assert_eq!(stamped.event, released(1));
    }

    #[test]
    fn events_round_trip_through_the_codec() {
        let stamped = Stamped {
            at: Duration::from_millis(5),
            event: Event::TaskSubmitted {
                task: 3,
                name: "fit-3".into(),
                group: group_of("fit-3").into(),
                items: 1,
            },
        };
        let bytes = postcard::to_allocvec(&stamped).unwrap();
        assert_eq!(postcard::from_bytes::<Stamped>(&bytes).unwrap(), stamped);
    }

    #[test]
    fn groups_are_name_prefixes() {
        assert_eq!(group_of("fit-3"), "fit");
        assert_eq!(group_of("-x"), "-x");
        assert_eq!(group_of("calc_mean"), "calc_mean");
    }
}
