//! Workers' memory limits: checked when a worker announces them (in its hello,
//! and after a change), kept beside its identity, reported in the event stream
//! ([`Observed::WorkerLimits`]), and changed on every worker at once when a plan
//! without `mem=` scales ([`Reactor::set_memory_limit`]).

use super::{Comm, Reactor};
use crate::protocol::Message;
use crate::WorkerId;
use wherever_core::events::{Event as Observed, MemoryThresholds};

/// `Ok` if `limits` can be a worker's: a limit of at least 1 byte, and every
/// threshold at most the limit; else what is wrong, for the worker's refusal.
pub(super) fn check_limits(limits: &MemoryThresholds) -> Result<(), String> {
    if limits.limit == 0 {
        return Err("the worker's memory limit is 0 bytes".to_string());
    }
    for (what, at) in [
        ("spill target", limits.target),
        ("pause threshold", limits.pause),
        ("terminate threshold", limits.terminate),
    ] {
        if let Some(at) = at.filter(|&at| at > limits.limit) {
            return Err(format!(
                "the worker's memory {what} ({at} bytes) is above its limit ({} bytes)",
                limits.limit
            ));
        }
    }
    Ok(())
}

impl Reactor {
    /// `worker` runs under `limits` (from its hello or after a change): kept, and
    /// reported in the event stream.
    pub(super) fn worker_limits_are(&mut self, worker: WorkerId, limits: MemoryThresholds) {
        if let Some(identity) = self.identities.get_mut(&worker) {
            identity.memory = Some(limits);
        }
        self.events
            .emit_with(|| Observed::WorkerLimits { worker, limits });
    }

    /// Tells the worker that joined as `peer` with `announced` limits the
    /// cluster's limit, when [`Reactor::set_memory_limit`] set another.
    pub(super) fn correct_joined_limit(
        &self,
        peer: super::PeerId,
        announced: Option<&MemoryThresholds>,
        comm: &mut impl Comm,
    ) {
        if let Some(limit) = self.memory_limit {
            if announced.map(|limits| limits.limit) != Some(limit) {
                comm.send(peer, Message::SetMemoryLimit { limit });
            }
        }
    }

    /// Emits the limits of `worker`, if it announced any (for a stream that
    /// gained its first reader after the worker joined).
    pub(super) fn emit_known_limits(&self, worker: WorkerId) {
        if let Some(limits) = self.identities.get(&worker).and_then(|i| i.memory) {
            self.events
                .emit_with(|| Observed::WorkerLimits { worker, limits });
        }
    }

    /// Tells every connected worker to run under a memory limit of `limit`
    /// bytes from now on (each keeps its spill, pause and terminate fractions and
    /// reports its new thresholds); returns how many were told.
    /// Workers that join later get it too, whatever limit they started with (a
    /// worker started before the change but not yet connected).
    pub fn set_memory_limit(&mut self, limit: u64, comm: &mut impl Comm) -> usize {
        let limit = limit.max(1);
        self.memory_limit = Some(limit);
        for (peer, _) in self.workers.values() {
            comm.send(*peer, Message::SetMemoryLimit { limit });
        }
        self.workers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_be_positive_with_thresholds_under_them() {
        let fine = MemoryThresholds {
            limit: 100,
            target: Some(60),
            pause: None,
            terminate: Some(100),
        };
        assert_eq!(check_limits(&fine), Ok(()));
        let zero = MemoryThresholds { limit: 0, ..fine };
        assert!(check_limits(&zero).unwrap_err().contains("0 bytes"));
        let above = MemoryThresholds {
            pause: Some(101),
            ..fine
        };
        let error = check_limits(&above).unwrap_err();
        assert!(error.contains("pause threshold (101 bytes)"), "{error}");
    }
}
