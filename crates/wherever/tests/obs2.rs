//! The event stream's fidelity on clusters: a task's duration as its worker measured
//! it, and a `tcp://` client forwarded only its own tasks' events (and the workers').
//! The test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use std::time::Duration;
use wherever::events::{Event, Subscription};
use wherever::prelude::*;
use wherever::{delayed, Delayed};
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::{ClusterRuntime, Secret};

/// How long a test waits for an event before it calls it lost (a hang guard only).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// How long [`naps`] runs at least.
const NAP: Duration = Duration::from_millis(30);

/// Takes at least [`NAP`] (a task with a known lower bound on its duration).
#[wherever::task]
fn naps(x: u64) -> u64 {
    std::thread::sleep(NAP);
    x
}

#[wherever::task]
fn double(x: u64) -> u64 {
    x * 2
}

/// Reads `events` until `enough` says the events read so far suffice (or the hang
/// guard passes), and returns them.
fn read_until(events: &Subscription, enough: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    let mut read = Vec::new();
    while !enough(&read) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Some(stamped) => read.push(stamped.event),
            None => panic!("events stopped coming: {read:?}"),
        }
    }
    read
}

fn of_kind(read: &[Event], kind: &str) -> usize {
    read.iter().filter(|e| e.kind() == kind).count()
}

fn a_cluster_task_s_duration_is_what_its_worker_measured() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let events = client.events();
    assert_eq!(client.submit(naps, 5).value(), Ok(5));
    let read = read_until(&events, |read| of_kind(read, "TaskFinished") == 1);
    let duration = read.iter().find_map(|event| match event {
        Event::TaskFinished { duration, .. } => Some(*duration),
        _ => None,
    });
    assert!(duration.is_some_and(|d| d >= NAP), "{read:?}");
}

/// This process's CPU time (user and system) from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// How much CPU time [`burns`] makes its worker have used at least.
const BURNT: Duration = Duration::from_millis(200);

/// Keeps its worker's process busy until it used [`BURNT`] of CPU time.
#[wherever::task]
fn burns(x: u64) -> u64 {
    let mut spin = x;
    while process_cpu() < BURNT {
        for _ in 0..100_000 {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
        }
    }
    x
}

fn workers_report_the_cpu_time_they_used() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        eprintln!("skipped: no /proc/self/stat here");
        return;
    }
    let client = Plan::parse("processes:1").unwrap().start().unwrap();
    let events = client.events();
    assert_eq!(client.submit(burns, 1).value(), Ok(1));
    // The worker reports with a task's start, at most once a second: start tasks
    // until a report shows the CPU time burnt (a hang guard bounds the wait).
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        assert_eq!(client.submit(double, 2).value(), Ok(4));
        let reported = events.drain().into_iter().any(
            |s| matches!(s.event, Event::WorkerMemory { cpu, rss_bytes, .. } if cpu >= BURNT && rss_bytes > 0),
        );
        if reported {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report of the CPU time"
        );
    }
}

fn a_tcp_client_is_forwarded_its_own_tasks_not_another_client_s() {
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
    std::env::set_var(SECRET_VARIABLE, secret.to_hex());
    let plan = format!("tcp://{address}");
    let watcher = Plan::parse(&plan).unwrap().start().unwrap();
    let other = Plan::parse(&plan).unwrap().start().unwrap();
    let events = watcher.events();
    let mut worker = std::process::Command::new(std::env::current_exe().unwrap())
        .env(WORKER_VARIABLE, &plan)
        .env(SECRET_VARIABLE, secret.to_hex())
        .spawn()
        .unwrap();
    watcher.wait_for_workers(1, HANG_GUARD).unwrap();
    // The other client's tasks first: had they been forwarded, they would come first.
    let theirs: Vec<_> = (0..5).map(|x| other.submit(double, x)).collect();
    assert_eq!(other.gather(theirs).unwrap(), vec![0, 2, 4, 6, 8]);
    assert_eq!(watcher.submit(double, 21).value(), Ok(42));
    let read = read_until(&events, |read| of_kind(read, "TaskFinished") >= 1);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(of_kind(&read, "TaskSubmitted"), 1, "{read:?}");
    assert_eq!(of_kind(&read, "TaskFinished"), 1, "{read:?}");
    assert_eq!(
        of_kind(&read, "WorkerJoined"),
        1,
        "workers are shown: {read:?}"
    );
}

#[wherever::task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[wherever::task]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

/// A diamond: `top` feeds `left` and `right`, which feed `bottom`.
fn diamond() -> Delayed<u64> {
    let top = delayed(inc, 1);
    let left = delayed(inc, &top);
    let right = delayed(double, &top);
    delayed(add, (&left, &right))
}

fn a_compute_describes_its_graph_with_the_tasks_ids() {
    for plan in ["threads:2", "processes:2"] {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let events = client.events();
        assert_eq!(diamond().compute(&client), Ok(3 + 4), "{plan}");
        let read = read_until(&events, |read| {
            of_kind(read, "GraphSubmitted") == 1 && of_kind(read, "TaskFinished") == 4
        });
        let submitted: Vec<u64> = read
            .iter()
            .filter_map(|e| match e {
                Event::TaskSubmitted { task, .. } => Some(*task),
                _ => None,
            })
            .collect();
        let graph = read
            .iter()
            .find_map(|e| match e {
                Event::GraphSubmitted { tasks } => Some(tasks.clone()),
                _ => None,
            })
            .unwrap();
        let ids: Vec<u64> = graph.iter().map(|t| t.task).collect();
        assert_eq!(
            ids, submitted,
            "{plan}: the graph's tasks are the submitted ones"
        );
        let deps: Vec<usize> = graph.iter().map(|t| t.deps.len()).collect();
        assert_eq!(deps, [0, 1, 1, 2], "{plan}: {graph:?}");
        assert!(graph[3].deps.contains(&ids[1]) && graph[3].deps.contains(&ids[2]));
        assert!(graph[3].name.ends_with("add"), "{plan}: {graph:?}");
    }
}

/// GETs `path` of the dashboard at `link` as JSON.
fn get(link: &str, path: &str) -> serde_json::Value {
    ureq::get(&format!("{link}{path}"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_json()
        .unwrap()
}

fn the_dashboard_draws_the_graph_of_a_processes_run() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let link = client
        .dashboard_link()
        .expect("on by default for processes");
    let link = link.trim_end_matches('/');
    assert_eq!(diamond().compute(&client), Ok(7));
    // The dashboard reads its stream in batches: wait for it to catch up (a hang
    // guard bounds the wait; nothing is timed).
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let graph = get(link, "/api/graph");
        let states: Vec<&str> = graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["state"].as_str())
            .collect();
        if states == ["done"; 4] {
            let layers: Vec<u64> = graph["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["layer"].as_u64())
                .collect();
            assert_eq!(layers, [0, 1, 1, 2], "{graph}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never drawn: {graph}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_compute_describes_its_graph_with_the_tasks_ids",
            a_compute_describes_its_graph_with_the_tasks_ids,
        ),
        (
            "the_dashboard_draws_the_graph_of_a_processes_run",
            the_dashboard_draws_the_graph_of_a_processes_run,
        ),
        (
            "a_cluster_task_s_duration_is_what_its_worker_measured",
            a_cluster_task_s_duration_is_what_its_worker_measured,
        ),
        (
            "workers_report_the_cpu_time_they_used",
            workers_report_the_cpu_time_they_used,
        ),
        (
            "a_tcp_client_is_forwarded_its_own_tasks_not_another_client_s",
            a_tcp_client_is_forwarded_its_own_tasks_not_another_client_s,
        ),
    ]);
}
