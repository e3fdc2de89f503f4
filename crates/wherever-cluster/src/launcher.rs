//! The local launcher: `processes:N` runs a scheduler on 127.0.0.1 inside the
//! client's process and N worker processes of the same executable, restarting a
//! worker that dies (as Dask's nanny does) and killing them all when dropped.

use crate::auth::{this_build, Secret, SECRET_STDIN_VARIABLE};
use crate::client::{ClusterClient, ClusterRuntime};
use crate::server::{serve, ServerOptions};
use crate::worker::{DEATH_TIMEOUT_VARIABLE, THREADS_VARIABLE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// The environment variable that makes a process a worker (`tcp://HOST:PORT`).
pub const WORKER_VARIABLE: &str = "WHEREVER_WORKER";

/// How long `start` waits for all workers to connect before returning anyway.
pub const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How many times, in all, dead workers of one local cluster are replaced.
pub const RESTART_BUDGET: usize = 100;

/// A scheduler and worker processes on this machine, alive as long as this value.
pub struct LocalCluster {
    stopping: Arc<AtomicBool>,
    address: String,
    _runtime: Arc<ClusterRuntime>,
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
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let runtime = Arc::new(
            ClusterRuntime::start().map_err(|e| format!("cannot start the I/O thread: {e}"))?,
        );
        let secret = Secret::generate();
        let listener = runtime
            .handle()
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| format!("cannot open a port on 127.0.0.1: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let options = ServerOptions {
            expected_build: Some(this_build().clone()),
            ..ServerOptions::default()
        };
        runtime
            .handle()
            .spawn(serve(listener, secret.clone(), options));

        let executable =
            std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let spawn_worker = {
            let (address, secret) = (address.clone(), secret.to_hex());
            move || -> std::io::Result<Child> {
                let mut child = Command::new(&executable)
                    .env(WORKER_VARIABLE, format!("tcp://{address}"))
                    .env(SECRET_STDIN_VARIABLE, "1")
                    .env(THREADS_VARIABLE, threads.to_string())
                    // Its scheduler lives in its parent: gone means gone for good.
                    .env(DEATH_TIMEOUT_VARIABLE, "0")
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdin(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                hand_over_secret(&mut child, &secret)?;
                Ok(child)
            }
        };
        let mut children = Vec::with_capacity(workers);
        for _ in 0..workers {
            let child = runtime.handle().block_on(async { spawn_worker() });
            children.push(child.map_err(|e| format!("cannot start a worker process: {e}"))?);
        }
        let client = ClusterClient::connect(runtime.clone(), &address, secret)?;
        // Like Dask's `LocalCluster()`, return once the workers are up (start-up is not
        // part of the first tasks' time); a slow start goes on in the background. A
        // worker that exits first is an error at once (the children are then killed).
        await_workers(&runtime, &client, &mut children, workers)?;
        runtime
            .handle()
            .spawn(supervise(children, spawn_worker, stopping.clone()));
        Ok((
            LocalCluster {
                stopping,
                address,
                _runtime: runtime,
            },
            client,
        ))
    }

    /// The scheduler's address (`127.0.0.1:PORT`).
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
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

/// Waits up to [`STARTUP_WAIT`] for `expected` workers to connect through `client`.
/// A worker process that exits before then is an error at once, with its exit
/// status and the likely cause: a program whose `main` lacks `#[wherever::main]`
/// runs its body in every worker instead of serving tasks. The other workers are
/// then killed and reaped before the error returns.
fn await_workers(
    runtime: &ClusterRuntime,
    client: &ClusterClient,
    children: &mut [Child],
    expected: usize,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + STARTUP_WAIT;
    loop {
        let connected = client.workers().0 as usize;
        if connected >= expected || std::time::Instant::now() >= deadline {
            return Ok(());
        }
        let exited = children
            .iter_mut()
            .find_map(|child| child.try_wait().ok().flatten());
        if let Some(status) = exited {
            runtime.handle().block_on(async {
                for child in children.iter_mut() {
                    let _ = child.kill().await;
                }
            });
            return Err(format!(
                "a worker process exited ({status}) before connecting to the scheduler \
                     ({connected} of {expected} workers had connected). The likely cause: the \
                     program's fn main lacks #[wherever::main] (or wherever::init() as its \
                     first line), so its worker processes ran main's body instead of serving \
                     tasks; the workers' output above may say more"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Waits on the workers; replaces one that exits while the cluster is running.
/// When the runtime stops, the children are dropped, which kills them.
async fn supervise(
    mut children: Vec<Child>,
    spawn_worker: impl Fn() -> std::io::Result<Child>,
    stopping: Arc<AtomicBool>,
) {
    let mut restarts = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for child in children.iter_mut() {
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            if stopping.load(Ordering::SeqCst) || restarts >= RESTART_BUDGET {
                continue;
            }
            tracing::warn!(
                "worker process {:?} exited ({status}); starting another",
                child.id()
            );
            restarts += 1;
            match spawn_worker() {
                Ok(new_child) => *child = new_child,
                Err(error) => tracing::warn!("cannot restart a worker: {error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
