//! Per-task options that travel in a [`TaskMessage`] reach the scheduler.

use super::*;

#[derive(Default)]
struct Outbox(Vec<(PeerId, Message)>);

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.0.push((peer, message));
    }

    fn disconnect(&mut self, _peer: PeerId, _reason: &str) {}
}

fn task(id: TaskId, priority: i64) -> TaskMessage {
    TaskMessage {
        priority,
        ..records::scatter_message(id)
    }
}

#[test]
fn a_higher_priority_task_is_computed_first() {
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig {
            prefetch_per_worker: Some(0),
        },
        heartbeat_timeout: Duration::from_secs(10),
    });
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (client, worker) = (1, 2);
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    let first = 1 << CLIENT_TASK_BITS;
    let tasks = vec![task(first + 1, 0), task(first + 2, 0), task(first + 3, 9)];
    reactor.messages(client, vec![Message::Submit { tasks }], now, &mut outbox);
    let role = Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], 9)),
    };
    reactor.peer_joined(worker, role, now, &mut outbox);
    let computed: Vec<TaskId> = outbox
        .0
        .iter()
        .filter_map(|(peer, message)| match message {
            Message::Compute { task, .. } if *peer == worker => Some(task.id),
            _ => None,
        })
        .collect();
    assert_eq!(computed.first(), Some(&(first + 3)), "{computed:?}");
}
