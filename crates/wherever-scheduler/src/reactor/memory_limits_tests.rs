//! Workers' memory limits in the reactor and on the wire: the hello's limits and
//! later changes reach the event stream, malformed ones are refused, a change is
//! sent to every worker, and the new messages survive (or fail cleanly on)
//! encoding.

use super::*;
use crate::protocol::{decode_batch, encode_batch, BuildInfo, Hello, PROTOCOL_VERSION};
use wherever_core::events::{Event as Observed, MemoryThresholds};

#[derive(Default)]
struct Outbox {
    sent: Vec<(PeerId, Message)>,
    dropped: Vec<(PeerId, String)>,
}

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.sent.push((peer, message));
    }

    fn disconnect(&mut self, peer: PeerId, reason: &str) {
        self.dropped.push((peer, reason.to_string()));
    }

    fn has_room(&self, _peer: PeerId, _bytes: usize) -> bool {
        true
    }
}

const LIMITS: MemoryThresholds = MemoryThresholds {
    limit: 1_000,
    target: Some(600),
    pause: Some(800),
    terminate: Some(950),
};

fn worker(port: u16, memory: Option<MemoryThresholds>) -> Role {
    Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], port)),
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: memory.map(Box::new),
    }
}

/// A reactor whose event stream is read, and the reading subscription.
fn observed_reactor() -> (Reactor, Subscription) {
    let events = EventBus::new();
    let subscription = events.subscribe(100);
    let reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events,
    });
    (reactor, subscription)
}

fn drained(subscription: &Subscription) -> Vec<Observed> {
    subscription.drain().into_iter().map(|s| s.event).collect()
}

#[test]
fn a_worker_s_limits_follow_its_join_in_the_event_stream_and_so_do_changes() {
    let (mut reactor, events) = observed_reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(7, worker(9, Some(LIMITS)), now, &mut outbox);
    let seen = drained(&events);
    let kinds: Vec<&str> = seen.iter().map(Observed::kind).collect();
    // (A stream that gains its reader hears of the workers again: in pairs too.)
    assert!(
        !kinds.is_empty()
            && kinds
                .chunks(2)
                .all(|pair| pair == ["WorkerJoined", "WorkerLimits"]),
        "{kinds:?}"
    );
    let Observed::WorkerJoined { worker, .. } = seen[0] else {
        unreachable!()
    };
    assert_eq!(
        seen[1],
        Observed::WorkerLimits {
            worker,
            limits: LIMITS
        }
    );
    let lower = MemoryThresholds {
        limit: 500,
        target: Some(300),
        pause: Some(400),
        terminate: Some(475),
    };
    let changed = Message::MemoryLimits { limits: lower };
    reactor.messages(7, vec![changed], now, &mut outbox);
    assert_eq!(
        drained(&events),
        [Observed::WorkerLimits {
            worker,
            limits: lower
        }]
    );
    assert!(outbox.dropped.is_empty(), "{:?}", outbox.dropped);
}

#[test]
fn a_worker_without_limits_joins_without_a_limits_event() {
    let (mut reactor, events) = observed_reactor();
    let mut outbox = Outbox::default();
    reactor.peer_joined(7, worker(9, None), Instant::now(), &mut outbox);
    let kinds: Vec<&str> = drained(&events).iter().map(Observed::kind).collect();
    assert!(kinds.contains(&"WorkerJoined"), "{kinds:?}");
    assert!(!kinds.contains(&"WorkerLimits"), "{kinds:?}");
}

#[test]
fn malformed_limits_are_refused_at_the_hello_and_drop_the_worker_later() {
    let (mut reactor, events) = observed_reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let zero = MemoryThresholds { limit: 0, ..LIMITS };
    reactor.peer_joined(7, worker(9, Some(zero)), now, &mut outbox);
    assert!(
        matches!(&outbox.sent[..], [(7, Message::Refused { reason })] if reason.contains("0 bytes")),
        "{:?}",
        outbox.sent
    );
    assert_eq!(outbox.dropped.len(), 1);
    assert!(drained(&events).is_empty(), "a refused worker never joined");

    reactor.peer_joined(8, worker(10, Some(LIMITS)), now, &mut outbox);
    drained(&events);
    let above = MemoryThresholds {
        terminate: Some(2_000),
        ..LIMITS
    };
    reactor.messages(
        8,
        vec![Message::MemoryLimits { limits: above }],
        now,
        &mut outbox,
    );
    let (peer, reason) = outbox.dropped.last().unwrap();
    assert_eq!(*peer, 8);
    assert!(
        reason.contains("terminate threshold (2000 bytes)"),
        "{reason}"
    );
    assert!(!drained(&events)
        .iter()
        .any(|e| matches!(e, Observed::WorkerLimits { .. })));
}

#[test]
fn a_new_limit_goes_to_every_worker() {
    let (mut reactor, _events) = observed_reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(1, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(7, worker(9, Some(LIMITS)), now, &mut outbox);
    reactor.peer_joined(8, worker(10, None), now, &mut outbox);
    outbox.sent.clear();
    assert_eq!(reactor.set_memory_limit(333, &mut outbox), 2);
    let mut told: Vec<PeerId> = outbox
        .sent
        .iter()
        .filter_map(|(peer, message)| {
            matches!(message, Message::SetMemoryLimit { limit: 333 }).then_some(*peer)
        })
        .collect();
    told.sort_unstable();
    assert_eq!(told, [7, 8], "{:?}", outbox.sent);
}

#[test]
fn the_limit_messages_round_trip_and_truncated_frames_are_errors() {
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        proof: [3; 32],
        role: worker(9, Some(LIMITS)),
        build: BuildInfo {
            hash: 1,
            executable: "/bin/w".into(),
            registry: 2,
        },
        host: "h".into(),
        pid: 4,
    };
    let batches = [
        vec![Message::Hello(Box::new(hello))],
        vec![Message::SetMemoryLimit { limit: 1 << 40 }],
        vec![Message::MemoryLimits { limits: LIMITS }],
    ];
    for batch in batches {
        let bytes = encode_batch(&batch).unwrap();
        assert_eq!(decode_batch(&bytes).unwrap(), batch);
        for cut in 0..bytes.len() {
            assert!(
                decode_batch(&bytes[..cut]).is_err(),
                "{batch:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_batch(&longer).is_err());
    }
}

#[test]
fn a_worker_that_joins_after_a_new_limit_is_told_it() {
    let (mut reactor, _events) = observed_reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(7, worker(9, Some(LIMITS)), now, &mut outbox);
    reactor.set_memory_limit(333, &mut outbox);
    outbox.sent.clear();
    // Started before the change (with the old limit), connected after it.
    reactor.peer_joined(8, worker(10, Some(LIMITS)), now, &mut outbox);
    let at_333 = MemoryThresholds {
        limit: 333,
        ..LIMITS
    };
    reactor.peer_joined(9, worker(11, Some(at_333)), now, &mut outbox);
    let told: Vec<PeerId> = outbox
        .sent
        .iter()
        .filter_map(|(peer, message)| {
            matches!(message, Message::SetMemoryLimit { limit: 333 }).then_some(*peer)
        })
        .collect();
    assert_eq!(told, [8], "{:?}", outbox.sent);
}
