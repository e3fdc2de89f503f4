//! What a client submits: [`TaskSpec`].

#[allow(unused_imports)] // named in doc links
use crate::Event;
use crate::{Resources, TaskId};

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
    /// What the task holds on its worker while assigned there (empty: nothing).
    pub resources: Resources,
    /// What kind of task it is (a hash of its function's name; 0: unknown): the
    /// scheduler learns each kind's mean duration, and places a task only on a
    /// worker with time enough left before its deadline ([`crate::walltime`]).
    pub kind: u64,
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
            resources: Resources::new(),
            kind: 0,
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

    /// Sets the resources the task needs on its worker.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// Sets the kind of task (a hash of its function's name).
    pub fn kind(mut self, kind: u64) -> Self {
        self.kind = kind;
        self
    }

    /// Sets whether the client holds a future for the task.
    pub fn wanted(mut self, wanted: bool) -> Self {
        self.wanted = wanted;
        self
    }
}
