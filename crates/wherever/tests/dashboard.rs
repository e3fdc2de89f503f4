//! The live dashboard during real runs: its JSON endpoints while a `processes:2`
//! run moves, when it starts and when not, and headless Chromium (driven through
//! WebDriver) watching a run of 2,000 tasks. The test binary is its own worker
//! executable (see `harness = false` in Cargo.toml).

#[path = "common/gate_task.rs"]
mod gate_task;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/webdriver.rs"]
mod webdriver;
use gate_task::wait_for_file;

use std::time::{Duration, Instant};

use serde_json::Value;
use wherever::prelude::*;

#[wherever::task]
fn square(x: u64) -> u64 {
    x * x
}

/// How long any one condition may take before the test is declared hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// GETs `path` of the dashboard at `link` as JSON.
fn get(link: &str, path: &str) -> Value {
    ureq::get(&format!("{link}{path}"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_json()
        .unwrap()
}

/// Polls `path` until `done` holds of its body, and returns that body.
fn until(link: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let body = get(link, path);
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: last {path}: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gate_path(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("wherever-dash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    dir.to_string_lossy().into_owned()
}

/// `curl` on the JSON endpoints during a run shows the counts moving: two tasks
/// held running on the two workers, then done.
fn json_endpoints_move_during_a_processes_run() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let link = client
        .dashboard_link()
        .expect("processes plans start a dashboard");
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    let gate = gate_path("move");
    let held: Vec<_> = (0..2)
        .map(|_| client.submit(wait_for_file, gate.clone()))
        .collect();
    let progress = until(&link, "api/progress", "two running", |body| {
        body["total"]["running"] == 2
    });
    assert_eq!(progress["total"]["done"], 0, "{progress}");
    let names = progress["names"].as_array().unwrap();
    assert!(
        names
            .iter()
            .any(|n| n["name"].as_str().unwrap().contains("wait_for_file")),
        "{progress}"
    );
    std::fs::write(&gate, b"go").unwrap();
    for future in held {
        future.value().unwrap();
    }
    let squares = client
        .gather((0..100u64).map(|i| client.submit(square, i)))
        .unwrap();
    assert_eq!(squares[9], 81);
    until(&link, "api/progress", "102 done", |body| {
        body["total"]["done"] == 102 && body["total"]["running"] == 0
    });
    let tasks = until(&link, "api/tasks", "runs on both workers", |body| {
        let runs = body["runs"].as_array().unwrap();
        let workers: std::collections::BTreeSet<_> =
            runs.iter().map(|r| r["worker"].as_str().unwrap()).collect();
        workers.len() == 2
    });
    for run in tasks["runs"].as_array().unwrap() {
        assert!(run["end_us"].as_u64() >= run["start_us"].as_u64(), "{run}");
    }
    let workers = get(&link, "api/workers");
    let workers = workers["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let _ = std::fs::remove_file(&gate);
}

/// The dashboard shows names, counts and times: never argument or result values.
fn values_never_reach_the_dashboard() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let link = client.dashboard_link().unwrap();
    let secret = 987_654_321u64;
    assert_eq!(
        client.submit(square, secret).value().unwrap(),
        secret * secret
    );
    until(&link, "api/progress", "one done", |body| {
        body["total"]["done"] == 1
    });
    for path in ["api/progress", "api/tasks", "api/workers"] {
        let body = get(&link, path).to_string();
        assert!(!body.contains(&secret.to_string()), "{path}: {body}");
        assert!(
            !body.contains(&(secret * secret).to_string()),
            "{path}: {body}"
        );
    }
}

/// Local plans start one only on request; `off` turns it off for every plan;
/// a malformed value is a clear start error.
fn the_variable_turns_it_on_and_off() {
    let threads = Plan::parse("threads:2").unwrap();
    assert_eq!(threads.start().unwrap().dashboard_link(), None);
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "on");
    let client = threads.start().unwrap();
    let link = client.dashboard_link().expect("on by request");
    assert_eq!(client.map(square, 0..10u64).unwrap()[3], 9);
    until(&link, "api/progress", "10 done on threads", |body| {
        body["total"]["done"] == 10
    });
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "off");
    let processes = Plan::parse("processes:1").unwrap().start().unwrap();
    assert_eq!(processes.dashboard_link(), None);
    drop(processes);
    std::env::set_var(wherever::DASHBOARD_VARIABLE, "sometimes");
    let error = threads.start().unwrap_err().to_string();
    assert!(
        error.contains("WHEREVER_DASHBOARD is `sometimes`: it must be `on` or `off`"),
        "{error}"
    );
    std::env::remove_var(wherever::DASHBOARD_VARIABLE);
}

/// Headless Chromium opens the dashboard during a run of 2,000 tasks and sees, in
/// the DOM, 2,000 done and both workers in the task stream.
fn a_browser_sees_2000_done_and_both_workers() {
    let Some(browser) = webdriver::Browser::start() else {
        return;
    };
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let link = client.dashboard_link().unwrap();
    browser.open(&link);
    browser.wait_for(
        "the page is live",
        "return document.getElementById('status').textContent",
        |status| status == "live",
    );
    // 2,000 tasks (a `map` would send chunks, which the scheduler counts as tasks):
    // two held until both workers run one (trivial tasks may all go to the first
    // worker up), then 1,998 squares.
    let gate = gate_path("browser");
    let held: Vec<_> = (0..2)
        .map(|_| client.submit(wait_for_file, gate.clone()))
        .collect();
    until(&link, "api/progress", "two running", |body| {
        body["total"]["running"] == 2
    });
    std::fs::write(&gate, b"go").unwrap();
    let squares = client
        .gather((0..1998u64).map(|i| client.submit(square, i)))
        .unwrap();
    assert_eq!(squares.len(), 1998);
    for future in held {
        future.value().unwrap();
    }
    let _ = std::fs::remove_file(&gate);
    browser.wait_for(
        "2000 done in the progress table",
        "return document.getElementById('total-done').textContent",
        |done| done == "2000",
    );
    browser.wait_for(
        "both workers in the task stream",
        "return Array.from(document.querySelectorAll('#stream-workers li'))\
         .map((li) => li.dataset.worker).join(',')",
        |workers| workers.split(',').filter(|w| !w.is_empty()).count() == 2,
    );
    let rects = browser.run("return document.querySelectorAll('#stream-svg rect').length");
    assert_ne!(rects, "0", "the task stream draws the runs");
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "json_endpoints_move_during_a_processes_run",
            json_endpoints_move_during_a_processes_run,
        ),
        (
            "values_never_reach_the_dashboard",
            values_never_reach_the_dashboard,
        ),
        (
            "the_variable_turns_it_on_and_off",
            the_variable_turns_it_on_and_off,
        ),
        (
            "a_browser_sees_2000_done_and_both_workers",
            a_browser_sees_2000_done_and_both_workers,
        ),
    ]);
}
