//! Where a future's result is written: shared by every handle of the future, the
//! job that runs its task and the tasks that depend on it. The outcome is written
//! once, so any number of handles can read it, blocking ([`Slot::wait`]), with a
//! deadline, or from an async task (a [`Waker`] registered here is woken on
//! resolution; no thread blocks for it). The last handle may take it out
//! ([`Slot::outcome_for_last_handle`]); the slot counts its handles for that.
//!
//! A slot is paid once per pending task (issue 14 item 5), so it is kept small:
//! one resolution enum instead of several options, one flag byte instead of
//! several bools and an atomic phase, the task's name and position here rather
//! than in every handle, and what only some slots need (waiters, a held result's
//! fetch) boxed when it is needed. One lock guards it all, the handle count
//! included; blocked readers park their threads (registered with the other
//! waiters) rather than wait on a condition variable, and how to copy a shared
//! value travels with the resolution, so that the slot with its `Arc` counts fits
//! a 96-byte allocation. On a multi-process plan the slot is itself what
//! the cluster connection hands the task's end to ([`wherever_cluster::Arrive`]).

use crate::options::TaskOptions;
use crate::task_names::TaskIdentity;
use crate::{TaskError, TaskErrorKind};
use crossbeam_channel::Sender;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::thread::Thread;
use std::time::Instant;
use wherever_cluster::TaskHandle;

/// The slot holds its outcome (or a held result's fetch).
const RESOLVED: u8 = 1;
/// A caller runs the callbacks and is about to store the outcome.
const RESOLVING: u8 = 1 << 1;
/// A reader is about to read the value ([`Slot::fetch_when_done`]): a held
/// result is then fetched as soon as the task ends.
const EAGER: u8 = 1 << 2;
/// A reader fetches the held result (outside the lock); other readers wait
/// (parked) until it is in.
const FETCHING: u8 = 1 << 3;
/// The task was started here ([`Slot::start`]).
const STARTED: u8 = 1 << 4;
/// The task was cancelled before it started.
const CANCELLED: u8 = 1 << 5;
/// The last `Future` handle went before the task ended, and the scheduler was
/// told the result will not be read (see [`Slot::drop_handle`]).
const UNWANTED: u8 = 1 << 6;

/// Called with the outcome when a slot resolves.
pub(crate) type Callback<R> = Box<dyn FnOnce(&Result<R, TaskError>) + Send>;

/// Copies a value that several handles share (through the codec).
pub(crate) type Copier<R> = fn(&R) -> Result<R, String>;

/// Fetches a result left where it was computed (see [`Slot::resolve_held`]):
/// blocking the calling thread, off it, or with others
/// ([`held_fetch`](crate::held_fetch)).
pub(crate) type Fetcher<R> = Box<dyn crate::held_fetch::Fetch<R>>;

/// A resolved slot's outcome, shared by the handles reading it.
pub(crate) type Outcome<R> = Arc<SharedOutcome<R>>;

/// An outcome read by more than one reader, with how to copy its value for a
/// handle that takes it while others still read it ([`Future::value`](crate::Future::value)).
pub(crate) struct SharedOutcome<R> {
    /// The task's value or error.
    pub(crate) result: Result<R, TaskError>,
    /// How to copy the value (set once a handle of a value type is cloned or the
    /// future is made a dependency).
    copier: OnceLock<Copier<R>>,
}

impl<R> SharedOutcome<R> {
    /// `result`, shared, copied with `copier` if given.
    fn new(result: Result<R, TaskError>, copier: Option<Copier<R>>) -> Arc<Self> {
        let shared = SharedOutcome {
            result,
            copier: OnceLock::new(),
        };
        if let Some(copier) = copier {
            let _ = shared.copier.set(copier);
        }
        Arc::new(shared)
    }

    /// How to copy the value, if known.
    pub(crate) fn copier(&self) -> Option<Copier<R>> {
        self.copier.get().copied()
    }
}

/// A held result's fetch, with how to copy the value once fetched.
struct HeldResult<R> {
    fetch: Fetcher<R>,
    copier: Option<Copier<R>>,
}

/// A task's result cell (see the module documentation).
pub(crate) struct Slot<R> {
    state: Mutex<SlotState<R>>,
    /// The task's registered name (or `closure`), for its errors, and its
    /// position in its client's submission order, in one word.
    identity: TaskIdentity,
}

/// How a slot reaches where a task of a multi-process plan runs (see
/// [`Slot::set_remote`]).
struct Remote {
    /// The task's handle on its cluster connection.
    handle: TaskHandle,
    /// The options its errors are labelled with.
    options: Arc<TaskOptions>,
}

/// Who waits for a slot: made on first use, so that a slot nobody waits for
/// carries one pointer for them.
struct Waiters<R> {
    listeners: Vec<(Sender<usize>, usize)>,
    callbacks: Vec<Callback<R>>,
    wakers: Vec<Waker>,
    /// Readers parked until the slot resolves or its held result is fetched.
    threads: Vec<Thread>,
}

impl<R> Default for Waiters<R> {
    fn default() -> Self {
        Waiters {
            listeners: Vec::new(),
            callbacks: Vec::new(),
            wakers: Vec::new(),
            threads: Vec::new(),
        }
    }
}

/// Wakes parked readers and async readers (outside the slot's lock).
fn wake_readers(threads: Vec<Thread>, wakers: Vec<Waker>) {
    threads.iter().for_each(Thread::unpark);
    wakers.into_iter().for_each(Waker::wake);
}

/// What a slot holds of its outcome.
enum Resolution<R> {
    /// Nothing: not resolved yet, being fetched, or taken by the last handle;
    /// with how to copy the value once it is in, if set.
    Empty(Option<Copier<R>>),
    /// Resolved with a value no reader shares yet: a sole handle takes it from
    /// here, without an `Arc` allocated per task.
    Value(R),
    /// Resolved with an error no reader shares yet (boxed: errors are rare, and
    /// the enum stays the size of the value).
    Failed(Box<TaskError>),
    /// Resolved and read by more than one reader (see [`Slot::share`]).
    Shared(Outcome<R>),
    /// Resolved with a result held elsewhere, until the first read fetches it.
    Held(Box<HeldResult<R>>),
}

impl<R> Resolution<R> {
    /// An outcome given to the slot: unshared, unless it must keep `copier`
    /// (a value alone has no room for it).
    fn of(outcome: Result<R, TaskError>, copier: Option<Copier<R>>) -> Self {
        match (outcome, copier) {
            (Ok(value), None) => Resolution::Value(value),
            (Ok(value), copier) => Resolution::Shared(SharedOutcome::new(Ok(value), copier)),
            (Err(error), _) => Resolution::Failed(Box::new(error)),
        }
    }

    /// How to copy the value, if set (an error needs no copy).
    fn copier(&self) -> Option<Copier<R>> {
        match self {
            Resolution::Empty(copier) => *copier,
            Resolution::Shared(shared) => shared.copier(),
            Resolution::Held(held) => held.copier,
            Resolution::Value(_) | Resolution::Failed(_) => None,
        }
    }

    /// Takes the resolution out, leaving it empty (with the copier).
    fn take(&mut self) -> Self {
        let copier = self.copier();
        std::mem::replace(self, Resolution::Empty(copier))
    }
}

struct SlotState<R> {
    resolution: Resolution<R>,
    /// For a task of a multi-process plan, where it runs: `cancel` cancels it there,
    /// and its handle is released when the last handle of the future goes.
    remote: Option<Remote>,
    /// Listeners, callbacks, wakers and parked readers, once one registered.
    waiters: Option<Box<Waiters<R>>>,
    /// How many `Future` handles exist.
    handles: u32,
    /// [`RESOLVED`], [`RESOLVING`], [`EAGER`], [`FETCHING`], [`STARTED`],
    /// [`CANCELLED`], [`UNWANTED`].
    flags: u8,
}

impl<R> SlotState<R> {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// The waiters, made on first use.
    fn waiters(&mut self) -> &mut Waiters<R> {
        self.waiters.get_or_insert_with(Box::default)
    }

    /// Whether no callback waits for the outcome.
    fn no_callbacks(&self) -> bool {
        self.waiters.as_ref().is_none_or(|w| w.callbacks.is_empty())
    }

    /// Takes the callbacks registered so far.
    fn take_callbacks(&mut self) -> Vec<Callback<R>> {
        self.waiters
            .as_mut()
            .map(|w| std::mem::take(&mut w.callbacks))
            .unwrap_or_default()
    }

    /// Registers the calling thread to be unparked when the slot resolves or its
    /// held result is fetched (once, however often it parks).
    fn register_reader(&mut self) {
        let me = std::thread::current();
        let threads = &mut self.waiters().threads;
        if !threads.iter().any(|known| known.id() == me.id()) {
            threads.push(me);
        }
    }

    /// Forgets the calling thread as a parked reader (it stopped waiting).
    fn unregister_reader(&mut self) {
        let me = std::thread::current().id();
        if let Some(waiters) = &mut self.waiters {
            waiters.threads.retain(|known| known.id() != me);
        }
    }
}

impl<R> Slot<R> {
    /// A pending slot for the task `task` at `position`.
    pub(crate) fn new(task: &'static str, position: u64) -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                resolution: Resolution::Empty(None),
                remote: None,
                waiters: None,
                handles: 0,
                flags: 0,
            }),
            identity: TaskIdentity::new(task, position),
        })
    }

    /// The task's registered name (or `closure`).
    pub(crate) fn task(&self) -> &'static str {
        self.identity.name()
    }

    /// The task's position in its client's submission order.
    pub(crate) fn position(&self) -> u64 {
        self.identity.position()
    }

    /// Records that the task runs on a cluster connection under `handle`, its
    /// errors labelled with `options`: `cancel` cancels it there, and its result is
    /// released there when the last handle to this slot is dropped. A slot has one
    /// remote handle. Call before the task is submitted.
    pub(crate) fn set_remote(&self, handle: TaskHandle, options: Arc<TaskOptions>) {
        self.lock().remote.get_or_insert(Remote { handle, options });
    }

    /// The options a remote task's errors are labelled with (see [`Slot::set_remote`]).
    pub(crate) fn remote_options(&self) -> Option<Arc<TaskOptions>> {
        self.lock()
            .remote
            .as_ref()
            .map(|remote| remote.options.clone())
    }

    /// Runs `then` with the outcome once resolved (at once if it is).
    pub(crate) fn when_resolved(&self, then: Callback<R>) {
        self.fetch_if_held();
        let mut state = self.lock();
        if !state.has(RESOLVED) && state.has(UNWANTED) {
            // Its cluster will not send the result here: say so rather than hang.
            drop(state);
            return then(&Err(TaskError::new(
                "?",
                0,
                TaskErrorKind::Runtime,
                "its result is not sent to this process: every future of it was \
                 dropped before it ended (keep a future to read it here)",
            )));
        }
        if !state.has(RESOLVED) {
            state.waiters().callbacks.push(then);
            return;
        }
        match Self::share(&mut state) {
            Some(outcome) => {
                drop(state);
                then(&outcome.result)
            }
            None => {
                drop(state);
                then(&Err(TaskError::new(
                    "?",
                    0,
                    TaskErrorKind::Runtime,
                    "its value was already taken by the last handle of its future",
                )))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<R>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Parks the calling thread, registered as a reader, with the lock released
    /// (until unparked, `deadline` passes, or spuriously: callers re-check), and
    /// takes the lock again.
    fn park_reader<'a>(
        &'a self,
        mut state: MutexGuard<'a, SlotState<R>>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, SlotState<R>> {
        state.register_reader();
        drop(state);
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        }
        self.lock()
    }

    /// Marks the task as started; `false` if it was cancelled first (then do not run it).
    pub(crate) fn start(&self) -> bool {
        let mut state = self.lock();
        if state.has(STARTED | CANCELLED) {
            return false;
        }
        state.set(STARTED, true);
        true
    }

    /// Stores the outcome and wakes whoever waits; a second outcome is ignored.
    /// Callbacks run outside the lock, before any handle can read the outcome.
    pub(crate) fn resolve(&self, outcome: Result<R, TaskError>) {
        let mut state = self.lock();
        if state.no_callbacks() && !state.has(RESOLVED | RESOLVING) {
            // Nothing to call outside the lock (the usual case): store it at once.
            return self.store(state, Ok(outcome));
        }
        let Some(callbacks) = Self::claim(&mut state) else {
            return;
        };
        drop(state);
        self.settle(callbacks, outcome);
    }

    /// Resolves the slot with a result that stays where it is until read: the
    /// first read runs `fetch` (blocking). Gives `fetch` back if the slot cannot
    /// wait for a reader (callbacks wait for the value, a reader asked for it with
    /// [`Slot::fetch_when_done`], or it is resolved).
    pub(crate) fn resolve_held(&self, fetch: Fetcher<R>) -> Result<(), Fetcher<R>> {
        let state = self.lock();
        if !state.no_callbacks() || state.has(EAGER | RESOLVED | RESOLVING) {
            return Err(fetch);
        }
        let copier = state.resolution.copier();
        self.store(state, Err(HeldResult { fetch, copier }));
        Ok(())
    }

    /// Says the value will be read: if the result is held elsewhere when the task
    /// ends, it is fetched at once (with the other results read together, as
    /// `gather` does) rather than when read.
    pub(crate) fn fetch_when_done(&self) {
        self.lock().set(EAGER, true);
    }

    /// Fetches a held result into the slot, outside the lock (so `is_resolved` and
    /// listeners never wait for the network); a reader that comes meanwhile waits
    /// for it. Call before reading a resolved slot's outcome.
    fn fetch_if_held(&self) {
        let mut state = self.lock();
        if let Some(fetch) = Self::take_held_fetch(&mut state) {
            state.set(FETCHING, true);
            drop(state);
            return self.put_fetched(fetch.fetch());
        }
        if state.has(FETCHING) {
            while state.has(FETCHING) {
                state = self.park_reader(state, None);
            }
            // `put_fetched` took the parked readers; this is in case it did not.
            state.unregister_reader();
        }
    }

    /// Fetches a held result into the slot under the lock (a fallback: readers
    /// call [`Slot::fetch_if_held`] first).
    fn fetch_held(state: &mut SlotState<R>) {
        if let Some(fetch) = Self::take_held_fetch(state) {
            let copier = state.resolution.copier();
            state.resolution = Resolution::of(fetch.fetch(), copier);
        }
    }

    /// Takes the fetch of a held result out of the state (leaving it empty);
    /// `None` if the slot holds no such result.
    fn take_held_fetch(state: &mut SlotState<R>) -> Option<Fetcher<R>> {
        if !matches!(state.resolution, Resolution::Held(_)) {
            return None;
        }
        match state.resolution.take() {
            Resolution::Held(held) => Some(held.fetch),
            _ => unreachable!("matched above"),
        }
    }

    /// Takes the held result of a resolved slot to fetch it elsewhere (with
    /// others: [`crate::held_fetch::fetch_together`]); readers wait until
    /// [`Slot::put_fetched`]. `None` if there is none to fetch.
    pub(crate) fn take_held(&self) -> Option<Fetcher<R>> {
        let mut state = self.lock();
        let fetch = Self::take_held_fetch(&mut state)?;
        state.set(FETCHING, true);
        Some(fetch)
    }

    /// Stores the outcome of a fetch started by [`Slot::take_held`] (or by a
    /// reader) and wakes the readers waiting for it, blocked or async.
    pub(crate) fn put_fetched(&self, outcome: Result<R, TaskError>) {
        let mut state = self.lock();
        let copier = state.resolution.copier();
        state.resolution = Resolution::of(outcome, copier);
        state.set(FETCHING, false);
        // Resolved already: only readers waiting for the fetch can be in it.
        let waiters = state.waiters.take();
        drop(state);
        if let Some(waiters) = waiters {
            wake_readers(waiters.threads, waiters.wakers);
        }
    }

    /// Whether a resolved slot's outcome can be read without waiting for the
    /// network. If its result is held elsewhere, the fetch starts off this
    /// thread (on the cluster connection's runtime), and `waker` is woken once
    /// the outcome is here: an async reader never blocks its executor.
    pub(crate) fn poll_fetched(self: &Arc<Self>, waker: &Waker) -> bool
    where
        R: Send + Sync + 'static,
    {
        let mut state = self.lock();
        if !matches!(state.resolution, Resolution::Held(_)) && !state.has(FETCHING) {
            return true;
        }
        let wakers = &mut state.waiters().wakers;
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        if let Some(fetch) = Self::take_held_fetch(&mut state) {
            state.set(FETCHING, true);
            drop(state);
            let slot = self.clone();
            fetch.fetch_then(Box::new(move |outcome| slot.put_fetched(outcome)));
        }
        false
    }

    /// Makes the caller the one that resolves the slot, taking the callbacks to run;
    /// `None` if it is resolved or being resolved already.
    fn claim(state: &mut SlotState<R>) -> Option<Vec<Callback<R>>> {
        if state.has(RESOLVED | RESOLVING) {
            return None;
        }
        state.set(RESOLVING, true);
        Some(state.take_callbacks())
    }

    /// Runs the claimed `callbacks` and stores the outcome (after [`Slot::claim`]).
    /// Callbacks registered while these run (the slot is not resolved yet) run
    /// next, also outside the lock: a callback may clone or drop a handle of this
    /// very slot, which takes the lock. The outcome is stored under the same lock
    /// that found no callback left, so none can slip in unrun.
    fn settle(&self, mut callbacks: Vec<Callback<R>>, outcome: Result<R, TaskError>) {
        loop {
            for callback in callbacks {
                callback(&outcome);
            }
            let mut state = self.lock();
            callbacks = state.take_callbacks();
            if callbacks.is_empty() {
                return self.store(state, Ok(outcome));
            }
        }
    }

    /// Stores the outcome (`Ok`) or a held result's fetch (`Err`), no callback
    /// left to run, and wakes whoever waits.
    fn store(
        &self,
        mut state: MutexGuard<'_, SlotState<R>>,
        resolved: Result<Result<R, TaskError>, HeldResult<R>>,
    ) {
        state.resolution = match resolved {
            Ok(outcome) => Resolution::of(outcome, state.resolution.copier()),
            Err(held) => Resolution::Held(Box::new(held)),
        };
        state.set(RESOLVED, true);
        let waiters = state.waiters.take();
        drop(state);
        if let Some(waiters) = waiters {
            for (listener, index) in waiters.listeners {
                let _ = listener.send(index);
            }
            wake_readers(waiters.threads, waiters.wakers);
        }
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.lock().has(RESOLVED)
    }

    /// Counts a new `Future` handle.
    pub(crate) fn add_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_add(1);
    }

    /// Forgets a dropped `Future` handle; the last one unwants the result
    /// ([`Slot::unwant_unread`]).
    pub(crate) fn drop_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_sub(1);
        if state.handles == 0 {
            self.unwant_unread(state);
        }
    }

    /// The last `Future` handle went (none can be made again): if the task runs
    /// on a cluster and has not ended, and nothing here waits for its value,
    /// nobody will read its result. The scheduler is told so: it sends neither
    /// `Done` nor the result, which stays on its workers for the tasks that take
    /// it as an argument (issue 14 item 3).
    fn unwant_unread(&self, mut state: MutexGuard<'_, SlotState<R>>) {
        let waited_on = state
            .waiters
            .as_ref()
            .is_some_and(|w| !w.callbacks.is_empty());
        if state.remote.is_none() || state.has(RESOLVED | RESOLVING | EAGER) || waited_on {
            return;
        }
        state.set(UNWANTED, true);
        let handle = state.remote.as_ref().map(|remote| remote.handle.clone());
        drop(state);
        if let Some(handle) = handle {
            handle.unwant();
        }
    }

    /// Sets how to copy a value that several handles share: kept with the
    /// resolution (a resolved value is shared for it).
    pub(crate) fn set_copier(&self, copier: Copier<R>) {
        let mut state = self.lock();
        let resolution = &mut state.resolution;
        match resolution {
            Resolution::Empty(known) => {
                known.get_or_insert(copier);
            }
            Resolution::Held(held) => {
                held.copier.get_or_insert(copier);
            }
            Resolution::Shared(shared) => {
                let _ = shared.copier.set(copier);
            }
            Resolution::Failed(_) => {}
            Resolution::Value(_) => {
                if let Resolution::Value(value) = resolution.take() {
                    *resolution = Resolution::Shared(SharedOutcome::new(Ok(value), Some(copier)));
                }
            }
        }
    }

    /// How to copy a value that several handles share, if set (for tests).
    #[cfg(test)]
    pub(crate) fn copier(&self) -> Option<Copier<R>> {
        self.lock().resolution.copier()
    }

    /// The outcome of a resolved slot (shared), for a handle that stays.
    fn shared_outcome(state: &mut SlotState<R>) -> Outcome<R> {
        Self::share(state).expect("a live handle's resolved slot holds its outcome")
    }

    /// The outcome as a shared `Arc`, moved into one on the first shared read.
    fn share(state: &mut SlotState<R>) -> Option<Outcome<R>> {
        Self::fetch_held(state);
        let shared = match state.resolution.take() {
            Resolution::Value(value) => SharedOutcome::new(Ok(value), None),
            Resolution::Failed(error) => SharedOutcome::new(Err(*error), None),
            Resolution::Shared(shared) => shared,
            other @ (Resolution::Empty(_) | Resolution::Held(_)) => {
                state.resolution = other;
                return None;
            }
        };
        state.resolution = Resolution::Shared(shared.clone());
        Some(shared)
    }

    /// [`Slot::outcome_for_last_handle`] if the slot is resolved, else `None`
    /// (one lock for a handle that finds its result ready).
    pub(crate) fn ready_outcome_for_last_handle(
        &self,
    ) -> Option<Result<Result<R, TaskError>, Outcome<R>>> {
        self.fetch_if_held();
        let mut state = self.lock();
        if !state.has(RESOLVED) {
            return None;
        }
        Some(self.outcome_of_resolved(&mut state))
    }

    /// The outcome of a resolved slot for a handle that goes: taken out of the slot
    /// if it is the only handle (nothing can read it through a future any more):
    /// `Ok` if it was never shared, else `Err` with the shared outcome.
    pub(crate) fn outcome_for_last_handle(&self) -> Result<Result<R, TaskError>, Outcome<R>> {
        self.fetch_if_held();
        self.outcome_of_resolved(&mut self.lock())
    }

    /// [`Slot::outcome_for_last_handle`] under the lock.
    fn outcome_of_resolved(
        &self,
        state: &mut SlotState<R>,
    ) -> Result<Result<R, TaskError>, Outcome<R>> {
        Self::fetch_held(state);
        if state.handles == 1 {
            match state.resolution.take() {
                Resolution::Value(value) => return Ok(Ok(value)),
                Resolution::Failed(error) => return Ok(Err(*error)),
                Resolution::Shared(shared) => return Err(shared),
                other => state.resolution = other,
            }
        }
        Err(Self::shared_outcome(state))
    }

    /// Tells `listener` (with `index`) when the slot resolves.
    pub(crate) fn listen(&self, listener: &Sender<usize>, index: usize) {
        let mut state = self.lock();
        if state.has(RESOLVED) {
            let _ = listener.send(index);
        } else {
            state.waiters().listeners.push((listener.clone(), index));
        }
    }

    /// Stops `listener` from being told of the resolution (its waiter gave up).
    pub(crate) fn unlisten(&self, listener: &Sender<usize>) {
        if let Some(waiters) = &mut self.lock().waiters {
            waiters
                .listeners
                .retain(|(registered, _)| !registered.same_channel(listener));
        }
    }

    /// How many listeners are registered (for tests).
    #[cfg(test)]
    pub(crate) fn listeners(&self) -> usize {
        self.lock()
            .waiters
            .as_ref()
            .map_or(0, |w| w.listeners.len())
    }

    /// Whether resolved; if not, `waker` is woken when it is.
    pub(crate) fn poll_resolved(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if state.has(RESOLVED) {
            return true;
        }
        let wakers = &mut state.waiters().wakers;
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        false
    }

    /// Cancels the task if it has neither started nor resolved: `false` for a
    /// running task, and for a resolved one whatever its phase (a task of a
    /// multi-process plan never passes through `start` here).
    pub(crate) fn cancel(&self, cancelled: impl FnOnce() -> TaskError) -> bool {
        let callbacks = {
            let mut state = self.lock();
            if state.has(RESOLVED | RESOLVING | STARTED | CANCELLED) {
                return false;
            }
            state.set(CANCELLED, true);
            let Some(callbacks) = Self::claim(&mut state) else {
                return false;
            };
            // Sends on a channel: nothing that could come back to this slot.
            if let Some(remote) = &state.remote {
                remote.handle.cancel();
            }
            callbacks
        };
        self.settle(callbacks, Err(cancelled()));
        true
    }

    /// Blocks until resolved, or until `deadline` passes (`None`: no deadline),
    /// then returns the outcome (`None` if the deadline passed first).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Outcome<R>> {
        let mut state = self.lock();
        while !state.has(RESOLVED) {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                state.unregister_reader();
                return None;
            }
            state = self.park_reader(state, deadline);
        }
        if matches!(state.resolution, Resolution::Held(_)) || state.has(FETCHING) {
            drop(state);
            self.fetch_if_held();
            state = self.lock();
        }
        Some(Self::shared_outcome(&mut state))
    }
}

impl<R> Drop for Slot<R> {
    /// The last handle went: a remote result may be freed.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(remote) = state.remote.take() {
            remote.handle.release();
        }
    }
}

/// What to run when the last handle on a result or scattered value goes.
pub(crate) type Release = Mutex<Option<Box<dyn FnOnce() + Send>>>;

/// Runs `release` if set (from a `Drop`, where nothing else can hold the lock).
pub(crate) fn run_release(release: &mut Release) {
    if let Some(release) = release.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
        release();
    }
}

/// A future's slot with its value type erased: what a dependent task needs.
pub(crate) trait ErasedSlot: Send + Sync {
    /// Calls `then` once resolved, with the encoded value or the error.
    fn when_resolved_encoded(&self, then: Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>);
    /// (cluster, task id) when the task runs on a multi-process plan.
    fn remote(&self) -> Option<(u64, u64)>;
}

impl<R: crate::Value> ErasedSlot for Slot<R> {
    fn when_resolved_encoded(&self, then: Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>) {
        self.when_resolved(Box::new(move |outcome| then(encoded(outcome))));
    }

    fn remote(&self) -> Option<(u64, u64)> {
        self.lock()
            .remote
            .as_ref()
            .map(|remote| (remote.handle.cluster(), remote.handle.task()))
    }
}

/// The outcome with its value encoded (as a dependent task receives it).
fn encoded<R: crate::Value>(outcome: &Result<R, TaskError>) -> Result<Vec<u8>, TaskError> {
    match outcome {
        Ok(value) => wherever_core::codec::encode(value).map_err(|e| {
            TaskError::new(
                "?",
                0,
                TaskErrorKind::Runtime,
                format!("cannot encode a result: {e}"),
            )
        }),
        Err(error) => Err(error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_callback_registered_while_callbacks_run_may_drop_a_handle_of_the_slot() {
        // The second callback is registered while the first runs (the slot is
        // resolving, not resolved), so it runs late; it owns a handle of the same
        // slot and drops it, which takes the slot's lock: it must not run under it.
        let slot = Slot::<u64>::new("t", 0);
        let future = crate::Future::new(slot.clone());
        let handle = future.clone();
        let (ran, heard) = std::sync::mpsc::channel();
        let same = slot.clone();
        slot.when_resolved(Box::new(move |_| {
            same.when_resolved(Box::new(move |outcome| {
                drop(handle);
                ran.send(outcome.as_ref().ok().copied()).unwrap();
            }));
        }));
        let resolver = slot.clone();
        std::thread::spawn(move || resolver.resolve(Ok(5)));
        // A hang guard: a deadlock never sends.
        let Ok(seen) = heard.recv_timeout(std::time::Duration::from_secs(60)) else {
            // Dropping the handle would wait for the lock the resolver holds.
            std::mem::forget(future);
            panic!("the late callback never ran: a deadlock on the slot's lock");
        };
        assert_eq!(seen, Some(5));
        assert_eq!(future.value().unwrap(), 5);
    }

    #[test]
    fn a_slot_stays_small_and_allocates_waiters_only_when_waited_on() {
        // Paid once per pending future (issue 14 item 5): about 185 bytes before the
        // waiters were boxed and the remote hooks became one handle, 136 before one
        // resolution enum and one flag byte (with the task's name and position,
        // moved here from every handle, and the options of a remote task, moved
        // here from a boxed callback per task), 104 before the name and position
        // became one word, 88 before the condition variable, the copier and the
        // atomic handle count left (one lock for all). With the `Arc`'s two counts
        // it fits a 96-byte allocation (glibc: a request of up to 88 bytes).
        let size = std::mem::size_of::<Slot<u64>>();
        assert!(size <= 72, "a slot is {size} bytes");
        let slot = Slot::<u64>::new("t", 0);
        assert!(slot.lock().waiters.is_none());
        let (listener, heard) = crossbeam_channel::unbounded();
        slot.listen(&listener, 3);
        assert_eq!(slot.listeners(), 1);
        slot.resolve(Ok(1));
        assert_eq!(heard.try_recv(), Ok(3));
        assert!(slot.lock().waiters.is_none(), "resolving frees the waiters");
    }

    #[test]
    fn a_sole_handle_takes_the_outcome_unshared() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        slot.resolve(Ok(5));
        assert!(matches!(slot.outcome_for_last_handle(), Ok(Ok(5))));
    }

    #[test]
    fn a_ready_read_is_none_until_resolved_and_a_second_outcome_is_ignored() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        assert!(slot.ready_outcome_for_last_handle().is_none());
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        slot.when_resolved(Box::new(move |outcome| {
            *record.lock().unwrap() = outcome.as_ref().ok().copied();
        }));
        slot.resolve(Ok(7));
        slot.resolve(Ok(8));
        assert_eq!(*seen.lock().unwrap(), Some(7));
        assert!(matches!(
            slot.ready_outcome_for_last_handle(),
            Some(Ok(Ok(7)))
        ));
        let plain = Slot::<u64>::new("t", 0);
        plain.add_handle();
        plain.resolve(Ok(1));
        plain.resolve(Ok(2));
        assert!(matches!(
            plain.ready_outcome_for_last_handle(),
            Some(Ok(Ok(1)))
        ));
    }

    #[test]
    fn a_shared_read_shares_the_one_outcome() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        slot.resolve(Ok(6));
        let shared = slot.wait(None).expect("resolved");
        assert!(matches!(shared.result, Ok(6)));
        match slot.outcome_for_last_handle() {
            Err(again) => assert!(Arc::ptr_eq(&shared, &again)),
            Ok(_) => panic!("the outcome was shared already"),
        }
    }

    #[test]
    fn a_held_result_resolves_the_slot_and_is_fetched_once_by_the_first_read() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        let (listener, heard) = crossbeam_channel::unbounded();
        slot.listen(&listener, 2);
        let fetch: Fetcher<u64> = Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(9)
        });
        assert!(slot.resolve_held(fetch).is_ok());
        assert!(slot.is_resolved());
        assert_eq!(heard.try_recv(), Ok(2));
        assert_eq!(fetches.load(Ordering::SeqCst), 0, "fetched before a read");
        assert!(matches!(slot.wait(None).expect("resolved").result, Ok(9)));
        assert!(matches!(slot.wait(None).expect("resolved").result, Ok(9)));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_held_result_is_given_back_when_something_waits_for_the_value() {
        let waited = Slot::<u64>::new("t", 0);
        waited.when_resolved(Box::new(|_| {}));
        assert!(waited.resolve_held(Box::new(|| Ok(1))).is_err());
        assert!(!waited.is_resolved());
        let gathered = Slot::<u64>::new("t", 0);
        gathered.fetch_when_done();
        assert!(gathered.resolve_held(Box::new(|| Ok(1))).is_err());
        let done = Slot::<u64>::new("t", 0);
        done.resolve(Ok(3));
        assert!(done.resolve_held(Box::new(|| Ok(1))).is_err());
    }

    #[test]
    fn a_fetch_in_progress_does_not_hold_the_slot_locked() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        let (started, fetch_started) = std::sync::mpsc::channel();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let fetch: Fetcher<u64> = Box::new(move || {
            started.send(()).unwrap();
            finishing.recv().unwrap();
            Ok(4)
        });
        assert!(slot.resolve_held(fetch).is_ok());
        let reader = {
            let slot = slot.clone();
            std::thread::spawn(move || matches!(slot.wait(None).unwrap().result, Ok(4)))
        };
        fetch_started.recv().unwrap();
        // The fetch is running: the slot still answers.
        assert!(slot.is_resolved());
        // A second reader waits (parked) for the fetch rather than fetching again.
        let second = {
            let slot = slot.clone();
            std::thread::spawn(move || matches!(slot.wait(None).unwrap().result, Ok(4)))
        };
        until("a reader parked on the fetch", || parked(&slot) == 1);
        finish.send(()).unwrap();
        assert!(reader.join().unwrap());
        assert!(second.join().unwrap());
        assert!(matches!(slot.wait(None).unwrap().result, Ok(4)));
        assert!(
            slot.lock().waiters.is_none(),
            "the fetch's end frees the waiters"
        );
    }

    /// Waits (a hang guard of 60 s, never asserted on) until `ready` holds.
    fn until(what: &str, ready: impl Fn() -> bool) {
        let give_up = Instant::now() + std::time::Duration::from_secs(60);
        while !ready() {
            assert!(Instant::now() < give_up, "still waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// How many readers are parked on `slot`.
    fn parked(slot: &Slot<u64>) -> usize {
        slot.lock().waiters.as_ref().map_or(0, |w| w.threads.len())
    }

    #[test]
    fn many_readers_blocked_on_one_slot_are_all_woken_by_a_resolution_from_another_thread() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let slot = slot.clone();
                std::thread::spawn(move || slot.wait(None).map(|o| o.result.clone().ok()))
            })
            .collect();
        until("8 parked readers", || parked(&slot) == 8);
        let resolver = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.resolve(Ok(42)))
        };
        resolver.join().unwrap();
        for reader in readers {
            assert_eq!(reader.join().unwrap(), Some(Some(42)));
        }
        assert!(
            slot.lock().waiters.is_none(),
            "resolving frees the parked readers"
        );
    }

    #[test]
    fn a_timed_wait_expires_unresolved_and_forgets_its_reader() {
        let slot = Slot::<u64>::new("t", 0);
        let deadline = Instant::now() + std::time::Duration::from_millis(20);
        assert!(slot.wait(Some(deadline)).is_none());
        assert_eq!(parked(&slot), 0, "the expired reader is not kept");
        // Expired again at once (a deadline in the past), then read once resolved:
        // an outcome in wins over a passed deadline.
        assert!(slot.wait(Some(deadline)).is_none());
        slot.resolve(Ok(3));
        assert!(matches!(slot.wait(Some(deadline)).unwrap().result, Ok(3)));
    }

    #[test]
    fn a_timed_wait_is_woken_by_a_resolution_before_its_deadline() {
        let slot = Slot::<u64>::new("t", 0);
        let reader = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + std::time::Duration::from_secs(600);
                slot.wait(Some(deadline)).map(|o| o.result.clone().ok())
            })
        };
        until("a parked timed reader", || parked(&slot) == 1);
        slot.resolve(Ok(8));
        assert_eq!(reader.join().unwrap(), Some(Some(8)));
    }

    #[test]
    fn a_blocked_reader_reads_the_value_after_the_last_other_handle_drops() {
        let (commands, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let slot = Slot::<u64>::new("t", 0);
        slot.set_remote(
            wherever_cluster::TaskHandle::on_channel(1, commands, 7),
            Arc::default(),
        );
        let future = crate::Future::new(slot.clone());
        let other = future.clone();
        let reader = std::thread::spawn(move || future.value_ref().ok().copied());
        until("a parked reader", || parked(&slot) == 1);
        drop(other);
        assert_eq!(slot.lock().handles, 1);
        assert!(
            !slot.lock().has(UNWANTED),
            "the reader's handle still wants it"
        );
        assert!(sent.try_recv().is_err(), "nothing told to the scheduler");
        slot.resolve(Ok(5));
        assert_eq!(reader.join().unwrap(), Some(5));
        assert_eq!(slot.lock().handles, 0);
    }

    #[test]
    fn the_copier_stays_with_the_resolution_whenever_it_is_set() {
        fn copy(value: &u64) -> Result<u64, String> {
            Ok(*value)
        }
        // Set while pending: the value is shared with it on resolution.
        let pending = Slot::<u64>::new("t", 0);
        pending.set_copier(copy);
        pending.resolve(Ok(1));
        assert!(pending.copier().is_some());
        // Set on a resolved value, on a shared outcome, on an error.
        let resolved = Slot::<u64>::new("t", 0);
        resolved.resolve(Ok(2));
        resolved.set_copier(copy);
        assert!(resolved.copier().is_some());
        let shared = Slot::<u64>::new("t", 0);
        shared.resolve(Ok(3));
        let outcome = shared.wait(None).unwrap();
        shared.set_copier(copy);
        assert!(outcome.copier().is_some());
        let failed = Slot::<u64>::new("t", 0);
        failed.resolve(Err(TaskError::new("t", 0, TaskErrorKind::Runtime, "no")));
        failed.set_copier(copy);
        assert!(failed.wait(None).unwrap().result.is_err());
        // Set on a held result, and kept through its fetch.
        let held = Slot::<u64>::new("t", 0);
        assert!(held.resolve_held(Box::new(|| Ok(4))).is_ok());
        held.set_copier(copy);
        let fetched = held.wait(None).unwrap();
        assert!(matches!(fetched.result, Ok(4)));
        assert!(fetched.copier().is_some());
        let before = Slot::<u64>::new("t", 0);
        before.set_copier(copy);
        assert!(before.resolve_held(Box::new(|| Ok(5))).is_ok());
        assert!(before.wait(None).unwrap().copier().is_some());
    }

    #[test]
    fn a_handle_count_is_kept_under_the_lock() {
        let slot = Slot::<u64>::new("t", 0);
        let futures: Vec<_> = (0..4).map(|_| crate::Future::new(slot.clone())).collect();
        assert_eq!(slot.lock().handles, 4);
        drop(futures);
        assert_eq!(slot.lock().handles, 0);
    }
}
