//! Workers under a memory limit, as the reactor sees them: a paused worker gets no
//! new task until it resumes; a task lost with a worker that said why it exits
//! fails with that reason; memory reports carry spilled bytes and the pause.

use super::*;
use wherever_core::events::Event as Observed;

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
    /// The tasks sent to `peer` to compute, taken out.
    fn computes_for(&mut self, peer: PeerId) -> Vec<TaskId> {
        let mut tasks = Vec::new();
        self.sent.retain(|(to, message)| match message {
            Message::Compute { task, .. } if *to == peer => {
                tasks.push(task.id);
                false
            }
            _ => true,
        });
        tasks
    }
}

const CLIENT: PeerId = 1;
const WORKER: PeerId = 2;

/// A reactor with a client and a one-slot worker.
fn reactor(outbox: &mut Outbox, events: EventBus) -> Reactor {
    let mut reactor = Reactor::new(ReactorConfig {
        scheduler: SchedulerConfig {
            prefetch_per_worker: Some(0),
            ..SchedulerConfig::default()
        },
        heartbeat_timeout: Duration::from_secs(10),
        events,
    });
    let now = Instant::now();
    let client = Role::Client { inner_plan: None };
    reactor.peer_joined(CLIENT, client, now, outbox);
    let worker = Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], 9)),
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: None,
    };
    reactor.peer_joined(WORKER, worker, now, outbox);
    reactor
}

fn submit(reactor: &mut Reactor, outbox: &mut Outbox, tasks: std::ops::Range<u64>) {
    let tasks = tasks
        .map(|i| TaskMessage::new((1 << CLIENT_TASK_BITS) + i, "f", Vec::new()))
        .collect();
    reactor.messages(
        CLIENT,
        vec![Message::Submit { tasks }],
        Instant::now(),
        outbox,
    );
}

#[test]
fn a_paused_worker_gets_no_new_task_until_it_resumes() {
    let mut outbox = Outbox::default();
    let mut reactor = reactor(&mut outbox, EventBus::new());
    let paused = Message::Paused { paused: true };
    reactor.messages(WORKER, vec![paused], Instant::now(), &mut outbox);
    submit(&mut reactor, &mut outbox, 0..2);
    assert!(outbox.computes_for(WORKER).is_empty());
    let resumed = Message::Paused { paused: false };
    reactor.messages(WORKER, vec![resumed], Instant::now(), &mut outbox);
    assert_eq!(outbox.computes_for(WORKER).len(), 1);
}

#[test]
fn a_task_lost_with_a_worker_that_said_why_fails_with_the_reason() {
    let mut outbox = Outbox::default();
    let mut reactor = reactor(&mut outbox, EventBus::new());
    submit(&mut reactor, &mut outbox, 0..1);
    assert_eq!(outbox.computes_for(WORKER).len(), 1);
    let reason = "its worker exceeded 95% of its memory limit".to_string();
    let exiting = Message::Exiting {
        reason: reason.clone(),
    };
    reactor.messages(WORKER, vec![exiting], Instant::now(), &mut outbox);
    reactor.peer_closed(WORKER, &mut outbox);
    let failed = outbox.sent.iter().find_map(|(to, message)| match message {
        Message::Failed { error, .. } if *to == CLIENT => Some(error),
        _ => None,
    });
    let error = failed.expect("the client was not told the task failed");
    assert_eq!(error.kind, TaskErrorKind::WorkerLost { attempts: 1 });
    assert_eq!(error.message, reason);
    assert!(reactor.lost_reasons.is_empty() && reactor.exit_reasons.is_empty());
}

#[test]
fn a_task_lost_with_a_worker_that_said_nothing_has_no_reason_of_an_earlier_loss() {
    let mut outbox = Outbox::default();
    let mut reactor = reactor(&mut outbox, EventBus::new());
    let task = TaskMessage {
        retries: 1,
        ..TaskMessage::new(1 << CLIENT_TASK_BITS, "f", Vec::new())
    };
    let submit = Message::Submit { tasks: vec![task] };
    reactor.messages(CLIENT, vec![submit], Instant::now(), &mut outbox);
    let exiting = Message::Exiting {
        reason: "memory".to_string(),
    };
    reactor.messages(WORKER, vec![exiting], Instant::now(), &mut outbox);
    reactor.peer_closed(WORKER, &mut outbox);
    // Retried on another worker, which dies without a word.
    let worker = Role::Worker {
        slots: 1,
        data_address: SocketAddr::from(([127, 0, 0, 1], 10)),
        resources: crate::Resources::new(),
        name: None,
        group: None,
        time_left_ms: None,
        max_tasks: None,
        memory: None,
    };
    reactor.peer_joined(3, worker, Instant::now(), &mut outbox);
    assert_eq!(outbox.computes_for(3).len(), 1);
    reactor.peer_closed(3, &mut outbox);
    let error = outbox
        .sent
        .iter()
        .find_map(|(_, message)| match message {
            Message::Failed { error, .. } => Some(error),
            _ => None,
        })
        .expect("not failed");
    assert_eq!(error.kind, TaskErrorKind::WorkerLost { attempts: 2 });
    assert_eq!(error.message, "");
}

#[test]
fn memory_reports_carry_spilled_bytes_and_the_pause_into_the_event_stream() {
    let mut outbox = Outbox::default();
    let events = EventBus::new();
    let read = events.subscribe(16);
    let mut reactor = reactor(&mut outbox, events);
    let report = Message::Memory {
        rss_bytes: 150,
        cpu: Duration::from_millis(5),
        spilled_bytes: 700,
        paused: true,
    };
    reactor.messages(WORKER, vec![report], Instant::now(), &mut outbox);
    let memory = read.drain().into_iter().find_map(|s| match s.event {
        Observed::WorkerMemory {
            rss_bytes,
            spilled_bytes,
            paused,
            ..
        } => Some((rss_bytes, spilled_bytes, paused)),
        _ => None,
    });
    assert_eq!(memory, Some((150, 700, true)));
}
