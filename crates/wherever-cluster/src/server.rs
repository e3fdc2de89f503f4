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
use tokio::task::AbortHandle;
use wherever_scheduler::reactor::{Comm, PeerId, ReactorConfig};
use wherever_scheduler::SchedulerConfig;

mod builds;
mod queued;
use builds::{BuildKey, Builds};
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
/// back, so long tasks still spread over all workers.
pub const PREFETCH_PER_WORKER: u32 = 32;

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
    let (events, incoming) = unbounded_channel();
    // A pinned build is checked at the handshake; otherwise each peer is routed
    // to its own build's scheduler.
    let pinned = options
        .expected_build
        .clone()
        .map(|build| Arc::new(Mutex::new(Some(build))));
    let timeout = options.heartbeat_timeout;
    let max_value = options.max_value;
    tokio::spawn(run_core(
        incoming,
        timeout,
        max_value,
        options.events.clone(),
    ));
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
            tokio::spawn(run_writer_with(writer, outgoing, move |frame| {
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
) {
    let config = ReactorConfig {
        scheduler: SchedulerConfig {
            prefetch_per_worker: Some(PREFETCH_PER_WORKER),
        },
        heartbeat_timeout,
        events,
    };
    let mut builds = Builds::new(config);
    let mut links = Links::default();
    let mut check = tokio::time::interval(tick_interval(heartbeat_timeout));
    loop {
        tokio::select! {
            event = incoming.recv() => match event {
                Some(Incoming::Joined { conn, build, role, label, queue, queued, reader }) => {
                    tracing::info!("joined: {label}");
                    let kind = if matches!(role, Role::Worker { .. }) { "worker" } else { "client" };
                    links.open.insert(conn, Link { queue, queued, reader, label, kind });
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
            _ = check.tick() => {
                builds.tick(Instant::now(), &mut links);
                builds.forget_closed(|peer| links.open.contains_key(&peer));
            }
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
    label: String,
    kind: &'static str,
}

impl Link {
    /// Logs why the connection ended: a client closing its connection is a normal
    /// exit (an info line), anything else a warning.
    fn report(&self, reason: &str) {
        if self.kind == "client" && reason == CLOSED {
            tracing::info!("client left: {}", self.label);
            return;
        }
        tracing::warn!("disconnected {}: {reason}", self.label);
        if reason != CLOSED {
            eprintln!(
                "wherever scheduler: disconnected {} {}: {reason}",
                self.kind, self.label
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
