//! Property tests of the reactor driven together with the real scheduler: random
//! clients, workers, submissions with dependencies, finishes, failures, releases,
//! cancellations, disconnects and heartbeat timeouts.

use super::*;
use crate::protocol::{Input, INLINE_RESULT_LIMIT};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use wherever_core::{StreamKey, TaskError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the reactor asked for, in order: a message, or `None` to disconnect.
#[derive(Default)]
struct Outbox {
    log: Vec<(PeerId, Option<Message>)>,
    /// Peers whose outgoing queue is full.
    full: HashSet<PeerId>,
}

impl Comm for Outbox {
    fn send(&mut self, peer: PeerId, message: Message) {
        self.log.push((peer, Some(message)));
    }

    fn disconnect(&mut self, peer: PeerId, _reason: &str) {
        self.log.push((peer, None));
    }

    fn has_room(&self, peer: PeerId, _bytes: usize) -> bool {
        !self.full.contains(&peer)
    }
}

struct SimWorker {
    peer: PeerId,
    /// The first `slots` tasks of the queue are running and cannot be stolen.
    slots: usize,
    alive: bool,
    /// Assigned and not yet reported, in order.
    queue: Vec<TaskId>,
    /// The inputs each queued task was sent with.
    inputs: HashMap<TaskId, Vec<Input>>,
    held: HashSet<TaskId>,
    /// Answers to steals, sent with the worker's next report (a round trip later).
    answers: Vec<Message>,
}

struct SimClient {
    peer: PeerId,
    alive: bool,
    number: u64,
    next: u64,
    /// Tasks it still holds futures for (usable as dependencies).
    live: Vec<TaskId>,
    /// Tasks expecting an answer (submitted, not scattered).
    submitted: Vec<TaskId>,
    released: HashSet<TaskId>,
    answers: HashMap<TaskId, u32>,
    /// Tasks answered with `Done` without the result, and where to fetch it.
    fetchable: Vec<(TaskId, Vec<SocketAddr>)>,
    /// Tasks submitted as not wanted (graph intermediates): never `Done`.
    unwanted: HashSet<TaskId>,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Small,
    Large,
    Fail,
}

#[derive(Debug, Clone)]
enum Action {
    AddWorker {
        slots: u32,
    },
    AddClient,
    Submit {
        client: usize,
        tasks: Vec<Vec<usize>>,
        retries: u32,
    },
    Scatter {
        client: usize,
    },
    Work {
        worker: usize,
        pick: usize,
        outcome: Outcome,
    },
    Release {
        client: usize,
        pick: usize,
    },
    Cancel {
        client: usize,
        pick: usize,
    },
    KillWorker {
        worker: usize,
    },
    /// A worker cannot fetch an input of one of its tasks.
    InputMissing {
        worker: usize,
        pick: usize,
    },
    /// A client cannot fetch a large result it was told about.
    ResultMissing {
        client: usize,
        pick: usize,
    },
    LeaveClient {
        client: usize,
    },
    Tick {
        advance_ms: u64,
        heartbeats: u8,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let outcome = prop_oneof![
        6 => Just(Outcome::Small),
        2 => Just(Outcome::Large),
        1 => Just(Outcome::Fail)
    ];
    prop_oneof![
        2 => (1u32..3).prop_map(|slots| Action::AddWorker { slots }),
        1 => Just(Action::AddClient),
        6 => (any::<usize>(), prop::collection::vec(prop::collection::vec(any::<usize>(), 0..3), 1..4), 0u32..3)
            .prop_map(|(client, tasks, retries)| Action::Submit { client, tasks, retries }),
        1 => any::<usize>().prop_map(|client| Action::Scatter { client }),
        10 => (any::<usize>(), any::<usize>(), outcome)
            .prop_map(|(worker, pick, outcome)| Action::Work { worker, pick, outcome }),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(client, pick)| Action::Release { client, pick }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(client, pick)| Action::Cancel { client, pick }),
        1 => any::<usize>().prop_map(|worker| Action::KillWorker { worker }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(worker, pick)| Action::InputMissing { worker, pick }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(client, pick)| Action::ResultMissing { client, pick }),
        1 => any::<usize>().prop_map(|client| Action::LeaveClient { client }),
        2 => (0u64..12_000, any::<u8>())
            .prop_map(|(advance_ms, heartbeats)| Action::Tick { advance_ms, heartbeats }),
    ]
}

fn task_message(id: TaskId, deps: Vec<TaskId>, retries: u32) -> TaskMessage {
    TaskMessage {
        key: StreamKey::from_seed(1),
        seeded: true,
        position: id,
        deps,
        retries,
        ..TaskMessage::new(id, "t", Vec::new())
    }
}

/// The inline result a simulated worker reports for `task`.
fn small_result(task: TaskId) -> Vec<u8> {
    task.to_le_bytes().to_vec()
}

struct Sim {
    reactor: Reactor,
    outbox: Outbox,
    now: Instant,
    next_peer: PeerId,
    workers: Vec<SimWorker>,
    clients: Vec<SimClient>,
    /// Whether some submitted tasks are not wanted by their client.
    intermediates: bool,
}

impl Sim {
    fn new() -> Self {
        Sim {
            reactor: Reactor::new(ReactorConfig {
                scheduler: SchedulerConfig {
                    prefetch_per_worker: Some(2),
                    ..SchedulerConfig::default()
                },
                events: Default::default(),
                heartbeat_timeout: TIMEOUT,
            }),
            outbox: Outbox::default(),
            now: Instant::now(),
            next_peer: 0,
            workers: Vec::new(),
            clients: Vec::new(),
            intermediates: false,
        }
    }

    fn add_worker(&mut self, slots: u32) {
        self.next_peer += 1;
        let peer = self.next_peer;
        self.workers.push(SimWorker {
            peer,
            slots: slots as usize,
            alive: true,
            queue: Vec::new(),
            inputs: HashMap::new(),
            held: HashSet::new(),
            answers: Vec::new(),
        });
        let role = Role::Worker {
            slots,
            data_address: SocketAddr::from(([127, 0, 0, 1], 10_000 + peer as u16)),
            resources: crate::Resources::new(),
            name: None,
            group: None,
            time_left_ms: None,
            max_tasks: None,
            memory: None,
        };
        self.reactor
            .peer_joined(peer, role, self.now, &mut self.outbox);
        self.deliver();
    }

    fn add_client(&mut self) {
        self.next_peer += 1;
        let peer = self.next_peer;
        self.clients.push(SimClient {
            peer,
            alive: true,
            number: 0,
            next: 0,
            live: Vec::new(),
            submitted: Vec::new(),
            released: HashSet::new(),
            answers: HashMap::new(),
            fetchable: Vec::new(),
            unwanted: HashSet::new(),
        });
        self.reactor.peer_joined(
            peer,
            Role::Client { inner_plan: None },
            self.now,
            &mut self.outbox,
        );
        self.deliver();
    }

    fn peer_sends(&mut self, peer: PeerId, messages: Vec<Message>) {
        self.reactor
            .messages(peer, messages, self.now, &mut self.outbox);
        self.deliver();
    }

    /// Hands what the reactor sent to the simulated peers.
    fn deliver(&mut self) {
        for (peer, message) in std::mem::take(&mut self.outbox.log) {
            match message {
                Some(message) => self.receive(peer, message),
                None => self.mark_gone(peer),
            }
        }
    }

    /// Worker `worker` sends its pending steal answers and `report`.
    fn worker_sends(&mut self, worker: usize, report: Option<Message>) {
        let mut batch = std::mem::take(&mut self.workers[worker].answers);
        batch.extend(report);
        if !batch.is_empty() {
            let peer = self.workers[worker].peer;
            self.peer_sends(peer, batch);
        }
    }

    fn mark_gone(&mut self, peer: PeerId) {
        for worker in &mut self.workers {
            if worker.peer == peer {
                worker.alive = false;
            }
        }
        for client in &mut self.clients {
            if client.peer == peer {
                client.alive = false;
            }
        }
    }

    fn receive(&mut self, peer: PeerId, message: Message) {
        if let Some(worker) = self.workers.iter_mut().find(|w| w.peer == peer) {
            assert!(
                worker.alive || matches!(message, Message::Shutdown),
                "message to a gone worker: {message:?}"
            );
            match message {
                Message::Compute { task, inputs } => {
                    for input in &inputs {
                        assert!(
                            !input.holders.is_empty(),
                            "input {} has no holder",
                            input.task
                        );
                    }
                    worker.queue.push(task.id);
                    worker.inputs.insert(task.id, inputs);
                }
                Message::Steal { task } => {
                    let stolen = match worker.queue.iter().position(|t| *t == task) {
                        Some(at) if at >= worker.slots => {
                            worker.queue.remove(at);
                            true
                        }
                        _ => false,
                    };
                    worker.answers.push(Message::StealResponse { task, stolen });
                }
                Message::Drop { task } => worker.queue.retain(|t| *t != task),
                Message::Free { tasks } => {
                    for task in tasks {
                        worker.held.remove(&task);
                    }
                }
                Message::Store { task, .. } => {
                    worker.held.insert(task);
                }
                Message::Welcome { .. } | Message::Shutdown => {}
                other => panic!("unexpected message to a worker: {other:?}"),
            }
            return;
        }
        let client = self
            .clients
            .iter_mut()
            .find(|c| c.peer == peer)
            .expect("messages go to known peers");
        assert!(client.alive, "message to a gone client: {message:?}");
        match message {
            Message::Welcome { id } => client.number = id,
            Message::Workers { .. } => {}
            Message::Done {
                task,
                result,
                holders,
            } => {
                assert!(
                    !client.unwanted.contains(&task),
                    "Done for task {task}, whose result the client does not read"
                );
                assert!(
                    !client.released.contains(&task),
                    "Done for task {task}, which the client released"
                );
                match result {
                    Some(result) => {
                        assert_eq!(result, small_result(task), "the result of another task")
                    }
                    None => {
                        assert!(!holders.is_empty(), "Done without result nor holders");
                        client.fetchable.push((task, holders));
                    }
                }
                *client.answers.entry(task).or_default() += 1;
            }
            Message::Failed { task, .. } => *client.answers.entry(task).or_default() += 1,
            other => panic!("unexpected message to a client: {other:?}"),
        }
    }

    fn alive_client(&self, pick: usize) -> Option<usize> {
        let alive: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].alive)
            .collect();
        (!alive.is_empty()).then(|| alive[pick % alive.len()])
    }

    fn alive_worker(&self, pick: usize) -> Option<usize> {
        let alive: Vec<usize> = (0..self.workers.len())
            .filter(|&w| self.workers[w].alive)
            .collect();
        (!alive.is_empty()).then(|| alive[pick % alive.len()])
    }

    fn new_id(&mut self, client: usize) -> TaskId {
        let c = &mut self.clients[client];
        c.next += 1;
        (c.number << CLIENT_TASK_BITS) + c.next
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::AddWorker { slots } => self.add_worker(slots),
            Action::AddClient => self.add_client(),
            Action::Submit {
                client,
                tasks,
                retries,
            } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                let mut batch = Vec::new();
                for picks in tasks {
                    let id = self.new_id(client);
                    let c = &mut self.clients[client];
                    let mut deps: Vec<TaskId> = Vec::new();
                    if !c.live.is_empty() {
                        for pick in picks {
                            let dep = c.live[pick % c.live.len()];
                            if !deps.contains(&dep) {
                                deps.push(dep);
                            }
                        }
                    }
                    c.live.push(id);
                    c.submitted.push(id);
                    // With intermediates, every third task is one the client does
                    // not read (as a graph's intermediates).
                    let wanted = !(self.intermediates && id.is_multiple_of(3));
                    if !wanted {
                        c.unwanted.insert(id);
                    }
                    batch.push(TaskMessage {
                        wanted,
                        ..task_message(id, deps, retries)
                    });
                }
                let peer = self.clients[client].peer;
                self.peer_sends(peer, vec![Message::Submit { tasks: batch }]);
            }
            Action::Scatter { client } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                let id = self.new_id(client);
                self.clients[client].live.push(id);
                let peer = self.clients[client].peer;
                self.peer_sends(
                    peer,
                    vec![Message::Scatter {
                        task: id,
                        data: vec![1, 2, 3],
                    }],
                );
            }
            Action::Work {
                worker,
                pick,
                outcome,
            } => {
                let Some(worker) = self.alive_worker(worker) else {
                    return;
                };
                let w = &mut self.workers[worker];
                let report = if w.queue.is_empty() {
                    None
                } else {
                    let task = w.queue.remove(pick % w.queue.len());
                    Some(self.report(worker, task, outcome))
                };
                self.worker_sends(worker, report);
            }
            Action::Release { client, pick } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                let c = &mut self.clients[client];
                if c.live.is_empty() {
                    return;
                }
                let task = c.live.swap_remove(pick % c.live.len());
                c.released.insert(task);
                let peer = c.peer;
                self.peer_sends(peer, vec![Message::Release { tasks: vec![task] }]);
            }
            Action::Cancel { client, pick } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                let c = &self.clients[client];
                if c.live.is_empty() {
                    return;
                }
                let task = c.live[pick % c.live.len()];
                let peer = c.peer;
                self.peer_sends(peer, vec![Message::Cancel { tasks: vec![task] }]);
            }
            Action::KillWorker { worker } => {
                let Some(worker) = self.alive_worker(worker) else {
                    return;
                };
                self.workers[worker].alive = false;
                let peer = self.workers[worker].peer;
                self.reactor.peer_closed(peer, &mut self.outbox);
                self.deliver();
            }
            Action::InputMissing { worker, pick } => {
                let Some(worker) = self.alive_worker(worker) else {
                    return;
                };
                let w = &mut self.workers[worker];
                let waiting: Vec<TaskId> = w
                    .queue
                    .iter()
                    .copied()
                    .filter(|t| w.inputs.get(t).is_some_and(|i| !i.is_empty()))
                    .collect();
                if waiting.is_empty() {
                    return;
                }
                let task = waiting[pick % waiting.len()];
                w.queue.retain(|t| *t != task);
                let inputs = w.inputs.remove(&task).unwrap_or_default();
                let input = &inputs[pick % inputs.len()];
                let report = Message::MissingData {
                    task: input.task,
                    holders: input.holders.clone(),
                    requester: Some(task),
                };
                self.worker_sends(worker, Some(report));
            }
            Action::ResultMissing { client, pick } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                let c = &mut self.clients[client];
                if c.fetchable.is_empty() {
                    return;
                }
                let (task, holders) = c.fetchable.swap_remove(pick % c.fetchable.len());
                if c.released.contains(&task) {
                    return;
                }
                // The client waits for the task again.
                *c.answers.get_mut(&task).expect("answered") -= 1;
                let peer = c.peer;
                let report = Message::MissingData {
                    task,
                    holders,
                    requester: None,
                };
                self.peer_sends(peer, vec![report]);
            }
            Action::LeaveClient { client } => {
                let Some(client) = self.alive_client(client) else {
                    return;
                };
                self.clients[client].alive = false;
                let peer = self.clients[client].peer;
                self.reactor.peer_closed(peer, &mut self.outbox);
                self.deliver();
            }
            Action::Tick {
                advance_ms,
                heartbeats,
            } => {
                let peers: Vec<PeerId> = self
                    .workers
                    .iter()
                    .filter(|w| w.alive)
                    .map(|w| w.peer)
                    .chain(self.clients.iter().filter(|c| c.alive).map(|c| c.peer))
                    .collect();
                for peer in peers {
                    if heartbeats & (1 << (peer % 8)) != 0 {
                        self.peer_sends(peer, vec![Message::Heartbeat]);
                    }
                }
                self.now += Duration::from_millis(advance_ms);
                self.reactor.tick(self.now, &mut self.outbox);
                self.deliver();
            }
        }
    }

    /// What a worker reports after running `task`.
    fn report(&mut self, worker: usize, task: TaskId, outcome: Outcome) -> Message {
        match outcome {
            Outcome::Fail => Message::TaskFailed {
                task,
                error: Box::new(TaskError::new(
                    "t",
                    task,
                    wherever_core::TaskErrorKind::Runtime,
                    "boom",
                )),
            },
            Outcome::Small => {
                self.workers[worker].held.insert(task);
                Message::Finished {
                    task,
                    nbytes: 8,
                    result: Some(small_result(task)),
                    ran_for: None,
                }
            }
            Outcome::Large => {
                self.workers[worker].held.insert(task);
                Message::Finished {
                    task,
                    nbytes: INLINE_RESULT_LIMIT as u64 + 1,
                    result: None,
                    ran_for: None,
                }
            }
        }
    }

    /// Every peer sends a heartbeat and every worker runs all it was given (small
    /// results), until nothing is left to run.
    fn drain(&mut self) {
        if self.alive_worker(0).is_none() {
            self.add_worker(1);
        }
        for _ in 0..10_000 {
            for worker in 0..self.workers.len() {
                if self.workers[worker].alive {
                    self.worker_sends(worker, None);
                }
            }
            let Some(worker) = (0..self.workers.len())
                .find(|&w| self.workers[w].alive && !self.workers[w].queue.is_empty())
            else {
                return;
            };
            let task = self.workers[worker].queue.remove(0);
            let report = self.report(worker, task, Outcome::Small);
            self.worker_sends(worker, Some(report));
        }
        panic!("the workers never ran out of work");
    }

    /// A client and a one-slot worker; the client has submitted `tasks` (each the
    /// picks of its dependencies among the ones before it).
    fn with_tasks(tasks: Vec<Vec<usize>>) -> Self {
        let mut sim = Sim::new();
        sim.add_client();
        sim.add_worker(1);
        sim.apply(Action::Submit {
            client: 0,
            tasks,
            retries: 0,
        });
        sim
    }

    /// The first worker reports its first task with `outcome`.
    fn work(&mut self, outcome: Outcome) {
        self.apply(Action::Work {
            worker: 0,
            pick: 0,
            outcome,
        });
    }

    fn check_answers(&self, complete: bool) {
        for client in &self.clients {
            for task in &client.submitted {
                let answers = client.answers.get(task).copied().unwrap_or(0);
                assert!(answers <= 1, "task {task} answered {answers} times");
                if complete
                    && client.alive
                    && !client.released.contains(task)
                    && !client.unwanted.contains(task)
                {
                    assert_eq!(
                        answers, 1,
                        "task {task} of a connected client never answered"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_task_is_answered_once_and_every_record_freed(
        actions in prop::collection::vec(action(), 1..80),
        intermediates in any::<bool>(),
    ) {
        let mut sim = Sim::new();
        sim.intermediates = intermediates;
        sim.add_client();
        for action in actions {
            sim.apply(action);
            sim.check_answers(false);
        }
        // Quiet from now on: peers that are left stay connected.
        sim.now += Duration::from_secs(1);
        sim.drain();
        sim.check_answers(true);
        for client in 0..sim.clients.len() {
            if !sim.clients[client].alive {
                continue;
            }
            let live = std::mem::take(&mut sim.clients[client].live);
            let peer = sim.clients[client].peer;
            sim.peer_sends(peer, vec![Message::Release { tasks: live }]);
        }
        sim.drain();
        sim.reactor.tick(sim.now, &mut sim.outbox);
        sim.deliver();
        prop_assert_eq!(sim.reactor.record_count(), 0);
        prop_assert_eq!(sim.reactor.scheduler().task_count(), 0);
        prop_assert!(sim.reactor.scheduler().check_invariants().is_ok());
    }
}

#[test]
fn a_graph_intermediate_is_forgotten_once_its_dependent_finished() {
    // a <- b: the client drops `a` right after submitting, as a graph does.
    let mut sim = Sim::with_tasks(vec![vec![], vec![0]]);
    let (a, b) = (sim.clients[0].live[0], sim.clients[0].live[1]);
    sim.clients[0].live.retain(|t| *t == b);
    let peer = sim.clients[0].peer;
    sim.peer_sends(peer, vec![Message::Release { tasks: vec![a] }]);
    assert_eq!(sim.reactor.record_count(), 2, "b still needs a");
    sim.drain();
    sim.peer_sends(peer, vec![Message::Release { tasks: vec![b] }]);
    sim.reactor.tick(sim.now, &mut sim.outbox);
    assert_eq!(sim.reactor.record_count(), 0, "released records are kept");
    assert!(sim.clients[0].alive);
}

#[test]
fn a_graph_intermediate_is_not_done_and_its_result_stays_on_its_worker() {
    // a <- b, `a` not wanted: the client hears only of `b`.
    let mut sim = Sim::new();
    sim.add_client();
    sim.add_worker(1);
    let (a, b) = (sim.new_id(0), sim.new_id(0));
    let tasks = vec![
        TaskMessage {
            wanted: false,
            ..task_message(a, vec![], 0)
        },
        task_message(b, vec![a], 0),
    ];
    sim.clients[0].unwanted.insert(a);
    sim.clients[0].submitted.extend([a, b]);
    let peer = sim.clients[0].peer;
    sim.peer_sends(peer, vec![Message::Submit { tasks }]);
    // (A `Done` for `a` fails in `Sim::receive`.)
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers.get(&a), None, "answered");
    assert_eq!(
        sim.reactor.records.result(a),
        None,
        "the intermediate's result is kept for the client"
    );
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers.get(&a), None);
    assert_eq!(sim.clients[0].answers[&b], 1, "the output is not done");
}

#[test]
fn a_task_released_before_it_finished_is_not_done() {
    // a <- b: the client drops `a` (passed on as `b`'s argument) before it ran.
    let mut sim = Sim::with_tasks(vec![vec![], vec![0]]);
    let (a, b) = (sim.clients[0].live[0], sim.clients[0].live[1]);
    sim.clients[0].live.retain(|t| *t == b);
    sim.clients[0].released.insert(a);
    let peer = sim.clients[0].peer;
    sim.peer_sends(peer, vec![Message::Release { tasks: vec![a] }]);
    // (A `Done` for `a` fails in `Sim::receive`.)
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers.get(&a), None, "answered");
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers[&b], 1);
}

#[test]
fn an_unwanted_task_is_not_done_and_stays_until_released() {
    // a <- b: every handle on `a` is gone, only `b` reads it (issue 14 item 3).
    let mut sim = Sim::with_tasks(vec![vec![], vec![0]]);
    let (a, b) = (sim.clients[0].live[0], sim.clients[0].live[1]);
    sim.clients[0].unwanted.insert(a);
    let peer = sim.clients[0].peer;
    sim.peer_sends(peer, vec![Message::Unwanted { tasks: vec![a] }]);
    // (A `Done` for `a` fails in `Sim::receive`.)
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers.get(&a), None, "answered");
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers[&b], 1);
    assert!(
        !sim.reactor.scheduler().who_has(a).is_empty(),
        "an unwanted result is kept until released"
    );
    sim.clients[0].live.retain(|t| *t == b);
    sim.peer_sends(peer, vec![Message::Release { tasks: vec![a] }]);
    sim.drain();
    assert!(sim.reactor.scheduler().who_has(a).is_empty());
    assert!(sim.clients[0].alive);
}

#[test]
fn unwanting_another_clients_task_changes_nothing() {
    let mut sim = Sim::with_tasks(vec![vec![]]);
    sim.add_client();
    let a = sim.clients[0].live[0];
    let other = sim.clients[1].peer;
    sim.peer_sends(
        other,
        vec![Message::Unwanted {
            tasks: vec![a, 999],
        }],
    );
    sim.work(Outcome::Small);
    assert_eq!(sim.clients[0].answers[&a], 1, "the owner is still told");
}

#[test]
fn a_silent_client_is_disconnected_and_its_tasks_released() {
    let mut sim = Sim::with_tasks(vec![vec![]]);
    sim.peer_sends(sim.workers[0].peer, vec![Message::Heartbeat]);
    sim.now += TIMEOUT / 2;
    sim.peer_sends(sim.workers[0].peer, vec![Message::Heartbeat]);
    sim.now += TIMEOUT / 2 + Duration::from_millis(1);
    sim.reactor.tick(sim.now, &mut sim.outbox);
    sim.deliver();
    assert!(!sim.clients[0].alive, "the silent client stays");
    assert!(
        sim.workers[0].alive,
        "the worker that sent heartbeats was dropped"
    );
    sim.drain();
    sim.reactor.tick(sim.now, &mut sim.outbox);
    assert_eq!(sim.reactor.record_count(), 0);
    assert_eq!(sim.reactor.scheduler().task_count(), 0);
}

#[test]
fn a_heartbeat_from_a_client_is_accepted() {
    let mut sim = Sim::new();
    sim.add_client();
    sim.peer_sends(sim.clients[0].peer, vec![Message::Heartbeat]);
    assert!(sim.clients[0].alive);
    assert_eq!(sim.reactor.peer_count(), 1);
}

#[test]
fn a_result_the_client_cannot_fetch_is_recomputed_and_done_again() {
    let mut sim = Sim::with_tasks(vec![vec![]]);
    let task = sim.clients[0].live[0];
    sim.work(Outcome::Large);
    assert_eq!(sim.clients[0].fetchable.len(), 1, "Done with holders");
    sim.apply(Action::ResultMissing { client: 0, pick: 0 });
    assert_eq!(
        sim.workers[0].queue,
        vec![task],
        "the result is recomputed from its lineage"
    );
    sim.work(Outcome::Large);
    assert_eq!(sim.clients[0].fetchable.len(), 1, "Done again");
    assert_eq!(sim.clients[0].answers[&task], 1);
}

#[test]
fn an_input_a_worker_cannot_fetch_is_recomputed_and_its_task_sent_again() {
    let mut sim = Sim::with_tasks(vec![vec![], vec![0]]);
    let (input, task) = (sim.clients[0].live[0], sim.clients[0].live[1]);
    sim.work(Outcome::Small);
    assert_eq!(sim.workers[0].queue, vec![task]);
    sim.apply(Action::InputMissing { worker: 0, pick: 0 });
    assert_eq!(sim.workers[0].queue, vec![input], "the input is recomputed");
    sim.drain();
    assert_eq!(sim.clients[0].answers[&task], 1);
    assert_eq!(
        sim.clients[0].answers[&input], 1,
        "the input's Done is not repeated"
    );
}

#[test]
fn a_client_with_a_full_queue_gets_small_results_without_their_bytes() {
    let mut sim = Sim::with_tasks(vec![vec![], vec![]]);
    sim.work(Outcome::Small);
    assert_eq!(
        sim.clients[0].fetchable.len(),
        0,
        "bytes inline while there is room"
    );
    let mut sim = Sim::with_tasks(vec![vec![]]);
    sim.outbox.full.insert(sim.clients[0].peer);
    sim.work(Outcome::Small);
    assert_eq!(
        sim.clients[0].fetchable.len(),
        1,
        "Done with holders instead"
    );
}
