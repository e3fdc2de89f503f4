//! Emitting task events from the client: every plan's submissions, and on local plans
//! (`sequential`, `threads`) their start and end on a pool thread.
//!
//! A [`TaskWatch`] is made when a task is submitted while somebody subscribed to the
//! client's stream (else nothing is built: [`Client::watch`] is one atomic load). It
//! ends with exactly one `TaskFinished` or `TaskFailed`. A watch made with
//! [`Client::watch_keeping_bus`] (for jobs that may be dropped without running: a
//! dependency failed, the connection closed) reports a failure when dropped
//! unfinished; one made with [`Client::watch`] (a plain job on the pool, which always
//! runs) holds no reference to the bus, and its runner reports a cancellation itself.
//!
//! Times are read from the stream's coarse clock ([`EventBus::clock`]), not
//! `Instant::now()`: a trivial task's events must cost a few nanoseconds.

use crate::client::Client;
use crate::TaskError;
use std::borrow::Cow;
use std::cell::Cell;
use std::time::Duration;
use wherever_core::events::{
    group_of, Event, EventBus, FailureKind, Subscription, TaskKey, TaskOutcome,
};

thread_local! {
    /// The stream's key of the task this thread submitted last (for the graph event
    /// of a `compute`).
    static LAST_SUBMITTED: Cell<Option<TaskKey>> = const { Cell::new(None) };
    /// The first failure a task running on this thread kept as a value (`map_results`
    /// on local plans), which its watch reports instead of `TaskFinished`.
    static KEPT_FAILURE: Cell<Option<FailureKind>> = const { Cell::new(None) };
}

/// Notes that this thread just submitted the task `task` of the stream.
pub(crate) fn note_task_key(task: TaskKey) {
    LAST_SUBMITTED.with(|last| last.set(Some(task)));
}

/// The stream's key of the task this thread submitted since the last call, if any.
pub(crate) fn take_last_task_key() -> Option<TaskKey> {
    LAST_SUBMITTED.with(Cell::take)
}

/// Notes that the task running on this thread failed, though it hands the failure back
/// as a value (so that a local `map_results` chunk goes on).
pub(crate) fn note_kept_failure(error: &TaskError) {
    KEPT_FAILURE.with(|kept| {
        if kept.get().is_none() {
            kept.set(Some(FailureKind::from(&error.kind)));
        }
    });
}

/// How many unread events a subscription of [`Client::events`] holds by default.
pub const DEFAULT_EVENT_CAPACITY: usize = 65_536;

/// One submitted task being watched for the event stream.
pub(crate) struct TaskWatch {
    /// The bus, kept only by [`Client::watch_keeping_bus`] (to report a task dropped
    /// unfinished); the other reports use the bus the runner passes, so that a watched
    /// task costs no reference count on the shared bus.
    bus: Option<EventBus>,
    task: TaskKey,
    /// The worker and the stream's time it started at (nanoseconds).
    started: Option<(u64, u64)>,
    ended: bool,
}

impl Client {
    /// The event stream of this client's plan: task submitted / started / finished /
    /// failed events from the moment of the call, held in a buffer of
    /// [`DEFAULT_EVENT_CAPACITY`] events (a slow reader loses the oldest ones and
    /// reads an [`Event::Dropped`] saying how many). See [`wherever_core::events`].
    ///
    /// On local plans (`sequential`, `threads`), tasks submitted before the first
    /// subscription are not reported at all, not even their end: with nobody
    /// subscribed a submission costs one atomic load and records nothing. (Cluster
    /// plans report every task's end from the scheduler.)
    ///
    /// ```
    /// use wherever::prelude::*;
    /// use wherever::events::Event;
    ///
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let events = client.events();
    /// client.map(|x: u64| x + 1, 0..10)?;
    /// let finished = events.drain().iter()
    ///     .filter(|s| matches!(s.event, Event::TaskFinished { .. }))
    ///     .count();
    /// assert!(finished >= 1);
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn events(&self) -> Subscription {
        self.events_with_capacity(DEFAULT_EVENT_CAPACITY)
    }

    /// [`Client::events`] holding at most `capacity` unread events.
    pub fn events_with_capacity(&self, capacity: usize) -> Subscription {
        let events = self.shared.events.subscribe(capacity);
        self.forward_remote_events();
        events
    }

    /// On `tcp://` plans, asks the scheduler to forward its events (once).
    pub(crate) fn forward_remote_events(&self) {
        if let Some(cluster) = self.cluster().filter(|c| c.scheduler_events.is_none()) {
            let capacity = wherever_cluster::protocol::MAX_FORWARDED_EVENTS;
            cluster.client.subscribe_events(capacity);
        }
    }

    /// The bus this client's events are emitted on (shared by its clones).
    pub(crate) fn event_bus(&self) -> &EventBus {
        &self.shared.events
    }

    /// Emits `TaskSubmitted` for a task named `name` computing `items` items and
    /// returns its watch; `None` (building nothing) when nobody subscribed: a local task
    /// submitted before a subscription is not reported (cluster plans report every
    /// task's end from the scheduler).
    #[inline]
    pub(crate) fn watch(&self, name: &'static str, items: u64) -> Option<TaskWatch> {
        let bus = &self.shared.events;
        if !bus.is_observed() {
            return None;
        }
        self.watch_observed(bus, name, items)
    }

    /// [`Client::watch`] for a job that may be dropped without running: the watch
    /// keeps the bus, to report such a task as failed.
    pub(crate) fn watch_keeping_bus(&self, name: &'static str, items: u64) -> Option<TaskWatch> {
        let mut watch = self.watch(name, items)?;
        watch.bus = Some(self.shared.events.clone());
        Some(watch)
    }

    #[inline(never)]
    fn watch_observed(&self, bus: &EventBus, name: &'static str, items: u64) -> Option<TaskWatch> {
        let task = bus.new_task_key();
        // A registered name is shared (its group found by the reader); a given one is
        // copied.
        match &self.options.name {
            Some(given) => bus.emit(Event::TaskSubmitted {
                task,
                name: Cow::Owned(given.to_string()),
                group: Cow::Owned(group_of(given).to_string()),
                items,
            }),
            None => bus.emit_submitted(task, name, items),
        }
        crate::progress::note_submitted(task, items);
        note_task_key(task);
        Some(TaskWatch {
            bus: None,
            task,
            started: None,
            ended: false,
        })
    }
}

impl TaskWatch {
    /// The task began on the current local thread.
    pub(crate) fn started(&mut self, bus: &EventBus) {
        KEPT_FAILURE.with(Cell::take);
        if !bus.is_observed() {
            return;
        }
        let worker = crate::local::current_worker_index();
        self.started = Some((worker, bus.task_started_here(self.task, worker)));
    }

    /// The task ended with a value of `result_bytes` encoded bytes (0 when not encoded).
    /// A failure it kept as a value is reported as `TaskFailed` instead.
    pub(crate) fn finished(mut self, bus: &EventBus, result_bytes: u64) {
        self.ended = true;
        if let Some(kind) = KEPT_FAILURE.with(Cell::take) {
            return self.emit_failed(bus, kind);
        }
        if !bus.is_observed() {
            return;
        }
        match self.started {
            Some((worker, start)) => {
                let outcome = TaskOutcome::Finished { result_bytes };
                bus.task_ended_here(self.task, worker, start, outcome);
            }
            None => bus.emit(Event::TaskFinished {
                task: self.task,
                worker: None,
                duration: Duration::ZERO,
                result_bytes,
            }),
        }
    }

    /// The task ended with `error`.
    pub(crate) fn failed(mut self, bus: &EventBus, error: &TaskError) {
        self.ended = true;
        self.emit_failed(bus, FailureKind::from(&error.kind));
    }

    /// The task was cancelled before it started.
    pub(crate) fn cancelled(mut self, bus: &EventBus) {
        self.ended = true;
        self.emit_failed(bus, FailureKind::Cancelled);
    }

    /// Ends the watch with `outcome`'s event.
    pub(crate) fn ended<R>(self, bus: &EventBus, outcome: &Result<R, TaskError>, bytes: u64) {
        match outcome {
            Ok(_) => self.finished(bus, bytes),
            Err(error) => self.failed(bus, error),
        }
    }

    fn emit_failed(&self, bus: &EventBus, kind: FailureKind) {
        match self.started {
            Some((worker, start)) => {
                bus.task_ended_here(self.task, worker, start, TaskOutcome::Failed(kind));
            }
            None => bus.emit_with(|| Event::TaskFailed {
                task: self.task,
                worker: None,
                kind,
            }),
        }
    }
}

impl Drop for TaskWatch {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Some(bus) = self.bus.take() {
            let kind = if self.started.is_none() {
                FailureKind::Cancelled
            } else {
                FailureKind::Other
            };
            self.emit_failed(&bus, kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Plan;
    use std::borrow::Cow;
    use wherever_core::events::Event;

    #[test]
    fn a_map_chunk_shares_its_name_and_group_instead_of_copying_them() {
        let client = Plan::parse("threads:1").unwrap().start().unwrap();
        let events = client.events();
        client.map(|x: u64| x + 1, 0..4).unwrap();
        let submitted: Vec<Event> = events
            .drain()
            .into_iter()
            .map(|s| s.event)
            .filter(|e| matches!(e, Event::TaskSubmitted { .. }))
            .collect();
        assert!(!submitted.is_empty());
        for event in submitted {
            let Event::TaskSubmitted { name, group, .. } = event else {
                unreachable!()
            };
            assert!(matches!(name, Cow::Borrowed(_)), "{name:?} was copied");
            assert!(matches!(group, Cow::Borrowed(_)), "{group:?} was copied");
        }
    }
}
