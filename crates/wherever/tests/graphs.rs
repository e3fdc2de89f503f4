//! Lazy graphs and futures as arguments on the local plans: values, shared
//! subgraphs computed once, pure and impure keys, errors through graphs, DOT.

mod common;

use common::{start, LOCAL_PLANS};
use std::sync::atomic::{AtomicUsize, Ordering};
use wherever::prelude::*;
use wherever::{delayed_pure, persist, TaskErrorKind};

#[wherever::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[wherever::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[wherever::task]
fn load(n: i64) -> Vec<i64> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    (0..n).collect()
}

#[wherever::task]
fn total(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[wherever::task]
fn largest(values: Vec<i64>) -> i64 {
    values.into_iter().max().unwrap_or_default()
}

#[wherever::task]
fn draw(rng: &mut TaskRng) -> u64 {
    rng.random()
}

#[wherever::task]
fn leaf(i: i64) -> i64 {
    assert!(i != 137, "leaf {i} is broken");
    i
}

#[wherever::task]
fn scaled_sum(values: Vec<i64>, factor: i64) -> i64 {
    values.iter().sum::<i64>() * factor
}

#[test]
fn futures_are_arguments_of_other_tasks() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let x = client.submit(inc, 1);
        let y = client.submit(inc, 2);
        let z = client.submit(add, (&x, &y));
        let w = client.submit(add, (&z, 10));
        assert_eq!(w.value().unwrap(), 15, "{plan}");
        assert_eq!(z.value().unwrap(), 5, "{plan}");
        assert_eq!(
            x.value().unwrap(),
            2,
            "a future used as an argument keeps its value ({plan})"
        );
    }
}

#[test]
fn the_inc_inc_add_graph_computes_on_every_local_plan() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let x = delayed(inc, 1);
        let y = delayed(inc, 2);
        let z = delayed(add, (&x, &y));
        assert_eq!(z.compute(&client).unwrap(), 5, "{plan}");
        let dot = z.to_dot();
        assert!(
            dot.contains(&format!("\"{}\" -> \"{}\"", x.key(), z.key())),
            "{dot}"
        );
        assert!(
            dot.contains("memory"),
            "a computed graph shows its states: {dot}"
        );
    }
}

#[test]
fn two_reductions_of_the_same_data_read_it_once() {
    let client = start("threads:2");
    let data = delayed(load, 1000);
    let sum = delayed(total, &data);
    let max = delayed(largest, &data);
    let before = LOADS.load(Ordering::SeqCst);
    assert_eq!(compute(&client, &[&sum, &max]).unwrap(), vec![499_500, 999]);
    assert_eq!(
        LOADS.load(Ordering::SeqCst) - before,
        1,
        "shared subgraph computed once"
    );
}

#[test]
fn impure_calls_get_unique_keys_and_fresh_random_numbers() {
    let client = start("threads:2").with_seed(3);
    let a = delayed(draw, ());
    let b = delayed(draw, ());
    assert_ne!(a.key(), b.key());
    let values = compute(&client, &[&a, &b]).unwrap();
    assert_ne!(
        values[0], values[1],
        "random tasks are never served from a cache"
    );
    let p = delayed_pure(inc, 41);
    let q = delayed_pure(inc, 41);
    assert_eq!(
        p.key(),
        q.key(),
        "pure calls with equal arguments share a key"
    );
    assert_ne!(delayed_pure(inc, 40).key(), p.key());
}

#[test]
fn graph_random_numbers_match_across_plans() {
    let results: Vec<Vec<u64>> = LOCAL_PLANS
        .iter()
        .map(|plan| {
            let client = start(plan).with_seed(11);
            let nodes: Vec<_> = (0..6).map(|_| delayed(draw, ())).collect();
            compute(&client, &nodes.iter().collect::<Vec<_>>()).unwrap()
        })
        .collect();
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

#[test]
fn a_failing_leaf_fails_only_its_dependents_and_names_itself() {
    for plan in ["sequential", "threads:2"] {
        let client = start(plan);
        // 1,000 tasks: 500 leaves, 500 pairwise sums; leaf 137 panics.
        let leaves: Vec<_> = (0..500).map(|i| delayed(leaf, i)).collect();
        let sums: Vec<_> = leaves
            .chunks(2)
            .map(|pair| delayed(add, (&pair[0], &pair[1])))
            .collect();
        let futures = persist(&client, &sums.iter().collect::<Vec<_>>());
        for (index, future) in futures.into_iter().enumerate() {
            let outcome = future.value();
            if index == 137 / 2 {
                let error = outcome.unwrap_err();
                match &error.kind {
                    TaskErrorKind::DependencyFailed { cause } => {
                        assert!(cause.contains("leaf"), "{error}")
                    }
                    other => {
                        panic!("{plan}: expected a dependency failure, got {other:?}: {error}")
                    }
                }
                assert!(error.message.contains("leaf 137 is broken"), "{error}");
            } else {
                let expected = (2 * index as i64) + (2 * index as i64 + 1);
                assert_eq!(
                    outcome.unwrap(),
                    expected,
                    "{plan}: independent branch {index}"
                );
            }
        }
    }
}

#[test]
fn scattered_values_are_arguments() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let data = client.scatter(&(1..=100).collect::<Vec<i64>>()).unwrap();
        let futures: Vec<_> = (1..=3)
            .map(|factor| client.submit(scaled_sum, (&data, factor)))
            .collect();
        assert_eq!(
            client.gather(futures).unwrap(),
            vec![5050, 10100, 15150],
            "{plan}"
        );
    }
}

#[test]
fn map_items_may_be_futures() {
    let client = start("threads:2");
    let futures: Vec<_> = (0..5).map(|i| client.submit(inc, i)).collect();
    let doubled = client.map(add, futures.iter().map(|f| (f, f))).unwrap();
    assert_eq!(doubled, vec![2, 4, 6, 8, 10]);
}

#[test]
fn a_failed_future_fails_the_task_that_takes_it() {
    let client = start("threads:2");
    let broken = client.submit(leaf, 137);
    let dependent = client.submit(add, (&broken, 1));
    let error = dependent.value().unwrap_err();
    assert!(
        matches!(error.kind, TaskErrorKind::DependencyFailed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("leaf"), "{error}");
}

#[wherever::task]
fn noisy(x: u64, rng: &mut TaskRng) -> u64 {
    x ^ rng.random::<u64>()
}

#[test]
fn linear_chains_are_fused_and_the_optimised_graph_is_inspectable() {
    let a = delayed(inc, 1);
    let b = delayed(inc, &a);
    let c = delayed(inc, &b);
    let d = delayed(add, (&c, &a)); // `a` has two users: it stays its own task
    let graph = wherever::optimize(&[&d]);
    let keys: Vec<Vec<String>> = graph.tasks.iter().map(|t| t.keys.clone()).collect();
    assert_eq!(
        keys,
        vec![
            vec![a.key().to_string()],
            vec![b.key().to_string(), c.key().to_string()],
            vec![d.key().to_string()]
        ],
        "{graph:?}"
    );
    assert!(graph
        .to_dot()
        .contains(&format!("{}\\n{}", b.key(), c.key())));
    for plan in LOCAL_PLANS {
        assert_eq!(d.compute(&start(plan)).unwrap(), 4 + 2, "{plan}");
    }
    // Only what the output needs is kept.
    let unused = delayed(inc, &d);
    assert!(wherever::optimize(&[&c])
        .tasks
        .iter()
        .all(|t| !t.keys.contains(&unused.key().to_string())));
}

#[test]
fn fusion_does_not_change_random_streams() {
    for plan in LOCAL_PLANS {
        // As futures, submitted one by one (positions 0..5) ...
        let client = start(plan).with_seed(21);
        let mut future = client.submit(noisy, 0);
        for _ in 1..5 {
            future = client.submit(noisy, &future);
        }
        let unfused = future.value().unwrap();
        // ... and as one fused chain of the same five calls.
        let mut node = delayed(noisy, 0);
        for _ in 1..5 {
            node = delayed(noisy, &node);
        }
        assert_eq!(
            wherever::optimize(&[&node]).tasks.len(),
            1,
            "a chain of five is one task"
        );
        assert_eq!(
            node.compute(&start(plan).with_seed(21)).unwrap(),
            unfused,
            "{plan}"
        );
    }
}
