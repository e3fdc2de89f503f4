//! Knowing that the worker's last words went out: a worker about to exit for
//! memory sends `Message::Exiting` and waits (a bounded time) until its writer
//! has sent the batch holding it, before `std::process::exit` closes the socket.
//! The writer reports each batch it takes off its queue ([`Flushed::taken`],
//! before sending it); once it took the batch with `Exiting`, a heartbeat queued
//! after that is taken only when that batch has been sent.

use crate::protocol::Message;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What the writer took off its queue, as far as an exit cares.
#[derive(Default)]
pub struct Flushed {
    /// (the batch with `Exiting` was taken, batches taken after it)
    state: Mutex<(bool, u64)>,
    changed: Condvar,
}

impl Flushed {
    /// The writer takes `batch` off its queue, to send it next.
    pub fn taken(&self, batch: &[Message]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 {
            state.1 += 1;
        } else if batch.iter().any(|m| matches!(m, Message::Exiting { .. })) {
            state.0 = true;
        } else {
            return;
        }
        self.changed.notify_all();
    }

    /// Waits (at most `timeout` in all) until the batch with the `Exiting`
    /// already queued on `outgoing` has been sent.
    pub fn wait(&self, outgoing: &UnboundedSender<Message>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if !self.wait_for(|state| state.0, deadline) {
            return;
        }
        let _ = outgoing.send(Message::Heartbeat);
        self.wait_for(|state| state.1 > 0, deadline);
    }

    fn wait_for(&self, done: impl Fn(&(bool, u64)) -> bool, deadline: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_wait_ends_once_a_batch_after_the_exiting_one_was_taken() {
        let flushed = Arc::new(Flushed::default());
        let (outgoing, mut queue) = tokio::sync::mpsc::unbounded_channel();
        outgoing
            .send(Message::Exiting {
                reason: "memory".into(),
            })
            .unwrap();
        let writer = {
            let flushed = flushed.clone();
            std::thread::spawn(move || {
                // The writer: before it, a batch without `Exiting` changes nothing.
                flushed.taken(&[Message::Heartbeat]);
                let exiting = queue.blocking_recv().unwrap();
                flushed.taken(&[exiting]);
                let next = queue.blocking_recv().unwrap();
                assert_eq!(next, Message::Heartbeat);
                flushed.taken(&[next]);
            })
        };
        flushed.wait(&outgoing, Duration::from_secs(60));
        assert_eq!(*flushed.state.lock().unwrap(), (true, 1));
        writer.join().unwrap();
    }
}
