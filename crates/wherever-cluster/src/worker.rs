//! The worker runtime: a process of the user's program that connects to a
//! scheduler, runs the tasks it is given on `slots` threads, keeps their results
//! until told to free them, and serves them to clients and other workers.

use crate::auth::{this_build, Secret};
use crate::connection::{
    accept_gated, adopt_announced_limit, configured_max_value, join, max_value_size_given,
    over_the_limit, read_batch, read_batch_within, run_writer_with, silence_timeout, split,
    write_batch, HandshakeGate, FRAME_BUDGET, NO_CHALLENGE,
};
use crate::fetch::FetchError;
use crate::protocol::{Input, Message, Role, TaskId, TaskMessage, INLINE_RESULT_LIMIT};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use wherever_core::holes::fill_holes;
use wherever_core::id_hash::IdMap;
use wherever_core::panic_capture::{install_hook, run_caught};
use wherever_core::registry::{self, EncodedCall};
use wherever_core::{TaskError, TaskErrorKind};

mod cpu;
mod flush;
mod identity;
mod limits;
mod memory;
mod monitor;
mod reconnect;
mod reports;
mod resources;
mod spill;
mod store;
mod watchdog;
pub use identity::{DEADLINE_VARIABLE, MAX_TASKS_VARIABLE};
pub use limits::{
    machine_memory, worker_memory_limits, MemoryLimits, DEFAULT_FRACTIONS, MEMORY_LIMIT_VARIABLE,
    MEMORY_SHARE_VARIABLE, PAUSE_VARIABLE, TARGET_VARIABLE, TERMINATE_VARIABLE,
};
pub use monitor::EXIT_STATUS as MEMORY_EXIT_STATUS;
pub use reconnect::{death_timeout, DEATH_TIMEOUT_VARIABLE, DEFAULT_DEATH_TIMEOUT};
pub use resources::RESOURCES_VARIABLE;
pub use spill::remove_directories_of as remove_spill_directories_of;
pub use watchdog::{DEFAULT_GRACE, GRACE_VARIABLE};

/// The environment variable giving a worker's task threads (default 1).
pub const THREADS_VARIABLE: &str = "WHEREVER_WORKER_THREADS";

/// The environment variable telling a worker started by a launcher to keep its
/// standard input open after the secret line and to exit (status 0) when it
/// reaches end-of-file: how a worker learns that its ssh session or `srun` step
/// ended, also when the client was killed and said no goodbye. Set to `1`.
pub const EXIT_ON_STDIN_EOF_VARIABLE: &str = "WHEREVER_EXIT_ON_STDIN_EOF";

/// The plan this worker's tasks' own tasks run under, as its scheduler last said
/// ([`Message::InnerPlan`]).
static INNER_PLAN: Mutex<Option<String>> = Mutex::new(None);

/// The plan (a plan string, e.g. `threads:3`) the tasks that this worker's tasks
/// submit run under: the inner levels of the plan of the client whose tasks the
/// scheduler runs, as the scheduler told this worker; `None` when that plan had a
/// single level (nested tasks then go to this worker's own scheduler) or outside
/// a worker.
pub fn inner_plan() -> Option<String> {
    INNER_PLAN.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_inner_plan(plan: Option<String>) {
    *INNER_PLAN.lock().unwrap_or_else(|p| p.into_inner()) = plan;
}

/// Parses `tcp://HOST:PORT` (or `HOST:PORT`) into something to connect to.
pub fn parse_address(address: &str) -> Result<String, String> {
    let rest = address.strip_prefix("tcp://").unwrap_or(address);
    match rest.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && port.parse::<u16>().map(|p| p > 0).unwrap_or(false) =>
        {
            Ok(rest.to_string())
        }
        _ => Err(format!(
            "invalid scheduler address `{address}`: expected tcp://HOST:PORT"
        )),
    }
}

/// Runs this process as a worker of the scheduler at `address`; then exits the
/// process. A worker that cannot reach its scheduler (not started yet, restarted,
/// network cut) connects again with backoff for the death timeout
/// ([`death_timeout`]); one that gives up, or that the scheduler removes, exits
/// with status 1 and says why. The secret comes from standard input or the
/// environment ([`Secret::take_for_worker`]), which is then cleared of it: call
/// this before starting any thread.
pub fn run(address: &str) -> ! {
    // Also when this thread unwinds from a panic.
    let spill_directory = spill::RemoveOnDrop;
    let code = match run_until_done(address) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("wherever worker (process {}): {reason}", std::process::id());
            1
        }
    };
    drop(spill_directory);
    std::process::exit(code)
}

fn run_until_done(address: &str) -> Result<(), String> {
    let secret = Secret::take_for_worker().map_err(|e| e.to_string())?;
    if std::env::var_os(EXIT_ON_STDIN_EOF_VARIABLE).is_some_and(|v| v == "1") {
        std::env::remove_var(EXIT_ON_STDIN_EOF_VARIABLE);
        exit_on_stdin_eof();
    }
    let target = parse_address(address)?;
    let death_timeout = death_timeout()?;
    resources::advertised()?; // a malformed value is an error before connecting
    identity::name()?;
    identity::group()?;
    identity::deadline()?;
    watchdog::grace()?;
    let limits = MemoryLimits::from_env()?;
    let slots = match std::env::var(THREADS_VARIABLE) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!("{THREADS_VARIABLE}=`{text}`: expected a whole number of at least 1")
            })?,
        Err(_) => 1,
    };
    install_hook();
    // Before the first handshake and its timeout (cheap: a build-id note read).
    let _ = this_build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the worker's runtime: {e}"))?;
    runtime.block_on(serve_until_given_up(
        target,
        secret,
        slots,
        limits,
        death_timeout,
    ))
}

/// Watches standard input on a thread of its own (after the secret line has been
/// read) and exits the process with status 0 when it reaches end-of-file or fails.
fn exit_on_stdin_eof() {
    let watch = || {
        use std::io::{Read, Write};
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        // The launcher's session is gone; stderr may be gone with it.
        let _ = writeln!(
            std::io::stderr(),
            "wherever worker (process {}): standard input closed (the launcher's session \
             ended): exiting",
            std::process::id()
        );
        std::process::exit(0)
    };
    if let Err(error) = std::thread::Builder::new()
        .name("wherever-stdin-watch".into())
        .spawn(watch)
    {
        eprintln!("wherever worker: cannot watch standard input: {error}");
    }
}

/// Serves the scheduler at `target`, connecting again after each loss for up to
/// `death_timeout`. Each connection is a new worker to the scheduler, so the
/// results held for the previous one are dropped. With a zero death timeout (the
/// local launcher's workers) a closed connection ends the worker quietly.
async fn serve_until_given_up(
    target: String,
    secret: Secret,
    slots: u32,
    limits: MemoryLimits,
    death_timeout: Duration,
) -> Result<(), String> {
    let mut first = true;
    // Since when connections fail before the scheduler's challenge, if they do.
    let mut unanswered: Option<tokio::time::Instant> = None;
    loop {
        let stream = reconnect::connect_within(&target, death_timeout, first).await?;
        first = false;
        // A limit the scheduler changed holds on the next connection too.
        let limits = worker_memory_limits().unwrap_or(limits);
        let ended = serve_scheduler(stream, &secret, slots, limits).await;
        if !matches!(ended, Ended::Unanswered(_)) {
            unanswered = None;
        }
        match ended {
            Ended::Refused(reason) => return Err(reason),
            Ended::Unanswered(reason) => {
                let since = *unanswered.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= death_timeout {
                    return Err(format!("cannot join the scheduler at {target}: {reason}"));
                }
                // A scheduler going down (or a stranger's port): pause, then again.
                tokio::time::sleep(UNANSWERED_PAUSE).await;
            }
            Ended::Removed => {
                return Err("the scheduler removed this worker (told it to shut down)".to_string())
            }
            Ended::Goodbye => return Ok(()),
            Ended::Closed if death_timeout.is_zero() => return Ok(()),
            Ended::Lost(reason) if death_timeout.is_zero() => {
                return Err(format!("lost the scheduler: {reason}"))
            }
            Ended::Closed => eprintln!(
                "wherever worker (process {}): the scheduler at {target} closed the connection; \
                 connecting again for up to {} s",
                std::process::id(),
                death_timeout.as_secs_f64()
            ),
            Ended::Lost(reason) => eprintln!(
                "wherever worker (process {}): lost the scheduler at {target} ({reason}); \
                 connecting again for up to {} s",
                std::process::id(),
                death_timeout.as_secs_f64()
            ),
        }
    }
}

/// The pause before connecting again after a connection that failed before the
/// scheduler's challenge.
const UNANSWERED_PAUSE: Duration = Duration::from_millis(200);

/// Why a connection to the scheduler ended.
enum Ended {
    /// The connection failed before the scheduler's challenge (reset, closed):
    /// nothing was refused; tried again within the death timeout.
    Unanswered(String),
    /// The handshake failed (wrong secret, another protocol): trying again
    /// would fail the same way.
    Refused(String),
    /// The scheduler said to shut down.
    Removed,
    /// The scheduler said goodbye: the cluster ended normally.
    Goodbye,
    /// The scheduler closed the connection.
    Closed,
    /// The connection broke or went silent, or the scheduler broke the protocol.
    Lost(String),
}

/// Aborts the spawned task it holds when dropped (a connection's helpers end
/// with the connection).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves one connection to the scheduler as a new worker, until it ends; a
/// failure before the worker joined (the handshake) is a refusal.
async fn serve_scheduler(
    stream: TcpStream,
    secret: &Secret,
    slots: u32,
    limits: MemoryLimits,
) -> Ended {
    match serve_connection(stream, secret, slots, limits).await {
        Ok(ended) => ended,
        Err(reason) if reason.starts_with(NO_CHALLENGE) => Ended::Unanswered(reason),
        Err(reason) => Ended::Refused(reason),
    }
}

async fn serve_connection(
    stream: TcpStream,
    secret: &Secret,
    slots: u32,
    limits: MemoryLimits,
) -> Result<Ended, String> {
    let local_ip = stream.local_addr().map_err(|e| e.to_string())?.ip();
    let data_listener = TcpListener::bind((local_ip, 0))
        .await
        .map_err(|e| format!("cannot open the data port: {e}"))?;
    let data_address = data_listener.local_addr().map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = split(stream);
    let role = Role::Worker {
        slots,
        data_address,
        resources: resources::advertised()?,
        name: identity::name()?,
        group: identity::group()?,
        time_left_ms: identity::deadline()?.map(identity::time_left_ms),
        max_tasks: identity::max_tasks()?,
        memory: limits.thresholds().map(Box::new),
    };
    let (id, mut early) = join(&mut reader, &mut writer, secret, role, this_build(), true).await?;
    // A new connection is a new worker: the scheduler says the inner plan again.
    set_inner_plan(None);
    let label = format!(
        "worker {id} (process {}) on {}",
        std::process::id(),
        crate::host_name()
    );

    let store = Arc::new(Store::new(
        limits.target.unwrap_or(u64::MAX),
        spill::SpillFiles::new(),
    ));
    let _data_port = AbortOnDrop(
        tokio::spawn(serve_data(data_listener, secret.clone(), store.clone())).abort_handle(),
    );
    let (outgoing, queue) = unbounded_channel();
    let flushed = Arc::new(flush::Flushed::default());
    let taken = flushed.clone();
    let _writer = AbortOnDrop(
        tokio::spawn(run_writer_with(writer, queue, move |batch| {
            taken.taken(batch)
        }))
        .abort_handle(),
    );
    let pause = Arc::new(monitor::Pause::default());
    let reports = Arc::new(reports::HeldReports::new(outgoing.clone()));
    let limits = Arc::new(std::sync::Mutex::new(limits));
    let _monitor = monitor::start(
        limits.clone(),
        Arc::downgrade(&store),
        pause.clone(),
        outgoing.clone(),
        flushed,
        reports.clone(),
    );
    let pool = Arc::new(TaskPool::start(
        slots,
        label,
        store.clone(),
        pause,
        outgoing.clone(),
        reports,
    ));

    let silence = silence_timeout();
    loop {
        // Messages that came in the same frame as the welcome go first.
        let batch = match std::mem::take(&mut early) {
            early if !early.is_empty() => early,
            _ => match read_batch_within(&mut reader, silence).await {
                Ok(Some(batch)) => batch,
                Ok(None) => return Ok(Ended::Closed),
                Err(reason) => return Ok(Ended::Lost(reason)),
            },
        };
        for message in batch {
            match message {
                Message::Compute { task, inputs } => {
                    let task = *task;
                    let missing = store.missing(inputs);
                    if missing.is_empty() {
                        pool.compute(task);
                    } else {
                        let (pool, store, outgoing, secret) = (
                            pool.clone(),
                            store.clone(),
                            outgoing.clone(),
                            secret.clone(),
                        );
                        tokio::spawn(async move {
                            if fetch_inputs(&task, &missing, &store, &outgoing, &secret).await {
                                pool.compute(task);
                            }
                        });
                    }
                }
                Message::Store { task, data } => store.insert(task, Arc::new(data)),
                Message::Free { tasks } => {
                    for task in tasks {
                        pool.free(task);
                    }
                }
                Message::Replicate { task, holders } => {
                    let (store, outgoing, secret) =
                        (store.clone(), outgoing.clone(), secret.clone());
                    tokio::spawn(async move {
                        replicate(task, &holders, &store, &outgoing, &secret).await
                    });
                }
                Message::Steal { task } => {
                    let stolen = pool.withdraw(task);
                    let _ = outgoing.send(Message::StealResponse { task, stolen });
                }
                Message::Drop { task } => {
                    pool.withdraw(task);
                }
                Message::ValueLimit { bytes } => adopt_announced_limit(bytes),
                Message::Observed { on } => {
                    memory::OBSERVED.store(on, std::sync::atomic::Ordering::Relaxed)
                }
                Message::Shutdown => return Ok(Ended::Removed),
                Message::Goodbye => return Ok(Ended::Goodbye),
                Message::InnerPlan { plan } => set_inner_plan(plan),
                Message::SetMemoryLimit { limit } => {
                    let changed = limits::change_limit(limit);
                    *limits.lock().unwrap_or_else(|p| p.into_inner()) = changed;
                    store.set_target(changed.target.unwrap_or(u64::MAX));
                    if let Some(limits) = changed.thresholds() {
                        let _ = outgoing.send(Message::MemoryLimits { limits });
                    }
                }
                // The scheduler's connection says it is alive when idle.
                Message::Heartbeat => {}
                other => {
                    return Ok(Ended::Lost(format!(
                        "protocol violation by the scheduler: {other:?}"
                    )))
                }
            }
        }
    }
}

/// Where a task given to this worker stands (results themselves are in the store).
enum Phase {
    Queued,
    Running { seceded: bool },
    Failed(Box<TaskError>),
}

thread_local! {
    /// The task the current task thread runs.
    static RUNNING: std::cell::Cell<Option<TaskId>> = const { std::cell::Cell::new(None) };
    /// How long the last task of the current task thread ran (none yet: `MAX`).
    static LAST_RAN: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::MAX) };
}

/// What the worker's task threads do. A task that blocks waiting on other tasks
/// secedes: a stand-in thread takes its slot (and the scheduler is told, so it
/// sends more work) until it rejoins, after which one thread retires.
struct TaskThreads {
    phases: Arc<Mutex<IdMap<Phase>>>,
    store: Arc<Store>,
    /// Tasks start only while the worker is not paused (over its memory pause threshold).
    pause: Arc<monitor::Pause>,
    outgoing: UnboundedSender<Message>,
    /// Reports of finished tasks, held briefly to go out a batch at a time.
    reports: Arc<reports::HeldReports>,
    /// The queue the threads take tasks from (to see whether more are waiting).
    queued: crossbeam_channel::Receiver<TaskMessage>,
    label: Arc<str>,
    /// The configured largest value ([`configured_max_value`]), read once: it
    /// reads the environment under the standard library's lock, which per
    /// result showed in the profile of trivial tasks.
    configured_max_value: u64,
}

impl wherever_core::crew::CrewWork for TaskThreads {
    type Job = TaskMessage;
    type Thread = ();
    type Blocked = TaskId;

    fn start_thread(&self, (): ()) {}

    /// Runs one queued task; `false` once the scheduler connection is gone.
    fn run(&self, task: TaskMessage) -> bool {
        // Paused: queued tasks wait (the scheduler may take them back meanwhile).
        self.pause.wait_until_running();
        {
            let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            match phases.get_mut(&task.id) {
                Some(phase @ Phase::Queued) => *phase = Phase::Running { seceded: false },
                _ => return true, // stolen or dropped
            }
        }
        RUNNING.with(|running| running.set(Some(task.id)));
        let observed = memory::OBSERVED.load(std::sync::atomic::Ordering::Relaxed);
        // One reading of the clock for the task's start, its `Started` and the
        // memory report: on trivial tasks, reading it 4 times per task showed.
        let mut started = std::time::Instant::now();
        if observed {
            // Held with the reports when the thread's last task was short: this
            // one likely is too, and its report follows soon.
            let report = Message::Started { task: task.id };
            self.reports
                .report(report, LAST_RAN.with(|ran| ran.get()), started, true);
            if let Some(rss_bytes) = memory::due_report(started) {
                let _ = self.outgoing.send(Message::Memory {
                    rss_bytes,
                    cpu: cpu::cpu_time(),
                    spilled_bytes: self.store.bytes().spilled,
                    paused: self.pause.is_paused(),
                });
                // Reading the memory took a while: not part of the task's run.
                started = std::time::Instant::now();
            }
        }
        let watch = watchdog::watch(&task);
        let limit = max_value_size_given(self.configured_max_value);
        let mut message = run_task(&task, &self.label, &self.store, limit);
        let ended = std::time::Instant::now();
        let ran = ended.saturating_duration_since(started);
        LAST_RAN.with(|last| last.set(ran));
        // Told only while somebody reads the stream (the dashboard's task stream).
        if let (true, Message::Finished { ran_for, .. }) = (observed, &mut message) {
            *ran_for = Some(ran);
        }
        drop(watch);
        RUNNING.with(|running| running.set(None));
        {
            let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            match &message {
                Message::TaskFailed { error, .. } => {
                    phases.insert(task.id, Phase::Failed(error.clone()));
                }
                _ => {
                    phases.remove(&task.id);
                }
            }
        }
        let more_queued = !self.queued.is_empty();
        self.reports.report(message, ran, ended, more_queued)
    }

    /// Only a running task secedes (after the held reports went out); its
    /// stand-in is named for it.
    fn stand_in(&self) -> Option<wherever_core::crew::StandIn<Self>> {
        // A task that waits may wait for tasks whose reports are held here.
        self.reports.flush();
        let task = RUNNING.with(|running| running.get())?;
        Some(wherever_core::crew::StandIn {
            name: format!("wherever-stand-in for {task}"),
            thread: (),
            blocked: task,
        })
    }

    /// Marks the task seceded and tells the scheduler.
    fn seceded(&self, task: &TaskId) {
        self.set_seceded(*task, true);
        let _ = self.outgoing.send(Message::Secede { task: *task });
    }

    /// Marks the task running again and tells the scheduler.
    fn rejoined(&self, task: TaskId) {
        self.set_seceded(task, false);
        let _ = self.outgoing.send(Message::Rejoin { task });
    }
}

impl TaskThreads {
    fn set_seceded(&self, task: TaskId, value: bool) {
        if let Some(Phase::Running { seceded }) = self
            .phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&task)
        {
            *seceded = value;
        }
    }
}

/// The worker's task threads and the phase of each task given to it.
struct TaskPool {
    jobs: crossbeam_channel::Sender<TaskMessage>,
    phases: Arc<Mutex<IdMap<Phase>>>,
    store: Arc<Store>,
    outgoing: UnboundedSender<Message>,
}

impl TaskPool {
    fn start(
        slots: u32,
        label: String,
        store: Arc<Store>,
        pause: Arc<monitor::Pause>,
        outgoing: UnboundedSender<Message>,
        reports: Arc<reports::HeldReports>,
    ) -> Self {
        let (jobs, receiver) = crossbeam_channel::unbounded::<TaskMessage>();
        let phases: Arc<Mutex<IdMap<Phase>>> = Arc::default();
        let threads = TaskThreads {
            phases: phases.clone(),
            store: store.clone(),
            pause,
            outgoing: outgoing.clone(),
            reports,
            queued: receiver.clone(),
            label: label.into(),
            configured_max_value: configured_max_value(),
        };
        let crew = wherever_core::crew::Crew::new(threads, receiver);
        for index in 0..slots {
            crew.spawn_thread(format!("wherever-worker-{}", index + 1), ())
                .expect("the worker can start its task threads");
        }
        TaskPool {
            jobs,
            phases,
            store,
            outgoing,
        }
    }

    /// Takes a task to compute. A task computed before is reported again (its
    /// result or its error) instead of being run twice; one queued or running is
    /// left alone.
    fn compute(&self, task: TaskMessage) {
        if let Some(nbytes) = self.store.size(task.id) {
            let inline = (task.wanted && nbytes <= INLINE_RESULT_LIMIT as u64)
                .then(|| self.store.get(task.id).map(|r| r.as_ref().clone()))
                .flatten();
            let _ = self.outgoing.send(Message::Finished {
                task: task.id,
                nbytes,
                result: inline,
                ran_for: None,
            });
            return;
        }
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        match phases.get(&task.id) {
            Some(Phase::Failed(error)) => {
                let _ = self.outgoing.send(Message::TaskFailed {
                    task: task.id,
                    error: error.clone(),
                });
            }
            // Assigned again while it waits seceded: it still does not hold a slot.
            Some(Phase::Running { seceded: true }) => {
                let _ = self.outgoing.send(Message::Secede { task: task.id });
            }
            Some(Phase::Queued | Phase::Running { .. }) => {}
            None => {
                phases.insert(task.id, Phase::Queued);
                let _ = self.jobs.send(task);
            }
        }
    }

    /// Takes a queued task back; `false` if it has started (or is unknown).
    fn withdraw(&self, task: TaskId) -> bool {
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(phases.get(&task), Some(Phase::Queued)) {
            phases.remove(&task);
            true
        } else {
            false
        }
    }

    /// Forgets a task's result and error.
    fn free(&self, task: TaskId) {
        self.store.remove(task);
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(phases.get(&task), Some(Phase::Failed(_))) {
            phases.remove(&task);
        }
    }
}

impl Drop for TaskPool {
    /// The connection is gone: queued tasks are not run (the threads end after
    /// the tasks they are running).
    fn drop(&mut self) {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, phase| !matches!(phase, Phase::Queued));
    }
}

/// Runs one task (or chunk) and returns the message that reports it; a result
/// larger than `limit` bytes fails the task.
fn run_task(task: &TaskMessage, label: &str, store: &Store, limit: u64) -> Message {
    let filled;
    let args: &[u8] = if task.deps.is_empty() {
        &task.args
    } else {
        let inputs: Option<Vec<Arc<Vec<u8>>>> =
            task.deps.iter().map(|dep| store.get(*dep)).collect();
        let inputs = inputs.unwrap_or_default();
        let slices: Vec<&[u8]> = inputs.iter().map(|input| input.as_slice()).collect();
        match fill_holes(&task.args, &task.holes, &slices) {
            Some(bytes) if slices.len() == task.deps.len() => {
                filled = bytes;
                &filled
            }
            _ => {
                let error = TaskError::new(
                    &task.name,
                    task.position,
                    TaskErrorKind::Runtime,
                    "its inputs are missing on this worker or do not fit its arguments",
                )
                .on_worker(label);
                return Message::TaskFailed {
                    task: task.id,
                    error: Box::new(error),
                };
            }
        }
    };
    let mut result = match run_one(&task.name, args, task, task.position) {
        Ok(result) => result,
        Err(error) => {
            return Message::TaskFailed {
                task: task.id,
                error: Box::new(error.on_worker(label)),
            }
        }
    };
    for link in &task.chain {
        let offset = (link.offset as usize).min(link.args.len());
        let mut args = Vec::with_capacity(link.args.len() + result.len());
        args.extend_from_slice(&link.args[..offset]);
        args.extend_from_slice(&result);
        args.extend_from_slice(&link.args[offset..]);
        result = match run_one(&link.name, &args, task, link.position) {
            Ok(result) => result,
            Err(error) => {
                return Message::TaskFailed {
                    task: task.id,
                    error: Box::new(error.on_worker(label)),
                }
            }
        };
    }
    let nbytes = result.len() as u64;
    if nbytes > limit {
        let error = TaskError::new(
            &task.name,
            task.position,
            TaskErrorKind::Runtime,
            over_the_limit("its result", nbytes, limit),
        );
        return Message::TaskFailed {
            task: task.id,
            error: Box::new(error.on_worker(label)),
        };
    }
    // The encoder grows its buffer by doubling: the store counts (and holds) the
    // bytes, not up to twice as many.
    result.shrink_to_fit();
    let result = Arc::new(result);
    // Only a result the client reads travels with the report; others stay here.
    let inline =
        (task.wanted && result.len() <= INLINE_RESULT_LIMIT).then(|| result.as_ref().clone());
    store.insert(task.id, result);
    Message::Finished {
        task: task.id,
        nbytes,
        result: inline,
        ran_for: None,
    }
}

/// Runs the registered task `name` on encoded `args` as the task at `position`.
fn run_one(
    name: &str,
    args: &[u8],
    task: &TaskMessage,
    position: u64,
) -> Result<Vec<u8>, TaskError> {
    let Some(entry) = registry::lookup(name) else {
        let executable = crate::auth::this_build().executable.clone();
        return Err(TaskError::new(
            name,
            position,
            TaskErrorKind::Runtime,
            format!("no task is registered under this name in {executable}"),
        ));
    };
    let call = EncodedCall {
        args,
        key: task.key,
        seeded: task.seeded,
        position,
        chunk: task.chunk,
    };
    match run_caught(|| Ok((entry.dispatch)(call))) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(failed)) => Err(TaskError::from_failure(
            name,
            failed.position,
            failed.failure,
        )),
        Err(panic) => Err(TaskError::from_failure(
            name,
            registry::current_position(),
            panic,
        )),
    }
}

/// Serves results this worker holds to authenticated clients and workers.
async fn serve_data(listener: TcpListener, secret: Secret, store: Arc<Store>) {
    let secret = Arc::new(secret);
    let no_build_check = Arc::new(Mutex::new(None));
    let gate = HandshakeGate::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (secret, store, no_build_check) =
            (secret.clone(), store.clone(), no_build_check.clone());
        let ticket = gate.admit();
        tokio::spawn(async move {
            let (mut reader, mut writer) = split(stream);
            let handshake =
                accept_gated(ticket, &mut reader, &mut writer, &secret, &no_build_check);
            if let Err(reason) = handshake.await {
                tracing::warn!("data port: disconnected {peer}: {reason}");
                return;
            }
            let mut streams = 0u64;
            while let Ok(Some(batch)) = read_batch(&mut reader).await {
                let mut asked = Vec::with_capacity(batch.len());
                for message in batch {
                    match message {
                        Message::GetData { task } => asked.push(task),
                        // The fetcher's connection says it is alive when idle.
                        Message::Heartbeat => {}
                        _ => return,
                    }
                }
                if send_data(&mut writer, &store, asked, &mut streams)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// The size of the parts in which the data server streams a result larger than
/// one part: each part is copied twice on its way out (its message, its frame),
/// so a part, not the whole result, is what sending costs in memory.
const DATA_PART_SIZE: usize = 1 << 20;

/// Answers the `GetData`s of one request (`asked`), in order, with the results
/// held (`None` for one not held): small answers together, in frames of about
/// [`FRAME_BUDGET`] bytes at most; a result larger than [`DATA_PART_SIZE`]
/// streamed straight from the store (as the next of `streams`) in parts of that
/// size, without a copy of the whole. Each result is taken from the store when
/// its turn comes (a spilled one is read back then, off the runtime's thread), so
/// a request for many spilled results does not bring them all into memory at once.
async fn send_data(
    writer: &mut crate::connection::Writer,
    store: &Arc<Store>,
    asked: Vec<TaskId>,
    streams: &mut u64,
) -> Result<(), String> {
    let mut answers = Vec::new();
    let mut size = 0;
    for task in asked {
        let result = read_from_store(store, task).await;
        match result {
            Some(result) if result.len() > DATA_PART_SIZE => {
                if !answers.is_empty() {
                    write_batch(writer, &std::mem::take(&mut answers)).await?;
                    size = 0;
                }
                *streams += 1;
                send_in_parts(writer, *streams, task, &result).await?;
            }
            result => {
                size += result.as_ref().map_or(0, |r| r.len());
                let result = result.map(|r| r.as_ref().clone());
                answers.push(Message::Data { task, result });
                if size >= FRAME_BUDGET {
                    write_batch(writer, &std::mem::take(&mut answers)).await?;
                    size = 0;
                }
            }
        }
    }
    if answers.is_empty() {
        return Ok(());
    }
    write_batch(writer, &answers).await
}

/// The value held for `task`, read back from disk on a blocking thread if it was
/// spilled (the data server's runtime thread also serves the scheduler connection).
async fn read_from_store(store: &Arc<Store>, task: TaskId) -> Option<Arc<Vec<u8>>> {
    if store.is_in_memory(task) {
        return store.get(task);
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.get(task))
        .await
        .ok()
        .flatten()
}

/// Sends `value`, the result of `task`, as stream `stream`: a header, then parts
/// of [`DATA_PART_SIZE`] bytes, each in a frame of its own.
async fn send_in_parts(
    writer: &mut crate::connection::Writer,
    stream: u64,
    task: TaskId,
    value: &[u8],
) -> Result<(), String> {
    let header = Message::Large {
        stream,
        total: value.len() as u64,
        head: Box::new(Message::Data {
            task,
            result: Some(Vec::new()),
        }),
    };
    write_batch(writer, &[header]).await?;
    let mut parts = value.chunks(DATA_PART_SIZE).peekable();
    while let Some(part) = parts.next() {
        let part = Message::Part {
            stream,
            bytes: part.to_vec(),
            last: parts.peek().is_none(),
        };
        write_batch(writer, std::slice::from_ref(&part)).await?;
    }
    Ok(())
}

/// Fetches a copy of the result of `task` from `holders` (a retiring worker hands
/// it over), keeps it and reports `Replicated`; `ReplicateFailed` if it cannot be
/// had (after one retry).
async fn replicate(
    task: TaskId,
    holders: &[std::net::SocketAddr],
    store: &Store,
    outgoing: &UnboundedSender<Message>,
    secret: &Secret,
) {
    if !store.contains(task) {
        let mut fetched = crate::fetch::fetch(holders, task, secret).await;
        if fetched.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fetched = crate::fetch::fetch(holders, task, secret).await;
        }
        match fetched {
            Ok(data) => store.insert(task, Arc::new(data)),
            Err(reason) => {
                tracing::warn!("cannot fetch a copy of {task}: {reason}");
                let _ = outgoing.send(Message::ReplicateFailed { task });
                return;
            }
        }
    }
    let _ = outgoing.send(Message::Replicated { task });
}

/// Fetches the inputs of `task` this worker lacks from the workers holding them,
/// keeps them and tells the scheduler it holds a copy. An input that cannot be had
/// (after one retry) is reported missing, naming `task` as the requester: the
/// scheduler drops those holders, recomputes the input if need be and sends
/// `task` again; `false` then. An input too large for this worker fails `task`.
async fn fetch_inputs(
    message: &TaskMessage,
    missing: &[Input],
    store: &Store,
    outgoing: &UnboundedSender<Message>,
    secret: &Secret,
) -> bool {
    let task = message.id;
    // One request per holder for all it holds; what did not come that way is
    // fetched one by one below, which says why an input cannot be had.
    let batched = crate::fetch::fetch_batched(missing, secret).await;
    for (input, fetched) in missing.iter().zip(batched) {
        let mut retried = false;
        let data = match fetched {
            Some(data) => data,
            None => loop {
                match crate::fetch::fetch(&input.holders, input.task, secret).await {
                    Ok(data) => break data,
                    Err(FetchError::TooLarge(reason)) => {
                        let reason = format!("its input {}: {reason}", input.task);
                        let error = TaskError::new(
                            &message.name,
                            message.position,
                            TaskErrorKind::Runtime,
                            reason,
                        );
                        let _ = outgoing.send(Message::TaskFailed {
                            task,
                            error: Box::new(error),
                        });
                        return false;
                    }
                    Err(_) if !retried => {
                        retried = true;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(reason) => {
                        tracing::warn!("cannot fetch input {} of {task}: {reason}", input.task);
                        let _ = outgoing.send(Message::MissingData {
                            task: input.task,
                            holders: input.holders.clone(),
                            requester: Some(task),
                        });
                        return false;
                    }
                }
            },
        };
        store.insert(input.task, Arc::new(data));
        let _ = outgoing.send(Message::Replicated { task: input.task });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMITS: MemoryLimits = MemoryLimits {
        limit: u64::MAX,
        target: None,
        pause: None,
        terminate: None,
    };

    /// A listener that accepts one connection and does `then` with it.
    async fn one_connection<F>(then: impl FnOnce(TcpStream) -> F + Send + 'static) -> TcpStream
    where
        F: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            then(stream).await;
        });
        TcpStream::connect(address).await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_challenge_is_tried_again_not_refused() {
        // What a scheduler being killed can do: accept, then close or reset.
        let stream = one_connection(|stream| async move { drop(stream) }).await;
        let ended = serve_scheduler(stream, &Secret::generate(), 1, NO_LIMITS).await;
        assert!(
            matches!(&ended, Ended::Unanswered(reason) if reason.starts_with(NO_CHALLENGE)),
            "not retried"
        );
    }

    #[tokio::test]
    async fn a_peer_that_answers_without_a_challenge_is_refused() {
        let stream = one_connection(|stream| async move {
            let (_reader, mut writer) = split(stream);
            write_batch(&mut writer, &[Message::Heartbeat])
                .await
                .unwrap();
            std::future::pending::<()>().await;
        })
        .await;
        let ended = serve_scheduler(stream, &Secret::generate(), 1, NO_LIMITS).await;
        assert!(
            matches!(&ended, Ended::Refused(reason) if reason.contains("not a wherever scheduler")),
            "not refused"
        );
    }
}
