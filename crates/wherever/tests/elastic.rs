//! Scaling a `processes:N` cluster up and down, and adapting it to its work, with
//! real worker processes. The test binary is its own worker executable (see
//! `harness = false` in Cargo.toml).

#[path = "common/harness.rs"]
mod harness;
#[path = "common/poll.rs"]
mod poll;

use std::path::{Path, PathBuf};
use std::time::Duration;
use wherever::prelude::*;
use wherever::AdaptOptions;
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::launcher::{WORKER_NAME_VARIABLE, WORKER_VARIABLE};
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::worker::DEADLINE_VARIABLE;
use wherever_cluster::{ClusterRuntime, Secret};

/// Generous: a hang guard, never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Records one execution of task `kind` number `i` in `dir` (a file each).
fn record(dir: &str, kind: &str, i: i64) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{dir}/{kind}-{i}-{}-{nanos}", std::process::id());
    std::fs::File::create_new(name).expect("a new execution record");
}

/// How many executions of task `kind` number `i` `dir` records.
fn executions(dir: &Path, kind: &str, i: i64) -> usize {
    let prefix = format!("{kind}-{i}-");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .count()
}

/// How many executions of `kind` tasks `dir` records, of any number.
fn executions_of(dir: &Path, kind: &str) -> usize {
    let prefix = format!("{kind}-");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .count()
}

/// Waits until `path` exists (the test creates it; a hang guard fails the task).
fn wait_for(path: &str) {
    poll::wait_for_path(Path::new(path), HANG_GUARD);
}

#[wherever::task]
fn leaf_once(dir: String, i: i64) -> i64 {
    record(&dir, "leaf", i);
    i * i
}

#[wherever::task]
fn pair_after_gate(dir: String, i: i64, x: i64, y: i64) -> i64 {
    record(&dir, "started", i);
    wait_for(&format!("{dir}/gate"));
    record(&dir, "pair", i);
    x + y
}

#[wherever::task]
fn total_once(dir: String, parts: Vec<i64>) -> i64 {
    record(&dir, "total", 0);
    parts.iter().sum()
}

#[wherever::task]
fn waits_for_gate(dir: String, i: i64) -> i64 {
    wait_for(&format!("{dir}/gate"));
    record(&dir, "burst", i);
    i
}

#[wherever::task]
fn slow_once(dir: String, i: i64) -> i64 {
    // Stands for work that takes a while (the test waits on results, not on this).
    std::thread::sleep(Duration::from_millis(1500));
    record(&dir, "slow", i);
    i * 3
}

/// A fresh directory for execution records.
fn records_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wherever-elastic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `condition` until it holds; panics with `what` after the hang guard.
fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    poll::wait_until(what, HANG_GUARD, condition);
}

/// The live (not zombie) child processes of this process.
fn live_children() -> Vec<u32> {
    let me = std::process::id();
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[1] == me.to_string() && fields[0] != "Z" {
            children.push(pid);
        }
    }
    children
}

fn start(plan: &str) -> Client {
    Plan::parse(plan).unwrap().start().unwrap()
}

fn scaling_up_from_one_to_three_gives_three_workers() {
    let client = start("processes:1");
    assert_eq!(client.connected_workers(), 1);
    client.scale(3).unwrap();
    assert_eq!(client.wait_for_workers(3, HANG_GUARD).unwrap(), 3);
    wait_until("3 worker processes", || live_children().len() == 3);
    // `map` and friends size their chunks by the slots now there, not the plan's.
    assert_eq!(client.workers(), 3);
    // Scaling to the count it has changes nothing.
    client.scale(3).unwrap();
    assert_eq!(client.connected_workers(), 3);
    assert_eq!(live_children().len(), 3);
    // Down and at once up again: the retired processes, still exiting, are not
    // counted as starting ones.
    client.scale(1).unwrap();
    wait_until("one worker left", || client.connected_workers() == 1);
    client.scale(3).unwrap();
    assert_eq!(client.wait_for_workers(3, HANG_GUARD).unwrap(), 3);
    wait_until("3 worker processes again", || live_children().len() == 3);
}

/// Two of three workers are retired while a graph runs: the leaves' results they
/// alone hold are copied to the worker that stays, the pairs they run finish
/// there, the queued ones move; every value is right, no task ran twice, and the
/// retired processes are gone.
fn scaling_down_mid_graph_keeps_every_result_and_reruns_nothing() {
    let dir = records_dir("down");
    let d = dir.to_string_lossy().to_string();
    let client = start("processes:3");
    let leaves: Vec<Delayed<i64>> = (0..8).map(|i| delayed(leaf_once, (d.clone(), i))).collect();
    let pairs: Vec<Delayed<i64>> = (0..4)
        .map(|i| {
            let (x, y) = (&leaves[2 * i], &leaves[2 * i + 1]);
            delayed(pair_after_gate, (d.clone(), i as i64, x, y))
        })
        .collect();
    let total = delayed(total_once, (d.clone(), &pairs));
    let future = wherever::persist(&client, &total);
    // Half done: every leaf ran, a pair runs on each worker, one more is queued.
    wait_until("8 leaves and 3 running pairs", || {
        executions_of(&dir, "leaf") == 8 && executions_of(&dir, "started") == 3
    });
    wait_until("3 worker processes", || live_children().len() == 3);
    client.scale(1).unwrap();
    std::fs::File::create(dir.join("gate")).unwrap();
    let expected: i64 = (0..8).map(|i| i * i).sum();
    assert_eq!(future.value().unwrap(), expected);
    for i in 0..8 {
        assert_eq!(executions(&dir, "leaf", i), 1, "leaf {i} ran again");
    }
    for i in 0..4 {
        assert_eq!(executions(&dir, "pair", i), 1, "pair {i} ran again");
    }
    assert_eq!(executions(&dir, "total", 0), 1);
    wait_until("one worker left", || client.connected_workers() == 1);
    wait_until("the retired processes gone", || live_children().len() == 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A burst of tasks that hold their slots grows the cluster to its maximum; once
/// they are done and the cluster idles past the grace period, it shrinks back to
/// its minimum. Synchronised on the worker counts, with a hang guard.
fn adapt_grows_with_a_burst_and_shrinks_when_idle() {
    let dir = records_dir("adapt");
    let d = dir.to_string_lossy().to_string();
    let client = start("processes:1");
    let options = AdaptOptions {
        interval: Duration::from_millis(50),
        idle_grace: Duration::from_millis(300),
        max_starting: 1,
        ..AdaptOptions::new(1, 3)
    };
    client.adapt_with(options).unwrap();
    let burst: Vec<_> = (0..6)
        .map(|i| client.submit(waits_for_gate, (d.clone(), i)))
        .collect();
    wait_until("3 workers for the burst", || {
        client.connected_workers() == 3
    });
    std::fs::File::create(dir.join("gate")).unwrap();
    assert_eq!(client.gather(burst).unwrap(), (0..6).collect::<Vec<i64>>());
    for i in 0..6 {
        assert_eq!(executions(&dir, "burst", i), 1, "burst task {i} ran again");
    }
    wait_until("back to 1 worker when idle", || {
        client.connected_workers() == 1
    });
    wait_until("the retired processes gone", || live_children().len() == 1);
    // And it grows again with the next burst.
    let again: Vec<_> = (10..14)
        .map(|i| client.submit(waits_for_gate, (d.clone(), i)))
        .collect();
    assert_eq!(
        client.gather(again).unwrap(),
        (10..14).collect::<Vec<i64>>()
    );
    client.stop_adapting();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch.
fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A worker whose deadline is a few seconds ahead, beside one without: it is
/// retired gracefully before its deadline (exit status 0), its results are
/// handed over, every value is right and no task ran twice.
fn a_worker_near_its_deadline_retires_before_it_and_nothing_runs_twice() {
    let dir = records_dir("walltime");
    let d = dir.to_string_lossy().to_string();
    let runtime = ClusterRuntime::start().unwrap();
    let secret = Secret::generate();
    let address = server::start(
        &runtime,
        "127.0.0.1:0",
        secret.clone(),
        ServerOptions::default(),
    )
    .unwrap()
    .to_string();
    let spawn = |deadline: Option<u64>, name: &str| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .env(WORKER_VARIABLE, format!("tcp://{address}"))
            .env(SECRET_VARIABLE, secret.to_hex())
            .env(WORKER_NAME_VARIABLE, name);
        if let Some(deadline) = deadline {
            command.env(DEADLINE_VARIABLE, deadline.to_string());
        }
        command.spawn().unwrap()
    };
    let mut steady = spawn(None, "steady");
    let deadline = unix_now() + 8;
    let mut ending = spawn(Some(deadline), "ending");
    // Notes when it exits, while the tasks run.
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = ending.wait().unwrap();
        let _ = exited.send((status, unix_now_ms()));
    });
    std::env::set_var(SECRET_VARIABLE, secret.to_hex());
    let client = start(&format!("tcp://{address}"));
    client.wait_for_workers(2, HANG_GUARD).unwrap();
    let futures: Vec<_> = (0..8)
        .map(|i| client.submit(slow_once, (d.clone(), i)))
        .collect();
    assert_eq!(
        client.gather(futures).unwrap(),
        (0..8).map(|i| i * 3).collect::<Vec<i64>>()
    );
    for i in 0..8 {
        assert_eq!(executions(&dir, "slow", i), 1, "task {i} ran again");
    }
    let (status, left_at_ms) = exit
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: the ending worker never left");
    assert!(
        status.success(),
        "the ending worker did not retire: {status}"
    );
    assert!(
        left_at_ms < deadline * 1000,
        "left at {left_at_ms} ms, its deadline was {deadline} s"
    );
    assert_eq!(client.connected_workers(), 1);
    drop(client);
    let _ = steady.kill();
    let _ = steady.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn fixed_plans_cannot_scale_and_say_which_plan() {
    for plan in ["sequential", "threads:2"] {
        let client = start(plan);
        let error = client.scale(3).unwrap_err().to_string();
        assert!(
            error.contains(&format!("cannot scale plan `{plan}`")),
            "{error}"
        );
        let error = client.adapt(1, 3).unwrap_err().to_string();
        assert!(error.contains("no worker processes"), "{error}");
    }
    let client = start("processes:1");
    let error = client.adapt(3, 2).unwrap_err().to_string();
    assert!(
        error.contains("minimum (3) is more than the maximum (2)"),
        "{error}"
    );
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 5] = [
        (
            "a_worker_near_its_deadline_retires_before_it_and_nothing_runs_twice",
            a_worker_near_its_deadline_retires_before_it_and_nothing_runs_twice,
        ),
        (
            "adapt_grows_with_a_burst_and_shrinks_when_idle",
            adapt_grows_with_a_burst_and_shrinks_when_idle,
        ),
        (
            "scaling_up_from_one_to_three_gives_three_workers",
            scaling_up_from_one_to_three_gives_three_workers,
        ),
        (
            "scaling_down_mid_graph_keeps_every_result_and_reruns_nothing",
            scaling_down_mid_graph_keeps_every_result_and_reruns_nothing,
        ),
        (
            "fixed_plans_cannot_scale_and_say_which_plan",
            fixed_plans_cannot_scale_and_say_which_plan,
        ),
    ];
    harness::run_checks(&checks)
}
