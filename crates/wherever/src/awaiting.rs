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

impl<R> std::future::Future for FutureValue<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self
            .future
            .as_ref()
            .expect("a FutureValue is not polled after it is ready");
        if !future.slot.poll_resolved(cx.waker()) {
            return Poll::Pending;
        }
        let future = self.future.take().expect("checked above");
        Poll::Ready(future.value())
    }
}

impl<R> IntoFuture for Future<R> {
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
