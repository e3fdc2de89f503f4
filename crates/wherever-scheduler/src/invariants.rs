//! [`Scheduler::check_invariants`]: the bookkeeping checked from scratch, for tests.

use crate::task::{Status, StealFlag};
use crate::Scheduler;

impl Scheduler {
    /// Checks the internal bookkeeping (counters, indexes, cross references); `O(n)`, for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut idle = 0u64;
        let mut in_flight = 0u64;
        for (&w, wk) in &self.workers {
            let keys = self.index_keys(w);
            // A retiring or paused worker's slots are not idle: it takes no work.
            let free_slots = if wk.retiring.is_some() {
                0
            } else {
                wk.idle_slots()
            };
            idle += free_slots;
            if keys.idle_slots != free_slots {
                return Err(format!("worker {w} idle slots"));
            }
            if let Some(f) = keys.room {
                if !self.with_room.contains(&f) {
                    return Err(format!(
                        "worker {w} missing from the set of workers with room"
                    ));
                }
            }
            if let Some(v) = keys.victim {
                if !self.victims.contains(&v) {
                    return Err(format!("worker {w} missing from victims"));
                }
            }
            let (mut pending, mut refused, mut seceded) = (0, 0, 0);
            let mut held_resources = wk.free.clone();
            for (&s, &t) in &wk.processing {
                let task = self
                    .tasks
                    .get(&t)
                    .ok_or(format!("worker {w} runs unknown {t}"))?;
                held_resources.add(task.resources());
                if task.status() != Status::Processing(w) || task.placed().assign_seq != s {
                    return Err(format!("task {t} on worker {w} is {:?}", task.status()));
                }
                if task.placed().seceded {
                    seceded += 1;
                    if task.placed().steal != StealFlag::None {
                        return Err(format!("seceded task {t} on {w} under a steal request"));
                    }
                }
                match task.placed().steal {
                    StealFlag::Pending => pending += 1,
                    StealFlag::Refused => refused += 1,
                    StealFlag::None => {}
                }
            }
            if !(held_resources.covers(&wk.total) && wk.total.covers(&held_resources)) {
                return Err(format!(
                    "worker {w}: free {} plus held by its tasks is {held_resources}, not its {}",
                    wk.free, wk.total
                ));
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
                if task.status() != Status::Memory || !task.placed().who_has.contains(&w) {
                    return Err(format!("worker {w} holds {t} in {:?}", task.status()));
                }
                bytes += task.placed().nbytes;
            }
            if bytes != wk.held_bytes {
                return Err(format!("worker {w} held bytes"));
            }
        }
        let retiring: Vec<_> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_some())
            .map(|(&id, _)| id)
            .collect();
        if !self.retiring.iter().copied().eq(retiring) {
            return Err("the set of retiring workers".into());
        }
        if idle != self.idle_slots || in_flight != self.steals_in_flight {
            return Err("idle slots or steals in flight".into());
        }
        if self.with_room.len() != self.workers.values().filter(|w| self.has_room(w)).count() {
            return Err("with_room set size".into());
        }
        let mut nready = 0;
        for (id, t) in self.tasks.iter() {
            let unfinished = t
                .dependents
                .iter()
                .filter(|d| self.tasks[*d].status().active())
                .count() as u32;
            if unfinished != t.active_dependents {
                return Err(format!(
                    "task {id} active dependents {} != {unfinished}",
                    t.active_dependents
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
            match t.status() {
                Status::Waiting => {
                    let missing = t
                        .deps
                        .iter()
                        .filter(|d| self.tasks[*d].status() != Status::Memory)
                        .count() as u32;
                    if missing != t.missing_deps || missing == 0 {
                        return Err(format!("task {id} missing {} != {missing}", t.missing_deps));
                    }
                }
                Status::Ready => {
                    nready += 1;
                    if !t
                        .ready_key(id)
                        .is_some_and(|k| self.ready.contains(&k) || self.parked.contains(&k))
                    {
                        return Err(format!("ready task {id} not queued"));
                    }
                }
                Status::Processing(w)
                    if self
                        .workers
                        .get(&w)
                        .and_then(|wk| wk.processing.get(&t.placed().assign_seq))
                        != Some(&id) =>
                {
                    return Err(format!("task {id} processing on {w} unknown to it"));
                }
                Status::Memory => {
                    if t.placed().who_has.is_empty() {
                        return Err(format!("task {id} in memory nowhere"));
                    }
                    for w in &t.placed().who_has {
                        if !self.workers.get(w).is_some_and(|wk| wk.held.contains(&id)) {
                            return Err(format!("task {id} on {w} unknown to it"));
                        }
                    }
                    if !t.wanted && t.active_dependents == 0 {
                        return Err(format!("task {id} kept in memory for nothing"));
                    }
                }
                _ => {}
            }
            if t.placed().seceded && !matches!(t.status(), Status::Processing(_)) {
                return Err(format!("task {id} seceded in {:?}", t.status()));
            }
            if t.status() != Status::Memory && !t.placed().who_has.is_empty() {
                return Err(format!("task {id} has holders in {:?}", t.status()));
            }
            if t.status().active() && t.status() != Status::Waiting {
                if let Some(d) = t
                    .deps
                    .iter()
                    .find(|d| self.tasks[*d].status() != Status::Memory)
                {
                    return Err(format!(
                        "task {id} {:?} but dep {d} not in memory",
                        t.status()
                    ));
                }
            }
            if matches!(
                t.status(),
                Status::Released | Status::Erred | Status::Lost | Status::Cancelled
            ) && !t.wanted
                && t.dependents.is_empty()
            {
                return Err(format!("task {id} should have been forgotten"));
            }
        }
        if nready != self.ready.len() + self.parked.len() {
            return Err("ready queue size".into());
        }
        Ok(())
    }
}
