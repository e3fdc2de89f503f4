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
//! fetch) boxed when it is needed. On a multi-process plan the slot is itself what
//! the cluster connection hands the task's end to ([`wherever_cluster::Arrive`]).

use crate::options::TaskOptions;
use crate::task_names::TaskIdentity;
use crate::{TaskError, TaskErrorKind};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;
use wherever_cluster::TaskHandle;

/// The slot holds its outcome (or a held result's fetch).
const RESOLVED: u8 = 1;
/// A caller runs the callbacks and is about to store the outcome.
const RESOLVING: u8 = 1 << 1;
/// A reader blocks on `resolved_signal`.
const WAITING: u8 = 1 << 2;
/// A reader is about to read the value ([`Slot::fetch_when_done`]): a held
/// result is then fetched as soon as the task ends.
const EAGER: u8 = 1 << 3;
/// A reader fetches the held result (outside the lock); other readers wait for
/// `resolved_signal`.
const FETCHING: u8 = 1 << 4;
/// The task was started here ([`Slot::start`]).
const STARTED: u8 = 1 << 5;
/// The task was cancelled before it started.
const CANCELLED: u8 = 1 << 6;
/// The last `Future` handle went before the task ended, and the scheduler was
/// told the result will not be read (see [`Slot::drop_handle`]).
const UNWANTED: u8 = 1 << 7;

/// Called with the outcome when a slot resolves.
pub(crate) type Callback<R> = Box<dyn FnOnce(&Result<R, TaskError>) + Send>;

/// Copies a value that several handles share (through the codec).
pub(crate) type Copier<R> = fn(&R) -> Result<R, String>;

/// Fetches a result left where it was computed (see [`Slot::resolve_held`]):
/// blocking the calling thread, off it, or with others
/// ([`held_fetch`](crate::held_fetch)).
pub(crate) type Fetcher<R> = Box<dyn crate::held_fetch::Fetch<R>>;

/// A resolved slot's outcome, shared by the handles reading it.
pub(crate) type Outcome<R> = Arc<Result<R, TaskError>>;

/// A task's result cell (see the module documentation).
pub(crate) struct Slot<R> {
    state: Mutex<SlotState<R>>,
    /// How many `Future` handles exist.
    handles: AtomicU32,
    resolved_signal: Condvar,
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

/// Who waits for a slot besides blocked readers: made on first use, so that a slot
/// nobody listens to carries one pointer for them.
struct Waiters<R> {
    listeners: Vec<(Sender<usize>, usize)>,
    callbacks: Vec<Callback<R>>,
    wakers: Vec<Waker>,
}

impl<R> Default for Waiters<R> {
    fn default() -> Self {
        Waiters {
            listeners: Vec::new(),
            callbacks: Vec::new(),
            wakers: Vec::new(),
        }
    }
}

/// What a slot holds of its outcome.
enum Resolution<R> {
    /// Nothing: not resolved yet, being fetched, or taken by the last handle.
    Empty,
    /// Resolved with a value no reader shares yet: a sole handle takes it from
    /// here, without an `Arc` allocated per task.
    Value(R),
    /// Resolved with an error no reader shares yet (boxed: errors are rare, and
    /// the enum stays the size of the value).
    Failed(Box<TaskError>),
    /// Resolved and read by more than one reader (see [`Slot::share`]).
    Shared(Outcome<R>),
    /// Resolved with a result held elsewhere, until the first read fetches it.
    Held(Box<Fetcher<R>>),
}

impl<R> Resolution<R> {
    /// An outcome given to the slot, unshared.
    fn of(outcome: Result<R, TaskError>) -> Self {
        match outcome {
            Ok(value) => Resolution::Value(value),
            Err(error) => Resolution::Failed(Box::new(error)),
        }
    }
}

struct SlotState<R> {
    resolution: Resolution<R>,
    /// [`RESOLVED`], [`RESOLVING`], [`WAITING`], [`EAGER`], [`FETCHING`],
    /// [`STARTED`], [`CANCELLED`], [`UNWANTED`].
    flags: u8,
    /// How to copy a value that several handles share (set for value types).
    copier: Option<Copier<R>>,
    /// For a task of a multi-process plan, where it runs: `cancel` cancels it there,
    /// and its handle is released when the last handle of the future goes.
    remote: Option<Remote>,
    /// Listeners, callbacks and wakers, once one registered.
    waiters: Option<Box<Waiters<R>>>,
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
}

impl<R> Slot<R> {
    /// A pending slot for the task `task` at `position`.
    pub(crate) fn new(task: &'static str, position: u64) -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                resolution: Resolution::Empty,
                flags: 0,
                copier: None,
                remote: None,
                waiters: None,
            }),
            handles: AtomicU32::new(0),
            resolved_signal: Condvar::new(),
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
                then(&outcome)
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
            return self.store(state, Resolution::of(outcome));
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
        self.store(state, Resolution::Held(Box::new(fetch)));
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
        while state.has(FETCHING) {
            state = self
                .resolved_signal
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Fetches a held result into the slot under the lock (a fallback: readers
    /// call [`Slot::fetch_if_held`] first).
    fn fetch_held(state: &mut SlotState<R>) {
        if let Some(fetch) = Self::take_held_fetch(state) {
            state.resolution = Resolution::of(fetch.fetch());
        }
    }

    /// Takes the fetch of a held result out of the state (leaving it empty);
    /// `None` if the slot holds no such result.
    fn take_held_fetch(state: &mut SlotState<R>) -> Option<Box<Fetcher<R>>> {
        if !matches!(state.resolution, Resolution::Held(_)) {
            return None;
        }
        match std::mem::replace(&mut state.resolution, Resolution::Empty) {
            Resolution::Held(fetch) => Some(fetch),
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
        Some(*fetch)
    }

    /// Stores the outcome of a fetch started by [`Slot::take_held`] (or by a
    /// reader) and wakes the readers waiting for it, blocked or async.
    pub(crate) fn put_fetched(&self, outcome: Result<R, TaskError>) {
        let mut state = self.lock();
        state.resolution = Resolution::of(outcome);
        state.set(FETCHING, false);
        let wakers = state
            .waiters
            .as_mut()
            .map(|w| std::mem::take(&mut w.wakers))
            .unwrap_or_default();
        drop(state);
        self.resolved_signal.notify_all();
        wakers.into_iter().for_each(Waker::wake);
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
    fn settle(&self, callbacks: Vec<Callback<R>>, outcome: Result<R, TaskError>) {
        for callback in callbacks {
            callback(&outcome);
        }
        let mut state = self.lock();
        for late in state.take_callbacks() {
            late(&outcome);
        }
        self.store(state, Resolution::of(outcome));
    }

    /// Stores the resolution (no callback left to run) and wakes whoever waits.
    fn store(&self, mut state: MutexGuard<'_, SlotState<R>>, resolution: Resolution<R>) {
        state.resolution = resolution;
        state.set(RESOLVED, true);
        let waiters = state.waiters.take();
        if state.has(WAITING) {
            self.resolved_signal.notify_all();
        }
        drop(state);
        if let Some(waiters) = waiters {
            for (listener, index) in waiters.listeners {
                let _ = listener.send(index);
            }
            waiters.wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.lock().has(RESOLVED)
    }

    /// Counts a new `Future` handle.
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets a dropped `Future` handle; the last one unwants the result
    /// ([`Slot::unwant_unread`]).
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.unwant_unread();
        }
    }

    /// The last `Future` handle went (none can be made again): if the task runs
    /// on a cluster and has not ended, and nothing here waits for its value,
    /// nobody will read its result. The scheduler is told so: it sends neither
    /// `Done` nor the result, which stays on its workers for the tasks that take
    /// it as an argument (issue 14 item 3).
    fn unwant_unread(&self) {
        let mut state = self.lock();
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

    /// Sets how to copy a value that several handles share.
    pub(crate) fn set_copier(&self, copier: Copier<R>) {
        self.lock().copier.get_or_insert(copier);
    }

    /// The copier, if set.
    pub(crate) fn copier(&self) -> Option<Copier<R>> {
        self.lock().copier
    }

    /// The outcome of a resolved slot (shared), for a handle that stays.
    fn shared_outcome(state: &mut SlotState<R>) -> Outcome<R> {
        Self::share(state).expect("a live handle's resolved slot holds its outcome")
    }

    /// The outcome as a shared `Arc`, moved into one on the first shared read.
    fn share(state: &mut SlotState<R>) -> Option<Outcome<R>> {
        Self::fetch_held(state);
        let unshared = std::mem::replace(&mut state.resolution, Resolution::Empty);
        let shared = match unshared {
            Resolution::Value(value) => Arc::new(Ok(value)),
            Resolution::Failed(error) => Arc::new(Err(*error)),
            Resolution::Shared(shared) => shared,
            Resolution::Empty | Resolution::Held(_) => return None,
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
        if self.handles.load(Ordering::Acquire) == 1 {
            match std::mem::replace(&mut state.resolution, Resolution::Empty) {
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
            state.set(WAITING, true);
            state = match deadline {
                None => self
                    .resolved_signal
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.resolved_signal
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
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
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_slot_stays_small_and_allocates_waiters_only_when_waited_on() {
        // Paid once per pending future (issue 14 item 5): about 185 bytes before the
        // waiters were boxed and the remote hooks became one handle, 136 before one
        // resolution enum and one flag byte (with the task's name and position,
        // moved here from every handle, and the options of a remote task, moved
        // here from a boxed callback per task), 104 before the name and position
        // became one word. With the `Arc`'s two counts it fits a 112-byte
        // allocation (glibc: a request of up to 104 bytes).
        let size = std::mem::size_of::<Slot<u64>>();
        assert!(size <= 88, "a slot is {size} bytes");
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
        assert!(matches!(*shared, Ok(6)));
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
        assert!(matches!(*slot.wait(None).expect("resolved"), Ok(9)));
        assert!(matches!(*slot.wait(None).expect("resolved"), Ok(9)));
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
            std::thread::spawn(move || matches!(*slot.wait(None).unwrap(), Ok(4)))
        };
        fetch_started.recv().unwrap();
        // The fetch is running: the slot still answers.
        assert!(slot.is_resolved());
        finish.send(()).unwrap();
        assert!(reader.join().unwrap());
        assert!(matches!(*slot.wait(None).unwrap(), Ok(4)));
    }
}
