//! `client.map`: results in input order, the same values (random draws included)
//! under every scheduling and plan, and the first failing item's error.

mod common;

use common::{start, LOCAL_PLANS};
use wherever::prelude::*;
use wherever::TaskErrorKind;

/// A value that depends on the item and on the item's own random stream.
#[wherever::task]
fn mix(x: u64, rng: &mut TaskRng) -> (u64, u64, f64) {
    let draw: f64 = rng.sample(StandardNormal);
    (x * 3, rng.random::<u64>(), draw)
}

#[wherever::task]
fn reject_multiples_of_seven(x: u64) -> Result<u64, String> {
    if x > 0 && x / 7 * 7 == x {
        Err(format!("{x} is a multiple of seven"))
    } else {
        Ok(x)
    }
}

#[wherever::task]
fn panic_above(x: u64, limit: u64) -> u64 {
    assert!(x <= limit, "item {x} is above {limit}");
    x
}

fn schedulings() -> Vec<Scheduling> {
    let mut all = vec![Scheduling::Auto, Scheduling::Static, Scheduling::Dynamic];
    all.extend([1, 2, 7, 64, 1000].map(|k| Scheduling::chunk_size(k).unwrap()));
    all
}

#[test]
fn every_scheduling_and_plan_gives_the_same_results_in_input_order() {
    let inputs: Vec<u64> = (0..203).collect();
    let reference = start("sequential")
        .with_seed(42)
        .map_with(mix, inputs.clone(), Scheduling::Dynamic)
        .unwrap();
    assert_eq!(reference.len(), inputs.len());
    for (x, (tripled, _, _)) in inputs.iter().zip(&reference) {
        assert_eq!(*tripled, x * 3, "results are in input order");
    }
    let distinct: std::collections::HashSet<u64> = reference.iter().map(|r| r.1).collect();
    assert_eq!(
        distinct.len(),
        inputs.len(),
        "every item has its own stream"
    );

    for plan in LOCAL_PLANS {
        for scheduling in schedulings() {
            let client = start(plan).with_seed(42);
            let results = client.map_with(mix, inputs.clone(), scheduling).unwrap();
            assert!(results == reference, "{plan} with {scheduling:?} differs");
        }
    }
}

#[test]
fn default_map_matches_one_submit_per_item() {
    let client = start("threads:2").with_seed(5);
    let submitted: Vec<_> = (0..50).map(|x| client.submit(mix, x)).collect();
    let submitted = client.gather(submitted).unwrap();
    let mapped = start("threads:2").with_seed(5).map(mix, 0..50).unwrap();
    assert!(mapped == submitted);
}

#[test]
fn consecutive_maps_continue_the_positions() {
    let client = start("threads:2").with_seed(9);
    let first = client.map(mix, 0..10).unwrap();
    let second = client.map(mix, 10..20).unwrap();
    let at_once = start("sequential").with_seed(9).map(mix, 0..20).unwrap();
    assert!([first, second].concat() == at_once);
}

#[test]
fn empty_input_gives_an_empty_result() {
    for plan in LOCAL_PLANS {
        for scheduling in schedulings() {
            let results = start(plan)
                .map_with(mix, Vec::<u64>::new(), scheduling)
                .unwrap();
            assert!(results.is_empty(), "{plan} {scheduling:?}");
        }
    }
}

#[test]
fn the_first_failing_item_in_input_order_gives_the_error_with_its_position() {
    for plan in LOCAL_PLANS {
        for scheduling in schedulings() {
            let client = start(plan);
            let error = client
                .map_with(reject_multiples_of_seven, 1..100, scheduling)
                .unwrap_err();
            let label = format!("{plan} {scheduling:?}");
            assert_eq!(error.kind, TaskErrorKind::Failed, "{label}");
            assert_eq!(error.task, "map::reject_multiples_of_seven", "{label}");
            // Inputs start at 1, so the item 7 is at position 6.
            assert_eq!(error.position, 6, "{label}");
            assert_eq!(error.message, "7 is a multiple of seven", "{label}");
        }
    }
}

#[test]
fn a_panicking_item_names_its_position_after_earlier_submissions() {
    let client = start("threads:2");
    let earlier = client.submit(panic_above, (0, 0));
    let error = client
        .map_with(
            panic_above,
            (0..40).map(|x| (x, 30)),
            Scheduling::chunk_size(8).unwrap(),
        )
        .unwrap_err();
    assert_eq!(error.kind, TaskErrorKind::Panicked);
    // One task came before the map, so item 31 is at position 32.
    assert_eq!(error.position, 32);
    assert!(
        error.message.starts_with("item 31 is above 30"),
        "{}",
        error.message
    );
    assert_eq!(earlier.value().unwrap(), 0);
}

#[test]
fn closures_map_on_local_plans() {
    for plan in LOCAL_PLANS {
        let results = start(plan).map(|x: u64| x * x, 0..1000).unwrap();
        assert_eq!(
            results,
            (0..1000).map(|x| x * x).collect::<Vec<_>>(),
            "{plan}"
        );
    }
}

#[wherever::task]
fn label_unless(x: u64, broken: u64) -> String {
    assert!(x != broken, "item {x} is broken");
    format!("item {x}")
}

#[test]
fn results_that_own_memory_are_kept_or_dropped_whole() {
    for plan in ["sequential", "threads:2", "threads:5"] {
        let client = start(plan);
        for scheduling in [
            Scheduling::Auto,
            Scheduling::Dynamic,
            Scheduling::chunk_size(7).unwrap(),
        ] {
            let labels = client
                .map_with(label_unless, (0..1000).map(|x| (x, u64::MAX)), scheduling)
                .unwrap();
            assert_eq!(labels.len(), 1000);
            assert!(
                labels
                    .iter()
                    .enumerate()
                    .all(|(i, l)| *l == format!("item {i}")),
                "{plan}"
            );
            // A failure in the middle: the items written before and after are dropped.
            let error = client
                .map_with(label_unless, (0..1000).map(|x| (x, 500)), scheduling)
                .unwrap_err();
            assert!(
                error.message.contains("item 500 is broken"),
                "{plan} {scheduling:?}: {error}"
            );
        }
    }
}

/// An iterator whose `size_hint` claims exactly `claims` items but which yields
/// `yields`.
struct Lying {
    yields: u64,
    claims: usize,
}

impl Iterator for Lying {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        self.yields = self.yields.checked_sub(1)?;
        Some(self.yields)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claims, Some(self.claims))
    }
}

#[test]
fn an_iterator_that_yields_more_or_fewer_items_than_its_size_hint_is_an_error() {
    // (yields, claims, how the error ends): 4 results from 1 item, 3 slots for 40.
    for (yields, claims, ending) in [(1, 4, "yielded 1"), (40, 3, "yielded more than 3")] {
        for plan in LOCAL_PLANS {
            for scheduling in schedulings() {
                let lying = Lying { yields, claims };
                let outcome = start(plan).map_with(|x: u64| format!("item {x}"), lying, scheduling);
                let error = outcome.expect_err("a map over a lying iterator");
                let promised = format!("promised exactly {claims} items");
                assert!(
                    error.message.contains(&promised) && error.message.ends_with(ending),
                    "{plan} {scheduling:?}: {error}"
                );
            }
        }
    }
}

/// Yields `before` items, then panics; opens `gate` when dropped (while the panic
/// unwinds through `map`).
struct PanicsAfter {
    before: u64,
    gate: common::Gate,
}

impl Iterator for PanicsAfter {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        assert!(self.before > 0, "the input iterator broke");
        self.before -= 1;
        Some(self.before)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (10, Some(10))
    }
}

impl Drop for PanicsAfter {
    fn drop(&mut self) {
        self.gate.open();
    }
}

#[test]
fn a_panicking_input_iterator_unwinds_only_after_the_chunks_already_submitted_ended() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    for plan in ["threads:1", "threads:2", "threads:5"] {
        let gate = common::Gate::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let (task_gate, task_finished) = (gate.clone(), finished.clone());
        let client = start(plan);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.map_with(
                move |x: u64| {
                    // Held until the panic unwinds, so the chunk still runs then.
                    task_gate.pass();
                    let label = format!("item {x}").repeat(100);
                    task_finished.fetch_add(1, Ordering::SeqCst);
                    label
                },
                PanicsAfter {
                    before: 3,
                    gate: gate.clone(),
                },
                Scheduling::Dynamic,
            )
        }));
        assert!(unwound.is_err(), "{plan}: the iterator's panic propagates");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            3,
            "{plan}: map unwound while chunks were still writing into its output"
        );
    }
}
