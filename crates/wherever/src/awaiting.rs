//! async/await on futures: `future.await` gives the task's result without blocking
//! a thread (a [`Waker`](std::task::Waker) registered on the future's result slot is
//! woken when it resolves), and [`Client::gather_async`] awaits many, fetching the
//! results held on their workers together (one request per worker for those that
//! ended together), off the executor's thread.

use crate::held_fetch::fetch_taken_then;
use crate::slot::{Fetcher, Slot};
use crate::{Client, Future, TaskError, Value};
use crossbeam_channel::{Receiver, Sender};
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// What `future.await` polls: resolves to the task's result or error (the same as
/// [`Future::value`], without blocking the async runtime's thread).
#[must_use = "an awaitable does nothing unless awaited"]
#[derive(Debug)]
pub struct FutureValue<R> {
    future: Option<Future<R>>,
}

impl<R: Send + Sync + 'static> std::future::Future for FutureValue<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self
            .future
            .as_ref()
            .expect("a FutureValue is not polled after it is ready");
        // A result held on its workers is fetched off this thread.
        if !future.slot.poll_resolved(cx.waker()) || !future.slot.poll_fetched(cx.waker()) {
            return Poll::Pending;
        }
        let future = self.future.take().expect("checked above");
        Poll::Ready(future.value())
    }
}

impl<R: Send + Sync + 'static> IntoFuture for Future<R> {
    type Output = Result<R, TaskError>;
    type IntoFuture = FutureValue<R>;

    /// Awaiting a future gives its result: `let x = client.submit(task, args).await?;`
    /// in a tokio (or any other) async runtime, which is never blocked while the
    /// task runs. Await a clone to keep the future for later reads.
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let (one, all) = runtime.block_on(async {
    ///     let one = client.submit(square, 7).await;
    ///     let all = client.gather_async((0..4).map(|x| client.submit(square, x))).await;
    ///     (one, all)
    /// });
    /// assert_eq!(one?, 49);
    /// assert_eq!(all?, vec![0, 1, 4, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn into_future(self) -> FutureValue<R> {
        FutureValue { future: Some(self) }
    }
}

/// What `(&future).await` polls: resolves to a clone of the task's result (or its
/// error), leaving the future as it was, so it can be awaited or read again (R's
/// `value()` called twice, Dask's `await future` on a kept future).
#[must_use = "an awaitable does nothing unless awaited"]
#[derive(Debug)]
pub struct FutureValueRef<'a, R> {
    future: &'a Future<R>,
}

impl<R: Clone + Send + Sync + 'static> std::future::Future for FutureValueRef<'_, R> {
    type Output = Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = &self.future.slot;
        if !slot.poll_resolved(cx.waker()) || !slot.poll_fetched(cx.waker()) {
            return Poll::Pending;
        }
        // Resolved: reading it does not block.
        Poll::Ready(self.future.value_ref().cloned())
    }
}

impl<'a, R: Clone + Send + Sync + 'static> IntoFuture for &'a Future<R> {
    type Output = Result<R, TaskError>;
    type IntoFuture = FutureValueRef<'a, R>;

    /// Awaiting a borrowed future gives a clone of its result and keeps the future:
    /// `(&future).await` any number of times, then `future.value()` still works.
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let future = client.submit(square, 7);
    /// let (first, again) = runtime.block_on(async { ((&future).await, (&future).await) });
    /// assert_eq!((first?, again?), (49, 49));
    /// assert_eq!(future.value()?, 49);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn into_future(self) -> FutureValueRef<'a, R> {
        FutureValueRef { future: self }
    }
}

impl Client {
    /// The values of `futures`, in order, awaited without blocking a thread (the
    /// async [`Client::gather`]); the first error met is returned (the other tasks
    /// still run to the end). The futures are taken when this is called, so the
    /// returned value borrows nothing and can be spawned on a runtime.
    ///
    /// Results held on their workers (large ones) are fetched together: those
    /// that ended by the time the gather is polled in one request per worker,
    /// and the ones that end while a fetch is on its way with the next. They are
    /// fetched on the cluster connection's runtime and decoded on a thread of
    /// their batch's own, never on the awaiting thread.
    pub fn gather_async<R: Value>(
        &self,
        futures: impl IntoIterator<Item = Future<R>>,
    ) -> impl std::future::Future<Output = Result<Vec<R>, TaskError>> + Send + 'static {
        Gathering::new(futures.into_iter().collect())
    }
}

/// What [`Client::gather_async`] polls (see there).
struct Gathering<R: Send + Sync + 'static> {
    /// The futures not read yet (those before `values.len()` were).
    futures: Vec<Option<Future<R>>>,
    /// The values read so far, in order.
    values: Vec<R>,
    /// Whether each future's resolution was seen on `resolved` (its held
    /// result, if any, then taken to fetch).
    seen: Vec<bool>,
    /// Indices of the futures that resolved, as they resolve.
    resolved: Receiver<usize>,
    /// The sending side the slots were given (`None` until the first poll).
    listener: Option<Sender<usize>>,
    /// Held results that ended and wait for the next batched fetch.
    ended: Vec<(Arc<Slot<R>>, Fetcher<R>)>,
    /// Whether a batched fetch's requests are on their way: the next batch
    /// waits for them, gathering what ends meanwhile.
    fetching: Arc<AtomicBool>,
    /// Wakes the task that last polled this gather.
    wake: Arc<LatestWaker>,
    /// `wake` as a waker, registered in the slots.
    waker: Waker,
}

impl<R: Send + Sync + 'static> Unpin for Gathering<R> {}

impl<R: Send + Sync + 'static> Gathering<R> {
    fn new(futures: Vec<Future<R>>) -> Self {
        let (_, resolved) = crossbeam_channel::unbounded();
        let wake = Arc::new(LatestWaker(Mutex::new(None)));
        Gathering {
            seen: vec![false; futures.len()],
            values: Vec::with_capacity(futures.len()),
            futures: futures.into_iter().map(Some).collect(),
            resolved,
            listener: None,
            ended: Vec::new(),
            fetching: Arc::new(AtomicBool::new(false)),
            waker: Waker::from(wake.clone()),
            wake,
        }
    }

    /// Asks every slot to say when it resolves (on `resolved`) and to wake
    /// this gather then.
    fn listen(&mut self) {
        let (listener, resolved) = crossbeam_channel::unbounded();
        for (index, future) in self.futures.iter().enumerate() {
            let slot = &future.as_ref().expect("none read yet").slot;
            slot.listen(&listener, index);
            slot.poll_resolved(&self.waker);
        }
        self.resolved = resolved;
        self.listener = Some(listener);
    }

    /// Takes the held results of the futures that resolved since the last
    /// poll, to fetch together.
    fn take_ended(&mut self) {
        while let Ok(index) = self.resolved.try_recv() {
            if std::mem::replace(&mut self.seen[index], true) {
                continue;
            }
            let Some(future) = &self.futures[index] else {
                continue;
            };
            if let Some(fetch) = future.slot.take_held() {
                self.ended.push((future.slot.clone(), fetch));
            }
        }
    }

    /// Fetches the ended held results together, unless a batch is on its way
    /// (its end wakes this gather to send the next).
    fn fetch_ended(&mut self) {
        if self.ended.is_empty() || self.fetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let (fetching, wake) = (self.fetching.clone(), self.wake.clone());
        fetch_taken_then(std::mem::take(&mut self.ended), None, move || {
            fetching.store(false, Ordering::Release);
            wake.wake_latest();
        });
    }
}

impl<R: Value> std::future::Future for Gathering<R> {
    type Output = Result<Vec<R>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.wake.set(cx.waker());
        if this.listener.is_none() {
            this.listen();
        }
        this.take_ended();
        this.fetch_ended();
        // Read in order, as far as the outcomes are here.
        while this.values.len() < this.futures.len() {
            let index = this.values.len();
            let future = this.futures[index].as_ref().expect("not read yet");
            if !this.seen[index] || !future.slot.poll_fetched(&this.waker) {
                return Poll::Pending;
            }
            let future = this.futures[index].take().expect("checked above");
            match future.value() {
                Ok(value) => this.values.push(value),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(std::mem::take(&mut this.values)))
    }
}

impl<R: Send + Sync + 'static> Drop for Gathering<R> {
    /// Futures not read forget this gather (it stopped listening); results
    /// being fetched still reach their slots, and so do those taken for the
    /// next batch (other handles of theirs may read them).
    fn drop(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        for (future, seen) in self.futures.iter().zip(&self.seen) {
            if let (Some(future), false) = (future, seen) {
                future.slot.unlisten(listener);
            }
        }
        // Together: one request per worker, as the batches read.
        fetch_taken_then(std::mem::take(&mut self.ended), None, || {});
    }
}

/// Wakes the task that polled last (a gather may move between tasks).
struct LatestWaker(Mutex<Option<Waker>>);

impl LatestWaker {
    /// Keeps `waker` as the one to wake.
    fn set(&self, waker: &Waker) {
        let mut latest = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !latest.as_ref().is_some_and(|known| known.will_wake(waker)) {
            *latest = Some(waker.clone());
        }
    }

    /// Wakes the task that polled last.
    fn wake_latest(&self) {
        let latest = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(waker) = latest {
            waker.wake();
        }
    }
}

impl std::task::Wake for LatestWaker {
    fn wake(self: Arc<Self>) {
        self.wake_latest();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_latest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::Slot;
    use crate::TaskErrorKind;
    use std::future::Future as _;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_borrowed_future_is_awaited_again_and_again_and_still_read_after() {
        let slot = Slot::new("halve", 0);
        let future: Future<u64> = Future::new(slot.clone());
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut first = std::pin::pin!((&future).into_future());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        slot.resolve(Ok(4));
        assert!(
            flag.0.load(Ordering::SeqCst),
            "resolving wakes the awaiting task"
        );
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(4))));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let again = runtime.block_on(async { (&future).await });
        assert_eq!(again.unwrap(), 4);
        assert_eq!(future.value().unwrap(), 4);
    }

    /// How long a test waits for an event before it is considered hung.
    const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

    /// A waker that tells a channel each time it is woken.
    struct ChannelWaker(Mutex<std::sync::mpsc::Sender<()>>);

    impl Wake for ChannelWaker {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(());
        }
    }

    #[test]
    fn a_gather_fetches_held_results_off_the_polling_thread_and_reads_them_in_order() {
        let slots: Vec<Arc<Slot<u64>>> = (0..3).map(|i| Slot::new("t", i)).collect();
        let futures: Vec<Future<u64>> = slots.iter().map(|s| Future::new(s.clone())).collect();
        let polling_thread = std::thread::current().id();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let finishing = Arc::new(Mutex::new(finishing));
        for (i, slot) in slots.iter().enumerate().skip(1) {
            let finishing = finishing.clone();
            let fetch: crate::slot::Fetcher<u64> = Box::new(move || {
                assert_ne!(std::thread::current().id(), polling_thread);
                let told = finishing.lock().unwrap().recv_timeout(HANG_GUARD);
                told.expect("told to finish");
                Ok(i as u64 * 10)
            });
            assert!(slot.resolve_held(fetch).is_ok());
        }
        let (woken, wakes) = std::sync::mpsc::channel();
        let waker = Waker::from(Arc::new(ChannelWaker(Mutex::new(woken))));
        let mut cx = Context::from_waker(&waker);
        let mut gathering = Gathering::new(futures);
        // The fetches wait for `finish`: a poll that fetched here would hang.
        assert!(Pin::new(&mut gathering).poll(&mut cx).is_pending());
        slots[0].resolve(Ok(0));
        finish.send(()).unwrap();
        finish.send(()).unwrap();
        let values = loop {
            match Pin::new(&mut gathering).poll(&mut cx) {
                Poll::Ready(values) => break values.unwrap(),
                Poll::Pending => wakes.recv_timeout(HANG_GUARD).expect("woken"),
            }
        };
        assert_eq!(values, vec![0, 10, 20]);
    }

    #[test]
    fn a_gather_gives_the_first_error_in_order_without_waiting_for_later_ones() {
        let slots: Vec<Arc<Slot<u64>>> = (0..3).map(|i| Slot::new("t", i)).collect();
        let futures: Vec<Future<u64>> = slots.iter().map(|s| Future::new(s.clone())).collect();
        slots[0].resolve(Ok(1));
        slots[1].resolve(Err(TaskError::new("t", 1, TaskErrorKind::Failed, "no")));
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut Gathering::new(futures)).poll(&mut cx) {
            Poll::Ready(Err(error)) => assert_eq!(error.position, 1),
            other => panic!("not the error of future 1: {:?}", other.map(|r| r.is_ok())),
        }
        assert_eq!(slots[2].listeners(), 0, "the gather stopped listening");
    }

    #[test]
    fn a_borrowed_failed_future_gives_its_error_each_time() {
        let slot = Slot::new("halve", 3);
        let future: Future<u64> = Future::new(slot.clone());
        slot.resolve(Err(TaskError::new(
            "halve",
            3,
            TaskErrorKind::Failed,
            "3 is odd",
        )));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (a, b) = runtime.block_on(async { ((&future).await, (&future).await) });
        assert_eq!(a.unwrap_err().to_string(), b.unwrap_err().to_string());
        assert!(future.value().is_err());
    }
}
