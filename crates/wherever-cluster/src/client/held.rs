//! A large result left on its worker until read: the scheduler said `Done` with
//! the workers holding it, and the client fetches it only when asked
//! ([`HeldResult::fetch_blocking`]), when its reader cannot wait
//! ([`HeldResult::fetch_then`]), off the reader's thread
//! ([`HeldResult::fetch_bytes_then`]), or with others in one batched fetch,
//! blocking ([`HeldResult::fetch_all`]) or off the reader's thread
//! ([`HeldResult::fetch_all_then`]).

use super::{fetch_result, Callback, Shared};
use crate::fetch::fetch_batched_each;
use crate::protocol::{Input, Message, TaskId};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc::WeakUnboundedSender;
use wherever_core::{TaskError, TaskErrorKind};

/// What a task's callback gets when it ends well.
pub enum Arrival {
    /// The encoded result, sent inline or already fetched.
    Bytes(Vec<u8>),
    /// The result stays on its workers until fetched.
    Held(HeldResult),
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrival::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Arrival::Held(held) => write!(f, "Held(task {} on {:?})", held.task, held.holders),
        }
    }
}

/// A finished task whose result is held by workers: fetch it once to read it.
pub struct HeldResult {
    pub(super) task: TaskId,
    pub(super) holders: Vec<SocketAddr>,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: WeakUnboundedSender<Message>,
    pub(super) runtime: tokio::runtime::Handle,
}

impl HeldResult {
    /// The task whose result this is.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// Fetches the result in the background and calls `then` with it: with
    /// [`Arrival::Bytes`], or with an error; if the holders lost it, the scheduler
    /// recomputes it and `then` gets the new [`Arrival`] (possibly `Held` again).
    pub fn fetch_then(self, then: Callback) {
        let HeldResult {
            task,
            holders,
            shared,
            commands,
            runtime,
        } = self;
        shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task, then.into());
        runtime.spawn(fetch_result(task, holders, shared, commands));
    }

    /// Fetches the result, blocking this thread until it is here (through the
    /// fetch's own timeouts, a recomputation if its holders lost it, or the
    /// connection's end). Must not be called on the cluster runtime's thread.
    pub fn fetch_blocking(self) -> Result<Vec<u8>, TaskError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.fetch_then(forward_to(sender));
        receiver.recv().unwrap_or_else(|_| Err(connection_closed()))
    }

    /// Fetches the result in the background and calls `then` with its bytes (or
    /// the error), once: a result its holders lost is recomputed and fetched
    /// again. `then` runs on the cluster connection's runtime thread.
    pub fn fetch_bytes_then(self, then: Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>) {
        self.fetch_then(bytes_to(then));
    }

    /// Fetches all of `held` together, blocking this thread, and hands each
    /// result (with its index in `held`) to `each` on this thread as soon as it
    /// is here, so that it is used while the next arrive: one request per holder
    /// for all the results it holds ([`fetch_batched_each`]); a result that does
    /// not come that way is fetched alone afterwards
    /// ([`HeldResult::fetch_blocking`], which reports it missing and waits for
    /// its recomputation if need be). Every index gets exactly one call. Must
    /// not be called on the cluster runtime's thread.
    pub fn fetch_all(
        held: Vec<HeldResult>,
        mut each: impl FnMut(usize, Result<Vec<u8>, TaskError>),
    ) {
        // Results of different connections go to different clusters.
        let mut left: Vec<(usize, HeldResult)> = held.into_iter().enumerate().collect();
        while let Some((_, first)) = left.first() {
            let shared = first.shared.clone();
            let (group, rest): (Vec<_>, Vec<_>) = left
                .into_iter()
                .partition(|(_, held)| Arc::ptr_eq(&held.shared, &shared));
            left = rest;
            let (indices, group): (Vec<usize>, Vec<HeldResult>) = group.into_iter().unzip();
            fetch_group(group, |at, outcome| each(indices[at], outcome));
        }
    }
}

/// Called once with a fetched result's bytes (or the error).
pub type BytesThen = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

impl HeldResult {
    /// Fetches all of `held` together off this thread, on their connections'
    /// runtimes, and calls each result's `then` there as soon as its bytes are
    /// here: one request per holder for all the results it holds
    /// ([`fetch_batched_each`]). A result that does not come that way (its
    /// holder died or answered short, wrongly or too late) is fetched alone
    /// ([`HeldResult::fetch_bytes_then`]: reported missing and recomputed if
    /// need be), so it gets the same outcome as a read of it alone. Every `then`
    /// is called exactly once, with an error if the connection goes first.
    /// `batched` runs once every batched request has ended (after each answer
    /// that came that way was handed over; results fetched alone may still be
    /// on their way).
    pub fn fetch_all_then(
        held: Vec<(HeldResult, BytesThen)>,
        batched: impl FnOnce() + Send + 'static,
    ) {
        // Runs when the last connection's batched requests end (or are dropped).
        let batched = Arc::new(OnDrop(std::sync::Mutex::new(Some(Box::new(batched)))));
        let mut left = held;
        while let Some((first, _)) = left.first() {
            let shared = first.shared.clone();
            let (group, rest): (Vec<_>, Vec<_>) = left
                .into_iter()
                .partition(|(held, _)| Arc::ptr_eq(&held.shared, &shared));
            left = rest;
            let batched = batched.clone();
            let runtime = group[0].0.runtime.clone();
            runtime.spawn(async move {
                fetch_group_then(group).await;
                drop(batched);
            });
        }
    }
}

/// Runs its function when dropped (shared by the tasks that drop it).
struct OnDrop(std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let then = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(then) = then {
            then();
        }
    }
}

/// A result's `then`, called with an error if it is dropped unanswered (its
/// fetch was dropped with the connection's runtime): never left waiting.
struct Answer(Option<BytesThen>);

impl Answer {
    fn give(mut self, outcome: Result<Vec<u8>, TaskError>) {
        if let Some(then) = self.0.take() {
            then(outcome);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(connection_closed()));
        }
    }
}

/// The error of a fetch whose connection went before its answer.
fn connection_closed() -> TaskError {
    TaskError::new(
        "?",
        0,
        TaskErrorKind::Runtime,
        "cannot fetch the result: the cluster connection was closed",
    )
}

/// [`HeldResult::fetch_all_then`] for results of one connection, on its runtime.
async fn fetch_group_then(group: Vec<(HeldResult, BytesThen)>) {
    let Some((first, _)) = group.first() else {
        return;
    };
    let secret = first.shared.secret.clone();
    let inputs: Vec<Input> = group
        .iter()
        .map(|(held, _)| Input {
            task: held.task,
            holders: held.holders.clone(),
        })
        .collect();
    let mut group: Vec<Option<(HeldResult, Answer)>> = group
        .into_iter()
        .map(|(held, then)| Some((held, Answer(Some(then)))))
        .collect();
    fetch_batched_each(&inputs, &secret, |index, answer| {
        let Some((held, then)) = group.get_mut(index).and_then(Option::take) else {
            return;
        };
        match answer {
            Some(bytes) => {
                // A worker that retires need not keep it for this client any more.
                if let Some(commands) = held.commands.upgrade() {
                    let _ = commands.send(Message::Fetched { task: held.task });
                }
                then.give(Ok(bytes));
            }
            None => held.fetch_bytes_then(Box::new(move |outcome| then.give(outcome))),
        }
    })
    .await;
}

/// [`HeldResult::fetch_all`] for results of one connection.
fn fetch_group(group: Vec<HeldResult>, mut each: impl FnMut(usize, Result<Vec<u8>, TaskError>)) {
    let Some(first) = group.first() else {
        return;
    };
    let (runtime, secret) = (first.runtime.clone(), first.shared.secret.clone());
    let inputs: Vec<Input> = group
        .iter()
        .map(|held| Input {
            task: held.task,
            holders: held.holders.clone(),
        })
        .collect();
    let (sender, arrived) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        fetch_batched_each(&inputs, &secret, |index, answer| {
            let _ = sender.send((index, answer));
        })
        .await;
    });
    let mut group: Vec<Option<HeldResult>> = group.into_iter().map(Some).collect();
    // Ends when the fetch task ends (or the runtime is gone, dropping it).
    for (index, answer) in arrived {
        let Some(held) = group.get_mut(index).and_then(Option::take) else {
            continue;
        };
        match answer {
            Some(bytes) => {
                // A worker that retires need not keep it for this client any more.
                if let Some(commands) = held.commands.upgrade() {
                    let _ = commands.send(Message::Fetched { task: held.task });
                }
                each(index, Ok(bytes));
            }
            None => group[index] = Some(held),
        }
    }
    for (index, held) in group.into_iter().enumerate() {
        if let Some(held) = held {
            each(index, held.fetch_blocking());
        }
    }
}

/// A callback that hands fetched bytes (or the error) to `then`, fetching again
/// when the recomputed result is held once more.
fn bytes_to(then: Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>) -> Callback {
    Box::new(move |outcome| match outcome {
        Ok(Arrival::Held(held)) => held.fetch_then(bytes_to(then)),
        Ok(Arrival::Bytes(bytes)) => then(Ok(bytes)),
        Err(error) => then(Err(error)),
    })
}

/// A callback that hands fetched bytes (or the error) to `sender`, fetching
/// again when the recomputed result is held once more.
fn forward_to(sender: std::sync::mpsc::SyncSender<Result<Vec<u8>, TaskError>>) -> Callback {
    Box::new(move |outcome| match outcome {
        Ok(Arrival::Held(held)) => held.fetch_then(forward_to(sender)),
        Ok(Arrival::Bytes(bytes)) => {
            let _ = sender.send(Ok(bytes));
        }
        Err(error) => {
            let _ = sender.send(Err(error));
        }
    })
}

#[cfg(test)]
mod tests;
