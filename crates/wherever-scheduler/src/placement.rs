//! Placement: the ready queue and picking a worker for each ready task.

use std::cmp::Reverse;

use crate::task::{Status, StealFlag};
use crate::{Command, Resources, Scheduler, TaskId, WorkerId};

/// Results a worker may hold per slot before graph roots stop being prefetched to
/// it beyond one queued task ([`Scheduler::root_task_waits`]).
pub const ROOT_QUEUE_BYTES_PER_SLOT: u64 = 4 << 20;

/// A kind of graph root whose results reach this size is queued one task deep
/// from the start, whatever its worker holds ([`Scheduler::root_task_waits`]).
pub const LARGE_ROOT_RESULT: u64 = 256 << 10;

/// How many task kinds [`ResultSizes`] remembers; past it, it starts over.
const KINDS_REMEMBERED: usize = 4096;

/// The largest result seen per task kind (kind 0, no kind, is never learned).
#[derive(Debug, Default)]
pub(crate) struct ResultSizes(std::collections::HashMap<u64, u64>);

impl ResultSizes {
    /// Adds a result of `nbytes` made by a task of `kind`.
    pub(crate) fn learn(&mut self, kind: u64, nbytes: u64) {
        if kind == 0 {
            return;
        }
        if self.0.len() >= KINDS_REMEMBERED && !self.0.contains_key(&kind) {
            self.0.clear();
        }
        let largest = self.0.entry(kind).or_insert(0);
        *largest = (*largest).max(nbytes);
    }

    /// Whether results of `kind` are large, or not known yet (kind 0: never).
    fn large_or_unknown(&self, kind: u64) -> bool {
        kind != 0 && self.0.get(&kind).is_none_or(|&n| n >= LARGE_ROOT_RESULT)
    }
}

impl Scheduler {
    /// Assigns ready tasks, best first, while some worker has room. A task asking for
    /// resources that no worker with room has free is parked until resources or room
    /// free up (then all parked tasks are tried again, in their order).
    pub(crate) fn schedule(&mut self, out: &mut Vec<Command>) {
        if self.unpark_pending {
            self.unpark_pending = false;
            let parked = std::mem::take(&mut self.parked);
            self.ready.extend(parked);
        }
        while let Some(key) = self.ready.first() {
            if self.with_room.is_empty() {
                break;
            }
            let task = key.3;
            if self.root_task_waits(task) {
                break;
            }
            self.ready.remove(&key);
            let worker = if self.tasks[&task].resources().is_empty() {
                Some(self.pick_worker(task))
            } else {
                self.pick_worker_with_resources(task)
            };
            // A worker near its deadline takes only what finishes in time.
            let worker = worker.and_then(|w| {
                if self.fits_in_time(task, w) {
                    Some(w)
                } else {
                    self.pick_worker_in_time(task)
                }
            });
            match worker {
                Some(worker) => {
                    self.tasks
                        .get_mut(&task)
                        .expect("ready task")
                        .take_ready_key(task);
                    self.assign(task, worker, out);
                }
                None => {
                    self.parked.insert(key);
                }
            }
        }
    }

    /// Whether `task`, a root of a graph (no dependencies; other tasks submitted
    /// read its result), waits in the queue because the least loaded worker already
    /// holds more than [`ROOT_QUEUE_BYTES_PER_SLOT`] of results per slot and has a
    /// task queued beyond its slots: roots are then not prefetched deeper, or a
    /// worker would make dozens of large ones before running the tasks that
    /// consume them (Dask queues root tasks the same way, whatever their size).
    /// A root whose kind is known to make large results ([`LARGE_ROOT_RESULT`]), or
    /// whose kind has made none yet, waits the same way from the start: otherwise
    /// the first few dozen large roots are prefetched before any size is known.
    /// While workers hold little and the root's kind makes small results, roots are
    /// prefetched as deep as other tasks, so graphs of small values keep their
    /// throughput (only the first of a new kind waits for its size). The tasks behind it in the
    /// queue are new roots too, or new tasks whose inputs were there already: they
    /// wait with it. A root nobody consumes (a plain `submit`) is never held back.
    fn root_task_waits(&self, task: TaskId) -> bool {
        let t = &self.tasks[&task];
        if !t.deps.is_empty() || t.dependents.is_empty() || !t.resources().is_empty() {
            return false;
        }
        let Some(&(_, least_loaded)) = self.with_room.iter().next() else {
            return false;
        };
        let w = &self.workers[&least_loaded];
        w.load() > u64::from(w.slots)
            && (w.held_bytes > ROOT_QUEUE_BYTES_PER_SLOT * u64::from(w.slots.max(1))
                || self.result_sizes.large_or_unknown(t.kind))
    }

    /// The least loaded worker with room whose free resources cover the request of
    /// `task` (not the one it was just stolen from, unless it is the only one).
    fn pick_worker_with_resources(&self, task: TaskId) -> Option<WorkerId> {
        let t = &self.tasks[&task];
        let mut fallback = None;
        for &(_, w) in &self.with_room {
            if self.workers[&w].free.covers(t.resources()) {
                if Some(w) != t.avoid() {
                    return Some(w);
                }
                fallback = Some(w);
            }
        }
        fallback
    }

    /// Whether a worker other than `victim` has an idle slot and free resources that
    /// cover the request of `task` (stealing it for anyone else would only park it).
    pub(crate) fn another_worker_fits(&self, task: TaskId, victim: WorkerId) -> bool {
        let request = self.tasks[&task].resources();
        self.workers.iter().any(|(&id, w)| {
            id != victim && w.retiring.is_none() && w.idle_slots() > 0 && w.free.covers(request)
        })
    }

    /// Why no worker present could ever run a task asking for `request`, or `None`
    /// if one could (or no worker is connected: the task waits for one).
    pub(crate) fn why_no_worker_fits(&self, request: &Resources) -> Option<String> {
        if request.is_empty()
            || self.workers.is_empty()
            || self.workers.values().any(|w| w.total.covers(request))
        {
            return None;
        }
        let count = self.workers.len();
        for (name, amount) in request.iter() {
            let most = self
                .workers
                .values()
                .map(|w| w.total.get(name))
                .fold(0.0, f64::max);
            if most < amount {
                let has = if count == 1 {
                    format!("the only connected worker has {name}={most}")
                } else {
                    format!("the most any of the {count} connected workers has is {name}={most}")
                };
                return Some(format!(
                    "no connected worker has the resources it asks for: it asks for \
                     {name}={amount}, {has}"
                ));
            }
        }
        let each: Vec<String> = self.workers.values().map(|w| w.total.to_string()).collect();
        Some(format!(
            "no connected worker has the resources it asks for: it asks for {request} \
             together, the {count} connected workers have {}",
            each.join("; ")
        ))
    }

    /// The worker with room holding the most input bytes (ties: least loaded, lowest id);
    /// without such a holder, the least loaded worker with room.
    pub(crate) fn pick_worker(&self, task: TaskId) -> WorkerId {
        let t = &self.tasks[&task];
        let mut bytes: Vec<(WorkerId, u64)> = Vec::new();
        for d in &t.deps {
            let dt = &self.tasks[d];
            for &h in &dt.placed().who_has {
                if Some(h) == t.avoid() {
                    continue;
                }
                match bytes.iter_mut().find(|(w, _)| *w == h) {
                    Some((_, b)) => *b += dt.placed().nbytes,
                    None => bytes.push((h, dt.placed().nbytes)),
                }
            }
        }
        let mut best: Option<(u64, Reverse<(u64, WorkerId)>)> = None;
        for (w, b) in bytes {
            if b == 0 {
                continue;
            }
            if let Some(f) = self.index_keys(w).room {
                let cand = (b, Reverse(f));
                if best.is_none_or(|x| cand > x) {
                    best = Some(cand);
                }
            }
        }
        if let Some((_, Reverse((_, w)))) = best {
            return w;
        }
        let mut it = self.with_room.iter();
        let first = it.next().expect("a worker with room").1;
        if Some(first) == t.avoid() {
            if let Some(&(_, second)) = it.next() {
                return second;
            }
        }
        first
    }

    /// Assigns ready `task` to `worker`: [`Command::Compute`] with where each input lives.
    pub(crate) fn assign(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        let seq = self.next_seq();
        let queued = {
            let w = &self.workers[&worker];
            w.load() >= u64::from(w.slots)
        };
        self.unindex(worker);
        let now_ms = self.walltime.now_ms;
        let t = self.tasks.get_mut(&task).expect("task");
        if !t.resources().is_empty() {
            let w = self.workers.get_mut(&worker).expect("worker");
            w.free.subtract(t.resources());
        }
        t.placed_mut().assigned_at_ms = now_ms;
        t.placed_mut().assigned_queued = queued;
        t.set_status(Status::Processing(worker));
        t.placed_mut().assign_seq = seq;
        t.clear_avoid();
        t.placed_mut().steal = StealFlag::None;
        t.placed_mut().seceded = false;
        t.expect_report(worker);
        let deps = t.deps.clone();
        for d in &deps {
            let dt = self.tasks.get_mut(d).expect("dependency");
            if !dt.placed().who_has.contains(&worker) {
                dt.expect_report(worker); // it fetches a copy
            }
        }
        self.workers
            .get_mut(&worker)
            .expect("worker")
            .processing
            .insert(seq, task);
        self.use_task_of(worker);
        self.index(worker);
        let compute = self.compute_command(task, worker);
        out.push(compute);
    }

    /// [`Command::Compute`] of `task` on `worker`, with where each input lives now.
    pub(crate) fn compute_command(&self, task: TaskId, worker: WorkerId) -> Command {
        let inputs = self.tasks[&task]
            .deps
            .iter()
            .map(|&d| (d, self.tasks[&d].placed().who_has.to_vec()))
            .collect();
        Command::Compute {
            worker,
            task,
            inputs,
        }
    }

    /// Queues `task` (active, all dependencies in memory) for assignment: `fresh` (a new
    /// submission) after those made ready again, which run most recent first.
    pub(crate) fn make_ready(&mut self, task: TaskId, fresh: bool) {
        self.unlock_count += 1;
        let unlock_count = self.unlock_count;
        let t = self.tasks.get_mut(&task).expect("task");
        let key = if fresh {
            (Reverse(t.priority()), 1, task, task)
        } else {
            (Reverse(t.priority()), 0, u64::MAX - unlock_count, task)
        };
        t.set_status(Status::Ready);
        t.missing_deps = 0;
        t.set_ready_key(key);
        self.ready.insert(key);
    }

    /// Takes an active `task` out of the ready queue, or off the worker it is assigned to
    /// (sending that worker `Cancel` unless it is `reporter`, the worker whose report
    /// caused this, or already removed). Its status is left for the caller to set.
    pub(crate) fn dequeue(
        &mut self,
        task: TaskId,
        reporter: Option<WorkerId>,
        out: &mut Vec<Command>,
    ) {
        match self.tasks[&task].status() {
            Status::Processing(w) if self.workers.contains_key(&w) => {
                self.remove_processing(w, task);
                if Some(w) != reporter {
                    out.push(Command::Cancel { worker: w, task });
                }
            }
            Status::Ready => self.unready(task),
            _ => {}
        }
    }

    /// Takes `task` out of the ready queue (if it is there).
    pub(crate) fn unready(&mut self, task: TaskId) {
        if let Some(k) = self
            .tasks
            .get_mut(&task)
            .and_then(|t| t.take_ready_key(task))
        {
            if !self.ready.remove(&k) {
                self.parked.remove(&k);
            }
        }
    }
}
