//! Tests of the `processes:N` plan with real worker processes. The test binary is
//! its own worker executable (see `harness = false` in Cargo.toml): `main` runs each
//! check in turn and reports like the standard harness.

#[path = "common/gate_task.rs"]
mod gate_task;
#[path = "common/harness.rs"]
mod harness;
use gate_task::wait_for_file;

use wherever::prelude::*;
use wherever::{Scheduling, TaskErrorKind};

#[wherever::task]
fn draw(i: u64, rng: &mut TaskRng) -> (u64, u64) {
    (i, rng.random::<u64>())
}

#[wherever::task]
fn square(x: i64) -> i64 {
    x * x
}

#[wherever::task]
fn panics_on_three(x: u64) -> u64 {
    assert!(x != 3, "three is not allowed");
    x
}

#[wherever::task]
fn fails_on_odd(x: u64) -> Result<u64, String> {
    if x % 2 == 1 {
        Err(format!("{x} is odd"))
    } else {
        Ok(x)
    }
}

#[wherever::task]
fn worker_pid(_x: u64) -> u32 {
    std::process::id()
}

#[wherever::task]
fn kill_my_worker(_x: u64) -> u64 {
    std::process::abort()
}

#[wherever::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[wherever::task]
fn scaled_sum(values: Vec<i64>, factor: i64) -> i64 {
    values.iter().sum::<i64>() * factor
}

#[wherever::task]
fn leaf(i: i64) -> i64 {
    assert!(i != 37, "leaf {i} is broken");
    i
}

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

fn start(plan: &str) -> Client {
    Plan::parse(plan).unwrap().start().unwrap()
}

fn results_match_sequential_under_every_chunking() {
    let expected = start("sequential").with_seed(5).map(draw, 0..50).unwrap();
    let client = start("processes:2");
    for scheduling in [
        Scheduling::Auto,
        Scheduling::Static,
        Scheduling::Dynamic,
        Scheduling::chunk_size(7).unwrap(),
    ] {
        let got = client
            .clone()
            .with_seed(5)
            .map_with(draw, 0..50, scheduling)
            .unwrap();
        assert_eq!(got, expected, "{scheduling:?}");
    }
    let futures: Vec<_> = (0..10).map(|i| client.submit(square, i)).collect();
    assert_eq!(
        client.gather(futures).unwrap(),
        (0..10).map(|i| i * i).collect::<Vec<i64>>()
    );
}

fn a_panicking_task_fails_alone_and_does_not_kill_its_worker() {
    let client = start("processes:1");
    let before = client.submit(worker_pid, 0).value().unwrap();
    let futures: Vec<_> = (0..6).map(|i| client.submit(panics_on_three, i)).collect();
    let outcomes: Vec<_> = futures.into_iter().map(TaskFuture::value).collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 3 {
            let error = outcome.as_ref().unwrap_err();
            assert_eq!(error.kind, TaskErrorKind::Panicked);
            assert!(error.task.ends_with("panics_on_three"), "{error}");
            assert_eq!(error.position, 4, "position counts the warm-up task");
            assert!(error.message.contains("three is not allowed"), "{error}");
            assert!(
                error
                    .worker
                    .as_deref()
                    .unwrap_or_default()
                    .contains("worker"),
                "{error}"
            );
        } else {
            assert_eq!(*outcome.as_ref().unwrap(), i as u64);
        }
    }
    assert_eq!(
        client.submit(worker_pid, 0).value().unwrap(),
        before,
        "the same worker process lives on"
    );
}

fn an_err_result_and_a_failing_map_item_are_reported_with_their_positions() {
    let client = start("processes:2");
    // `Result<u64, String>`: the result type says `Err` is a failure.
    let future: TaskFuture<u64> = client.submit(fails_on_odd, 1);
    let error = future.value().unwrap_err();
    assert_eq!(error.kind, TaskErrorKind::Failed);
    assert_eq!(error.message, "1 is odd");
    let outcome: Result<Vec<u64>, _> =
        client.map_with(fails_on_odd, [0, 2, 4, 5, 7], Scheduling::Static);
    let error = outcome.unwrap_err();
    assert_eq!(error.message, "5 is odd");
    assert_eq!(
        error.position,
        1 + 3,
        "the fourth item of the map, after one submit"
    );
}

fn a_task_that_keeps_killing_its_worker_stops_after_its_retry_budget() {
    let client = start("processes:2");
    let error = client.submit(kill_my_worker, 0).value().unwrap_err();
    assert!(
        matches!(error.kind, TaskErrorKind::WorkerLost { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("retry budget used up"),
        "{error}"
    );
    // The cluster replaced the dead workers and goes on.
    assert_eq!(client.submit(square, 9).value().unwrap(), 81);
}

fn closures_are_refused_with_a_clear_error() {
    let client = start("processes:1");
    let error = client.submit(|x: u64| x + 1, 1).value().unwrap_err();
    assert_eq!(error.kind, TaskErrorKind::Runtime);
    assert!(
        error
            .message
            .contains("a closure cannot run on plan `processes:1`"),
        "{error}"
    );
}

/// A path for a gate file of this test process; none exists yet.
fn gate_path(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("wherever-gate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path.to_string_lossy().into_owned()
}

/// Lets the tasks waiting for `path` end.
fn open_gate(path: &str) {
    std::fs::write(path, b"open").unwrap();
}

fn cancel_stops_a_queued_task_and_leaves_a_finished_one_alone() {
    let client = start("processes:1");
    let gate = gate_path("cancel");
    let busy = client.submit(wait_for_file, gate.clone());
    // The only task slot is busy until the gate opens, so this one waits.
    let queued = client.submit(square, 2);
    assert!(queued.cancel(), "a queued task can be cancelled");
    assert_eq!(queued.value().unwrap_err().kind, TaskErrorKind::Cancelled);
    open_gate(&gate);
    assert_eq!(busy.value().unwrap(), gate);
    let finished = client.submit(square, 5);
    let outcome = wherever::wait(
        std::slice::from_ref(&finished),
        None,
        ReturnWhen::AllCompleted,
    );
    assert_eq!(outcome.done, vec![0]);
    assert!(!finished.cancel(), "a finished task cannot be cancelled");
    assert_eq!(
        finished.value().unwrap(),
        25,
        "and its value stays readable"
    );
    let _ = std::fs::remove_file(&gate);
}

fn as_completed_yields_tasks_in_the_order_they_finish() {
    let client = start("processes:3");
    let gates: Vec<String> = ["a", "b", "c"].map(gate_path).into();
    let futures: Vec<_> = gates
        .iter()
        .map(|gate| client.submit(wait_for_file, gate.clone()))
        .collect();
    let mut completed = as_completed(futures);
    // Each task ends only when its gate opens: open them in the order b, c, a.
    for index in [1, 2, 0] {
        open_gate(&gates[index]);
        assert_eq!(completed.next().unwrap().value().unwrap(), gates[index]);
    }
    assert!(completed.next().is_none());
    for gate in gates {
        let _ = std::fs::remove_file(gate);
    }
}

fn plans_start_inside_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for plan in ["threads:2", "processes:2"] {
            let client = start(plan);
            assert_eq!(client.submit(square, 7).value().unwrap(), 49, "{plan}");
        }
    });
}

fn futures_and_graphs_flow_between_worker_processes() {
    let client = start("processes:2");
    let x = client.submit(square, 3);
    let y = client.submit(square, 4);
    let z = client.submit(add, (&x, &y));
    assert_eq!(z.value().unwrap(), 25);
    // A tree sum over 64 leaves: intermediate results move worker to worker.
    let mut level: Vec<Delayed<i64>> = (0..64).map(|i| delayed(square, i)).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| delayed(add, (&pair[0], &pair[1])))
            .collect();
    }
    assert_eq!(
        level[0].compute(&client).unwrap(),
        (0..64).map(|i| i * i).sum::<i64>()
    );
}

fn scattered_data_is_used_by_tasks_on_every_worker() {
    let client = start("processes:2");
    let data = client.scatter(&(1..=1000).collect::<Vec<i64>>()).unwrap();
    let futures: Vec<_> = (1..=8)
        .map(|factor| client.submit(scaled_sum, (&data, factor)))
        .collect();
    let expected: Vec<i64> = (1..=8).map(|f| 500_500 * f).collect();
    assert_eq!(client.gather(futures).unwrap(), expected);
}

fn a_failing_leaf_fails_only_its_dependents_across_processes() {
    let client = start("processes:2");
    let leaves: Vec<_> = (0..100).map(|i| delayed(leaf, i)).collect();
    let sums: Vec<_> = leaves
        .chunks(2)
        .map(|pair| delayed(add, (&pair[0], &pair[1])))
        .collect();
    let futures = wherever::persist(&client, &sums.iter().collect::<Vec<_>>());
    for (index, future) in futures.into_iter().enumerate() {
        match future.value() {
            Ok(value) => {
                assert_ne!(index, 37 / 2, "the sum over the broken leaf succeeded");
                assert_eq!(value, 4 * index as i64 + 1);
            }
            Err(error) => {
                assert_eq!(index, 37 / 2, "{error}");
                assert!(
                    matches!(error.kind, TaskErrorKind::DependencyFailed { .. }),
                    "{error}"
                );
                assert!(error.to_string().contains("leaf 37 is broken"), "{error}");
            }
        }
    }
}

fn nested_tasks_on_one_worker_process_do_not_deadlock() {
    let run = |plan: &str| {
        let client = start(plan).with_seed(7);
        let futures: Vec<_> = (0..50).map(|_| client.submit(outer, 10)).collect();
        client.gather(futures).unwrap()
    };
    let expected = run("sequential");
    assert_eq!(
        run("processes:1"),
        expected,
        "50 outer tasks each waiting on 10 inner ones"
    );
    assert_eq!(run("processes:2/threads:2"), expected);
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 12] = [
        (
            "nested_tasks_on_one_worker_process_do_not_deadlock",
            nested_tasks_on_one_worker_process_do_not_deadlock,
        ),
        (
            "futures_and_graphs_flow_between_worker_processes",
            futures_and_graphs_flow_between_worker_processes,
        ),
        (
            "scattered_data_is_used_by_tasks_on_every_worker",
            scattered_data_is_used_by_tasks_on_every_worker,
        ),
        (
            "a_failing_leaf_fails_only_its_dependents_across_processes",
            a_failing_leaf_fails_only_its_dependents_across_processes,
        ),
        (
            "results_match_sequential_under_every_chunking",
            results_match_sequential_under_every_chunking,
        ),
        (
            "a_panicking_task_fails_alone_and_does_not_kill_its_worker",
            a_panicking_task_fails_alone_and_does_not_kill_its_worker,
        ),
        (
            "an_err_result_and_a_failing_map_item_are_reported_with_their_positions",
            an_err_result_and_a_failing_map_item_are_reported_with_their_positions,
        ),
        (
            "a_task_that_keeps_killing_its_worker_stops_after_its_retry_budget",
            a_task_that_keeps_killing_its_worker_stops_after_its_retry_budget,
        ),
        (
            "closures_are_refused_with_a_clear_error",
            closures_are_refused_with_a_clear_error,
        ),
        (
            "cancel_stops_a_queued_task_and_leaves_a_finished_one_alone",
            cancel_stops_a_queued_task_and_leaves_a_finished_one_alone,
        ),
        (
            "as_completed_yields_tasks_in_the_order_they_finish",
            as_completed_yields_tasks_in_the_order_they_finish,
        ),
        (
            "plans_start_inside_a_tokio_runtime",
            plans_start_inside_a_tokio_runtime,
        ),
    ];
    harness::run_checks(&checks)
}
