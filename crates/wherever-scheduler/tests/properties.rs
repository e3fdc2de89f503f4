//! Property tests: a simulated cluster drives the scheduler through random graphs,
//! random worker joins and deaths, user failures, cancels, steal answers and tasks that
//! secede while they wait (and rejoin later), workers and clients that cannot fetch a result
//! from its holders (`MissingData`), workers that pause (over their memory pause
//! threshold: they start nothing) and resume, and checks that every wanted task ends
//! exactly once with the right outcome and nothing leaks. A deterministic test replays
//! Dask's nested-task scenario (tasks submitting tasks and waiting for them).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use wherever_scheduler::{
    Command, Event, Resources, Scheduler, SchedulerConfig, SchedulerError, TaskId, TaskSpec,
    TaskState, WorkerId, MISSING_DATA_LIMIT,
};

/// The kinds of commands and events a run counts: a fixed sample of cases must see each.
const STAT_NAMES: [&str; 21] = [
    "compute",
    "steal",
    "stolen",
    "free",
    "cancel",
    "done",
    "erred",
    "lost",
    "cancelled",
    "stale",
    "secede",
    "rejoin",
    "secede/rejoin refused (task moved)",
    "missing data (worker)",
    "missing data (client)",
    "replicate",
    "retired",
    "replicate failed",
    "retired with a deadline",
    "paused/resumed",
    "retired after its task limit",
];

/// How often each kind in [`STAT_NAMES`] occurred in one run.
type Stats = [usize; STAT_NAMES.len()];

/// SplitMix64: the simulation's own deterministic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn mix(a: u64, b: u64) -> u64 {
    let mut r = Rng(a.wrapping_mul(31).wrapping_add(b));
    r.next()
}

const SCATTER_BASE: TaskId = 100_000;

#[derive(Clone, Debug)]
struct GenTask {
    deps: Vec<TaskId>,
    wanted: bool,
    retries: u32,
    fails: bool,
    priority: i64,
}

#[derive(Clone, Debug)]
struct Case {
    tasks: Vec<GenTask>,
    scattered: usize,
    /// Start index of each batch after the first.
    batch_starts: Vec<usize>,
    initial_workers: usize,
    max_deaths: u32,
    max_joins: u32,
    max_cancels: u32,
    prefetch: Option<u32>,
    /// Chance (percent) that a started task waits, seceded, before it may finish.
    secede_percent: u64,
    /// Chance (percent) that a worker cannot fetch an input of a task it starts.
    missing_percent: u64,
    /// How many times the client may fail to fetch a result.
    max_client_missing: u32,
    /// Whether workers pause and resume at random.
    pauses: bool,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let task = (
        prop::collection::vec(any::<u32>(), 0..4),
        any::<bool>(),
        0u32..3,
        0u8..100,
        prop_oneof![4 => Just(0i64), 1 => -2i64..3],
    );
    (
        prop::collection::vec(task, 1..200),
        0usize..3,
        prop::collection::vec(any::<u32>(), 0..3),
        1usize..5,
        0u32..6,
        0u32..4,
        0u32..3,
        prop_oneof![Just(None), (0u32..3).prop_map(Some)],
        prop_oneof![1 => Just(0u64), 3 => 5u64..60],
        prop_oneof![1 => Just(0u64), 2 => 1u64..25],
        prop_oneof![1 => Just(0u32), 2 => 1u32..12],
        (any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |(
                raw,
                scattered,
                cuts,
                initial_workers,
                max_deaths,
                max_joins,
                max_cancels,
                prefetch,
                secede_percent,
                missing_percent,
                max_client_missing,
                (pauses, seed),
            )| {
                let n = raw.len();
                let mut batch_starts: Vec<usize> = cuts
                    .iter()
                    .map(|c| *c as usize % n)
                    .filter(|&c| c > 0)
                    .collect();
                batch_starts.sort_unstable();
                batch_starts.dedup();
                let batch_of = |i: usize| batch_starts.iter().filter(|&&s| s <= i).count();
                let mut tasks: Vec<GenTask> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, (sel, wanted, retries, fail, priority))| {
                        let mut deps = Vec::new();
                        for s in sel {
                            let pool = i + scattered;
                            if pool == 0 {
                                break;
                            }
                            let k = *s as usize % pool;
                            let d = if k < scattered {
                                SCATTER_BASE + k as u64
                            } else if *s % 3 == 0 {
                                (k - scattered) as u64
                            } else {
                                // mostly recent tasks: deeper graphs
                                (i - 1 - (k - scattered) % i.min(8)) as u64
                            };
                            deps.push(d);
                        }
                        GenTask {
                            deps,
                            wanted: *wanted,
                            retries: *retries,
                            fails: *fail < 4,
                            priority: *priority,
                        }
                    })
                    .collect();
                // A later batch may only depend on earlier tasks the client still holds.
                for i in 0..n {
                    for d in tasks[i].deps.clone() {
                        if d < SCATTER_BASE && batch_of(d as usize) < batch_of(i) {
                            tasks[d as usize].wanted = true;
                        }
                    }
                }
                Case {
                    tasks,
                    scattered,
                    batch_starts,
                    initial_workers,
                    max_deaths,
                    max_joins,
                    max_cancels,
                    prefetch,
                    secede_percent,
                    missing_percent,
                    max_client_missing,
                    pauses,
                    seed,
                }
            },
        )
}

/// Where each input of a task lives, as told by `Command::Compute`.
type Inputs = Vec<(TaskId, Vec<WorkerId>)>;

/// Where a running task is in its life on the simulated worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// It will wait on something: it must secede before it may finish.
    WillWait,
    /// Seceded (`Secede` sent) when the worker had started this many tasks: it rejoins
    /// once the worker started another one (the freed slot was used) or nothing is ready.
    Seceded(u64),
    /// Runs to completion.
    Runs,
}

struct SimWorker {
    slots: u32,
    alive: bool,
    queue: Vec<(TaskId, Inputs)>,
    running: Vec<(TaskId, Option<u64>, Phase)>,
    /// How many tasks it started.
    starts: u64,
    memory: HashMap<TaskId, u64>,
    /// Tasks whose user function failed here (a worker remembers its failures).
    erred: HashSet<TaskId>,
    outbox: VecDeque<Event>,
    /// Over its memory pause threshold: it starts nothing (`WorkerPaused` is in its outbox).
    paused: bool,
}

struct Sim {
    s: Scheduler,
    rng: Rng,
    deps: HashMap<TaskId, Vec<TaskId>>,
    wanted: HashSet<TaskId>,
    retries: HashMap<TaskId, u32>,
    fails: HashSet<TaskId>,
    expected: HashMap<TaskId, u64>,
    /// Workers scattered data was put on and not freed there since.
    scatter_holders: HashMap<TaskId, Vec<WorkerId>>,
    workers: BTreeMap<WorkerId, SimWorker>,
    next_worker: WorkerId,
    assigned: HashMap<TaskId, WorkerId>,
    /// Tasks that were ever in a `Compute` (the others must keep a compact record
    /// while they are fresh roots waiting for a worker).
    ever_computed: HashSet<TaskId>,
    /// Tasks submitted with another priority than 0 (their record is not compact).
    prioritised: HashSet<TaskId>,
    deaths: HashMap<TaskId, u32>,
    terminal: HashMap<TaskId, Vec<Command>>,
    client_cancels: HashSet<TaskId>,
    released: HashSet<TaskId>,
    secede_percent: u64,
    missing_percent: u64,
    /// Wanted tasks the client reported missing and waits to hear about again.
    awaiting: HashSet<TaskId>,
    /// How often the client reported each result missing.
    client_reports: HashMap<TaskId, u32>,
    /// How often a worker reported an input of each task missing while it was assigned there.
    input_reports: HashMap<TaskId, u32>,
    /// Inputs whose reports pushed a dependent past the limit (a legitimate `Erred` cause).
    limit_causes: HashSet<TaskId>,
    /// Tasks that failed because of the missing-data limit (theirs or their inputs').
    limit_doomed: HashSet<TaskId>,
    /// Tasks the scheduler accepted as seceded on a worker, until their next `Compute`.
    sched_seceded: HashMap<TaskId, WorkerId>,
    /// Per task, how many times it was assigned to a worker it was not assigned to (a
    /// `Compute` after a `Cancel`, or to another worker).
    assignments: HashMap<TaskId, u64>,
    /// Per worker and task, the assignment each steal answer on its way was about.
    steal_answers: HashMap<(WorkerId, TaskId), VecDeque<u64>>,
    /// Workers told to retire (they leave with `Retired`, or die first).
    retiring: HashSet<WorkerId>,
    /// Copies fetched on `Replicate` whose report is on its way.
    handed_over: HashSet<(WorkerId, TaskId)>,
    /// Deadlines and the clock, drawn from a stream of their own (the other
    /// choices stay as they were for a seed).
    walltime: Rng,
    /// The scheduler's clock (ms).
    now_ms: u64,
    /// Workers that were given a deadline (the scheduler may retire them by itself).
    with_deadline: HashSet<WorkerId>,
    /// Workers that take a limited number of tasks (retired by the scheduler after).
    with_limit: HashMap<WorkerId, u32>,
    /// Whether workers joining now may get a deadline (not the initial ones).
    deadlines_on: bool,
    events: usize,
    stats: Stats,
}

impl SimWorker {
    /// Running tasks that occupy a slot (not seceded).
    fn busy(&self) -> usize {
        self.running
            .iter()
            .filter(|r| !matches!(r.2, Phase::Seceded(_)))
            .count()
    }
}

impl Sim {
    fn send(&mut self, event: Event) -> Result<(), SchedulerError> {
        let mut out = Vec::new();
        // What paused workers had assigned: a compute sent again for one of those
        // (answering a stale report) is no new assignment.
        let paused_had: HashSet<(WorkerId, TaskId)> = self
            .s
            .workers()
            .iter()
            .filter(|w| w.paused)
            .flat_map(|w| self.s.assigned_to(w.id).into_iter().map(move |t| (w.id, t)))
            .collect();
        let r = self.s.handle(event.clone(), &mut out);
        for (&worker, &limit) in &self.with_limit {
            let assigned = self.s.assigned_to(worker).len();
            assert!(
                assigned <= limit as usize,
                "worker {worker} has {assigned} tasks assigned, over its limit of {limit}"
            );
        }
        for c in &out {
            if let Command::Compute { worker, task, .. } = c {
                self.ever_computed.insert(*task);
                assert!(
                    paused_had.contains(&(*worker, *task))
                        || !self.s.workers().iter().any(|w| w.id == *worker && w.paused),
                    "task {task} newly assigned to worker {worker}, which the scheduler knows \
                     is paused"
                );
            }
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            println!("{event:?} -> {r:?} {out:?}");
        }
        self.events += 1;
        if let Err(e) = self.s.check_invariants() {
            panic!("invariants broken after {event:?}: {e}");
        }
        self.check_record_phases();
        if r.is_err() {
            assert!(out.is_empty(), "a refused event emitted commands");
        }
        for c in out {
            self.apply(c);
        }
        r
    }

    /// The scheduler's record of a task is split by phase (issue 14 item 5): a root
    /// that was never computed and waits ready for a worker keeps the compact record;
    /// a task running or holding a result has its placement part.
    fn check_record_phases(&self) {
        for (&task, deps) in &self.deps {
            let (Some(state), Some(compact)) =
                (self.s.state(task), self.s.has_compact_record(task))
            else {
                continue;
            };
            match state {
                TaskState::Ready
                    if deps.is_empty()
                        && !self.ever_computed.contains(&task)
                        && !self.prioritised.contains(&task) =>
                {
                    assert!(compact, "fresh ready root {task} lost its compact record")
                }
                TaskState::Processing => {
                    assert!(!compact, "processing task {task} has no placement part")
                }
                TaskState::Memory => {
                    assert!(!compact, "task {task} in memory has no placement part")
                }
                _ => {}
            }
        }
    }

    fn is_ancestor_or_self(&self, a: TaskId, t: TaskId) -> bool {
        let mut stack = vec![t];
        let mut seen = HashSet::new();
        while let Some(x) = stack.pop() {
            if x == a {
                return true;
            }
            if seen.insert(x) {
                if let Some(d) = self.deps.get(&x) {
                    stack.extend(d.iter().copied());
                }
            }
        }
        false
    }

    /// Whether the client holds a future for `task` that it was told the end of (scattered
    /// data is in memory from the start) and does not wait for news about.
    fn holds_an_ended_future(&self, task: TaskId) -> bool {
        !self.released.contains(&task)
            && !self.awaiting.contains(&task)
            && (task >= SCATTER_BASE || self.terminal.contains_key(&task))
    }

    /// Whether a live worker the data was scattered to, and never told to free it, still has
    /// it (a copy such a worker fetched again later is a replica like any other: the
    /// scheduler may lose its last known holder before it hears of it).
    fn scattered_anywhere(&self, task: TaskId) -> bool {
        self.scatter_holders[&task].iter().any(|h| {
            let w = &self.workers[h];
            w.alive && w.memory.contains_key(&task)
        })
    }

    fn record_terminal(&mut self, task: TaskId, c: Command) {
        assert!(self.wanted.contains(&task), "{c:?} for a task nobody wants");
        assert!(!self.released.contains(&task), "{c:?} after release");
        let v = self.terminal.entry(task).or_default();
        if self.awaiting.remove(&task) {
            // The client reported the result missing: it hears again how the task ends.
            v.clear();
        }
        v.push(c.clone());
        assert_eq!(v.len(), 1, "task {task} ended twice: {v:?}");
    }

    fn apply(&mut self, c: Command) {
        self.stats[match c {
            Command::Compute { .. } => 0,
            Command::Steal { .. } => 1,
            Command::Free { .. } => 3,
            Command::Cancel { .. } => 4,
            Command::Done { .. } => 5,
            Command::Erred { .. } => 6,
            Command::Lost { .. } => 7,
            Command::Cancelled { .. } => 8,
            Command::NoWorkerFits { .. } => unreachable!("these cases ask for no resources"),
            Command::Replicate { .. } => 15,
            Command::Retired { .. } => 16,
        }] += 1;
        match c {
            Command::Compute {
                worker,
                task,
                ref inputs,
            } => {
                let mut want: Vec<TaskId> = self.deps[&task].clone();
                want.dedup();
                let got: Vec<TaskId> = inputs.iter().map(|(d, _)| *d).collect();
                let (mut a, mut b) = (want.clone(), got.clone());
                a.sort_unstable();
                a.dedup();
                b.sort_unstable();
                assert_eq!(a, b, "inputs of {task}");
                for (d, holders) in inputs {
                    assert!(!holders.is_empty(), "input {d} of {task} is nowhere");
                }
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("compute on unknown worker");
                assert!(w.alive, "compute on dead worker");
                if self.assigned.insert(task, worker) != Some(worker) {
                    *self.assignments.entry(task).or_default() += 1;
                }
                self.sched_seceded.remove(&task);
                if let Some(r) = w.running.iter().find(|r| r.0 == task) {
                    if matches!(r.2, Phase::Seceded(_)) {
                        // Still waiting: the new assignment must not hold a slot either.
                        w.outbox.push_back(Event::Secede { worker, task });
                    }
                    return;
                }
                if w.erred.contains(&task) {
                    w.outbox.push_back(Event::TaskErred { worker, task });
                    return;
                }
                if w.memory.contains_key(&task) {
                    // Already computed here (a finish for an earlier assignment may still be
                    // on its way): report it again instead of recomputing.
                    w.outbox.push_back(Event::TaskFinished {
                        worker,
                        task,
                        nbytes: 1,
                    });
                    return;
                }
                if let Some(q) = w.queue.iter_mut().find(|(t, _)| *t == task) {
                    q.1 = inputs.clone();
                } else {
                    w.queue.push((task, inputs.clone()));
                }
            }
            Command::Steal { worker, task } => {
                assert_ne!(
                    self.sched_seceded.get(&task),
                    Some(&worker),
                    "steal of seceded task {task}"
                );
                let steal = self.rng.chance(80);
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("steal from unknown worker");
                assert!(w.alive);
                let pos = w.queue.iter().position(|(t, _)| *t == task);
                let stolen = match pos {
                    Some(p) if steal => {
                        self.stats[2] += 1;
                        w.queue.remove(p);
                        true
                    }
                    _ => false,
                };
                self.steal_answers
                    .entry((worker, task))
                    .or_default()
                    .push_back(self.assignments[&task]);
                let w = self.workers.get_mut(&worker).expect("worker");
                w.outbox.push_back(Event::StealResponse {
                    worker,
                    task,
                    stolen,
                });
            }
            Command::Free { worker, task } => {
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("free on unknown worker");
                assert!(w.alive);
                w.memory.remove(&task);
                if let Some(holders) = self.scatter_holders.get_mut(&task) {
                    holders.retain(|&h| h != worker);
                }
            }
            Command::Cancel { worker, task } => {
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("cancel on unknown worker");
                assert!(w.alive);
                w.queue.retain(|(t, _)| *t != task);
                if self.assigned.get(&task) == Some(&worker) {
                    self.assigned.remove(&task);
                }
            }
            Command::Done { task } => {
                self.record_terminal(task, c);
                let holders = self.s.who_has(task).to_vec();
                assert!(!holders.is_empty(), "done {task} held nowhere");
                for h in holders {
                    let w = &self.workers[&h];
                    assert!(w.alive, "done {task}: holder {h} is dead");
                    assert_eq!(
                        w.memory.get(&task),
                        Some(&self.expected[&task]),
                        "done {task}: wrong or missing value on {h}"
                    );
                }
            }
            Command::Erred { task, cause } => {
                self.record_terminal(task, c);
                assert!(
                    self.is_ancestor_or_self(cause, task),
                    "cause {cause} of {task}"
                );
                if cause == task {
                    assert!(self.fails.contains(&task), "{task} erred by itself");
                } else if self.limit_causes.contains(&cause) || self.limit_doomed.contains(&cause) {
                    // An input reported missing too often, or one that ended lost for it.
                } else if cause >= SCATTER_BASE {
                    assert!(
                        self.released.contains(&cause) || !self.scattered_anywhere(cause),
                        "scattered {cause} blamed while a holder has it"
                    );
                } else {
                    let lost = self.deaths.get(&cause).copied().unwrap_or(0) > self.retries[&cause];
                    assert!(
                        self.fails.contains(&cause) || lost,
                        "{task} erred because of {cause}, which neither failed nor was lost"
                    );
                }
            }
            Command::Lost { task, attempts } => {
                self.record_terminal(task, c);
                let deaths = self.deaths.get(&task).copied().unwrap_or(0);
                assert_eq!(attempts, deaths, "attempts of {task}");
                let reports = self.client_reports.get(&task).copied().unwrap_or(0);
                if reports > MISSING_DATA_LIMIT {
                    self.limit_doomed.insert(task);
                } else if task >= SCATTER_BASE {
                    assert!(
                        !self.scattered_anywhere(task),
                        "scattered {task} lost while a holder has it"
                    );
                } else {
                    assert!(
                        attempts > self.retries.get(&task).copied().unwrap_or(0),
                        "{task} lost within its retries"
                    );
                }
            }
            Command::NoWorkerFits { .. } => unreachable!("these cases ask for no resources"),
            Command::Replicate {
                worker,
                task,
                ref holders,
            } => {
                assert!(!holders.contains(&worker), "replicate {task} onto a holder");
                let fails = self.rng.chance(self.missing_percent);
                let source = holders.iter().find(|h| {
                    let hw = &self.workers[h];
                    hw.alive && hw.memory.contains_key(&task)
                });
                let value = source.map(|h| self.workers[h].memory[&task]);
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("replicate onto unknown worker");
                assert!(w.alive, "replicate onto a dead worker");
                assert!(
                    !self
                        .s
                        .workers()
                        .iter()
                        .any(|i| i.id == worker && i.retiring),
                    "replicate onto a retiring worker"
                );
                match value {
                    Some(v) if !fails => {
                        assert_eq!(v, self.expected[&task], "copy of {task}");
                        w.memory.insert(task, v);
                        w.outbox.push_back(Event::Replicated { worker, task });
                        self.handed_over.insert((worker, task));
                    }
                    _ => {
                        self.stats[17] += 1;
                        w.outbox.push_back(Event::ReplicateFailed { worker, task });
                    }
                }
            }
            Command::Retired { worker } => {
                assert!(self.retiring.remove(&worker), "{worker} retired unasked");
                if self.with_deadline.remove(&worker) {
                    self.stats[18] += 1;
                }
                if self.with_limit.remove(&worker).is_some() {
                    self.stats[20] += 1;
                }
                assert!(
                    !self.assigned.values().any(|&w| w == worker),
                    "{worker} retired with tasks assigned"
                );
                let w = self
                    .workers
                    .get_mut(&worker)
                    .expect("retired unknown worker");
                assert!(w.alive, "a dead worker retired");
                // It says goodbye and exits: nothing of it counts as a death.
                w.alive = false;
                w.queue.clear();
                w.running.clear();
                w.memory.clear();
            }
            Command::Cancelled { task } => {
                self.record_terminal(task, c);
                assert!(
                    self.client_cancels
                        .iter()
                        .any(|&a| self.is_ancestor_or_self(a, task)),
                    "{task} cancelled but neither it nor an ancestor was"
                );
            }
        }
    }

    fn add_worker(&mut self) {
        let id = self.next_worker;
        self.next_worker += 1;
        let slots = 1 + self.rng.below(3) as u32;
        self.workers.insert(
            id,
            SimWorker {
                slots,
                alive: true,
                queue: Vec::new(),
                running: Vec::new(),
                starts: 0,
                memory: HashMap::new(),
                erred: HashSet::new(),
                outbox: VecDeque::new(),
                paused: false,
            },
        );
        if self.deadlines_on && self.walltime.chance(20) {
            // A `slurm:per-task` job's worker: it leaves after its tasks (the
            // limit comes before it joins, as the server feeds it).
            let max_tasks = 1 + self.walltime.below(3) as u32;
            self.with_limit.insert(id, max_tasks);
            self.retiring.insert(id);
            self.send(Event::WorkerTaskLimit {
                worker: id,
                max_tasks,
            })
            .unwrap();
        }
        self.send(Event::WorkerAdded {
            worker: id,
            slots,
            resources: Resources::new(),
        })
        .unwrap();
        if self.deadlines_on && self.walltime.chance(25) {
            // A batch job's walltime: sometimes already within the margin.
            let deadline_ms = self.now_ms + self.walltime.below(30_000) as u64;
            self.with_deadline.insert(id);
            self.retiring.insert(id);
            self.send(Event::WorkerDeadline {
                worker: id,
                deadline_ms,
            })
            .unwrap();
        }
    }

    /// The clock moves on.
    fn tick(&mut self) {
        self.now_ms += self.walltime.below(3_000) as u64;
        self.send(Event::Tick {
            now_ms: self.now_ms,
        })
        .unwrap();
    }

    fn kill(&mut self, id: WorkerId) {
        let keep_outbox = self.rng.chance(30);
        let w = self.workers.get_mut(&id).unwrap();
        w.alive = false;
        w.queue.clear();
        w.running.clear();
        w.memory.clear();
        if !keep_outbox {
            w.outbox.clear();
            self.steal_answers.retain(|(worker, _), _| *worker != id);
        }
        let victims: Vec<TaskId> = self
            .assigned
            .iter()
            .filter(|(_, &w)| w == id)
            .map(|(&t, _)| t)
            .collect();
        for t in victims {
            self.assigned.remove(&t);
            *self.deaths.entry(t).or_default() += 1;
        }
        self.retiring.remove(&id);
        self.with_deadline.remove(&id);
        self.with_limit.remove(&id);
        self.send(Event::WorkerRemoved { worker: id }).unwrap();
    }

    fn start(&mut self, id: WorkerId) {
        let copy = self.rng.chance(30);
        let w = self.workers.get_mut(&id).unwrap();
        let i = (self.rng.next() % w.queue.len() as u64) as usize;
        let (task, inputs) = self.workers.get_mut(&id).unwrap().queue.remove(i);
        if !inputs.is_empty() && self.rng.chance(self.missing_percent) {
            // No listed holder of one input answers: the worker drops the task and says so.
            let (d, holders) = inputs[self.rng.below(inputs.len())].clone();
            let w = self.workers.get_mut(&id).unwrap();
            w.outbox.push_back(Event::MissingData {
                task: d,
                holders,
                requester: Some((id, task)),
            });
            return;
        }
        let mut values = HashMap::new();
        let mut copies = Vec::new();
        for (d, holders) in &inputs {
            let src = holders.iter().find(|h| {
                let hw = &self.workers[h];
                hw.alive && hw.memory.contains_key(d)
            });
            let Some(&src) = src else {
                panic!("task {task} on {id}: input {d} not on any listed holder {holders:?}");
            };
            let v = self.workers[&src].memory[d];
            assert_eq!(v, self.expected[d], "input {d} of {task} read from {src}");
            values.insert(*d, v);
            if copy && src != id {
                copies.push((*d, v));
            }
        }
        let value = if self.fails.contains(&task) {
            None
        } else {
            Some(
                self.deps[&task]
                    .iter()
                    .fold(task, |acc, d| mix(acc, values[d])),
            )
        };
        let w = self.workers.get_mut(&id).unwrap();
        for (d, v) in copies {
            if w.memory.insert(d, v).is_none() {
                w.outbox.push_back(Event::Replicated {
                    worker: id,
                    task: d,
                });
            }
        }
        let phase = if self.rng.chance(self.secede_percent) {
            Phase::WillWait
        } else {
            Phase::Runs
        };
        w.starts += 1;
        w.running.push((task, value, phase));
    }

    /// A running task that will wait secedes.
    fn secede(&mut self, id: WorkerId) {
        let w = self.workers.get_mut(&id).unwrap();
        let cands: Vec<usize> = (0..w.running.len())
            .filter(|&i| w.running[i].2 == Phase::WillWait)
            .collect();
        let i = cands[(self.rng.next() % cands.len() as u64) as usize];
        w.running[i].2 = Phase::Seceded(w.starts);
        let task = w.running[i].0;
        w.outbox.push_back(Event::Secede { worker: id, task });
    }

    /// Whether a seceded task may rejoin: its worker used the freed slot since, or there
    /// is nothing ready it could have used it for.
    fn may_rejoin(&self, w: &SimWorker, phase: Phase) -> bool {
        match phase {
            Phase::Seceded(at) => w.starts > at || self.s.ready_count() == 0,
            _ => false,
        }
    }

    /// A seceded task stops waiting and rejoins (sometimes to wait again later).
    fn rejoin(&mut self, id: WorkerId) {
        let again = self.rng.chance(20);
        let w = &self.workers[&id];
        let cands: Vec<usize> = (0..w.running.len())
            .filter(|&i| self.may_rejoin(w, w.running[i].2))
            .collect();
        let i = cands[(self.rng.next() % cands.len() as u64) as usize];
        let w = self.workers.get_mut(&id).unwrap();
        w.running[i].2 = if again { Phase::WillWait } else { Phase::Runs };
        let task = w.running[i].0;
        w.outbox.push_back(Event::Rejoin { worker: id, task });
    }

    fn finish(&mut self, id: WorkerId) {
        let nbytes = self.rng.next() % 100;
        let w = self.workers.get_mut(&id).unwrap();
        let cands: Vec<usize> = (0..w.running.len())
            .filter(|&i| w.running[i].2 == Phase::Runs)
            .collect();
        let i = cands[(self.rng.next() % cands.len() as u64) as usize];
        let (task, value, _) = w.running.remove(i);
        match value {
            Some(v) => {
                w.memory.insert(task, v);
                w.outbox.push_back(Event::TaskFinished {
                    worker: id,
                    task,
                    nbytes,
                });
            }
            None => {
                w.erred.insert(task);
                w.outbox.push_back(Event::TaskErred { worker: id, task });
            }
        }
    }

    /// Worker `id` pauses (it starts nothing from now on) or resumes, and says so.
    fn pause(&mut self, id: WorkerId, paused: bool) {
        let w = self.workers.get_mut(&id).unwrap();
        w.paused = paused;
        w.outbox
            .push_back(Event::WorkerPaused { worker: id, paused });
        self.stats[19] += 1;
    }

    fn deliver(&mut self, id: WorkerId) {
        let w = self.workers.get_mut(&id).unwrap();
        let alive = w.alive;
        let e = w.outbox.pop_front().unwrap();
        // A steal answer about an earlier assignment says nothing about the current one.
        let current_answer = match e {
            Event::StealResponse { task, .. } => {
                let about = self
                    .steal_answers
                    .get_mut(&(id, task))
                    .and_then(VecDeque::pop_front);
                about == self.assignments.get(&task).copied()
            }
            _ => true,
        };
        if let (
            Event::TaskFinished { task, .. }
            | Event::TaskErred { task, .. }
            | Event::StealResponse {
                task, stolen: true, ..
            },
            true,
            true,
        ) = (&e, alive, current_answer)
        {
            if self.assigned.get(task) == Some(&id) {
                self.assigned.remove(task);
            }
        }
        if !alive {
            self.stats[9] += 1;
        }
        let moved = match e {
            Event::Secede { task, .. } | Event::Rejoin { task, .. } => {
                self.stats[if matches!(e, Event::Secede { .. }) {
                    10
                } else {
                    11
                }] += 1;
                // The scheduler may have moved the task meanwhile (cancelled, pulled back,
                // released): then the event is refused.
                (self.s.processing_on(task) != Some(id)).then(|| {
                    if self.s.state(task).is_some() {
                        SchedulerError::NotProcessing { task, worker: id }
                    } else {
                        SchedulerError::UnknownTask(task)
                    }
                })
            }
            _ => None,
        };
        if let Event::MissingData {
            task: input,
            requester: Some((w, dependent)),
            ..
        } = e
        {
            self.stats[13] += 1;
            if self.s.processing_on(dependent) == Some(w) {
                let n = self.input_reports.entry(dependent).or_default();
                *n += 1;
                if *n > MISSING_DATA_LIMIT {
                    self.limit_causes.insert(input);
                    self.limit_doomed.insert(dependent);
                }
            }
        }
        let before = e.clone();
        let r = self.send(e);
        // Scattered data handed over by a retiring worker: once the scheduler counts
        // the copy, it is as good as the scattered one.
        if let Event::Replicated { task, .. } = before {
            if self.handed_over.remove(&(id, task)) && alive && self.s.who_has(task).contains(&id) {
                if let Some(holders) = self.scatter_holders.get_mut(&task) {
                    holders.push(id);
                }
            }
        }
        if matches!(before, Event::MissingData { .. }) {
            r.unwrap(); // from a dead worker too: its news about holders still counts
        } else if !alive {
            assert_eq!(r, Err(SchedulerError::UnknownWorker(id)));
        } else if let Some(err) = moved {
            self.stats[12] += 1;
            assert_eq!(r, Err(err));
        } else {
            r.unwrap();
            match before {
                Event::Secede { task, .. } => {
                    self.sched_seceded.insert(task, id);
                }
                Event::Rejoin { task, .. } => {
                    self.sched_seceded.remove(&task);
                }
                // A copy of a result being recomputed here was taken as the result: the
                // assignment is over (the worker's re-reported finish may never arrive if
                // it dies first, and that death must not count against the task).
                Event::Replicated { task, .. }
                    if self.assigned.get(&task) == Some(&id)
                        && self.s.processing_on(task) != Some(id) =>
                {
                    self.assigned.remove(&task);
                }
                _ => {}
            }
        }
    }
}

/// Runs one case to quiescence, checking every command on the way and the end state.
fn run_case(case: Case) -> Stats {
    let mut rng = Rng(case.seed);
    let n = case.tasks.len();
    let mut sim = Sim {
        s: Scheduler::new(SchedulerConfig {
            prefetch_per_worker: case.prefetch,
            ..SchedulerConfig::default()
        }),
        rng: Rng(rng.next()),
        deps: HashMap::new(),
        wanted: HashSet::new(),
        retries: HashMap::new(),
        fails: HashSet::new(),
        expected: HashMap::new(),
        scatter_holders: HashMap::new(),
        workers: BTreeMap::new(),
        next_worker: 1,
        assigned: HashMap::new(),
        ever_computed: HashSet::new(),
        prioritised: HashSet::new(),
        deaths: HashMap::new(),
        terminal: HashMap::new(),
        client_cancels: HashSet::new(),
        released: HashSet::new(),
        secede_percent: case.secede_percent,
        missing_percent: case.missing_percent,
        awaiting: HashSet::new(),
        client_reports: HashMap::new(),
        input_reports: HashMap::new(),
        limit_causes: HashSet::new(),
        limit_doomed: HashSet::new(),
        sched_seceded: HashMap::new(),
        assignments: HashMap::new(),
        steal_answers: HashMap::new(),
        retiring: HashSet::new(),
        handed_over: HashSet::new(),
        walltime: Rng(case.seed ^ 0x005E_ED0F_DEAD_11E5),
        now_ms: 0,
        with_deadline: HashSet::new(),
        with_limit: HashMap::new(),
        deadlines_on: false,
        events: 0,
        stats: [0; STAT_NAMES.len()],
    };
    for j in 0..case.scattered {
        let id = SCATTER_BASE + j as u64;
        sim.expected.insert(id, mix(id, 7));
        sim.deps.insert(id, Vec::new());
        sim.wanted.insert(id);
    }
    for (i, t) in case.tasks.iter().enumerate() {
        let id = i as u64;
        let mut deps = t.deps.clone();
        let mut seen = HashSet::new();
        deps.retain(|d| seen.insert(*d));
        let v = deps.iter().fold(id, |acc, d| mix(acc, sim.expected[d]));
        sim.expected.insert(id, v);
        sim.deps.insert(id, deps);
        if t.wanted {
            sim.wanted.insert(id);
        }
        sim.retries.insert(id, t.retries);
        if t.fails {
            sim.fails.insert(id);
        }
    }
    for _ in 0..case.initial_workers {
        sim.add_worker();
    }
    for j in 0..case.scattered {
        let id = SCATTER_BASE + j as u64;
        let alive: Vec<WorkerId> = sim.workers.keys().copied().collect();
        let mut holders = vec![alive[rng.below(alive.len())]];
        if rng.chance(40) {
            holders.push(alive[rng.below(alive.len())]);
            holders.dedup();
        }
        for h in &holders {
            sim.workers
                .get_mut(h)
                .unwrap()
                .memory
                .insert(id, sim.expected[&id]);
        }
        sim.scatter_holders.insert(id, holders.clone());
        sim.send(Event::Scattered {
            task: id,
            workers: holders,
            nbytes: 50,
        })
        .unwrap();
    }
    let mut batches: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for &s in &case.batch_starts {
        batches.push(start..s);
        start = s;
    }
    batches.push(start..n);
    let mut next_batch = 0;
    let (mut deaths, mut joins, mut cancels, mut client_missing) = (0, 0, 0, 0);
    // Read from the seed without drawing from `rng`: the other choices stay as they were.
    let max_retirements = (case.seed >> 61) as u32;
    let mut retirements = 0;

    sim.deadlines_on = true;
    for step in 0.. {
        assert!(step < 200_000, "no quiescence: livelock?");
        if sim.walltime.chance(10) {
            sim.tick();
        }
        let takes_work: HashSet<WorkerId> = sim
            .s
            .workers()
            .iter()
            // A worker that used its task limit takes no more either.
            .filter(|i| !i.retiring && sim.s.tasks_left(i.id) != Some(0))
            .map(|i| i.id)
            .collect();
        if !sim
            .workers
            .iter()
            .any(|(id, w)| w.alive && takes_work.contains(id))
        {
            // (As adapt does: a retiring worker waits for one to hand its results to.)
            sim.add_worker();
            continue;
        }
        let all_submitted = next_batch == batches.len();
        let startable: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| {
                w.alive && !w.paused && !w.queue.is_empty() && (w.busy() as u32) < w.slots
            })
            .map(|(&i, _)| i)
            .collect();
        let finishable: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| w.alive && w.running.iter().any(|r| r.2 == Phase::Runs))
            .map(|(&i, _)| i)
            .collect();
        let secedable: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| w.alive && w.running.iter().any(|r| r.2 == Phase::WillWait))
            .map(|(&i, _)| i)
            .collect();
        let rejoinable: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| w.alive && w.running.iter().any(|r| sim.may_rejoin(w, r.2)))
            .map(|(&i, _)| i)
            .collect();
        let deliverable: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| !w.outbox.is_empty())
            .map(|(&i, _)| i)
            .collect();
        let releasable: Vec<TaskId> = if all_submitted {
            let mut v: Vec<TaskId> = sim
                .wanted
                .iter()
                .copied()
                .filter(|&t| sim.holds_an_ended_future(t))
                .collect();
            v.sort_unstable();
            v
        } else {
            Vec::new()
        };
        let progress = !startable.is_empty()
            || !finishable.is_empty()
            || !secedable.is_empty()
            || !rejoinable.is_empty()
            || !deliverable.is_empty()
            || !releasable.is_empty()
            || !all_submitted;
        let paused: Vec<WorkerId> = sim
            .workers
            .iter()
            .filter(|(_, w)| w.alive && w.paused)
            .map(|(&i, _)| i)
            .collect();
        if !progress && !paused.is_empty() {
            // Memory goes down in the end (spilled, or tasks finished elsewhere).
            sim.pause(paused[0], false);
            continue;
        }
        if !progress {
            let unended: Vec<TaskId> = sim
                .wanted
                .iter()
                .copied()
                .filter(|t| {
                    (*t < SCATTER_BASE && !sim.terminal.contains_key(t)) || sim.awaiting.contains(t)
                })
                .collect();
            assert!(
                unended.is_empty(),
                "deadlock: wanted tasks {unended:?} never end"
            );
            break;
        }
        if (!secedable.is_empty() || !rejoinable.is_empty()) && rng.chance(20) {
            if !secedable.is_empty() && (rejoinable.is_empty() || rng.chance(50)) {
                sim.secede(secedable[rng.below(secedable.len())]);
            } else {
                sim.rejoin(rejoinable[rng.below(rejoinable.len())]);
            }
            continue;
        }
        match rng.below(100) {
            0..=24 if !startable.is_empty() => sim.start(startable[rng.below(startable.len())]),
            25..=49 if !finishable.is_empty() => {
                sim.finish(finishable[rng.below(finishable.len())])
            }
            50..=79 if !deliverable.is_empty() => {
                sim.deliver(deliverable[rng.below(deliverable.len())])
            }
            80..=84 if !all_submitted => {
                let mut specs: Vec<TaskSpec> = batches[next_batch]
                    .clone()
                    .map(|i| {
                        let t = &case.tasks[i];
                        TaskSpec {
                            id: i as u64,
                            deps: t.deps.clone(),
                            priority: t.priority,
                            retries: t.retries,
                            wanted: t.wanted,
                            resources: Resources::new(),
                            kind: 1 + i as u64 % 3,
                        }
                    })
                    .collect();
                for k in (1..specs.len()).rev() {
                    specs.swap(k, rng.below(k + 1));
                }
                next_batch += 1;
                sim.prioritised
                    .extend(specs.iter().filter(|s| s.priority != 0).map(|s| s.id));
                sim.send(Event::Submit { tasks: specs }).unwrap();
            }
            85..=89 if !releasable.is_empty() => {
                let t = releasable[rng.below(releasable.len())];
                sim.released.insert(t);
                sim.send(Event::Release { task: t }).unwrap();
            }
            90..=92 if deaths < case.max_deaths => {
                let alive: Vec<WorkerId> = sim
                    .workers
                    .iter()
                    .filter(|(_, w)| w.alive)
                    .map(|(&i, _)| i)
                    .collect();
                deaths += 1;
                sim.kill(alive[rng.below(alive.len())]);
            }
            99 if case.pauses => {
                let alive: Vec<WorkerId> = sim
                    .workers
                    .iter()
                    .filter(|(_, w)| w.alive)
                    .map(|(&i, _)| i)
                    .collect();
                let id = alive[rng.below(alive.len())];
                let paused = !sim.workers[&id].paused;
                sim.pause(id, paused);
            }
            93..=95 if joins < case.max_joins => {
                joins += 1;
                sim.add_worker();
            }
            97..=98 if client_missing < case.max_client_missing => {
                // The client cannot fetch a result it was told about from (some of) its holders.
                let mut fetchable: Vec<TaskId> = sim
                    .wanted
                    .iter()
                    .copied()
                    .filter(|&t| {
                        sim.holds_an_ended_future(t)
                            && sim.s.state(t) == Some(wherever_scheduler::TaskState::Memory)
                    })
                    .collect();
                if fetchable.is_empty() {
                    continue;
                }
                fetchable.sort_unstable();
                let t = fetchable[rng.below(fetchable.len())];
                let mut holders = sim.s.who_has(t).to_vec();
                if rng.chance(50) {
                    holders = vec![holders[rng.below(holders.len())]];
                }
                client_missing += 1;
                sim.stats[14] += 1;
                sim.awaiting.insert(t);
                *sim.client_reports.entry(t).or_default() += 1;
                sim.send(Event::MissingData {
                    task: t,
                    holders,
                    requester: None,
                })
                .unwrap();
            }
            99 if retirements < max_retirements => {
                let candidates: Vec<WorkerId> = sim
                    .workers
                    .iter()
                    .filter(|(id, w)| w.alive && takes_work.contains(id))
                    .map(|(&i, _)| i)
                    .collect();
                let id = candidates[rng.below(candidates.len())];
                retirements += 1;
                sim.retiring.insert(id);
                sim.send(Event::Retire { worker: id }).unwrap();
            }
            96 if cancels < case.max_cancels && next_batch > 0 => {
                let t = rng.below(batches[next_batch - 1].end) as u64;
                if sim.s.state(t).is_some() {
                    cancels += 1;
                    sim.client_cancels.insert(t);
                    sim.send(Event::Cancel { task: t }).unwrap();
                }
            }
            _ => {}
        }
    }

    // Exactly one ending for every wanted task, and Done when nothing could stop it.
    for i in 0..n as u64 {
        if !sim.wanted.contains(&i) {
            assert!(!sim.terminal.contains_key(&i));
            continue;
        }
        let ends = &sim.terminal[&i];
        assert_eq!(ends.len(), 1);
        let mut doomed = false;
        let mut stack = vec![i];
        let mut seen = HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            doomed |= sim.limit_doomed.contains(&x);
            if x >= SCATTER_BASE {
                doomed |= sim.released.contains(&x) || !sim.scattered_anywhere(x);
            } else {
                doomed |= sim.fails.contains(&x)
                    || sim.client_cancels.contains(&x)
                    || sim.deaths.get(&x).copied().unwrap_or(0) > sim.retries[&x];
            }
            stack.extend(sim.deps[&x].iter().copied());
        }
        if !doomed {
            assert_eq!(
                ends[0],
                Command::Done { task: i },
                "task {i} should be done"
            );
        }
    }
    for (t, d) in &sim.deaths {
        assert!(
            *d <= sim.retries[t] + 1,
            "task {t} ran {d} times into dying workers"
        );
    }
    // Nothing leaks.
    assert_eq!(sim.s.task_count(), 0, "tasks still tracked");
    for info in sim.s.workers() {
        assert_eq!(info.held, 0);
        assert_eq!(info.processing, 0);
        assert_eq!(info.seceded, 0);
    }
    for (id, w) in &sim.workers {
        if w.alive {
            assert!(
                w.memory.is_empty(),
                "worker {id} still holds {:?}",
                w.memory
            );
        }
    }
    sim.stats
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_clusters_end_every_task_exactly_once(case in case_strategy()) {
        run_case(case);
    }
}

/// The generator is not toothless: a fixed sample of cases reaches every kind of command
/// and event the property is meant to exercise.
#[test]
fn random_cases_exercise_every_path() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = case_strategy();
    let mut total: Stats = [0; STAT_NAMES.len()];
    for _ in 0..48 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        for (t, n) in total.iter_mut().zip(run_case(case)) {
            *t += n;
        }
    }
    for (name, n) in STAT_NAMES.iter().zip(total) {
        assert!(n > 0, "no {name} in 48 random cases");
    }
}
