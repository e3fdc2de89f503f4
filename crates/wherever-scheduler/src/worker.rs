//! A worker's record inside the scheduler, and the indexes that find workers with room
//! (for placement) and workers with stealable tasks (for balancing).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::id_hash::IdSet;
use crate::per_worker::bump;
use crate::task::{StealFlag, Task};
use crate::{Resources, Scheduler, SchedulerError, TaskId, WorkerId};

/// The scheduler's record of one worker.
#[derive(Debug)]
pub(crate) struct Worker {
    /// Tasks it runs at once.
    pub(crate) slots: u32,
    /// Assigned tasks by assignment sequence number.
    pub(crate) processing: BTreeMap<u64, TaskId>,
    /// Results it holds.
    pub(crate) held: IdSet,
    /// Total size of the results it holds.
    pub(crate) held_bytes: u64,
    /// Assigned tasks with a steal request in flight.
    pub(crate) steal_pending: u32,
    /// Assigned tasks it refused to give back (they run).
    pub(crate) steal_refused: u32,
    /// How many of `processing` are seceded (they do not count toward the load).
    pub(crate) seceded: u32,
    /// The resources it advertised.
    pub(crate) total: Resources,
    /// Those not held by tasks assigned to it.
    pub(crate) free: Resources,
    /// Whether it had room when last indexed (gaining room lets parked tasks try again).
    pub(crate) had_room: bool,
    /// Over its memory pause threshold ([`crate::Event::WorkerPaused`]): no room, no idle
    /// slots, until it resumes.
    pub(crate) paused: bool,
    /// Set while it is being retired: it gets no new tasks (see [`crate::retirement`]).
    pub(crate) retiring: Option<crate::retirement::Retiring>,
    /// When it must be gone, on the scheduler's clock (ms; see [`crate::walltime`]).
    pub(crate) deadline_ms: Option<u64>,
    /// The scheduler's clock at its last finish report (ms).
    pub(crate) last_finish_ms: u64,
    /// How many more tasks it takes, if it has a limit (see [`crate::task_limit`]).
    pub(crate) tasks_left: Option<u32>,
}

impl Worker {
    /// A worker with `slots` slots and `resources`, nothing assigned or held.
    fn new(slots: u32, resources: Resources) -> Self {
        Worker {
            slots,
            processing: BTreeMap::new(),
            held: IdSet::default(),
            held_bytes: 0,
            steal_pending: 0,
            steal_refused: 0,
            seceded: 0,
            free: resources.clone(),
            total: resources,
            had_room: false,
            paused: false,
            retiring: None,
            deadline_ms: None,
            last_finish_ms: 0,
            tasks_left: None,
        }
    }

    /// Assigned tasks occupying a slot or queued: seceded tasks do not count.
    pub(crate) fn load(&self) -> u64 {
        self.processing.len() as u64 - u64::from(self.seceded)
    }

    /// Slots not occupied by a task, where new work could run now (none while
    /// paused; no more than the tasks its limit still allows).
    pub(crate) fn idle_slots(&self) -> u64 {
        if self.paused {
            0
        } else {
            let idle = u64::from(self.slots).saturating_sub(self.load());
            self.tasks_left
                .map_or(idle, |left| idle.min(u64::from(left)))
        }
    }
}

/// Where a worker sits in the scheduler's worker indexes.
pub(crate) struct IndexKeys {
    /// Its key in the set of workers with room (`(load per slot, id)`), if it has room.
    pub(crate) room: Option<(u64, WorkerId)>,
    /// Its slots not occupied by a task.
    pub(crate) idle_slots: u64,
    /// Its key in the set of steal victims (`(stealable tasks, id)`), if it has any.
    pub(crate) victim: Option<(Reverse<u32>, WorkerId)>,
}

/// Forgets the steal request or refusal on `task` (assigned to `worker`, whose id is `id`),
/// keeping the counters of both and the scheduler's `steals_in_flight` in step. The answer
/// to a request forgotten while pending is still to come: it will be stale.
pub(crate) fn clear_steal(
    task: &mut Task,
    worker: &mut Worker,
    id: WorkerId,
    steals_in_flight: &mut u64,
) {
    match task.placed().steal {
        StealFlag::Pending => {
            worker.steal_pending -= 1;
            *steals_in_flight -= 1;
            bump(&mut task.rare_mut().stale_steal_answers, id);
        }
        StealFlag::Refused => worker.steal_refused -= 1,
        StealFlag::None => {}
    }
    task.placed_mut().steal = StealFlag::None;
}

impl Scheduler {
    /// How many tasks `w` may have assigned (slots + prefetch).
    pub(crate) fn capacity(&self, w: &Worker) -> usize {
        (w.slots + self.config.prefetch_per_worker.unwrap_or(w.slots)) as usize
    }

    /// Whether `w` may get another assignment (never while it is paused or retiring,
    /// nor once it has used its task limit).
    pub(crate) fn has_room(&self, w: &Worker) -> bool {
        !w.paused
            && w.retiring.is_none()
            && w.tasks_left != Some(0)
            && w.load() < self.capacity(w) as u64
    }

    /// `Ok` if `worker` is known (added and not removed).
    pub(crate) fn known_worker(&self, worker: WorkerId) -> Result<(), SchedulerError> {
        if self.workers.contains_key(&worker) {
            Ok(())
        } else {
            Err(SchedulerError::UnknownWorker(worker))
        }
    }

    /// Where worker `id` belongs in the indexes, from its current counters.
    pub(crate) fn index_keys(&self, id: WorkerId) -> IndexKeys {
        let w = &self.workers[&id];
        let n = w.load();
        let room = self
            .has_room(w)
            .then(|| ((n << 32) / u64::from(w.slots), id));
        if w.retiring.is_some() {
            // It takes no work and its queued tasks are asked back by its retirement.
            return IndexKeys {
                room: None,
                idle_slots: 0,
                victim: None,
            };
        }
        let idle_slots = w.idle_slots();
        let stealable =
            n as i64 - i64::from(w.slots) - i64::from(w.steal_pending) - i64::from(w.steal_refused);
        let victim = (stealable > 0).then_some((Reverse(stealable as u32), id));
        IndexKeys {
            room,
            idle_slots,
            victim,
        }
    }

    /// Takes worker `id` out of the indexes, before its counters change.
    pub(crate) fn unindex(&mut self, id: WorkerId) {
        let keys = self.index_keys(id);
        if let Some(k) = keys.room {
            self.with_room.remove(&k);
        }
        self.idle_slots -= keys.idle_slots;
        if let Some(k) = keys.victim {
            self.victims.remove(&k);
        }
    }

    /// Puts worker `id` back into the indexes, after its counters changed.
    pub(crate) fn index(&mut self, id: WorkerId) {
        let keys = self.index_keys(id);
        let w = self.workers.get_mut(&id).expect("worker");
        if keys.room.is_some() && !w.had_room && !self.parked.is_empty() {
            self.unpark_pending = true;
        }
        w.had_room = keys.room.is_some();
        if let Some(k) = keys.room {
            self.with_room.insert(k);
        }
        self.idle_slots += keys.idle_slots;
        if let Some(k) = keys.victim {
            self.victims.insert(k);
        }
    }

    /// [`crate::Event::WorkerAdded`].
    pub(crate) fn worker_added(
        &mut self,
        worker: WorkerId,
        slots: u32,
        resources: Resources,
    ) -> Result<(), SchedulerError> {
        if self.workers.contains_key(&worker) {
            return Err(SchedulerError::DuplicateWorker(worker));
        }
        if slots == 0 {
            return Err(SchedulerError::ZeroSlots(worker));
        }
        let mut record = Worker::new(slots, resources);
        record.tasks_left = self.take_limit_before_joining(worker);
        if record.tasks_left == Some(0) {
            self.spent_candidates.insert(worker);
        }
        self.workers.insert(worker, record);
        self.index(worker);
        Ok(())
    }

    /// Removes `task` from the processing set of `worker` (which must exist) and clears its
    /// steal flag.
    pub(crate) fn remove_processing(&mut self, worker: WorkerId, task: TaskId) {
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("processing task");
        let w = self.workers.get_mut(&worker).expect("worker");
        w.processing.remove(&t.placed().assign_seq);
        if !t.resources().is_empty() {
            w.free.add(t.resources());
            self.unpark_pending |= !self.parked.is_empty();
        }
        clear_steal(t, w, worker, &mut self.steals_in_flight);
        if t.placed().seceded {
            t.placed_mut().seceded = false;
            w.seceded -= 1;
        }
        self.index(worker);
    }

    /// [`crate::Event::Secede`] (`seceded`) and [`crate::Event::Rejoin`] (`!seceded`).
    pub(crate) fn set_seceded(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        seceded: bool,
    ) -> Result<(), SchedulerError> {
        self.known_worker(worker)?;
        let t = self
            .tasks
            .get(&task)
            .ok_or(SchedulerError::UnknownTask(task))?;
        if t.status() != crate::task::Status::Processing(worker) {
            return Err(SchedulerError::NotProcessing { task, worker });
        }
        if t.placed().seceded == seceded {
            return Ok(()); // seceding twice, or rejoining a task that did not secede
        }
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("task");
        let w = self.workers.get_mut(&worker).expect("worker");
        t.placed_mut().seceded = seceded;
        // A seceded task is running: any steal request for it is moot (the answer,
        // `stolen: false`, is stale and ignored).
        clear_steal(t, w, worker, &mut self.steals_in_flight);
        if seceded {
            w.seceded += 1;
        } else {
            w.seceded -= 1;
            // Known to be running: never ask for it back.
            t.placed_mut().steal = StealFlag::Refused;
            w.steal_refused += 1;
        }
        self.index(worker);
        Ok(())
    }
}
