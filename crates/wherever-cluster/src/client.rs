//! The client side: a connection to a scheduler on a background runtime thread,
//! submitting tasks and calling back when each ends.

use crate::auth::{this_build, Secret};
use crate::connection::{
    adopt_announced_limit, connect_tcp, encoded_size, join, max_value_size, over_the_limit,
    read_batch, read_batch_within, run_writer_with, silence_timeout, split, FRAME_BUDGET,
    HANDSHAKE_TIMEOUT,
};
use crate::fetch::FetchError;
use crate::protocol::{Message, Role, TaskId, TaskMessage, CLIENT_TASK_BITS};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{
    unbounded_channel, UnboundedReceiver, UnboundedSender, WeakUnboundedSender,
};
use wherever_core::dense_table::DenseTable;
use wherever_core::{StreamKey, TaskError, TaskErrorKind};

pub mod backlog;
mod held;
mod no_workers;
mod staging;
mod task_end;
pub use held::{Arrival, BytesThen, HeldResult};
pub use no_workers::{DEFAULT_NOTICE, NOTICE_VARIABLE, TIMEOUT_VARIABLE};
pub use task_end::{Arrive, TaskEnd};

/// Called once with a task's encoded result (or where it is held) or its error.
pub type Callback = Box<dyn FnOnce(Result<Arrival, TaskError>) + Send>;

/// One call to submit: a registered task's name and encoded arguments.
#[derive(Debug, Clone)]
pub struct RemoteCall {
    /// The registered task name.
    pub name: &'static str,
    /// The encoded arguments (one value, or a `Vec` of items when `chunk`).
    pub args: Vec<u8>,
    /// The client's stream key.
    pub key: StreamKey,
    /// Whether the client set a seed.
    pub seeded: bool,
    /// The task's (first item's) position.
    pub position: u64,
    /// Whether `args` is a chunk of items.
    pub chunk: bool,
    /// How often to rerun the task after its worker died.
    pub retries: u32,
    /// The user's priority: among ready tasks, higher runs first.
    pub priority: i64,
    /// Tasks of this cluster whose results fill the holes of `args`.
    pub deps: Vec<TaskId>,
    /// Where each dependency's encoded result goes in `args`.
    pub holes: Vec<wherever_core::holes::Hole>,
    /// Tasks fused after this one, each run on the previous result.
    pub chain: Vec<crate::protocol::ChainLink>,
    /// What the task holds on its worker while assigned there (default: nothing).
    pub resources: wherever_scheduler::Resources,
    /// The user's timeout (the worker exits if the task runs past it plus a grace).
    pub timeout: Option<std::time::Duration>,
    /// Whether this client reads the result (see [`TaskMessage::wanted`]): if not
    /// (a graph intermediate), the scheduler never reports it done and the
    /// callback is dropped unrun; a failure shows in the tasks that depend on it.
    pub wanted: bool,
}

/// A submitted task as its future reaches it: to cancel it, and to tell the
/// scheduler its result is no longer needed. Its connection (shared by all its
/// tasks) and an id, 16 bytes, no allocation; usable after its client is gone
/// (then it does nothing).
#[derive(Debug, Clone)]
pub struct TaskHandle {
    link: Arc<Link>,
    task: TaskId,
}

/// What every [`TaskHandle`] of one connection shares.
#[derive(Debug)]
struct Link {
    /// The connection's identity in this process ([`ClusterClient::id`]).
    cluster: u64,
    commands: UnboundedSender<Message>,
}

impl TaskHandle {
    /// A handle whose cancel and release go to `commands`, as from a connection
    /// with identity `cluster` (a test stands in for a connection with it).
    pub fn on_channel(cluster: u64, commands: UnboundedSender<Message>, task: TaskId) -> Self {
        TaskHandle {
            link: Arc::new(Link { cluster, commands }),
            task,
        }
    }

    /// The task's id.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The identity of the connection the task was submitted on
    /// ([`ClusterClient::id`]).
    pub fn cluster(&self) -> u64 {
        self.link.cluster
    }

    /// Asks the scheduler to cancel the task if it has not finished.
    pub fn cancel(&self) {
        let _ = self.link.commands.send(Message::Cancel {
            tasks: vec![self.task],
        });
    }

    /// Tells the scheduler this client will not read the task's result (every
    /// handle on it is gone; only the tasks that take it as an argument use it):
    /// it sends neither `Done` nor the result for it, and the task's callback is
    /// dropped unrun. The result stays on its workers for those tasks until
    /// [`TaskHandle::release`].
    pub fn unwant(&self) {
        let _ = self.link.commands.send(Message::Unwanted {
            tasks: vec![self.task],
        });
    }

    /// Tells the scheduler the client no longer needs the task's result (call it
    /// when the last handle to the result is dropped).
    pub fn release(self) {
        let _ = self.link.commands.send(Message::Release {
            tasks: vec![self.task],
        });
    }
}

/// A background thread running a tokio runtime for cluster connections (and, for
/// `processes:N`, the scheduler and the worker launcher). Dropping it stops them.
pub struct ClusterRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClusterRuntime {
    /// Starts the runtime thread.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wherever-cluster-io".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;
        Ok(ClusterRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime's handle, for spawning and blocking on futures.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    /// Receivers of submitted tasks not ended, by id (dense: ids are consecutive).
    pending: Mutex<DenseTable<TaskEnd>>,
    closed: Mutex<Option<String>>,
    workers: AtomicU32,
    slots: AtomicU32,
    /// Notified (with `announcements` locked) when the worker count changes or the
    /// connection closes.
    announced: Condvar,
    announcements: Mutex<()>,
    secret: Secret,
    scheduler: String,
    /// The scheduler's events forwarded to this client, once it subscribed.
    events: wherever_core::events::EventBus,
    /// Whether the scheduler was asked to forward its events.
    subscribed: AtomicBool,
    /// Submitted tasks not yet written to the scheduler (back-pressure).
    backlog: backlog::Backlog,
    /// Submitted tasks not yet taken by the connection's thread.
    staging: staging::Staging,
}

/// A connection to a scheduler. Submitting blocks only while more than
/// [`backlog::MAX_UNSENT`] submitted tasks wait to be written (never on the
/// connection's own runtime thread); results come back through
/// callbacks run on the connection's thread.
pub struct ClusterClient {
    /// The id and commands every task handle shares.
    link: Arc<Link>,
    shared: Arc<Shared>,
    commands: UnboundedSender<Message>,
    first_id: u64,
    next: AtomicU64,
    connected: Arc<AtomicBool>,
    runtime: Arc<ClusterRuntime>,
}

impl ClusterClient {
    /// Connects to the scheduler at `address` (`HOST:PORT`) on `runtime`, proving
    /// knowledge of `secret`, with no inner plan.
    pub fn connect(
        runtime: Arc<ClusterRuntime>,
        address: &str,
        secret: Secret,
    ) -> Result<Self, String> {
        ClusterClient::connect_nested(runtime, address, secret, None)
    }

    /// [`ClusterClient::connect`] for a plan with inner levels: the scheduler's
    /// workers run the tasks its tasks submit under `inner_plan` (a plan string,
    /// e.g. `threads:3`). A scheduler whose workers already run another client's
    /// inner plan refuses the connection, saying so.
    pub fn connect_nested(
        runtime: Arc<ClusterRuntime>,
        address: &str,
        secret: Secret,
        inner_plan: Option<String>,
    ) -> Result<Self, String> {
        let target = address.to_string();
        let join_secret = secret.clone();
        let (reader, writer, number, announced) = runtime.handle().block_on(async move {
            let stream = connect_tcp(&target, HANDSHAKE_TIMEOUT)
                .await
                .map_err(|e| format!("cannot connect to the scheduler at {target}: {e}"))?;
            let (mut reader, mut writer) = split(stream);
            let (number, rest) = join(
                &mut reader,
                &mut writer,
                &join_secret,
                Role::Client { inner_plan },
                this_build(),
                true,
            )
            .await?;
            // The scheduler announces its workers right after the welcome.
            adopt_value_limit(&rest);
            let announced = match last_announcement(&rest) {
                Some(announced) => Some(announced),
                None => match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(&mut reader))
                    .await
                    .map_err(|_| {
                        format!(
                            "the scheduler at {target} welcomed this client but announced \
                             no workers within {} s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        )
                    })?? {
                    Some(batch) => {
                        adopt_value_limit(&batch);
                        last_announcement(&batch)
                    }
                    None => return Err("the scheduler closed the connection".to_string()),
                },
            };
            Ok::<_, String>((reader, writer, number, announced.unwrap_or((0, 0))))
        })?;
        let (reader, writer, number, (workers, slots)) = (reader, writer, number, announced);
        let shared = Arc::new(Shared {
            pending: Mutex::new(DenseTable::new()),
            closed: Mutex::new(None),
            workers: AtomicU32::new(workers),
            slots: AtomicU32::new(slots),
            announced: Condvar::new(),
            announcements: Mutex::new(()),
            secret,
            scheduler: address.to_string(),
            events: Default::default(),
            subscribed: AtomicBool::new(false),
            backlog: backlog::Backlog::default(),
            staging: staging::Staging::default(),
        });
        let (commands, queue) = unbounded_channel();
        let connected = Arc::new(AtomicBool::new(true));
        let _in_runtime = runtime.handle().enter();
        let refused = shared.clone();
        let reject = move |task: TaskMessage, size: usize| refuse_oversize(&refused, task, size);
        let unwanting = shared.clone();
        let unwant = move |tasks: &[TaskId]| drop_callbacks(&unwanting, tasks);
        let writing = shared.clone();
        let staged = shared.clone();
        let take_staged = move || staged.staging.take();
        runtime.handle().spawn(run_writer_with(
            writer,
            merge_submits(queue, take_staged, reject, unwant),
            move |messages| writing.backlog.sent(submitted_tasks(messages)),
        ));
        runtime.handle().spawn(read_answers(
            reader,
            shared.clone(),
            connected.clone(),
            commands.downgrade(),
        ));
        runtime.handle().spawn(no_workers::watch(
            Arc::downgrade(&shared),
            commands.downgrade(),
        ));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(ClusterClient {
            link: Arc::new(Link {
                cluster: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                commands: commands.clone(),
            }),
            shared,
            commands,
            first_id: number << CLIENT_TASK_BITS,
            next: AtomicU64::new(1),
            connected,
            runtime,
        })
    }

    /// Submits a call; `callback` runs once when it ends. Returns the task id. Waits
    /// while too many submitted tasks are not yet written (see [`backlog`]).
    pub fn submit(&self, call: RemoteCall, callback: Callback) -> TaskId {
        let id = self.next_task_id();
        self.submit_as(id, call, callback.into());
        id
    }

    /// A new task id of this connection, for [`ClusterClient::submit_as`] (so that
    /// what receives the task's end can know its handle before it is submitted).
    pub fn next_task_id(&self) -> TaskId {
        self.first_id + self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Submits a call under `id` (from [`ClusterClient::next_task_id`], used once);
    /// `end` receives its end (not kept for a call whose result is not wanted).
    /// Waits while too many submitted tasks are not yet written (see [`backlog`]).
    pub fn submit_as(&self, id: TaskId, call: RemoteCall, end: TaskEnd) {
        let (name, position) = (call.name, call.position);
        let task = TaskMessage {
            id,
            name: call.name.to_string(),
            args: call.args,
            key: call.key,
            seeded: call.seeded,
            position: call.position,
            chunk: call.chunk,
            deps: call.deps,
            holes: call.holes,
            chain: call.chain,
            retries: call.retries,
            priority: call.priority,
            resources: call.resources,
            timeout: call.timeout,
            wanted: call.wanted,
        };
        if call.wanted {
            self.shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, end);
        }
        let closed = self
            .shared
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reason = match closed {
            Some(reason) => Some(reason),
            // One shared list, not a message per task (see `staging`); an empty
            // `Submit` marks where the connection's thread takes it.
            None if self.commands.is_closed() => Some("closed".to_string()),
            None => self
                .shared
                .staging
                .push(task, || {
                    self.commands
                        .send(Message::Submit { tasks: Vec::new() })
                        .is_ok()
                })
                .map(|_| "closed".to_string()),
        };
        match reason {
            Some(reason) => fail(&self.shared, id, name, position, &reason),
            // The connection's own thread must not wait for itself to write.
            None => self
                .shared
                .backlog
                .queued(tokio::runtime::Handle::try_current().is_err()),
        }
    }

    /// This connection's identity in this process: futures of one connection can
    /// only be arguments of tasks on the same one.
    pub fn id(&self) -> u64 {
        self.link.cluster
    }

    /// Puts `data` on every worker (and, through them, on workers that join later)
    /// under a new id, which tasks can then depend on. A value over the largest
    /// value ([`max_value_size`]) is not sent: the error gives its size and the limit.
    pub fn scatter(&self, data: Vec<u8>) -> Result<TaskId, String> {
        let limit = max_value_size();
        if data.len() as u64 > limit {
            return Err(over_the_limit(
                "the scattered value",
                data.len() as u64,
                limit,
            ));
        }
        let id = self.next_task_id();
        let _ = self.commands.send(Message::Scatter { task: id, data });
        Ok(id)
    }

    /// A function that tells the scheduler this client no longer needs `task`'s
    /// result (call it when the last handle to the result is dropped). The task's
    /// callback is dropped unrun: the scheduler no longer reports it done.
    pub fn releaser(&self, task: TaskId) -> impl FnOnce() + Send + 'static {
        let commands = self.commands.clone();
        let shared = Arc::downgrade(&self.shared);
        move || {
            if let Some(shared) = shared.upgrade() {
                let callback = shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&task);
                drop(callback);
            }
            let _ = commands.send(Message::Release { tasks: vec![task] });
        }
    }

    /// The bus on which the scheduler's events arrive once [`Self::subscribe_events`]
    /// was called (stamped with the scheduler's clock).
    pub fn event_bus(&self) -> wherever_core::events::EventBus {
        self.shared.events.clone()
    }

    /// Asks the scheduler (once) to forward its event stream to this client, holding
    /// at most `capacity` unsent events for it.
    pub fn subscribe_events(&self, capacity: u32) {
        if !self.shared.subscribed.swap(true, Ordering::Relaxed) {
            let _ = self.commands.send(Message::SubscribeEvents { capacity });
        }
    }

    /// Asks the scheduler to cancel `task` if it has not finished.
    pub fn cancel(&self, task: TaskId) {
        let _ = self.commands.send(Message::Cancel { tasks: vec![task] });
    }

    /// The handle of `task` for its future: cancel it, release its result.
    pub fn handle(&self, task: TaskId) -> TaskHandle {
        TaskHandle {
            link: self.link.clone(),
            task,
        }
    }

    /// A function that cancels `task`, usable after this client is gone (then it
    /// does nothing).
    pub fn canceller(&self, task: TaskId) -> impl Fn() + Send + Sync + 'static {
        let commands = self.commands.clone();
        move || {
            let _ = commands.send(Message::Cancel { tasks: vec![task] });
        }
    }

    /// Connected workers and their task slots in all, as last announced.
    pub fn workers(&self) -> (u32, u32) {
        (
            self.shared.workers.load(Ordering::Relaxed),
            self.shared.slots.load(Ordering::Relaxed),
        )
    }

    /// Waits until at least `count` workers are connected, the connection closed, or
    /// `timeout` passed; returns the workers connected then.
    pub fn wait_for_workers(&self, count: u32, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .shared
            .announcements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            let connected = self.shared.workers.load(Ordering::Relaxed);
            let left = deadline.saturating_duration_since(Instant::now());
            if connected >= count || !self.is_connected() || left.is_zero() {
                return connected;
            }
            guard = self
                .shared
                .announced
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether the connection to the scheduler is still up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The runtime this client's connection lives on.
    pub fn runtime(&self) -> &Arc<ClusterRuntime> {
        &self.runtime
    }
}

/// The newest worker count and slots announced in `batch` (a batch may carry
/// several announcements when workers joined right after this client).
fn last_announcement(batch: &[Message]) -> Option<(u32, u32)> {
    batch.iter().rev().find_map(|message| match message {
        Message::Workers { count, slots } => Some((*count, *slots)),
        _ => None,
    })
}

/// Takes the scheduler's value limit if `batch` announces one.
fn adopt_value_limit(batch: &[Message]) {
    for message in batch {
        if let Message::ValueLimit { bytes } = message {
            adopt_announced_limit(*bytes);
        }
    }
}

fn fail(shared: &Shared, task: TaskId, name: &str, position: u64, reason: &str) {
    let callback = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task);
    if let Some(end) = callback {
        let message = format!(
            "lost the connection to the scheduler at {}: {reason}",
            shared.scheduler
        );
        end.arrive(Err(TaskError::new(
            name,
            position,
            TaskErrorKind::Runtime,
            message,
        )));
    }
}

/// Fails a task whose arguments (`size` bytes) are over the largest value
/// ([`max_value_size`]), saying so.
/// How many tasks the `Submit`s among `messages` carry.
fn submitted_tasks(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| match m {
            Message::Submit { tasks } => tasks.len(),
            _ => 0,
        })
        .sum()
}

fn refuse_oversize(shared: &Shared, task: TaskMessage, size: usize) {
    shared.backlog.sent(1);
    let callback = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task.id);
    tracing::warn!(
        "task {} (`{}`) not submitted: {size} bytes, over the value limit",
        task.id,
        task.name
    );
    if let Some(callback) = callback {
        let message = format!(
            "not submitted: {}",
            over_the_limit("the task with its arguments", size as u64, max_value_size())
        );
        callback.arrive(Err(TaskError::new(
            &task.name,
            task.position,
            TaskErrorKind::Runtime,
            message,
        )));
    }
}

/// Drops the callbacks of `tasks` unrun: the scheduler will not report them done
/// (see [`TaskHandle::unwant`]).
fn drop_callbacks(shared: &Shared, tasks: &[TaskId]) {
    let callbacks: Vec<TaskEnd> = {
        let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
        tasks
            .iter()
            .filter_map(|task| pending.remove(task))
            .collect()
    };
    // Dropped outside the lock: a callback may hold the last reference to what
    // releases its task.
    drop(callbacks);
}

/// Merges consecutive `Submit`s into as few as fit, so a burst of submissions is a
/// few messages: a merged `Submit` holds tasks up to [`FRAME_BUDGET`] bytes (a task
/// larger than that goes alone), and a task larger than the largest value
/// ([`max_value_size`]) is handed to `reject` with its size instead of being sent.
/// The tasks of an `Unwanted` are handed to `unwant` as it passes (after the
/// submissions before it), to drop their callbacks. An empty `Submit` is a
/// marker: it stands for the tasks `take_staged` gives at that point (see
/// [`staging`]).
fn merge_submits(
    mut queue: UnboundedReceiver<Message>,
    take_staged: impl Fn() -> Vec<TaskMessage> + Send + 'static,
    reject: impl Fn(TaskMessage, usize) + Send + 'static,
    unwant: impl Fn(&[TaskId]) + Send + 'static,
) -> UnboundedReceiver<Message> {
    let (merged, out) = unbounded_channel();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, 4096).await > 0 {
            let (mut tasks, mut bytes) = (Vec::new(), 0usize);
            // Read once per batch: it reads the environment (a lock and a scan),
            // which per task cost about as much as the rest of this loop.
            let limit = max_value_size();
            for message in batch.drain(..) {
                let more = match message {
                    Message::Submit { tasks: more } if more.is_empty() => take_staged(),
                    Message::Submit { tasks: more } => more,
                    other => {
                        if !tasks.is_empty() {
                            let _ = merged.send(Message::Submit {
                                tasks: std::mem::take(&mut tasks),
                            });
                            bytes = 0;
                        }
                        if let Message::Unwanted { tasks } = &other {
                            unwant(tasks);
                        }
                        let _ = merged.send(other);
                        continue;
                    }
                };
                for task in more {
                    let size = encoded_size(&task);
                    if size as u64 > limit {
                        reject(task, size);
                        continue;
                    }
                    if !tasks.is_empty() && bytes + size > FRAME_BUDGET {
                        let _ = merged.send(Message::Submit {
                            tasks: std::mem::take(&mut tasks),
                        });
                        bytes = 0;
                    }
                    tasks.push(task);
                    bytes += size;
                }
            }
            if !tasks.is_empty() {
                let _ = merged.send(Message::Submit { tasks });
            }
        }
    });
    out
}

/// Fetches a large result of `task` from its `holders` and completes the task. A
/// failed fetch (the holder died, timed out or dropped it) does not fail the task:
/// it is reported missing, and the scheduler recomputes the result and sends
/// `Done` again (or, past its limit, the failure). A result too large for this
/// process fails the task.
async fn fetch_result(
    task: TaskId,
    holders: Vec<std::net::SocketAddr>,
    shared: Arc<Shared>,
    commands: WeakUnboundedSender<Message>,
) {
    let reason = match crate::fetch::fetch(&holders, task, &shared.secret).await {
        Ok(result) => {
            // A worker that retires need not keep it for this client any more.
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(Message::Fetched { task });
            }
            return complete(&shared, task, Ok(Arrival::Bytes(result)));
        }
        // Recomputing would not make it smaller: the task fails.
        Err(FetchError::TooLarge(reason)) => {
            let error = TaskError::new("?", 0, TaskErrorKind::Runtime, reason);
            return complete(&shared, task, Err(error));
        }
        Err(reason) => reason,
    };
    tracing::warn!("cannot fetch the result of task {task}: {reason}; reported missing");
    let report = Message::MissingData {
        task,
        holders,
        requester: None,
    };
    let reported = commands
        .upgrade()
        .is_some_and(|commands| commands.send(report).is_ok());
    if !reported {
        let error = TaskError::new(
            "?",
            0,
            TaskErrorKind::Runtime,
            format!("cannot fetch the result: {reason}"),
        );
        complete(&shared, task, Err(error));
    }
}

async fn read_answers(
    mut reader: crate::connection::Reader,
    shared: Arc<Shared>,
    connected: Arc<AtomicBool>,
    commands: WeakUnboundedSender<Message>,
) {
    let silence = silence_timeout();
    let reason = loop {
        let batch = match read_batch_within(&mut reader, silence).await {
            Ok(Some(batch)) => batch,
            Ok(None) => break "the scheduler closed the connection".to_string(),
            Err(reason) => break reason,
        };
        for message in batch {
            match message {
                Message::Done {
                    task,
                    result: Some(result),
                    ..
                } => complete(&shared, task, Ok(Arrival::Bytes(result))),
                // Left on its workers until its reader fetches it.
                Message::Done {
                    task,
                    result: None,
                    holders,
                } => {
                    let held = HeldResult {
                        task,
                        holders,
                        shared: shared.clone(),
                        commands: commands.clone(),
                        runtime: tokio::runtime::Handle::current(),
                    };
                    complete(&shared, task, Ok(Arrival::Held(held)));
                }
                Message::Failed { task, error } => complete(&shared, task, Err(*error)),
                Message::Workers { count, slots } => {
                    shared.workers.store(count, Ordering::Relaxed);
                    shared.slots.store(slots, Ordering::Relaxed);
                    announce(&shared);
                }
                Message::ValueLimit { bytes } => adopt_announced_limit(bytes),
                Message::Events { events } => {
                    for stamped in events {
                        shared.events.emit_stamped(stamped);
                    }
                }
                _ => {}
            }
        }
    };
    connected.store(false, Ordering::Relaxed);
    shared.backlog.close();
    announce(&shared);
    *shared.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
    let pending: Vec<(TaskId, TaskEnd)> = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    for (_, end) in pending {
        let message = format!(
            "lost the connection to the scheduler at {}: {reason}",
            shared.scheduler
        );
        end.arrive(Err(TaskError::new("?", 0, TaskErrorKind::Runtime, message)));
    }
}

/// Wakes the threads waiting in [`ClusterClient::wait_for_workers`].
fn announce(shared: &Shared) {
    let _locked = shared
        .announcements
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    shared.announced.notify_all();
}

fn complete(shared: &Shared, task: TaskId, outcome: Result<Arrival, TaskError>) {
    let callback = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task);
    if let Some(end) = callback {
        end.arrive(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Staged tasks leave in the order they were submitted, before anything queued
    /// after their marker (a cancel of one of them here).
    #[test]
    fn a_marker_takes_the_staged_tasks_before_what_follows_it() {
        let runtime = ClusterRuntime::start().expect("runtime");
        let staging = Arc::new(staging::Staging::default());
        let (queue, received) = unbounded_channel();
        let taking = staging.clone();
        let messages = runtime.handle().block_on(async move {
            let mut merged = merge_submits(received, move || taking.take(), |_, _| {}, |_| {});
            for id in 1..=3 {
                let back = staging.push(TaskMessage::new(id, "t", Vec::new()), || {
                    queue.send(Message::Submit { tasks: Vec::new() }).is_ok()
                });
                assert!(back.is_none(), "task {id} not staged");
            }
            queue
                .send(Message::Cancel { tasks: vec![2] })
                .expect("queued");
            let back = staging.push(TaskMessage::new(4, "t", Vec::new()), || {
                queue.send(Message::Submit { tasks: Vec::new() }).is_ok()
            });
            assert!(back.is_none(), "task 4 not staged");
            drop(queue);
            let mut messages = Vec::new();
            while let Some(message) = merged.recv().await {
                messages.push(message);
            }
            messages
        });
        let shape: Vec<String> = messages
            .iter()
            .map(|m| match m {
                Message::Submit { tasks } => {
                    format!(
                        "submit {:?}",
                        tasks.iter().map(|t| t.id).collect::<Vec<_>>()
                    )
                }
                Message::Cancel { tasks } => format!("cancel {tasks:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        // The merging task runs on the runtime's threads beside this one: it may
        // take the list with 1-3 before task 4 joins it (task 4 then leaves after
        // the cancel), or after (task 4 leaves with 1-3, ahead of the cancel queued
        // before it: allowed, as nothing about task 4 was queued before it). What
        // matters: task 2 is submitted before its cancel, every task once, in
        // submission order.
        let mut submitted = Vec::new();
        let mut cancelled_after = None;
        for message in &messages {
            match message {
                Message::Submit { tasks } => submitted.extend(tasks.iter().map(|t| t.id)),
                Message::Cancel { tasks } if tasks == &[2] && cancelled_after.is_none() => {
                    cancelled_after = Some(submitted.clone());
                }
                _ => panic!("unexpected messages: {shape:?}"),
            }
        }
        assert_eq!(submitted, [1, 2, 3, 4], "{shape:?}");
        let before_cancel = cancelled_after.unwrap_or_else(|| panic!("no cancel: {shape:?}"));
        assert!(
            before_cancel.contains(&2),
            "cancel before submit: {shape:?}"
        );
        assert!(before_cancel.starts_with(&[1, 2, 3]), "{shape:?}");
    }

    #[test]
    fn the_newest_worker_announcement_in_a_batch_counts() {
        let batch = [
            Message::Workers { count: 0, slots: 0 },
            Message::Workers { count: 1, slots: 2 },
            Message::Heartbeat,
        ];
        assert_eq!(last_announcement(&batch), Some((1, 2)));
        assert_eq!(last_announcement(&[Message::Heartbeat]), None);
    }

    /// A scheduler that welcomes the client and then says nothing must not keep
    /// `connect` waiting forever: it gives up after the handshake timeout.
    #[test]
    fn a_scheduler_that_never_announces_its_workers_is_an_error() {
        let runtime = Arc::new(ClusterRuntime::start().expect("runtime"));
        let secret = Secret::generate();
        let listener = runtime
            .handle()
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server_secret = secret.clone();
        let (hold, held) = std::sync::mpsc::channel::<()>();
        runtime.handle().spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (mut reader, mut writer) = split(stream);
            let build = std::sync::Mutex::new(None);
            crate::connection::accept(&mut reader, &mut writer, &server_secret, &build)
                .await
                .expect("handshake");
            crate::connection::write_batch(&mut writer, &[Message::Welcome { id: 1 }])
                .await
                .expect("welcome");
            // Keep the connection open and silent until the test ends.
            let _ = tokio::task::spawn_blocking(move || held.recv()).await;
            drop((reader, writer));
        });
        let error = ClusterClient::connect(runtime.clone(), &address, secret)
            .err()
            .expect("connect must fail");
        assert!(error.contains("announced no workers"), "{error}");
        drop(hold);
    }
}
