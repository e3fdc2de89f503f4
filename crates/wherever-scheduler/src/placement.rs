//! Placement: the ready queue and picking a worker for each ready task.

use std::cmp::Reverse;

use crate::task::{Status, StealFlag};
use crate::{Command, Scheduler, TaskId, WorkerId};

impl Scheduler {
    /// Assigns ready tasks, best first, while some worker has room.
    pub(crate) fn schedule(&mut self, out: &mut Vec<Command>) {
        while let Some(&key) = self.ready.first() {
            if self.with_room.is_empty() {
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
    pub(crate) fn pick_worker(&self, task: TaskId) -> WorkerId {
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
        if Some(first) == t.avoid {
            if let Some(&(_, second)) = it.next() {
                return second;
            }
        }
        first
    }

    /// Assigns ready `task` to `worker`: [`Command::Compute`] with where each input lives.
    pub(crate) fn assign(&mut self, task: TaskId, worker: WorkerId, out: &mut Vec<Command>) {
        let seq = self.next_seq();
        self.unindex(worker);
        let t = self.tasks.get_mut(&task).expect("task");
        t.status = Status::Processing(worker);
        t.assign_seq = seq;
        t.avoid = None;
        t.steal = StealFlag::None;
        t.seceded = false;
        t.expect_report(worker);
        let deps = t.deps.clone();
        for d in &deps {
            let dt = self.tasks.get_mut(d).expect("dependency");
            if !dt.who_has.contains(&worker) {
                dt.expect_report(worker); // it fetches a copy
            }
        }
        self.workers
            .get_mut(&worker)
            .expect("worker")
            .processing
            .insert(seq, task);
        self.index(worker);
        let compute = self.compute_command(task, worker);
        out.push(compute);
    }

    /// [`Command::Compute`] of `task` on `worker`, with where each input lives now.
    pub(crate) fn compute_command(&self, task: TaskId, worker: WorkerId) -> Command {
        let inputs = self.tasks[&task]
            .deps
            .iter()
            .map(|&d| (d, self.tasks[&d].who_has.clone()))
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
            (Reverse(t.priority), 1, task, task)
        } else {
            (Reverse(t.priority), 0, u64::MAX - unlock_count, task)
        };
        t.status = Status::Ready;
        t.missing_deps = 0;
        t.ready_key = Some(key);
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
        match self.tasks[&task].status {
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
        if let Some(k) = self.tasks.get_mut(&task).and_then(|t| t.ready_key.take()) {
            self.ready.remove(&k);
        }
    }
}
