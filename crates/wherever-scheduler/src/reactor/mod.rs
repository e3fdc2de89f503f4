//! The server reactor: the sans-IO core of the scheduler server, as HyperQueue's
//! `tako`. It owns the peers (clients and workers), the task records (what each
//! client submitted, results on their way to it, errors), the messages held until
//! a worker joins and the heartbeat bookkeeping, and it turns the [`Scheduler`]'s
//! commands into messages.
//!
//! Events come in through its methods ([`Reactor::peer_joined`],
//! [`Reactor::messages`], [`Reactor::peer_closed`], [`Reactor::tick`], with the
//! current time passed in as a value); what it wants done goes out through a
//! [`Comm`]: send this message to that peer, disconnect that peer. No sockets, no
//! clocks, no threads: the tokio server only accepts, reads, writes and feeds it.

mod commands;
mod elastic;
#[cfg(test)]
mod elastic_tests;
#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod inner_plan_tests;
mod memory_limits;
#[cfg(test)]
mod memory_limits_tests;
#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod options_tests;
mod records;
mod stored;
#[cfg(test)]
mod task_limit_tests;
#[cfg(test)]
mod tests;

use crate::id_hash::IdBuild;
use crate::protocol::{Message, Role, TaskId, TaskMessage, CLIENT_TASK_BITS, MAX_FORWARDED_EVENTS};
use crate::{Command, Event, Scheduler, SchedulerConfig, TaskSpec, WorkerId};
use elastic::Identity;
pub use elastic::{ClusterStatus, Placement, WorkerStatus, PLACEMENTS_KEPT, RETIRED_REASON};
use records::Records;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wherever_core::events::{Event as Observed, EventBus, Subscription};
use wherever_core::TaskErrorKind;

/// A connection to the server, numbered by the I/O layer; never reused.
pub type PeerId = u64;

/// What the reactor wants done; implemented by the I/O layer (and by tests).
pub trait Comm {
    /// Queue `message` for `peer` (a peer that is gone drops it).
    fn send(&mut self, peer: PeerId, message: Message);
    /// Close the connection to `peer`: the reactor has already forgotten it
    /// (protocol violation or heartbeat timeout, said in `reason`).
    fn disconnect(&mut self, peer: PeerId, reason: &str);
    /// Whether `peer`'s outgoing queue has room for `bytes` more (back-pressure:
    /// a result that does not fit goes without its bytes, and the client fetches
    /// it from a worker when it reads again). Unbounded unless overridden.
    fn has_room(&self, _peer: PeerId, _bytes: usize) -> bool {
        true
    }
}

/// How the reactor behaves.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// The scheduler's knobs.
    pub scheduler: SchedulerConfig,
    /// A peer (worker or client) silent for longer than this is disconnected.
    pub heartbeat_timeout: Duration,
    /// Where the reactor emits task and worker events (see [`wherever_core::events`]);
    /// every reactor made from clones of this config shares it.
    pub events: EventBus,
}

enum PeerKind {
    /// `nests`: whether its inner plan is the one in force.
    Client {
        number: u64,
        nests: bool,
    },
    Worker {
        id: WorkerId,
    },
}

struct Peer {
    kind: PeerKind,
    last_seen: Instant,
}

/// The sans-IO server core; see the [module documentation](self).
pub struct Reactor {
    scheduler: Scheduler,
    heartbeat_timeout: Duration,
    peers: HashMap<PeerId, Peer, IdBuild>,
    workers: HashMap<WorkerId, (PeerId, SocketAddr), IdBuild>,
    /// Workers by data address, to read the holders in missing-data reports.
    by_address: HashMap<SocketAddr, WorkerId>,
    records: Records,
    next_worker: WorkerId,
    next_client: u64,
    commands: Vec<Command>,
    /// Client messages held until a worker joins: a scattered value needs a worker
    /// to live on, and what follows it may depend on it.
    held: Vec<(PeerId, Message)>,
    /// The event stream this reactor emits on.
    events: EventBus,
    /// Clients that asked for the event stream, each with its bounded buffer.
    subscribers: HashMap<PeerId, Subscription, IdBuild>,
    /// What the workers were last told: whether anybody reads the event stream.
    workers_observed: bool,
    /// The inner plan in force (see [`Reactor::peer_joined`]), told to workers.
    inner_plan: Option<String>,
    /// Why connected workers said they exit (`Message::Exiting`), until they leave.
    exit_reasons: HashMap<WorkerId, String, IdBuild>,
    /// Why the last worker a task ran on left, for the error if the task is lost.
    lost_reasons: HashMap<TaskId, String, IdBuild>,
    /// Each connected worker's name, group and deadline (retired ones until they leave).
    identities: HashMap<WorkerId, Identity, IdBuild>,
    /// The memory limit every worker runs under, once the launcher set one for
    /// all ([`Reactor::set_memory_limit`]).
    memory_limit: Option<u64>,
    /// Workers the scheduler retired that are still connected.
    retired: std::collections::HashSet<WorkerId, IdBuild>,
    /// Groups whose last worker left after being retired, not yet taken.
    groups_left: Vec<String>,
    /// The latest tasks sent to workers with a task limit, for their launcher
    /// (see [`ClusterStatus::limited_placements`]).
    limited_placements: std::collections::VecDeque<elastic::Placement>,
    /// How many tasks went to workers with a task limit so far.
    limited_placements_made: u64,
    /// The origin of the scheduler's clock (the first time the reactor was told).
    origin: Option<Instant>,
    /// Whether a worker with a deadline ever joined (the scheduler then needs ticks).
    has_deadlines: bool,
}

/// About how many bytes an event takes on the wire (for the client queue's room).
const EVENT_WIRE_BYTES: usize = 64;

impl Reactor {
    /// A reactor without peers or tasks.
    pub fn new(config: ReactorConfig) -> Self {
        Reactor {
            scheduler: Scheduler::new(config.scheduler),
            heartbeat_timeout: config.heartbeat_timeout,
            peers: HashMap::default(),
            workers: HashMap::default(),
            by_address: HashMap::new(),
            records: Records::default(),
            next_worker: 0,
            next_client: 0,
            commands: Vec::new(),
            held: Vec::new(),
            events: config.events,
            subscribers: HashMap::default(),
            workers_observed: false,
            inner_plan: None,
            exit_reasons: HashMap::default(),
            lost_reasons: HashMap::default(),
            identities: HashMap::default(),
            memory_limit: None,
            retired: Default::default(),
            groups_left: Vec::new(),
            limited_placements: Default::default(),
            limited_placements_made: 0,
            origin: None,
            has_deadlines: false,
        }
    }

    /// The plan nested tasks run under on this scheduler's workers, if a
    /// connected client gave one.
    pub fn inner_plan(&self) -> Option<&str> {
        self.inner_plan.as_deref()
    }

    /// The cluster ends normally: every worker is told to exit now with status 0
    /// ([`Message::Goodbye`]) rather than wait for its scheduler to come back.
    pub fn goodbye(&mut self, comm: &mut impl Comm) {
        for (peer, _) in self.workers.values() {
            comm.send(*peer, Message::Goodbye);
        }
    }

    /// The event stream this reactor emits on (task and worker events).
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The scheduler inside, for inspection.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// How many task records the server keeps (for leak checks).
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// How many peers are connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A peer passed the handshake as `role` at `now`: it is welcomed (a worker
    /// gets a worker id, a client a client number) and clients learn the workers.
    ///
    /// A client's inner plan (the plan its tasks' own tasks run under) becomes the
    /// one in force and is sent to every worker, now and as they join. Workers
    /// serve every client, so while a client's inner plan is in force, a client
    /// with a different one is refused (with a [`Message::Refused`] saying which
    /// plans differ); a client without an inner level is welcome and its nested
    /// tasks run under the one in force. When the last client with the inner plan
    /// leaves, workers go back to running nested tasks on this scheduler.
    pub fn peer_joined(&mut self, peer: PeerId, role: Role, now: Instant, comm: &mut impl Comm) {
        let (kind, id) = match role {
            Role::Worker {
                slots,
                data_address,
                resources,
                name,
                group,
                time_left_ms,
                max_tasks,
                memory,
            } => {
                let checked = Identity::new(name, group, data_address).and_then(|identity| {
                    memory
                        .as_deref()
                        .map_or(Ok(()), memory_limits::check_limits)?;
                    Ok(identity)
                });
                let identity = match checked {
                    Ok(identity) => identity,
                    Err(reason) => {
                        comm.send(
                            peer,
                            Message::Refused {
                                reason: reason.clone(),
                            },
                        );
                        comm.disconnect(peer, &reason);
                        return;
                    }
                };
                self.next_worker += 1;
                let id = self.next_worker;
                self.events.emit_with(|| Observed::WorkerJoined {
                    worker: id,
                    host: data_address.ip().to_string(),
                    slots: slots.max(1),
                    name: identity.name.clone(),
                });
                self.identities.insert(id, identity);
                self.correct_joined_limit(peer, memory.as_deref(), comm);
                if let Some(limits) = memory {
                    self.worker_limits_are(id, *limits);
                }
                self.workers.insert(id, (peer, data_address));
                self.by_address.insert(data_address, id);
                let slots = slots.max(1);
                let resources = match resources.clone().or_default("cpus", f64::from(slots)) {
                    Ok(with_cpus) => with_cpus,
                    Err(_) => resources, // cannot happen: `cpus` is a valid name
                };
                if let Some(max_tasks) = max_tasks {
                    // Before it is added, so that it never gets more at once.
                    self.feed(Event::WorkerTaskLimit {
                        worker: id,
                        max_tasks,
                    });
                }
                self.feed(Event::WorkerAdded {
                    worker: id,
                    slots,
                    resources,
                });
                if let Some(left) = time_left_ms {
                    self.has_deadlines = true;
                    let now_ms = self.clock_ms(now);
                    self.feed(Event::Tick { now_ms });
                    self.feed(Event::WorkerDeadline {
                        worker: id,
                        deadline_ms: now_ms.saturating_add(left),
                    });
                }

                (PeerKind::Worker { id }, id)
            }
            Role::Client { inner_plan } => {
                let nests = match (inner_plan, self.inner_plan.clone()) {
                    (None, _) => false,
                    (Some(asked), Some(in_force)) if asked != in_force => {
                        let reason = format!(
                            "this scheduler's workers run nested tasks under `{in_force}` \
                             (the inner plan of a client still connected), not this \
                             client's `{asked}`: use the same inner levels, or another \
                             scheduler"
                        );
                        comm.send(
                            peer,
                            Message::Refused {
                                reason: reason.clone(),
                            },
                        );
                        comm.disconnect(peer, &reason);
                        return;
                    }
                    (Some(_), Some(_)) => true,
                    (Some(asked), None) => {
                        self.tell_workers_inner_plan(Some(asked), comm);
                        true
                    }
                };
                self.next_client += 1;
                let number = self.next_client;
                (PeerKind::Client { number, nests }, number)
            }
            Role::DataFetch => {
                self.next_client += 1;
                let number = self.next_client;
                (
                    PeerKind::Client {
                        number,
                        nests: false,
                    },
                    number,
                )
            }
        };
        comm.send(peer, Message::Welcome { id });
        if self.workers_observed && matches!(kind, PeerKind::Worker { .. }) {
            // After the welcome, which the worker's handshake expects first.
            comm.send(peer, Message::Observed { on: true });
        }
        if let (PeerKind::Worker { .. }, Some(plan)) = (&kind, &self.inner_plan) {
            comm.send(
                peer,
                Message::InnerPlan {
                    plan: Some(plan.clone()),
                },
            );
        }
        self.peers.insert(
            peer,
            Peer {
                kind,
                last_seen: now,
            },
        );
        self.announce_workers(comm);
        if !self.workers.is_empty() {
            for (from, message) in std::mem::take(&mut self.held) {
                if self.peers.contains_key(&from) {
                    if let Err(reason) = self.on_message(from, message, comm) {
                        self.drop_peer(from, &reason, comm);
                    }
                }
            }
        }
        self.carry_out(comm);
    }

    /// A batch of messages from `peer` arrived at `now`. A protocol violation
    /// disconnects the peer (the rest of its batch is ignored).
    pub fn messages(
        &mut self,
        peer: PeerId,
        messages: Vec<Message>,
        now: Instant,
        comm: &mut impl Comm,
    ) {
        match self.peers.get_mut(&peer) {
            Some(known) => known.last_seen = now,
            None => return,
        }
        self.tick_scheduler(now);
        for message in messages {
            if let Err(reason) = self.on_message(peer, message, comm) {
                self.drop_peer(peer, &reason, comm);
                break;
            }
        }
        self.carry_out(comm);
    }

    /// The connection to `peer` closed or broke: a worker's tasks and results are
    /// lost (and rerun), a client's tasks are cancelled and released.
    pub fn peer_closed(&mut self, peer: PeerId, comm: &mut impl Comm) {
        self.remove_peer(peer, "its connection closed", comm);
        self.carry_out(comm);
    }

    /// The clock says `now`: peers silent for longer than the heartbeat timeout are
    /// disconnected (a worker is told to shut down first; its tasks move elsewhere,
    /// a client's tasks are released), and released records are swept.
    pub fn tick(&mut self, now: Instant, comm: &mut impl Comm) {
        let timeout = self.heartbeat_timeout;
        let silent: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > timeout)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in silent {
            if let Some(Peer {
                kind: PeerKind::Worker { .. },
                ..
            }) = self.peers.get(&peer)
            {
                comm.send(peer, Message::Shutdown);
            }
            let reason = format!("no heartbeat for {:.1} s", timeout.as_secs_f64());
            self.drop_peer(peer, &reason, comm);
        }
        self.records.sweep(&self.scheduler);
        self.tick_scheduler(now);
        self.carry_out(comm);
    }

    fn on_message(
        &mut self,
        peer: PeerId,
        message: Message,
        comm: &mut impl Comm,
    ) -> Result<(), String> {
        let worker = match self.peers.get(&peer).map(|p| &p.kind) {
            Some(PeerKind::Worker { id, .. }) => Some(*id),
            Some(PeerKind::Client { .. }) => None,
            None => return Err("message from an unknown connection".to_string()),
        };
        let scatter_without_workers =
            matches!(message, Message::Scatter { .. }) && self.workers.is_empty();
        if worker.is_none()
            && !matches!(message, Message::Heartbeat)
            && (scatter_without_workers || !self.held.is_empty())
        {
            self.held.push((peer, message));
            return Ok(());
        }
        match (worker, message) {
            (_, Message::Heartbeat) => {}
            (None, Message::Submit { tasks }) => self.on_submit(peer, tasks, comm)?,
            (None, Message::Scatter { task, data }) => self.on_scatter(peer, task, data, comm)?,
            (None, Message::Release { tasks }) => {
                for task in tasks {
                    if self.records.owner(task) == Some(peer) {
                        // Not told when it is done, nor sent its result, from now on.
                        if let Some(record) = self.records.get_mut(task) {
                            record.task.unwant();
                        }
                        self.events.emit_with(|| Observed::TaskReleased { task });
                        self.feed(Event::Release { task });
                        self.records.released(task, &self.scheduler);
                    }
                }
            }
            (None, Message::Unwanted { tasks }) => {
                for task in tasks {
                    if self.records.owner(task) == Some(peer) {
                        // Kept for its dependents until released, but not sent.
                        if let Some(record) = self.records.get_mut(task) {
                            record.task.unwant();
                        }
                        self.records.set_result(task, None);
                    }
                }
            }
            (None, Message::Fetched { task }) => {
                if self.records.owner(task) == Some(peer) {
                    self.feed(Event::Delivered { task });
                }
            }
            (None, Message::Cancel { tasks }) => {
                for task in tasks {
                    if self.records.owner(task) == Some(peer) {
                        self.feed(Event::Cancel { task });
                    }
                }
            }
            (
                Some(worker),
                Message::Finished {
                    task,
                    nbytes,
                    result,
                    ran_for,
                },
            ) => {
                self.records.set_result(task, result);
                if !self.lost_reasons.is_empty() {
                    self.lost_reasons.remove(&task);
                }
                self.events.emit_with(|| Observed::TaskFinished {
                    task,
                    worker: Some(worker),
                    duration: ran_for.unwrap_or_default(),
                    result_bytes: nbytes,
                });
                self.feed(Event::TaskFinished {
                    worker,
                    task,
                    nbytes,
                });
            }
            (Some(worker), Message::TaskFailed { task, error }) => {
                self.records.set_error(task, *error);
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
            (Some(worker), Message::ReplicateFailed { task }) => {
                self.feed(Event::ReplicateFailed { worker, task })
            }
            (
                Some(worker),
                Message::MissingData {
                    task,
                    holders,
                    requester,
                },
            ) => {
                let holders = self.worker_ids(&holders);
                self.feed(Event::MissingData {
                    task,
                    holders,
                    requester: requester.map(|dependent| (worker, dependent)),
                });
            }
            (None, Message::MissingData { task, holders, .. }) => {
                if self.records.owner(task) == Some(peer) {
                    let holders = self.worker_ids(&holders);
                    self.feed(Event::MissingData {
                        task,
                        holders,
                        requester: None,
                    });
                }
            }
            (Some(worker), Message::Secede { task }) => self.feed(Event::Secede { worker, task }),
            (Some(worker), Message::Started { task }) => {
                self.events
                    .emit_with(|| Observed::TaskStarted { task, worker });
            }
            (None, Message::SubscribeEvents { capacity }) => {
                let capacity = capacity.clamp(1, MAX_FORWARDED_EVENTS) as usize;
                self.subscribers
                    .insert(peer, self.events.subscribe(capacity));
            }
            (
                Some(worker),
                Message::Memory {
                    rss_bytes,
                    cpu,
                    spilled_bytes,
                    paused,
                },
            ) => {
                self.events.emit_with(|| Observed::WorkerMemory {
                    worker,
                    rss_bytes,
                    cpu,
                    spilled_bytes,
                    paused,
                });
            }
            (Some(worker), Message::Paused { paused }) => {
                self.feed(Event::WorkerPaused { worker, paused })
            }
            (Some(worker), Message::MemoryLimits { limits }) => {
                memory_limits::check_limits(&limits)
                    .map_err(|why| format!("protocol violation: {why}"))?;
                self.worker_limits_are(worker, limits);
            }
            (Some(worker), Message::Exiting { reason }) => {
                self.exit_reasons.insert(worker, reason);
            }
            (Some(worker), Message::Rejoin { task }) => self.feed(Event::Rejoin { worker, task }),
            (_, other) => return Err(format!("protocol violation: unexpected {}", other.name())),
        }
        Ok(())
    }

    fn on_submit(
        &mut self,
        peer: PeerId,
        tasks: Vec<TaskMessage>,
        comm: &mut impl Comm,
    ) -> Result<(), String> {
        let mut specs = Vec::with_capacity(tasks.len());
        let mut ids = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Err(reason) = self.check_owned(peer, task.id) {
                // What this batch already recorded is not known to the scheduler.
                for id in ids {
                    self.records.remove(id);
                }
                return Err(reason);
            }
            specs.push(
                TaskSpec::new(task.id)
                    .deps(task.deps.iter().copied())
                    .retries(task.retries)
                    .priority(task.priority)
                    .resources(task.resources.clone())
                    .kind(elastic::kind_of(&task.name))
                    .wanted(true),
            );
            ids.push(task.id);
            if self.events.is_observed() {
                let items = if task.chunk {
                    chunk_items(&task.args)
                } else {
                    1
                };
                // A name this executable registers is shared, not copied per task.
                match wherever_core::registry::lookup(&task.name) {
                    Some(entry) => self.events.emit_submitted(task.id, entry.name, items),
                    None => self.events.emit(Observed::TaskSubmitted {
                        task: task.id,
                        name: task.name.clone().into(),
                        group: wherever_core::events::group_of(&task.name)
                            .to_string()
                            .into(),
                        items,
                    }),
                }
            }
            self.records.insert(task, peer);
        }
        if let Err(error) = self
            .scheduler
            .handle(Event::Submit { tasks: specs }, &mut self.commands)
        {
            for task in ids {
                let refused = self.records.new_error(
                    task,
                    TaskErrorKind::Runtime,
                    &format!("the scheduler refused it: {error}"),
                );
                comm.send(
                    peer,
                    Message::Failed {
                        task,
                        error: Box::new(refused),
                    },
                );
                self.records.remove(task);
            }
        }
        Ok(())
    }

    fn on_scatter(
        &mut self,
        peer: PeerId,
        task: TaskId,
        data: Vec<u8>,
        comm: &mut impl Comm,
    ) -> Result<(), String> {
        self.check_owned(peer, task)?;
        let mut workers: Vec<WorkerId> = self.workers.keys().copied().collect();
        workers.sort_unstable();
        for worker in &workers {
            if let Some(&(worker_peer, _)) = self.workers.get(worker) {
                comm.send(
                    worker_peer,
                    Message::Store {
                        task,
                        data: data.clone(),
                    },
                );
            }
        }
        self.records.insert(records::scatter_message(task), peer);
        self.feed(Event::Scattered {
            task,
            workers,
            nbytes: data.len() as u64,
        });
        Ok(())
    }

    /// Checks that `task` is in the id range of the client `peer` and new.
    fn check_owned(&self, peer: PeerId, task: TaskId) -> Result<(), String> {
        let Some(PeerKind::Client { number, .. }) = self.peers.get(&peer).map(|p| &p.kind) else {
            return Err("only clients submit".to_string());
        };
        if task >> CLIENT_TASK_BITS != *number {
            return Err(format!("task id {task} is outside this client's range"));
        }
        if self.records.contains(task) || self.scheduler.state(task).is_some() {
            return Err(format!("task id {task} submitted twice"));
        }
        Ok(())
    }

    fn feed(&mut self, event: Event) {
        // A refused event changes nothing; late or stray reports are normal.
        let _ = self.scheduler.handle(event, &mut self.commands);
    }

    /// Forgets `peer` because of `reason` and tells the I/O layer to close it.
    fn drop_peer(&mut self, peer: PeerId, reason: &str, comm: &mut impl Comm) {
        if self.remove_peer(peer, reason, comm) {
            comm.disconnect(peer, reason);
        }
    }

    /// Forgets `peer`: a worker's tasks and results are lost (and rerun), a
    /// client's tasks are cancelled and released. `false` if it was not known.
    fn remove_peer(&mut self, peer: PeerId, reason: &str, comm: &mut impl Comm) -> bool {
        let Some(gone) = self.peers.remove(&peer) else {
            return false;
        };
        self.held.retain(|(from, _)| *from != peer);
        self.subscribers.remove(&peer);
        match gone.kind {
            PeerKind::Worker { id, .. } => {
                self.forget_worker_address(id);
                let retired = self.retired.remove(&id);
                let exit_reason = self.exit_reasons.remove(&id);
                let left_reason = if retired {
                    RETIRED_REASON.to_string()
                } else {
                    exit_reason.clone().unwrap_or_else(|| reason.to_string())
                };
                let identity = self.identities.remove(&id);
                let name = identity
                    .as_ref()
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                self.events.emit_with(|| Observed::WorkerLeft {
                    worker: id,
                    reason: left_reason,
                    name,
                });
                if let Some(identity) = identity {
                    self.group_member_left(identity.group, retired);
                }
                if !retired {
                    self.note_lost_reason(id, exit_reason);
                    self.feed(Event::WorkerRemoved { worker: id });
                }
            }
            PeerKind::Client { nests, .. } => {
                let still_nesting = self
                    .peers
                    .values()
                    .any(|p| matches!(p.kind, PeerKind::Client { nests: true, .. }));
                if nests && !still_nesting {
                    self.tell_workers_inner_plan(None, comm);
                }
                for task in self.records.owned_by(peer) {
                    self.feed(Event::Cancel { task });
                    self.feed(Event::Release { task });
                    self.records.released(task, &self.scheduler);
                }
            }
        }
        self.announce_workers(comm);
        true
    }

    /// Remembers why worker `id`, leaving now, left (`reason`, if it said) for the
    /// tasks it was running: the error of one that is lost names it.
    fn note_lost_reason(&mut self, id: WorkerId, reason: Option<String>) {
        if reason.is_none() && self.lost_reasons.is_empty() {
            return;
        }
        for task in self.scheduler.assigned_to(id) {
            match &reason {
                Some(reason) => self.lost_reasons.insert(task, reason.clone()),
                None => self.lost_reasons.remove(&task),
            };
        }
    }

    /// Tells the workers when the event stream gains its first reader or loses its
    /// last, so that they report starts and memory only while somebody reads.
    /// When the stream gains its first reader (a dashboard subscribes after the
    /// workers of a `processes` plan joined), it is told of the workers already
    /// connected, as if they joined now.
    fn tell_workers_if_observed(&mut self, comm: &mut impl Comm) {
        let on = self.events.is_observed();
        if on != self.workers_observed {
            self.workers_observed = on;
            if on {
                for info in self.scheduler.workers() {
                    if let Some((_, address)) = self.workers.get(&info.id) {
                        let name = self
                            .identities
                            .get(&info.id)
                            .map(|i| i.name.clone())
                            .unwrap_or_default();
                        self.events.emit_with(|| Observed::WorkerJoined {
                            worker: info.id,
                            host: address.ip().to_string(),
                            slots: info.slots.max(1),
                            name,
                        });
                        self.emit_known_limits(info.id);
                    }
                }
            }
            for (peer, _) in self.workers.values() {
                comm.send(*peer, Message::Observed { on });
            }
        }
    }

    /// Sends each subscribed client the events waiting for it, when its queue has
    /// room (else they wait, and the oldest are dropped if too many): the events of
    /// its own tasks and of the workers, not other clients' tasks.
    fn forward_events(&self, comm: &mut impl Comm) {
        for (peer, events) in &self.subscribers {
            let waiting = events.len();
            if waiting == 0 || !comm.has_room(*peer, waiting * EVENT_WIRE_BYTES) {
                continue;
            }
            let Some(PeerKind::Client { number, .. }) = self.peers.get(peer).map(|p| &p.kind)
            else {
                continue;
            };
            let events: Vec<_> = events
                .drain()
                .into_iter()
                .filter(|stamped| {
                    stamped
                        .event
                        .task()
                        .is_none_or(|task| task >> CLIENT_TASK_BITS == *number)
                })
                .collect();
            if !events.is_empty() {
                comm.send(*peer, Message::Events { events });
            }
        }
    }

    /// Makes `plan` the inner plan in force and tells every worker.
    fn tell_workers_inner_plan(&mut self, plan: Option<String>, comm: &mut impl Comm) {
        self.inner_plan = plan;
        for (peer, _) in self.workers.values() {
            comm.send(
                *peer,
                Message::InnerPlan {
                    plan: self.inner_plan.clone(),
                },
            );
        }
    }

    fn announce_workers(&self, comm: &mut impl Comm) {
        let count = self.workers.len() as u32;
        let slots = self.scheduler.workers().iter().map(|w| w.slots).sum();
        for (peer, known) in &self.peers {
            if matches!(known.kind, PeerKind::Client { .. }) {
                comm.send(*peer, Message::Workers { count, slots });
            }
        }
    }

    fn worker_peer(&self, worker: WorkerId) -> Option<PeerId> {
        self.workers.get(&worker).map(|(peer, _)| *peer)
    }

    /// The workers serving data at `addresses` (unknown ones are left out).
    fn worker_ids(&self, addresses: &[SocketAddr]) -> Vec<WorkerId> {
        addresses
            .iter()
            .filter_map(|address| self.by_address.get(address).copied())
            .collect()
    }

    fn data_addresses(&self, workers: &[WorkerId]) -> Vec<SocketAddr> {
        workers
            .iter()
            .filter_map(|w| self.workers.get(w))
            .map(|(_, address)| *address)
            .collect()
    }

    fn send_to_owner(&self, task: TaskId, message: Message, comm: &mut impl Comm) {
        if let Some(owner) = self.records.owner(task) {
            if self.peers.contains_key(&owner) {
                comm.send(owner, message);
            }
        }
    }

    fn send_to_worker(&self, worker: WorkerId, message: Message, comm: &mut impl Comm) {
        if let Some(peer) = self.worker_peer(worker) {
            comm.send(peer, message);
        }
    }
}

/// How many items a `map` chunk's encoded arguments hold: they are a sequence, whose
/// encoding begins with its length (1 if that cannot be read).
fn chunk_items(args: &[u8]) -> u64 {
    postcard::take_from_bytes::<u64>(args)
        .map(|(items, _)| items.max(1))
        .unwrap_or(1)
}
