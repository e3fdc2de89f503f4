//! New tasks: submitted batches (validated as a unit) and scattered data.

use std::collections::HashSet;
use std::hash::Hash;

use crate::id_hash::{IdBuild, IdMap};
use crate::task::{Failure, Status, Task};
use crate::{Command, Scheduler, SchedulerError, TaskId, TaskSpec, WorkerId};

impl Scheduler {
    /// [`crate::Event::Submit`]: the batch is validated as a unit, then activated in
    /// dependency order.
    pub(crate) fn submit(
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
            let deps = distinct(s.deps);
            for d in &deps {
                self.tasks
                    .get_mut(d)
                    .expect("validated dependency")
                    .dependents
                    .insert(s.id);
            }
            let unfit = self.why_no_worker_fits(&s.resources);
            let mut task = Task::new(s.id, deps, s.priority, s.retries, s.wanted);
            task.set_resources(s.resources);
            task.kind = s.kind;
            self.tasks.insert(s.id, task);
            match unfit {
                Some(reason) => {
                    out.push(Command::NoWorkerFits { task: s.id, reason });
                    self.fail(s.id, Failure::Erred(s.id), None, out);
                }
                None => self.activate(s.id, true, out),
            }
        }
        Ok(())
    }

    /// [`crate::Event::Scattered`].
    pub(crate) fn scattered(
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
        let mut record = Task::new(task, Vec::new(), 0, 0, true);
        record.ended = true;
        record.placed_mut().scattered = true;
        record.set_status(Status::Memory);
        record.placed_mut().nbytes = nbytes;
        self.tasks.insert(task, record);
        for w in known {
            self.add_holder(task, w);
        }
        Ok(())
    }
}

/// `deps` without repeats, in first-seen order; linear in their number (a scan for a few,
/// a hash set for many).
fn distinct<T: Copy + Eq + Hash>(mut deps: Vec<T>) -> Vec<T> {
    const SCAN_UP_TO: usize = 16;
    if deps.len() <= SCAN_UP_TO {
        let mut kept = Vec::with_capacity(deps.len());
        for d in deps {
            if !kept.contains(&d) {
                kept.push(d);
            }
        }
        kept
    } else {
        let mut seen: HashSet<T, IdBuild> = HashSet::default();
        seen.reserve(deps.len());
        deps.retain(|d| seen.insert(*d));
        deps
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::hash::{Hash, Hasher};

    use super::distinct;

    #[test]
    fn distinct_keeps_first_occurrences_in_order() {
        assert_eq!(distinct(vec![3, 1, 3, 2, 1]), vec![3, 1, 2]);
        let many: Vec<u64> = (0..100).chain((0..100).rev()).chain(200..150_000).collect();
        let expected: Vec<u64> = (0..100).chain(200..150_000).collect();
        assert_eq!(distinct(many), expected);
    }

    thread_local! {
        static COMPARISONS: Cell<u64> = const { Cell::new(0) };
    }

    /// An id that counts how often it is compared.
    #[derive(Clone, Copy, Debug)]
    struct Counted(u64);

    impl Hash for Counted {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            COMPARISONS.with(|c| c.set(c.get() + 1));
            self.0 == other.0
        }
    }

    impl Eq for Counted {}

    /// The dependencies of a reduce over n futures are deduplicated with O(n) comparisons
    /// (a scan of the kept ones per dependency made a reduce over 160k inputs take seconds).
    #[test]
    fn distinct_is_linear_in_comparisons() {
        let n = 20_000u64;
        let deps: Vec<Counted> = (0..n).chain(0..n / 2).map(Counted).collect();
        COMPARISONS.with(|c| c.set(0));
        assert_eq!(distinct(deps).len() as u64, n);
        let comparisons = COMPARISONS.with(Cell::get);
        assert!(
            comparisons <= 4 * n,
            "{comparisons} comparisons for {n} ids"
        );
    }
}
