//! Futures: the handle for one task's result, and waiting on many
//! ([`as_completed`], [`wait`]).

use crate::slot::{run_release, Outcome, Release};
pub(crate) use crate::slot::{ErasedSlot, Slot};
use crate::{TaskError, TaskErrorKind};
use crossbeam_channel::{Receiver, Sender};
use once_cell::race::OnceBox;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The data behind a [`Shared`] value.
pub(crate) struct SharedData {
    /// The encoded value (kept for local plans and for other clients).
    pub(crate) bytes: Arc<Vec<u8>>,
    /// (cluster, id) once put on a cluster's workers.
    pub(crate) remote: Option<(u64, u64)>,
    pub(crate) on_drop: Release,
}

impl Drop for SharedData {
    fn drop(&mut self) {
        run_release(&mut self.on_drop);
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
/// Read it as often as you like: [`Future::value_ref`] borrows the result,
/// [`Future::value_timeout`] waits at most a given time, and clones of a future
/// (cheap: they share one result slot) each read the same result. [`Future::value`]
/// hands the result over: it moves it out when no other handle can read it, else
/// returns a copy. In async code, `future.await` gives the result without blocking
/// a thread (see [`Future::into_future`](std::future::IntoFuture::into_future)).
///
/// Dropping a future does not stop its task: it runs to the end (as in R's future);
/// on multi-process plans, dropping the last handle (clones included) lets the
/// workers free the result. Use [`Future::cancel`] to stop a task that has not
/// started.
///
/// ```
/// use std::time::Duration;
/// use wherever::prelude::*;
///
/// #[wherever::task]
/// fn double(x: u64) -> u64 {
///     2 * x
/// }
///
/// let client = Plan::parse("threads:2")?.start()?;
/// let future = client.submit(double, 21);
/// assert_eq!(*future.value_timeout(Duration::from_secs(60))?, 42);
/// assert_eq!(*future.value_ref()?, 42); // read again
/// let copy = future.clone();
/// assert_eq!(future.value()?, 42);
/// assert_eq!(copy.value()?, 42); // and through a clone
/// # Ok::<(), wherever::Error>(())
/// ```
#[must_use = "a future does nothing unless its value is asked for"]
pub struct Future<R> {
    /// The task's result slot (which also knows the task's name and position).
    pub(crate) slot: Arc<Slot<R>>,
    /// The outcome once this handle has read it (what `value_ref` borrows from);
    /// one pointer, boxed on the first read, so that a future is 16 bytes.
    read: OnceBox<Outcome<R>>,
}

impl<R: crate::Value> Clone for Future<R> {
    /// Another handle on the same task and result (nothing is recomputed).
    fn clone(&self) -> Self {
        self.slot.set_copier(copy_value::<R>);
        Future::new(self.slot.clone())
    }
}

impl<R> Drop for Future<R> {
    fn drop(&mut self) {
        self.slot.drop_handle();
    }
}

/// A copy of `value` made through the codec (as a multi-process plan transfers it).
fn copy_value<R: crate::Value>(value: &R) -> Result<R, String> {
    wherever_core::codec::encode(value)
        .and_then(|bytes| wherever_core::codec::decode(&bytes))
        .map_err(|e| e.to_string())
}

impl<R: crate::Value> Future<R> {
    /// The slot as a dependency of other tasks.
    pub(crate) fn erased(&self) -> Arc<dyn ErasedSlot> {
        self.slot.set_copier(copy_value::<R>);
        self.slot.clone()
    }
}

impl<R> Future<R> {
    /// A new handle on `slot`.
    pub(crate) fn new(slot: Arc<Slot<R>>) -> Self {
        slot.add_handle();
        Future {
            slot,
            read: OnceBox::new(),
        }
    }

    /// Blocks until the task has finished and returns its result, or the error that
    /// names the task, its position, where it ran and what went wrong. The result is
    /// moved out when this is the future's last handle; while other handles (clones)
    /// exist, or a dependent task is reading it at that moment, it is a copy made by
    /// encoding and decoding the value (as a multi-process plan transfers it).
    pub fn value(self) -> Result<R, TaskError> {
        let outcome = match self.slot.ready_outcome_for_last_handle() {
            Some(outcome) => outcome,
            None => {
                self.wait();
                self.slot.outcome_for_last_handle()
            }
        };
        let shared = match outcome {
            Ok(owned) => return owned,
            Err(shared) => shared,
        };
        // This handle's own read of the outcome goes first, so that the shared
        // outcome may be the last reference and move out.
        let slot = self.slot.clone();
        let (task, position) = (slot.task(), slot.position());
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(outcome) => outcome.result,
            Err(shared) => {
                let value = shared.result.as_ref().map_err(Clone::clone)?;
                let copy = shared
                    .copier()
                    .ok_or_else(|| "the result is shared and cannot be copied".to_string())
                    .and_then(|copy| copy(value));
                copy.map_err(|message| {
                    TaskError::new(
                        task,
                        position,
                        TaskErrorKind::Runtime,
                        format!("cannot copy the result: {message}"),
                    )
                })
            }
        }
    }

    /// Blocks until resolved (giving up this thread's task slot meanwhile).
    fn wait(&self) {
        if !self.slot.is_resolved() {
            wherever_core::scope::while_blocked(|| self.slot.wait(None));
        }
    }

    /// Blocks until the task has finished and borrows its result; can be called
    /// any number of times, on any handle (R's `value()`, Dask's `result()`).
    pub fn value_ref(&self) -> Result<&R, TaskError> {
        self.wait();
        self.borrow_outcome(self.slot.wait(None))
    }

    /// Like [`Future::value_ref`], but waits at most `timeout`: if the task has not
    /// finished by then, the error's kind is [`TaskErrorKind::TimedOut`], the task
    /// goes on, and the future can be read again later.
    pub fn value_timeout(&self, timeout: Duration) -> Result<&R, TaskError> {
        let deadline = Instant::now().checked_add(timeout);
        let outcome = if self.slot.is_resolved() {
            self.slot.wait(None)
        } else {
            wherever_core::scope::while_blocked(|| self.slot.wait(deadline))
        };
        if outcome.is_none() {
            return Err(TaskError::new(
                self.slot.task(),
                self.slot.position(),
                TaskErrorKind::TimedOut,
                format!("no result within {timeout:?}; the task goes on"),
            ));
        }
        self.borrow_outcome(outcome)
    }

    /// Keeps `outcome` in this handle and borrows its value (its error copied).
    fn borrow_outcome(&self, outcome: Option<Outcome<R>>) -> Result<&R, TaskError> {
        let outcome = self
            .read
            .get_or_init(|| Box::new(outcome.expect("read once resolved")));
        outcome.result.as_ref().map_err(Clone::clone)
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
                self.slot.task(),
                self.slot.position(),
                TaskErrorKind::Cancelled,
                "cancelled before it started",
            )
        })
    }

    /// The registered name of the task (or `closure`; `?` for a name that came
    /// after 65,535 distinct others in this process).
    pub fn task_name(&self) -> &'static str {
        self.slot.task()
    }

    /// The task's position in its client's submission order (positions from
    /// 2^48 − 1 on, past what a process submits in practice, read as 2^48 − 1).
    pub fn position(&self) -> u64 {
        self.slot.position()
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_resolved() {
            "resolved"
        } else {
            "pending"
        };
        write!(
            f,
            "Future({} #{}, {state})",
            self.task_name(),
            self.position()
        )
    }
}

/// The most results [`AsCompleted`] fetches together ahead of its consumer.
pub(crate) const AS_COMPLETED_PREFETCH_RESULTS: usize = 64;

/// Once [`AsCompleted`] has seen the size of the results it fetches, it fetches
/// together at most as many as fit this many bytes (by the largest seen).
pub(crate) const AS_COMPLETED_PREFETCH_BYTES: usize = 256 << 20;

/// Yields futures in the order their tasks finish (Dask's `as_completed`).
///
/// When the future it yields has its result held on a worker (a large one, on a
/// multi-process plan), the results of the futures that have finished by then
/// and wait to be yielded are fetched with it, in one request per worker rather
/// than one per read: at most 64 results together, and once their sizes are
/// known at most as many as fit 256 MiB. The fetch runs off this thread: the
/// yielded future's value can be read as soon as its own result is here, while
/// the others still come. So the results fetched ahead of the consumer stay
/// bounded (by about two such batches), and nothing is fetched for a task that
/// has not finished yet. The prefetched results are fetched whether or not
/// their futures are read.
pub struct AsCompleted<R> {
    futures: Vec<Option<Future<R>>>,
    remaining: usize,
    finished: Receiver<usize>,
    /// The sending side the futures were given, to take it back from them.
    listener: Sender<usize>,
    /// Futures that finished and were not yielded yet, in the order they finished.
    ready: std::collections::VecDeque<usize>,
    /// How many at the front of `ready` were looked at for a held result to
    /// fetch (and taken if they had one).
    looked_at: usize,
    /// The most results to fetch together.
    window: usize,
    /// The size of the largest encoded result fetched so far.
    largest: Arc<std::sync::atomic::AtomicUsize>,
}

/// Iterates over `futures` as they finish, each yielded once, already resolved.
/// Held results are fetched together as [`AsCompleted`] says.
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
        ready: std::collections::VecDeque::new(),
        looked_at: 0,
        window: AS_COMPLETED_PREFETCH_RESULTS,
        largest: Arc::default(),
    }
}

impl<R: Send + Sync + 'static> AsCompleted<R> {
    /// Starts fetching `first`'s held result (`fetch`) together with those of
    /// the futures finished by now and waiting to be yielded, up to `window`.
    fn fetch_with_finished(&mut self, first: &Future<R>, fetch: crate::slot::Fetcher<R>) {
        // The window as the sizes seen so far allow (0: none seen yet).
        let largest = self.largest.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(fit) = AS_COMPLETED_PREFETCH_BYTES.checked_div(largest) {
            self.window = fit.clamp(1, AS_COMPLETED_PREFETCH_RESULTS);
        }
        self.ready.extend(self.finished.try_iter());
        let mut taken = vec![(first.slot.clone(), fetch)];
        while taken.len() < self.window && self.looked_at < self.ready.len() {
            let index = self.ready[self.looked_at];
            self.looked_at += 1;
            let slot = &self.futures[index].as_ref().expect("not yielded").slot;
            if let Some(fetch) = slot.take_held() {
                taken.push((slot.clone(), fetch));
            }
        }
        let largest = Some(self.largest.clone());
        crate::held_fetch::fetch_taken_then(taken, largest, || {});
    }
}

impl<R: Send + Sync + 'static> Iterator for AsCompleted<R> {
    type Item = Future<R>;

    fn next(&mut self) -> Option<Future<R>> {
        if self.remaining == 0 {
            return None;
        }
        let index = match self.ready.pop_front() {
            Some(index) => {
                self.looked_at = self.looked_at.saturating_sub(1);
                index
            }
            None => self
                .finished
                .recv()
                .expect("every future resolves exactly once"),
        };
        self.remaining -= 1;
        let future = self.futures[index].take().expect("yielded once");
        if let Some(fetch) = future.slot.take_held() {
            self.fetch_with_finished(&future, fetch);
        }
        Some(future)
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
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    /// What a test's stand-in connection received.
    type Sent = tokio::sync::mpsc::UnboundedReceiver<wherever_cluster::protocol::Message>;

    /// A future as a multi-process plan makes it: resolved by the connection, never
    /// started through [`Slot::start`], with a handle whose commands go to `Sent`.
    fn remote_future() -> (Future<u64>, Arc<Slot<u64>>, Sent) {
        let (commands, sent) = tokio::sync::mpsc::unbounded_channel();
        let slot = Slot::new("remote", 0);
        let handle = wherever_cluster::TaskHandle::on_channel(1, commands, 7);
        slot.set_remote(handle, Arc::default());
        (Future::new(slot.clone()), slot, sent)
    }

    /// How many `Cancel`s were sent so far.
    fn cancels(sent: &mut Sent) -> usize {
        std::iter::from_fn(|| sent.try_recv().ok())
            .filter(|m| matches!(m, wherever_cluster::protocol::Message::Cancel { .. }))
            .count()
    }

    #[test]
    fn cancelling_a_finished_remote_future_fails_and_keeps_its_value() {
        let (future, slot, mut sent) = remote_future();
        slot.resolve(Ok(42));
        assert!(!future.cancel(), "a finished task cannot be cancelled");
        assert_eq!(cancels(&mut sent), 0, "the scheduler is not told");
        assert_eq!(future.value().unwrap(), 42);
    }

    #[test]
    fn cancelling_a_pending_remote_future_resolves_it_as_cancelled() {
        let (future, slot, mut sent) = remote_future();
        assert!(future.cancel());
        assert!(!future.cancel(), "only once");
        slot.resolve(Ok(42));
        assert_eq!(cancels(&mut sent), 1);
        assert_eq!(future.value().unwrap_err().kind, TaskErrorKind::Cancelled);
    }

    #[test]
    fn dropping_the_last_handle_of_a_remote_future_releases_its_task() {
        let (future, slot, mut sent) = remote_future();
        let copy = future.clone();
        drop(future);
        assert!(sent.try_recv().is_err(), "a handle is left");
        drop(copy);
        assert!(
            matches!(
                sent.try_recv(),
                Ok(wherever_cluster::protocol::Message::Unwanted { tasks }) if tasks == [7]
            ),
            "the last handle of a pending task unwants its result"
        );
        assert!(sent.try_recv().is_err(), "the slot still lives");
        drop(slot);
        assert!(matches!(
            sent.try_recv(),
            Ok(wherever_cluster::protocol::Message::Release { tasks }) if tasks == [7]
        ));
    }

    #[test]
    fn a_future_is_two_pointers() {
        // 48 bytes before the task's name and position moved into the slot and
        // the read outcome became one lazily boxed pointer (issue 14 item 5).
        assert_eq!(std::mem::size_of::<Future<u64>>(), 16);
        assert_eq!(std::mem::size_of::<Future<Vec<u8>>>(), 16);
    }

    fn listeners<R>(future: &Future<R>) -> usize {
        future.slot.listeners()
    }

    #[test]
    fn wait_that_times_out_leaves_no_listener_behind() {
        let pending: Vec<Future<u64>> = (0..3)
            .map(|i| Future::new(Slot::new("pending", i)))
            .collect();
        for _ in 0..5 {
            let outcome = wait(&pending, Some(Duration::ZERO), ReturnWhen::AllCompleted);
            assert_eq!(outcome.not_done, vec![0, 1, 2]);
        }
        assert!(pending.iter().all(|f| listeners(f) == 0));
    }

    #[test]
    fn an_as_completed_dropped_early_leaves_no_listener_behind() {
        let slots: Vec<Arc<Slot<u64>>> = (0..3).map(|i| Slot::new("t", i)).collect();
        let futures = slots.iter().map(|s| Future::new(s.clone()));
        let mut completed = as_completed(futures);
        slots[1].resolve(Ok(1));
        assert_eq!(completed.next().unwrap().value().unwrap(), 1);
        let probe = Future::new(slots[0].clone());
        assert_eq!(listeners(&probe), 1);
        drop(completed);
        assert_eq!(listeners(&probe), 0);
    }

    /// A held result's fetch that notes in `started`, on the thread that
    /// starts it, that it started, and fetches on a helper thread.
    struct Noted {
        value: u64,
        started: Arc<Mutex<Vec<u64>>>,
    }

    impl crate::held_fetch::Fetch<u64> for Noted {
        fn fetch(self: Box<Self>) -> Result<u64, TaskError> {
            self.started.lock().unwrap().push(self.value);
            Ok(self.value)
        }

        fn fetch_then(self: Box<Self>, then: crate::held_fetch::Then<u64>) {
            self.started.lock().unwrap().push(self.value);
            std::thread::spawn(move || then(Ok(self.value)));
        }

        fn into_held(
            self: Box<Self>,
        ) -> Result<
            (
                wherever_cluster::HeldResult,
                crate::held_fetch::Decoder<u64>,
            ),
            crate::slot::Fetcher<u64>,
        > {
            Err(self)
        }
    }

    #[test]
    fn as_completed_fetches_the_finished_held_results_together_at_most_a_window_ahead() {
        let count = AS_COMPLETED_PREFETCH_RESULTS + 6;
        let started = Arc::new(Mutex::new(Vec::new()));
        let slots: Vec<Arc<Slot<u64>>> = (0..count as u64).map(|i| Slot::new("t", i)).collect();
        let futures: Vec<Future<u64>> = slots.iter().map(|s| Future::new(s.clone())).collect();
        for (i, slot) in slots.iter().enumerate() {
            let fetch = Box::new(Noted {
                value: i as u64,
                started: started.clone(),
            });
            assert!(slot.resolve_held(fetch).is_ok());
        }
        let pending = Slot::new("t", count as u64);
        let mut completed = as_completed(futures.into_iter().chain([Future::new(pending.clone())]));
        for i in 0..count {
            let future = completed.next().unwrap();
            let expected = if i < AS_COMPLETED_PREFETCH_RESULTS {
                AS_COMPLETED_PREFETCH_RESULTS
            } else {
                count
            };
            assert_eq!(started.lock().unwrap().len(), expected, "at read {i}");
            assert_eq!(
                future.value().unwrap(),
                i as u64,
                "in the order they finished"
            );
        }
        pending.resolve(Ok(7));
        assert_eq!(completed.next().unwrap().value().unwrap(), 7);
        assert!(completed.next().is_none());
    }

    #[test]
    fn a_deadline_on_a_pending_future_is_a_timeout_and_the_future_stays_usable() {
        let slot = Slot::new("pending", 3);
        let future = Future::new(slot.clone());
        let error = future.value_timeout(Duration::ZERO).unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::TimedOut);
        assert_eq!((error.task.as_str(), error.position), ("pending", 3));
        slot.resolve(Ok(5u64));
        assert_eq!(*future.value_timeout(Duration::ZERO).unwrap(), 5);
        assert_eq!(*future.value_ref().unwrap(), 5);
        assert_eq!(future.value().unwrap(), 5);
    }

    #[test]
    fn the_last_handle_takes_the_value_and_earlier_ones_copy_it() {
        let slot = Slot::new("t", 0);
        let future = Future::new(slot.clone());
        let clone = future.clone();
        slot.resolve(Ok(vec![1u64, 2, 3]));
        assert_eq!(future.value().unwrap(), vec![1, 2, 3]);
        assert_eq!(clone.value().unwrap(), vec![1, 2, 3]);
        // The last handle took the value out: the slot no longer holds it.
        let probe = Arc::new(Mutex::new(None));
        let seen = probe.clone();
        slot.when_resolved(Box::new(move |outcome| {
            *seen.lock().unwrap() = Some(outcome.is_ok());
        }));
        assert_eq!(*probe.lock().unwrap(), Some(false));
    }

    /// A waker that counts its wakes.
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn awaiting_registers_a_waker_that_resolution_wakes() {
        use std::future::{Future as _, IntoFuture};
        let slot = Slot::new("t", 0);
        let mut awaiting = Future::new(slot.clone()).into_future();
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut pinned = std::pin::Pin::new(&mut awaiting);
        assert!(pinned.as_mut().poll(&mut cx).is_pending());
        assert!(pinned.as_mut().poll(&mut cx).is_pending(), "polled twice");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        slot.resolve(Ok(7u64));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken once");
        match pinned.poll(&mut cx) {
            std::task::Poll::Ready(value) => assert_eq!(value.unwrap(), 7),
            std::task::Poll::Pending => panic!("resolved"),
        }
    }
}
