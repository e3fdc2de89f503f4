//! A large result left on its worker until read: the scheduler said `Done` with
//! the workers holding it, and the client fetches it only when asked
//! ([`HeldResult::fetch_blocking`]) or when its reader cannot wait
//! ([`HeldResult::fetch_then`]).

use super::{fetch_result, Callback, Shared};
use crate::protocol::{Message, TaskId};
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
        receiver.recv().unwrap_or_else(|_| {
            Err(TaskError::new(
                "?",
                0,
                TaskErrorKind::Runtime,
                "cannot fetch the result: the cluster connection was closed",
            ))
        })
    }
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
