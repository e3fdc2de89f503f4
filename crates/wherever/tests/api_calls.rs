//! The API items a Dask or R `future` user reaches for first, each on
//! `sequential`, `threads:2` and `processes:2`: random streams per call
//! (`client.seeded(label)`), futures read more than once and with a deadline,
//! `async`/`.await`, and `compute` of outputs of different types. The test binary
//! is its own worker executable (`harness = false`).

#[path = "common/gate_task.rs"]
mod gate_task;
#[path = "common/harness.rs"]
mod harness;
use gate_task::wait_for_file;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wherever::prelude::*;
use wherever::{persist, Scheduling, TaskErrorKind};

const PLANS: [&str; 3] = ["sequential", "threads:2", "processes:2"];

/// The plans on which a task can be pending while the test goes on (under
/// `sequential` a task runs inside `submit`).
const PARALLEL_PLANS: [&str; 2] = ["threads:2", "processes:2"];

/// A hang guard for waits the test expects to end (never asserted on).
const HANG_GUARD: Duration = Duration::from_secs(120);

#[wherever::task]
fn draw(i: u64, rng: &mut TaskRng) -> (u64, u64) {
    (i, rng.random::<u64>())
}

#[wherever::task]
fn draw_one(rng: &mut TaskRng) -> u64 {
    rng.random()
}

#[wherever::task]
fn add(x: u64, y: u64) -> u64 {
    x.wrapping_add(y)
}

#[wherever::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Loads `n` numbers and appends one byte to the file `counter` (a run counter
/// that works across worker processes).
#[wherever::task]
fn load(counter: String, n: u64) -> Vec<u64> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&counter)
        .expect("the counter file opens");
    file.write_all(b"x").expect("the counter file is written");
    (0..n).collect()
}

#[wherever::task]
fn total(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[wherever::task]
fn describe(values: Vec<u64>) -> String {
    format!("{} values", values.len())
}

#[wherever::task]
fn largest(values: Vec<u64>) -> Option<u64> {
    values.into_iter().max()
}

fn start(plan: &str) -> Client {
    Plan::parse(plan)
        .unwrap_or_else(|e| panic!("{plan}: {e}"))
        .start()
        .unwrap_or_else(|e| panic!("{plan}: {e}"))
}

/// A path in the temporary directory unique to this process and call.
fn scratch_path(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "wherever-api-calls-{}-{what}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn path_string(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_string()
}

/// What one seeded call draws: a `map`, a batch of submits and a graph, each under
/// its own label.
fn seeded_calls(client: &Client, chunk: usize) -> (Vec<(u64, u64)>, Vec<u64>, u64) {
    let scheduling = Scheduling::chunk_size(chunk).expect("chunk > 0");
    let mapped = client
        .seeded("simulation")
        .map_with(draw, 0..20, scheduling)
        .expect("map");
    let batch = client.seeded(7);
    let submitted = (0..5)
        .map(|_| batch.submit(draw_one, ()))
        .collect::<Vec<_>>();
    let submitted = client.gather(submitted).expect("submits");
    let graph = delayed(add, (&delayed(draw_one, ()), &delayed(draw_one, ())));
    let computed = graph.compute(&client.seeded("graph")).expect("compute");
    (mapped, submitted, computed)
}

fn inserting_a_call_before_a_seeded_call_does_not_change_its_results() {
    let mut reference = None;
    for plan in PLANS {
        for chunk in [1, 3, 20] {
            let plain = start(plan).with_seed(42);
            let results = seeded_calls(&plain, chunk);

            let busy = start(plan).with_seed(42);
            let _ = busy.submit(draw, 99).value().expect("an extra submit");
            let _ = busy.map(draw, 0..7).expect("an extra map");
            let _ = delayed(draw_one, ())
                .compute(&busy)
                .expect("an extra graph");
            assert_eq!(
                seeded_calls(&busy, chunk),
                results,
                "{plan}, chunk {chunk}: calls before a seeded call changed it"
            );
            let expected = reference.get_or_insert_with(|| results.clone());
            assert_eq!(&results, expected, "{plan}, chunk {chunk}");
        }
    }
    let results = reference.expect("computed");
    let client = start("sequential").with_seed(42);
    assert_ne!(
        client.seeded("other").map(draw, 0..20).unwrap(),
        results.0,
        "another label gives other numbers"
    );
    assert_ne!(
        start("sequential")
            .with_seed(43)
            .seeded("simulation")
            .map(draw, 0..20)
            .unwrap(),
        results.0,
        "another root seed gives other numbers"
    );
}

fn recomputing_a_graph_gives_the_same_random_values() {
    for plan in PLANS {
        let client = start(plan).with_seed(5);
        let build = || {
            let a = delayed(draw_one, ());
            let b = delayed(draw_one, ());
            let sum = delayed(add, (&a, &b));
            (a, sum)
        };
        let (a, sum) = build();
        let first = compute(&client, (&a, &sum)).unwrap();
        let _ = client.map(draw, 0..3).unwrap();
        assert_eq!(
            compute(&client, (&a, &sum)).unwrap(),
            first,
            "{plan}: the same graph computed again"
        );
        assert_eq!(sum.compute(&client).unwrap(), first.1, "{plan}: one output");

        let (a, sum) = build();
        let once = compute(&client.seeded("g"), (&a, &sum)).unwrap();
        let (a, sum) = build();
        let rebuilt = compute(&client.seeded("g"), (&a, &sum)).unwrap();
        assert_eq!(once, rebuilt, "{plan}: rebuilt under the same label");
    }
}

fn a_future_is_read_more_than_once_and_through_clones() {
    for plan in PLANS {
        let client = start(plan);
        let future = client.submit(square, 12);
        assert_eq!(*future.value_ref().unwrap(), 144, "{plan}");
        assert_eq!(*future.value_ref().unwrap(), 144, "{plan}: again");
        assert_eq!(
            *future.value_timeout(HANG_GUARD).unwrap(),
            144,
            "{plan}: with a deadline"
        );
        let copy = future.clone();
        // The original handle goes: on cluster plans the result must stay on the
        // workers for the clone, here used as another task's input.
        drop(future);
        let dependent = client.submit(add, (&copy, &copy));
        assert_eq!(
            dependent.value().unwrap(),
            288,
            "{plan}: input after a drop"
        );
        let other = copy.clone();
        assert_eq!(copy.value().unwrap(), 144, "{plan}: value of a clone");
        assert_eq!(
            other.value().unwrap(),
            144,
            "{plan}: value of the last handle"
        );

        let futures: Vec<_> = (0..4).map(|x| client.submit(square, x)).collect();
        let kept = futures.clone();
        let mut done: Vec<u64> = as_completed(futures)
            .map(|future| future.value().unwrap())
            .collect();
        done.sort_unstable();
        assert_eq!(done, vec![0, 1, 4, 9], "{plan}: as_completed");
        let waited = wait(&kept, Some(HANG_GUARD), ReturnWhen::AllCompleted);
        assert!(waited.not_done.is_empty(), "{plan}: wait");
        assert_eq!(client.gather(kept).unwrap(), vec![0, 1, 4, 9], "{plan}");
    }
}

fn a_deadline_gives_a_timeout_error_and_the_future_stays_usable() {
    for plan in PARALLEL_PLANS {
        let client = start(plan);
        let gate = scratch_path("gate");
        let future = client.submit(wait_for_file, path_string(&gate));
        // The task cannot finish before the gate file exists.
        let error = future.value_timeout(Duration::from_millis(20)).unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::TimedOut, "{plan}: {error}");
        assert!(
            error.to_string().contains("had not finished"),
            "{plan}: {error}"
        );
        assert!(!future.is_resolved(), "{plan}");
        std::fs::write(&gate, b"open").unwrap();
        let value = future.value_timeout(HANG_GUARD).unwrap().clone();
        assert_eq!(value, path_string(&gate), "{plan}");
        assert_eq!(future.value().unwrap(), value, "{plan}: read again");
        let _ = std::fs::remove_file(&gate);
    }
    // Under `sequential` the task ran inside `submit`: the deadline is not needed.
    let future = start("sequential").submit(square, 3);
    assert_eq!(*future.value_timeout(Duration::ZERO).unwrap(), 9);
}

/// Runs `body` on a one-thread tokio runtime on a thread of its own, waiting at
/// most [`HANG_GUARD`] for it (a blocked runtime thread would hang it forever).
fn on_one_thread_runtime<T: Send + 'static>(
    body: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
        let _ = done.send(body(&runtime));
    });
    finished
        .recv_timeout(HANG_GUARD)
        .expect("the async test finished (a blocked runtime thread would hang it)")
}

fn futures_are_awaited_without_blocking_the_runtime() {
    for plan in PLANS {
        let client = start(plan);
        let (one, all) = on_one_thread_runtime(move |runtime| {
            runtime.block_on(async move {
                let one = client.submit(square, 7).await;
                let futures = (0..5).map(|x| client.submit(square, x));
                let all = client.gather_async(futures).await;
                (one, all)
            })
        });
        assert_eq!(one.unwrap(), 49, "{plan}");
        assert_eq!(all.unwrap(), vec![0, 1, 4, 9, 16], "{plan}");
    }
    for plan in PARALLEL_PLANS {
        let client = start(plan);
        let gate = scratch_path("async-gate");
        let gate_text = path_string(&gate);
        let future = client.submit(wait_for_file, gate_text.clone());
        let value = on_one_thread_runtime(move |runtime| {
            runtime.block_on(async move {
                // The awaiting task and the one opening the gate share the runtime's
                // only thread: if awaiting blocked it, the gate would never open.
                let waiter = tokio::spawn(async move { future.await });
                tokio::task::yield_now().await;
                tokio::spawn(async move { std::fs::write(&gate, b"open") })
                    .await
                    .expect("the opener ran")
                    .expect("the gate file is written");
                waiter.await.expect("the waiter ran")
            })
        });
        assert_eq!(value.unwrap(), gate_text, "{plan}");
        let _ = std::fs::remove_file(&gate_text);
    }
}

fn compute_returns_outputs_of_different_types_running_shared_parts_once() {
    for plan in PLANS {
        let client = start(plan);
        let counter = scratch_path("loads");
        let data = delayed(load, (path_string(&counter), 10));
        let sum = delayed(total, &data);
        let text = delayed(describe, &data);
        let max = delayed(largest, &data);
        let (sum, text, max): (u64, String, Option<u64>) =
            compute(&client, (&sum, &text, &max)).unwrap();
        assert_eq!(
            (sum, text.as_str(), max),
            (45, "10 values", Some(9)),
            "{plan}"
        );
        let loads = std::fs::read(&counter)
            .map(|bytes| bytes.len())
            .unwrap_or(0);
        assert_eq!(loads, 1, "{plan}: the shared load runs once");

        let futures = persist(&client, (&data, &delayed(total, &data)));
        let (values, sum) = futures;
        assert_eq!(sum.value().unwrap(), 45, "{plan}: persist of a tuple");
        assert_eq!(values.value().unwrap().len(), 10, "{plan}");
        assert_eq!(compute(&client, &data).unwrap().len(), 10, "{plan}: one");
        let _ = std::fs::remove_file(&counter);
    }
}

fn the_readme_holds_the_doctested_calls_section() {
    let readme = include_str!("../../../README.md");
    let section = include_str!("../docs/calls.md");
    assert!(
        readme.contains(section),
        "README.md must contain crates/wherever/docs/calls.md verbatim (its doctested copy)"
    );
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 7] = [
        (
            "the_readme_holds_the_doctested_calls_section",
            the_readme_holds_the_doctested_calls_section,
        ),
        (
            "inserting_a_call_before_a_seeded_call_does_not_change_its_results",
            inserting_a_call_before_a_seeded_call_does_not_change_its_results,
        ),
        (
            "recomputing_a_graph_gives_the_same_random_values",
            recomputing_a_graph_gives_the_same_random_values,
        ),
        (
            "a_future_is_read_more_than_once_and_through_clones",
            a_future_is_read_more_than_once_and_through_clones,
        ),
        (
            "a_deadline_gives_a_timeout_error_and_the_future_stays_usable",
            a_deadline_gives_a_timeout_error_and_the_future_stays_usable,
        ),
        (
            "futures_are_awaited_without_blocking_the_runtime",
            futures_are_awaited_without_blocking_the_runtime,
        ),
        (
            "compute_returns_outputs_of_different_types_running_shared_parts_once",
            compute_returns_outputs_of_different_types_running_shared_parts_once,
        ),
    ];
    harness::run_checks(&checks)
}
