//! A worker's memory limit and thresholds reach the dashboard's worker view: from
//! the event stream's `WorkerLimits` to `/api/workers`.

use std::time::Duration;

use wherever_core::events::{Event, MemoryThresholds, Stamped};
use wherever_dashboard::feed::observation;
use wherever_dashboard::{Dashboard, Observation, DEFAULT_PORT};

fn workers_json(dashboard: &Dashboard) -> serde_json::Value {
    let url = format!("http://{}/api/workers", dashboard.address());
    ureq::get(&url)
        .timeout(Duration::from_secs(60))
        .call()
        .expect("/api/workers answers")
        .into_json()
        .expect("JSON")
}

#[test]
fn the_worker_view_shows_the_limit_and_its_thresholds_and_follows_a_change() {
    let dashboard = Dashboard::start(DEFAULT_PORT).expect("the dashboard starts");
    let limits = |limit: u64| MemoryThresholds {
        limit,
        target: Some(limit / 10 * 6),
        pause: Some(limit / 10 * 8),
        terminate: None,
    };
    let event = |event: Event, at_ms: u64| {
        observation(Stamped {
            at: Duration::from_millis(at_ms),
            event,
        })
        .expect("shown")
    };
    dashboard.observe([
        event(
            Event::WorkerJoined {
                worker: 3,
                host: "node1".into(),
                slots: 1,
                name: "node1-a".into(),
            },
            1,
        ),
        event(
            Event::WorkerLimits {
                worker: 3,
                limits: limits(1_000_000_000),
            },
            1,
        ),
    ]);
    let worker = workers_json(&dashboard)["workers"][0].clone();
    assert_eq!(worker["worker"], "worker-3");
    assert_eq!(worker["memory_limits"]["limit"], 1_000_000_000u64);
    assert_eq!(worker["memory_limits"]["target"], 600_000_000u64);
    assert_eq!(worker["memory_limits"]["pause"], 800_000_000u64);
    assert_eq!(
        worker["memory_limits"]["terminate"],
        serde_json::Value::Null
    );
    dashboard.observe([Observation::WorkerLimits {
        worker: "worker-3".into(),
        limits: limits(500_000_000),
        at: Duration::from_millis(2),
    }]);
    let worker = workers_json(&dashboard)["workers"][0].clone();
    assert_eq!(worker["memory_limits"]["limit"], 500_000_000u64);
}

#[test]
fn a_worker_without_a_known_limit_shows_null() {
    let dashboard = Dashboard::start(DEFAULT_PORT).expect("the dashboard starts");
    dashboard.observe([Observation::WorkerJoined {
        worker: "worker-0".into(),
        host: "node1".into(),
        slots: 1,
        at: Duration::from_millis(1),
    }]);
    let worker = workers_json(&dashboard)["workers"][0].clone();
    assert_eq!(worker["memory_limits"], serde_json::Value::Null);
}
