//! The event stream under every plan (`sequential`, `threads:2`, `processes:2`): the
//! same shape of events for a small map, failures, and progress lines on request. The
//! test binary is its own worker executable (`harness = false`).

#[path = "common/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;
use wherever::events::{Event, FailureKind, Subscription};
use wherever::prelude::*;
use wherever::Scheduling;
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::{ClusterRuntime, Secret};

/// How long a test waits for an event before it calls it lost (a hang guard only).
const HANG_GUARD: Duration = Duration::from_secs(60);

#[wherever::task]
fn square(x: i64) -> i64 {
    x * x
}

#[wherever::task]
fn panics_on_three(x: u64) -> u64 {
    assert!(x != 3, "three is not allowed");
    x
}

const PLANS: [&str; 3] = ["sequential", "threads:2", "processes:2"];

/// Every event waiting now, by kind.
fn counts(events: &Subscription) -> (BTreeMap<&'static str, usize>, Vec<Event>) {
    let read: Vec<Event> = events.drain().into_iter().map(|s| s.event).collect();
    let mut by_kind = BTreeMap::new();
    for event in &read {
        *by_kind.entry(event.kind()).or_insert(0) += 1;
    }
    (by_kind, read)
}

fn every_plan_emits_the_same_shape_for_a_small_map() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap().progress(false);
        let events = client.events();
        let squares = client
            .map_with(square, 0..12i64, Scheduling::Dynamic)
            .unwrap();
        assert_eq!(squares[11], 121);
        let (by_kind, read) = counts(&events);
        assert_eq!(by_kind.get("TaskSubmitted"), Some(&12), "{plan}: {read:?}");
        assert_eq!(by_kind.get("TaskFinished"), Some(&12), "{plan}: {read:?}");
        assert_eq!(by_kind.get("TaskFailed"), None, "{plan}: {read:?}");
        assert_eq!(by_kind.get("Dropped"), None, "{plan}: {read:?}");
        for event in &read {
            if let Event::TaskSubmitted {
                name, group, items, ..
            } = event
            {
                assert!(name.ends_with("square"), "{plan}: {name}");
                assert_eq!((group, *items), (name, 1), "{plan}");
            }
        }
        assert_eq!(by_kind.get("TaskStarted"), Some(&12), "{plan}: {read:?}");
        for event in &read {
            if let Event::TaskFinished { worker, .. } = event {
                assert!(worker.is_some(), "{plan}: where it ran: {event:?}");
            }
        }
    }
}

fn a_chunked_map_counts_its_items() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let events = client.events();
        client.map(square, 0..100i64).unwrap();
        let items: Vec<u64> = events
            .drain()
            .into_iter()
            .filter_map(|s| match s.event {
                Event::TaskSubmitted { items, .. } => Some(items),
                _ => None,
            })
            .collect();
        assert!(
            items.len() > 1 && items.len() < 100,
            "{plan}: chunks {items:?}"
        );
        // The scheduler reads a chunk's length from its encoded items.
        assert_eq!(items.iter().sum::<u64>(), 100, "{plan}: {items:?}");
    }
}

fn a_failure_shows_up_with_its_kind() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let events = client.events();
        let outcomes = client.map_results_with(panics_on_three, 0..6u64, Scheduling::Dynamic);
        assert!(outcomes[3].is_err());
        let (by_kind, read) = counts(&events);
        assert_eq!(by_kind.get("TaskFailed"), Some(&1), "{plan}: {read:?}");
        assert_eq!(by_kind.get("TaskFinished"), Some(&5), "{plan}: {read:?}");
        let kind = read.iter().find_map(|event| match event {
            Event::TaskFailed { kind, .. } => Some(*kind),
            _ => None,
        });
        assert_eq!(kind, Some(FailureKind::Panicked), "{plan}");
    }
}

fn a_named_task_carries_its_name_and_group() {
    let client = Plan::parse("threads:2").unwrap().start().unwrap();
    let events = client.events();
    let fit = client.options().name("fit-7");
    assert_eq!(fit.client().submit(square, 3).value(), Ok(9));
    let submitted = events
        .recv_timeout(Duration::from_secs(60))
        .expect("an event");
    match submitted.event {
        Event::TaskSubmitted { name, group, .. } => {
            assert_eq!((&*name, &*group), ("fit-7", "fit"));
        }
        other => panic!("expected TaskSubmitted, got {other:?}"),
    }
}

fn nobody_subscribed_means_no_events_are_kept() {
    let client = Plan::parse("threads:2").unwrap().start().unwrap();
    client.map(square, 0..10i64).unwrap();
    let events = client.events();
    assert!(events.drain().is_empty(), "only events after subscribing");
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

fn a_tcp_scheduler_forwards_its_events_to_a_subscribed_client() {
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
    let client = Plan::parse(&format!("tcp://{address}"))
        .unwrap()
        .start()
        .unwrap();
    let events = client.events();
    let mut worker = std::process::Command::new(std::env::current_exe().unwrap())
        .env(WORKER_VARIABLE, format!("tcp://{address}"))
        .env(SECRET_VARIABLE, secret.to_hex())
        .spawn()
        .unwrap();
    client.wait_for_workers(1, HANG_GUARD).unwrap();
    let squares = client
        .map_with(square, 0..6i64, Scheduling::Dynamic)
        .unwrap();
    assert_eq!(squares[5], 25);
    let read = read_until(&events, |read| of_kind(read, "TaskFinished") == 6);
    assert_eq!(of_kind(&read, "WorkerJoined"), 1, "{read:?}");
    assert_eq!(of_kind(&read, "TaskSubmitted"), 6, "{read:?}");
    assert_eq!(of_kind(&read, "TaskStarted"), 6, "{read:?}");
    let _ = worker.kill();
    let _ = worker.wait();
    let left = read_until(&events, |read| of_kind(read, "WorkerLeft") == 1);
    assert!(
        left.iter()
            .any(|e| matches!(e, Event::WorkerLeft { reason, .. } if !reason.is_empty())),
        "{left:?}"
    );
}

/// Aborts its worker the first time it runs (a marker file says it ran).
#[wherever::task]
fn kills_its_worker_once(marker: String) -> u64 {
    if std::fs::create_dir(&marker).is_ok() {
        std::process::abort();
    }
    7
}

fn a_lost_worker_shows_as_left_and_its_task_as_retried() {
    let marker = std::env::temp_dir().join(format!("wherever-obs-retry-{}", std::process::id()));
    let _ = std::fs::remove_dir(&marker);
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let events = client.events();
    let survived = client.submit(kills_its_worker_once, marker.display().to_string());
    assert_eq!(survived.value(), Ok(7));
    let _ = std::fs::remove_dir(&marker);
    let (by_kind, read) = counts(&events);
    assert_eq!(by_kind.get("WorkerLeft"), Some(&1), "{read:?}");
    assert_eq!(by_kind.get("TaskRetried"), Some(&1), "{read:?}");
    assert_eq!(by_kind.get("TaskFinished"), Some(&1), "{read:?}");
    assert!(
        read.iter()
            .any(|e| matches!(e, Event::TaskRetried { attempts: 1, .. })),
        "{read:?}"
    );
}

fn workers_report_their_memory() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let events = client.events();
    client
        .map_with(square, 0..8i64, Scheduling::Dynamic)
        .unwrap();
    let (_, read) = counts(&events);
    let rss = read.iter().find_map(|event| match event {
        Event::WorkerMemory { rss_bytes, .. } => Some(*rss_bytes),
        _ => None,
    });
    assert!(rss.is_some_and(|bytes| bytes > 1 << 20), "{read:?}");
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "every_plan_emits_the_same_shape_for_a_small_map",
            every_plan_emits_the_same_shape_for_a_small_map,
        ),
        (
            "a_chunked_map_counts_its_items",
            a_chunked_map_counts_its_items,
        ),
        (
            "a_failure_shows_up_with_its_kind",
            a_failure_shows_up_with_its_kind,
        ),
        (
            "a_named_task_carries_its_name_and_group",
            a_named_task_carries_its_name_and_group,
        ),
        (
            "a_lost_worker_shows_as_left_and_its_task_as_retried",
            a_lost_worker_shows_as_left_and_its_task_as_retried,
        ),
        ("workers_report_their_memory", workers_report_their_memory),
        (
            "a_tcp_scheduler_forwards_its_events_to_a_subscribed_client",
            a_tcp_scheduler_forwards_its_events_to_a_subscribed_client,
        ),
        (
            "nobody_subscribed_means_no_events_are_kept",
            nobody_subscribed_means_no_events_are_kept,
        ),
    ]);
}
