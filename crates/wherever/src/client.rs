//! The client: starts a plan and submits work under it.

use crate::arguments::{Args, IntoArgs, PartsBox};
use crate::future::{Future, Shared, SharedData};
use crate::local::ThreadPool;
use crate::options::TaskOptions;
use crate::plan::{Level, Plan, Workers};
use crate::{Error, IntoTask, Resolved, StreamKey, StreamLabel, TaskError};
use serde::{de::DeserializeOwned, Serialize};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wherever_cluster::launcher::{
    start_cluster, ClusterOptions, LaunchedCluster, Launcher, MpiLauncher,
};
use wherever_cluster::{ClusterClient, ClusterRuntime, Secret};
use wherever_core::codec;
use wherever_core::panic_capture::install_hook;
use wherever_core::shared_ref::encode_pinned;

/// Values that can be task arguments or results: owned, thread-safe, serde types
/// (so the same code runs when the plan sends them to another process, and every
/// handle of a future can read its result).
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// How often a task is rerun after the worker running it died (Dask's
/// `allowed-failures`).
pub const DEFAULT_RETRIES: u32 = 3;

/// The handle a program uses to submit work under a plan. Cloning is cheap; clones
/// share the workers, the seed and the submission counter ([`Client::seeded`] gives
/// a client on the same workers with a stream tree and positions of its own).
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<ClientShared>,
    pub(crate) key: StreamKey,
    pub(crate) seeded: bool,
    pub(crate) positions: Arc<AtomicU64>,
    /// The per-task options its calls carry (see [`Client::options`]); shared, so
    /// that cloning a client for every job stays cheap.
    pub(crate) options: Arc<TaskOptions>,
}

pub(crate) struct ClientShared {
    pub(crate) plan: Plan,
    pub(crate) executor: Executor,
    /// The live dashboard, when this client started one ([`Client::dashboard_link`]).
    pub(crate) dashboard: std::sync::OnceLock<crate::dashboard::ClientDashboard>,
    /// The event stream of this plan's tasks (see [`Client::events`]).
    pub(crate) events: wherever_core::events::EventBus,
    /// Progress bars: `None` decides from the environment (see [`crate::progress`]).
    pub(crate) progress: Mutex<Option<bool>>,
}

pub(crate) enum Executor {
    Sequential,
    Threads(ThreadPool),
    Cluster(Cluster),
}

/// A multi-process plan's connection, and for `processes:N` the local cluster.
pub(crate) struct Cluster {
    pub(crate) client: ClusterClient,
    /// Task slots when known from the plan (`processes:N`), else as announced.
    slots: Option<usize>,
    /// Set once [`Client::scale`] or [`Client::adapt`] changed the workers: the
    /// plan's count no longer holds, the announced slots do.
    pub(crate) rescaled: std::sync::atomic::AtomicBool,
    /// The event stream of the scheduler in this process (launched clusters): the
    /// client's stream is the scheduler's, with task ids the client's own.
    pub(crate) scheduler_events: Option<wherever_core::events::EventBus>,
    pub(crate) launched: Option<LaunchedCluster>,
}

impl Cluster {
    /// A cluster reached through an existing connection.
    pub(crate) fn connected(client: ClusterClient) -> Self {
        Cluster {
            client,
            slots: None,
            rescaled: Default::default(),
            scheduler_events: None,
            launched: None,
        }
    }
}

impl Plan {
    /// Starts the plan's workers and returns a client for it.
    ///
    /// Every level starts here: local ones in this process; `processes`, `ssh:`,
    /// `slurm` and `mpi` through their launchers with a scheduler in this process;
    /// `tcp://` by connecting to a running scheduler. A launch that fails (a host
    /// that cannot be reached, `slurm` outside an allocation) is an [`Error::Start`].
    /// In a process started as a worker (whose `main` lacks `#[wherever::main]`) it
    /// is an [`Error::Start`] saying so, never a second generation of workers.
    pub fn start(&self) -> Result<Client, Error> {
        crate::worker_mode::refuse_in_worker(self)?;
        let dashboard = crate::dashboard::wanted(self)?;
        let client = self.start_here()?;
        if let Some(choice) = dashboard {
            crate::dashboard::attach(&client, choice);
        }
        Ok(client)
    }

    /// [`Plan::start`] without the worker-process check: for the nested plans that
    /// tasks start through [`crate::client()`], also in worker processes.
    pub(crate) fn start_here(&self) -> Result<Client, Error> {
        install_hook();
        let executor = match self.first() {
            Level::Sequential => Executor::Sequential,
            Level::Threads(workers) => Executor::Threads(ThreadPool::start(workers.resolve())?),
            level @ Level::Processes(..) => {
                let launcher = level
                    .worker_launcher()
                    .map_err(|reason| start_error(self, reason))?
                    .expect("a processes level starts workers");
                outside_async_runtime(|| self.start_launched(&*launcher))?
            }
            Level::Tcp { host, port } => outside_async_runtime(|| self.connect_tcp(host, *port))?,
            // Hosts may be lost (`partial`) or go away, and Slurm workers may have
            // several task threads: count the slots that joined.
            level @ (Level::Ssh(_) | Level::Slurm(_) | Level::SlurmJobs(_)) => {
                let launcher = level
                    .worker_launcher()
                    .map_err(|reason| start_error(self, reason))?
                    .expect("an ssh or slurm level starts workers");
                self.start_counting_joined(&*launcher)?
            }
            Level::Mpi(workers, options) => {
                // A worker rank whose main went on to start the plan serves instead.
                crate::worker_mode::serve_if_mpi_worker_rank();
                let expected = match workers {
                    Workers::Auto => None,
                    Workers::Exactly(n) => Some(*n),
                };
                let launcher = MpiLauncher::from_env(expected)
                    .map_err(|reason| start_error(self, reason))?
                    .with_memory_limit(options.memory_limit);
                self.start_counting_joined(&launcher)?
            }
        };
        Ok(Client::new(self.clone(), executor))
    }
}

impl Plan {
    /// [`Plan::start_launched`] for a launcher whose workers may have several task
    /// threads each (`SLURM_CPUS_PER_TASK`): the client counts the slots the
    /// workers announce.
    fn start_counting_joined(&self, launcher: &dyn Launcher) -> Result<Executor, Error> {
        let mut executor = outside_async_runtime(|| self.start_launched(launcher))?;
        if let Executor::Cluster(cluster) = &mut executor {
            // A per-task plan starts a job per task, up to its cap at once: `map`
            // chunks for that many slots, not for the workers it has at the time.
            cluster.slots = launcher.per_task_max_pending();
        }
        Ok(executor)
    }

    /// A scheduler in this process and the workers `launcher` starts for it (every
    /// multi-process level but `tcp://`); the plan's inner levels travel in the
    /// client's handshake to the scheduler, which tells its workers.
    fn start_launched(&self, launcher: &dyn Launcher) -> Result<Executor, Error> {
        let events = wherever_core::events::EventBus::new();
        let options = ClusterOptions {
            inner_plan: self.inner().map(|plan| plan.to_string()),
            events: events.clone(),
            ..ClusterOptions::default()
        };
        let (launched, client) =
            start_cluster(launcher, options).map_err(|reason| start_error(self, reason))?;
        Ok(Executor::Cluster(Cluster {
            client,
            slots: Some(launcher.workers()),
            rescaled: Default::default(),
            scheduler_events: Some(events),
            launched: Some(launched),
        }))
    }

    /// `tcp://HOST:PORT`: a connection to a running scheduler, told the plan's
    /// inner levels (its workers run nested tasks under them).
    fn connect_tcp(&self, host: &str, port: u16) -> Result<Executor, Error> {
        let secret = Secret::from_env().map_err(|e| start_error(self, e.to_string()))?;
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let inner = self.inner().map(|plan| plan.to_string());
        let client =
            connect(&address, secret, inner).map_err(|reason| start_error(self, reason))?;
        Ok(Executor::Cluster(Cluster {
            client,
            slots: None,
            rescaled: Default::default(),
            scheduler_events: None,
            launched: None,
        }))
    }
}

/// Runs `start` on a thread of its own: the cluster machinery blocks on its own
/// tokio runtime, which tokio refuses inside another runtime's thread (a program
/// with `#[tokio::main]`), so it never runs on the caller's thread.
fn outside_async_runtime<T: Send>(start: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(start).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Connects to the scheduler at `address` on a runtime thread of its own, telling
/// it the plan's inner levels (`inner_plan`).
pub(crate) fn connect(
    address: &str,
    secret: Secret,
    inner_plan: Option<String>,
) -> Result<ClusterClient, String> {
    let runtime =
        Arc::new(ClusterRuntime::start().map_err(|e| format!("cannot start the I/O thread: {e}"))?);
    ClusterClient::connect_nested(runtime, address, secret, inner_plan)
}

fn start_error(plan: &Plan, reason: String) -> Error {
    Error::Start {
        plan: plan.to_string(),
        reason,
    }
}

fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

impl Client {
    pub(crate) fn new(plan: Plan, executor: Executor) -> Client {
        let events = match &executor {
            Executor::Cluster(cluster) => Some(
                cluster
                    .scheduler_events
                    .clone()
                    .unwrap_or_else(|| cluster.client.event_bus()),
            ),
            _ => None,
        };
        Client {
            shared: Arc::new(ClientShared {
                plan,
                executor,
                dashboard: std::sync::OnceLock::new(),
                events: events.unwrap_or_default(),
                progress: Mutex::new(None),
            }),
            key: StreamKey::from_seed(random_seed()),
            seeded: false,
            positions: Arc::new(AtomicU64::new(0)),
            options: Arc::default(),
        }
    }

    /// This client with the root seed `seed`: task `p` (in submission order from
    /// here on, counting every `map` item) gets stream `p` of the seed's key, so
    /// results are bit-identical under every plan and chunking. Positions restart at 0.
    pub fn with_seed(self, seed: u64) -> Client {
        self.with_key(StreamKey::from_seed(seed), true)
    }

    /// This client with `seed` if it is `Some` (e.g. from [`crate::seed_from_args`]).
    pub fn with_seed_option(self, seed: Option<u64>) -> Client {
        match seed {
            Some(seed) => self.with_seed(seed),
            None => self,
        }
    }

    /// A client for one call on a random stream tree of its own (R's
    /// `future_lapply(..., future.seed = 42)`): it shares this client's workers
    /// (cheap: an `Arc` clone and a key) but derives its stream key from this
    /// client's key and `label` (a `u64` or a text), with its own positions
    /// starting at 0. A call's random numbers then depend only on the root seed,
    /// the label and the item index: not on what ran before, not on the plan, not
    /// on chunking. Use a different label per call; two clients with the same label
    /// draw the same streams. See [`StreamKey::labelled`] for the derivation.
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn draw(i: u64, rng: &mut TaskRng) -> (u64, f64) {
    ///     (i, rng.random())
    /// }
    ///
    /// let client = Plan::parse("threads:2")?.start()?.with_seed(42);
    /// let first = client.seeded("simulation").map(draw, 0..4)?;
    /// let _unrelated = client.map(draw, 0..10)?; // an extra call in between
    /// let again = client.seeded("simulation").map(draw, 0..4)?;
    /// assert_eq!(first, again);
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn seeded(&self, label: impl StreamLabel) -> Client {
        Client {
            shared: self.shared.clone(),
            key: self.key.labelled(label),
            seeded: self.seeded,
            positions: Arc::new(AtomicU64::new(0)),
            options: self.options.clone(),
        }
    }

    /// This client drawing streams from `key`, positions restarting at 0.
    pub(crate) fn with_key(self, key: StreamKey, seeded: bool) -> Client {
        Client {
            key,
            seeded,
            positions: Arc::new(AtomicU64::new(0)),
            ..self
        }
    }

    /// The address of the live dashboard this client started (e.g.
    /// `http://127.0.0.1:8787/`), or `None` when it has none: see
    /// [`DASHBOARD_VARIABLE`](crate::DASHBOARD_VARIABLE) for when it starts.
    pub fn dashboard_link(&self) -> Option<String> {
        self.shared.dashboard.get().map(|dashboard| dashboard.url())
    }

    /// The plan this client runs under.
    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// How many tasks can run at once.
    pub fn workers(&self) -> usize {
        match &self.shared.executor {
            Executor::Sequential => 1,
            Executor::Threads(pool) => pool.threads(),
            Executor::Cluster(cluster) => cluster
                .slots
                .filter(|_| !cluster.rescaled.load(Ordering::Relaxed))
                .unwrap_or_else(|| cluster.client.workers().1 as usize)
                .max(1),
        }
    }

    /// Takes `count` consecutive positions; returns the first.
    pub(crate) fn take_positions(&self, count: u64) -> u64 {
        self.positions.fetch_add(count, Ordering::Relaxed)
    }

    /// Submits one call of `task` and returns its future at once (under
    /// `sequential`, the task runs before `submit` returns, unless it waits on
    /// other tasks). Arguments may be values or references to other tasks'
    /// futures, scattered values or delayed values: the task then runs when they
    /// are ready, on their values (`client.submit(add, (&x, &y))`). Blocks only while
    /// the plan's queue is full (see [`crate::QUEUE_BOUND`]).
    pub fn submit<A: Value, R: Value, M: 'static>(
        &self,
        task: impl IntoTask<A, R, M>,
        args: impl IntoArgs<A>,
    ) -> Future<R> {
        let position = self.take_positions(1);
        self.submit_at(Arc::new(Resolved::new(task)), args.into_args(), position)
    }

    /// Submits a call whose arguments are already split into values and dependencies.
    pub(crate) fn submit_at<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        args: Args<A>,
        position: u64,
    ) -> Future<R> {
        match args {
            Args::Plain(args) => self.submit_plain(task, args, position),
            Args::Parts(PartsBox(parts)) => {
                let parts = crate::graph::submit_nodes_in(self, parts);
                self.submit_with_deps(task, parts, position)
            }
        }
    }

    /// The values of `futures`, in order; the first error met stops the gathering
    /// and is returned (the other tasks still run to the end).
    pub fn gather<R>(
        &self,
        futures: impl IntoIterator<Item = Future<R>>,
    ) -> Result<Vec<R>, TaskError> {
        let futures: Vec<Future<R>> = futures.into_iter().collect();
        fetch_when_done(&futures);
        let futures = futures.into_iter();
        let progress = self.track_gather(&futures);
        let values: Result<Vec<R>, TaskError> = futures.map(Future::value).collect();
        if let Some(progress) = progress.filter(|_| values.is_ok()) {
            progress.all_done();
        }
        values
    }

    /// Progress for gathering `futures`, when their number is known up front.
    fn track_gather<I: Iterator>(&self, futures: &I) -> Option<crate::progress::Progress> {
        match futures.size_hint() {
            (low, Some(high)) if low == high && low > 0 => self.track_any("gather", low as u64, 0),
            _ => None,
        }
    }

    /// The outcome of every future, in order (Dask's `gather(errors="skip")` or
    /// `"return"`): a failed task costs its own result only. Keep the good ones with
    /// `.into_iter().flatten()`.
    ///
    /// ```
    /// # use wherever::prelude::*;
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let futures = (0..3u64).map(|x| client.submit(|x: u64| if x == 1 { panic!("one") } else { x }, x));
    /// let outcomes = client.gather_results(futures);
    /// assert_eq!(outcomes[0], Ok(0));
    /// assert!(outcomes[1].as_ref().unwrap_err().to_string().contains("one"));
    /// assert_eq!(outcomes[2], Ok(2));
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn gather_results<R>(
        &self,
        futures: impl IntoIterator<Item = Future<R>>,
    ) -> Vec<Result<R, TaskError>> {
        let futures: Vec<Future<R>> = futures.into_iter().collect();
        fetch_when_done(&futures);
        let futures = futures.into_iter();
        let progress = self.track_gather(&futures);
        let outcomes = futures.map(Future::value).collect();
        if let Some(progress) = progress {
            progress.all_done();
        }
        outcomes
    }

    /// Puts `value` on the workers once (Dask's `scatter`): pass `&shared` as a task
    /// argument and the value is not sent again with each task (tutorial 6.4). On
    /// local plans it is encoded once and decoded by each task that uses it.
    ///
    /// To share one value among many tasks without a decoded copy per task, scatter
    /// a [`SharedRef`](crate::SharedRef) and give the tasks a `SharedRef<T>`
    /// parameter: on local plans (`sequential`, `threads:N`) every task reads the
    /// very value scattered (never decoded), and on process plans each worker
    /// decodes it once and shares it among its tasks (it keeps the 16 most recently
    /// decoded shared values).
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn resample_mean(data: SharedRef<Vec<f64>>, rng: &mut TaskRng) -> f64 {
    ///     let n = data.len();
    ///     (0..n).map(|_| data[rng.random_range(0..n)]).sum::<f64>() / n as f64
    /// }
    ///
    /// let client = Plan::parse("threads:2")?.start()?.with_seed(1);
    /// let data = client.scatter(&SharedRef::new((0..5_000).map(f64::from).collect::<Vec<_>>()))?;
    /// let means = client.gather((0..400).map(|_| client.submit(resample_mean, &data)))?;
    /// assert_eq!(means.len(), 400);
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn scatter<T: Value>(&self, value: &T) -> Result<Shared<T>, Error> {
        let encoding_error =
            |e: codec::CodecError| Error::Args(format!("cannot encode the scattered value: {e}"));
        let (bytes, remote, on_drop) = match &self.shared.executor {
            Executor::Cluster(cluster) => {
                let bytes = codec::encode(value).map_err(encoding_error)?;
                let id = cluster.client.scatter(bytes.clone()).map_err(Error::Args)?;
                let release: Box<dyn FnOnce() + Send> = Box::new(cluster.client.releaser(id));
                (bytes, Some((cluster.client.id(), id)), Some(release))
            }
            _ => {
                let (bytes, pins) = encode_pinned(value).map_err(encoding_error)?;
                let unpin: Box<dyn FnOnce() + Send> = Box::new(move || drop(pins));
                (bytes, None, Some(unpin))
            }
        };
        Ok(Shared::new(SharedData {
            bytes: Arc::new(bytes),
            remote,
            on_drop: Mutex::new(on_drop),
        }))
    }

    /// The cluster connection, for multi-process plans.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        match &self.shared.executor {
            Executor::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Client({}, {} workers)",
            self.shared.plan,
            self.workers()
        )
    }
}

/// Asks for the results of `futures` as their tasks end: a gather reads them all,
/// so large ones are fetched together, not one by one when read.
fn fetch_when_done<R>(futures: &[Future<R>]) {
    for future in futures {
        future.slot.fetch_when_done();
    }
    // Those that ended already are fetched now, together.
    crate::held_fetch::fetch_together(futures.iter().map(|future| &future.slot));
}
