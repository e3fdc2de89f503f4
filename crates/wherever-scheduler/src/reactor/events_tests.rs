//! The reactor's event stream: what it emits, and forwarding it to subscribed clients
//! (bounded per client, oldest dropped, held while the client's queue is full).

use super::*;
use std::collections::HashSet;
use wherever_core::events::Event as Observed;

#[derive(Default)]
struct Outbox {
    sent: Vec<(PeerId, Message)>,
    full: HashSet<PeerId>,
}

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.sent.push((peer, message));
    }

    fn disconnect(&mut self, _peer: PeerId, _reason: &str) {}

    fn has_room(&self, peer: PeerId, _bytes: usize) -> bool {
        !self.full.contains(&peer)
    }
}

impl Outbox {
    /// The events forwarded to `peer` so far, taken out.
    fn events_for(&mut self, peer: PeerId) -> Vec<Observed> {
        let mut events = Vec::new();
        self.sent.retain(|(to, message)| match message {
            Message::Events { events: batch } if *to == peer => {
                events.extend(batch.iter().map(|s| s.event.clone()));
                false
            }
            _ => true,
        });
        events
    }
}

fn reactor() -> Reactor {
    Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events: EventBus::new(),
    })
}

fn worker_role() -> Role {
    Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], 9)),
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
    }
}

#[test]
fn a_subscribed_client_gets_task_and_worker_events_others_none() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (watcher, other, worker) = (1, 2, 3);
    reactor.peer_joined(watcher, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(other, Role::Client { inner_plan: None }, now, &mut outbox);
    let subscribe = Message::SubscribeEvents { capacity: 100 };
    reactor.messages(watcher, vec![subscribe], now, &mut outbox);
    reactor.peer_joined(worker, worker_role(), now, &mut outbox);
    let task = 1 << CLIENT_TASK_BITS;
    let submit = Message::Submit {
        tasks: vec![records::scatter_message(task)],
    };
    reactor.messages(watcher, vec![submit], now, &mut outbox);
    let reports = vec![
        Message::Started { task },
        Message::Memory { rss_bytes: 4096 },
        Message::Finished {
            task,
            nbytes: 3,
            result: Some(vec![1, 2, 3]),
        },
    ];
    reactor.messages(worker, reports, now, &mut outbox);
    reactor.peer_closed(worker, &mut outbox);
    let kinds: Vec<&str> = outbox
        .events_for(watcher)
        .iter()
        .map(Observed::kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "WorkerJoined",
            "TaskSubmitted",
            "TaskStarted",
            "WorkerMemory",
            "TaskFinished",
            "WorkerLeft"
        ]
    );
    assert!(outbox.events_for(other).is_empty());
}

#[test]
fn a_client_with_a_full_queue_loses_the_oldest_events_and_is_told() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let slow = 1;
    reactor.peer_joined(slow, Role::Client { inner_plan: None }, now, &mut outbox);
    let subscribe = Message::SubscribeEvents { capacity: 2 };
    reactor.messages(slow, vec![subscribe], now, &mut outbox);
    outbox.full.insert(slow);
    for worker in 10..15 {
        reactor.peer_joined(worker, worker_role(), now, &mut outbox);
    }
    assert!(
        outbox.events_for(slow).is_empty(),
        "held while the queue is full"
    );
    outbox.full.clear();
    reactor.tick(now, &mut outbox);
    let events = outbox.events_for(slow);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], Observed::Dropped { count: 3 });
    assert!(matches!(
        events[2],
        Observed::WorkerJoined { worker: 5, .. }
    ));
}

#[test]
fn a_greedy_subscription_is_taken_and_a_worker_may_not_subscribe() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(1, Role::Client { inner_plan: None }, now, &mut outbox);
    let greedy = Message::SubscribeEvents { capacity: u32::MAX };
    reactor.messages(1, vec![greedy], now, &mut outbox);
    assert_eq!(reactor.subscribers.len(), 1);
    // A worker sending what only clients send is a protocol violation.
    reactor.peer_joined(2, worker_role(), now, &mut outbox);
    let misplaced = Message::SubscribeEvents { capacity: 1 };
    reactor.messages(2, vec![misplaced], now, &mut outbox);
    assert_eq!(reactor.peer_count(), 1, "the worker is disconnected");
}

#[test]
fn workers_report_starts_only_while_somebody_reads() {
    let bus = EventBus::new();
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events: bus.clone(),
    });
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (client, worker, late_worker) = (1, 2, 3);
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(worker, worker_role(), now, &mut outbox);
    let told = |outbox: &Outbox, peer: PeerId| -> Vec<String> {
        outbox
            .sent
            .iter()
            .filter(|(to, _)| *to == peer)
            .filter_map(|(_, m)| match m {
                Message::Observed { on } => Some(format!("Observed {on}")),
                Message::Compute { .. } => Some("Compute".to_string()),
                Message::Welcome { .. } => Some("Welcome".to_string()),
                _ => None,
            })
            .collect()
    };
    assert!(
        told(&outbox, worker) == ["Welcome"],
        "nobody reads: nothing said"
    );
    let reader = bus.subscribe(16);
    let task = 1 << CLIENT_TASK_BITS;
    let submit = Message::Submit {
        tasks: vec![records::scatter_message(task)],
    };
    reactor.messages(client, vec![submit], now, &mut outbox);
    assert_eq!(
        told(&outbox, worker),
        ["Welcome", "Observed true", "Compute"]
    );
    reactor.peer_joined(late_worker, worker_role(), now, &mut outbox);
    // The worker's handshake expects the welcome first.
    assert_eq!(told(&outbox, late_worker), ["Welcome", "Observed true"]);
    drop(reader);
    reactor.tick(now, &mut outbox);
    assert_eq!(
        told(&outbox, worker),
        ["Welcome", "Observed true", "Compute", "Observed false"]
    );
}

#[test]
fn a_first_reader_that_arrives_after_the_workers_joined_is_told_of_them() {
    let bus = EventBus::new();
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events: bus.clone(),
    });
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(1, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(2, worker_role(), now, &mut outbox);
    reactor.peer_joined(3, worker_role(), now, &mut outbox);
    // As a `processes` plan's dashboard does: it subscribes once the plan started.
    let reader = bus.subscribe(16);
    reactor.tick(now, &mut outbox);
    let mut joined = Vec::new();
    while let Some(stamped) = reader.try_recv() {
        if let Observed::WorkerJoined { worker, slots, .. } = stamped.event {
            joined.push((worker, slots));
        }
    }
    joined.sort();
    assert_eq!(joined, [(1, 1), (2, 1)]);
}
