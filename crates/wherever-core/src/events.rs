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
//! - **Times** are [`Duration`]s since the emitting bus was created ([`Stamped::at`]),
//!   read from a coarse clock ([`EventBus::clock`]: one atomic that a ticker thread
//!   advances every millisecond while anybody subscribes), so a local task shorter
//!   than a millisecond has a duration of 0 or 1 ms. Events a client receives from a
//!   remote scheduler keep the scheduler's times.
//! - **Names and groups.** A task's name is its registered `#[task]` name or the name set
//!   with the per-task name option; its group is the `map` call's label when there is
//!   one, else the name's prefix ([`group_of`], Dask's key prefix: `fit-3` is in `fit`).
//! - **Task ids** are the scheduler's ids (local plans: the client's own numbering), so
//!   that `TaskStarted { task: 7, .. }` and `TaskFinished { task: 7, .. }` pair up.
//! - **Cost when nobody looks.** [`EventBus::emit_with`] is one relaxed atomic load when
//!   there is no subscriber: the event is not even built.
//! - **Cost when somebody looks.** Each emitting thread writes into a ring of its own
//!   (per bus): a task event is six plain stores and one release store, with no lock
//!   and no cache line shared with other emitters; names registered with `#[task]`
//!   are `&'static str` and travel as a pointer. Readers copy the rings in batches
//!   when they read ([`Subscription::drain`], [`Subscription::try_recv`],
//!   [`Subscription::recv_timeout`]) and merge them in time order. Events with
//!   strings (worker events, a name given per task) wait beside the ring, behind a
//!   lock of the emitting thread's own.
//! - **A local task's start** costs no record: the thread shows it in a "running"
//!   cell of its ring ([`EventBus::task_started_here`]), and its end is one record
//!   carrying its start too ([`EventBus::task_ended_here`]). A reader that reads
//!   while the task runs reads its `TaskStarted` then (once); otherwise it reads it
//!   just before its end. A reader does not report what ran when it subscribed.
//! - **Order.** One thread's events are read in the order it emitted them; events of
//!   different threads are merged by time (a task's submission before its start at
//!   the same time). Rarely, a task's start on one thread can be read one read
//!   before its submission on another (when a read falls between them); readers
//!   that count should tolerate an event of a task they have not seen submitted.
//! - **Bounded.** Each emitting thread's ring holds 8,192 events per bus: a reader
//!   that does not read for longer than that loses the *oldest* of them. Each
//!   [`Subscription`] holds at most `capacity` events it has read from the rings; when a
//!   slow reader lets it fill, the *oldest* events are dropped. Either way the reader
//!   is told how many with an [`Event::Dropped`] before the next event it reads.
//!   Emitting never waits for a reader; a waiting reader is woken within 5 ms.
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

mod clock;
mod packed;
mod ring;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use packed::{Record, Unpacked};
use ring::{Ring, RING_SLOTS};

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
        /// CPU time (user and system) its process used so far; two reports give its
        /// usage over the time between them.
        cpu: Duration,
        /// Bytes of results it spilled to its disk.
        spilled_bytes: u64,
        /// Whether it is paused (over its memory pause threshold, starting no task).
        paused: bool,
    },
    /// A worker's memory limit and the thresholds derived from it: emitted right
    /// after its [`Event::WorkerJoined`] (when the worker runs under a limit), and
    /// again whenever its limit changes (a plan without `mem=` that scales gives
    /// every worker its new share of the machine).
    WorkerLimits {
        /// The worker.
        worker: WorkerKey,
        /// Its limit and thresholds, in bytes.
        limits: MemoryThresholds,
    },
    /// This reader was too slow: `count` older events were dropped before the next one.
    Dropped {
        /// How many events were lost.
        count: u64,
    },
    /// A `compute` (or `persist`) submitted a graph of at most [`MAX_GRAPH_TASKS`]
    /// tasks (after fusing), emitted after its tasks' [`Event::TaskSubmitted`]: the
    /// tasks and their dependencies, for the dashboard's graph page. Larger graphs are
    /// not described.
    GraphSubmitted {
        /// The tasks, dependencies before dependents.
        tasks: Vec<GraphTask>,
    },
}

/// A worker's memory limit and the resident memory past which it spills results
/// to disk, pauses (starts no new task) and exits to be restarted, all in bytes
/// (`None`: that step is off), as [`Event::WorkerLimits`] and the cluster's
/// handshake carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryThresholds {
    /// The memory limit.
    pub limit: u64,
    /// Past this, held results spill to disk (by default 60% of the limit).
    pub target: Option<u64>,
    /// Past this, the worker starts no new task (by default 80%).
    pub pause: Option<u64>,
    /// Past this, the worker exits and is restarted (by default 95%).
    pub terminate: Option<u64>,
}

/// The most tasks a graph may have for [`Event::GraphSubmitted`] to describe it.
pub const MAX_GRAPH_TASKS: usize = 500;

/// One task of a submitted graph ([`Event::GraphSubmitted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphTask {
    /// The task (as in its [`Event::TaskSubmitted`]).
    pub task: TaskKey,
    /// Its name (the last node's, when several nodes were fused into it).
    pub name: String,
    /// The tasks of the same graph it needs.
    pub deps: Vec<TaskKey>,
}

impl Event {
    /// The task the event is about (`None` for worker events and [`Event::Dropped`]).
    pub fn task(&self) -> Option<TaskKey> {
        match *self {
            Event::TaskSubmitted { task, .. }
            | Event::TaskStarted { task, .. }
            | Event::TaskFinished { task, .. }
            | Event::TaskFailed { task, .. }
            | Event::TaskRetried { task, .. }
            | Event::TaskReleased { task } => Some(task),
            _ => None,
        }
    }

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
            Event::WorkerLimits { .. } => "WorkerLimits",
            Event::Dropped { .. } => "Dropped",
            Event::GraphSubmitted { .. } => "GraphSubmitted",
        }
    }
}

/// How a task that ran on the emitting thread ended ([`EventBus::task_ended_here`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// With a value of this many encoded bytes.
    Finished {
        /// The size of its encoded result (0 when not encoded).
        result_bytes: u64,
    },
    /// With a failure of this kind.
    Failed(FailureKind),
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

/// The emitters' handle: when the last [`EventBus`] goes, the stream is closed.
#[derive(Default)]
struct Inner {
    shared: Arc<Shared>,
}

/// What emitters and subscriptions share.
struct Shared {
    /// The next block of task keys [`EventBus::new_task_key`] hands a thread.
    next_keys: CachePadded<AtomicU64>,
    /// How many subscriptions exist (emitting is one load of this when none).
    subscribers: AtomicUsize,
    /// This bus's identity among the emitting thread's rings.
    id: u64,
    /// When the bus was created, in nanoseconds of [`clock`].
    start: u64,
    /// The rings of the threads that emitted since a subscription, in the order they
    /// were registered; emptied (and the rings retired) when the last reader goes.
    rings: Mutex<Vec<Arc<Ring>>>,
    /// Changes whenever `rings` does, so that readers look at it only then.
    generation: AtomicU64,
    /// Set when the last [`EventBus`] is dropped.
    closed: AtomicBool,
    /// How many readers wait in [`Subscription::recv_timeout`], on a line of its own
    /// (readers write it, emitters only read it).
    waiting: CachePadded<AtomicUsize>,
    wake: Mutex<()>,
    ready: Condvar,
}

impl Default for Shared {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Shared {
            next_keys: CachePadded::new(AtomicU64::new(0)),
            subscribers: AtomicUsize::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            start: clock::precise_nanos(),
            rings: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waiting: CachePadded::new(AtomicUsize::new(0)),
            wake: Mutex::new(()),
            ready: Condvar::new(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::Release);
        // No more emissions: the emitting threads may forget their rings (readers
        // keep theirs to read what is left).
        for ring in lock(&shared.rings).iter() {
            ring.retire();
        }
        shared.wake_readers();
    }
}

thread_local! {
    /// This thread's rings, by bus id.
    static RINGS: RefCell<ThreadRings> = const { RefCell::new(ThreadRings(Vec::new())) };
    /// The block of task keys this thread takes from: its bus's id, the next key
    /// and the end of the block.
    static KEYS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
    /// The ring this thread used last and its bus's id: a pointer to a ring that an
    /// `Arc` in [`RINGS`] keeps alive (reset before [`RINGS`] lets any ring go), so
    /// that an emission finds its ring with one thread-local read.
    static LAST_RING: Cell<(u64, *const Ring)> = const { Cell::new((0, std::ptr::null())) };
}

/// A thread's rings, by bus id; forgets [`LAST_RING`] when dropped (the thread exits).
struct ThreadRings(Vec<(u64, Arc<Ring>)>);

impl Drop for ThreadRings {
    fn drop(&mut self) {
        let _ = LAST_RING.try_with(|last| last.set((0, std::ptr::null())));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Runs `push` on the current thread's ring of this bus, registering one first
    /// if needed. Drops the event when nobody reads (or the thread is exiting).
    #[inline]
    fn with_ring(&self, push: impl FnOnce(&Ring)) {
        match self.last_ring() {
            Some(ring) => push(ring),
            None => self.with_ring_slowly(push),
        }
    }

    /// The current thread's ring of this bus if it is the one it used last.
    #[inline]
    fn last_ring(&self) -> Option<&Ring> {
        let (id, ring) = LAST_RING.try_with(Cell::get).ok()?;
        if id != self.id {
            return None;
        }
        // SAFETY: `LAST_RING` points at a ring an `Arc` in this thread's `RINGS`
        // keeps alive; it is reset before `RINGS` drops any (in `with_ring_slowly`,
        // and when the thread's `RINGS` goes), and bus ids are never 0. The
        // reference does not outlive this emission (no ring is dropped during one).
        let ring = unsafe { &*ring };
        (!ring.is_retired()).then_some(ring)
    }

    /// Pushes a record into the current thread's ring of this bus.
    #[inline]
    fn push_words(&self, words: [u64; packed::WORDS]) {
        match self.last_ring() {
            Some(ring) => ring.push(words),
            None => self.with_ring_slowly(|ring| ring.push(words)),
        }
    }

    /// [`Self::with_ring`] when the last ring used is not this bus's.
    #[cold]
    fn with_ring_slowly(&self, push: impl FnOnce(&Ring)) {
        let _ = RINGS.try_with(|rings| {
            let Ok(mut rings) = rings.try_borrow_mut() else {
                return;
            };
            let _ = LAST_RING.try_with(|last| last.set((0, std::ptr::null())));
            rings.0.retain(|(_, ring)| !ring.is_retired());
            let ring = match rings.0.iter().find(|(id, _)| *id == self.id) {
                Some((_, ring)) => Arc::clone(ring),
                None => {
                    let Some(ring) = self.register() else {
                        return;
                    };
                    rings.0.push((self.id, Arc::clone(&ring)));
                    ring
                }
            };
            let _ = LAST_RING.try_with(|last| last.set((self.id, Arc::as_ptr(&ring))));
            push(&ring);
        });
    }

    /// A new ring for the current thread, if anybody reads.
    #[cold]
    fn register(&self) -> Option<Arc<Ring>> {
        let mut rings = lock(&self.rings);
        if self.subscribers.load(Ordering::Relaxed) == 0 || self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let ring = Arc::new(Ring::new());
        rings.push(Arc::clone(&ring));
        self.generation.fetch_add(1, Ordering::Release);
        Some(ring)
    }

    #[inline]
    fn deliver(&self, at: u64, event: Event) {
        match Record::pack(at, &event) {
            Some(words) => {
                // A packed event owns nothing on the heap (a submission's name and
                // group are borrowed): there is nothing to drop.
                std::mem::forget(event);
                self.deliver_words(words)
            }
            None => self.deliver_other(at, event),
        }
    }

    #[inline]
    fn deliver_words(&self, words: [u64; packed::WORDS]) {
        self.push_words(words);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.wake_readers();
        }
    }

    #[cold]
    fn deliver_other(&self, at: u64, event: Event) {
        self.with_ring(|ring| ring.push_other(at, event));
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.wake_readers();
        }
    }

    fn wake_readers(&self) {
        let _guard = lock(&self.wake);
        self.ready.notify_all();
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field(
                "subscribers",
                &self.inner.shared.subscribers.load(Ordering::Relaxed),
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
        self.inner.shared.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Time since this bus was created, read precisely.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(clock::precise_nanos().saturating_sub(self.inner.shared.start))
    }

    /// Time since this bus was created on the stream's coarse clock, what
    /// [`Self::emit`] stamps events with: about 1 ms resolution, and one atomic load.
    #[inline]
    pub fn clock(&self) -> Duration {
        Duration::from_nanos(self.coarse())
    }

    #[inline]
    fn coarse(&self) -> u64 {
        clock::coarse_nanos().saturating_sub(self.inner.shared.start)
    }

    /// [`Self::clock`] in nanoseconds: what a local executor keeps of a task's
    /// start, to stamp its events with [`Self::emit_at_nanos`] and give its end a
    /// duration, without a clock read of its own.
    #[inline]
    pub fn clock_nanos(&self) -> u64 {
        self.coarse()
    }

    /// A task began on this thread (a local executor's), as worker `worker`: returns
    /// its start on [`Self::clock_nanos`] (0 when nobody subscribed), to give
    /// [`Self::task_ended_here`]. Nothing is queued: readers see the task as running
    /// (a `TaskStarted`) when they read while it runs, else with its end, so that a
    /// trivial task's start and end cost one record.
    #[inline]
    pub fn task_started_here(&self, task: TaskKey, worker: WorkerKey) -> u64 {
        if !self.is_observed() {
            return 0;
        }
        let start = self.coarse();
        self.inner
            .shared
            .with_ring(|ring| ring.set_running(Some((task, worker, start))));
        start
    }

    /// The task started on this thread with [`Self::task_started_here`] at `start`
    /// ended with `outcome`: its `TaskStarted` (unless a reader saw it running) and its
    /// `TaskFinished` or `TaskFailed`, in one record.
    #[inline]
    pub fn task_ended_here(
        &self,
        task: TaskKey,
        worker: WorkerKey,
        start: u64,
        outcome: TaskOutcome,
    ) {
        if !self.is_observed() {
            return;
        }
        let at = self.coarse();
        let shared = &self.inner.shared;
        // The running task is left as it is: readers know it ended from this
        // record (and a new reader ignores what runs when it subscribes).
        shared.push_words(Record::ran(at, task, worker, start, outcome));
        if shared.waiting.load(Ordering::Relaxed) > 0 {
            shared.wake_readers();
        }
    }

    /// A task key never given before on this bus (for local executors, whose tasks
    /// have no scheduler id): taken from a block of [`KEY_BLOCK`] keys of the
    /// current thread's, so that numbering a task writes no shared cache line.
    /// Keys are unique, not consecutive across threads.
    #[inline]
    pub fn new_task_key(&self) -> TaskKey {
        let shared = &self.inner.shared;
        let taken = KEYS.try_with(|keys| {
            let (id, next, end) = keys.get();
            if id == shared.id && next < end {
                keys.set((id, next + 1, end));
                return next;
            }
            let start = shared.next_keys.fetch_add(KEY_BLOCK, Ordering::Relaxed);
            keys.set((shared.id, start + 1, start + KEY_BLOCK));
            start
        });
        taken.unwrap_or_else(|_| shared.next_keys.fetch_add(1, Ordering::Relaxed))
    }

    /// Emits `event` stamped `at` nanoseconds of [`Self::clock_nanos`].
    #[inline]
    pub fn emit_at_nanos(&self, at: u64, event: Event) {
        if self.is_observed() {
            self.inner.shared.deliver(at, event);
        }
    }

    /// Emits `event` to every subscriber, stamped with [`Self::clock`].
    pub fn emit(&self, event: Event) {
        if self.is_observed() {
            self.inner.shared.deliver(self.coarse(), event);
        }
    }

    /// Emits the event `make` builds, building it only if somebody subscribed.
    #[inline]
    pub fn emit_with(&self, make: impl FnOnce() -> Event) {
        if self.is_observed() {
            self.inner.shared.deliver(self.coarse(), make());
        }
    }

    /// Emits `TaskSubmitted` for `task` with a registered name (a `&'static str`),
    /// its group being the name's prefix ([`group_of`]): the cheapest emission of a
    /// submission (nothing is built or copied; the reader finds the group).
    #[inline]
    pub fn emit_submitted(&self, task: TaskKey, name: &'static str, items: u64) {
        if self.is_observed() {
            match Record::submitted(self.coarse(), task, name, items) {
                Some(words) => self.inner.shared.deliver_words(words),
                None => self.emit(Event::TaskSubmitted {
                    task,
                    name: name.into(),
                    group: group_of(name).into(),
                    items,
                }),
            }
        }
    }

    /// Emits `event` stamped at `when` (a clock reading the caller took anyway).
    pub fn emit_at(&self, when: Instant, event: Event) {
        if self.is_observed() {
            let at = clock::nanos_of(when).saturating_sub(self.inner.shared.start);
            self.inner.shared.deliver(at, event);
        }
    }

    /// Emits an event stamped elsewhere (a remote scheduler's event keeping its time,
    /// or a time read with [`Self::clock`]).
    pub fn emit_stamped(&self, stamped: Stamped) {
        if self.is_observed() {
            let at = stamped.at.as_nanos().min(u64::MAX as u128) as u64;
            self.inner.shared.deliver(at, stamped.event);
        }
    }

    /// Starts reading the stream: events emitted from now on, at most `capacity`
    /// (at least 1) held unread; older ones are dropped and counted.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let shared = &self.inner.shared;
        let rings = lock(&shared.rings);
        let cursors = rings
            .iter()
            .map(|ring| Cursor {
                // What runs now (or ran last) began before this reader: not reported.
                announced: ring.running().map(|(task, _, _)| task),
                ..Cursor::at(ring, ring.head())
            })
            .collect();
        let generation = shared.generation.load(Ordering::Acquire);
        shared.subscribers.fetch_add(1, Ordering::Relaxed);
        drop(rings);
        clock::reader_added();
        Subscription {
            shared: Arc::clone(shared),
            capacity: capacity.max(1),
            state: Mutex::new(ReaderState {
                generation,
                cursors,
                events: VecDeque::new(),
                dropped: 0,
            }),
        }
    }
}

/// A reader's position in one ring.
struct Cursor {
    ring: Arc<Ring>,
    /// The index of the next record to read.
    next: u64,
    /// The task of this ring's thread this reader reported as started while it ran
    /// (its record then gives only its end), or whose record it read last, or that
    /// ran when it subscribed: the ring's running task is reported only if another.
    announced: Option<TaskKey>,
}

impl Cursor {
    fn at(ring: &Arc<Ring>, next: u64) -> Cursor {
        Cursor {
            ring: Arc::clone(ring),
            next,
            announced: None,
        }
    }
}

/// A reader's position in each ring, and what it read but was not yet handed.
struct ReaderState {
    generation: u64,
    cursors: Vec<Cursor>,
    events: VecDeque<Stamped>,
    dropped: u64,
}

impl ReaderState {
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

    /// Takes in the rings registered since the last look.
    fn refresh(&mut self, shared: &Shared) {
        let generation = shared.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        let rings = lock(&shared.rings);
        self.generation = shared.generation.load(Ordering::Acquire);
        for ring in rings.iter() {
            if !self
                .cursors
                .iter()
                .any(|cursor| Arc::ptr_eq(&cursor.ring, ring))
            {
                // Registered after this reader subscribed: all of it is new.
                self.cursors.push(Cursor::at(ring, 0));
            }
        }
    }

    /// Moves what the rings hold into this reader's buffer, merged in time order,
    /// dropping the oldest beyond `capacity`.
    fn pull(&mut self, shared: &Shared, capacity: usize) {
        self.refresh(shared);
        // Heads first, the latest registered first: a thread registered later is
        // usually one that runs what an earlier one submitted, so a task's later
        // events are not taken without its submission.
        let heads: Vec<u64> = self
            .cursors
            .iter()
            .rev()
            .map(|cursor| cursor.ring.head())
            .collect();
        let mut batch: Vec<(u64, u8, Stamped)> = Vec::new();
        let mut add = |at: u64, rank: u8, event: Event| {
            let stamped = Stamped {
                at: Duration::from_nanos(at),
                event,
            };
            batch.push((at, rank, stamped));
        };
        for (cursor, head) in self.cursors.iter_mut().zip(heads.into_iter().rev()) {
            let ring = &cursor.ring;
            let read = ring.read(cursor.next, head);
            cursor.next = head;
            self.dropped += read.lost;
            for record in read.records {
                match record.unpack() {
                    Unpacked::Event(event) => add(record.at(), record.rank(), event),
                    Unpacked::Other(index) => match ring.other(index) {
                        Some(event) => add(record.at(), record.rank(), event),
                        None => self.dropped += 1,
                    },
                    Unpacked::Ran {
                        started,
                        start,
                        ended,
                    } => {
                        if cursor.announced != started.task() {
                            cursor.announced = started.task();
                            add(start, 1, started);
                        }
                        add(record.at(), record.rank(), ended);
                    }
                    Unpacked::Unknown => self.dropped += 1,
                }
            }
            // A task running now is reported as started (once): its record will
            // give only its end.
            if let Some((task, worker, start)) = ring.running() {
                if cursor.announced != Some(task) {
                    cursor.announced = Some(task);
                    add(start, 1, Event::TaskStarted { task, worker });
                }
            }
        }
        // Each ring is in order; merge them by time (stable: a ring's order is kept).
        batch.sort_by_key(|(at, rank, _)| (*at, *rank));
        for (_, _, stamped) in batch {
            if self.events.len() >= capacity {
                self.events.pop_front();
                self.dropped += 1;
            }
            self.events.push_back(stamped);
        }
    }

    /// Events waiting in the rings and the buffer.
    fn len(&self) -> usize {
        let in_rings: u64 = self
            .cursors
            .iter()
            .map(|cursor| {
                let waiting = cursor.ring.head().saturating_sub(cursor.next);
                waiting.min(RING_SLOTS as u64)
            })
            .sum();
        self.events.len() + in_rings as usize
    }
}

/// How many task keys a thread takes at once ([`EventBus::new_task_key`]).
pub const KEY_BLOCK: u64 = 1024;

/// How long a waiting reader sleeps at most before looking at the rings again (an
/// emitter wakes it sooner when it sees it waiting, without any ordering guarantee).
const WAIT_SLICE: Duration = Duration::from_millis(5);

/// A reader of an [`EventBus`]: a bounded buffer of the events emitted since it was made.
/// Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<Shared>,
    capacity: usize,
    state: Mutex<ReaderState>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Subscription {
    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Stamped> {
        let mut state = lock(&self.state);
        if let Some(next) = state.next() {
            return Some(next);
        }
        state.pull(&self.shared, self.capacity);
        state.next()
    }

    /// The next event, waiting up to `timeout` for one; `None` on timeout or when the bus
    /// is gone and everything was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Stamped> {
        let deadline = Instant::now() + timeout;
        loop {
            let closed = self.shared.closed.load(Ordering::Acquire);
            if let Some(next) = self.try_recv() {
                return Some(next);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if closed || left.is_zero() {
                return None;
            }
            self.shared.waiting.fetch_add(1, Ordering::Relaxed);
            let guard = lock(&self.shared.wake);
            let _ = self
                .shared
                .ready
                .wait_timeout(guard, left.min(WAIT_SLICE))
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Everything waiting now (a [`Event::Dropped`] first if events were lost).
    pub fn drain(&self) -> Vec<Stamped> {
        let mut state = lock(&self.state);
        state.pull(&self.shared, self.capacity);
        let mut out = Vec::with_capacity(state.events.len() + 1);
        while let Some(next) = state.next() {
            out.push(next);
        }
        out
    }

    /// How many events wait unread (not counting a pending [`Event::Dropped`]).
    pub fn len(&self) -> usize {
        let mut state = lock(&self.state);
        state.refresh(&self.shared);
        state.len()
    }

    /// Whether no event waits unread.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bus is gone (no more events will come once the buffer is read).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut rings = lock(&shared.rings);
        if shared.subscribers.fetch_sub(1, Ordering::Relaxed) == 1 {
            // Nobody reads any more: the emitting threads let their rings go.
            for ring in rings.drain(..) {
                ring.retire();
            }
            shared.generation.fetch_add(1, Ordering::Release);
        }
        drop(rings);
        clock::reader_removed();
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
        while events.shared.waiting.load(Ordering::Relaxed) == 0 {
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
        let expected = clock::nanos_of(when) - bus.inner.shared.start;
        assert_eq!(stamped.at, Duration::from_nanos(expected));
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

    fn started(task: u64, worker: u64) -> Event {
        Event::TaskStarted { task, worker }
    }

    #[test]
    fn every_thread_s_events_arrive_each_thread_s_in_order() {
        let bus = EventBus::new();
        let events = bus.subscribe(1 << 16);
        let emitters: Vec<_> = (0..3u64)
            .map(|thread| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for task in 0..1000 {
                        bus.emit(started(task, thread));
                    }
                })
            })
            .collect();
        for emitter in emitters {
            emitter.join().unwrap();
        }
        let mut next = [0u64; 3];
        for stamped in events.drain() {
            let Event::TaskStarted { task, worker } = stamped.event else {
                panic!("unexpected {:?}", stamped.event);
            };
            assert_eq!(task, next[worker as usize], "thread {worker} out of order");
            next[worker as usize] += 1;
        }
        assert_eq!(next, [1000; 3]);
    }

    #[test]
    fn a_thread_that_outruns_its_reader_loses_the_oldest_and_the_reader_is_told() {
        let bus = EventBus::new();
        let events = bus.subscribe(1 << 20);
        let total = RING_SLOTS as u64 + 10;
        for task in 0..total {
            bus.emit(released(task));
        }
        let read: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
        let Event::Dropped { count } = read[0] else {
            panic!("no Dropped first: {:?}", read[0]);
        };
        assert_eq!(count + read.len() as u64 - 1, total);
        assert_eq!(read.last(), Some(&released(total - 1)));
    }

    #[test]
    fn a_reader_counts_what_a_thread_that_began_emitting_after_it_subscribed_left() {
        let bus = EventBus::new();
        let events = bus.subscribe(16);
        let emitter = bus.clone();
        std::thread::spawn(move || emitter.emit(released(1)))
            .join()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert!(!events.is_empty());
    }

    #[test]
    fn when_the_last_reader_goes_the_threads_let_their_rings_go() {
        let bus = EventBus::new();
        let first = bus.subscribe(16);
        bus.emit(released(1));
        assert_eq!(lock(&bus.inner.shared.rings).len(), 1);
        drop(first);
        assert!(lock(&bus.inner.shared.rings).is_empty());
        bus.emit(released(2)); // nobody reads: nothing kept
        let second = bus.subscribe(16);
        bus.emit(released(3));
        let read: Vec<Event> = second.drain().into_iter().map(|s| s.event).collect();
        assert_eq!(read, vec![released(3)]);
    }

    #[test]
    fn a_submission_emitted_by_its_static_name_reads_as_the_full_event() {
        let bus = EventBus::new();
        let events = bus.subscribe(4);
        bus.emit_submitted(4, "fit-4", 3);
        let read = events.try_recv().map(|s| s.event);
        let expected = Event::TaskSubmitted {
            task: 4,
            name: "fit-4".into(),
            group: "fit".into(),
            items: 3,
        };
        assert_eq!(read, Some(expected));
    }

    #[test]
    fn a_task_that_ran_here_reads_as_started_then_ended_once() {
        let bus = EventBus::new();
        let events = bus.subscribe(16);
        let start = bus.task_started_here(1, 2);
        // A reader that reads while it runs is told it started.
        let running: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
        assert_eq!(running, vec![started(1, 2)]);
        bus.task_ended_here(1, 2, start, TaskOutcome::Finished { result_bytes: 5 });
        let start = bus.task_started_here(3, 2);
        bus.task_ended_here(3, 2, start, TaskOutcome::Failed(FailureKind::Panicked));
        let read: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
        assert_eq!(read.len(), 3, "{read:?}");
        assert!(
            matches!(
                read[0],
                Event::TaskFinished {
                    task: 1,
                    worker: Some(2),
                    result_bytes: 5,
                    ..
                }
            ),
            "{read:?}"
        );
        assert_eq!(read[1], started(3, 2));
        assert_eq!(
            read[2],
            Event::TaskFailed {
                task: 3,
                worker: Some(2),
                kind: FailureKind::Panicked
            }
        );
        assert_eq!(events.drain(), vec![], "nothing runs any more");
        let late = bus.subscribe(16);
        assert_eq!(late.drain(), vec![], "what ran before it is not reported");
    }

    #[test]
    fn task_keys_are_unique_across_threads_and_buses_keep_their_own() {
        let bus = EventBus::new();
        let other = EventBus::new();
        let mut keys: Vec<u64> = (0..3000).map(|_| bus.new_task_key()).collect();
        assert_eq!(other.new_task_key(), 0, "each bus numbers its own");
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    (0..2000).map(|_| bus.new_task_key()).collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in threads {
            keys.extend(thread.join().unwrap());
        }
        keys.extend((0..10).map(|_| bus.new_task_key()));
        let count = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), count, "no key given twice");
    }

    #[test]
    fn worker_events_with_strings_arrive_in_order_with_task_events() {
        let bus = EventBus::new();
        let events = bus.subscribe(16);
        let joined = Event::WorkerJoined {
            worker: 1,
            host: "node-1".into(),
            slots: 2,
            name: "node-1.1".into(),
        };
        bus.emit(joined.clone());
        bus.emit(started(5, 1));
        let given = Event::TaskSubmitted {
            task: 6,
            name: Cow::Owned("fit-6".into()),
            group: Cow::Owned("fit".into()),
            items: 1,
        };
        bus.emit(given.clone());
        let read: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
        assert_eq!(read, vec![joined, started(5, 1), given]);
    }

    #[test]
    fn a_reader_racing_a_fast_emitter_reads_only_whole_events() {
        let bus = EventBus::new();
        let events = bus.subscribe(1 << 20);
        let done = Arc::new(AtomicBool::new(false));
        let emitter = {
            let (bus, done) = (bus.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                for task in 0..200_000u64 {
                    // Every field says the same number: a torn read would not.
                    bus.emit(Event::TaskFinished {
                        task,
                        worker: Some(task),
                        duration: Duration::from_nanos(task),
                        result_bytes: task,
                    });
                }
                done.store(true, Ordering::Release);
            })
        };
        let (mut seen, mut lost, mut last) = (0u64, 0u64, None);
        loop {
            let finished = done.load(Ordering::Acquire);
            for stamped in events.drain() {
                match stamped.event {
                    Event::TaskFinished {
                        task,
                        worker,
                        duration,
                        result_bytes,
                    } => {
                        assert_eq!(worker, Some(task));
                        assert_eq!(duration, Duration::from_nanos(task));
                        assert_eq!(result_bytes, task);
                        assert!(last < Some(task), "out of order");
                        last = Some(task);
                        seen += 1;
                    }
                    Event::Dropped { count } => lost += count,
                    other => panic!("unexpected {other:?}"),
                }
            }
            if finished {
                break;
            }
        }
        emitter.join().unwrap();
        assert_eq!(seen + lost, 200_000);
        assert_eq!(last, Some(199_999));
    }
}
