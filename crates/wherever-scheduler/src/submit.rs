//! New tasks: submitted batches (validated as a unit) and scattered data.

use crate::id_hash::{IdMap, IdSet};
use crate::task::{Status, Task};
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
            let task = Task::new(s.id, deps, s.priority, s.retries, s.wanted);
            self.tasks.insert(s.id, task);
            self.activate(s.id, true, out);
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
        record.scattered = true;
        record.status = Status::Memory;
        record.nbytes = nbytes;
        self.tasks.insert(task, record);
        for w in known {
            self.add_holder(task, w);
        }
        Ok(())
    }
}
