//! Helpers for the end-to-end tests: finding the example binaries, running a
//! `wherever scheduler`, and looking at processes through /proc.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `wherever` binary of this package.
pub fn wherever_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wherever"))
}

/// An example of the `wherever` crate, built by this test process before its first
/// use (a no-op when it is fresh; cargo's lock serialises concurrent builds), with
/// the profile and target directory of this test binary, so a stale example is
/// never run.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let profile_dir = wherever_binary()
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if built.insert(name.to_string()) {
        let profile = profile_dir.file_name().expect("a profile directory");
        let profile = if profile == "debug" {
            "dev".into()
        } else {
            profile.to_string_lossy()
        };
        let target_dir = profile_dir.parent().expect("the target directory");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "wherever", "--example", name])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building example {name}");
    }
    path
}

/// How long the helpers below wait for a condition before failing the test: a
/// hang guard only, far above how long anything takes; no test asserts on time.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Polls `condition` until it holds; fails the test naming `what` if it still does
/// not after [`HANG_GUARD`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit (failing the test after [`HANG_GUARD`]).
pub fn wait_for_exit(child: &mut Child, what: &str) {
    wait_until(what, || child.try_wait().unwrap().is_some());
}

/// The CPU time `pid` has used so far, in clock ticks (user + system).
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name: state, ppid, ..., utime (12th), stime (13th).
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    fields.iter().sum()
}

/// Waits until `pid` has done `ticks` clock ticks of CPU work (a worker that did is
/// running tasks).
pub fn wait_for_cpu_work(pid: u32, ticks: u64) {
    wait_until(&format!("process {pid} used {ticks} ticks of CPU"), || {
        cpu_ticks(pid) >= ticks
    });
}

/// Runs `binary` with `args` (and `env`) to the end; panics unless it succeeds.
pub fn run_ok(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("starts");
    assert!(
        output.status.success(),
        "{binary:?} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "wherever-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `wherever scheduler` process on a free port; its stderr is collected.
pub struct Scheduler {
    pub child: Child,
    pub address: String,
    pub secret_file: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Scheduler {
    pub fn start(dir: &Path) -> Self {
        Scheduler::start_with(dir, &[])
    }

    /// Starts a scheduler with `extra` flags (e.g. `--host`, `--heartbeat-timeout`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Self {
        Scheduler::start_on(dir, 0, extra)
    }

    /// Starts a scheduler on `port` (0: any free port) with `extra` flags.
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Self {
        let secret_file = dir.join("secret");
        let mut child = Command::new(wherever_binary())
            .args(["scheduler", "--port", &port.to_string(), "--secret-file"])
            .arg(&secret_file)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("scheduler starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on tcp://").nth(1) {
                    let _ = address_tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = address_rx
            .recv_timeout(HANG_GUARD)
            .expect("scheduler prints its address");
        Scheduler {
            child,
            address,
            secret_file,
            log,
        }
    }

    /// Everything the scheduler wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        wait_until(&format!("the scheduler log says `{text}`"), || {
            self.log().contains(text)
        });
    }

    /// The dashboard's address (`http://127.0.0.1:PORT/`), once the scheduler
    /// printed it (it serves one unless started with `--dashboard off`).
    pub fn dashboard_link(&self) -> String {
        self.wait_for_log("dashboard at http://");
        let log = self.log();
        let line = log.lines().find(|l| l.contains("dashboard at ")).unwrap();
        line.split("dashboard at ")
            .nth(1)
            .unwrap()
            .trim()
            .to_string()
    }

    /// How many tasks the scheduler has been given so far (queued, running,
    /// done or failed), as its dashboard counts them.
    pub fn tasks_received(&self, link: &str) -> u64 {
        let totals = &get_json(link, "api/progress")["total"];
        ["queued", "running", "done", "failed"]
            .iter()
            .map(|state| totals[state].as_u64().unwrap_or(0))
            .sum()
    }
}

/// `GET link/path` as JSON (a dashboard endpoint).
pub fn get_json(link: &str, path: &str) -> serde_json::Value {
    ureq::get(&format!("{link}{path}"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process ids whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses): state, ppid, ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) && fields[0] != "Z" {
            children.push(pid);
        }
    }
    children
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Waits until `count` children of `parent` exist; returns them.
pub fn wait_for_children(parent: u32, count: usize) -> Vec<u32> {
    let mut children = Vec::new();
    wait_until(&format!("process {parent} has {count} children"), || {
        children = children_of(parent);
        children.len() >= count
    });
    children
}

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: u32) {
    signal(pid, "-9");
}

/// A `calc_mean` worker started by hand for `scheduler`.
pub fn start_worker(scheduler: &Scheduler) -> Child {
    Command::new(example("calc_mean"))
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .spawn()
        .unwrap()
}

/// Runs a real study against `scheduler` with one hand-started worker; panics
/// unless it prints its two result lines.
pub fn a_real_client_still_works(scheduler: &Scheduler) {
    let secret = scheduler.secret_file.display().to_string();
    let address = format!("tcp://{}", scheduler.address);
    let mut worker = start_worker(scheduler);
    let output = run_ok(
        &example("calc_mean"),
        &[
            "--plan", &address, "--seed", "1", "--tasks", "2", "--n", "1000",
        ],
        &[("WHEREVER_SECRET_FILE", &secret)],
    );
    // A header and one line per task.
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().lines().count(),
        1 + 2
    );
    let _ = worker.kill();
    let _ = worker.wait();
}

/// Writes `text` to `path` readable by its owner only, as a secret file must be.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Resets the peak resident memory of process `pid` to its current resident
/// memory (writing 5 to `/proc/PID/clear_refs`), so start-up peaks do not count.
pub fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// The peak resident memory of process `pid` so far in KiB (`VmHWM` in /proc),
/// which catches a burst that was freed again before anyone looked.
pub fn peak_resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Sends `signal` (e.g. `-STOP`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// A raw connection to `scheduler` (reads time out after [`HANG_GUARD`]).
pub fn connect(scheduler: &Scheduler) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(&scheduler.address).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Reads one frame (the first: the challenge the scheduler sends).
pub fn read_challenge(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut length = [0u8; 4];
    std::io::Read::read_exact(stream, &mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    std::io::Read::read_exact(stream, &mut body).unwrap();
    body
}

/// A hello from a test peer on "host" `host` (`protocol` and `proof` as given).
pub fn test_hello(
    protocol: u32,
    proof: [u8; 32],
    host: String,
) -> wherever_cluster::protocol::Message {
    use wherever_cluster::protocol::{BuildInfo, Hello, Message, Role};
    Message::Hello(Box::new(Hello {
        protocol,
        proof,
        role: Role::Client { inner_plan: None },
        build: BuildInfo {
            hash: 1,
            executable: "elsewhere".into(),
            registry: 0,
        },
        host,
        pid: 1,
    }))
}

/// Writes `messages` as one frame.
pub fn send_frame(
    stream: &mut std::net::TcpStream,
    messages: &[wherever_cluster::protocol::Message],
) {
    use std::io::Write;
    let body = wherever_cluster::protocol::encode_batch(messages).unwrap();
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
}

/// The TCP ports process `pid` listens on (from /proc: its socket inodes, matched
/// in its network namespace's table of listening sockets).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            let ours = fields
                .get(9)
                .is_some_and(|inode| inodes.iter().any(|i| i == inode));
            let port = fields.get(1)?.rsplit_once(':')?.1;
            (listening && ours).then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

/// Whether `ssh host true` works without a password, else why not (printed as
/// the reason a test is skipped).
pub fn reachable(host: &str) -> Result<(), String> {
    let output = Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            host,
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ssh {host} true` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `Some(())` when every host answers; else prints why the test is skipped.
pub fn hosts_up(test: &str, hosts: &[&str]) -> Option<()> {
    for host in hosts {
        if let Err(why) = reachable(host) {
            eprintln!(
                "SKIPPED {test}: {why} (start the hosts with shared/ci/start-sshd.sh \
                 or CI_NETNS_SSHD=1 shared/ci/netns-hosts.sh up)"
            );
            return None;
        }
    }
    Some(())
}
