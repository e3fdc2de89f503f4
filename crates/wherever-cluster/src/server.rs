//! The scheduler server: accepts clients and workers, authenticates them, and
//! moves bytes between their connections and the sans-IO [`Reactor`] (which
//! keeps the peers and task records around the scheduler state machine).

use crate::auth::Secret;
use crate::connection::{
    accept_gated, configured_max_value, printable, read_batch_within, run_writer_with, split,
    HandshakeGate,
};
use crate::protocol::{BuildInfo, Message, Role};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::{AbortHandle, JoinHandle};
use wherever_scheduler::reactor::{Comm, PeerId, ReactorConfig};
use wherever_scheduler::SchedulerConfig;

mod builds;
mod control;
mod queued;
use builds::{BuildKey, Builds};
pub use control::{control_channel, Control, ControlSide, CONTROL_WAIT};
use queued::QueuedBytes;
pub use queued::PEER_QUEUE_LIMIT;

/// How the scheduler server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The build every peer must run; `None`: any build, each with its own
    /// scheduler (a client's tasks run only on workers of its own build).
    pub expected_build: Option<BuildInfo>,
    /// A worker or client silent for this long is considered gone (a worker dead:
    /// its tasks move to other workers; a client: its tasks are released).
    pub heartbeat_timeout: Duration,
    /// The largest value (task arguments, scattered value) taken from a peer, in
    /// bytes; announced to every peer after its welcome.
    pub max_value: u64,
    /// Where the scheduler emits task and worker events (for progress and the
    /// dashboard in the process that runs it).
    pub events: wherever_core::events::EventBus,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            expected_build: None,
            heartbeat_timeout: Duration::from_secs(30),
            max_value: configured_max_value(),
            events: Default::default(),
        }
    }
}

/// How many tasks a worker may hold queued beyond its slots. Deep enough that a
/// worker is never idle waiting for the round trip to the scheduler (trivial tasks
/// run at ~2x the rate of a prefetch of 1); an idle worker steals queued tasks
/// back, so long tasks still spread over all workers. 128 rather than 32: the
/// tasks and reports of a deeper window travel in fewer, larger frames (the
/// processes:2 tree of 200,006 trivial tasks: system time about halved).
pub const PREFETCH_PER_WORKER: u32 = 128;

type ConnId = PeerId;

enum Incoming {
    Joined {
        conn: ConnId,
        build: BuildKey,
        role: Role,
        label: String,
        queue: UnboundedSender<Message>,
        queued: QueuedBytes,
        reader: AbortHandle,
        writer: JoinHandle<()>,
    },
    Batch {
        conn: ConnId,
        messages: Vec<Message>,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

/// Binds `bind` (`HOST:PORT`, port 0 for any) and serves the scheduler there on
/// `runtime` until the runtime stops; returns the address it listens on.
pub fn start(
    runtime: &crate::ClusterRuntime,
    bind: &str,
    secret: Secret,
    options: ServerOptions,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = runtime.handle().block_on(TcpListener::bind(bind))?;
    let address = listener.local_addr()?;
    runtime.handle().spawn(serve(listener, secret, options));
    Ok(address)
}

/// Serves the scheduler on `listener` until the process ends (or the task is dropped).
pub async fn serve(listener: TcpListener, secret: Secret, options: ServerOptions) {
    let (_keep, signal) = shutdown_channel();
    serve_until(listener, secret, options, signal).await
}

/// How long the scheduler waits at a shutdown for its goodbyes to be written.
pub const GOODBYE_WAIT: Duration = Duration::from_secs(5);

/// Asks a server started with [`serve_until`] to end the cluster normally:
/// every worker is told goodbye (it exits now, with status 0, instead of
/// reconnecting for its death timeout) and the connections close.
pub struct Shutdown {
    ask: tokio::sync::oneshot::Sender<std::sync::mpsc::Sender<()>>,
}

/// The server's end of a [`Shutdown`].
pub struct ShutdownSignal {
    asked: tokio::sync::oneshot::Receiver<std::sync::mpsc::Sender<()>>,
}

/// A [`Shutdown`] and the signal to give to [`serve_until`]. Dropping the
/// `Shutdown` unused never stops the server.
pub fn shutdown_channel() -> (Shutdown, ShutdownSignal) {
    let (ask, asked) = tokio::sync::oneshot::channel();
    (Shutdown { ask }, ShutdownSignal { asked })
}

impl Shutdown {
    /// Asks the server to say goodbye and stop, without waiting: [`serve_until`]
    /// returns once it is done.
    pub fn request(self) {
        let (done, _) = std::sync::mpsc::channel();
        let _ = self.ask.send(done);
    }

    /// Tells the server to say goodbye to its workers and close every connection,
    /// and waits (blocking this thread, at most `wait`) until the goodbyes are
    /// written. Usable from any thread, also one inside an async runtime.
    pub fn goodbye(self, wait: Duration) {
        let (done, finished) = std::sync::mpsc::channel();
        if self.ask.send(done).is_ok() {
            let _ = finished.recv_timeout(wait);
        }
    }
}

impl ShutdownSignal {
    /// Resolves when a shutdown is asked (never if its [`Shutdown`] is dropped),
    /// with where to report that it is done.
    async fn asked(self) -> std::sync::mpsc::Sender<()> {
        match self.asked.await {
            Ok(done) => done,
            Err(_) => std::future::pending().await,
        }
    }
}

/// [`serve`] until `shutdown` is asked: then every worker gets a goodbye, the
/// connections close once their queued messages are written (for at most
/// [`GOODBYE_WAIT`]) and this returns.
pub async fn serve_until(
    listener: TcpListener,
    secret: Secret,
    options: ServerOptions,
    shutdown: ShutdownSignal,
) {
    let (_control, side, _left) = control_channel();
    serve_controlled(listener, secret, options, shutdown, side).await
}

/// [`serve_until`], also answering the requests of `control` (the workers and the
/// queue; retiring groups of workers) and reporting there the groups whose
/// retired workers have all left.
pub async fn serve_controlled(
    listener: TcpListener,
    secret: Secret,
    options: ServerOptions,
    shutdown: ShutdownSignal,
    control: ControlSide,
) {
    let (events, incoming) = unbounded_channel();
    // A pinned build is checked at the handshake; otherwise each peer is routed
    // to its own build's scheduler.
    let pinned = options
        .expected_build
        .clone()
        .map(|build| Arc::new(Mutex::new(Some(build))));
    let timeout = options.heartbeat_timeout;
    let max_value = options.max_value;
    let core = tokio::spawn(run_core(
        incoming,
        timeout,
        max_value,
        options.events.clone(),
        shutdown,
        control,
    ));
    tokio::select! {
        _ = accept_loop(listener, secret, events, pinned, max_value, timeout) => {}
        _ = core => {}
    }
}

/// Accepts connections, runs their handshakes and readers, and hands them to the
/// core through `events`.
async fn accept_loop(
    listener: TcpListener,
    secret: Secret,
    events: UnboundedSender<Incoming>,
    pinned: Option<Arc<Mutex<Option<BuildInfo>>>>,
    max_value: u64,
    timeout: Duration,
) {
    let secret = Arc::new(secret);
    let gate = HandshakeGate::new();
    let mut next_conn: ConnId = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_conn += 1;
        let conn = next_conn;
        let (events, secret) = (events.clone(), secret.clone());
        let expected = pinned.clone().unwrap_or_default();
        let ticket = gate.admit();
        tokio::spawn(async move {
            let (mut reader, mut writer) = split(stream);
            let handshake = accept_gated(ticket, &mut reader, &mut writer, &secret, &expected);
            let hello = match handshake.await {
                Ok(hello) => hello,
                Err(reason) => {
                    tracing::warn!("disconnected {peer}: {reason}");
                    return;
                }
            };
            if matches!(hello.role, Role::DataFetch) {
                tracing::warn!("disconnected {peer}: a data fetch is not for the scheduler");
                return;
            }
            reader.decoder_mut().limit_values(max_value);
            let (queue, outgoing) = unbounded_channel();
            let queued = QueuedBytes::default();
            let sent = queued.clone();
            let writer = tokio::spawn(run_writer_with(writer, outgoing, move |frame| {
                sent.written(frame)
            }));
            let label = format!(
                "process {} on {} ({peer}) of {}",
                hello.pid,
                printable(&hello.host),
                printable(&hello.build.executable)
            );
            let events_for_reader = events.clone();
            // The reactor's clock decides who is silent (a worker it drops is told
            // to shut down); the reader's own guard only catches a stuck reactor.
            let silence = reader_silence_guard(timeout);
            let read_loop = tokio::spawn(async move {
                let reason = loop {
                    match read_batch_within(&mut reader, silence).await {
                        Ok(Some(messages)) => {
                            if events_for_reader
                                .send(Incoming::Batch { conn, messages })
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break CLOSED.to_string(),
                        Err(reason) => break reason,
                    }
                };
                let _ = events_for_reader.send(Incoming::Closed { conn, reason });
            });
            let joined = Incoming::Joined {
                conn,
                build: BuildKey::of(&hello.build),
                role: hello.role,
                label,
                queue,
                queued,
                reader: read_loop.abort_handle(),
                writer,
            };
            let _ = events.send(joined);
        });
    }
}

async fn run_core(
    mut incoming: UnboundedReceiver<Incoming>,
    heartbeat_timeout: Duration,
    max_value: u64,
    events: wherever_core::events::EventBus,
    shutdown: ShutdownSignal,
    control: ControlSide,
) {
    let ControlSide {
        requests: mut control_requests,
        groups_left,
    } = control;
    let mut control_open = true;
    // Placement watchers (`Control::watch_placements`), and the placements seen.
    let mut watchers = Vec::new();
    let mut placements = 0u64;
    let config = ReactorConfig {
        scheduler: SchedulerConfig {
            prefetch_per_worker: Some(PREFETCH_PER_WORKER),
            ..SchedulerConfig::default()
        },
        heartbeat_timeout,
        events,
    };
    let mut builds = Builds::new(config);
    let mut links = Links::default();
    let mut check = tokio::time::interval(tick_interval(heartbeat_timeout));
    let shutdown = shutdown.asked();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            done = &mut shutdown => {
                builds.goodbye(&mut links);
                links.close_all(GOODBYE_WAIT).await;
                let _ = done.send(());
                return;
            }
            event = incoming.recv() => match event {
                Some(Incoming::Joined { conn, build, role, label, queue, queued, reader, writer }) => {
                    tracing::info!("joined: {label}");
                    let kind = if matches!(role, Role::Worker { .. }) { "worker" } else { "client" };
                    links.open.insert(conn, Link { queue, queued, reader, writer, label, kind });
                    builds.join(conn, build).peer_joined(conn, role, Instant::now(), &mut links);
                    // After the welcome: peers fail larger values instead of sending them.
                    links.send(conn, Message::ValueLimit { bytes: max_value });
                }
                Some(Incoming::Batch { conn, messages }) => {
                    if let Some(reactor) = builds.of(conn) {
                        reactor.messages(conn, messages, Instant::now(), &mut links);
                    }
                }
                Some(Incoming::Closed { conn, reason }) => {
                    if let Some(link) = links.open.remove(&conn) {
                        link.report(&reason);
                    }
                    if let Some(reactor) = builds.of(conn) {
                        reactor.peer_closed(conn, &mut links);
                    }
                    builds.left(conn);
                }
                None => return,
            },
            request = control_requests.recv(), if control_open => match request {
                Some(request) => control::answer(request, &mut builds, &mut links, &mut watchers),
                None => control_open = false,
            },
            _ = check.tick() => {
                builds.tick(Instant::now(), &mut links);
                builds.forget_closed(|peer| links.open.contains_key(&peer));
            }
        }
        if !watchers.is_empty() {
            let now = builds.limited_placements_made();
            if now != placements {
                placements = now;
                control::wake_watchers(&mut watchers);
            }
        }
        let left = builds.take_groups_left();
        if !left.is_empty() {
            let _ = groups_left.send(left);
        }
    }
}

/// How often the reactor's clock ticks: often enough to notice a silent peer
/// soon after `heartbeat_timeout`.
fn tick_interval(heartbeat_timeout: Duration) -> Duration {
    (heartbeat_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Why a connection ended when its peer closed it.
const CLOSED: &str = "connection closed";

/// How long a connection's reader waits for a message before it gives the peer
/// up on its own: well past the time the reactor's tick takes to notice the
/// same silence (`heartbeat_timeout` plus a tick), so the reactor decides.
fn reader_silence_guard(heartbeat_timeout: Duration) -> Duration {
    heartbeat_timeout * 2 + tick_interval(heartbeat_timeout) * 2
}

/// One open connection as the I/O side sees it.
struct Link {
    queue: UnboundedSender<Message>,
    queued: QueuedBytes,
    reader: AbortHandle,
    /// Ends once the queue is dropped and what it held is written.
    writer: JoinHandle<()>,
    label: String,
    kind: &'static str,
}

impl Link {
    /// Logs why the connection ended: a client closing its connection is a normal
    /// exit (an info line), anything else a warning. A closed stderr is ignored
    /// (`eprintln!` would panic and stop the scheduler's core).
    fn report(&self, reason: &str) {
        use std::io::Write;
        if self.kind == "client" && reason == CLOSED {
            tracing::info!("client left: {}", self.label);
            return;
        }
        tracing::warn!("disconnected {}: {reason}", self.label);
        if reason != CLOSED {
            let _ = writeln!(
                std::io::stderr(),
                "wherever scheduler: disconnected {} {}: {reason}",
                self.kind,
                self.label
            );
        }
    }
}

/// The open connections: the reactor's [`Comm`]. A few of them, looked up for
/// every message sent: a `BTreeMap` finds one without hashing.
#[derive(Default)]
struct Links {
    open: BTreeMap<ConnId, Link>,
}

impl Links {
    /// Closes every connection after its queued messages (the goodbyes) are
    /// written, waiting at most `wait` for them in all.
    async fn close_all(&mut self, wait: Duration) {
        let writers: Vec<JoinHandle<()>> = std::mem::take(&mut self.open)
            .into_values()
            .map(|link| {
                link.reader.abort();
                link.writer
            })
            .collect();
        let _ = tokio::time::timeout(wait, futures_util::future::join_all(writers)).await;
    }
}

impl Comm for Links {
    fn send(&mut self, peer: PeerId, message: Message) {
        if let Some(link) = self.open.get(&peer) {
            link.queued.add(&message);
            let _ = link.queue.send(message);
        }
    }

    fn has_room(&self, peer: PeerId, bytes: usize) -> bool {
        self.open
            .get(&peer)
            .is_none_or(|link| link.queued.has_room(bytes))
    }

    fn disconnect(&mut self, peer: PeerId, reason: &str) {
        // Dropping the queue lets the writer send what is queued, then close.
        if let Some(link) = self.open.remove(&peer) {
            link.reader.abort();
            link.report(reason);
        }
    }
}
