//! Nested parallelism on the local plans: tasks that submit tasks and wait for
//! them never deadlock, and their random streams do not depend on the plan.

mod common;

use common::start;
use wherever::prelude::*;

#[wherever::task]
fn inner(i: u64, rng: &mut TaskRng) -> u64 {
    i ^ rng.random::<u64>()
}

#[wherever::task]
fn outer(width: u64) -> Result<Vec<u64>, wherever::Error> {
    let client = wherever::client()?;
    let futures: Vec<_> = (0..width).map(|i| client.submit(inner, i)).collect();
    Ok(client.gather(futures)?)
}

fn run(plan: &str) -> Vec<Vec<u64>> {
    let client = start(plan).with_seed(7);
    let futures: Vec<_> = (0..50).map(|_| client.submit(outer, 10)).collect();
    client.gather(futures).unwrap()
}

#[test]
fn fifty_outer_tasks_each_waiting_on_ten_inner_tasks_finish_on_one_thread() {
    let results = run("threads:1");
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(|r| r.len() == 10));
}

#[test]
fn nested_results_are_the_same_under_every_local_plan() {
    let expected = run("sequential");
    for plan in [
        "threads:1",
        "threads:2",
        "threads:2/threads:2",
        "threads:3/sequential",
    ] {
        assert_eq!(run(plan), expected, "{plan}");
    }
}

#[test]
fn client_outside_a_task_is_an_error() {
    let error = wherever::client().unwrap_err();
    assert!(error.to_string().contains("inside a task"), "{error}");
}

#[wherever::task]
fn double(i: u64) -> u64 {
    2 * i
}

/// Submits more subtasks than a pool's queue holds, one by one, and adds up their results.
#[wherever::task]
fn sum_of_many_doubles(count: u64) -> Result<u64, wherever::Error> {
    let client = wherever::client()?;
    let futures: Vec<_> = (0..count).map(|i| client.submit(double, i)).collect();
    Ok(client.gather(futures)?.into_iter().sum())
}

#[test]
fn a_task_on_the_only_thread_submits_more_subtasks_than_the_queue_holds() {
    let count = wherever::QUEUE_BOUND as u64 + 100;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let client = start("threads:1");
        let _ = done.send(client.submit(sum_of_many_doubles, count).value());
    });
    // A hang guard only: the test fails, rather than hangs, if the submitter blocks
    // on the queue of the pool whose only thread it occupies.
    let total = finished
        .recv_timeout(std::time::Duration::from_secs(600))
        .expect("the nested task never finished")
        .unwrap();
    assert_eq!(total, count * (count - 1));
}
