//! The local launcher: `processes:N` runs N worker processes of the same
//! executable on this machine, restarting a worker that dies (as Dask's nanny
//! does; not one that was retired) and killing them all when stopped; it can
//! start more ([`LaunchedWorkers::add`]), each worker its own group. [`LocalCluster`] is this launcher
//! behind [`start_cluster`].

use super::{
    start_cluster, BindScope, ClusterOptions, LaunchStatus, LaunchedCluster, LaunchedWorkers,
    Launcher, WorkerLaunch, WORKER_GROUP_VARIABLE, WORKER_NAME_VARIABLE, WORKER_VARIABLE,
};
use crate::auth::SECRET_STDIN_VARIABLE;
use crate::client::ClusterClient;
use crate::worker::{
    machine_memory, remove_spill_directories_of, DEATH_TIMEOUT_VARIABLE, MEMORY_EXIT_STATUS,
    MEMORY_LIMIT_VARIABLE, THREADS_VARIABLE,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::process::{Child, Command};

/// glibc's allocator setting given to worker processes (unless set already), as
/// Dask's nanny does: freed memory goes back to the system instead of staying
/// resident, so a worker's resident memory follows what it holds, and spilling
/// brings it down. Setting it also turns off glibc's sliding threshold above which
/// allocations are mapped on their own (after a large value is freed, values of
/// its size would come from the heap, whose freed holes stay resident).
const MALLOC_TRIM_VARIABLE: (&str, &str) = ("MALLOC_TRIM_THRESHOLD_", "65536");

/// How many times, in all, dead workers of one local cluster are replaced.
pub const RESTART_BUDGET: usize = 100;

/// `processes:N`: N worker processes of this executable on this machine.
#[derive(Debug, Clone)]
pub struct ProcessesLauncher {
    /// How many worker processes.
    pub workers: usize,
    /// Each worker's memory limit in bytes (`processes:N,mem=SIZE`); `None`: the
    /// machine's memory divided by the workers, following their number when the
    /// cluster scales ([`LaunchedWorkers::share_memory`]).
    pub memory_limit: Option<u64>,
}

impl ProcessesLauncher {
    /// The memory limit each worker gets: the one given, else the machine's
    /// memory divided by the workers (`None` where that cannot be read).
    pub fn worker_memory_limit(&self) -> Option<u64> {
        self.memory_limit
            .or_else(|| machine_memory().map(|total| total / self.workers.max(1) as u64))
    }

    /// What every worker's environment gets besides the launch's own settings
    /// (which win) and its memory limit: the allocator setting.
    fn memory_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let (name, value) = MALLOC_TRIM_VARIABLE;
        if std::env::var_os(name).is_none() {
            env.push((name.to_string(), value.to_string()));
        }
        env
    }
}

impl Launcher for ProcessesLauncher {
    fn describe(&self) -> String {
        format!("processes:{}", self.workers)
    }

    fn bind_scope(&self) -> BindScope {
        BindScope::Loopback
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn launch(
        &self,
        launch: &WorkerLaunch,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        let mut workers = LocalWorkers::new(Spawner {
            launch: launch.clone(),
            next: Arc::new(AtomicUsize::new(0)),
            memory_env: Arc::new(self.memory_env()),
            memory_limit: Arc::new(AtomicU64::new(self.worker_memory_limit().unwrap_or(0))),
            shares_the_machine: self.memory_limit.is_none(),
            spawned: Arc::default(),
        });
        if let Err(error) = workers.spawn_more(self.workers, launch) {
            workers.stop();
            return Err(error);
        }
        Ok(Box::new(workers))
    }
}

/// Starts one worker process.
#[derive(Clone)]
struct Spawner {
    launch: WorkerLaunch,
    /// The number of the next worker: its name and group are `processes-N`.
    next: Arc<AtomicUsize>,
    /// Settings every worker gets before the launch's own (the allocator's).
    memory_env: Arc<Vec<(String, String)>>,
    /// The memory limit in bytes of the workers it starts from now on (0: none).
    memory_limit: Arc<AtomicU64>,
    /// Whether that limit is a share of the machine that follows the number of
    /// workers (no `mem=` given), rather than the plan's.
    shares_the_machine: bool,
    /// The process ids of every worker started, for the clean-up at the end.
    spawned: Arc<Mutex<Vec<u32>>>,
}

impl Spawner {
    /// The memory limit setting of a worker started now, if there is a limit.
    fn memory_limit_env(&self) -> Option<(&'static str, String)> {
        match self.memory_limit.load(Ordering::Relaxed) {
            0 => None,
            limit => Some((MEMORY_LIMIT_VARIABLE, limit.to_string())),
        }
    }

    /// A new name (and group) for a worker process.
    fn new_name(&self) -> String {
        format!("processes-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Starts a worker process named (and grouped) `name` for `launch`.
    fn spawn(&self, name: &str, launch: &WorkerLaunch) -> std::io::Result<Child> {
        let mut child = Command::new(&launch.executable)
            .env(WORKER_VARIABLE, format!("tcp://{}", launch.scheduler))
            .env(SECRET_STDIN_VARIABLE, "1")
            .env(THREADS_VARIABLE, launch.threads.to_string())
            // Its scheduler lives in its parent: gone means gone for good.
            .env(DEATH_TIMEOUT_VARIABLE, "0")
            .env(WORKER_NAME_VARIABLE, name)
            .env(WORKER_GROUP_VARIABLE, name)
            .envs(self.memory_limit_env())
            .envs(
                self.memory_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        hand_over_secret(&mut child, &launch.secret_hex)?;
        if let Some(pid) = child.id() {
            self.spawned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pid);
        }
        Ok(child)
    }
}

/// One worker process and its name (which is also its group).
struct LocalWorker {
    name: String,
    child: Child,
}

/// The worker processes of a [`ProcessesLauncher`], shared with their supervisor.
type Children = Arc<Mutex<Vec<LocalWorker>>>;

/// The worker processes of a [`ProcessesLauncher`]: checked for early exits while
/// they start, then supervised until stopped: one that fails is restarted, one
/// that exits with status 0 (retired, or told goodbye) is not. More can be
/// added ([`LaunchedWorkers::add`]).
struct LocalWorkers {
    children: Children,
    spawner: Spawner,
    stopping: Arc<AtomicBool>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    /// The groups (names) ever seen connected: a process not among them is
    /// starting (one that connected and was retired is not, while it exits).
    seen: HashSet<String>,
    /// The I/O runtime, once started (new processes are spawned in its context).
    runtime: Option<tokio::runtime::Handle>,
}

impl LocalWorkers {
    fn new(spawner: Spawner) -> Self {
        LocalWorkers {
            children: Arc::default(),
            spawner,
            stopping: Arc::new(AtomicBool::new(false)),
            supervisor: None,
            seen: HashSet::new(),
            runtime: None,
        }
    }

    /// Starts `count` more worker processes for `launch`.
    fn spawn_more(&mut self, count: usize, launch: &WorkerLaunch) -> Result<(), String> {
        let _context = self.runtime.as_ref().map(|runtime| runtime.enter());
        for _ in 0..count {
            let name = self.spawner.new_name();
            let child = self
                .spawner
                .spawn(&name, launch)
                .map_err(|error| format!("cannot start a worker process: {error}"))?;
            lock(&self.children).push(LocalWorker { name, child });
        }
        Ok(())
    }
}

/// Locks `children`, also after a panic elsewhere.
fn lock(children: &Children) -> std::sync::MutexGuard<'_, Vec<LocalWorker>> {
    children.lock().unwrap_or_else(|p| p.into_inner())
}

impl LaunchedWorkers for LocalWorkers {
    /// A worker process that exits before all joined fails the launch, with its
    /// exit status and the likely cause: a program whose `main` lacks
    /// `#[wherever::main]` runs its body in every worker instead of serving tasks.
    fn poll(&mut self) -> LaunchStatus {
        if self.supervisor.is_some() {
            return LaunchStatus::Running;
        }
        let mut children = lock(&self.children);
        match children
            .iter_mut()
            .find_map(|worker| worker.child.try_wait().ok().flatten())
        {
            None => LaunchStatus::Running,
            Some(status) => LaunchStatus::Failed(format!(
                "a worker process exited ({status}) before connecting to the scheduler. \
                 The likely cause: the program's fn main lacks #[wherever::main] (or \
                 wherever::init() as its first line), so its worker processes ran main's \
                 body instead of serving tasks; the workers' output above may say more"
            )),
        }
    }

    fn started(&mut self, runtime: &tokio::runtime::Handle) {
        self.runtime = Some(runtime.clone());
        if self.supervisor.is_none() {
            self.supervisor = Some(runtime.spawn(supervise(
                self.children.clone(),
                self.spawner.clone(),
                self.stopping.clone(),
            )));
        }
    }

    fn stopping(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        // Dropping the children kills them (`kill_on_drop`).
        let mut children = lock(&self.children);
        for worker in children.iter_mut() {
            let _ = worker.child.start_kill();
        }
        children.clear();
        // What killed workers could not remove themselves.
        let spawned = std::mem::take(
            &mut *self
                .spawner
                .spawned
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for pid in spawned {
            remove_spill_directories_of(pid);
        }
    }

    fn can_scale(&self) -> bool {
        true
    }

    fn add(&mut self, units: usize, launch: &WorkerLaunch) -> Result<(), String> {
        self.spawn_more(units, launch)
    }

    /// Without `mem=`: the machine's memory divided by the worker processes
    /// running (retiring and starting ones included, so that the shares never add
    /// up to more than the machine) plus `extra`.
    fn share_memory(&mut self, extra: usize) -> Option<u64> {
        if !self.spawner.shares_the_machine {
            return None;
        }
        let workers = (lock(&self.children).len() + extra).max(1);
        let limit = (machine_memory()? / workers as u64).max(1);
        self.spawner.memory_limit.store(limit, Ordering::Relaxed);
        Some(limit)
    }

    /// Worker processes running whose name has never connected.
    fn starting(&self) -> usize {
        lock(&self.children)
            .iter()
            .filter(|worker| !self.seen.contains(&worker.name))
            .count()
    }

    fn connected(&mut self, groups: &[String]) {
        self.seen.extend(groups.iter().cloned());
    }

    /// Retired processes exit by themselves (status 0) and the supervisor reaps
    /// them; one still running is killed.
    fn left(&mut self, groups: &[String]) {
        let mut children = lock(&self.children);
        for worker in children.iter_mut() {
            if groups.contains(&worker.name) {
                let _ = worker.child.start_kill();
            }
        }
        children.retain(|worker| !groups.contains(&worker.name));
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scheduler and worker processes on this machine, alive as long as this value.
pub struct LocalCluster {
    inner: LaunchedCluster,
}

impl LocalCluster {
    /// Starts the scheduler and `workers` worker processes of this executable, each
    /// with `threads` task threads and the extra environment `env`, and connects a
    /// client to it.
    pub fn start(
        workers: usize,
        threads: usize,
        env: &[(&str, &str)],
    ) -> Result<(LocalCluster, ClusterClient), String> {
        let options = ClusterOptions {
            threads,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ClusterOptions::default()
        };
        let launcher = ProcessesLauncher {
            workers,
            memory_limit: None,
        };
        let (inner, client) = start_cluster(&launcher, options)?;
        Ok((LocalCluster { inner }, client))
    }

    /// The scheduler's address (`127.0.0.1:PORT`).
    pub fn address(&self) -> &str {
        self.inner.address()
    }
}

/// Writes the secret (one line of hex) to a new worker's standard input and closes
/// it: unlike an environment variable, nothing the worker starts inherits it. A
/// worker that already exited (a broken pipe) is not an error here: its exit
/// status, reported by whoever waits on it, says more.
fn hand_over_secret(child: &mut Child, secret_hex: &str) -> std::io::Result<()> {
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the worker has no standard input"))?;
    // 65 bytes into a fresh pipe never block.
    let mut stdin = std::fs::File::from(stdin.into_owned_fd()?);
    match std::io::Write::write_all(&mut stdin, format!("{secret_hex}\n").as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        outcome => outcome,
    }
}

/// Waits on the workers: one that exits with status 0 (retired, or told goodbye)
/// is forgotten; one that fails while the cluster is running is replaced, under
/// the same name.
async fn supervise(children: Children, spawner: Spawner, stopping: Arc<AtomicBool>) {
    let mut restarts = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut children = lock(&children);
        children.retain_mut(|worker| {
            // (Known only until its exit has been seen.)
            let pid = worker.child.id();
            let Ok(Some(status)) = worker.child.try_wait() else {
                return true;
            };
            if let Some(pid) = pid {
                remove_spill_directories_of(pid);
            }
            if status.success() {
                tracing::info!("worker process {} exited (retired)", worker.name);
                return false;
            }
            if stopping.load(Ordering::SeqCst) || restarts >= RESTART_BUDGET {
                return true;
            }
            let why = if status.code() == Some(MEMORY_EXIT_STATUS) {
                " past its memory terminate threshold"
            } else {
                ""
            };
            tracing::warn!(
                "worker process {} exited ({status}){why}; starting another",
                worker.name
            );
            restarts += 1;
            match spawner.spawn(&worker.name, &spawner.launch) {
                Ok(new_child) => worker.child = new_child,
                Err(error) => tracing::warn!("cannot restart a worker: {error}"),
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    /// A worker that connected and was then retired is not starting while it exits:
    /// scaling straight back up counted it and started none (found by the
    /// `scale_up` example, whose second `scale(4)` waited for ever).
    #[tokio::test]
    async fn a_retired_worker_still_exiting_is_not_counted_as_starting() {
        let mut workers = two_workers(0, false);
        assert_eq!(workers.starting(), 2);
        workers.connected(&["processes-0".to_string(), "processes-1".to_string()]);
        assert_eq!(workers.starting(), 0);
        // processes-1 was retired: no longer connected, not yet exited.
        workers.connected(&["processes-0".to_string()]);
        assert_eq!(workers.starting(), 0);
        workers.left(&["processes-1".to_string()]);
        assert_eq!(lock(&workers.children).len(), 1);
        workers.stop();
    }

    #[test]
    fn the_memory_limit_is_the_one_given_or_the_machine_divided_by_the_workers() {
        let given = ProcessesLauncher {
            workers: 2,
            memory_limit: Some(200_000_000),
        };
        assert_eq!(given.worker_memory_limit(), Some(200_000_000));
        let divided = ProcessesLauncher {
            workers: 4,
            memory_limit: None,
        };
        assert_eq!(
            divided.worker_memory_limit(),
            machine_memory().map(|total| total / 4)
        );
    }

    /// Two running worker processes (`sleep`) of a launcher whose memory limit
    /// is `limit` bytes, shared by the workers or not.
    fn two_workers(limit: u64, shares_the_machine: bool) -> LocalWorkers {
        let launch = WorkerLaunch {
            scheduler: "127.0.0.1:9".into(),
            secret_hex: String::new(),
            executable: "sleep".into(),
            threads: 1,
            env: Vec::new(),
        };
        let workers = LocalWorkers::new(Spawner {
            launch,
            next: Arc::new(AtomicUsize::new(0)),
            memory_env: Arc::default(),
            memory_limit: Arc::new(AtomicU64::new(limit)),
            shares_the_machine,
            spawned: Arc::default(),
        });
        for name in ["processes-0", "processes-1"] {
            let child = Command::new("sleep")
                .arg("60")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            lock(&workers.children).push(LocalWorker {
                name: name.to_string(),
                child,
            });
        }
        workers
    }

    #[tokio::test]
    async fn without_mem_the_limit_follows_the_number_of_workers() {
        let Some(machine) = machine_memory() else {
            return;
        };
        let mut shared = two_workers(machine / 2, true);
        assert_eq!(shared.share_memory(1), Some(machine / 3));
        let expected = (MEMORY_LIMIT_VARIABLE, (machine / 3).to_string());
        assert_eq!(shared.spawner.memory_limit_env(), Some(expected));
        shared.left(&["processes-1".to_string()]);
        assert_eq!(shared.share_memory(0), Some(machine));
        shared.stop();

        let mut given = two_workers(200_000_000, false);
        assert_eq!(given.share_memory(1), None);
        let expected = (MEMORY_LIMIT_VARIABLE, "200000000".to_string());
        assert_eq!(given.spawner.memory_limit_env(), Some(expected));
        given.stop();
    }

    #[tokio::test]
    async fn handing_the_secret_to_a_worker_that_already_exited_is_not_an_error() {
        let mut child = Command::new("true")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // (`wait` would close its standard input first.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        hand_over_secret(&mut child, &Secret::generate().to_hex()).unwrap();
    }

    #[tokio::test]
    async fn a_worker_reads_the_secret_as_one_line_on_its_standard_input() {
        let secret = Secret::generate().to_hex();
        let mut child = Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        hand_over_secret(&mut child, &secret).unwrap();
        let output = child.wait_with_output().await.unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            format!("{secret}\n")
        );
    }
}
