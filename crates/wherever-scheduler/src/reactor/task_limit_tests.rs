//! Workers with a task limit (`slurm:per-task`): one task each, a goodbye once the
//! client has the result (inline, or fetched and said so), and the placements
//! their launcher names jobs after.

use super::*;

#[derive(Default)]
struct Outbox {
    sent: Vec<(PeerId, Message)>,
}

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.sent.push((peer, message));
    }

    fn disconnect(&mut self, _peer: PeerId, _reason: &str) {}
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

fn one_task_worker(port: u16, group: &str) -> Role {
    Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], port)),
        resources: crate::Resources::new(),
        name: Some(format!("{group}.0")),
        group: Some(group.to_string()),
        time_left_ms: None,
        max_tasks: Some(1),
        memory: None,
    }
}

fn computes(messages: &[Message]) -> Vec<TaskId> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Compute { task, .. } => Some(task.id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_one_task_worker_gets_one_task_and_goodbye_once_its_inline_result_went_out() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let client = 10;
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(1, one_task_worker(9001, "700"), now, &mut outbox);
    let first = (1 << CLIENT_TASK_BITS) + 1;
    let tasks = (first..first + 3)
        .map(|id| TaskMessage::new(id, "calc_mean", Vec::new()))
        .collect();
    reactor.messages(client, vec![Message::Submit { tasks }], now, &mut outbox);
    let sent = computes(&outbox.take(1));
    assert_eq!(
        sent.len(),
        1,
        "one task though a slot and prefetch: {sent:?}"
    );
    let status = reactor.cluster_status();
    assert_eq!(status.ready, 2);
    assert_eq!(status.limited_placements.len(), 1);
    assert_eq!(status.limited_placements[0].group, "700");
    assert_eq!(status.limited_placements[0].task, "calc_mean");
    assert_eq!(reactor.limited_placements_made(), 1);
    let finished = Message::Finished {
        task: sent[0],
        nbytes: 3,
        result: Some(vec![1, 2, 3]),
        ran_for: None,
    };
    reactor.messages(1, vec![finished], now, &mut outbox);
    assert!(outbox.take(client).iter().any(|m| matches!(
        m,
        Message::Done {
            result: Some(_),
            ..
        }
    )));
    let to_worker = outbox.take(1);
    assert!(
        to_worker.iter().any(|m| matches!(m, Message::Goodbye)),
        "{to_worker:?}"
    );
    assert!(computes(&to_worker).is_empty(), "{to_worker:?}");
}

#[test]
fn a_large_result_keeps_its_one_task_worker_until_the_client_fetched_it() {
    let mut reactor = reactor();
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let client = 10;
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(1, one_task_worker(9001, "701"), now, &mut outbox);
    let task = (1 << CLIENT_TASK_BITS) + 1;
    let submit = Message::Submit {
        tasks: vec![TaskMessage::new(task, "big", Vec::new())],
    };
    reactor.messages(client, vec![submit], now, &mut outbox);
    outbox.sent.clear();
    let finished = Message::Finished {
        task,
        nbytes: 5_000_000,
        result: None,
        ran_for: None,
    };
    reactor.messages(1, vec![finished], now, &mut outbox);
    assert!(outbox
        .take(client)
        .iter()
        .any(|m| matches!(m, Message::Done { result: None, .. })));
    assert!(
        !outbox.take(1).iter().any(|m| matches!(m, Message::Goodbye)),
        "the client has yet to fetch it from the worker"
    );
    // Another client may not say it fetched this client's result.
    reactor.peer_joined(11, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.messages(11, vec![Message::Fetched { task }], now, &mut outbox);
    assert!(!outbox.take(1).iter().any(|m| matches!(m, Message::Goodbye)));
    reactor.messages(client, vec![Message::Fetched { task }], now, &mut outbox);
    assert!(outbox.take(1).iter().any(|m| matches!(m, Message::Goodbye)));
}
