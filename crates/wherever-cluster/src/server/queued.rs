//! Counting the bytes queued for each peer, for back-pressure: a slow client's
//! results wait on its workers instead of in the scheduler's memory.

use crate::protocol::Message;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The most bytes of results queued for one peer; past it, results go without
/// their bytes and the client fetches them from the workers.
pub const PEER_QUEUE_LIMIT: usize = 64 << 20;

/// What a message without a payload counts for.
const SMALL_MESSAGE: usize = 64;

/// The bytes queued for one peer: added when queued, taken off once written.
#[derive(Clone, Default)]
pub(super) struct QueuedBytes(Arc<AtomicUsize>);

impl QueuedBytes {
    /// `message` is queued.
    pub(super) fn add(&self, message: &Message) {
        self.0.fetch_add(size(message), Ordering::Relaxed);
    }

    /// `messages` were written (or dropped as unsendable).
    pub(super) fn written(&self, messages: &[Message]) {
        let bytes: usize = messages.iter().map(size).sum();
        // Saturating: never below zero, whatever the order of updates.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                Some(queued.saturating_sub(bytes))
            });
    }

    /// Whether `bytes` more fit under [`PEER_QUEUE_LIMIT`].
    pub(super) fn has_room(&self, bytes: usize) -> bool {
        self.0.load(Ordering::Relaxed).saturating_add(bytes) <= PEER_QUEUE_LIMIT
    }
}

/// About how many bytes `message` holds: its payload, or a small constant.
fn size(message: &Message) -> usize {
    SMALL_MESSAGE
        + match message {
            Message::Done {
                result: Some(bytes),
                ..
            }
            | Message::Store { data: bytes, .. }
            | Message::Scatter { data: bytes, .. } => bytes.len(),
            Message::Compute { task, .. } => {
                task.args.len() + task.chain.iter().map(|l| l.args.len()).sum::<usize>()
            }
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(bytes: usize) -> Message {
        Message::Done {
            task: 1,
            result: Some(vec![0; bytes]),
            holders: Vec::new(),
        }
    }

    #[test]
    fn queued_results_fill_the_queue_and_written_ones_free_it() {
        let queued = QueuedBytes::default();
        let big = done(PEER_QUEUE_LIMIT / 2);
        queued.add(&big);
        assert!(queued.has_room(1 << 20));
        queued.add(&big);
        assert!(!queued.has_room(1 << 20));
        queued.written(std::slice::from_ref(&big));
        assert!(queued.has_room(1 << 20));
    }
}
