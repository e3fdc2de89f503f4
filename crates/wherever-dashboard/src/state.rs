//! The dashboard's own aggregate of the event stream: counts per task name, workers,
//! and a bounded window of recent task runs. Only names, counts, sizes and times are
//! kept: never argument or result values.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use wherever_core::events::MemoryThresholds;

use crate::graph::{GraphNode, GraphState, NodeView};
use crate::live::{LiveTask, LiveTasks};

/// How many finished task runs the task-stream window keeps (the oldest go first).
pub const STREAM_WINDOW: usize = 5_000;

/// One observation the aggregate understands, translated from a `wherever-core`
/// event by [`crate::feed`]. Times are durations since the stream's start.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A task was submitted under `name`.
    Submitted {
        /// The task's id in the stream.
        task: u64,
        /// The task's name (from `#[task]` or the per-task name option).
        name: String,
        /// How many items it computes: 1, or a `map` chunk's length.
        items: u64,
    },
    /// A task started on `worker` at `at`.
    Started {
        /// The task's id.
        task: u64,
        /// The worker running it.
        worker: String,
        /// When it started.
        at: Duration,
    },
    /// A task ended (successfully when `failed` is false) on `worker` at `at`.
    Ended {
        /// The task's id.
        task: u64,
        /// The worker that ran it, when known.
        worker: Option<String>,
        /// When it ended.
        at: Duration,
        /// How long it ran, when known (zero otherwise): its start when its
        /// start was not seen.
        ran_for: Duration,
        /// Whether it failed.
        failed: bool,
    },
    /// A task goes back to the queue (a retry after its worker was lost).
    Retried {
        /// The task's id.
        task: u64,
    },
    /// A task's record was released: nothing more will be said about it.
    Released {
        /// The task's id.
        task: u64,
    },
    /// A worker joined.
    WorkerJoined {
        /// The worker's name.
        worker: String,
        /// The host it runs on.
        host: String,
        /// Its task slots.
        slots: usize,
        /// When.
        at: Duration,
    },
    /// A worker left.
    WorkerLeft {
        /// The worker's name.
        worker: String,
        /// Why, in words.
        reason: String,
        /// When.
        at: Duration,
    },
    /// A worker reported the memory it holds and the CPU time it used.
    WorkerMemory {
        /// The worker's name.
        worker: String,
        /// Its resident set size in bytes.
        rss_bytes: u64,
        /// The CPU time its process used so far.
        cpu: Duration,
        /// When.
        at: Duration,
    },
    /// A worker's memory limit and thresholds (when it joined, or changed).
    WorkerLimits {
        /// The worker's name.
        worker: String,
        /// Its limit and the spill, pause and terminate thresholds, in bytes.
        limits: MemoryThresholds,
        /// When.
        at: Duration,
    },
    /// The dashboard's subscription lost `count` old events (it read too slowly).
    Dropped {
        /// How many were lost.
        count: u64,
    },
    /// A small graph was submitted (the graph page shows the last one).
    Graph {
        /// Its tasks, dependencies before dependents.
        tasks: Vec<GraphNode>,
    },
}

/// Counts of one task name, as `/api/progress` shows them. Counts are of items:
/// a task counts 1, a `map` chunk its length, so that a `map` of 2,000 items ends
/// at 2,000 done however it was chunked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameProgress {
    /// The task name.
    pub name: String,
    /// Submitted, not yet started.
    pub queued: u64,
    /// Started, not yet ended.
    pub running: u64,
    /// Ended successfully.
    pub done: u64,
    /// Ended with a failure.
    pub failed: u64,
}

/// One worker, as `/api/workers` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerView {
    /// The worker's name.
    pub worker: String,
    /// The host it runs on ("" when only seen through its tasks).
    pub host: String,
    /// Its task slots (0 when unknown).
    pub slots: usize,
    /// Tasks it runs now.
    pub running: u64,
    /// Tasks it has finished (successfully or not).
    pub finished: u64,
    /// The memory it last reported, in bytes.
    pub rss_bytes: Option<u64>,
    /// Its memory limit and the spill, pause and terminate thresholds, in bytes
    /// (`null` while unknown).
    pub memory_limits: Option<MemoryThresholds>,
    /// The CPU time its process used so far, in milliseconds (from its last report).
    pub cpu_ms: Option<u64>,
    /// Its CPU use between its last two reports, in percent of one core (150: one and
    /// a half cores busy).
    pub cpu_percent: Option<u64>,
    /// When it was last heard of, in milliseconds since the stream's start.
    pub last_seen_ms: u64,
    /// Why it left, if it did.
    pub left: Option<String>,
}

/// One finished task run in the task-stream window, as `/api/tasks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRun {
    /// Its position in the window's history (increasing, never reused).
    pub seq: u64,
    /// The worker that ran it.
    pub worker: String,
    /// The task name.
    pub name: String,
    /// Start, in microseconds since the stream's start.
    pub start_us: u64,
    /// End, in microseconds since the stream's start.
    pub end_us: u64,
    /// Whether it failed.
    pub failed: bool,
}

/// The aggregate: everything the pages and endpoints show.
#[derive(Debug, Default)]
pub struct Aggregate {
    names: Vec<NameProgress>,
    name_index: HashMap<String, usize>,
    /// The tasks not ended, by id (a client numbers its tasks one after another).
    tasks: LiveTasks,
    workers: BTreeMap<String, WorkerView>,
    window: VecDeque<TaskRun>,
    next_seq: u64,
    dropped_events: u64,
    version: u64,
    /// Each worker's last CPU report: when, and the CPU time then.
    cpu_reports: HashMap<String, (Duration, Duration)>,
    /// The last small graph and its tasks' states.
    graph: GraphState,
}

impl Aggregate {
    /// Applies one observation.
    pub fn apply(&mut self, observation: Observation) {
        self.version += 1;
        self.graph.follow(&observation);
        match observation {
            Observation::Submitted { task, name, items } => {
                let index = self.name_slot(name);
                self.names[index].queued += items;
                if let Some(old) = self.tasks.submit(task, index, items) {
                    self.forget(old);
                }
            }
            Observation::Started { task, worker, at } => {
                let Some((name, items)) = self.tasks.start(task, &worker, at) else {
                    return;
                };
                let counts = &mut self.names[name];
                counts.queued = counts.queued.saturating_sub(items);
                counts.running += items;
                let view = self.worker(&worker, at);
                view.running += 1;
            }
            Observation::Ended {
                task,
                worker,
                at,
                ran_for,
                failed,
            } => {
                let Some(live) = self.tasks.remove(task) else {
                    return;
                };
                let items = live.items;
                let counts = &mut self.names[live.name];
                match live.running_on {
                    Some(_) => counts.running = counts.running.saturating_sub(items),
                    None => counts.queued = counts.queued.saturating_sub(items),
                }
                if failed {
                    counts.failed += items;
                } else {
                    counts.done += items;
                }
                let name = counts.name.clone();
                let (ran_on, start) = match live.running_on {
                    Some((on, start)) => (Some(on), start),
                    None => (None, at.saturating_sub(ran_for)),
                };
                if let Some(on) = &ran_on {
                    let view = self.worker(on, at);
                    view.running = view.running.saturating_sub(1);
                }
                if let Some(worker) = worker.or(ran_on) {
                    self.worker(&worker, at).finished += 1;
                    self.push_run(worker, name, start, at, failed);
                }
            }
            Observation::Retried { task } => {
                if let Some(live) = self.tasks.requeue(task) {
                    let counts = &mut self.names[live.name];
                    counts.running = counts.running.saturating_sub(live.items);
                    counts.queued += live.items;
                    if let Some((on, _)) = &live.running_on {
                        if let Some(view) = self.workers.get_mut(on) {
                            view.running = view.running.saturating_sub(1);
                        }
                    }
                }
            }
            Observation::Released { task } => {
                if let Some(live) = self.tasks.remove(task) {
                    self.forget(live);
                }
            }
            Observation::WorkerJoined {
                worker,
                host,
                slots,
                at,
            } => {
                let view = self.worker(&worker, at);
                view.host = host;
                view.slots = slots;
                view.left = None;
            }
            Observation::WorkerLeft { worker, reason, at } => {
                let view = self.worker(&worker, at);
                view.left = Some(reason);
                view.running = 0;
            }
            Observation::WorkerMemory {
                worker,
                rss_bytes,
                cpu,
                at,
            } => {
                let previous = self.cpu_reports.insert(worker.clone(), (at, cpu));
                let view = self.worker(&worker, at);
                view.rss_bytes = Some(rss_bytes);
                view.cpu_ms = Some(cpu.as_millis() as u64);
                if let Some((then, cpu_then)) = previous {
                    let wall = at.saturating_sub(then);
                    if !wall.is_zero() {
                        let used = cpu.saturating_sub(cpu_then);
                        view.cpu_percent =
                            Some((used.as_secs_f64() / wall.as_secs_f64() * 100.0).round() as u64);
                    }
                }
            }
            Observation::WorkerLimits { worker, limits, at } => {
                self.worker(&worker, at).memory_limits = Some(limits);
            }
            Observation::Dropped { count } => self.dropped_events += count,
            Observation::Graph { .. } => {}
        }
    }

    /// The last small graph's tasks, laid out in layers (`/api/graph`).
    pub fn graph(&self) -> &[NodeView] {
        self.graph.nodes()
    }

    /// A number that changes whenever anything was applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Events the dashboard's subscription lost (it read too slowly).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Counts per task name, in the order names were first seen.
    pub fn progress(&self) -> &[NameProgress] {
        &self.names
    }

    /// The sum of the counts of every name.
    pub fn totals(&self) -> NameProgress {
        let mut total = NameProgress {
            name: "total".to_string(),
            ..NameProgress::default()
        };
        for counts in &self.names {
            total.queued += counts.queued;
            total.running += counts.running;
            total.done += counts.done;
            total.failed += counts.failed;
        }
        total
    }

    /// Every worker seen, by name.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerView> {
        self.workers.values()
    }

    /// The task runs in the window with `seq >= from`, oldest first.
    pub fn runs_since(&self, from: u64) -> impl Iterator<Item = &TaskRun> {
        let first = self.window.front().map_or(0, |run| run.seq);
        let skip = from.saturating_sub(first) as usize;
        self.window.iter().skip(skip)
    }

    /// The `seq` the next task run will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn name_slot(&mut self, name: String) -> usize {
        if let Some(&index) = self.name_index.get(&name) {
            return index;
        }
        let index = self.names.len();
        self.name_index.insert(name.clone(), index);
        self.names.push(NameProgress {
            name,
            ..NameProgress::default()
        });
        index
    }

    fn worker(&mut self, worker: &str, at: Duration) -> &mut WorkerView {
        let view = self
            .workers
            .entry(worker.to_string())
            .or_insert_with(|| WorkerView {
                worker: worker.to_string(),
                ..WorkerView::default()
            });
        view.last_seen_ms = view.last_seen_ms.max(at.as_millis() as u64);
        view
    }

    /// Takes a task that will never end out of the counts.
    fn forget(&mut self, live: LiveTask) {
        let counts = &mut self.names[live.name];
        match live.running_on {
            Some((on, _)) => {
                counts.running = counts.running.saturating_sub(live.items);
                if let Some(view) = self.workers.get_mut(&on) {
                    view.running = view.running.saturating_sub(1);
                }
            }
            None => counts.queued = counts.queued.saturating_sub(live.items),
        }
    }

    fn push_run(
        &mut self,
        worker: String,
        name: String,
        start: Duration,
        end: Duration,
        failed: bool,
    ) {
        if self.window.len() == STREAM_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(TaskRun {
            seq: self.next_seq,
            worker,
            name,
            start_us: start.as_micros() as u64,
            end_us: end.as_micros() as u64,
            failed,
        });
        self.next_seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn submitted(task: u64, name: &str) -> Observation {
        Observation::Submitted {
            task,
            name: name.to_string(),
            items: 1,
        }
    }

    fn started(task: u64, worker: &str, at: u64) -> Observation {
        Observation::Started {
            task,
            worker: worker.to_string(),
            at: ms(at),
        }
    }

    fn ended(task: u64, worker: &str, at: u64, failed: bool) -> Observation {
        Observation::Ended {
            task,
            worker: Some(worker.to_string()),
            at: ms(at),
            ran_for: Duration::ZERO,
            failed,
        }
    }

    #[test]
    fn counts_move_from_queued_to_running_to_done_or_failed() {
        let mut state = Aggregate::default();
        state.apply(submitted(1, "square"));
        state.apply(submitted(2, "square"));
        state.apply(submitted(3, "load"));
        assert_eq!(state.progress()[0].queued, 2);
        state.apply(started(1, "w0", 1));
        state.apply(started(2, "w1", 2));
        assert_eq!(state.progress()[0].running, 2);
        state.apply(ended(1, "w0", 5, false));
        state.apply(ended(2, "w1", 6, true));
        let square = &state.progress()[0];
        assert_eq!(
            (square.queued, square.running, square.done, square.failed),
            (0, 0, 1, 1)
        );
        assert_eq!(state.progress()[1].queued, 1);
        let total = state.totals();
        assert_eq!((total.queued, total.done, total.failed), (1, 1, 1));
        let runs: Vec<_> = state.runs_since(0).cloned().collect();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].start_us, runs[0].end_us), (1_000, 5_000));
        assert_eq!(runs[1].worker, "w1");
        assert!(runs[1].failed);
    }

    #[test]
    fn tasks_seen_with_holes_in_their_ids_and_from_other_clients_are_all_counted() {
        // Dropped events leave holes in the ids the dashboard sees; another client's
        // ids are far away. Every task is still counted until it ends.
        let mut state = Aggregate::default();
        let ids: Vec<u64> = (0..50)
            .map(|i| 10 + i * 5_000)
            .chain([1 << 40, 3, u64::MAX])
            .collect();
        for &id in &ids {
            state.apply(submitted(id, "square"));
        }
        assert_eq!(state.progress()[0].queued, ids.len() as u64);
        for (i, &id) in ids.iter().enumerate().rev() {
            state.apply(started(id, "w0", i as u64));
            state.apply(ended(id, "w0", i as u64 + 1, false));
        }
        let square = &state.progress()[0];
        assert_eq!(
            (square.queued, square.running, square.done),
            (0, 0, ids.len() as u64)
        );
    }

    #[test]
    fn a_map_chunk_counts_its_items_and_an_unseen_start_comes_from_the_duration() {
        let mut state = Aggregate::default();
        state.apply(Observation::Submitted {
            task: 1,
            name: "square".into(),
            items: 50,
        });
        assert_eq!(state.totals().queued, 50);
        state.apply(Observation::Ended {
            task: 1,
            worker: Some("w0".into()),
            at: ms(30),
            ran_for: ms(10),
            failed: false,
        });
        assert_eq!(state.totals().done, 50);
        assert_eq!(state.totals().queued, 0);
        let run = state.runs_since(0).next().unwrap();
        assert_eq!((run.start_us, run.end_us), (20_000, 30_000));
    }

    #[test]
    fn a_retried_task_goes_back_to_the_queue_and_is_counted_once() {
        let mut state = Aggregate::default();
        state.apply(submitted(1, "t"));
        state.apply(started(1, "w0", 1));
        state.apply(Observation::Retried { task: 1 });
        assert_eq!(state.progress()[0].queued, 1);
        assert_eq!(state.progress()[0].running, 0);
        state.apply(started(1, "w1", 2));
        state.apply(ended(1, "w1", 3, false));
        let t = &state.progress()[0];
        assert_eq!((t.queued, t.running, t.done), (0, 0, 1));
        let w0 = state.workers().find(|w| w.worker == "w0").unwrap();
        assert_eq!(w0.running, 0);
    }

    #[test]
    fn events_about_unknown_tasks_are_ignored() {
        let mut state = Aggregate::default();
        state.apply(started(9, "w0", 1));
        state.apply(ended(9, "w0", 2, false));
        state.apply(Observation::Released { task: 9 });
        assert!(state.progress().is_empty());
        assert_eq!(state.runs_since(0).count(), 0);
    }

    #[test]
    fn released_before_ending_leaves_the_counts() {
        let mut state = Aggregate::default();
        state.apply(submitted(1, "t"));
        state.apply(Observation::Released { task: 1 });
        assert_eq!(state.totals().queued, 0);
    }

    #[test]
    fn a_task_cancelled_or_failed_before_starting_leaves_its_names_queue() {
        let mut state = Aggregate::default();
        state.apply(submitted(1, "a"));
        state.apply(submitted(2, "b"));
        state.apply(submitted(3, "b"));
        // Cancelled and failed on a dead dependency: ended, failed, never started.
        state.apply(Observation::Ended {
            task: 2,
            worker: None,
            at: ms(4),
            ran_for: Duration::ZERO,
            failed: true,
        });
        state.apply(Observation::Released { task: 3 });
        let b = &state.progress()[1];
        assert_eq!((b.queued, b.running, b.done, b.failed), (0, 0, 0, 1));
        assert_eq!(state.progress()[0].queued, 1, "another name's count stays");
        assert_eq!(state.runs_since(0).count(), 0, "it ran nowhere");
    }

    #[test]
    fn a_lagged_subscriber_that_misses_events_neither_leaks_nor_goes_negative() {
        // The dashboard's subscription drops old events when it reads too slowly;
        // any of a task's events may be missing. Each count must stay the sum over
        // the tasks whose submission was seen and whose end or release was not.
        let mut state = Aggregate::default();
        let mut known: HashMap<u64, (usize, u64)> = HashMap::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let names = ["a", "b", "c"];
        let tasks = 20_000u64;
        let mut events = Vec::new();
        for task in 0..tasks {
            let name = (next() % 3) as usize;
            let items = 1 + next() % 4;
            events.push(Observation::Submitted {
                task,
                name: names[name].to_string(),
                items,
            });
            if next() % 3 != 0 {
                events.push(started(task, "w0", task));
                if next() % 5 == 0 {
                    events.push(Observation::Retried { task });
                    events.push(started(task, "w1", task));
                }
            }
            match next() % 4 {
                0 => events.push(Observation::Released { task }),
                _ => events.push(ended(task, "w0", task + 1, next() % 2 == 0)),
            }
        }
        let mut done_and_failed = 0;
        for event in events {
            if next() % 10 == 0 {
                continue; // lost
            }
            match &event {
                Observation::Submitted { task, name, items } => {
                    let index = names.iter().position(|n| n == name).unwrap();
                    known.insert(*task, (index, *items));
                }
                Observation::Ended { task, .. } => {
                    if let Some((_, items)) = known.remove(task) {
                        done_and_failed += items;
                    }
                }
                Observation::Released { task } => {
                    known.remove(task);
                }
                _ => {}
            }
            state.apply(event);
        }
        for (index, counts) in state.progress().iter().enumerate() {
            let name = names.iter().position(|n| *n == counts.name).unwrap();
            let pending: u64 = known
                .values()
                .filter(|(n, _)| *n == name)
                .map(|(_, items)| items)
                .sum();
            assert_eq!(counts.queued + counts.running, pending, "name {index}");
        }
        let total = state.totals();
        assert_eq!(total.done + total.failed, done_and_failed);
        // The tasks whose end was lost are forgotten when released.
        for task in 0..tasks {
            state.apply(Observation::Released { task });
        }
        let total = state.totals();
        assert_eq!((total.queued, total.running), (0, 0));
        assert_eq!(state.tasks.len(), 0, "no task is kept after its release");
        assert!(state.workers().all(|w| w.running == 0));
    }

    #[test]
    fn the_task_stream_window_is_bounded_and_resumable() {
        let mut state = Aggregate::default();
        for task in 0..(STREAM_WINDOW as u64 + 10) {
            state.apply(submitted(task, "t"));
            state.apply(started(task, "w0", task));
            state.apply(ended(task, "w0", task + 1, false));
        }
        assert_eq!(state.runs_since(0).count(), STREAM_WINDOW);
        assert_eq!(state.runs_since(0).next().unwrap().seq, 10);
        let next = state.next_seq();
        assert_eq!(state.runs_since(next - 3).count(), 3);
        assert_eq!(state.runs_since(next).count(), 0);
    }

    #[test]
    fn workers_keep_memory_slots_and_why_they_left() {
        let mut state = Aggregate::default();
        state.apply(Observation::WorkerJoined {
            worker: "w0".into(),
            host: "node1".into(),
            slots: 2,
            at: ms(1),
        });
        state.apply(Observation::WorkerMemory {
            worker: "w0".into(),
            rss_bytes: 1 << 20,
            cpu: ms(100),
            at: ms(7),
        });
        assert_eq!(state.workers().next().unwrap().cpu_percent, None);
        state.apply(Observation::WorkerMemory {
            worker: "w0".into(),
            rss_bytes: 1 << 20,
            cpu: ms(1600),
            at: ms(1007),
        });
        let w0 = state.workers().next().unwrap();
        assert_eq!(w0.cpu_ms, Some(1600));
        assert_eq!(w0.cpu_percent, Some(150), "1.5 s of CPU in 1 s");
        state.apply(Observation::WorkerLeft {
            worker: "w0".into(),
            reason: "killed".into(),
            at: ms(1009),
        });
        state.apply(Observation::Dropped { count: 4 });
        let w0 = state.workers().next().unwrap();
        assert_eq!(w0.host, "node1");
        assert_eq!(w0.slots, 2);
        assert_eq!(w0.rss_bytes, Some(1 << 20));
        assert_eq!(w0.last_seen_ms, 1009);
        assert_eq!(w0.left.as_deref(), Some("killed"));
        assert_eq!(state.dropped_events(), 4);
    }
}
