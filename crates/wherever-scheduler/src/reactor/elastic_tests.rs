//! Workers' names and groups, and retiring groups of workers gracefully.

use super::*;
use wherever_core::events::Event as Observed;

#[derive(Default)]
struct Outbox {
    sent: Vec<(PeerId, Message)>,
    disconnected: Vec<(PeerId, String)>,
}

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.sent.push((peer, message));
    }

    fn disconnect(&mut self, peer: PeerId, reason: &str) {
        self.disconnected.push((peer, reason.to_string()));
    }
}

impl Outbox {
    /// The messages sent to `peer` so far, taken out.
    fn take(&mut self, peer: PeerId) -> Vec<Message> {
        let mut taken = Vec::new();
        self.sent.retain(|(to, message)| {
            if *to == peer {
                taken.push(message.clone());
                false
            } else {
                true
            }
        });
        taken
    }
}

fn reactor() -> Reactor {
    Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events: EventBus::new(),
    })
}

fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn worker(port: u16, name: Option<&str>, group: Option<&str>) -> Role {
    Role::Worker {
        slots: 1,
        data_address: address(port),
        resources: crate::Resources::new(),
        name: name.map(str::to_string),
        group: group.map(str::to_string),
        time_left_ms: None,
        max_tasks: None,
        memory: None,
    }
}

#[test]
fn a_worker_without_a_name_is_named_by_its_data_address_and_is_a_group_of_its_own() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(1, worker(9001, None, None), now, &mut outbox);
    reactor.peer_joined(2, worker(9002, Some("4711.0"), None), now, &mut outbox);
    reactor.peer_joined(
        3,
        worker(9003, Some("4712.0"), Some("4712")),
        now,
        &mut outbox,
    );
    let status = reactor.cluster_status();
    let named: Vec<(&str, &str)> = status
        .workers
        .iter()
        .map(|w| (w.name.as_str(), w.group.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("127.0.0.1:9001", "127.0.0.1:9001"),
            ("4711.0", "4711.0"),
            ("4712.0", "4712")
        ]
    );
}

#[test]
fn a_worker_with_a_malformed_name_is_refused_saying_why() {
    let mut reactor = reactor();
    let now = Instant::now();
    for (name, group, why) in [
        (Some(""), None, "the worker's name is empty"),
        (Some("a\nb"), None, "has control characters"),
        (None, Some("x".repeat(300)), "300 bytes long"),
    ] {
        let mut outbox = Outbox::default();
        let role = worker(9001, name, group.as_deref());
        reactor.peer_joined(1, role, now, &mut outbox);
        let Some((_, Message::Refused { reason })) = outbox.sent.first() else {
            panic!("not refused: {:?}", outbox.sent);
        };
        assert!(reason.contains(why), "{reason}");
        assert_eq!(outbox.disconnected.len(), 1);
        assert!(reactor.cluster_status().workers.is_empty());
    }
}

/// A result only the retiring worker holds is copied to the other worker first;
/// then it is told goodbye, leaves as "retired" (nothing rerun), and its group is
/// reported as left.
#[test]
fn a_retired_group_hands_its_only_result_over_says_goodbye_and_leaves_as_retired() {
    let mut reactor = reactor();
    let events = reactor.events().subscribe(100);
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let client = 10;
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(1, worker(9001, Some("a.0"), Some("a")), now, &mut outbox);
    let task = (1 << CLIENT_TASK_BITS) + 1;
    let submit = Message::Submit {
        tasks: vec![TaskMessage::new(task, "f", Vec::new())],
    };
    reactor.messages(client, vec![submit], now, &mut outbox);
    assert!(matches!(outbox.take(1)[..], [.., Message::Compute { .. }]));
    let finished = Message::Finished {
        task,
        nbytes: 5_000_000,
        result: None,
        ran_for: None,
    };
    reactor.messages(1, vec![finished], now, &mut outbox);
    reactor.peer_joined(2, worker(9002, Some("b.0"), Some("b")), now, &mut outbox);
    outbox.sent.clear();

    assert_eq!(reactor.retire_groups(&["a".to_string()], &mut outbox), 1);
    let to_b = outbox.take(2);
    assert_eq!(
        to_b,
        [Message::Replicate {
            task,
            holders: vec![address(9001)]
        }]
    );
    assert!(outbox.take(1).is_empty(), "told to go before handing over");
    assert!(reactor.take_groups_left().is_empty());

    reactor.messages(2, vec![Message::Replicated { task }], now, &mut outbox);
    assert_eq!(outbox.take(1), [Message::Goodbye]);
    assert_eq!(reactor.scheduler().who_has(task), [2]);
    let status = reactor.cluster_status();
    assert_eq!(status.workers.len(), 1, "{status:?}");
    assert_eq!(status.workers[0].name, "b.0");

    reactor.peer_closed(1, &mut outbox);
    assert_eq!(reactor.take_groups_left(), ["a".to_string()]);
    assert!(
        outbox.take(2).is_empty(),
        "nothing rerun: {:?}",
        outbox.sent
    );
    let left: Vec<Observed> = events
        .drain()
        .into_iter()
        .map(|s| s.event)
        .filter(|e| matches!(e, Observed::WorkerLeft { .. }))
        .collect();
    assert_eq!(
        left,
        [Observed::WorkerLeft {
            worker: 1,
            reason: RETIRED_REASON.to_string(),
            name: "a.0".to_string()
        }]
    );
}

/// A queued task of a retiring worker is asked back and computed elsewhere.
#[test]
fn a_retiring_workers_queued_task_is_asked_back_and_runs_elsewhere() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let client = 10;
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(1, worker(9001, None, Some("a")), now, &mut outbox);
    let task = (1 << CLIENT_TASK_BITS) + 1;
    let submit = Message::Submit {
        tasks: vec![TaskMessage::new(task, "f", Vec::new())],
    };
    reactor.messages(client, vec![submit], now, &mut outbox);
    reactor.peer_joined(2, worker(9002, None, Some("b")), now, &mut outbox);
    outbox.sent.clear();
    reactor.retire_groups(&["a".to_string()], &mut outbox);
    assert_eq!(outbox.take(1), [Message::Steal { task }]);
    let answer = Message::StealResponse { task, stolen: true };
    reactor.messages(1, vec![answer], now, &mut outbox);
    assert!(matches!(&outbox.take(2)[..], [Message::Compute { task: t, .. }] if t.id == task));
    assert_eq!(outbox.take(1), [Message::Goodbye]);
}

/// The new frames from the wrong side, or about tasks never asked for: a client
/// sending `ReplicateFailed` or a worker sending `Replicate` breaks the protocol
/// and is disconnected; a worker's `ReplicateFailed` nobody asked for changes nothing.
#[test]
fn replicate_frames_from_the_wrong_side_disconnect_and_stray_ones_are_ignored() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    reactor.peer_joined(10, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(1, worker(9001, None, None), now, &mut outbox);
    reactor.messages(
        1,
        vec![Message::ReplicateFailed { task: 77 }],
        now,
        &mut outbox,
    );
    assert!(outbox.disconnected.is_empty());
    assert_eq!(reactor.cluster_status().workers.len(), 1);
    reactor.messages(
        10,
        vec![Message::ReplicateFailed { task: 77 }],
        now,
        &mut outbox,
    );
    let replicate = Message::Replicate {
        task: 77,
        holders: vec![address(9001)],
    };
    reactor.messages(1, vec![replicate], now, &mut outbox);
    let reasons: Vec<&str> = outbox
        .disconnected
        .iter()
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "protocol violation: unexpected ReplicateFailed",
            "protocol violation: unexpected Replicate"
        ]
    );
}
