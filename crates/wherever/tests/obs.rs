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
            if let Event::TaskSubmitted { name, group, items, .. } = event {
                assert!(name.ends_with("square"), "{plan}: {name}");
                assert_eq!((group, *items), (name, 1), "{plan}");
            }
        }
        if plan != "processes:2" {
            // Local plans also say where and when each task started.
            assert_eq!(by_kind.get("TaskStarted"), Some(&12), "{plan}: {read:?}");
        }
    }
}

fn a_chunked_map_counts_its_items() {
    for plan in PLANS {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let events = client.events();
        client.map(square, 0..100i64).unwrap();
        let items: u64 = events
            .drain()
            .into_iter()
            .filter_map(|s| match s.event {
                Event::TaskSubmitted { items, .. } => Some(items),
                _ => None,
            })
            .sum();
        assert_eq!(items, 100, "{plan}");
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
            assert_eq!((name.as_str(), group.as_str()), ("fit-7", "fit"));
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
            "nobody_subscribed_means_no_events_are_kept",
            nobody_subscribed_means_no_events_are_kept,
        ),
    ]);
}
