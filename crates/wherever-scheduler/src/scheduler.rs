//! The [`Scheduler`] itself: its state, the single entry point [`Scheduler::handle`] and
//! the read-only queries. The transitions live in the sibling modules, one concern each.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::dense_table::DenseTable;
use crate::task::{Failure, ReadyKey, Status, Task};
use crate::worker::Worker;
use crate::{
    Command, Event, SchedulerConfig, SchedulerError, TaskId, TaskState, WorkerId, WorkerInfo,
};

/// The scheduler state machine. Feed it [`Event`]s with [`Scheduler::handle`].
#[derive(Debug)]
pub struct Scheduler {
    /// Tuning knobs.
    pub(crate) config: SchedulerConfig,
    /// Every task not forgotten.
    pub(crate) tasks: DenseTable<Task>,
    /// Every worker not removed.
    pub(crate) workers: BTreeMap<WorkerId, Worker>,
    /// Ready tasks, best first (fresh submissions in id order at 8 bytes each).
    pub(crate) ready: crate::ready_set::ReadySet,
    /// Ready tasks that ask for resources no worker with room has free now, best first;
    /// put back into `ready` when resources or room free up ([`Scheduler::unpark_pending`]).
    pub(crate) parked: BTreeSet<ReadyKey>,
    /// Resources or room freed up while tasks are parked: try them again.
    pub(crate) unpark_pending: bool,
    /// Workers with room: (load per slot, id).
    pub(crate) with_room: BTreeSet<(u64, WorkerId)>,
    /// Workers with queued tasks beyond their slots: (stealable count, id).
    pub(crate) victims: BTreeSet<(Reverse<u32>, WorkerId)>,
    /// Slots not occupied by a task, over all workers.
    pub(crate) idle_slots: u64,
    /// Steal requests not answered yet.
    pub(crate) steals_in_flight: u64,
    /// The last sequence number handed out (assignments and holders are ordered by it).
    pub(crate) seq: u64,
    /// How many tasks were made ready again: later ones run first within their tier.
    pub(crate) unlock_count: u64,
    /// Tasks whose result may have become unneeded (to free) or that may be forgotten.
    pub(crate) release_candidates: Vec<TaskId>,
    /// Workers being retired (see [`crate::retirement`]).
    pub(crate) retiring: BTreeSet<WorkerId>,
    /// Durations learned per task kind, and the clock (see [`crate::walltime`]).
    pub(crate) walltime: crate::walltime::Walltime,
    /// The largest result seen per task kind (see [`crate::placement`]'s root rule).
    pub(crate) result_sizes: crate::placement::ResultSizes,
    /// Active tasks whose computation may have become unneeded (to drop).
    pub(crate) abandon_candidates: Vec<TaskId>,
    /// Workers that may have used all the tasks of their limit (see [`crate::task_limit`]).
    pub(crate) spent_candidates: BTreeSet<WorkerId>,
    /// Task limits given before their worker was added.
    pub(crate) limits_before_joining: BTreeMap<WorkerId, u32>,
    /// Tasks whose result's value the client has ([`Event::Delivered`]).
    pub(crate) delivered: crate::id_hash::IdSet,
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
            tasks: DenseTable::default(),
            workers: BTreeMap::new(),
            ready: Default::default(),
            parked: BTreeSet::new(),
            unpark_pending: false,
            with_room: BTreeSet::new(),
            victims: BTreeSet::new(),
            idle_slots: 0,
            steals_in_flight: 0,
            seq: 0,
            unlock_count: 0,
            release_candidates: Vec::new(),
            retiring: BTreeSet::new(),
            walltime: Default::default(),
            result_sizes: Default::default(),
            abandon_candidates: Vec::new(),
            spent_candidates: BTreeSet::new(),
            limits_before_joining: BTreeMap::new(),
            delivered: Default::default(),
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
            Event::WorkerAdded {
                worker,
                slots,
                resources,
            } => self.worker_added(worker, slots, resources)?,
            Event::WorkerRemoved { worker } => self.worker_removed(worker, out)?,
            Event::Retire { worker } => self.retire(worker)?,
            Event::Tick { now_ms } => self.tick(now_ms),
            Event::WorkerDeadline {
                worker,
                deadline_ms,
            } => self.set_deadline(worker, deadline_ms)?,
            Event::ReplicateFailed { worker, task } => self.replicate_failed(worker, task)?,
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
            } => {
                self.known_worker(worker)?;
                self.learn_duration(worker, task);
                self.holds_result(worker, task, Some(nbytes), out);
            }
            Event::TaskErred { worker, task } => self.task_erred(worker, task, out)?,
            Event::Replicated { worker, task } => {
                self.known_worker(worker)?;
                self.holds_result(worker, task, None, out);
            }
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
                self.release_candidates.push(task);
                self.abandon_candidates.push(task);
            }
            Event::Cancel { task } => {
                let t = self
                    .tasks
                    .get(&task)
                    .ok_or(SchedulerError::UnknownTask(task))?;
                if t.status().active() && (!t.ended || t.client_waits()) {
                    self.fail(task, Failure::Cancelled, None, out);
                }
            }
            Event::Secede { worker, task } => self.set_seceded(worker, task, true)?,
            Event::Rejoin { worker, task } => self.set_seceded(worker, task, false)?,
            Event::WorkerPaused { worker, paused } => self.set_paused(worker, paused)?,
            Event::MissingData {
                task,
                holders,
                requester,
            } => self.missing_data(task, holders, requester, out)?,
            Event::WorkerTaskLimit { worker, max_tasks } => {
                self.set_task_limit(worker, max_tasks)?
            }
            Event::Delivered { task } => {
                self.delivered(task)?;
                if self.retiring.is_empty() {
                    // Nothing waits for it: no pass over the queues (one per
                    // inline result would cost every task).
                    return Ok(());
                }
            }
        }
        self.retire_spent_workers();
        self.advance_retirements(out);
        self.release_unneeded(out);
        self.schedule(out);
        self.balance(out);
        Ok(())
    }

    /// The tasks assigned to `worker` (running or queued); empty for an unknown worker.
    pub fn assigned_to(&self, worker: WorkerId) -> Vec<TaskId> {
        self.workers
            .get(&worker)
            .map_or_else(Vec::new, |w| w.processing.values().copied().collect())
    }

    /// The workers holding the result of `task` (empty unless it is in memory).
    pub fn who_has(&self, task: TaskId) -> &[WorkerId] {
        self.tasks.get(&task).map_or(&[], |t| &t.placed().who_has)
    }

    /// The state of `task`; `None` once it is forgotten (or was never known).
    pub fn state(&self, task: TaskId) -> Option<TaskState> {
        self.tasks.get(&task).map(|t| t.status().public())
    }

    /// The worker `task` is assigned to, if it is processing.
    pub fn processing_on(&self, task: TaskId) -> Option<WorkerId> {
        match self.tasks.get(&task)?.status() {
            Status::Processing(w) => Some(w),
            _ => None,
        }
    }

    /// How many times a worker died while running `task`.
    pub fn attempts(&self, task: TaskId) -> Option<u32> {
        self.tasks.get(&task).map(|t| t.placed().attempts)
    }

    /// Whether `task`'s record is still the compact one a submitted task starts with
    /// (no placement part made yet: it was never assigned, held, stolen or re-queued);
    /// `None` for an unknown task. For memory tests.
    pub fn has_compact_record(&self, task: TaskId) -> Option<bool> {
        self.tasks.get(&task).map(Task::is_compact)
    }

    /// How many tasks the scheduler still tracks, in any state (for leak checks).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// How many tasks are ready and wait for a worker with room (or with the
    /// resources they ask for).
    pub fn ready_count(&self) -> usize {
        self.ready.len() + self.parked.len()
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
                resources: w.total.clone(),
                free: w.free.clone(),
                paused: w.paused,
                retiring: w.retiring.is_some(),
            })
            .collect()
    }

    /// The next sequence number.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}
