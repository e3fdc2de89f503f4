//! The cheaper submit and `map` paths keep their behaviour: the registration found
//! for each function (also when several alternate in one thread), the task's own
//! semantics (fallible, `result_is_value`, context), the nested client of the
//! running task (also after a panicking task), on every local plan.

mod common;

use common::{start, LOCAL_PLANS};
use wherever::prelude::*;

#[wherever::task]
fn plus_one(x: u64) -> u64 {
    x + 1
}

#[wherever::task]
fn times_two(x: u64) -> u64 {
    x * 2
}

#[wherever::task]
fn checked_half(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[wherever::task(result_is_value)]
fn half_as_value(x: u64) -> Result<u64, String> {
    checked_half(x)
}

#[wherever::task]
fn with_position(x: u64, ctx: &mut TaskContext) -> u64 {
    x + 1000 * ctx.position()
}

#[wherever::task]
fn nested_plus_one(x: u64) -> Result<u64, wherever::Error> {
    let client = wherever::client()?;
    Ok(client.submit(plus_one, x).value()?)
}

#[wherever::task]
fn panics(_x: u64) -> u64 {
    panic!("on purpose")
}

#[test]
fn alternating_functions_in_one_thread_each_find_their_own_registration() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let futures: Vec<_> = (0..20u64)
            .map(|i| match i % 3 {
                0 => client.submit(plus_one, i),
                1 => client.submit(times_two, i),
                _ => client.submit(|x: u64| x + 100, i),
            })
            .collect();
        let names: Vec<_> = futures.iter().map(|f| f.task_name()).collect();
        assert_eq!(names[0], "perf4::plus_one", "{plan}");
        assert_eq!(names[1], "perf4::times_two", "{plan}");
        assert_eq!(names[2], "closure", "{plan}");
        assert_eq!(names[3], "perf4::plus_one", "{plan}");
        let values = client.gather(futures).unwrap();
        let expected: Vec<u64> = (0..20u64)
            .map(|i| match i % 3 {
                0 => i + 1,
                1 => i * 2,
                _ => i + 100,
            })
            .collect();
        assert_eq!(values, expected, "{plan}");
        assert_eq!(client.map(times_two, 0..5u64).unwrap(), vec![0, 2, 4, 6, 8]);
        assert_eq!(client.map(plus_one, 0..3u64).unwrap(), vec![1, 2, 3]);
    }
}

#[test]
fn registered_tasks_keep_their_failures_values_and_context() {
    for plan in LOCAL_PLANS {
        let client = start(plan).with_seed(1);
        let half: u64 = client.submit(checked_half, 4u64).value().unwrap();
        assert_eq!(half, 2, "{plan}");
        let odd: Result<u64, _> = client.submit(checked_half, 3u64).value();
        let error = odd.unwrap_err();
        assert!(error.to_string().contains("3 is odd"), "{plan}: {error}");
        assert!(
            error.to_string().contains("perf4::checked_half"),
            "{plan}: {error}"
        );
        let kept: Result<u64, String> = client.submit(half_as_value, 3u64).value().unwrap();
        assert_eq!(kept, Err("3 is odd".to_string()), "{plan}");
        let halves: Result<Vec<u64>, _> = client.map(checked_half, [2u64, 4, 5, 6]);
        let error = halves.unwrap_err();
        assert!(error.to_string().contains("5 is odd"), "{plan}: {error}");
        assert!(error.to_string().contains("item 2"), "{plan}: {error}");
        let client = start(plan).with_seed(1);
        assert_eq!(client.submit(with_position, 1u64).value().unwrap(), 1);
        assert_eq!(
            client.map(with_position, [5u64, 5, 5]).unwrap(),
            vec![1005, 2005, 3005],
            "{plan}"
        );
    }
}

#[test]
fn tasks_get_their_client_also_after_a_panicking_task_and_not_outside() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let error = client.submit(panics, 0u64).value().unwrap_err();
        assert!(error.to_string().contains("on purpose"), "{plan}: {error}");
        let nested: u64 = client.submit(nested_plus_one, 1u64).value().unwrap();
        assert_eq!(nested, 2, "{plan}");
        let nested: Vec<u64> = client.map(nested_plus_one, 0..4u64).unwrap();
        assert_eq!(nested, vec![1, 2, 3, 4], "{plan}");
        let error = wherever::client().unwrap_err();
        assert!(
            error.to_string().contains("inside a task"),
            "{plan}: {error}"
        );
    }
}

#[test]
fn a_map_of_many_items_writes_every_result_in_order() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let results = client.map(plus_one, 0..10_000u64).unwrap();
        assert!(
            results.iter().enumerate().all(|(i, r)| *r == i as u64 + 1),
            "{plan}"
        );
    }
}
