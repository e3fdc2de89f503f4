//! The `ssh:` launcher: workers on other machines, started through the system
//! `ssh` binary (so `~/.ssh/config`, agents and ProxyJump work), one session per
//! host running all of that host's workers, every host at once.
//!
//! The secret goes to each session's standard input, which then stays open: when
//! the client stops the launch (or dies), the session's input ends and the remote
//! script stops its workers (see [`ssh_command`](super::ssh_command)). A host that
//! cannot be reached fails the launch within the connect timeout with ssh's own
//! message, or, with `partial`, is reported as lost while the others go on.

use super::bounded_lines::next_bounded_line;
use super::ssh_command::{
    ship_command, ssh_options, start_workers_command, RemoteExecutable, MISSING_EXECUTABLE_STATUS,
    READY_MARKER,
};
use super::{BindScope, LaunchStatus, LaunchedWorkers, Launcher, WorkerLaunch, WORKER_VARIABLE};
use crate::auth::{this_build, SECRET_STDIN_VARIABLE};
use crate::worker::{
    DEATH_TIMEOUT_VARIABLE, MEMORY_LIMIT_VARIABLE, MEMORY_SHARE_VARIABLE, THREADS_VARIABLE,
};
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::Command;

/// The environment variable giving the default connect timeout in seconds (a
/// plan's `connect-timeout=` wins over it).
pub const CONNECT_TIMEOUT_VARIABLE: &str = "WHEREVER_SSH_CONNECT_TIMEOUT";

/// How long a host may take to start its workers when nothing else says.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that makes a worker exit when its standard input ends
/// (its ssh session or client went away): the worker runtime's own name for it.
pub use crate::worker::EXIT_ON_STDIN_EOF_VARIABLE;

/// How long remote workers keep trying to reach the scheduler after losing it (a
/// host cut off for less than this rejoins).
pub const REMOTE_DEATH_TIMEOUT_SECONDS: u64 = 60;

/// How long stopping waits for a session to end by itself (its workers stopped)
/// before it kills the ssh client.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How many of ssh's last stderr lines a failure message quotes.
const STDERR_TAIL: usize = 6;

/// One host of an `ssh:` plan and how many workers to start there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHostSpec {
    /// The host as `ssh` understands it (`name`, `user@name`, a `~/.ssh/config` alias).
    pub host: String,
    /// Workers to start there.
    pub workers: usize,
}

/// `ssh:host1*4,host2*4[;ship][;partial][;connect-timeout=S]`: workers over SSH.
#[derive(Debug, Clone)]
pub struct SshLauncher {
    /// The hosts, in the plan's order.
    pub hosts: Vec<SshHostSpec>,
    /// Copy the executable to each host's cache (once per build) instead of
    /// running it at the same path there.
    pub ship: bool,
    /// A host that cannot be reached is reported as lost and the others go on.
    pub partial: bool,
    /// How long a host may take to start its workers before it counts as unreachable.
    pub connect_timeout: Duration,
    /// Each worker's memory limit in bytes (`;mem=SIZE`); `None`: each worker takes
    /// its host's memory divided by the workers started on that host.
    pub memory_limit: Option<u64>,
}

impl SshLauncher {
    /// A launcher for `hosts` with the plan's options; `connect_timeout` `None`
    /// takes [`CONNECT_TIMEOUT_VARIABLE`], else [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(
        hosts: Vec<SshHostSpec>,
        ship: bool,
        partial: bool,
        connect_timeout: Option<Duration>,
    ) -> Result<Self, String> {
        let connect_timeout = match connect_timeout {
            Some(timeout) => timeout,
            None => default_connect_timeout()?,
        };
        Ok(SshLauncher {
            hosts,
            ship,
            partial,
            connect_timeout,
            memory_limit: None,
        })
    }

    /// The same launcher with each worker's memory limit (`;mem=SIZE`), or, with
    /// `None`, each host's memory shared by the workers started there.
    pub fn with_memory_limit(mut self, memory_limit: Option<u64>) -> Self {
        self.memory_limit = memory_limit;
        self
    }

    /// The memory setting of the workers on `host`: the plan's limit, else how
    /// many workers share that host (all the plan's entries naming it).
    fn memory_env(&self, host: &str) -> (String, String) {
        match self.memory_limit {
            Some(limit) => (MEMORY_LIMIT_VARIABLE.to_string(), limit.to_string()),
            None => {
                let sharing: usize = self
                    .hosts
                    .iter()
                    .filter(|spec| spec.host == host)
                    .map(|spec| spec.workers)
                    .sum();
                (
                    MEMORY_SHARE_VARIABLE.to_string(),
                    sharing.max(1).to_string(),
                )
            }
        }
    }
}

/// [`CONNECT_TIMEOUT_VARIABLE`] if set (an error for text that is not a positive
/// number of seconds), else [`DEFAULT_CONNECT_TIMEOUT`].
pub fn default_connect_timeout() -> Result<Duration, String> {
    match std::env::var(CONNECT_TIMEOUT_VARIABLE) {
        Err(_) => Ok(DEFAULT_CONNECT_TIMEOUT),
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|seconds| (1..=86_400).contains(seconds))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!(
                    "{CONNECT_TIMEOUT_VARIABLE}=`{text}`: expected a whole number of seconds \
                     from 1 to 86400"
                )
            }),
    }
}

impl Launcher for SshLauncher {
    fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{}*{}", h.host, h.workers))
            .collect();
        format!("ssh:{}", hosts.join(","))
    }

    fn bind_scope(&self) -> BindScope {
        BindScope::Routable
    }

    fn workers(&self) -> usize {
        self.hosts.iter().map(|h| h.workers).sum()
    }

    fn peer_hint(&self) -> Option<String> {
        let host = &self.hosts.first()?.host;
        let name = host
            .rsplit_once('@')
            .map_or(host.as_str(), |(_, name)| name);
        Some(
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
    }

    fn launch(
        &self,
        launch: &WorkerLaunch,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        let executable = launch
            .executable
            .to_str()
            .ok_or_else(|| format!("the executable path {:?} is not UTF-8", launch.executable))?
            .to_string();
        let remote = if self.ship {
            let name = launch
                .executable
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("wherever-program")
                .to_string();
            RemoteExecutable::Shipped {
                build: format!("{:016x}", this_build().hash),
                name,
            }
        } else {
            RemoteExecutable::SamePath(executable.clone())
        };
        let env = worker_environment(launch);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel();
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for spec in &self.hosts {
            let mut env = env.clone();
            // The launch's own settings win.
            let memory = self.memory_env(&spec.host);
            if !env
                .iter()
                .any(|(k, _)| k == MEMORY_LIMIT_VARIABLE || k == MEMORY_SHARE_VARIABLE)
            {
                env.push(memory);
            }
            let command = start_workers_command(&remote, spec.workers, &env)?;
            let state = Arc::new(HostState::default());
            let session = Session {
                host: spec.host.clone(),
                command,
                secret_hex: launch.secret_hex.clone(),
                ship: self.ship.then(|| (remote.clone(), executable.clone())),
                connect_timeout: self.connect_timeout,
                state: state.clone(),
            };
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            runtime.spawn(async move {
                session.run(stop).await;
                let _ = done.send(());
            });
            hosts.push((spec.clone(), state));
        }
        Ok(Box::new(SshWorkers {
            hosts,
            partial: self.partial,
            stop: stop_tx,
            done: done_rx,
            running: self.hosts.len(),
            reported: vec![false; self.hosts.len()],
        }))
    }
}

/// The settings each remote worker gets on its `env` command line.
fn worker_environment(launch: &WorkerLaunch) -> Vec<(String, String)> {
    let mut env = vec![
        (
            WORKER_VARIABLE.to_string(),
            format!("tcp://{}", launch.scheduler),
        ),
        (SECRET_STDIN_VARIABLE.to_string(), "1".to_string()),
        (EXIT_ON_STDIN_EOF_VARIABLE.to_string(), "1".to_string()),
        (THREADS_VARIABLE.to_string(), launch.threads.to_string()),
        (
            DEATH_TIMEOUT_VARIABLE.to_string(),
            REMOTE_DEATH_TIMEOUT_SECONDS.to_string(),
        ),
    ];
    env.extend(launch.env.iter().cloned());
    env
}

/// How one host's session stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Phase {
    /// Connecting, shipping or starting the workers.
    #[default]
    Starting,
    /// The remote script started the workers.
    Started,
    /// The host could not start its workers; the message names it and the cause.
    Failed(String),
    /// The session ended after the workers started (stopped, or the host went away).
    Ended,
}

/// What a session task shares with [`SshWorkers::poll`].
#[derive(Default)]
struct HostState {
    phase: Mutex<Phase>,
}

impl HostState {
    fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }
}

/// The sessions of one launch, as the cluster sees them.
struct SshWorkers {
    hosts: Vec<(SshHostSpec, Arc<HostState>)>,
    partial: bool,
    stop: tokio::sync::watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    /// Session tasks that have not yet said they are done.
    running: usize,
    /// Which lost hosts (of a `partial` plan) were reported on stderr.
    reported: Vec<bool>,
}

impl LaunchedWorkers for SshWorkers {
    fn poll(&mut self) -> LaunchStatus {
        let mut lost = 0;
        let mut reasons = Vec::new();
        for (index, (spec, state)) in self.hosts.iter().enumerate() {
            if let Phase::Failed(reason) = state.phase() {
                if !self.partial {
                    return LaunchStatus::Failed(reason);
                }
                if !self.reported[index] {
                    self.reported[index] = true;
                    eprintln!("wherever: {reason}; going on without its workers (partial)");
                }
                lost += spec.workers;
                reasons.push(reason);
            }
        }
        if lost == 0 {
            LaunchStatus::Running
        } else {
            LaunchStatus::Lost {
                workers: lost,
                reason: reasons.join("; "),
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.stop.send(true);
        // Each session ends its workers (or is killed) within STOP_WAIT; the extra
        // time is a guard against a runtime that no longer runs the tasks.
        let deadline = Instant::now() + STOP_WAIT * 2;
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(()) => self.running -= 1,
                Err(_) => break,
            }
        }
    }
}

impl Drop for SshWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One host's ssh session: ships the executable if asked, starts the workers,
/// forwards the session's stderr (prefixed with the host) and ends it when told.
struct Session {
    host: String,
    command: String,
    secret_hex: String,
    /// With `ship`: where the executable goes and where it is here.
    ship: Option<(RemoteExecutable, String)>,
    connect_timeout: Duration,
    state: Arc<HostState>,
}

impl Session {
    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Some((remote, local)) = &self.ship {
            let shipped = tokio::select! {
                outcome = self.ship(remote, local) => outcome,
                _ = until_stopped(&mut stop) => Err("stopped".to_string()),
            };
            if let Err(reason) = shipped {
                self.state.set(Phase::Failed(format!(
                    "cannot copy the executable to ssh host `{}`: {reason}",
                    self.host
                )));
                return;
            }
        }
        let phase = match self.start_workers(&mut stop).await {
            Ok(()) => Phase::Ended,
            Err(reason) => Phase::Failed(format!(
                "cannot start workers on ssh host `{}`: {reason}",
                self.host
            )),
        };
        self.state.set(phase);
    }

    fn ssh(&self, remote_command: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(ssh_options(self.connect_timeout * 9 / 10))
            .arg("--")
            .arg(&self.host)
            .arg(remote_command)
            .kill_on_drop(true);
        command
    }

    /// Copies the executable into the host's cache unless that build is there.
    async fn ship(&self, remote: &RemoteExecutable, local: &str) -> Result<(), String> {
        let RemoteExecutable::Shipped { build, name } = remote else {
            return Ok(());
        };
        let file = std::fs::File::open(local).map_err(|e| format!("cannot read {local}: {e}"))?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        // Connecting, then the copy at 1 MB/s or better, then a minute for slack.
        let allowed =
            self.connect_timeout + Duration::from_secs(size / 1_000_000) + Duration::from_secs(60);
        let copy = self
            .ssh(&ship_command(build, name, size)?)
            .stdin(Stdio::from(file))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        let output = tokio::time::timeout(allowed, copy)
            .await
            .map_err(|_| format!("the copy took longer than {} s", allowed.as_secs()))?
            .map_err(|e| format!("cannot run ssh: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "ssh {}{}",
            output.status,
            said(stderr.lines().map(str::to_string))
        ))
    }

    /// Runs the session until it ends or `stop` says so: `Ok` once the workers had
    /// started, else why they could not.
    async fn start_workers(
        &self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut child = self
            .ssh(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run ssh: {e}"))?;
        let mut stdin = child.stdin.take();
        if let Some(input) = stdin.as_mut() {
            // 65 bytes into a fresh pipe: a failure means ssh already exited, which
            // waiting on it below reports.
            let _ = input
                .write_all(format!("{}\n", self.secret_hex).as_bytes())
                .await;
        }
        let mut lines = child.stderr.take().map(BufReader::new);
        let mut tail = VecDeque::new();
        let mut started = false;
        let stopping = stop.clone();
        let deadline = tokio::time::sleep(self.connect_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                line = next_line(&mut lines) => match line {
                    Some(line) if line == READY_MARKER => {
                        started = true;
                        self.state.set(Phase::Started);
                    }
                    Some(line) => self.note(&mut tail, line),
                    None => lines = None,
                },
                status = child.wait() => {
                    // ssh's last words may still be in the pipe.
                    let drain = async {
                        while let Some(line) = next_line(&mut lines).await {
                            self.note(&mut tail, line);
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    let status = status.map_err(|e| e.to_string())?;
                    let stopped = stopping.has_changed().is_err() || *stopping.borrow();
                    if started {
                        if !stopped {
                            tracing::warn!(
                                "the ssh session to `{}` ended ({status}); its workers are gone{}",
                                self.host,
                                said(tail.iter().cloned())
                            );
                        }
                        return Ok(());
                    }
                    let what = if status.code() == Some(MISSING_EXECUTABLE_STATUS) {
                        "the executable is not there".to_string()
                    } else {
                        format!("ssh exited ({status})")
                    };
                    return Err(format!("{what}{}", said(tail.iter().cloned())));
                }
                _ = &mut deadline, if !started => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(format!(
                        "no answer within {} s (the plan's connect-timeout=, or {}){}",
                        self.connect_timeout.as_secs(),
                        CONNECT_TIMEOUT_VARIABLE,
                        said(tail.iter().cloned())
                    ));
                }
                _ = until_stopped(stop) => {
                    // The end of its input makes the remote script stop the workers
                    // and return, which ends the session.
                    drop(stdin.take());
                    let drain = async {
                        while let Some(line) = next_line(&mut lines).await {
                            if line != READY_MARKER {
                                self.note(&mut tail, line);
                            }
                        }
                        child.wait().await
                    };
                    if tokio::time::timeout(STOP_WAIT, drain).await.is_err() {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                    return if started { Ok(()) } else { Err("stopped".to_string()) };
                }
            }
        }
    }

    /// Forwards one stderr line of the session and keeps it for failure messages.
    fn note(&self, tail: &mut VecDeque<String>, line: String) {
        eprintln!("[{}] {line}", self.host);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Returns once the launch is being stopped (or its stopper is gone).
async fn until_stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The next line of the session's stderr, or `None` at its end; never ready when
/// `lines` is `None` (already ended).
async fn next_line(lines: &mut Option<BufReader<tokio::process::ChildStderr>>) -> Option<String> {
    match lines.as_mut() {
        Some(reader) => next_bounded_line(reader).await,
        None => std::future::pending().await,
    }
}

/// `; ssh said: LINE | LINE` for the non-empty lines, or nothing.
fn said(lines: impl Iterator<Item = String>) -> String {
    let lines: Vec<String> = lines
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; ssh said: {}", lines.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_is_advertised_toward_the_first_host_without_its_user() {
        let launcher = SshLauncher::new(
            vec![
                SshHostSpec {
                    host: "root@10.0.0.7".into(),
                    workers: 2,
                },
                SshHostSpec {
                    host: "b".into(),
                    workers: 3,
                },
            ],
            false,
            false,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(launcher.peer_hint().as_deref(), Some("10.0.0.7"));
        assert_eq!(launcher.workers(), 5);
        assert_eq!(launcher.bind_scope(), BindScope::Routable);
        assert_eq!(launcher.describe(), "ssh:root@10.0.0.7*2,b*3");
    }

    #[test]
    fn ssh_workers_get_the_plans_limit_or_share_their_hosts_memory() {
        let spec = |host: &str, workers| SshHostSpec {
            host: host.into(),
            workers,
        };
        let launcher = SshLauncher::new(
            vec![spec("a", 2), spec("b", 1), spec("a", 3)],
            false,
            false,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        let share = |n: &str| (MEMORY_SHARE_VARIABLE.to_string(), n.to_string());
        // Host `a` appears twice: its five workers share it.
        assert_eq!(launcher.memory_env("a"), share("5"));
        assert_eq!(launcher.memory_env("b"), share("1"));
        let limited = launcher.with_memory_limit(Some(2_000_000_000));
        assert_eq!(
            limited.memory_env("b"),
            (MEMORY_LIMIT_VARIABLE.to_string(), "2000000000".to_string())
        );
    }

    #[test]
    fn failure_messages_quote_what_ssh_said() {
        assert_eq!(said(Vec::<String>::new().into_iter()), "");
        assert_eq!(
            said(["ssh: no route", " ", "x"].map(String::from).into_iter()),
            "; ssh said: ssh: no route | x"
        );
    }

    #[test]
    fn a_malformed_connect_timeout_variable_is_an_error_naming_it() {
        // Only this test touches the variable.
        std::env::set_var(CONNECT_TIMEOUT_VARIABLE, "soon");
        let error = default_connect_timeout().unwrap_err();
        std::env::remove_var(CONNECT_TIMEOUT_VARIABLE);
        assert!(
            error.contains(CONNECT_TIMEOUT_VARIABLE) && error.contains("`soon`"),
            "{error}"
        );
        assert_eq!(default_connect_timeout().unwrap(), DEFAULT_CONNECT_TIMEOUT);
    }
}
