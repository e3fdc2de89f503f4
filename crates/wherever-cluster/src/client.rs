//! The client side: a connection to a scheduler on a background runtime thread,
//! submitting tasks and calling back when each ends.

use crate::auth::{this_build, Secret};
use crate::connection::{
    adopt_announced_limit, encoded_size, join, max_value_size, over_the_limit, read_batch,
    read_batch_within, run_writer, silence_timeout, split, FRAME_BUDGET,
};
use crate::fetch::FetchError;
use crate::protocol::{Message, Role, TaskId, TaskMessage, CLIENT_TASK_BITS};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{
    unbounded_channel, UnboundedReceiver, UnboundedSender, WeakUnboundedSender,
};
use wherever_core::{StreamKey, TaskError, TaskErrorKind};

mod no_workers;
pub use no_workers::{DEFAULT_NOTICE, NOTICE_VARIABLE, TIMEOUT_VARIABLE};

/// Called once with a task's encoded result or its error.
pub type Callback = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

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
    pending: Mutex<HashMap<TaskId, Callback>>,
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
}

/// A connection to a scheduler. Submitting never blocks; results come back through
/// callbacks run on the connection's thread.
pub struct ClusterClient {
    id: u64,
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
            let stream = TcpStream::connect(&target)
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
                None => match read_batch(&mut reader).await? {
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
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            workers: AtomicU32::new(workers),
            slots: AtomicU32::new(slots),
            announced: Condvar::new(),
            announcements: Mutex::new(()),
            secret,
            scheduler: address.to_string(),
            events: Default::default(),
            subscribed: AtomicBool::new(false),
        });
        let (commands, queue) = unbounded_channel();
        let connected = Arc::new(AtomicBool::new(true));
        let _in_runtime = runtime.handle().enter();
        let refused = shared.clone();
        let reject = move |task: TaskMessage, size: usize| refuse_oversize(&refused, task, size);
        runtime
            .handle()
            .spawn(run_writer(writer, merge_submits(queue, reject)));
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            commands,
            first_id: number << CLIENT_TASK_BITS,
            next: AtomicU64::new(1),
            connected,
            runtime,
        })
    }

    /// Submits a call; `callback` runs once when it ends. Returns the task id.
    pub fn submit(&self, call: RemoteCall, callback: Callback) -> TaskId {
        let id = self.first_id + self.next.fetch_add(1, Ordering::Relaxed);
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
                .insert(id, callback);
        }
        let closed = self
            .shared
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reason = match closed {
            Some(reason) => Some(reason),
            None => self
                .commands
                .send(Message::Submit { tasks: vec![task] })
                .err()
                .map(|_| "closed".to_string()),
        };
        if let Some(reason) = reason {
            fail(&self.shared, id, name, position, &reason);
        }
        id
    }

    /// This connection's identity in this process: futures of one connection can
    /// only be arguments of tasks on the same one.
    pub fn id(&self) -> u64 {
        self.id
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
        let id = self.first_id + self.next.fetch_add(1, Ordering::Relaxed);
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
    if let Some(callback) = callback {
        let message = format!(
            "lost the connection to the scheduler at {}: {reason}",
            shared.scheduler
        );
        callback(Err(TaskError::new(
            name,
            position,
            TaskErrorKind::Runtime,
            message,
        )));
    }
}

/// Fails a task whose arguments (`size` bytes) are over the largest value
/// ([`max_value_size`]), saying so.
fn refuse_oversize(shared: &Shared, task: TaskMessage, size: usize) {
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
        callback(Err(TaskError::new(
            &task.name,
            task.position,
            TaskErrorKind::Runtime,
            message,
        )));
    }
}

/// Merges consecutive `Submit`s into as few as fit, so a burst of submissions is a
/// few messages: a merged `Submit` holds tasks up to [`FRAME_BUDGET`] bytes (a task
/// larger than that goes alone), and a task larger than the largest value
/// ([`max_value_size`]) is handed to `reject` with its size instead of being sent.
fn merge_submits(
    mut queue: UnboundedReceiver<Message>,
    reject: impl Fn(TaskMessage, usize) + Send + 'static,
) -> UnboundedReceiver<Message> {
    let (merged, out) = unbounded_channel();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, 4096).await > 0 {
            let (mut tasks, mut bytes) = (Vec::new(), 0usize);
            for message in batch.drain(..) {
                let more = match message {
                    Message::Submit { tasks: more } => more,
                    other => {
                        if !tasks.is_empty() {
                            let _ = merged.send(Message::Submit {
                                tasks: std::mem::take(&mut tasks),
                            });
                            bytes = 0;
                        }
                        let _ = merged.send(other);
                        continue;
                    }
                };
                for task in more {
                    let size = encoded_size(&task);
                    if size as u64 > max_value_size() {
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
        Ok(result) => return complete(&shared, task, Ok(result)),
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
                } => complete(&shared, task, Ok(result)),
                Message::Done {
                    task,
                    result: None,
                    holders,
                } => {
                    tokio::spawn(fetch_result(
                        task,
                        holders,
                        shared.clone(),
                        commands.clone(),
                    ));
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
    announce(&shared);
    *shared.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
    let pending: Vec<(TaskId, Callback)> = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    for (_, callback) in pending {
        let message = format!(
            "lost the connection to the scheduler at {}: {reason}",
            shared.scheduler
        );
        callback(Err(TaskError::new("?", 0, TaskErrorKind::Runtime, message)));
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

fn complete(shared: &Shared, task: TaskId, outcome: Result<Vec<u8>, TaskError>) {
    let callback = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task);
    if let Some(callback) = callback {
        callback(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
