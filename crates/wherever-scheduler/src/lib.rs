//! The scheduler of `wherever` as a pure, sans-IO state machine.
//!
//! Events go in through [`Scheduler::handle`], commands come out in a `Vec<Command>`:
//! no sockets, no clocks, no threads. The server (in `wherever-cluster`) owns the I/O,
//! turns messages from clients and workers into [`Event`]s and sends the resulting
//! [`Command`]s on. Dask's distributed scheduler is the reference for the states and
//! transitions:
//!
//! * a task is **waiting** while some dependency is not in memory, **ready** when all
//!   are, **processing** once assigned to a worker, **memory** once its result is held
//!   by at least one worker; it ends **erred**, **lost** (retry budget exhausted) or
//!   **cancelled**, or it is **released** (result dropped, spec kept for lineage) and
//!   finally forgotten;
//! * results are reference counted: a result stays while the client wants it or a
//!   dependent has not finished yet;
//! * a worker that dies loses its running tasks (retried up to `retries` times) and its
//!   results, which are recomputed from their lineage when still needed;
//! * idle workers steal queued-but-not-started tasks from busy ones;
//! * a running task that blocks on other tasks (typically subtasks it submitted) can
//!   **secede** ([`Event::Secede`]): it stays processing but stops occupying a slot, so
//!   the worker gets more work and nested tasks never deadlock; [`Event::Rejoin`] makes
//!   it count again (as Dask's `secede`/`rejoin`).
//!
//! Every event costs `O(log n)` or amortised `O(deps)`.

#![warn(missing_docs)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

pub mod protocol;
pub mod reactor;

#[cfg(test)]
mod tests;

/// Identifier of a task, chosen by the caller (the server); unique per cluster and never reused.
pub type TaskId = u64;
/// Identifier of a worker, chosen by the caller; never reused after the worker was removed.
pub type WorkerId = u64;

/// A task submitted by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// The task's id (unique per cluster).
    pub id: TaskId,
    /// Dependencies: each submitted earlier (and not forgotten) or in the same batch, in any order.
    pub deps: Vec<TaskId>,
    /// User priority; higher runs first (default 0).
    pub priority: i64,
    /// How many times the task may be re-run after the worker running it died.
    pub retries: u32,
    /// The client holds a future for the task: keep the result until [`Event::Release`].
    pub wanted: bool,
}

impl TaskSpec {
    /// A wanted task without dependencies, priority 0 and no retries.
    pub fn new(id: TaskId) -> Self {
        TaskSpec {
            id,
            deps: Vec::new(),
            priority: 0,
            retries: 0,
            wanted: true,
        }
    }

    /// Sets the dependencies.
    pub fn deps(mut self, deps: impl IntoIterator<Item = TaskId>) -> Self {
        self.deps = deps.into_iter().collect();
        self
    }

    /// Sets the user priority.
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the retry budget.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets whether the client holds a future for the task.
    pub fn wanted(mut self, wanted: bool) -> Self {
        self.wanted = wanted;
        self
    }
}

/// Something that happened, reported to the scheduler by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A worker joined with `slots` task slots (threads).
    WorkerAdded {
        /// The new worker's id.
        worker: WorkerId,
        /// How many tasks it runs at once (at least 1).
        slots: u32,
    },
    /// A worker died or left: its running tasks and held results are lost.
    WorkerRemoved {
        /// The worker.
        worker: WorkerId,
    },
    /// A client submitted a batch of tasks.
    Submit {
        /// The tasks; dependencies inside the batch may come in any order.
        tasks: Vec<TaskSpec>,
    },
    /// The client put data on workers (no lineage; wanted until released).
    Scattered {
        /// The id under which the data is known.
        task: TaskId,
        /// Workers holding a copy.
        workers: Vec<WorkerId>,
        /// Size of the data.
        nbytes: u64,
    },
    /// A worker finished a task and holds its result.
    TaskFinished {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// Size of the result.
        nbytes: u64,
    },
    /// The user function failed or panicked: not retried; dependents fail.
    TaskErred {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// A worker fetched a copy of a dependency and still holds it.
    Replicated {
        /// The worker that now holds a copy.
        worker: WorkerId,
        /// The task whose result it holds.
        task: TaskId,
    },
    /// The answer to [`Command::Steal`].
    StealResponse {
        /// The worker that was asked.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// `true`: the task was dropped from the queue; `false`: it had started.
        stolen: bool,
    },
    /// The client dropped its last future for the task.
    Release {
        /// The task.
        task: TaskId,
    },
    /// The client cancels the task: if it has not finished, it ends as cancelled (and so do
    /// its unfinished dependents).
    Cancel {
        /// The task.
        task: TaskId,
    },
    /// `task`, running on `worker`, now blocks waiting on other tasks (typically subtasks
    /// it submitted), as Dask's `secede()`.
    ///
    /// The task stays processing on `worker` (its result still comes with
    /// [`Event::TaskFinished`] or [`Event::TaskErred`], and it is re-run like any other
    /// processing task if the worker dies), but it no longer occupies a slot: the worker's
    /// load and capacity (slots + prefetch) are computed without it, so more ready tasks
    /// may be assigned to the worker at once. A seceded task is running, so it is never
    /// asked back with [`Command::Steal`].
    ///
    /// Errors (nothing changes): [`SchedulerError::UnknownWorker`],
    /// [`SchedulerError::UnknownTask`], or [`SchedulerError::NotProcessing`] if the task is
    /// not processing on `worker`. Seceding an already seceded task is a no-op (`Ok`).
    ///
    /// A worker that receives [`Command::Compute`] for a task it is already running
    /// seceded (a re-assignment after a `Cancel` raced with the run) should report
    /// `Secede` again: the new assignment occupies a slot until then.
    Secede {
        /// The worker running the task.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// A seceded `task` on `worker` runs again (Dask's `rejoin()`): it counts toward the
    /// worker's load again. The worker may be over capacity for a while; it gets no new
    /// assignments until it is below. Being known to run, it is not asked back with
    /// [`Command::Steal`] either.
    ///
    /// Errors as for [`Event::Secede`]. Rejoining a task that is processing on `worker`
    /// but not seceded is a no-op (`Ok`).
    Rejoin {
        /// The worker running the task.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
}

/// What the server should do, produced by [`Scheduler::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run `task` on `worker`; `inputs` tells where each dependency's result lives.
    ///
    /// A finish or failure report carries no assignment number, so a worker that already
    /// holds the result of `task` (it finished an earlier assignment whose report may still
    /// be on its way) reports [`Event::TaskFinished`] again instead of queueing it, one
    /// whose user function already failed on `task` reports [`Event::TaskErred`] again, and
    /// one already running it just keeps running it.
    Compute {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// For each dependency (in the spec's order, without duplicates), the workers holding it.
        inputs: Vec<(TaskId, Vec<WorkerId>)>,
    },
    /// Ask `worker` to give back a queued-but-not-started task (answer: [`Event::StealResponse`]).
    Steal {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// `worker` may drop its copy of the result of `task`.
    Free {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// Best effort: `worker` should drop the task; the scheduler already considers it gone
    /// from that worker. A result the worker reports anyway is still accepted or freed.
    Cancel {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// To the client: the wanted result is in memory ([`Scheduler::who_has`] tells where).
    Done {
        /// The task.
        task: TaskId,
    },
    /// To the client: the task failed (`cause == task`) or dependency `cause` failed.
    Erred {
        /// The task.
        task: TaskId,
        /// The task whose failure caused this one.
        cause: TaskId,
    },
    /// To the client: the retry budget is exhausted, the workers running the task kept
    /// dying (Dask's `KilledWorker`); dependents get [`Command::Erred`] with this cause.
    Lost {
        /// The task.
        task: TaskId,
        /// How many times a worker died while running it.
        attempts: u32,
    },
    /// To the client: the task was cancelled (by [`Event::Cancel`] on it or on a dependency).
    Cancelled {
        /// The task.
        task: TaskId,
    },
}

/// The state of a task as seen by [`Scheduler::state`] (a forgotten task has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Some dependency is not in memory yet.
    Waiting,
    /// All dependencies are in memory; waiting for a worker with room.
    Ready,
    /// Assigned to a worker.
    Processing,
    /// The result is held by at least one worker.
    Memory,
    /// The task or a dependency failed.
    Erred,
    /// The retry budget is exhausted (or scattered data lost all its holders).
    Lost,
    /// The task or a dependency was cancelled.
    Cancelled,
    /// The result was dropped; the spec is kept because it may be needed for recomputation.
    Released,
}

/// Tuning knobs of the scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How many tasks a worker may have queued beyond its slots; `None` means as many as it
    /// has slots (so a worker holds at most `2 * slots` assigned tasks).
    pub prefetch_per_worker: Option<u32>,
}

/// A bad event: it was ignored and the state did not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerError {
    /// The event names a task the scheduler does not know (never submitted or forgotten).
    UnknownTask(TaskId),
    /// The event names a worker the scheduler does not know (never added or removed).
    UnknownWorker(WorkerId),
    /// A task id that is already in use (or appears twice in one batch).
    DuplicateTask(TaskId),
    /// A worker id that is already in use.
    DuplicateWorker(WorkerId),
    /// A task depends on a task that was never submitted (or is forgotten).
    UnknownDependency {
        /// The task.
        task: TaskId,
        /// Its unknown dependency.
        dep: TaskId,
    },
    /// The dependencies inside a submitted batch form a cycle through this task.
    Cycle(TaskId),
    /// A worker announced with zero slots.
    ZeroSlots(WorkerId),
    /// [`Event::Secede`] or [`Event::Rejoin`] for a task that is not processing on that worker.
    NotProcessing {
        /// The task.
        task: TaskId,
        /// The worker named by the event.
        worker: WorkerId,
    },
}

impl fmt::Display for SchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedulerError::UnknownTask(t) => write!(f, "unknown task {t}"),
            SchedulerError::UnknownWorker(w) => write!(f, "unknown worker {w}"),
            SchedulerError::DuplicateTask(t) => write!(f, "task id {t} is already in use"),
            SchedulerError::DuplicateWorker(w) => write!(f, "worker id {w} is already in use"),
            SchedulerError::UnknownDependency { task, dep } => {
                write!(f, "task {task} depends on unknown task {dep}")
            }
            SchedulerError::Cycle(t) => write!(f, "dependency cycle through task {t}"),
            SchedulerError::ZeroSlots(w) => write!(f, "worker {w} has zero slots"),
            SchedulerError::NotProcessing { task, worker } => {
                write!(f, "task {task} is not processing on worker {worker}")
            }
        }
    }
}

impl std::error::Error for SchedulerError {}

/// What [`Scheduler::workers`] reports about one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: WorkerId,
    /// Its task slots.
    pub slots: u32,
    /// Tasks assigned to it (running or queued), seceded ones included.
    pub processing: usize,
    /// Of those, the seceded tasks ([`Event::Secede`]): running but not occupying a slot.
    pub seceded: usize,
    /// Results it holds.
    pub held: usize,
    /// Total size of the results it holds.
    pub held_bytes: u64,
}

/// A fast hasher for integer ids (Fibonacci hashing); deterministic.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;
type IdMap<V> = HashMap<u64, V, IdBuild>;
type IdSet = HashSet<u64, IdBuild>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Waiting,
    Ready,
    Processing(WorkerId),
    Memory,
    Released,
    Erred,
    Lost,
    Cancelled,
}

impl St {
    fn active(self) -> bool {
        matches!(self, St::Waiting | St::Ready | St::Processing(_))
    }
    fn failed(self) -> bool {
        matches!(self, St::Erred | St::Lost | St::Cancelled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StealFlag {
    None,
    Pending,
    Refused,
}

#[derive(Clone, Copy, Debug)]
enum Fail {
    Erred(TaskId),
    Lost,
    Cancelled,
}

/// (user priority, tier: 0 = unlocked by a finished dependency or re-run, 1 = fresh, order, id)
type ReadyKey = (Reverse<i64>, u8, u64, TaskId);

#[derive(Debug)]
struct Task {
    deps: Vec<TaskId>,
    dependents: IdSet,
    priority: i64,
    retries: u32,
    wanted: bool,
    /// The client-view terminal state was reached (first finish, or failure).
    ended: bool,
    scattered: bool,
    state: St,
    /// For waiting tasks: dependencies not in memory.
    missing: u32,
    /// Dependents that are waiting, ready or processing.
    unfinished: u32,
    who_has: Vec<WorkerId>,
    /// Sequence number at which each holder was added (parallel to `who_has`).
    who_has_seq: Vec<u64>,
    nbytes: u64,
    attempts: u32,
    cause: TaskId,
    ready_key: Option<ReadyKey>,
    assign_seq: u64,
    steal: StealFlag,
    avoid: Option<WorkerId>,
    /// Processing and seceded: running, but not occupying a slot of its worker.
    seceded: bool,
}

#[derive(Debug)]
struct Worker {
    slots: u32,
    /// Assigned tasks by assignment sequence number.
    processing: BTreeMap<u64, TaskId>,
    held: IdSet,
    held_bytes: u64,
    steal_pending: u32,
    steal_refused: u32,
    /// How many of `processing` are seceded (they do not count toward the load).
    seceded: u32,
}

/// The scheduler state machine. Feed it [`Event`]s with [`Scheduler::handle`].
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    tasks: IdMap<Task>,
    workers: BTreeMap<WorkerId, Worker>,
    ready: BTreeSet<ReadyKey>,
    /// Workers with room: (load, id).
    free: BTreeSet<(u64, WorkerId)>,
    /// Workers with queued tasks beyond their slots: (stealable count, id).
    victims: BTreeSet<(Reverse<u32>, WorkerId)>,
    idle_slots: u64,
    steals_in_flight: u64,
    seq: u64,
    lifo: u64,
    checks: Vec<TaskId>,
    drop_checks: Vec<TaskId>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new(SchedulerConfig::default())
    }
}

impl Scheduler {
    /// A scheduler without tasks or workers.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            tasks: IdMap::default(),
            workers: BTreeMap::new(),
            ready: BTreeSet::new(),
            free: BTreeSet::new(),
            victims: BTreeSet::new(),
            idle_slots: 0,
            steals_in_flight: 0,
            seq: 0,
            lifo: 0,
            checks: Vec::new(),
            drop_checks: Vec::new(),
        }
    }

    /// The single entry point: apply `event`, append the resulting commands to `out`.
    ///
    /// A bad event (unknown ids, duplicates, cycles) is ignored and returned as an error;
    /// the state is unchanged and nothing is appended. Events that are merely late (a finish
    /// from a worker whose task was reassigned, a steal answer for a finished task, a
    /// replica of a released result) are not errors: they are handled and may emit `Free`.
    pub fn handle(&mut self, event: Event, out: &mut Vec<Command>) -> Result<(), SchedulerError> {
        match event {
            Event::WorkerAdded { worker, slots } => self.worker_added(worker, slots)?,
            Event::WorkerRemoved { worker } => self.worker_removed(worker, out)?,
            Event::Submit { tasks } => self.submit(tasks, out)?,
            Event::Scattered {
                task,
                workers,
                nbytes,
            } => self.scattered(task, workers, nbytes)?,
            Event::TaskFinished {
                worker,
                task,
                nbytes,
            } => self.task_finished(worker, task, nbytes, out)?,
            Event::TaskErred { worker, task } => self.task_erred(worker, task, out)?,
            Event::Replicated { worker, task } => self.replicated(worker, task, out)?,
            Event::StealResponse {
                worker,
                task,
                stolen,
            } => self.steal_response(worker, task, stolen)?,
            Event::Release { task } => {
                let t = self
                    .tasks
                    .get_mut(&task)
                    .ok_or(SchedulerError::UnknownTask(task))?;
                t.wanted = false;
                self.checks.push(task);
                self.drop_checks.push(task);
            }
            Event::Cancel { task } => {
                let t = self
                    .tasks
                    .get(&task)
                    .ok_or(SchedulerError::UnknownTask(task))?;
                if t.state.active() && !t.ended {
                    self.fail(task, Fail::Cancelled, None, out);
                }
            }
            Event::Secede { worker, task } => self.set_seceded(worker, task, true)?,
            Event::Rejoin { worker, task } => self.set_seceded(worker, task, false)?,
        }
        self.process_checks(out);
        self.schedule(out);
        self.balance(out);
        Ok(())
    }

    /// The workers holding the result of `task` (empty unless it is in memory).
    pub fn who_has(&self, task: TaskId) -> &[WorkerId] {
        self.tasks.get(&task).map_or(&[], |t| &t.who_has)
    }

    /// The state of `task`; `None` once it is forgotten (or was never known).
    pub fn state(&self, task: TaskId) -> Option<TaskState> {
        self.tasks.get(&task).map(|t| match t.state {
            St::Waiting => TaskState::Waiting,
            St::Ready => TaskState::Ready,
            St::Processing(_) => TaskState::Processing,
            St::Memory => TaskState::Memory,
            St::Released => TaskState::Released,
            St::Erred => TaskState::Erred,
            St::Lost => TaskState::Lost,
            St::Cancelled => TaskState::Cancelled,
        })
    }

    /// The worker `task` is assigned to, if it is processing.
    pub fn processing_on(&self, task: TaskId) -> Option<WorkerId> {
        match self.tasks.get(&task)?.state {
            St::Processing(w) => Some(w),
            _ => None,
        }
    }

    /// How many times a worker died while running `task`.
    pub fn attempts(&self, task: TaskId) -> Option<u32> {
        self.tasks.get(&task).map(|t| t.attempts)
    }

    /// How many tasks the scheduler still tracks, in any state (for leak checks).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// How many tasks are ready and wait for a worker with room.
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Per worker, in id order: slots, assigned tasks (and how many of them seceded), held
    /// results and their bytes.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|(&id, w)| WorkerInfo {
                id,
                slots: w.slots,
                processing: w.processing.len(),
                seceded: w.seceded as usize,
                held: w.held.len(),
                held_bytes: w.held_bytes,
            })
            .collect()
    }

    /// Checks the internal bookkeeping (counters, indexes, cross references); `O(n)`, for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut idle = 0u64;
        let mut in_flight = 0u64;
        for (&w, wk) in &self.workers {
            idle += u64::from(wk.slots).saturating_sub(Self::load(wk));
            let (f, _, v) = self.worker_keys(w);
            if let Some(f) = f {
                if !self.free.contains(&f) {
                    return Err(format!("worker {w} missing from free set"));
                }
            }
            if let Some(v) = v {
                if !self.victims.contains(&v) {
                    return Err(format!("worker {w} missing from victims"));
                }
            }
            let (mut pending, mut refused, mut seceded) = (0, 0, 0);
            for (&s, &t) in &wk.processing {
                let task = self
                    .tasks
                    .get(&t)
                    .ok_or(format!("worker {w} runs unknown {t}"))?;
                if task.state != St::Processing(w) || task.assign_seq != s {
                    return Err(format!("task {t} on worker {w} is {:?}", task.state));
                }
                if task.seceded {
                    seceded += 1;
                    if task.steal != StealFlag::None {
                        return Err(format!("seceded task {t} on {w} under a steal request"));
                    }
                }
                match task.steal {
                    StealFlag::Pending => pending += 1,
                    StealFlag::Refused => refused += 1,
                    StealFlag::None => {}
                }
            }
            if pending != wk.steal_pending || refused != wk.steal_refused {
                return Err(format!("worker {w} steal counters"));
            }
            if seceded != wk.seceded {
                return Err(format!("worker {w} seceded {} != {seceded}", wk.seceded));
            }
            in_flight += u64::from(pending);
            let mut bytes = 0;
            for &t in &wk.held {
                let task = self
                    .tasks
                    .get(&t)
                    .ok_or(format!("worker {w} holds unknown {t}"))?;
                if task.state != St::Memory || !task.who_has.contains(&w) {
                    return Err(format!("worker {w} holds {t} in {:?}", task.state));
                }
                bytes += task.nbytes;
            }
            if bytes != wk.held_bytes {
                return Err(format!("worker {w} held bytes"));
            }
        }
        if idle != self.idle_slots || in_flight != self.steals_in_flight {
            return Err("idle slots or steals in flight".into());
        }
        if self.free.len() != self.workers.values().filter(|w| self.has_room(w)).count() {
            return Err("free set size".into());
        }
        let mut nready = 0;
        for (&id, t) in &self.tasks {
            let unfinished = t
                .dependents
                .iter()
                .filter(|d| self.tasks[*d].state.active())
                .count() as u32;
            if unfinished != t.unfinished {
                return Err(format!(
                    "task {id} unfinished {} != {unfinished}",
                    t.unfinished
                ));
            }
            for d in &t.deps {
                let dep = self.tasks.get(d).ok_or(format!("task {id} dep {d} gone"))?;
                if !dep.dependents.contains(&id) {
                    return Err(format!("task {id} not a dependent of {d}"));
                }
            }
            for d in &t.dependents {
                if !self.tasks[d].deps.contains(&id) {
                    return Err(format!("task {d} listed as dependent of {id}"));
                }
            }
            match t.state {
                St::Waiting => {
                    let missing = t
                        .deps
                        .iter()
                        .filter(|d| self.tasks[*d].state != St::Memory)
                        .count() as u32;
                    if missing != t.missing || missing == 0 {
                        return Err(format!("task {id} missing {} != {missing}", t.missing));
                    }
                }
                St::Ready => {
                    nready += 1;
                    if !t.ready_key.is_some_and(|k| self.ready.contains(&k)) {
                        return Err(format!("ready task {id} not queued"));
                    }
                }
                St::Processing(w)
                    if self
                        .workers
                        .get(&w)
                        .and_then(|wk| wk.processing.get(&t.assign_seq))
                        != Some(&id) =>
                {
                    return Err(format!("task {id} processing on {w} unknown to it"));
                }
                St::Memory => {
                    if t.who_has.is_empty() {
                        return Err(format!("task {id} in memory nowhere"));
                    }
                    for w in &t.who_has {
                        if !self.workers.get(w).is_some_and(|wk| wk.held.contains(&id)) {
                            return Err(format!("task {id} on {w} unknown to it"));
                        }
                    }
                    if !t.wanted && t.unfinished == 0 {
                        return Err(format!("task {id} kept in memory for nothing"));
                    }
                }
                _ => {}
            }
            if t.seceded && !matches!(t.state, St::Processing(_)) {
                return Err(format!("task {id} seceded in {:?}", t.state));
            }
            if t.state != St::Memory && !t.who_has.is_empty() {
                return Err(format!("task {id} has holders in {:?}", t.state));
            }
            if t.state.active() && t.state != St::Waiting {
                if let Some(d) = t.deps.iter().find(|d| self.tasks[*d].state != St::Memory) {
                    return Err(format!("task {id} {:?} but dep {d} not in memory", t.state));
                }
            }
            if matches!(t.state, St::Released | St::Erred | St::Lost | St::Cancelled)
                && !t.wanted
                && t.dependents.is_empty()
            {
                return Err(format!("task {id} should have been forgotten"));
            }
        }
        if nready != self.ready.len() {
            return Err("ready queue size".into());
        }
        Ok(())
    }

    // ----- workers and their indexes -----

    fn capacity(&self, w: &Worker) -> usize {
        (w.slots + self.config.prefetch_per_worker.unwrap_or(w.slots)) as usize
    }

    /// Assigned tasks occupying a slot or queued: seceded tasks do not count.
    fn load(w: &Worker) -> u64 {
        w.processing.len() as u64 - u64::from(w.seceded)
    }

    fn has_room(&self, w: &Worker) -> bool {
        Self::load(w) < self.capacity(w) as u64
    }

    #[allow(clippy::type_complexity)]
    fn worker_keys(
        &self,
        id: WorkerId,
    ) -> (
        Option<(u64, WorkerId)>,
        u64,
        Option<(Reverse<u32>, WorkerId)>,
    ) {
        let w = &self.workers[&id];
        let n = Self::load(w);
        let free = self
            .has_room(w)
            .then(|| ((n << 32) / u64::from(w.slots), id));
        let idle = u64::from(w.slots).saturating_sub(n);
        let stealable =
            n as i64 - i64::from(w.slots) - i64::from(w.steal_pending) - i64::from(w.steal_refused);
        let victim = (stealable > 0).then_some((Reverse(stealable as u32), id));
        (free, idle, victim)
    }

    fn unindex(&mut self, id: WorkerId) {
        let (f, i, v) = self.worker_keys(id);
        if let Some(f) = f {
            self.free.remove(&f);
        }
        self.idle_slots -= i;
        if let Some(v) = v {
            self.victims.remove(&v);
        }
    }

    fn index(&mut self, id: WorkerId) {
        let (f, i, v) = self.worker_keys(id);
        if let Some(f) = f {
            self.free.insert(f);
        }
        self.idle_slots += i;
        if let Some(v) = v {
            self.victims.insert(v);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn worker_added(&mut self, worker: WorkerId, slots: u32) -> Result<(), SchedulerError> {
        if self.workers.contains_key(&worker) {
            return Err(SchedulerError::DuplicateWorker(worker));
        }
        if slots == 0 {
            return Err(SchedulerError::ZeroSlots(worker));
        }
        self.workers.insert(
            worker,
            Worker {
                slots,
                processing: BTreeMap::new(),
                held: IdSet::default(),
                held_bytes: 0,
                steal_pending: 0,
                steal_refused: 0,
                seceded: 0,
            },
        );
        self.index(worker);
        Ok(())
    }

    /// Removes `task` from the processing set of `worker` (which must exist) and clears its
    /// steal flag.
    fn remove_processing(&mut self, worker: WorkerId, task: TaskId) {
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("processing task");
        let w = self.workers.get_mut(&worker).expect("worker");
        w.processing.remove(&t.assign_seq);
        match t.steal {
            StealFlag::Pending => {
                w.steal_pending -= 1;
                self.steals_in_flight -= 1;
            }
            StealFlag::Refused => w.steal_refused -= 1,
            StealFlag::None => {}
        }
        t.steal = StealFlag::None;
        if t.seceded {
            t.seceded = false;
            w.seceded -= 1;
        }
        self.index(worker);
    }

    /// [`Event::Secede`] (`seceded`) and [`Event::Rejoin`] (`!seceded`).
    fn set_seceded(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        seceded: bool,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        let t = self
            .tasks
            .get(&task)
            .ok_or(SchedulerError::UnknownTask(task))?;
        if t.state != St::Processing(worker) {
            return Err(SchedulerError::NotProcessing { task, worker });
        }
        if t.seceded == seceded {
            return Ok(()); // seceding twice, or rejoining a task that did not secede
        }
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("task");
        let w = self.workers.get_mut(&worker).expect("worker");
        t.seceded = seceded;
        if seceded {
            w.seceded += 1;
            // It is running: any steal request for it is moot (the answer, `stolen: false`,
            // will find no pending request and be ignored as late).
            match t.steal {
                StealFlag::Pending => {
                    w.steal_pending -= 1;
                    self.steals_in_flight -= 1;
                }
                StealFlag::Refused => w.steal_refused -= 1,
                StealFlag::None => {}
            }
            t.steal = StealFlag::None;
        } else {
            w.seceded -= 1;
            // Known to be running: never ask for it back.
            t.steal = StealFlag::Refused;
            w.steal_refused += 1;
        }
        self.index(worker);
        Ok(())
    }

    fn add_holder(&mut self, task: TaskId, worker: WorkerId) {
        let seq = self.next_seq();
        let t = self.tasks.get_mut(&task).expect("task");
        if t.who_has.contains(&worker) {
            return;
        }
        t.who_has.push(worker);
        t.who_has_seq.push(seq);
        let w = self.workers.get_mut(&worker).expect("worker");
        w.held.insert(task);
        w.held_bytes += t.nbytes;
    }

    fn worker_removed(
        &mut self,
        worker: WorkerId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        self.unindex(worker);
        let w = self.workers.remove(&worker).expect("worker");
        for &task in w.processing.values() {
            let t = self.tasks.get_mut(&task).expect("processing task");
            if t.steal == StealFlag::Pending {
                self.steals_in_flight -= 1;
            }
            t.steal = StealFlag::None;
            t.seceded = false;
            t.attempts += 1;
            if t.attempts > t.retries {
                self.fail(task, Fail::Lost, None, out);
            } else {
                self.make_ready(task, false);
            }
        }
        let mut held: Vec<TaskId> = w.held.into_iter().collect();
        held.sort_unstable();
        for task in held {
            self.lose_holder(task, worker, out);
        }
        Ok(())
    }

    /// `worker` (already removed) no longer holds the result of `task`.
    fn lose_holder(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        let t = self.tasks.get_mut(&task).expect("held task");
        if let Some(i) = t.who_has.iter().position(|&w| w == worker) {
            t.who_has.remove(i);
            t.who_has_seq.remove(i);
        }
        let mut dependents: Vec<TaskId> = t.dependents.iter().copied().collect();
        dependents.sort_unstable();
        if !t.who_has.is_empty() {
            // Dependents sent to compute before any remaining holder had the data cannot
            // fetch it: pull them back and send them again with fresh locations.
            let seqs = t.who_has_seq.clone();
            for d in dependents {
                let dt = &self.tasks[&d];
                if let St::Processing(dw) = dt.state {
                    if !seqs.iter().any(|&s| s < dt.assign_seq) {
                        self.remove_processing(dw, d);
                        out.push(Command::Cancel {
                            worker: dw,
                            task: d,
                        });
                        self.make_ready(d, false);
                    }
                }
            }
            return;
        }
        if t.scattered {
            self.fail(task, Fail::Lost, None, out);
            return;
        }
        let needed = t.wanted || t.unfinished > 0;
        t.state = St::Released;
        for d in dependents {
            let state = self.tasks[&d].state;
            match state {
                St::Waiting => self.tasks.get_mut(&d).expect("task").missing += 1,
                St::Ready | St::Processing(_) => {
                    if let St::Processing(dw) = state {
                        self.remove_processing(dw, d);
                        out.push(Command::Cancel {
                            worker: dw,
                            task: d,
                        });
                    } else {
                        self.unready(d);
                    }
                    let dt = self.tasks.get_mut(&d).expect("task");
                    dt.state = St::Waiting;
                    dt.missing = 1;
                }
                _ => {}
            }
        }
        if needed {
            self.activate(task, false, out);
        } else {
            self.checks.push(task);
        }
    }

    // ----- tasks -----

    fn submit(
        &mut self,
        specs: Vec<TaskSpec>,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        // Validate the whole batch first: it is accepted or rejected as a unit.
        let mut index: IdMap<usize> = IdMap::default();
        index.reserve(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if self.tasks.contains_key(&s.id) || index.insert(s.id, i).is_some() {
                return Err(SchedulerError::DuplicateTask(s.id));
            }
        }
        let mut indegree = vec![0u32; specs.len()];
        let mut inner: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        for (i, s) in specs.iter().enumerate() {
            for d in &s.deps {
                if let Some(&j) = index.get(d) {
                    indegree[i] += 1;
                    inner[j].push(i);
                } else if !self.tasks.contains_key(d) {
                    return Err(SchedulerError::UnknownDependency {
                        task: s.id,
                        dep: *d,
                    });
                }
            }
        }
        let mut order: Vec<usize> = (0..specs.len()).filter(|&i| indegree[i] == 0).collect();
        let mut k = 0;
        while k < order.len() {
            let i = order[k];
            k += 1;
            for &j in &inner[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    order.push(j);
                }
            }
        }
        if order.len() < specs.len() {
            let i = (0..specs.len()).find(|&i| indegree[i] > 0).expect("cycle");
            return Err(SchedulerError::Cycle(specs[i].id));
        }
        let mut specs: Vec<Option<TaskSpec>> = specs.into_iter().map(Some).collect();
        self.tasks.reserve(specs.len());
        for i in order {
            let s = specs[i].take().expect("spec");
            let mut deps = Vec::with_capacity(s.deps.len());
            for d in s.deps {
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
            if deps.len() > 16 {
                // `contains` above is quadratic only for small lists; recheck big ones cheaply.
                let mut seen = IdSet::default();
                deps.retain(|d| seen.insert(*d));
            }
            for d in &deps {
                self.tasks
                    .get_mut(d)
                    .expect("validated dependency")
                    .dependents
                    .insert(s.id);
            }
            self.tasks.insert(
                s.id,
                Task {
                    deps,
                    dependents: IdSet::default(),
                    priority: s.priority,
                    retries: s.retries,
                    wanted: s.wanted,
                    ended: false,
                    scattered: false,
                    state: St::Released,
                    missing: 0,
                    unfinished: 0,
                    who_has: Vec::new(),
                    who_has_seq: Vec::new(),
                    nbytes: 0,
                    attempts: 0,
                    cause: s.id,
                    ready_key: None,
                    assign_seq: 0,
                    steal: StealFlag::None,
                    avoid: None,
                    seceded: false,
                },
            );
            self.activate(s.id, true, out);
        }
        Ok(())
    }

    fn scattered(
        &mut self,
        task: TaskId,
        workers: Vec<WorkerId>,
        nbytes: u64,
    ) -> Result<(), SchedulerError> {
        if self.tasks.contains_key(&task) {
            return Err(SchedulerError::DuplicateTask(task));
        }
        let known: Vec<WorkerId> = workers
            .iter()
            .copied()
            .filter(|w| self.workers.contains_key(w))
            .collect();
        if known.is_empty() {
            return Err(SchedulerError::UnknownWorker(
                workers.first().copied().unwrap_or_default(),
            ));
        }
        self.tasks.insert(
            task,
            Task {
                deps: Vec::new(),
                dependents: IdSet::default(),
                priority: 0,
                retries: 0,
                wanted: true,
                ended: true,
                scattered: true,
                state: St::Memory,
                missing: 0,
                unfinished: 0,
                who_has: Vec::new(),
                who_has_seq: Vec::new(),
                nbytes,
                attempts: 0,
                cause: task,
                ready_key: None,
                assign_seq: 0,
                steal: StealFlag::None,
                avoid: None,
                seceded: false,
            },
        );
        for w in known {
            self.add_holder(task, w);
        }
        Ok(())
    }

    fn task_finished(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        nbytes: u64,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        match self.tasks.get(&task).map(|t| t.state) {
            Some(St::Memory) => self.add_holder(task, worker),
            Some(s) if s.active() => {
                self.tasks.get_mut(&task).expect("task").nbytes = nbytes;
                self.make_memory(task, worker, out);
            }
            // Forgotten, released or ended meanwhile: the worker may drop it.
            _ => out.push(Command::Free { worker, task }),
        }
        Ok(())
    }

    fn task_erred(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        if self.tasks.get(&task).is_some_and(|t| t.state.active()) {
            self.fail(task, Fail::Erred(task), Some(worker), out);
        }
        Ok(())
    }

    fn replicated(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        out: &mut Vec<Command>,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        match self.tasks.get(&task).map(|t| t.state) {
            Some(St::Memory) => self.add_holder(task, worker),
            // A copy of a result being recomputed: take it as the result.
            Some(s) if s.active() => self.make_memory(task, worker, out),
            _ => out.push(Command::Free { worker, task }),
        }
        Ok(())
    }

    fn steal_response(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        stolen: bool,
    ) -> Result<(), SchedulerError> {
        if !self.workers.contains_key(&worker) {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        let Some(t) = self.tasks.get(&task) else {
            return Ok(());
        };
        if t.state != St::Processing(worker) || t.steal != StealFlag::Pending {
            return Ok(()); // late: the task finished or moved meanwhile
        }
        if stolen {
            self.remove_processing(worker, task);
            self.tasks.get_mut(&task).expect("task").avoid = Some(worker);
            self.make_ready(task, false);
        } else {
            self.unindex(worker);
            self.tasks.get_mut(&task).expect("task").steal = StealFlag::Refused;
            let w = self.workers.get_mut(&worker).expect("worker");
            w.steal_pending -= 1;
            w.steal_refused += 1;
            self.steals_in_flight -= 1;
            self.index(worker);
        }
        Ok(())
    }

    /// Queues `task` (active, all dependencies in memory) for assignment.
    fn make_ready(&mut self, task: TaskId, fresh: bool) {
        self.lifo += 1;
        let lifo = self.lifo;
        let t = self.tasks.get_mut(&task).expect("task");
        let key = if fresh {
            (Reverse(t.priority), 1, task, task)
        } else {
            (Reverse(t.priority), 0, u64::MAX - lifo, task)
        };
        t.state = St::Ready;
        t.missing = 0;
        t.ready_key = Some(key);
        self.ready.insert(key);
    }

    fn unready(&mut self, task: TaskId) {
        if let Some(k) = self.tasks.get_mut(&task).and_then(|t| t.ready_key.take()) {
            self.ready.remove(&k);
        }
    }

    /// Makes a released task active again (or for the first time), recursively
    /// reactivating released dependencies; fails it if a dependency failed.
    fn activate(&mut self, root: TaskId, fresh: bool, out: &mut Vec<Command>) {
        let mut stack = vec![root];
        let mut activated = Vec::new();
        while let Some(task) = stack.pop() {
            let t = &self.tasks[&task];
            if t.state != St::Released {
                continue;
            }
            if t.scattered {
                // Released scattered data has no lineage: it is lost for good.
                self.fail(task, Fail::Lost, None, out);
                continue;
            }
            let failure = t.deps.iter().find_map(|d| {
                let dt = &self.tasks[d];
                match dt.state {
                    St::Erred => Some(Fail::Erred(dt.cause)),
                    St::Lost => Some(Fail::Erred(*d)),
                    St::Cancelled => Some(Fail::Cancelled),
                    _ => None,
                }
            });
            if let Some(f) = failure {
                self.fail(task, f, None, out);
                continue;
            }
            let deps = t.deps.clone();
            let mut missing = 0;
            for d in deps {
                let dt = self.tasks.get_mut(&d).expect("dependency");
                dt.unfinished += 1;
                match dt.state {
                    St::Memory => {}
                    St::Released => {
                        missing += 1;
                        stack.push(d);
                    }
                    _ => missing += 1,
                }
            }
            let t = self.tasks.get_mut(&task).expect("task");
            t.state = St::Waiting;
            t.missing = missing;
            activated.push(task);
        }
        for task in activated {
            let t = &self.tasks[&task];
            if t.state == St::Waiting && t.missing == 0 {
                self.make_ready(task, fresh && task == root);
            }
        }
    }

    /// An active task's result is now held by `worker`.
    fn make_memory(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        match self.tasks[&task].state {
            St::Processing(pw) => {
                self.remove_processing(pw, task);
                if pw != worker {
                    out.push(Command::Cancel { worker: pw, task });
                }
            }
            St::Ready => self.unready(task),
            _ => {}
        }
        let t = self.tasks.get_mut(&task).expect("task");
        t.state = St::Memory;
        t.avoid = None;
        let deps = t.deps.clone();
        if !t.ended {
            t.ended = true;
            if t.wanted {
                out.push(Command::Done { task });
            }
        }
        let dependents: Vec<TaskId> = t.dependents.iter().copied().collect();
        self.add_holder(task, worker);
        for d in deps {
            self.tasks.get_mut(&d).expect("dependency").unfinished -= 1;
            self.checks.push(d);
            self.drop_checks.push(d);
        }
        let mut now_ready = Vec::new();
        for d in dependents {
            let dt = self.tasks.get_mut(&d).expect("dependent");
            if dt.state == St::Waiting {
                dt.missing -= 1;
                if dt.missing == 0 {
                    now_ready.push(d);
                }
            }
        }
        now_ready.sort_unstable();
        for d in now_ready {
            self.make_ready(d, false);
        }
        self.checks.push(task);
    }

    /// Ends `task` (and, transitively, its unfinished dependents) as failed or cancelled.
    /// `source` is the worker that reported the failure (it gets no `Cancel`).
    fn fail(&mut self, task: TaskId, kind: Fail, source: Option<WorkerId>, out: &mut Vec<Command>) {
        let mut work = vec![(task, kind)];
        while let Some((task, kind)) = work.pop() {
            let state = self.tasks[&task].state;
            if state.failed() {
                continue;
            }
            match state {
                St::Processing(w) if self.workers.contains_key(&w) => {
                    self.remove_processing(w, task);
                    if Some(w) != source {
                        out.push(Command::Cancel { worker: w, task });
                    }
                }
                St::Ready => self.unready(task),
                _ => {}
            }
            let t = self.tasks.get_mut(&task).expect("task");
            let (new_state, cause, cmd, next) = match kind {
                Fail::Erred(c) => (St::Erred, c, Command::Erred { task, cause: c }, kind),
                Fail::Lost => (
                    St::Lost,
                    task,
                    Command::Lost {
                        task,
                        attempts: t.attempts,
                    },
                    Fail::Erred(task),
                ),
                Fail::Cancelled => (St::Cancelled, task, Command::Cancelled { task }, kind),
            };
            t.state = new_state;
            t.cause = cause;
            if !t.ended {
                t.ended = true;
                if t.wanted {
                    out.push(cmd);
                }
            }
            let deps = std::mem::take(&mut t.deps);
            let mut dependents: Vec<TaskId> = t.dependents.iter().copied().collect();
            dependents.sort_unstable();
            for d in deps {
                let dt = self.tasks.get_mut(&d).expect("dependency");
                if state.active() {
                    dt.unfinished -= 1;
                    self.drop_checks.push(d);
                }
                dt.dependents.remove(&task);
                self.checks.push(d);
            }
            for d in dependents.into_iter().rev() {
                if self.tasks[&d].state.active() {
                    work.push((d, next));
                }
            }
            self.checks.push(task);
        }
    }

    /// Applies the deferred reference-counting decisions: free unneeded results, drop
    /// unneeded computations, forget what nothing can need any more.
    fn process_checks(&mut self, out: &mut Vec<Command>) {
        loop {
            if let Some(task) = self.drop_checks.pop() {
                let Some(t) = self.tasks.get(&task) else {
                    continue;
                };
                if !(t.state.active() && !t.wanted && t.unfinished == 0) {
                    continue;
                }
                match t.state {
                    St::Processing(w) => {
                        self.remove_processing(w, task);
                        out.push(Command::Cancel { worker: w, task });
                    }
                    St::Ready => self.unready(task),
                    _ => {}
                }
                let t = self.tasks.get_mut(&task).expect("task");
                t.state = St::Released;
                for d in t.deps.clone() {
                    self.tasks.get_mut(&d).expect("dependency").unfinished -= 1;
                    self.drop_checks.push(d);
                    self.checks.push(d);
                }
                self.checks.push(task);
            } else if let Some(task) = self.checks.pop() {
                let Some(t) = self.tasks.get_mut(&task) else {
                    continue;
                };
                if t.state == St::Memory && !t.wanted && t.unfinished == 0 {
                    t.state = St::Released;
                    let holders = std::mem::take(&mut t.who_has);
                    t.who_has_seq.clear();
                    let nbytes = t.nbytes;
                    for w in holders {
                        let wk = self.workers.get_mut(&w).expect("holder");
                        wk.held.remove(&task);
                        wk.held_bytes -= nbytes;
                        out.push(Command::Free { worker: w, task });
                    }
                    self.checks.push(task);
                } else if matches!(t.state, St::Released | St::Erred | St::Lost | St::Cancelled)
                    && !t.wanted
                    && t.dependents.is_empty()
                {
                    let t = self.tasks.remove(&task).expect("task");
                    for d in t.deps {
                        if let Some(dt) = self.tasks.get_mut(&d) {
                            dt.dependents.remove(&task);
                            self.checks.push(d);
                        }
                    }
                }
            } else {
                break;
            }
        }
    }

    // ----- assignment and stealing -----

    /// Assigns ready tasks, best first, while some worker has room.
    fn schedule(&mut self, out: &mut Vec<Command>) {
        while let Some(&key) = self.ready.first() {
            if self.free.is_empty() {
                break;
            }
            self.ready.remove(&key);
            let task = key.3;
            self.tasks.get_mut(&task).expect("ready task").ready_key = None;
            let worker = self.pick_worker(task);
            self.assign(task, worker, out);
        }
    }

    /// The worker with room holding the most input bytes (ties: least loaded, lowest id);
    /// without such a holder, the least loaded worker with room.
    fn pick_worker(&self, task: TaskId) -> WorkerId {
        let t = &self.tasks[&task];
        let mut bytes: Vec<(WorkerId, u64)> = Vec::new();
        for d in &t.deps {
            let dt = &self.tasks[d];
            for &h in &dt.who_has {
                if Some(h) == t.avoid {
                    continue;
                }
                match bytes.iter_mut().find(|(w, _)| *w == h) {
                    Some((_, b)) => *b += dt.nbytes,
                    None => bytes.push((h, dt.nbytes)),
                }
            }
        }
        let mut best: Option<(u64, Reverse<(u64, WorkerId)>)> = None;
        for (w, b) in bytes {
            if b == 0 {
                continue;
            }
            let (f, _, _) = self.worker_keys(w);
            if let Some(f) = f {
                let cand = (b, Reverse(f));
                if best.is_none_or(|x| cand > x) {
                    best = Some(cand);
                }
            }
        }
        if let Some((_, Reverse((_, w)))) = best {
            return w;
        }
        let mut it = self.free.iter();
        let first = it.next().expect("a worker with room").1;
        if Some(first) == t.avoid {
            if let Some(&(_, second)) = it.next() {
                return second;
            }
        }
        first
    }

    fn assign(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        let seq = self.next_seq();
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("task");
        t.state = St::Processing(worker);
        t.assign_seq = seq;
        t.avoid = None;
        t.steal = StealFlag::None;
        t.seceded = false;
        let deps = t.deps.clone();
        self.workers
            .get_mut(&worker)
            .expect("worker")
            .processing
            .insert(seq, task);
        self.index(worker);
        let inputs = deps
            .into_iter()
            .map(|d| (d, self.tasks[&d].who_has.clone()))
            .collect();
        out.push(Command::Compute {
            worker,
            task,
            inputs,
        });
    }

    /// With nothing ready and idle slots somewhere, ask busy workers for queued tasks back.
    fn balance(&mut self, out: &mut Vec<Command>) {
        if !self.ready.is_empty() {
            return;
        }
        while self.steals_in_flight < self.idle_slots {
            let Some(&(_, victim)) = self.victims.first() else {
                break;
            };
            let w = &self.workers[&victim];
            let task = w.processing.values().rev().copied().find(|t| {
                let t = &self.tasks[t];
                t.steal == StealFlag::None && !t.seceded
            });
            let Some(task) = task else {
                break;
            };
            self.unindex(victim);
            self.tasks.get_mut(&task).expect("task").steal = StealFlag::Pending;
            self.workers.get_mut(&victim).expect("worker").steal_pending += 1;
            self.steals_in_flight += 1;
            self.index(victim);
            out.push(Command::Steal {
                worker: victim,
                task,
            });
        }
    }
}
