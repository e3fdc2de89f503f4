//! async/await on futures: `future.await` gives the task's result without blocking
//! a thread (a [`Waker`](std::task::Waker) registered on the future's result slot is
//! woken when it resolves), and [`Client::gather_async`] awaits many.

use crate::{Client, Future, TaskError, Value};
use std::future::IntoFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

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
    pub fn gather_async<R: Value>(
        &self,
        futures: impl IntoIterator<Item = Future<R>>,
    ) -> impl std::future::Future<Output = Result<Vec<R>, TaskError>> + Send + 'static {
        let futures: Vec<Future<R>> = futures.into_iter().collect();
        async move {
            let mut values = Vec::with_capacity(futures.len());
            for future in futures {
                values.push(future.await?);
            }
            Ok(values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::Slot;
    use crate::TaskErrorKind;
    use std::future::Future as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
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
