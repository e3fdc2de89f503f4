//! The wire protocol of the cluster (serde types only; the framing and the sockets
//! are in `wherever-cluster`): length-prefixed frames (4-byte big-endian length, at most
//! [`MAX_FRAME`] bytes), each holding a postcard-encoded batch of [`Message`]s.
//! Byte payloads (task arguments and results) are carried as raw byte strings,
//! copied once, never encoded element by element.
//!
//! A connection starts with the scheduler's [`Message::Challenge`], answered by the
//! peer's [`Message::Hello`]; nothing else is accepted before the scheduler's
//! [`Message::Welcome`].

use crate::Resources;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use wherever_core::events::MemoryThresholds;
use wherever_core::{StreamKey, TaskError};

/// The protocol version; peers with another version are refused at the handshake.
pub const PROTOCOL_VERSION: u32 = 7;

/// The most events a scheduler holds unsent for one subscribed client (a slow one
/// loses the oldest, and is told how many).
pub const MAX_FORWARDED_EVENTS: u32 = 1 << 16;

/// The largest frame a peer may send (256 MiB); larger frames close the connection.
pub const MAX_FRAME: usize = 256 << 20;

/// Results up to this size travel with the worker's `Finished` message to the
/// scheduler and on to the client; larger ones stay on the worker until the client
/// fetches them from its data address.
pub const INLINE_RESULT_LIMIT: usize = 1 << 20;

/// The longest worker name or group a worker may announce, in bytes.
pub const MAX_WORKER_NAME: usize = 256;

/// Task ids, unique in one cluster: the client's number in the high 24 bits, its own
/// counter in the low 40.
pub type TaskId = u64;

/// The number of low bits of a [`TaskId`] that count a client's own tasks.
pub const CLIENT_TASK_BITS: u32 = 40;

/// What the peer is, as it says in its [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A program submitting tasks. `inner_plan` is the plan its tasks' own tasks
    /// run under in the workers (the levels of a nested plan after the first,
    /// `processes:2/threads:3` → `threads:3`), or `None` when it has no inner
    /// level. The scheduler hands it to its workers; while one client's inner plan
    /// is in force, a client with another one is refused (see `Reactor`).
    Client {
        /// The plan for nested tasks, as a plan string.
        inner_plan: Option<String>,
    },
    /// A worker process with `slots` task threads, serving data at `data_address`.
    Worker {
        /// Tasks it runs at once.
        slots: u32,
        /// Where peers and clients fetch results it holds.
        data_address: SocketAddr,
        /// The resources it advertises (`WHEREVER_WORKER_RESOURCES`); without `cpus`,
        /// the scheduler counts `slots` cpus.
        resources: Resources,
        /// Its name (`WHEREVER_WORKER_NAME`, at most [`MAX_WORKER_NAME`] bytes);
        /// `None`: the scheduler names it by its data address.
        name: Option<String>,
        /// The unit it starts and stops with (`WHEREVER_WORKER_GROUP`, at most
        /// [`MAX_WORKER_NAME`] bytes); `None`: a group of its own.
        group: Option<String>,
        /// How long it has before it must be gone, in milliseconds from its hello
        /// (from `WHEREVER_WORKER_DEADLINE`, a batch job's end; relative, so that the
        /// hosts' clocks need not agree); `None`: no deadline.
        time_left_ms: Option<u64>,
        /// How many tasks it takes before it leaves (`WHEREVER_WORKER_MAX_TASKS`; a
        /// `slurm:per-task` job's worker takes 1); `None`: no limit. The scheduler
        /// assigns it no more and retires it once they are done.
        max_tasks: Option<u32>,
        /// Its memory limit and thresholds (`WHEREVER_WORKER_MEMORY_LIMIT` or its
        /// share of its machine, and the spill, pause and terminate fractions), for
        /// the event stream; `None`: it runs under no limit it knows of.
        memory: Option<Box<MemoryThresholds>>,
    },
    /// A worker or client fetching results from a worker's data address.
    DataFetch,
}

/// Which executable a peer runs: workers must run the same build as the clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The executable's build id: 8 bytes standing for its linker build id, or
    /// for the SHA-256 of the whole file when it has none (`wherever_cluster::auth::build_id`).
    pub hash: u64,
    /// The executable's path, for messages.
    pub executable: String,
    /// The fingerprint of the registered task names.
    pub registry: u64,
}

/// The peer's answer to the challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The peer's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// HMAC-SHA256 of the challenge's nonce under the cluster secret.
    pub proof: [u8; 32],
    /// What the peer is.
    pub role: Role,
    /// The peer's executable.
    pub build: BuildInfo,
    /// The peer's host name and process id, for messages.
    pub host: String,
    /// The peer's process id.
    pub pid: u32,
}

/// One task as the client submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// The cluster-wide task id.
    pub id: TaskId,
    /// The registered task name.
    pub name: String,
    /// The encoded arguments (one value, or a `Vec` of items for a chunk).
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// The submitting client's stream key.
    pub key: StreamKey,
    /// Whether the client set a seed.
    pub seeded: bool,
    /// The task's (first item's) position in the client's submission order.
    pub position: u64,
    /// Whether `args` is a chunk of items.
    pub chunk: bool,
    /// Tasks whose results this one needs.
    pub deps: Vec<TaskId>,
    /// Where in `args` each dependency's encoded result goes.
    pub holes: Vec<wherever_core::holes::Hole>,
    /// Tasks fused after this one (a linear chain of a graph): each runs on the
    /// previous one's result, and only the last one's result is reported.
    pub chain: Vec<ChainLink>,
    /// How often the task may be rerun after its worker died.
    pub retries: u32,
    /// The user's priority: among tasks ready to run, higher runs first (default 0).
    pub priority: i64,
    /// What the task holds on its worker while assigned there (default: nothing).
    pub resources: Resources,
    /// The user's timeout: the client fails the task's future once it passed; a worker
    /// still running the task after this plus a grace period exits, so that it is
    /// restarted (a thread cannot be stopped).
    pub timeout: Option<Duration>,
    /// Whether the client reads this task's result (a graph output, a `map` result,
    /// a submitted future): only then does the worker send a small result inline and
    /// the scheduler tell the client the task is done. A graph's intermediates are
    /// not wanted: their results stay on the workers that use them.
    pub wanted: bool,
}

impl TaskMessage {
    /// Task `id` calling `name` on `args`, with every other field at its default:
    /// stream key of seed 0 (unseeded), position 0, no chunk, dependencies, holes,
    /// chain, retries, priority, resources or timeout; its result wanted by the
    /// client. Fill in the rest with struct update syntax.
    pub fn new(id: TaskId, name: impl Into<String>, args: Vec<u8>) -> Self {
        TaskMessage {
            id,
            name: name.into(),
            args,
            key: StreamKey::from_seed(0),
            seeded: false,
            position: 0,
            chunk: false,
            deps: Vec::new(),
            holes: Vec::new(),
            chain: Vec::new(),
            retries: 0,
            priority: 0,
            resources: Resources::new(),
            timeout: None,
            wanted: true,
        }
    }
}

/// A task fused into the one before it in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The registered task name.
    pub name: String,
    /// Its encoded arguments, without the previous task's result.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// Where the previous task's encoded result goes in `args`.
    pub offset: u32,
    /// The task's position in its client's submission order.
    pub position: u64,
}

/// A dependency of a task to compute and the data addresses of workers holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The dependency's task id.
    pub task: TaskId,
    /// Data addresses of workers holding its result.
    pub holders: Vec<SocketAddr>,
}

/// Everything that crosses a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Scheduler (or data server) → peer, first: prove you know the secret.
    Challenge {
        /// The server's protocol version.
        protocol: u32,
        /// A fresh random nonce.
        nonce: [u8; 32],
    },
    /// Peer → scheduler: the answer to the challenge (boxed: it is large and
    /// sent once per connection).
    Hello(Box<Hello>),
    /// Scheduler → peer: accepted; `id` is the worker id or the client number.
    Welcome {
        /// The worker id or client number.
        id: u64,
    },
    /// Scheduler → peer: refused, with the reason; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
    /// Client → scheduler: new tasks.
    Submit {
        /// The tasks.
        tasks: Vec<TaskMessage>,
    },
    /// Client → scheduler: put this value on every worker (Dask's `scatter`).
    Scatter {
        /// The id the value is known by.
        task: TaskId,
        /// The encoded value.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Scheduler → worker: keep this value (a scattered one).
    Store {
        /// The id the value is known by.
        task: TaskId,
        /// The encoded value.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Client → scheduler: the client no longer needs these results.
    Release {
        /// The tasks.
        tasks: Vec<TaskId>,
    },
    /// Client → scheduler: cancel these tasks if they have not finished.
    Cancel {
        /// The tasks.
        tasks: Vec<TaskId>,
    },
    /// Scheduler → client: the task's result, inline, or where to fetch it.
    Done {
        /// The task.
        task: TaskId,
        /// The encoded result when it was small enough to travel inline.
        #[serde(with = "serde_bytes")]
        result: Option<Vec<u8>>,
        /// Data addresses of workers holding the result (when not inline).
        holders: Vec<SocketAddr>,
    },
    /// Scheduler → client: the task ended without a value.
    Failed {
        /// The task.
        task: TaskId,
        /// Why.
        error: Box<TaskError>,
    },
    /// Scheduler → client: the number of connected workers changed.
    Workers {
        /// Connected workers.
        count: u32,
        /// Their task slots in all.
        slots: u32,
    },
    /// Scheduler → worker: run this task.
    Compute {
        /// The task (boxed: every message is as large as the largest variant, and
        /// this one is the only large one; the wire format is the same).
        task: Box<TaskMessage>,
        /// Its dependencies and where they are.
        inputs: Vec<Input>,
    },
    /// Scheduler → worker: drop these results.
    Free {
        /// The tasks.
        tasks: Vec<TaskId>,
    },
    /// Scheduler → worker: give the task back if it has not started.
    Steal {
        /// The task.
        task: TaskId,
    },
    /// Scheduler → worker: drop the queued task; nobody wants it.
    Drop {
        /// The task.
        task: TaskId,
    },
    /// Worker → scheduler: the task finished.
    Finished {
        /// The task.
        task: TaskId,
        /// The result's size.
        nbytes: u64,
        /// The encoded result if at most [`INLINE_RESULT_LIMIT`] bytes.
        #[serde(with = "serde_bytes")]
        result: Option<Vec<u8>>,
        /// How long the task ran, as its worker measured it: only while the event
        /// stream is observed ([`Message::Observed`]), else `None` (one byte).
        ran_for: Option<Duration>,
    },
    /// Worker → scheduler: the task's function failed or panicked.
    TaskFailed {
        /// The task.
        task: TaskId,
        /// The error, naming task, position and worker.
        error: Box<TaskError>,
    },
    /// Worker → scheduler: the answer to a `Steal`.
    StealResponse {
        /// The task.
        task: TaskId,
        /// `true`: it had not started and is given back.
        stolen: bool,
    },
    /// Scheduler → worker: fetch a copy of this result from `holders` and keep it
    /// (a retiring worker hands it over); answer `Replicated`, or `ReplicateFailed`.
    Replicate {
        /// The task whose result to copy.
        task: TaskId,
        /// Data addresses of workers holding it.
        holders: Vec<SocketAddr>,
    },
    /// Worker → scheduler: the copy asked for by `Replicate` could not be fetched.
    ReplicateFailed {
        /// The task.
        task: TaskId,
    },
    /// Worker → scheduler: a fetched dependency is kept here too.
    Replicated {
        /// The task.
        task: TaskId,
    },
    /// Worker → scheduler: the task waits on other tasks and gives up its slot.
    Secede {
        /// The task.
        task: TaskId,
    },
    /// Worker → scheduler: the task runs again and takes its slot back.
    Rejoin {
        /// The task.
        task: TaskId,
    },
    /// Worker or client → scheduler: the result of `task` could not be fetched
    /// from `holders` (refused, timed out, or no longer held there). The scheduler
    /// drops those holders and recomputes the result if none is left; a client
    /// keeps waiting for a new `Done`, a worker gets `requester` again later.
    MissingData {
        /// The task whose result could not be fetched.
        task: TaskId,
        /// The data addresses it could not be fetched from.
        holders: Vec<SocketAddr>,
        /// The task the worker needed it for; `None` from a client.
        requester: Option<TaskId>,
    },
    /// Any peer → any peer: still alive.
    Heartbeat,
    /// Fetcher → data server: send me this result.
    GetData {
        /// The task.
        task: TaskId,
    },
    /// Data server → fetcher: the result, or `None` if not held here.
    Data {
        /// The task.
        task: TaskId,
        /// The encoded result.
        #[serde(with = "serde_bytes")]
        result: Option<Vec<u8>>,
    },
    /// Scheduler → worker: exit now (removed: it was silent too long); the worker
    /// exits with status 1.
    Shutdown,
    /// Scheduler → worker: the cluster ends normally (its client is done, the
    /// scheduler stops): exit now with status 0 instead of connecting again.
    Goodbye,
    /// Scheduler → worker: the plan that tasks' own tasks run under (a client's
    /// inner plan), or `None`: on this worker's own scheduler. Sent after the
    /// welcome when there is one, and again whenever it changes.
    InnerPlan {
        /// The plan string.
        plan: Option<String>,
    },
    /// Any peer → any peer, authenticated connections only: `head` is a message
    /// whose payload (arguments, result or scattered value) was taken out because
    /// it is larger than a chunk; its `total` bytes follow in [`Message::Part`]s
    /// of the same `stream`, and the receiver puts them back into `head`.
    Large {
        /// The sender's number for this transfer, unique on its connection.
        stream: u64,
        /// The payload's size in bytes, checked against the receiver's limit
        /// before anything is allocated.
        total: u64,
        /// The message with an empty payload.
        head: Box<Message>,
    },
    /// Any peer → any peer: the next chunk of the payload of a [`Message::Large`].
    Part {
        /// The transfer it belongs to.
        stream: u64,
        /// The chunk's bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        /// Whether this is the transfer's last chunk.
        last: bool,
    },
    /// Scheduler → worker or client, after the welcome: the largest value (task
    /// arguments, result, scattered value) the cluster takes, in bytes. A peer
    /// fails a task whose value is larger instead of sending it.
    ValueLimit {
        /// The limit in bytes.
        bytes: u64,
    },
    /// Worker → scheduler: the task began running (for the event stream; it rides
    /// in the same frame batch as whatever else is queued).
    Started {
        /// The task.
        task: TaskId,
    },
    /// Worker → scheduler: the worker's resident memory (at most about once a second,
    /// with its other messages), for the event stream.
    Memory {
        /// Resident set size in bytes.
        rss_bytes: u64,
        /// CPU time (user and system) the worker's process used so far.
        cpu: Duration,
        /// Bytes of results the worker spilled to its disk.
        spilled_bytes: u64,
        /// Whether it is paused (over its memory pause threshold).
        paused: bool,
    },
    /// Worker → scheduler: it went over its memory pause threshold and starts no
    /// new task (`true`), or came back under it (`false`); the scheduler assigns
    /// nothing new to a paused worker.
    Paused {
        /// `true`: paused.
        paused: bool,
    },
    /// Worker → scheduler: it exits now (over its memory terminate threshold),
    /// for its launcher to start another; `reason` goes into the error of a task
    /// lost with it.
    Exiting {
        /// Why, in words (`its worker exceeded 95% of its memory limit ...`).
        reason: String,
    },
    /// Scheduler → worker: from now on, run under this memory limit in bytes (a
    /// plan without `mem=` that scaled: every worker gets its new share of the
    /// machine); the worker keeps its spill, pause and terminate fractions and
    /// answers with [`Message::MemoryLimits`].
    SetMemoryLimit {
        /// The new limit in bytes (at least 1).
        limit: u64,
    },
    /// Worker → scheduler: the memory limit and thresholds it runs under now
    /// (after a [`Message::SetMemoryLimit`]), for the event stream.
    MemoryLimits {
        /// The limit and thresholds in bytes.
        limits: MemoryThresholds,
    },
    /// Scheduler → worker: whether anybody reads the event stream; while nobody does,
    /// workers send no [`Message::Started`] or [`Message::Memory`] (they cost nothing).
    Observed {
        /// `true`: report starts and memory.
        on: bool,
    },
    /// Client → scheduler: forward me the scheduler's event stream from now on,
    /// holding at most `capacity` unsent events (older ones are dropped and counted).
    SubscribeEvents {
        /// The most events held for this client (capped by the scheduler).
        capacity: u32,
    },
    /// Scheduler → client: events of its stream, in order (see
    /// [`wherever_core::events`]).
    Events {
        /// The events, stamped with the scheduler's clock.
        events: Vec<wherever_core::events::Stamped>,
    },
    /// Client → scheduler: it fetched the result of `task` from a worker and has
    /// its value (a worker that retires need not keep it for the client).
    Fetched {
        /// The task.
        task: TaskId,
    },
    /// Client → scheduler: the client will not read these results (every handle
    /// on them is gone; only tasks that take them as arguments use them): send
    /// neither `Done` nor the result for them. Each stays on its workers, for
    /// its dependents, until `Release`.
    Unwanted {
        /// The tasks.
        tasks: Vec<TaskId>,
    },
}

impl Message {
    /// The variant's name, for messages about unexpected messages.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Challenge { .. } => "Challenge",
            Message::Hello(_) => "Hello",
            Message::Welcome { .. } => "Welcome",
            Message::Refused { .. } => "Refused",
            Message::Submit { .. } => "Submit",
            Message::Scatter { .. } => "Scatter",
            Message::Store { .. } => "Store",
            Message::Release { .. } => "Release",
            Message::Cancel { .. } => "Cancel",
            Message::Done { .. } => "Done",
            Message::Failed { .. } => "Failed",
            Message::Workers { .. } => "Workers",
            Message::Compute { .. } => "Compute",
            Message::Free { .. } => "Free",
            Message::Steal { .. } => "Steal",
            Message::Drop { .. } => "Drop",
            Message::Finished { .. } => "Finished",
            Message::TaskFailed { .. } => "TaskFailed",
            Message::StealResponse { .. } => "StealResponse",
            Message::Replicated { .. } => "Replicated",
            Message::Replicate { .. } => "Replicate",
            Message::ReplicateFailed { .. } => "ReplicateFailed",
            Message::MissingData { .. } => "MissingData",
            Message::Heartbeat => "Heartbeat",
            Message::Secede { .. } => "Secede",
            Message::Rejoin { .. } => "Rejoin",
            Message::GetData { .. } => "GetData",
            Message::Data { .. } => "Data",
            Message::Shutdown => "Shutdown",
            Message::Goodbye => "Goodbye",
            Message::InnerPlan { .. } => "InnerPlan",
            Message::Large { .. } => "Large",
            Message::Part { .. } => "Part",
            Message::ValueLimit { .. } => "ValueLimit",
            Message::Started { .. } => "Started",
            Message::Memory { .. } => "Memory",
            Message::Paused { .. } => "Paused",
            Message::Exiting { .. } => "Exiting",
            Message::SetMemoryLimit { .. } => "SetMemoryLimit",
            Message::MemoryLimits { .. } => "MemoryLimits",
            Message::Observed { .. } => "Observed",
            Message::SubscribeEvents { .. } => "SubscribeEvents",
            Message::Events { .. } => "Events",
            Message::Fetched { .. } => "Fetched",
            Message::Unwanted { .. } => "Unwanted",
        }
    }
}

/// Encodes a batch of messages into one frame body.
pub fn encode_batch(messages: &[Message]) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(messages)
}

/// Decodes a frame body into its messages; trailing or malformed bytes are an error.
pub fn decode_batch(frame: &[u8]) -> Result<Vec<Message>, postcard::Error> {
    let (messages, rest) = postcard::take_from_bytes::<Vec<Message>>(frame)?;
    if rest.is_empty() {
        Ok(messages)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_stays_small() {
        // Every message queued, batched or decoded is moved at this size (a
        // `Compute` boxes its task: 248 bytes a message before).
        let size = std::mem::size_of::<Message>();
        assert!(size <= 96, "a message is {size} bytes");
    }

    use super::*;

    #[test]
    fn batches_round_trip() {
        let batch = vec![
            Message::Heartbeat,
            Message::Finished {
                task: 7,
                nbytes: 3,
                result: Some(vec![1, 2, 3]),
                ran_for: None,
            },
            Message::Release { tasks: vec![1, 2] },
            Message::Unwanted { tasks: vec![3] },
        ];
        let bytes = encode_batch(&batch).unwrap();
        assert_eq!(decode_batch(&bytes).unwrap(), batch);
    }

    #[test]
    fn garbage_and_truncated_frames_are_errors_not_panics() {
        let bytes = encode_batch(&[Message::Finished {
            task: 7,
            nbytes: 3,
            result: Some(vec![1, 2, 3]),
            ran_for: Some(Duration::from_micros(5)),
        }])
        .unwrap();
        assert!(decode_batch(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_batch(&[0xff; 16]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_batch(&longer).is_err());
    }
}
