//! Where a future's result is written: shared by every handle of the future, the
//! job that runs its task and the tasks that depend on it. The outcome is written
//! once, behind an `Arc`, so any number of handles can read it, blocking
//! ([`Slot::wait`]), with a deadline, or from an async task (a [`Waker`] registered
//! here is woken on resolution; no thread blocks for it). The last handle may take
//! it out ([`Slot::outcome_for_last_handle`]); the slot counts its handles for that.

use crate::{TaskError, TaskErrorKind};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Instant;
use wherever_cluster::TaskHandle;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

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
    handles: AtomicUsize,
    /// How to copy a value that several handles share (set for value types).
    copier: OnceLock<Copier<R>>,
    resolved_signal: Condvar,
    phase: AtomicU8,
    /// What `cancel` must also do, and for a task of a multi-process plan where it
    /// runs (its handle is released when the last handle of the future goes).
    hooks: OnceLock<Hooks>,
}

/// How a slot reaches what runs its task (see [`Slot::set_remote`]).
enum Hooks {
    /// What `cancel` must also do (tests stand in for a scheduler with it).
    #[cfg(test)]
    Local(Box<dyn Fn() + Send + Sync>),
    /// A task of a multi-process plan: its cluster connection and its handle there.
    Remote { cluster: u64, handle: TaskHandle },
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

struct SlotState<R> {
    /// Set once resolved and read by more than one reader (see [`Slot::share`]);
    /// `None` again once the last handle took it.
    outcome: Option<Outcome<R>>,
    /// Set once resolved, until a reader shares it: a sole handle takes the
    /// outcome from here, without an `Arc` allocated per task.
    owned: Option<Result<R, TaskError>>,
    /// Set once resolved with a result held elsewhere, until the first read
    /// fetches it into `owned`.
    held: Option<Fetcher<R>>,
    /// Set when a reader is about to read the value ([`Slot::fetch_when_done`]):
    /// a held result is then fetched as soon as the task ends.
    eager: bool,
    /// Set while a reader fetches the held result (outside the lock); other
    /// readers wait for `resolved_signal`.
    fetching: bool,
    resolved: bool,
    resolving: bool,
    waiting: bool,
    /// Set when the last `Future` handle went before the task ended, and the
    /// scheduler was told the result will not be read (see [`Slot::drop_handle`]).
    unwanted: bool,
    /// Listeners, callbacks and wakers, once one registered.
    waiters: Option<Box<Waiters<R>>>,
}

impl<R> SlotState<R> {
    /// The waiters, made on first use.
    fn waiters(&mut self) -> &mut Waiters<R> {
        self.waiters.get_or_insert_with(Box::default)
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
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                outcome: None,
                owned: None,
                held: None,
                eager: false,
                fetching: false,
                resolved: false,
                resolving: false,
                waiting: false,
                unwanted: false,
                waiters: None,
            }),
            handles: AtomicUsize::new(0),
            copier: OnceLock::new(),
            resolved_signal: Condvar::new(),
            phase: AtomicU8::new(QUEUED),
            hooks: OnceLock::new(),
        })
    }

    /// Records that the task runs on cluster connection `cluster` under `handle`:
    /// `cancel` cancels it there, and its result is released there when the last
    /// handle to this slot is dropped. A slot has one canceller or remote handle.
    pub(crate) fn set_remote(&self, cluster: u64, handle: TaskHandle) {
        let _ = self.hooks.set(Hooks::Remote { cluster, handle });
    }

    /// Runs `then` with the outcome once resolved (at once if it is).
    pub(crate) fn when_resolved(&self, then: Callback<R>) {
        self.fetch_if_held();
        let mut state = self.lock();
        if !state.resolved && state.unwanted {
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
        if !state.resolved {
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

    /// Sets what `cancel` must also do (a test's stand-in for a scheduler).
    #[cfg(test)]
    pub(crate) fn set_canceller(&self, canceller: impl Fn() + Send + Sync + 'static) {
        let _ = self.hooks.set(Hooks::Local(Box::new(canceller)));
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<R>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the task as started; `false` if it was cancelled first (then do not run it).
    pub(crate) fn start(&self) -> bool {
        self.phase
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Stores the outcome and wakes whoever waits; a second outcome is ignored.
    /// Callbacks run outside the lock, before any handle can read the outcome.
    pub(crate) fn resolve(&self, outcome: Result<R, TaskError>) {
        let mut state = self.lock();
        let no_callbacks = state
            .waiters
            .as_ref()
            .is_none_or(|w| w.callbacks.is_empty());
        if no_callbacks && !state.resolved && !state.resolving {
            // Nothing to call outside the lock (the usual case): store it at once.
            return self.store(state, outcome);
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
        let mut state = self.lock();
        let no_callbacks = state
            .waiters
            .as_ref()
            .is_none_or(|w| w.callbacks.is_empty());
        if !no_callbacks || state.eager || state.resolved || state.resolving {
            return Err(fetch);
        }
        state.held = Some(fetch);
        state.resolved = true;
        let waiters = state.waiters.take();
        if state.waiting {
            self.resolved_signal.notify_all();
        }
        drop(state);
        if let Some(waiters) = waiters {
            for (listener, index) in waiters.listeners {
                let _ = listener.send(index);
            }
            waiters.wakers.into_iter().for_each(Waker::wake);
        }
        Ok(())
    }

    /// Says the value will be read: if the result is held elsewhere when the task
    /// ends, it is fetched at once (with the other results read together, as
    /// `gather` does) rather than when read.
    pub(crate) fn fetch_when_done(&self) {
        self.lock().eager = true;
    }

    /// Fetches a held result into `owned`, outside the lock (so `is_resolved` and
    /// listeners never wait for the network); a reader that comes meanwhile waits
    /// for it. Call before reading a resolved slot's outcome.
    fn fetch_if_held(&self) {
        let mut state = self.lock();
        if let Some(fetch) = state.held.take() {
            state.fetching = true;
            drop(state);
            return self.put_fetched(fetch.fetch());
        }
        while state.fetching {
            state = self
                .resolved_signal
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Fetches a held result into `owned` under the lock (a fallback: readers
    /// call [`Slot::fetch_if_held`] first).
    fn fetch_held(state: &mut SlotState<R>) {
        if let Some(fetch) = state.held.take() {
            state.owned = Some(fetch.fetch());
        }
    }

    /// Takes the held result of a resolved slot to fetch it elsewhere (with
    /// others: [`crate::held_fetch::fetch_together`]); readers wait until
    /// [`Slot::put_fetched`]. `None` if there is none to fetch.
    pub(crate) fn take_held(&self) -> Option<Fetcher<R>> {
        let mut state = self.lock();
        let fetch = state.held.take()?;
        state.fetching = true;
        Some(fetch)
    }

    /// Stores the outcome of a fetch started by [`Slot::take_held`] (or by a
    /// reader) and wakes the readers waiting for it, blocked or async.
    pub(crate) fn put_fetched(&self, outcome: Result<R, TaskError>) {
        let mut state = self.lock();
        state.owned = Some(outcome);
        state.fetching = false;
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
        if state.held.is_none() && !state.fetching {
            return true;
        }
        let wakers = &mut state.waiters().wakers;
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        if let Some(fetch) = state.held.take() {
            state.fetching = true;
            drop(state);
            let slot = self.clone();
            fetch.fetch_then(Box::new(move |outcome| slot.put_fetched(outcome)));
        }
        false
    }

    /// Makes the caller the one that resolves the slot, taking the callbacks to run;
    /// `None` if it is resolved or being resolved already.
    fn claim(state: &mut SlotState<R>) -> Option<Vec<Callback<R>>> {
        if state.resolved || state.resolving {
            return None;
        }
        state.resolving = true;
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
        self.store(state, outcome);
    }

    /// Stores the outcome (no callback left to run) and wakes whoever waits.
    fn store(&self, mut state: MutexGuard<'_, SlotState<R>>, outcome: Result<R, TaskError>) {
        state.owned = Some(outcome);
        state.resolved = true;
        let waiters = state.waiters.take();
        if state.waiting {
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
        self.lock().resolved
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
        let Some(Hooks::Remote { handle, .. }) = self.hooks.get() else {
            return;
        };
        let mut state = self.lock();
        let waited_on = state
            .waiters
            .as_ref()
            .is_some_and(|w| !w.callbacks.is_empty());
        if state.resolved || state.resolving || state.eager || waited_on {
            return;
        }
        state.unwanted = true;
        drop(state);
        handle.unwant();
    }

    /// Sets how to copy a value that several handles share.
    pub(crate) fn set_copier(&self, copier: Copier<R>) {
        let _ = self.copier.get_or_init(|| copier);
    }

    /// The copier, if set.
    pub(crate) fn copier(&self) -> Option<Copier<R>> {
        self.copier.get().copied()
    }

    /// The outcome of a resolved slot (shared), for a handle that stays.
    fn shared_outcome(state: &mut SlotState<R>) -> Outcome<R> {
        Self::share(state).expect("a live handle's resolved slot holds its outcome")
    }

    /// The outcome as a shared `Arc`, moved into one on the first shared read.
    fn share(state: &mut SlotState<R>) -> Option<Outcome<R>> {
        Self::fetch_held(state);
        if let Some(owned) = state.owned.take() {
            state.outcome = Some(Arc::new(owned));
        }
        state.outcome.clone()
    }

    /// [`Slot::outcome_for_last_handle`] if the slot is resolved, else `None`
    /// (one lock for a handle that finds its result ready).
    pub(crate) fn ready_outcome_for_last_handle(
        &self,
    ) -> Option<Result<Result<R, TaskError>, Outcome<R>>> {
        self.fetch_if_held();
        let mut state = self.lock();
        if !state.resolved {
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
            if let Some(owned) = state.owned.take() {
                return Ok(owned);
            }
            if let Some(outcome) = state.outcome.take() {
                return Err(outcome);
            }
        }
        Err(Self::shared_outcome(state))
    }

    /// Tells `listener` (with `index`) when the slot resolves.
    pub(crate) fn listen(&self, listener: &Sender<usize>, index: usize) {
        let mut state = self.lock();
        if state.resolved {
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
        if state.resolved {
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
            if state.resolved || state.resolving {
                return false;
            }
            let queued = self
                .phase
                .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            match queued.then(|| Self::claim(&mut state)).flatten() {
                Some(callbacks) => callbacks,
                None => return false,
            }
        };
        match self.hooks.get() {
            #[cfg(test)]
            Some(Hooks::Local(canceller)) => canceller(),
            Some(Hooks::Remote { handle, .. }) => handle.cancel(),
            None => {}
        }
        self.settle(callbacks, Err(cancelled()));
        true
    }

    /// Blocks until resolved, or until `deadline` passes (`None`: no deadline),
    /// then returns the outcome (`None` if the deadline passed first).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Outcome<R>> {
        let mut state = self.lock();
        while !state.resolved {
            state.waiting = true;
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
        if state.held.is_some() || state.fetching {
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
        if let Some(Hooks::Remote { handle, .. }) = self.hooks.take() {
            handle.release();
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
        match self.hooks.get() {
            Some(Hooks::Remote { cluster, handle }) => Some((*cluster, handle.task())),
            _ => None,
        }
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

    #[test]
    fn a_slot_stays_small_and_allocates_waiters_only_when_waited_on() {
        // Paid once per pending future (issue 14 item 5): about 185 bytes before the
        // waiters were boxed and the remote hooks became one handle.
        let size = std::mem::size_of::<Slot<u64>>();
        assert!(size <= 136, "a slot is {size} bytes");
        let slot = Slot::<u64>::new();
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
        let slot = Slot::<u64>::new();
        slot.add_handle();
        slot.resolve(Ok(5));
        assert!(matches!(slot.outcome_for_last_handle(), Ok(Ok(5))));
    }

    #[test]
    fn a_ready_read_is_none_until_resolved_and_a_second_outcome_is_ignored() {
        let slot = Slot::<u64>::new();
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
        let plain = Slot::<u64>::new();
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
        let slot = Slot::<u64>::new();
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
        let slot = Slot::<u64>::new();
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
        let waited = Slot::<u64>::new();
        waited.when_resolved(Box::new(|_| {}));
        assert!(waited.resolve_held(Box::new(|| Ok(1))).is_err());
        assert!(!waited.is_resolved());
        let gathered = Slot::<u64>::new();
        gathered.fetch_when_done();
        assert!(gathered.resolve_held(Box::new(|| Ok(1))).is_err());
        let done = Slot::<u64>::new();
        done.resolve(Ok(3));
        assert!(done.resolve_held(Box::new(|| Ok(1))).is_err());
    }

    #[test]
    fn a_fetch_in_progress_does_not_hold_the_slot_locked() {
        let slot = Arc::new(Slot::<u64>::new());
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
