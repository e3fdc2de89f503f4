//! Launchers: how a plan's worker processes get started. Every multi-process plan
//! runs the same scheduler and the same worker code; only the [`Launcher`] differs:
//! local processes (`processes:N`, [`ProcessesLauncher`]), SSH hosts ([`SshLauncher`]), a Slurm
//! allocation's `srun`, or the ranks of an `mpirun`.
//!
//! [`start_cluster`] binds the scheduler (on loopback or a routable address, as the
//! launcher asks), starts it on the client's I/O runtime, has the launcher start
//! the workers, connects a client and waits (up to [`STARTUP_WAIT`]) for the
//! workers to join. A launch that fails before then is an error at once, and every
//! worker it started is stopped.

mod adapt;
mod address;
mod bounded_lines;
pub mod mpi;
pub mod mpi_rendezvous;
mod per_task;
mod processes;
mod scale;
mod slurm;
pub mod slurm_cancel;
mod slurm_jobs;
pub mod slurm_script;
pub mod slurm_spec;
mod ssh;
mod ssh_command;

pub use address::{
    advertised_address, choose_interface, interface_address, BindScope, INTERFACE_VARIABLE,
};
pub use mpi::{MpiLauncher, MpiRank};
pub use processes::{LocalCluster, ProcessesLauncher, RESTART_BUDGET};
pub use slurm::{SlurmLauncher, SRUN_OPTIONS};
pub use slurm_jobs::{SlurmJobsLauncher, SLURM_DIR_VARIABLE};
pub use slurm_script::job_script;
pub use slurm_spec::SlurmJobsSpec;
pub use ssh::{
    default_connect_timeout, SshHostSpec, SshLauncher, CONNECT_TIMEOUT_VARIABLE,
    DEFAULT_CONNECT_TIMEOUT, EXIT_ON_STDIN_EOF_VARIABLE, REMOTE_DEATH_TIMEOUT_SECONDS,
};

use crate::auth::{this_build, Secret};
use crate::client::{ClusterClient, ClusterRuntime};
use crate::server::{
    control_channel, serve_controlled, shutdown_channel, ServerOptions, Shutdown, GOODBYE_WAIT,
};
pub use adapt::{wanted_workers, AdaptOptions};
pub use per_task::{units_to_start, PER_TASK_INTERVAL};
pub use scale::{groups_to_retire, ScaleStep};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that makes a process a worker (`tcp://HOST:PORT`).
pub const WORKER_VARIABLE: &str = "WHEREVER_WORKER";

/// The environment variable a launcher sets to name one worker (`4711.0`, the
/// first worker of Slurm job 4711); the worker announces it to the scheduler, and
/// events, the dashboard and errors use it.
pub const WORKER_NAME_VARIABLE: &str = "WHEREVER_WORKER_NAME";

/// The environment variable a launcher sets to the unit its workers start and stop
/// in together (a Slurm job's id): scaling down retires whole groups, and
/// [`LaunchedWorkers::left`] names the groups that are gone. A worker without one
/// is a group of its own.
pub const WORKER_GROUP_VARIABLE: &str = "WHEREVER_WORKER_GROUP";

/// How long [`start_cluster`] waits for all workers to connect before returning anyway.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// What every launched worker needs to find and join its scheduler.
#[derive(Clone)]
pub struct WorkerLaunch {
    /// The address workers dial, `HOST:PORT` (`[V6]:PORT` for IPv6).
    pub scheduler: String,
    /// The cluster's secret as hex. A launcher hands it over through the worker's
    /// standard input (see [`crate::auth::SECRET_STDIN_VARIABLE`]; with
    /// [`crate::worker::EXIT_ON_STDIN_EOF_VARIABLE`] the worker then exits when that
    /// input closes) or a file only its owner can read
    /// ([`crate::Secret::write_new_file`], named by
    /// [`crate::auth::SECRET_FILE_VARIABLE`]), never through an environment variable
    /// or an argument (every child process of a task would inherit the one, `ps`
    /// shows the other).
    pub secret_hex: String,
    /// This program's executable, by absolute path.
    pub executable: PathBuf,
    /// Task threads per worker, unless the launcher knows better (a Slurm task's
    /// `SLURM_CPUS_PER_TASK`).
    pub threads: usize,
    /// Settings for the worker's environment, `(NAME, VALUE)`; a launcher that
    /// cannot set a remote environment passes them as `env NAME=VALUE` on the
    /// remote command line.
    pub env: Vec<(String, String)>,
}

/// How a launch stands, as [`LaunchedWorkers::poll`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchStatus {
    /// Nothing has failed (yet).
    Running,
    /// Some workers will never join (a host of a `partial` plan that cannot be
    /// reached); the others go on. `reason` names the host and the cause.
    Lost {
        /// How many of the expected workers are lost.
        workers: usize,
        /// What happened, for the user.
        reason: String,
    },
    /// The launch as a whole failed; the message names the cause.
    Failed(String),
}

/// Workers a [`Launcher`] started. Dropping it stops them.
pub trait LaunchedWorkers: Send {
    /// How the launch stands now; called repeatedly until the workers have joined.
    /// After [`LaunchedWorkers::started`] a launcher may also restart workers.
    fn poll(&mut self) -> LaunchStatus;
    /// Called once all expected workers joined (or the start-up wait ended):
    /// from here on the launcher may supervise its workers in the background.
    fn started(&mut self, runtime: &tokio::runtime::Handle) {
        let _ = runtime;
    }
    /// The cluster is ending normally: called before the scheduler tells the
    /// workers goodbye (they exit with status 0), so that a launcher that
    /// supervises its workers does not take their exits for failures.
    fn stopping(&mut self) {}
    /// Stops every worker and every helper process (ssh sessions, `srun` steps)
    /// and waits for them to end.
    fn stop(&mut self);

    // --- Scaling (Dask's `cluster.scale` / `adapt`); launchers of a fixed set of
    // workers (ssh hosts, an allocation's `srun`, mpirun's ranks) keep the defaults.

    /// Whether [`LaunchedWorkers::add`] can start more workers.
    fn can_scale(&self) -> bool {
        false
    }
    /// How many workers one [`LaunchedWorkers::add`] unit brings (a Slurm job's
    /// `workers-per-job`); scaling rounds to whole units.
    fn workers_per_unit(&self) -> usize {
        1
    }
    /// Starts `units` more units of workers for `launch` (each with
    /// [`WORKER_NAME_VARIABLE`] and [`WORKER_GROUP_VARIABLE`] set); they connect
    /// like the first ones.
    fn add(&mut self, units: usize, launch: &WorkerLaunch) -> Result<(), String> {
        let _ = (units, launch);
        Err("this plan's workers are a fixed set: it cannot start more".to_string())
    }
    /// For workers whose default memory limit is a share of one machine
    /// (`processes:N` without `mem=`): the limit each gets once the workers it
    /// runs now and `extra` more about to start share the machine. The launcher
    /// gives it to the workers it starts or restarts from now on; the caller tells
    /// the connected ones. `None` (the default): the limit does not follow the
    /// number of workers (the plan gave `mem=`, or the workers are on machines of
    /// their own).
    fn share_memory(&mut self, extra: usize) -> Option<u64> {
        let _ = extra;
        None
    }
    /// Workers started by [`LaunchedWorkers::add`] (or at launch) that have not
    /// connected yet (queued Slurm jobs), so that adapting does not flood a queue.
    fn starting(&self) -> usize {
        0
    }
    /// Cancels up to `units` units still starting (queued Slurm jobs, newest
    /// first), for scaling down before any connected worker is retired; returns
    /// how many workers the cancelled units would have brought.
    fn cancel_starting(&mut self, units: usize) -> usize {
        let _ = units;
        0
    }
    /// The scheduler retired every worker of these groups and they have left:
    /// release what held them (cancel the Slurm job, reap the process).
    fn left(&mut self, groups: &[String]) {
        let _ = groups;
    }
    /// The groups of the workers connected now (called before
    /// [`LaunchedWorkers::starting`] when scaling), for a launcher that counts its
    /// starting workers as those it started whose group has not connected yet.
    fn connected(&mut self, groups: &[String]) {
        let _ = groups;
    }
    /// The workers of `group`, which take a limited number of tasks, were sent
    /// `tasks` (registered name, position): a launcher may name the unit after
    /// them (a `slurm:per-task` job is renamed `NAME-TASK-POSITION`).
    fn task_placed(&mut self, group: &str, tasks: &[(String, u64)]) {
        let _ = (group, tasks);
    }
}

/// A way to start the workers of a plan.
pub trait Launcher: Send + Sync {
    /// The plan level it serves, for messages (`ssh:h1*2,h2`).
    fn describe(&self) -> String;
    /// Where the scheduler must listen for these workers.
    fn bind_scope(&self) -> BindScope;
    /// How many workers the launch starts.
    fn workers(&self) -> usize;
    /// A host the workers run on, when known: the scheduler advertises the local
    /// address that routes to it (unless `WHEREVER_INTERFACE` says otherwise).
    fn peer_hint(&self) -> Option<String> {
        None
    }
    /// For a launcher that starts one unit per task (`slurm:per-task`): the most
    /// units starting at once. [`start_cluster`] then keeps one unit starting for
    /// each ready task ([`per_task`]); `None` (the default): a fixed launch.
    fn per_task_max_pending(&self) -> Option<usize> {
        None
    }
    /// Starts the workers; they connect to `launch.scheduler`. Called inside the
    /// I/O `runtime`'s context (tokio process and net types work).
    fn launch(
        &self,
        launch: &WorkerLaunch,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String>;
}

/// The settings of [`start_cluster`] that are not the launcher's.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Task threads per worker (a launcher may override it).
    pub threads: usize,
    /// Extra environment settings for every worker.
    pub env: Vec<(String, String)>,
    /// How long to wait for the workers to connect before returning anyway.
    pub startup_wait: Duration,
    /// Where the scheduler emits task and worker events.
    pub events: wherever_core::events::EventBus,
    /// The plan the workers run their tasks' own tasks under (a nested plan's
    /// inner levels, e.g. `threads:3`); it travels in the client's handshake.
    pub inner_plan: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            threads: 1,
            env: Vec::new(),
            startup_wait: STARTUP_WAIT,
            events: Default::default(),
            inner_plan: None,
        }
    }
}

/// A scheduler and the workers a launcher started, alive as long as this value.
pub struct LaunchedCluster {
    /// The launched workers, and what scaling them needs.
    scaler: Arc<scale::Scaler>,
    shutdown: Mutex<Option<Shutdown>>,
    address: String,
    /// The adapt loop, when on.
    adapting: Mutex<Option<adapt::Adapting>>,
    _runtime: Arc<ClusterRuntime>,
}

impl LaunchedCluster {
    /// The address the workers were told to dial.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for LaunchedCluster {
    /// Ends the cluster normally: the scheduler tells every worker goodbye (so a
    /// remote worker exits now, with status 0, instead of reconnecting for its
    /// death timeout), then the launcher stops whatever is left.
    fn drop(&mut self) {
        self.stop_adapting();
        let shutdown = self
            .shutdown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let mut workers = self
            .scaler
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.stopping();
        if let Some(shutdown) = shutdown {
            shutdown.goodbye(GOODBYE_WAIT);
        }
        workers.stop();
    }
}

/// Starts a scheduler, has `launcher` start its workers and connects a client:
/// see the [module documentation](self).
pub fn start_cluster(
    launcher: &dyn Launcher,
    options: ClusterOptions,
) -> Result<(LaunchedCluster, ClusterClient), String> {
    let runtime =
        Arc::new(ClusterRuntime::start().map_err(|e| format!("cannot start the I/O thread: {e}"))?);
    let handle = runtime.handle().clone();
    let secret = Secret::generate();
    let scope = launcher.bind_scope();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind(scope.bind_address()))
        .map_err(|e| format!("cannot open a port on {}: {e}", scope.bind_address()))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let host = advertised_address(scope, launcher.peer_hint().as_deref())?;
    let address = join_host_port(&host, port);
    let server_options = ServerOptions {
        expected_build: Some(this_build().clone()),
        events: options.events.clone(),
        ..ServerOptions::default()
    };
    let (shutdown, signal) = shutdown_channel();
    let (control, control_side, groups_left) = control_channel();
    handle.spawn(serve_controlled(
        listener,
        secret.clone(),
        server_options,
        signal,
        control_side,
    ));

    let executable =
        std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let launch = WorkerLaunch {
        scheduler: address.clone(),
        secret_hex: secret.to_hex(),
        executable,
        threads: options.threads,
        env: options.env.clone(),
    };
    let mut workers = {
        let _context = handle.enter();
        launcher.launch(&launch, &handle)?
    };
    let local_address = join_host_port(scope.loopback_host(), port);
    let connected = ClusterClient::connect_nested(
        runtime.clone(),
        &local_address,
        secret,
        options.inner_plan.clone(),
    );
    let client = match connected {
        Ok(client) => client,
        Err(error) => {
            workers.stop();
            return Err(error);
        }
    };
    // Like Dask's `LocalCluster()`, return once the workers are up (start-up is not
    // part of the first tasks' time); a slow start goes on in the background.
    if let Err(error) = await_workers(&client, workers.as_mut(), launcher, &options) {
        workers.stop();
        return Err(error);
    }
    workers.started(&handle);
    let workers = Arc::new(Mutex::new(workers));
    scale::reap_groups_that_left(groups_left, workers.clone(), control.clone());
    let cluster = LaunchedCluster {
        scaler: Arc::new(scale::Scaler {
            workers,
            plan: launcher.describe(),
            launch,
            control,
        }),
        shutdown: Mutex::new(Some(shutdown)),
        address,
        adapting: Mutex::new(None),
        _runtime: runtime,
    };
    if let Some(max_pending) = launcher.per_task_max_pending() {
        cluster.start_per_task(max_pending)?;
    }
    Ok((cluster, client))
}

/// `HOST:PORT`, with brackets around an IPv6 host.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Waits up to the start-up wait for the launcher's workers to connect through
/// `client`; a failed launch is an error at once.
fn await_workers(
    client: &ClusterClient,
    workers: &mut dyn LaunchedWorkers,
    launcher: &dyn Launcher,
    options: &ClusterOptions,
) -> Result<(), String> {
    let deadline = Instant::now() + options.startup_wait;
    let mut expected = launcher.workers();
    let mut lost_reported = 0;
    loop {
        let connected = client.workers().0 as usize;
        if connected >= expected || Instant::now() >= deadline {
            return Ok(());
        }
        match workers.poll() {
            LaunchStatus::Running => {}
            LaunchStatus::Lost {
                workers: lost,
                reason,
            } => {
                if lost > lost_reported {
                    tracing::warn!("{}: {reason}; going on without them", launcher.describe());
                    expected = launcher.workers().saturating_sub(lost);
                    lost_reported = lost;
                }
                if expected == 0 {
                    return Err(format!(
                        "no worker of `{}` could start: {reason}",
                        launcher.describe()
                    ));
                }
            }
            LaunchStatus::Failed(reason) => {
                return Err(format!(
                    "{reason} ({connected} of {expected} workers had connected)"
                ))
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
