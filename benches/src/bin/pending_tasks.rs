//! Bookkeeping per pending task: runs `trivial_tasks --mode submit` (N futures
//! submitted, then gathered, so all N are pending at once) for several N, with one
//! or more builds of it side by side (e.g. main's and this branch's), alternating
//! the builds within each size. For each run it prints the client process's peak
//! resident memory (`VmHWM`; on `processes:N` the scheduler runs in that process
//! too, on its runtime thread) and the largest worker's, the bytes per task (the
//! client's peak over a run of the same build with no task, divided by N), the
//! µs per task (the example's own timing, start-up excluded) and the CPU time of
//! the client process (user + system, from `/proc/PID/stat`, read at its last
//! sample).
//!
//! ```text
//! cargo build --release -p wherever --example trivial_tasks
//! cargo build --release -p wherever-benches --bin pending_tasks
//! target/release/pending_tasks --plan processes:2 --sizes 20000,200000,2000000 \
//!     before=/tmp/trivial_tasks.main after=target/release/examples/trivial_tasks
//! ```

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the client's and workers' `/proc` entries are read.
const SAMPLE: Duration = Duration::from_millis(20);
/// A hang guard for one run.
const LONG: Duration = Duration::from_secs(1800);

/// What one run measured.
struct Run {
    /// The example's own wall time for the tasks (s).
    seconds: f64,
    /// The client's (and, on `processes:N`, the scheduler's) peak RSS in bytes.
    client_hwm: u64,
    /// The largest worker's peak RSS in bytes.
    worker_hwm: u64,
    /// The client's CPU time (user + system) in seconds at its last sample.
    client_cpu: f64,
}

/// A `/proc/PID/status` field in bytes (`kB` values).
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The CPU time (user + system) of `pid` in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The children of `pid` (over all its threads).
fn children(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pids;
    };
    for thread in threads.flatten() {
        if let Ok(list) = std::fs::read_to_string(thread.path().join("children")) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// If `pid` has ended: its wait status and its peak resident memory in bytes
/// (`ru_maxrss`: its own or its waited-for children's, whichever is larger).
fn reap(pid: u32) -> Result<Option<(i32, u64)>, String> {
    let mut status = 0;
    // SAFETY: `rusage` is plain data, zeroed is a valid value; `wait4` writes both
    // out-parameters, which live on this stack frame for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ended = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
    match ended {
        0 => Ok(None),
        -1 => Err(format!("wait4: {}", std::io::Error::last_os_error())),
        _ => Ok(Some((status, usage.ru_maxrss as u64 * 1024))),
    }
}

/// Runs `program` on `plan` with `tasks` tasks, sampling its memory until it exits.
fn run(program: &str, plan: &str, tasks: u64) -> Result<Run, String> {
    let mut child = Command::new(program)
        .args(["--plan", plan, "--mode", "submit", "--tasks"])
        .arg(tasks.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let pid = child.id();
    let started = Instant::now();
    let (mut client_hwm, mut client_cpu) = (0u64, 0f64);
    let mut workers: BTreeMap<u32, u64> = BTreeMap::new();
    let (status, max_rss) = loop {
        if let Some(ended) = reap(pid)? {
            break ended;
        }
        if started.elapsed() > LONG {
            let _ = child.kill();
            return Err(format!("{program} ran for more than {LONG:?}"));
        }
        client_hwm = client_hwm.max(status_bytes(pid, "VmHWM:").unwrap_or(0));
        client_cpu = cpu_seconds(pid).unwrap_or(client_cpu);
        for worker in children(pid) {
            if let Some(hwm) = status_bytes(worker, "VmHWM:") {
                let seen = workers.entry(worker).or_default();
                *seen = (*seen).max(hwm);
            }
        }
        std::thread::sleep(SAMPLE);
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    if status != 0 {
        return Err(format!(
            "{program} --tasks {tasks} failed: wait status {status}"
        ));
    }
    let seconds = out
        .split("\"seconds\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("no seconds in the output of {program}: {out:?}"))?;
    Ok(Run {
        seconds,
        client_hwm: client_hwm.max(max_rss),
        worker_hwm: workers.values().copied().max().unwrap_or(0),
        client_cpu,
    })
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() -> Result<(), String> {
    let mut plan = "processes:2".to_string();
    let mut sizes = vec![20_000u64, 200_000, 2_000_000];
    let mut builds: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plan" => plan = args.next().ok_or("--plan needs a value")?,
            "--sizes" => {
                let list = args.next().ok_or("--sizes needs a value")?;
                sizes = list
                    .split(',')
                    .map(|s| s.parse::<u64>().map_err(|e| format!("bad size {s:?}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            build => {
                let (label, path) = build
                    .split_once('=')
                    .ok_or_else(|| format!("expected LABEL=PATH, got {build:?}"))?;
                builds.push((label.to_string(), path.to_string()));
            }
        }
    }
    if builds.is_empty() {
        return Err("give at least one LABEL=PATH of a trivial_tasks build".into());
    }
    println!("plan {plan}; load at start {}", load());
    let mut base = BTreeMap::new();
    for (label, path) in &builds {
        let idle = run(path, &plan, 0)?;
        println!(
            "{label:>8} N=0: client peak {:.1} MB, worker peak {:.1} MB",
            idle.client_hwm as f64 / 1e6,
            idle.worker_hwm as f64 / 1e6
        );
        base.insert(label.clone(), idle.client_hwm);
    }
    println!(
        "{:>8} {:>9} {:>9} {:>12} {:>12} {:>10} {:>12} {:>6}",
        "build", "tasks", "µs/task", "client MB", "B/task", "cpu µs/t", "worker MB", "load"
    );
    for &tasks in &sizes {
        for (label, path) in &builds {
            let r = run(path, &plan, tasks)?;
            let per_task = r.client_hwm.saturating_sub(base[label]) as f64 / tasks as f64;
            println!(
                "{label:>8} {tasks:>9} {:>9.2} {:>12.1} {:>12.0} {:>10.2} {:>12.1} {:>6}",
                r.seconds * 1e6 / tasks as f64,
                r.client_hwm as f64 / 1e6,
                per_task,
                r.client_cpu * 1e6 / tasks as f64,
                r.worker_hwm as f64 / 1e6,
                load()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reap;
    use std::process::Command;

    /// The failure modes of the `wait4` call: a pid that is not our child is an
    /// error (not a wait on someone else's process, not a bogus figure); a running
    /// child is `None`; an ended one gives its status and a peak, once.
    #[test]
    // The child is waited for by `reap` itself (`wait4`), which is what is tested.
    #[allow(clippy::zombie_processes)]
    fn reap_tells_running_ended_and_foreign_processes_apart() {
        assert!(reap(1).is_err(), "pid 1 is no child of this test");
        assert!(reap(u32::MAX).is_err(), "a pid that cannot exist");
        let mut running = Command::new("sleep").arg("30").spawn().expect("sleep");
        assert_eq!(reap(running.id()).expect("our child"), None);
        running.kill().expect("kill");
        let (status, peak) = loop {
            // Kill is asynchronous: wait4 with WNOHANG may still see it running.
            if let Some(ended) = reap(running.id()).expect("our child") {
                break ended;
            }
            std::thread::yield_now();
        };
        assert_ne!(status, 0, "killed by a signal");
        assert!(peak > 0, "a peak resident size");
        assert!(reap(running.id()).is_err(), "reaped once, gone after");
    }
}
