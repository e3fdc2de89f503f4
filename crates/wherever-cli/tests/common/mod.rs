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
        let secret_file = dir.join("secret");
        let mut child = Command::new(wherever_binary())
            .args(["scheduler", "--port", "0", "--secret-file"])
            .arg(&secret_file)
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
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}
