//! The live dashboard of wherever, served over HTTP by the process that runs the
//! scheduler (or the local executor), fed only by the event stream of
//! `wherever-core`. It keeps its own aggregate of the events (counts per task
//! name, workers, a bounded window of recent task runs) and shows names, counts,
//! sizes and times: never argument or result values.
//!
//! It binds `127.0.0.1:8787`, or the next free port, and refuses any request whose
//! `Host` header is not the address it serves (`127.0.0.1:PORT` or
//! `localhost:PORT`), so that a web page of another site cannot read it through DNS
//! rebinding. On a cluster, reach it with `ssh -L 8787:localhost:8787 HOST`.
//!
//! # Pages
//!
//! - `/`: everything below on one page;
//! - `/progress`: per task name, queued / running / done / failed;
//! - `/task-stream`: which worker ran what, when (the most recent
//!   [`STREAM_WINDOW`] runs);
//! - `/workers`: running tasks, tasks finished, memory held and last contact.
//!
//! The events carry no graph edges, so there is no graph page: `graph.to_dot()`
//! draws a graph. Pages update live through server-sent events (`/api/stream`);
//! their script and style are embedded in the binary (no CDN).
//!
//! # JSON endpoints
//!
//! For scripts that poll status (`curl http://127.0.0.1:8787/api/progress`):
//!
//! - `GET /api/progress`: `{"names": [{"name", "queued", "running", "done",
//!   "failed"}], "total": {same fields, "name": "total"}, "dropped_events": N}`;
//!   `dropped_events` counts events the dashboard lost because it read too slowly
//!   (its counts may then lag).
//! - `GET /api/tasks[?from=SEQ]`: `{"runs": [{"seq", "worker", "name", "start_us",
//!   "end_us", "failed"}], "next": SEQ}`: the finished task runs of the window,
//!   oldest first, from `SEQ` on; pass `next` back as `from` to get only new runs.
//!   Times are microseconds since the event stream started.
//! - `GET /api/workers`: `{"workers": [{"worker", "host", "slots", "running",
//!   "finished", "rss_bytes", "cpu_ms", "cpu_percent", "last_seen_ms", "left"}]}`;
//!   `rss_bytes` and `cpu_ms` (the CPU time its process used so far) are `null`
//!   until the worker reports them (cluster workers, about once a second while
//!   tasks start), `cpu_percent` (its CPU use between its last two reports, 100 per
//!   busy core) until it reported twice; `left` is `null` or why it left.
//! - `GET /api/graph`: `{"nodes": [{"task", "name", "state", "deps", "layer",
//!   "slot"}]}`: the last graph of at most 500 tasks a `compute` submitted
//!   (`nodes` is empty before one), dependencies before dependents; `state` is
//!   `queued`, `running`, `done` or `failed`; `deps` are the task ids it needs;
//!   `layer` is 0 for a task that needs none of the graph's, else one more than its
//!   deepest dependency's, and `slot` its place along the layer. The graph of a
//!   `tcp://` scheduler's clients is not sent to it: the page shows graphs on local,
//!   `processes` and launched plans.
//! - `GET /api/stream`: server-sent `update` events, each `{"progress": ...,
//!   "workers": ..., "tasks": ..., "graph": ...}` with the bodies above (`tasks` holding only the
//!   runs new to this connection), at most every 250 ms and only when something
//!   changed.

mod assets;
pub mod feed;
pub mod graph;
mod live;
mod server;
pub mod state;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

pub use state::{Aggregate, NameProgress, Observation, TaskRun, WorkerView, STREAM_WINDOW};

/// The port the dashboard tries first.
pub const DEFAULT_PORT: u16 = 8787;

/// How many ports after the first one are tried before giving up.
pub const PORTS_TRIED: u16 = 100;

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No port from the first to the last tried was free.
    #[error("no free port for the dashboard on 127.0.0.1 from {first} to {last}")]
    NoFreePort {
        /// The first port tried.
        first: u16,
        /// The last port tried.
        last: u16,
    },
    /// The server's thread or runtime could not start.
    #[error("cannot start the dashboard: {0}")]
    Start(#[from] std::io::Error),
}

/// A running dashboard. Dropping it stops the server.
pub struct Dashboard {
    shared: Arc<server::Shared>,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Dashboard {
    /// Starts a dashboard on `127.0.0.1:first_port` or the next free port after it
    /// (at most [`PORTS_TRIED`]), serving on a thread of its own. It prints nothing:
    /// see [`Dashboard::announce`].
    pub fn start(first_port: u16) -> Result<Dashboard, DashboardError> {
        let listener = bind(first_port)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(server::Shared {
            state: Mutex::new(Aggregate::default()),
            hosts: vec![
                format!("127.0.0.1:{}", address.port()),
                format!("localhost:{}", address.port()),
            ],
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let app = server::router(shared.clone());
        std::thread::Builder::new()
            .name("wherever-dashboard".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Not a graceful shutdown: open event streams never end by
                    // themselves, and would keep the server alive.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime ends the connections still open.
                drop(runtime);
            })?;
        Ok(Dashboard {
            shared,
            address,
            stop: Some(stop),
        })
    }

    /// The address served, e.g. `http://127.0.0.1:8787/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// The socket address served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Prints `wherever: dashboard at URL` once on stderr (never on stdout, which
    /// belongs to the program's results).
    pub fn announce(&self) {
        eprintln!("wherever: dashboard at {}", self.url());
    }

    /// Applies observations to the aggregate the pages show.
    pub fn observe(&self, observations: impl IntoIterator<Item = Observation>) {
        self.sink().observe(observations);
    }

    /// A handle that feeds this dashboard from another thread.
    pub fn sink(&self) -> Sink {
        Sink {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("url", &self.url())
            .finish()
    }
}

/// Feeds a dashboard's aggregate (see [`Dashboard::sink`]).
#[derive(Clone)]
pub struct Sink {
    shared: Arc<server::Shared>,
}

impl Sink {
    /// Applies observations to the aggregate, under one lock.
    pub fn observe(&self, observations: impl IntoIterator<Item = Observation>) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for observation in observations {
            state.apply(observation);
        }
    }
}

impl Sink {
    /// Reads the aggregate under its lock.
    pub fn read<T>(&self, read: impl FnOnce(&Aggregate) -> T) -> T {
        read(
            &self
                .shared
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }
}

fn bind(first: u16) -> Result<TcpListener, DashboardError> {
    let last = first.saturating_add(PORTS_TRIED - 1);
    (first..=last)
        .find_map(|port| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).ok())
        .ok_or(DashboardError::NoFreePort { first, last })
}
