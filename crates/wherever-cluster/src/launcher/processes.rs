//! The local launcher: `processes:N` runs N worker processes of the same
//! executable on this machine, restarting a worker that dies (as Dask's nanny
//! does) and killing them all when stopped. [`LocalCluster`] is this launcher
//! behind [`start_cluster`].

use super::{
    start_cluster, BindScope, ClusterOptions, LaunchStatus, LaunchedCluster, LaunchedWorkers,
    Launcher, WorkerLaunch, WORKER_VARIABLE,
};
use crate::auth::SECRET_STDIN_VARIABLE;
use crate::client::ClusterClient;
use crate::worker::{
    machine_memory, remove_spill_directories_of, DEATH_TIMEOUT_VARIABLE, MEMORY_EXIT_STATUS,
    MEMORY_LIMIT_VARIABLE, THREADS_VARIABLE,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// machine's memory divided by the workers.
    pub memory_limit: Option<u64>,
}

impl ProcessesLauncher {
    /// The memory limit each worker gets: the one given, else the machine's
    /// memory divided by the workers (`None` where that cannot be read).
    pub fn worker_memory_limit(&self) -> Option<u64> {
        self.memory_limit
            .or_else(|| machine_memory().map(|total| total / self.workers.max(1) as u64))
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
        let mut launch = launch.clone();
        // An explicit setting in the workers' environment wins.
        if !launch.env.iter().any(|(k, _)| k == MEMORY_LIMIT_VARIABLE) {
            if let Some(limit) = self.worker_memory_limit() {
                launch
                    .env
                    .push((MEMORY_LIMIT_VARIABLE.to_string(), limit.to_string()));
            }
        }
        let (name, value) = MALLOC_TRIM_VARIABLE;
        if std::env::var_os(name).is_none() && !launch.env.iter().any(|(k, _)| k == name) {
            launch.env.push((name.to_string(), value.to_string()));
        }
        let spawner = Spawner {
            launch,
            spawned: Arc::default(),
        };
        let mut children = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            match spawner.spawn() {
                Ok(child) => children.push(child),
                Err(error) => {
                    let mut started = LocalWorkers::new(children, spawner);
                    started.stop();
                    return Err(format!("cannot start a worker process: {error}"));
                }
            }
        }
        Ok(Box::new(LocalWorkers::new(children, spawner)))
    }
}

/// Starts one worker process.
#[derive(Clone)]
struct Spawner {
    launch: WorkerLaunch,
    /// The process ids of every worker started, for the clean-up at the end.
    spawned: Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Spawner {
    fn spawn(&self) -> std::io::Result<Child> {
        let launch = &self.launch;
        let mut child = Command::new(&launch.executable)
            .env(WORKER_VARIABLE, format!("tcp://{}", launch.scheduler))
            .env(SECRET_STDIN_VARIABLE, "1")
            .env(THREADS_VARIABLE, launch.threads.to_string())
            // Its scheduler lives in its parent: gone means gone for good.
            .env(DEATH_TIMEOUT_VARIABLE, "0")
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

/// The worker processes of a [`ProcessesLauncher`]: checked for early exits while
/// they start, then supervised (restarted) until stopped.
struct LocalWorkers {
    children: Option<Vec<Child>>,
    spawner: Spawner,
    stopping: Arc<AtomicBool>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl LocalWorkers {
    fn new(children: Vec<Child>, spawner: Spawner) -> Self {
        LocalWorkers {
            children: Some(children),
            spawner,
            stopping: Arc::new(AtomicBool::new(false)),
            supervisor: None,
            runtime: None,
        }
    }
}

impl LaunchedWorkers for LocalWorkers {
    /// A worker process that exits before all joined fails the launch, with its
    /// exit status and the likely cause: a program whose `main` lacks
    /// `#[wherever::main]` runs its body in every worker instead of serving tasks.
    fn poll(&mut self) -> LaunchStatus {
        let Some(children) = self.children.as_mut() else {
            return LaunchStatus::Running;
        };
        match children
            .iter_mut()
            .find_map(|child| child.try_wait().ok().flatten())
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
        if let Some(children) = self.children.take() {
            self.supervisor = Some(runtime.spawn(supervise(
                children,
                self.spawner.clone(),
                self.stopping.clone(),
            )));
            self.runtime = Some(runtime.clone());
        }
    }

    fn stopping(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Dropping the children kills them (`kill_on_drop`); the supervisor owns
        // them once started, and aborting it drops them.
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        if let Some(mut children) = self.children.take() {
            for child in children.iter_mut() {
                let _ = child.start_kill();
            }
        }
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

/// Waits on the workers; replaces one that exits while the cluster is running.
/// When the runtime stops, the children are dropped, which kills them.
async fn supervise(mut children: Vec<Child>, spawner: Spawner, stopping: Arc<AtomicBool>) {
    let mut restarts = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for child in children.iter_mut() {
            // (Known only until its exit has been seen.)
            let pid = child.id();
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            if let Some(pid) = pid {
                remove_spill_directories_of(pid);
            }
            if stopping.load(Ordering::SeqCst) || restarts >= RESTART_BUDGET {
                continue;
            }
            let why = if status.code() == Some(MEMORY_EXIT_STATUS) {
                " past its memory terminate threshold"
            } else {
                ""
            };
            tracing::warn!(
                "worker process {:?} exited ({status}){why}; starting another",
                child.id()
            );
            restarts += 1;
            match spawner.spawn() {
                Ok(new_child) => *child = new_child,
                Err(error) => tracing::warn!("cannot restart a worker: {error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

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
