//! Admitting connections to a listening port: at most [`MAX_HANDSHAKES`] in the
//! handshake at once (a newer one pushes out the oldest), each within
//! [`HANDSHAKE_TIMEOUT`](super::HANDSHAKE_TIMEOUT).

use super::{accept, Reader, Writer, HANDSHAKE_TIMEOUT};
use crate::auth::Secret;
use crate::protocol::{BuildInfo, Hello};

/// How many connections may be in the handshake at once on one listening port;
/// a newer one pushes out the oldest (an honest peer needs one round trip).
pub const MAX_HANDSHAKES: usize = 64;

/// Bounds the connections in the handshake on one listening port to
/// [`MAX_HANDSHAKES`]: admitting one more pushes out the oldest still waiting.
#[derive(Clone, Default)]
pub struct HandshakeGate {
    waiting: std::sync::Arc<std::sync::Mutex<HandshakeQueue>>,
}

#[derive(Default)]
struct HandshakeQueue {
    next: u64,
    entries: std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>,
}

/// A connection's place in the handshake; ends when dropped.
pub struct HandshakeTicket {
    id: u64,
    evicted: tokio::sync::oneshot::Receiver<()>,
    gate: HandshakeGate,
}

impl HandshakeGate {
    /// A gate with nobody in it.
    pub fn new() -> Self {
        HandshakeGate::default()
    }

    /// Admits one connection, pushing out the oldest if [`MAX_HANDSHAKES`] wait.
    pub fn admit(&self) -> HandshakeTicket {
        let mut queue = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        while queue.entries.len() >= MAX_HANDSHAKES {
            if let Some((_, evict)) = queue.entries.pop_front() {
                let _ = evict.send(());
            }
        }
        queue.next += 1;
        let id = queue.next;
        let (evict, evicted) = tokio::sync::oneshot::channel();
        queue.entries.push_back((id, evict));
        HandshakeTicket {
            id,
            evicted,
            gate: self.clone(),
        }
    }

    /// How many connections are in the handshake.
    pub fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// Whether no connection is in the handshake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        let mut queue = self.gate.waiting.lock().unwrap_or_else(|p| p.into_inner());
        queue.entries.retain(|(id, _)| *id != self.id);
    }
}

/// [`accept`] under a [`HandshakeGate`] ticket and the [`HANDSHAKE_TIMEOUT`] for
/// the whole exchange: the way every listening port admits a connection.
pub async fn accept_gated(
    ticket: HandshakeTicket,
    reader: &mut Reader,
    writer: &mut Writer,
    secret: &Secret,
    expected_build: &std::sync::Mutex<Option<BuildInfo>>,
) -> Result<Hello, String> {
    let mut ticket = ticket;
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept(reader, writer, secret, expected_build),
    );
    tokio::select! {
        outcome = handshake => outcome.unwrap_or_else(|_| Err(format!(
            "no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs()
        ))),
        _ = &mut ticket.evicted => Err(format!(
            "pushed out by newer connections ({MAX_HANDSHAKES} handshakes at once at most)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_handshake_gate_pushes_out_the_oldest() {
        let gate = HandshakeGate::new();
        let mut first = gate.admit();
        let mut tickets: Vec<HandshakeTicket> = (1..MAX_HANDSHAKES).map(|_| gate.admit()).collect();
        assert_eq!(gate.len(), MAX_HANDSHAKES);
        assert!(first.evicted.try_recv().is_err(), "not yet pushed out");
        let newest = gate.admit();
        assert_eq!(gate.len(), MAX_HANDSHAKES);
        assert!(first.evicted.try_recv().is_ok(), "the oldest is pushed out");
        assert!(tickets[0].evicted.try_recv().is_err());
        drop(newest);
        tickets.clear();
        drop(first);
        assert!(gate.is_empty());
    }
}
