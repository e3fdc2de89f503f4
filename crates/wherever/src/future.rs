//! Futures: the handle for one task's result, and waiting on many
//! ([`as_completed`], [`wait`]).

use crate::TaskError;
use crate::TaskErrorKind;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// Where a future's result will be written: shared by the future and the job that
/// runs its task.
pub(crate) struct Slot<R> {
    state: Mutex<SlotState<R>>,
    resolved_signal: Condvar,
    phase: AtomicU8,
    canceller: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// For a task of a multi-process plan: (cluster, task id).
    remote: OnceLock<(u64, u64)>,
    /// Run when the last handle goes: tells a scheduler the result may be freed.
    on_drop: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Called with the outcome when a slot resolves.
type Callback<R> = Box<dyn FnOnce(&Result<R, TaskError>) + Send>;

struct SlotState<R> {
    outcome: Option<Result<R, TaskError>>,
    resolved: bool,
    resolving: bool,
    waiting: bool,
    listeners: Vec<(Sender<usize>, usize)>,
    callbacks: Vec<Callback<R>>,
}

impl<R> Slot<R> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                outcome: None,
                resolved: false,
                resolving: false,
                waiting: false,
                listeners: Vec::new(),
                callbacks: Vec::new(),
            }),
            resolved_signal: Condvar::new(),
            phase: AtomicU8::new(QUEUED),
            canceller: OnceLock::new(),
            remote: OnceLock::new(),
            on_drop: Mutex::new(None),
        })
    }

    /// Records that the task runs on cluster `cluster` as task `task`; `release`
    /// runs when the last handle to this slot is dropped.
    pub(crate) fn set_remote(
        &self,
        cluster: u64,
        task: u64,
        release: impl FnOnce() + Send + 'static,
    ) {
        let _ = self.remote.set((cluster, task));
        *self.on_drop.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(release));
    }

    /// Runs `then` with the outcome once resolved. If it already is (and its value
    /// has not been taken), the outcome is mapped by `now` under the lock and
    /// `then_now` called with that outside it.
    fn when_resolved<M>(
        &self,
        then: Callback<R>,
        now: impl FnOnce(&Result<R, TaskError>) -> M,
        then_now: impl FnOnce(M),
    ) {
        let mut state = self.lock();
        if !state.resolved {
            state.callbacks.push(then);
            return;
        }
        let taken = Err(TaskError::new(
            "?",
            0,
            TaskErrorKind::Runtime,
            "its value was already taken",
        ));
        let mapped = now(state.outcome.as_ref().unwrap_or(&taken));
        drop(state);
        then_now(mapped);
    }

    /// Sets what `cancel` must also do (tell a remote scheduler).
    pub(crate) fn set_canceller(&self, canceller: impl Fn() + Send + Sync + 'static) {
        let _ = self.canceller.set(Box::new(canceller));
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
    /// Callbacks run outside the lock, before the value can be taken.
    pub(crate) fn resolve(&self, outcome: Result<R, TaskError>) {
        let Some(callbacks) = Self::claim(&mut self.lock()) else {
            return;
        };
        self.settle(callbacks, outcome);
    }

    /// Makes the caller the one that resolves the slot, taking the callbacks to run;
    /// `None` if it is resolved or being resolved already.
    fn claim(state: &mut SlotState<R>) -> Option<Vec<Callback<R>>> {
        if state.resolved || state.resolving {
            return None;
        }
        state.resolving = true;
        Some(std::mem::take(&mut state.callbacks))
    }

    /// Runs the claimed `callbacks` and stores the outcome (after [`Slot::claim`]).
    fn settle(&self, callbacks: Vec<Callback<R>>, outcome: Result<R, TaskError>) {
        for callback in callbacks {
            callback(&outcome);
        }
        let mut state = self.lock();
        for late in std::mem::take(&mut state.callbacks) {
            late(&outcome);
        }
        state.outcome = Some(outcome);
        state.resolved = true;
        for (listener, index) in state.listeners.drain(..) {
            let _ = listener.send(index);
        }
        if state.waiting {
            self.resolved_signal.notify_all();
        }
    }

    fn is_resolved(&self) -> bool {
        self.lock().resolved
    }

    fn listen(&self, listener: &Sender<usize>, index: usize) {
        let mut state = self.lock();
        if state.resolved {
            let _ = listener.send(index);
        } else {
            state.listeners.push((listener.clone(), index));
        }
    }

    /// Stops `listener` from being told of the resolution (its waiter gave up).
    fn unlisten(&self, listener: &Sender<usize>) {
        self.lock()
            .listeners
            .retain(|(registered, _)| !registered.same_channel(listener));
    }

    /// Cancels the task if it has neither started nor resolved: `false` for a
    /// running task, and for a resolved one whatever its phase (a task of a
    /// multi-process plan never passes through `start` here).
    fn cancel(&self, cancelled: impl FnOnce() -> TaskError) -> bool {
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
        if let Some(canceller) = self.canceller.get() {
            canceller();
        }
        self.settle(callbacks, Err(cancelled()));
        true
    }

    fn take(&self) -> Option<Result<R, TaskError>> {
        let mut state = self.lock();
        while !state.resolved {
            state.waiting = true;
            state = self
                .resolved_signal
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.outcome.take()
    }
}

impl<R> Drop for Slot<R> {
    fn drop(&mut self) {
        if let Some(release) = self
            .on_drop
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            release();
        }
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
        // `then` is needed on both paths: share it through a take-once cell.
        let then = Arc::new(Mutex::new(Some(then)));
        let later = then.clone();
        self.when_resolved(
            Box::new(move |outcome| {
                if let Some(then) = later.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    then(encoded(outcome))
                }
            }),
            encoded,
            move |mapped| {
                if let Some(then) = then.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    then(mapped)
                }
            },
        )
    }

    fn remote(&self) -> Option<(u64, u64)> {
        self.remote.get().copied()
    }
}

/// The data behind a [`Shared`] value.
pub(crate) struct SharedData {
    /// The encoded value (kept for local plans and for other clients).
    pub(crate) bytes: Arc<Vec<u8>>,
    /// (cluster, id) once put on a cluster's workers.
    pub(crate) remote: Option<(u64, u64)>,
    pub(crate) on_drop: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Drop for SharedData {
    fn drop(&mut self) {
        if let Some(release) = self
            .on_drop
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            release();
        }
    }
}

/// A value put on the workers once with [`Client::scatter`](crate::Client::scatter)
/// (Dask's `scatter`): pass `&shared` as a task argument instead of the value, and it
/// is not sent again with every task. Dropping the last handle frees it on the workers.
pub struct Shared<T> {
    data: Arc<SharedData>,
    _value: std::marker::PhantomData<fn() -> T>,
}

impl<T> Shared<T> {
    pub(crate) fn new(data: SharedData) -> Self {
        Shared {
            data: Arc::new(data),
            _value: std::marker::PhantomData,
        }
    }

    pub(crate) fn data(&self) -> Arc<SharedData> {
        self.data.clone()
    }

    /// The size of the encoded value in bytes.
    pub fn nbytes(&self) -> usize {
        self.data.bytes.len()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            data: self.data.clone(),
            _value: std::marker::PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({} bytes)", self.data.bytes.len())
    }
}

/// The handle for one task's result (Dask's `Future`, R's `future()`).
///
/// Dropping a future does not stop its task: it runs to the end (as in R's future).
/// Use [`Future::cancel`] to stop a task that has not started.
#[must_use = "a future does nothing unless its value is asked for"]
pub struct Future<R> {
    slot: Arc<Slot<R>>,
    task: &'static str,
    position: u64,
}

impl<R: crate::Value> Future<R> {
    /// The slot as a dependency of other tasks.
    pub(crate) fn erased(&self) -> Arc<dyn ErasedSlot> {
        self.slot.clone()
    }
}

impl<R> Future<R> {
    pub(crate) fn new(slot: Arc<Slot<R>>, task: &'static str, position: u64) -> Self {
        Future {
            slot,
            task,
            position,
        }
    }

    /// Blocks until the task has finished and returns its result, or the error that
    /// names the task, its position, where it ran and what went wrong.
    pub fn value(self) -> Result<R, TaskError> {
        let slot = &self.slot;
        let outcome = if slot.is_resolved() {
            slot.take()
        } else {
            wherever_core::scope::while_blocked(|| slot.take())
        };
        outcome.unwrap_or_else(|| {
            Err(TaskError::new(
                self.task,
                self.position,
                TaskErrorKind::Runtime,
                "the value was already taken",
            ))
        })
    }

    /// Whether the task has finished (with a value or an error); never blocks.
    pub fn is_resolved(&self) -> bool {
        self.slot.is_resolved()
    }

    /// Cancels the task if it has not started: the future then resolves to a
    /// `Cancelled` error and `true` is returned. A running or finished task is not
    /// affected (`false`). On multi-process plans the scheduler is told to drop the
    /// task; `true` then means the future had not resolved yet, and the task may
    /// still run on a worker, its result discarded.
    pub fn cancel(&self) -> bool {
        self.slot.cancel(|| {
            TaskError::new(
                self.task,
                self.position,
                TaskErrorKind::Cancelled,
                "cancelled before it started",
            )
        })
    }

    /// The registered name of the task (or `closure`).
    pub fn task_name(&self) -> &'static str {
        self.task
    }

    /// The task's position in its client's submission order.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_resolved() {
            "resolved"
        } else {
            "pending"
        };
        write!(f, "Future({} #{}, {state})", self.task, self.position)
    }
}

/// Yields futures in the order their tasks finish (Dask's `as_completed`).
pub struct AsCompleted<R> {
    futures: Vec<Option<Future<R>>>,
    remaining: usize,
    finished: Receiver<usize>,
    /// The sending side the futures were given, to take it back from them.
    listener: Sender<usize>,
}

/// Iterates over `futures` as they finish, each yielded once, already resolved.
pub fn as_completed<R>(futures: impl IntoIterator<Item = Future<R>>) -> AsCompleted<R> {
    let (sender, finished) = crossbeam_channel::unbounded();
    let futures: Vec<Option<Future<R>>> = futures.into_iter().map(Some).collect();
    for (index, future) in futures.iter().enumerate() {
        future
            .as_ref()
            .expect("just filled")
            .slot
            .listen(&sender, index);
    }
    AsCompleted {
        remaining: futures.len(),
        futures,
        finished,
        listener: sender,
    }
}

impl<R> Iterator for AsCompleted<R> {
    type Item = Future<R>;

    fn next(&mut self) -> Option<Future<R>> {
        if self.remaining == 0 {
            return None;
        }
        let index = self
            .finished
            .recv()
            .expect("every future resolves exactly once");
        self.remaining -= 1;
        self.futures[index].take()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<R> Drop for AsCompleted<R> {
    /// Futures not yet yielded forget this iterator (it stopped listening).
    fn drop(&mut self) {
        if self.remaining == 0 {
            return;
        }
        for future in self.futures.iter().flatten() {
            future.slot.unlisten(&self.listener);
        }
    }
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// When every future has resolved.
    AllCompleted,
    /// When at least one future has resolved.
    FirstCompleted,
}

/// Which futures had resolved when [`wait`] returned, as indices into its input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaitOutcome {
    /// Indices of resolved futures, in the order they were seen to resolve.
    pub done: Vec<usize>,
    /// Indices of futures still pending, ascending.
    pub not_done: Vec<usize>,
}

/// Waits until all (or, with [`ReturnWhen::FirstCompleted`], any) of `futures`
/// have resolved, or `timeout` has passed (Dask's `wait`). Never takes the values.
pub fn wait<R>(futures: &[Future<R>], timeout: Option<Duration>, when: ReturnWhen) -> WaitOutcome {
    let deadline = timeout.map(|t| Instant::now() + t);
    let (sender, finished) = crossbeam_channel::unbounded();
    for (index, future) in futures.iter().enumerate() {
        future.slot.listen(&sender, index);
    }
    let mut is_done = vec![false; futures.len()];
    let mut done = Vec::new();
    let target = match when {
        ReturnWhen::AllCompleted => futures.len(),
        ReturnWhen::FirstCompleted => futures.len().min(1),
    };
    while done.len() < target {
        let received = match deadline {
            Some(deadline) => finished.recv_deadline(deadline).ok(),
            None => finished.recv().ok(),
        };
        match received {
            Some(index) if !is_done[index] => {
                is_done[index] = true;
                done.push(index);
            }
            Some(_) => {}
            None => break,
        }
    }
    while let Ok(index) = finished.try_recv() {
        if !is_done[index] {
            is_done[index] = true;
            done.push(index);
        }
    }
    let not_done: Vec<usize> = (0..futures.len()).filter(|&i| !is_done[i]).collect();
    for &index in &not_done {
        futures[index].slot.unlisten(&sender);
    }
    WaitOutcome { done, not_done }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future as a multi-process plan makes it: resolved by the connection, never
    /// started through [`Slot::start`], with a canceller for the scheduler.
    fn remote_future(
        cancels: Arc<std::sync::atomic::AtomicUsize>,
    ) -> (Future<u64>, Arc<Slot<u64>>) {
        let slot = Slot::new();
        slot.set_canceller(move || {
            cancels.fetch_add(1, Ordering::SeqCst);
        });
        (Future::new(slot.clone(), "remote", 0), slot)
    }

    #[test]
    fn cancelling_a_finished_remote_future_fails_and_keeps_its_value() {
        let cancels = Arc::default();
        let (future, slot) = remote_future(Arc::clone(&cancels));
        slot.resolve(Ok(42));
        assert!(!future.cancel(), "a finished task cannot be cancelled");
        assert_eq!(
            cancels.load(Ordering::SeqCst),
            0,
            "the scheduler is not told"
        );
        assert_eq!(future.value().unwrap(), 42);
    }

    #[test]
    fn cancelling_a_pending_remote_future_resolves_it_as_cancelled() {
        let cancels = Arc::default();
        let (future, slot) = remote_future(Arc::clone(&cancels));
        assert!(future.cancel());
        assert!(!future.cancel(), "only once");
        slot.resolve(Ok(42));
        assert_eq!(cancels.load(Ordering::SeqCst), 1);
        assert_eq!(future.value().unwrap_err().kind, TaskErrorKind::Cancelled);
    }

    fn listeners<R>(future: &Future<R>) -> usize {
        future.slot.lock().listeners.len()
    }

    #[test]
    fn wait_that_times_out_leaves_no_listener_behind() {
        let pending: Vec<Future<u64>> = (0..3)
            .map(|i| Future::new(Slot::new(), "pending", i))
            .collect();
        for _ in 0..5 {
            let outcome = wait(&pending, Some(Duration::ZERO), ReturnWhen::AllCompleted);
            assert_eq!(outcome.not_done, vec![0, 1, 2]);
        }
        assert!(pending.iter().all(|f| listeners(f) == 0));
    }

    #[test]
    fn an_as_completed_dropped_early_leaves_no_listener_behind() {
        let slots: Vec<Arc<Slot<u64>>> = (0..3).map(|_| Slot::new()).collect();
        let futures = slots
            .iter()
            .enumerate()
            .map(|(i, s)| Future::new(s.clone(), "t", i as u64));
        let mut completed = as_completed(futures);
        slots[1].resolve(Ok(1));
        assert_eq!(completed.next().unwrap().value().unwrap(), 1);
        let probe = Future::new(slots[0].clone(), "t", 0);
        assert_eq!(listeners(&probe), 1);
        drop(completed);
        assert_eq!(listeners(&probe), 0);
    }
}
