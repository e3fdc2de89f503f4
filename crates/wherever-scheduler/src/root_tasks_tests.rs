//! Graph roots (tasks without inputs whose results other tasks read) are not
//! prefetched past one queued task per worker; plain tasks are.

use crate::tests::{add_worker, computes, finish, submit};
use crate::*;

/// A scheduler with a deep prefetch, as the cluster server's.
fn deep() -> Scheduler {
    Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(32),
        ..SchedulerConfig::default()
    })
}

/// Ten pairs: roots `2i` and `2i+1` both read by task `100 + i`.
fn pairs() -> Vec<TaskSpec> {
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(TaskSpec::new(2 * i));
        tasks.push(TaskSpec::new(2 * i + 1));
        tasks.push(TaskSpec::new(100 + i).deps([2 * i, 2 * i + 1]));
    }
    tasks
}

/// A result larger than the root queue's threshold.
const LARGE: u64 = 2 * crate::placement::ROOT_QUEUE_BYTES_PER_SLOT;

#[test]
fn graph_roots_wait_while_a_full_worker_has_one_queued() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    // The worker holds a large result the client keeps.
    submit(&mut s, vec![TaskSpec::new(1000)]);
    finish(&mut s, 1, 1000, LARGE);
    let out = submit(&mut s, pairs());
    assert_eq!(
        computes(&out),
        vec![(1, 0), (1, 1)],
        "one running, one queued"
    );
    // The pair is in memory: its consumer goes first, ahead of new roots.
    assert_eq!(computes(&finish(&mut s, 1, 0, LARGE)), vec![(1, 2)]);
    assert_eq!(computes(&finish(&mut s, 1, 1, LARGE)), vec![(1, 100)]);
    // Pair 0's consumer runs, root 3 waits queued behind it, root 4 waits here.
    assert_eq!(computes(&finish(&mut s, 1, 2, LARGE)), vec![(1, 3)]);
    assert_eq!(computes(&finish(&mut s, 1, 100, 8)), vec![(1, 4)]);
}

#[test]
fn graph_roots_are_prefetched_deep_while_workers_hold_little() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, pairs());
    assert_eq!(computes(&out).len(), 20, "every root of the ten pairs");
}

#[test]
fn plain_tasks_are_prefetched_as_deep_as_before() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, (0..50).map(TaskSpec::new).collect());
    assert_eq!(computes(&out).len(), 33, "slots + prefetch");
}

/// Ten pairs as in [`pairs`], every task of kind `kind`, ids from `base`.
fn pairs_of_kind(kind: u64, base: TaskId) -> Vec<TaskSpec> {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (a, b) = (base + 2 * i, base + 2 * i + 1);
        tasks.push(TaskSpec::new(a).kind(kind));
        tasks.push(TaskSpec::new(b).kind(kind));
        tasks.push(TaskSpec::new(base + 100 + i).deps([a, b]).kind(kind + 1));
    }
    tasks
}

#[test]
fn roots_of_a_kind_with_no_result_yet_wait_behind_one_queued() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, pairs_of_kind(7, 0));
    assert_eq!(
        computes(&out),
        vec![(1, 0), (1, 1)],
        "one running, one queued"
    );
}

#[test]
fn roots_of_a_kind_known_to_make_small_results_are_prefetched_deep() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(5000).kind(7)]);
    finish(&mut s, 1, 5000, 8);
    let out = submit(&mut s, pairs_of_kind(7, 0));
    assert_eq!(computes(&out).len(), 20, "every root of the ten pairs");
}

#[test]
fn roots_of_a_kind_known_to_make_large_results_wait_while_the_worker_holds_little() {
    let mut s = deep();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(5000).kind(7)]);
    finish(&mut s, 1, 5000, crate::placement::LARGE_ROOT_RESULT);
    let out = submit(&mut s, pairs_of_kind(7, 0));
    assert_eq!(
        computes(&out),
        vec![(1, 0), (1, 1)],
        "one running, one queued"
    );
}
