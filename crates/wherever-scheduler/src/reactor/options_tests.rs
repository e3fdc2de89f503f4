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
            ..SchedulerConfig::default()
        },
        events: Default::default(),
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
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: None,
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

fn worker_with(resources: &str, port: u16) -> Role {
    Role::Worker {
        slots: 2,
        data_address: SocketAddr::from(([127, 0, 0, 1], port)),
        resources: crate::Resources::parse(resources).unwrap(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: None,
    }
}

fn asking(id: TaskId, resources: &str) -> TaskMessage {
    TaskMessage {
        resources: crate::Resources::parse(resources).unwrap(),
        ..TaskMessage::new(id, "train", Vec::new())
    }
}

#[test]
fn a_task_asking_for_a_gpu_is_computed_only_on_the_worker_advertising_one() {
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        events: Default::default(),
        heartbeat_timeout: Duration::from_secs(10),
    });
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (client, plain, gpu) = (1, 2, 3);
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(plain, worker_with("", 20), now, &mut outbox);
    reactor.peer_joined(gpu, worker_with("gpu=1", 21), now, &mut outbox);
    let first = 1 << CLIENT_TASK_BITS;
    let tasks = (1..=3).map(|i| asking(first + i, "gpu=1")).collect();
    reactor.messages(client, vec![Message::Submit { tasks }], now, &mut outbox);
    let computed: Vec<(PeerId, TaskId)> = outbox
        .0
        .iter()
        .filter_map(|(peer, message)| match message {
            Message::Compute { task, .. } => Some((*peer, task.id)),
            _ => None,
        })
        .collect();
    assert_eq!(computed, vec![(gpu, first + 1)]);
    // A worker that advertised nothing has one cpu per slot.
    let workers = reactor.scheduler().workers();
    assert_eq!(workers[0].resources.get("cpus"), 2.0);
    assert_eq!(workers[1].resources.get("gpu"), 1.0);
}

#[test]
fn a_task_no_connected_worker_fits_fails_at_once_with_a_clear_error() {
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig::default(),
        events: Default::default(),
        heartbeat_timeout: Duration::from_secs(10),
    });
    let mut outbox = Outbox::default();
    let now = Instant::now();
    let (client, worker) = (1, 2);
    reactor.peer_joined(client, Role::Client { inner_plan: None }, now, &mut outbox);
    reactor.peer_joined(worker, worker_with("gpu=1,mem=4GB", 20), now, &mut outbox);
    let task = first_task() + 1;
    let tasks = vec![asking(task, "gpu=1,mem=8GB")];
    reactor.messages(client, vec![Message::Submit { tasks }], now, &mut outbox);
    let error = outbox
        .0
        .iter()
        .find_map(|(peer, message)| match message {
            Message::Failed { task: t, error } if *peer == client && *t == task => {
                Some(error.to_string())
            }
            _ => None,
        })
        .expect("the task failed");
    assert!(
        error.contains("mem=8000000000") && error.contains("mem=4000000000"),
        "{error}"
    );
    assert!(error.contains("train"), "{error}");
    assert!(reactor.scheduler().workers()[0].free.get("gpu") == 1.0);
}

fn first_task() -> TaskId {
    1 << CLIENT_TASK_BITS
}
