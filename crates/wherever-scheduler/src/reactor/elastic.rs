//! Workers by name and group, and growing and shrinking the set of workers: the
//! reactor's side of `scale` and `adapt` (retiring whole groups, saying which
//! groups have left, and a snapshot of the queue for deciding how many workers
//! are wanted).

use super::{Comm, Reactor};
use crate::protocol::{Message, MAX_WORKER_NAME};
use crate::{Event, WorkerId};
use std::net::SocketAddr;
use std::time::Instant;

/// The reason a retired worker's departure gives in the event stream.
pub const RETIRED_REASON: &str = "retired";

/// A worker's name and group, as it announced them (or their defaults).
#[derive(Debug, Clone)]
pub(super) struct Identity {
    /// Its name; by default its data address.
    pub(super) name: String,
    /// Its group; by default its name.
    pub(super) group: String,
    /// With a task limit: the tasks sent to it (name, position), for its launcher
    /// to name its job after.
    pub(super) limited_tasks: Vec<(String, u64)>,
    /// The memory limit and thresholds it runs under, when it said.
    pub(super) memory: Option<wherever_core::events::MemoryThresholds>,
}

impl Identity {
    /// The identity of a worker that announced `name` and `group`;
    /// an error naming the field if a name is empty, too long or has control
    /// characters.
    pub(super) fn new(
        name: Option<String>,
        group: Option<String>,
        data_address: SocketAddr,
    ) -> Result<Self, String> {
        for (what, value) in [("name", &name), ("group", &group)] {
            if let Some(text) = value {
                check_name(what, text)?;
            }
        }
        let name = name.unwrap_or_else(|| data_address.to_string());
        let group = group.unwrap_or_else(|| name.clone());
        Ok(Identity {
            name,
            group,
            limited_tasks: Vec::new(),
            memory: None,
        })
    }
}

/// `Ok` if `text` is a usable worker `what` (name or group).
fn check_name(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("the worker's {what} is empty"));
    }
    if text.len() > MAX_WORKER_NAME {
        return Err(format!(
            "the worker's {what} is {} bytes long, more than the {MAX_WORKER_NAME} allowed",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "the worker's {what} {text:?} has control characters"
        ));
    }
    Ok(())
}

/// One connected worker in a [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The scheduler's id for it.
    pub id: WorkerId,
    /// Its name.
    pub name: String,
    /// The group it starts and stops with.
    pub group: String,
    /// Its task slots.
    pub slots: u32,
    /// Tasks assigned to it (running or queued).
    pub processing: usize,
    /// Results it holds, and their bytes.
    pub held: usize,
    /// The bytes of the results it holds.
    pub held_bytes: u64,
    /// Whether it is being retired.
    pub retiring: bool,
    /// For a worker with a task limit (`slurm:per-task`), the tasks sent to it so
    /// far: registered name and position in its client's submission order; empty
    /// for other workers.
    pub limited_tasks: Vec<(String, u64)>,
}

/// How many of the latest tasks sent to workers with a task limit a
/// [`ClusterStatus`] lists (older ones are forgotten).
pub const PLACEMENTS_KEPT: usize = 4096;

/// A task sent to a worker with a task limit (a `slurm:per-task` job's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The worker's group (the job id).
    pub group: String,
    /// The task's registered name.
    pub task: String,
    /// Its position in its client's submission order.
    pub position: u64,
}

/// What `scale` and `adapt` read: the connected workers and the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The connected workers (retiring ones included), by id.
    pub workers: Vec<WorkerStatus>,
    /// Tasks ready to run and waiting for a slot.
    pub ready: usize,
    /// Tasks assigned to workers (running or queued there).
    pub processing: usize,
    /// The latest [`PLACEMENTS_KEPT`] tasks sent to workers with a task limit,
    /// oldest first, also of workers that have left since (a launcher names a
    /// `slurm:per-task` job after its task even when it ran in a moment).
    pub limited_placements: Vec<Placement>,
}

/// The kind of a task named `name` (FNV-1a of the name; never 0), under which the
/// scheduler learns durations.
pub(super) fn kind_of(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

impl Reactor {
    /// Milliseconds on the scheduler's clock at `now` (since the first time the
    /// reactor was told).
    pub(super) fn clock_ms(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_millis() as u64
    }

    /// Tells the scheduler the time, if any worker has a deadline.
    pub(super) fn tick_scheduler(&mut self, now: Instant) {
        if self.has_deadlines {
            let now_ms = self.clock_ms(now);
            self.feed(Event::Tick { now_ms });
        }
    }

    /// Retires every connected worker of `groups` gracefully (see
    /// [`crate::retirement`]): when one is done it is told goodbye and leaves, and
    /// once a group's last worker has left, [`Reactor::take_groups_left`] names it.
    /// Returns how many workers are retiring now for these groups.
    pub fn retire_groups(&mut self, groups: &[String], comm: &mut impl Comm) -> usize {
        let mut ids: Vec<WorkerId> = self
            .identities
            .iter()
            .filter(|(id, identity)| {
                groups.contains(&identity.group) && self.workers.contains_key(id)
            })
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for &worker in &ids {
            self.feed(Event::Retire { worker });
        }
        self.carry_out(comm);
        ids.len()
    }

    /// The groups whose workers were all retired and have left since the last call.
    pub fn take_groups_left(&mut self) -> Vec<String> {
        std::mem::take(&mut self.groups_left)
    }

    /// The connected workers and the queue, for deciding how many workers are wanted.
    pub fn cluster_status(&self) -> ClusterStatus {
        let mut workers = Vec::new();
        let mut processing = 0;
        for info in self.scheduler.workers() {
            processing += info.processing;
            let Some(identity) = self.identities.get(&info.id) else {
                continue;
            };
            workers.push(WorkerStatus {
                limited_tasks: identity.limited_tasks.clone(),
                id: info.id,
                name: identity.name.clone(),
                group: identity.group.clone(),
                slots: info.slots,
                processing: info.processing,
                held: info.held,
                held_bytes: info.held_bytes,
                retiring: info.retiring,
            });
        }
        ClusterStatus {
            workers,
            ready: self.scheduler.ready_count(),
            processing,
            limited_placements: self.limited_placements.iter().cloned().collect(),
        }
    }

    /// Notes that `task` at `position` went to `worker`, which has a task limit.
    pub(super) fn note_limited_placement(&mut self, worker: WorkerId, task: &str, position: u64) {
        let Some(identity) = self.identities.get_mut(&worker) else {
            return;
        };
        let label = (task.to_string(), position);
        if identity.limited_tasks.contains(&label) {
            return; // sent again (a report it never made)
        }
        identity.limited_tasks.push(label);
        if self.limited_placements.len() == PLACEMENTS_KEPT {
            self.limited_placements.pop_front();
        }
        self.limited_placements_made += 1;
        self.limited_placements.push_back(Placement {
            group: identity.group.clone(),
            task: task.to_string(),
            position,
        });
    }

    /// How many tasks went to workers with a task limit so far (a launcher
    /// watching for them reads [`Reactor::cluster_status`] when it grows).
    pub fn limited_placements_made(&self) -> u64 {
        self.limited_placements_made
    }

    /// The scheduler removed retired `worker`: it is told goodbye (it exits with
    /// status 0) and no longer counted; it leaves when its connection closes.
    pub(super) fn worker_retired(&mut self, worker: WorkerId, comm: &mut impl Comm) {
        if let Some(peer) = self.worker_peer(worker) {
            comm.send(peer, Message::Goodbye);
        }
        self.forget_worker_address(worker);
        self.retired.insert(worker);
        self.announce_workers(comm);
    }

    /// Forgets where `worker` is reached (it is no longer sent anything).
    pub(super) fn forget_worker_address(&mut self, worker: WorkerId) {
        if let Some((_, address)) = self.workers.remove(&worker) {
            if self.by_address.get(&address) == Some(&worker) {
                self.by_address.remove(&address);
            }
        }
    }

    /// A worker of `group` left (`retired`: after its retirement): once no worker of
    /// the group is connected and it was retired, the group is reported as left.
    pub(super) fn group_member_left(&mut self, group: String, retired: bool) {
        let others = self.identities.values().any(|i| i.group == group);
        if retired && !others && !self.groups_left.contains(&group) {
            self.groups_left.push(group);
        }
    }
}
