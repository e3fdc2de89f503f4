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
        max_tasks: None,
        memory: None,
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
        Message::Memory {
            rss_bytes: 4096,
            spilled_bytes: 0,
            paused: false,
            cpu: Duration::from_millis(30),
        },
        Message::Finished {
            task,
            nbytes: 3,
            result: Some(vec![1, 2, 3]),
            ran_for: Some(Duration::from_millis(7)),
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
fn a_chunk_reports_its_items_and_a_finished_task_the_time_its_worker_measured() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (watcher, worker) = (1, 3);
    reactor.peer_joined(watcher, Role::Client { inner_plan: None }, now, &mut outbox);
    let subscribe = Message::SubscribeEvents { capacity: 100 };
    reactor.messages(watcher, vec![subscribe], now, &mut outbox);
    reactor.peer_joined(worker, worker_role(), now, &mut outbox);
    let task = 1 << CLIENT_TASK_BITS;
    let chunk = TaskMessage {
        chunk: true,
        args: wherever_core::codec::encode(&vec![10u64, 20, 30]).unwrap(),
        ..records::scatter_message(task)
    };
    let submit = Message::Submit { tasks: vec![chunk] };
    reactor.messages(watcher, vec![submit], now, &mut outbox);
    let finished = Message::Finished {
        task,
        nbytes: 3,
        result: Some(vec![1, 2, 3]),
        ran_for: Some(Duration::from_millis(7)),
    };
    reactor.messages(worker, vec![finished], now, &mut outbox);
    let events = outbox.events_for(watcher);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Observed::TaskSubmitted { items: 3, .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            Observed::TaskFinished { duration, .. } if *duration == Duration::from_millis(7)
        )),
        "{events:?}"
    );
}

#[test]
fn a_client_is_forwarded_its_own_tasks_events_and_the_workers_not_another_client_s() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (first, second, worker) = (1, 2, 3);
    reactor.peer_joined(first, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(second, Role::Client { inner_plan: None }, now, &mut outbox);
    for client in [first, second] {
        let subscribe = Message::SubscribeEvents { capacity: 100 };
        reactor.messages(client, vec![subscribe], now, &mut outbox);
    }
    reactor.peer_joined(worker, worker_role(), now, &mut outbox);
    let (task_of_first, task_of_second) = (1 << CLIENT_TASK_BITS, 2 << CLIENT_TASK_BITS);
    for (client, task) in [(first, task_of_first), (second, task_of_second)] {
        let submit = Message::Submit {
            tasks: vec![records::scatter_message(task)],
        };
        reactor.messages(client, vec![submit], now, &mut outbox);
    }
    reactor.tick(now, &mut outbox);
    for (client, own, other) in [
        (first, task_of_first, task_of_second),
        (second, task_of_second, task_of_first),
    ] {
        let events = outbox.events_for(client);
        let tasks: Vec<u64> = events.iter().filter_map(Observed::task).collect();
        assert!(tasks.contains(&own), "{events:?}");
        assert!(!tasks.contains(&other), "{events:?}");
        assert_eq!(
            events.iter().filter(|e| e.kind() == "WorkerJoined").count(),
            1,
            "{events:?}"
        );
    }
}

#[test]
fn a_chunk_whose_length_cannot_be_read_counts_one_item() {
    assert_eq!(super::chunk_items(&[]), 1);
    assert_eq!(super::chunk_items(&[0xff]), 1);
    assert_eq!(super::chunk_items(&[0]), 1);
    assert_eq!(super::chunk_items(&[0x80, 0x01]), 128);
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
