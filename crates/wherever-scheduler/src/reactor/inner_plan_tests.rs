//! The inner plan of a nested plan travels from clients to workers, and the
//! goodbye at a normal end reaches every worker.

use super::*;

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
    /// The inner plans `peer` was told, in order.
    fn inner_plans(&self, peer: PeerId) -> Vec<Option<String>> {
        self.sent
            .iter()
            .filter(|(to, _)| *to == peer)
            .filter_map(|(_, message)| match message {
                Message::InnerPlan { plan } => Some(plan.clone()),
                _ => None,
            })
            .collect()
    }
}

fn reactor() -> Reactor {
    Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        heartbeat_timeout: Duration::from_secs(10),
        events: Default::default(),
    })
}

fn worker(port: u16) -> Role {
    Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], port)),
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: None,
    }
}

fn client(inner: Option<&str>) -> Role {
    Role::Client {
        inner_plan: inner.map(str::to_string),
    }
}

#[test]
fn workers_learn_the_inner_plan_of_a_client_whether_they_joined_before_or_after() {
    let (mut reactor, mut outbox, now) = (reactor(), Outbox::default(), Instant::now());
    reactor.peer_joined(1, worker(9001), now, &mut outbox);
    reactor.peer_joined(2, client(Some("threads:3")), now, &mut outbox);
    reactor.peer_joined(3, worker(9002), now, &mut outbox);
    assert_eq!(outbox.inner_plans(1), vec![Some("threads:3".to_string())]);
    assert_eq!(outbox.inner_plans(3), vec![Some("threads:3".to_string())]);
    assert_eq!(reactor.inner_plan(), Some("threads:3"));
    // The welcome comes first.
    let to_late_worker: Vec<&str> = outbox
        .sent
        .iter()
        .filter(|(to, _)| *to == 3)
        .map(|(_, m)| m.name())
        .collect();
    assert_eq!(to_late_worker[..2], ["Welcome", "InnerPlan"]);
}

#[test]
fn a_client_with_another_inner_plan_is_refused_saying_both() {
    let (mut reactor, mut outbox, now) = (reactor(), Outbox::default(), Instant::now());
    reactor.peer_joined(1, client(Some("threads:3")), now, &mut outbox);
    reactor.peer_joined(2, client(Some("threads:2")), now, &mut outbox);
    let refusal = outbox.sent.iter().find_map(|(to, message)| match message {
        Message::Refused { reason } if *to == 2 => Some(reason.clone()),
        _ => None,
    });
    let refusal = refusal.expect("the second client is refused");
    assert!(
        refusal.contains("`threads:3`") && refusal.contains("`threads:2`"),
        "{refusal}"
    );
    assert_eq!(outbox.disconnected.len(), 1);
    assert_eq!(reactor.peer_count(), 1);
    // The same inner plan, or none, is welcome.
    reactor.peer_joined(3, client(Some("threads:3")), now, &mut outbox);
    reactor.peer_joined(4, client(None), now, &mut outbox);
    assert_eq!(reactor.peer_count(), 3);
}

#[test]
fn the_inner_plan_ends_with_the_last_client_that_gave_it() {
    let (mut reactor, mut outbox, now) = (reactor(), Outbox::default(), Instant::now());
    reactor.peer_joined(1, worker(9001), now, &mut outbox);
    reactor.peer_joined(2, client(Some("threads:3")), now, &mut outbox);
    reactor.peer_joined(3, client(Some("threads:3")), now, &mut outbox);
    reactor.peer_closed(2, &mut outbox);
    assert_eq!(reactor.inner_plan(), Some("threads:3"));
    reactor.peer_closed(3, &mut outbox);
    assert_eq!(reactor.inner_plan(), None);
    assert_eq!(
        outbox.inner_plans(1),
        vec![Some("threads:3".to_string()), None]
    );
    // Now another inner plan may come.
    reactor.peer_joined(4, client(Some("threads:2")), now, &mut outbox);
    assert_eq!(reactor.inner_plan(), Some("threads:2"));
}

#[test]
fn goodbye_reaches_every_worker_and_no_client() {
    let (mut reactor, mut outbox, now) = (reactor(), Outbox::default(), Instant::now());
    reactor.peer_joined(1, worker(9001), now, &mut outbox);
    reactor.peer_joined(2, client(None), now, &mut outbox);
    reactor.peer_joined(3, worker(9002), now, &mut outbox);
    outbox.sent.clear();
    reactor.goodbye(&mut outbox);
    let mut told: Vec<PeerId> = outbox
        .sent
        .iter()
        .filter(|(_, m)| *m == Message::Goodbye)
        .map(|(to, _)| *to)
        .collect();
    told.sort_unstable();
    assert_eq!(told, vec![1, 3]);
}
