//! The scheduler server: accepts clients and workers, authenticates them, feeds
//! their messages to the sans-IO [`Scheduler`] and carries its commands out.

use crate::auth::Secret;
use crate::connection::{
    accept_gated, printable, read_batch_within, run_writer, split, HandshakeGate,
};
use crate::protocol::{BuildInfo, Input, Message, Role, TaskId, TaskMessage};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::AbortHandle;
use wherever_core::{TaskError, TaskErrorKind};
use wherever_scheduler::{Command, Event, Scheduler, SchedulerConfig, TaskSpec};

/// How the scheduler server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The build every peer must run; `None`: the first peer's build.
    pub expected_build: Option<BuildInfo>,
    /// A worker silent for this long is considered dead.
    pub heartbeat_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            expected_build: None,
            heartbeat_timeout: Duration::from_secs(30),
        }
    }
}

/// How many tasks a worker may hold queued beyond its slots. Deep enough that a
/// worker is never idle waiting for the round trip to the scheduler (trivial tasks
/// run at ~2x the rate of a prefetch of 1); an idle worker steals queued tasks
/// back, so long tasks still spread over all workers.
pub const PREFETCH_PER_WORKER: u32 = 32;

type ConnId = u64;

enum Incoming {
    Joined {
        conn: ConnId,
        role: Role,
        label: String,
        queue: UnboundedSender<Message>,
        reader: AbortHandle,
    },
    Batch {
        conn: ConnId,
        messages: Vec<Message>,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

enum PeerKind {
    Client { number: u64 },
    Worker { id: u64, data_address: SocketAddr },
}

struct Peer {
    kind: PeerKind,
    label: String,
    queue: UnboundedSender<Message>,
    reader: AbortHandle,
    last_seen: Instant,
}

struct Record {
    message: TaskMessage,
    owner: ConnId,
    result: Option<Vec<u8>>,
    error: Option<TaskError>,
}

/// Serves the scheduler on `listener` until the process ends (or the task is dropped).
pub async fn serve(listener: TcpListener, secret: Secret, options: ServerOptions) {
    let (events, incoming) = unbounded_channel();
    let expected = Arc::new(Mutex::new(options.expected_build.clone()));
    let timeout = options.heartbeat_timeout;
    tokio::spawn(run_core(incoming, timeout));
    let secret = Arc::new(secret);
    let gate = HandshakeGate::new();
    let mut next_conn: ConnId = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_conn += 1;
        let conn = next_conn;
        let (events, secret, expected) = (events.clone(), secret.clone(), expected.clone());
        let ticket = gate.admit();
        tokio::spawn(async move {
            let (mut reader, mut writer) = split(stream);
            let handshake = accept_gated(ticket, &mut reader, &mut writer, &secret, &expected);
            let hello = match handshake.await {
                Ok(hello) => hello,
                Err(reason) => {
                    tracing::warn!("disconnected {peer}: {reason}");
                    return;
                }
            };
            if matches!(hello.role, Role::DataFetch) {
                tracing::warn!("disconnected {peer}: a data fetch is not for the scheduler");
                return;
            }
            let (queue, outgoing) = unbounded_channel();
            tokio::spawn(run_writer(writer, outgoing));
            let label = format!(
                "process {} on {} ({peer})",
                hello.pid,
                printable(&hello.host)
            );
            let events_for_reader = events.clone();
            let read_loop = tokio::spawn(async move {
                let reason = loop {
                    match read_batch_within(&mut reader, timeout).await {
                        Ok(Some(messages)) => {
                            if events_for_reader
                                .send(Incoming::Batch { conn, messages })
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break "connection closed".to_string(),
                        Err(reason) => break reason,
                    }
                };
                let _ = events_for_reader.send(Incoming::Closed { conn, reason });
            });
            let joined = Incoming::Joined {
                conn,
                role: hello.role,
                label,
                queue,
                reader: read_loop.abort_handle(),
            };
            let _ = events.send(joined);
        });
    }
}

async fn run_core(mut incoming: UnboundedReceiver<Incoming>, heartbeat_timeout: Duration) {
    let mut core = Core::new();
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = incoming.recv() => match event {
                Some(event) => core.on_incoming(event),
                None => return,
            },
            _ = check.tick() => core.check_heartbeats(heartbeat_timeout),
        }
    }
}

struct Core {
    scheduler: Scheduler,
    peers: HashMap<ConnId, Peer>,
    workers: HashMap<u64, ConnId>,
    tasks: HashMap<TaskId, Record>,
    next_worker: u64,
    next_client: u64,
    commands: Vec<Command>,
    /// Client messages held until a worker joins: a scattered value needs a worker
    /// to live on, and what follows it may depend on it.
    held: Vec<(ConnId, Message)>,
}

impl Core {
    fn new() -> Self {
        Core {
            scheduler: Scheduler::new(SchedulerConfig {
                prefetch_per_worker: Some(PREFETCH_PER_WORKER),
            }),
            peers: HashMap::new(),
            workers: HashMap::new(),
            tasks: HashMap::new(),
            next_worker: 0,
            next_client: 0,
            commands: Vec::new(),
            held: Vec::new(),
        }
    }

    fn on_incoming(&mut self, event: Incoming) {
        match event {
            Incoming::Joined {
                conn,
                role,
                label,
                queue,
                reader,
            } => self.on_joined(conn, role, label, queue, reader),
            Incoming::Batch { conn, messages } => {
                for message in messages {
                    if let Err(reason) = self.on_message(conn, message) {
                        self.disconnect(conn, &reason);
                        break;
                    }
                }
            }
            Incoming::Closed { conn, reason } => self.disconnect(conn, &reason),
        }
        self.carry_out();
    }

    fn on_joined(
        &mut self,
        conn: ConnId,
        role: Role,
        label: String,
        queue: UnboundedSender<Message>,
        reader: AbortHandle,
    ) {
        let (kind, id) = match role {
            Role::Worker {
                slots,
                data_address,
            } => {
                self.next_worker += 1;
                let id = self.next_worker;
                self.workers.insert(id, conn);
                self.feed(Event::WorkerAdded {
                    worker: id,
                    slots: slots.max(1),
                });
                (PeerKind::Worker { id, data_address }, id)
            }
            _ => {
                self.next_client += 1;
                (
                    PeerKind::Client {
                        number: self.next_client,
                    },
                    self.next_client,
                )
            }
        };
        let _ = queue.send(Message::Welcome { id });
        tracing::info!("joined: {label}");
        self.peers.insert(
            conn,
            Peer {
                kind,
                label,
                queue,
                reader,
                last_seen: Instant::now(),
            },
        );
        self.announce_workers();
        if !self.workers.is_empty() {
            for (conn, message) in std::mem::take(&mut self.held) {
                if self.peers.contains_key(&conn) {
                    if let Err(reason) = self.on_message(conn, message) {
                        self.disconnect(conn, &reason);
                    }
                }
            }
        }
    }

    fn on_message(&mut self, conn: ConnId, message: Message) -> Result<(), String> {
        let peer = self
            .peers
            .get_mut(&conn)
            .ok_or("message from an unknown connection")?;
        peer.last_seen = Instant::now();
        let worker = match peer.kind {
            PeerKind::Worker { id, .. } => Some(id),
            PeerKind::Client { .. } => None,
        };
        let scatter_without_workers =
            matches!(message, Message::Scatter { .. }) && self.workers.is_empty();
        if worker.is_none() && (scatter_without_workers || !self.held.is_empty()) {
            self.held.push((conn, message));
            return Ok(());
        }
        match (worker, message) {
            (None, Message::Submit { tasks }) => self.on_submit(conn, tasks)?,
            (None, Message::Scatter { task, data }) => self.on_scatter(conn, task, data)?,
            (None, Message::Release { tasks }) => {
                for task in &tasks {
                    self.feed(Event::Release { task: *task });
                }
                for task in tasks {
                    self.forget_if_done(task);
                }
            }
            (None, Message::Cancel { tasks }) => {
                for task in tasks {
                    self.feed(Event::Cancel { task });
                }
            }
            (
                Some(worker),
                Message::Finished {
                    task,
                    nbytes,
                    result,
                },
            ) => {
                if let Some(record) = self.tasks.get_mut(&task) {
                    record.result = result;
                }
                self.feed(Event::TaskFinished {
                    worker,
                    task,
                    nbytes,
                });
            }
            (Some(worker), Message::TaskFailed { task, error }) => {
                if let Some(record) = self.tasks.get_mut(&task) {
                    record.error = Some(*error);
                }
                self.feed(Event::TaskErred { worker, task });
            }
            (Some(worker), Message::StealResponse { task, stolen }) => {
                self.feed(Event::StealResponse {
                    worker,
                    task,
                    stolen,
                })
            }
            (Some(worker), Message::Replicated { task }) => {
                self.feed(Event::Replicated { worker, task })
            }
            (_, Message::Heartbeat) => {}
            (Some(worker), Message::Secede { task }) => self.feed(Event::Secede { worker, task }),
            (Some(worker), Message::Rejoin { task }) => self.feed(Event::Rejoin { worker, task }),
            (_, other) => {
                return Err(format!(
                    "protocol violation: unexpected {}",
                    variant_name(&other)
                ))
            }
        }
        Ok(())
    }

    fn on_submit(&mut self, conn: ConnId, tasks: Vec<TaskMessage>) -> Result<(), String> {
        let mut specs = Vec::with_capacity(tasks.len());
        for task in tasks {
            self.check_owned(conn, task.id)?;
            specs.push(
                TaskSpec::new(task.id)
                    .deps(task.deps.clone())
                    .retries(task.retries)
                    .wanted(true),
            );
            self.tasks.insert(
                task.id,
                Record {
                    message: task,
                    owner: conn,
                    result: None,
                    error: None,
                },
            );
        }
        let ids: Vec<TaskId> = specs.iter().map(|spec| spec.id).collect();
        if let Err(error) = self
            .scheduler
            .handle(Event::Submit { tasks: specs }, &mut self.commands)
        {
            for task in ids {
                let refused = self.new_error(
                    task,
                    TaskErrorKind::Runtime,
                    &format!("the scheduler refused it: {error}"),
                );
                self.send_to_owner(
                    task,
                    Message::Failed {
                        task,
                        error: Box::new(refused),
                    },
                );
                self.tasks.remove(&task);
            }
        }
        Ok(())
    }

    fn on_scatter(&mut self, conn: ConnId, task: TaskId, data: Vec<u8>) -> Result<(), String> {
        self.check_owned(conn, task)?;
        let workers: Vec<u64> = self.workers.keys().copied().collect();
        for worker in &workers {
            if let Some(queue) = self.worker_queue(*worker) {
                let _ = queue.send(Message::Store {
                    task,
                    data: data.clone(),
                });
            }
        }
        let message = TaskMessage {
            id: task,
            name: "scatter".to_string(),
            args: Vec::new(),
            key: wherever_core::StreamKey::from_seed(0),
            seeded: false,
            position: 0,
            chunk: false,
            deps: Vec::new(),
            holes: Vec::new(),
            chain: Vec::new(),
            retries: 0,
        };
        self.tasks.insert(
            task,
            Record {
                message,
                owner: conn,
                result: None,
                error: None,
            },
        );
        self.feed(Event::Scattered {
            task,
            workers,
            nbytes: data.len() as u64,
        });
        Ok(())
    }

    /// Checks that `task` is in the id range of the client on `conn` and new.
    fn check_owned(&self, conn: ConnId, task: TaskId) -> Result<(), String> {
        let Some(PeerKind::Client { number }) = self.peers.get(&conn).map(|p| &p.kind) else {
            return Err("only clients submit".to_string());
        };
        if task >> crate::protocol::CLIENT_TASK_BITS != *number {
            return Err(format!("task id {task} is outside this client's range"));
        }
        if self.tasks.contains_key(&task) {
            return Err(format!("task id {task} submitted twice"));
        }
        Ok(())
    }

    fn feed(&mut self, event: Event) {
        if let Err(error) = self.scheduler.handle(event, &mut self.commands) {
            tracing::warn!("scheduler refused an event: {error}");
        }
    }

    fn forget_if_done(&mut self, task: TaskId) {
        if self.scheduler.state(task).is_none() {
            self.tasks.remove(&task);
        }
    }

    fn disconnect(&mut self, conn: ConnId, reason: &str) {
        let Some(peer) = self.peers.remove(&conn) else {
            return;
        };
        peer.reader.abort();
        tracing::warn!("disconnected {}: {reason}", peer.label);
        match peer.kind {
            PeerKind::Worker { id, .. } => {
                if reason != "connection closed" {
                    eprintln!(
                        "wherever scheduler: disconnected worker {}: {reason}",
                        peer.label
                    );
                }
                self.workers.remove(&id);
                self.feed(Event::WorkerRemoved { worker: id });
            }
            PeerKind::Client { .. } => {
                if reason != "connection closed" {
                    eprintln!(
                        "wherever scheduler: disconnected client {}: {reason}",
                        peer.label
                    );
                }
                let owned: Vec<TaskId> = self
                    .tasks
                    .iter()
                    .filter(|(_, r)| r.owner == conn)
                    .map(|(id, _)| *id)
                    .collect();
                for task in &owned {
                    self.feed(Event::Cancel { task: *task });
                    self.feed(Event::Release { task: *task });
                }
                for task in owned {
                    self.forget_if_done(task);
                }
            }
        }
        self.announce_workers();
    }

    fn check_heartbeats(&mut self, timeout: Duration) {
        let silent: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                matches!(p.kind, PeerKind::Worker { .. }) && p.last_seen.elapsed() > timeout
            })
            .map(|(conn, _)| *conn)
            .collect();
        for conn in silent {
            if let Some(peer) = self.peers.get(&conn) {
                let _ = peer.queue.send(Message::Shutdown);
            }
            self.disconnect(conn, &format!("no heartbeat for {} s", timeout.as_secs()));
        }
        self.carry_out();
    }

    fn announce_workers(&self) {
        let count = self.workers.len() as u32;
        let slots = self.scheduler.workers().iter().map(|w| w.slots).sum();
        for peer in self.peers.values() {
            if matches!(peer.kind, PeerKind::Client { .. }) {
                let _ = peer.queue.send(Message::Workers { count, slots });
            }
        }
    }

    fn worker_queue(&self, worker: u64) -> Option<&UnboundedSender<Message>> {
        self.workers
            .get(&worker)
            .and_then(|conn| self.peers.get(conn))
            .map(|p| &p.queue)
    }

    fn data_addresses(&self, workers: &[u64]) -> Vec<SocketAddr> {
        workers
            .iter()
            .filter_map(|w| self.workers.get(w))
            .filter_map(|conn| match self.peers.get(conn).map(|p| &p.kind) {
                Some(PeerKind::Worker { data_address, .. }) => Some(*data_address),
                _ => None,
            })
            .collect()
    }

    fn send_to_owner(&self, task: TaskId, message: Message) {
        if let Some(peer) = self.tasks.get(&task).and_then(|r| self.peers.get(&r.owner)) {
            let _ = peer.queue.send(message);
        }
    }

    fn carry_out(&mut self) {
        let commands = std::mem::take(&mut self.commands);
        for command in &commands {
            match *command {
                Command::Compute {
                    worker,
                    task,
                    ref inputs,
                } => {
                    let Some(record) = self.tasks.get(&task) else {
                        continue;
                    };
                    let inputs = inputs
                        .iter()
                        .map(|(task, holders)| Input {
                            task: *task,
                            holders: self.data_addresses(holders),
                        })
                        .collect();
                    let message = Message::Compute {
                        task: record.message.clone(),
                        inputs,
                    };
                    if let Some(queue) = self.worker_queue(worker) {
                        let _ = queue.send(message);
                    }
                }
                Command::Steal { worker, task } => {
                    if let Some(queue) = self.worker_queue(worker) {
                        let _ = queue.send(Message::Steal { task });
                    }
                }
                Command::Free { worker, task } => {
                    if let Some(queue) = self.worker_queue(worker) {
                        let _ = queue.send(Message::Free { tasks: vec![task] });
                    }
                }
                Command::Cancel { worker, task } => {
                    if let Some(queue) = self.worker_queue(worker) {
                        let _ = queue.send(Message::Drop { task });
                    }
                }
                Command::Done { task } => {
                    let result = self.tasks.get_mut(&task).and_then(|r| r.result.take());
                    let holders = if result.is_some() {
                        Vec::new()
                    } else {
                        self.data_addresses(self.scheduler.who_has(task))
                    };
                    self.send_to_owner(
                        task,
                        Message::Done {
                            task,
                            result,
                            holders,
                        },
                    );
                }
                Command::Erred { task, cause } => {
                    let error = self.error_for(task, cause);
                    self.send_to_owner(
                        task,
                        Message::Failed {
                            task,
                            error: Box::new(error),
                        },
                    );
                }
                Command::Lost { task, attempts } => {
                    let error = self.new_error(task, TaskErrorKind::WorkerLost { attempts }, "");
                    self.send_to_owner(
                        task,
                        Message::Failed {
                            task,
                            error: Box::new(error),
                        },
                    );
                }
                Command::Cancelled { task } => {
                    let error = self.new_error(
                        task,
                        TaskErrorKind::Cancelled,
                        "cancelled before it finished",
                    );
                    self.send_to_owner(
                        task,
                        Message::Failed {
                            task,
                            error: Box::new(error),
                        },
                    );
                }
            }
        }
        self.commands = commands;
        self.commands.clear();
    }

    fn new_error(&self, task: TaskId, kind: TaskErrorKind, message: &str) -> TaskError {
        let (name, position) = self
            .tasks
            .get(&task)
            .map(|r| (r.message.name.as_str(), r.message.position))
            .unwrap_or(("?", 0));
        TaskError::new(name, position, kind, message)
    }

    fn error_for(&self, task: TaskId, cause: TaskId) -> TaskError {
        let cause_error = self.tasks.get(&cause).and_then(|r| r.error.clone());
        if task == cause {
            return cause_error.unwrap_or_else(|| {
                self.new_error(
                    task,
                    TaskErrorKind::Runtime,
                    "failed without an error message",
                )
            });
        }
        let cause_error = cause_error
            .unwrap_or_else(|| self.new_error(cause, TaskErrorKind::Runtime, "was lost"));
        let cause_name = format!("`{}` #{}", cause_error.task, cause_error.position);
        self.new_error(
            task,
            TaskErrorKind::DependencyFailed { cause: cause_name },
            &cause_error.message,
        )
    }
}

fn variant_name(message: &Message) -> &'static str {
    match message {
        Message::Challenge { .. } => "Challenge",
        Message::Hello(_) => "Hello",
        Message::Welcome { .. } => "Welcome",
        Message::Refused { .. } => "Refused",
        Message::Submit { .. } => "Submit",
        Message::Scatter { .. } => "Scatter",
        Message::Store { .. } => "Store",
        Message::Release { .. } => "Release",
        Message::Cancel { .. } => "Cancel",
        Message::Done { .. } => "Done",
        Message::Failed { .. } => "Failed",
        Message::Workers { .. } => "Workers",
        Message::Compute { .. } => "Compute",
        Message::Free { .. } => "Free",
        Message::Steal { .. } => "Steal",
        Message::Drop { .. } => "Drop",
        Message::Finished { .. } => "Finished",
        Message::TaskFailed { .. } => "TaskFailed",
        Message::StealResponse { .. } => "StealResponse",
        Message::Replicated { .. } => "Replicated",
        Message::Heartbeat => "Heartbeat",
        Message::Secede { .. } => "Secede",
        Message::Rejoin { .. } => "Rejoin",
        Message::GetData { .. } => "GetData",
        Message::Data { .. } => "Data",
        Message::Shutdown => "Shutdown",
    }
}
