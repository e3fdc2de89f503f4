//! Futures: `is_resolved`, `cancel`, `as_completed`, `wait`, and the bounded queue.
//! Pool threads are kept busy with tasks waiting at a [`Gate`], never with sleeps.

mod common;

use common::{start, Gate};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wherever::{as_completed, wait, Future, ReturnWhen, TaskErrorKind, QUEUE_BOUND};

/// A hang guard only: a wait that should end at once fails the test, rather than
/// hang it, if it has not ended after this long. No test asserts on time.
const LONG: Duration = Duration::from_secs(300);

/// Submits a task that waits at `gate` and then returns `value`.
fn gated(client: &wherever::Client, gate: &Gate, value: u64) -> Future<u64> {
    let gate = gate.clone();
    client.submit(
        move |v: u64| {
            gate.pass();
            v
        },
        value,
    )
}

#[test]
fn is_resolved_follows_the_task() {
    let client = start("threads:1");
    let gate = Gate::new();
    let blocked = gated(&client, &gate, 1);
    let queued = client.submit(|x: u64| x * 2, 21);
    gate.await_waiting(1);
    assert!(!blocked.is_resolved());
    assert!(!queued.is_resolved());
    gate.open();
    let outcome = wait(
        std::slice::from_ref(&queued),
        Some(LONG),
        ReturnWhen::AllCompleted,
    );
    assert_eq!(outcome.done, vec![0]);
    assert!(queued.is_resolved());
    assert!(
        blocked.is_resolved(),
        "threads:1 runs tasks in submission order"
    );
    assert_eq!(queued.value().unwrap(), 42);
    assert_eq!(blocked.value().unwrap(), 1);

    let eager = start("sequential").submit(|x: u64| x, 5);
    assert!(
        eager.is_resolved(),
        "sequential runs the task inside submit"
    );
}

#[test]
fn cancel_stops_a_queued_task_only() {
    let client = start("threads:1");
    let gate = Gate::new();
    let blocked = gated(&client, &gate, 1);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let queued = client.submit(
        move |x: u64| {
            flag.store(true, Ordering::SeqCst);
            x
        },
        2,
    );
    let after = client.submit(|x: u64| x, 3);
    gate.await_waiting(1);

    assert!(!blocked.cancel(), "a running task is not cancelled");
    assert!(queued.cancel(), "a queued task is cancelled");
    assert!(!queued.cancel(), "only once");
    assert!(
        queued.is_resolved(),
        "a cancelled future is resolved at once"
    );
    gate.open();

    assert_eq!(blocked.value().unwrap(), 1);
    assert_eq!(
        after.value().unwrap(),
        3,
        "tasks after a cancelled one still run"
    );
    assert!(!ran.load(Ordering::SeqCst), "the cancelled task never ran");
    let error = queued.value().unwrap_err();
    assert_eq!(error.kind, TaskErrorKind::Cancelled);
    assert_eq!((error.task.as_str(), error.position), ("closure", 1));

    let finished = client.submit(|x: u64| x, 4);
    wait(
        std::slice::from_ref(&finished),
        Some(LONG),
        ReturnWhen::AllCompleted,
    );
    assert!(!finished.cancel(), "a finished task is not cancelled");
    assert_eq!(finished.value().unwrap(), 4);
}

#[test]
fn as_completed_yields_each_future_once_in_completion_order() {
    let client = start("threads:3");
    let (first_gate, second_gate) = (Gate::new(), Gate::new());
    let futures = vec![
        gated(&client, &first_gate, 0),
        gated(&client, &second_gate, 1),
        client.submit(|x: u64| x, 2),
    ];
    let mut completed = as_completed(futures);
    assert_eq!(completed.size_hint(), (3, Some(3)));

    let next = completed.next().unwrap();
    assert!(next.is_resolved());
    assert_eq!(next.value().unwrap(), 2, "the ungated task finishes first");
    second_gate.open();
    assert_eq!(completed.next().unwrap().value().unwrap(), 1);
    first_gate.open();
    assert_eq!(completed.next().unwrap().value().unwrap(), 0);
    assert!(completed.next().is_none());
    assert!(as_completed(Vec::<Future<u64>>::new()).next().is_none());
}

#[test]
fn wait_for_the_first_returns_as_soon_as_one_is_done() {
    let client = start("threads:2");
    let gate = Gate::new();
    let futures = vec![gated(&client, &gate, 0), client.submit(|x: u64| x, 1)];
    let outcome = wait(&futures, None, ReturnWhen::FirstCompleted);
    assert_eq!(outcome.done, vec![1]);
    assert_eq!(outcome.not_done, vec![0]);
    assert!(
        !futures[0].is_resolved(),
        "wait never takes values or stops tasks"
    );
    gate.open();
    let outcome = wait(&futures, None, ReturnWhen::AllCompleted);
    assert_eq!(outcome.done.len(), 2);
    assert!(outcome.not_done.is_empty());
}

#[test]
fn wait_for_all_times_out_while_a_task_is_blocked() {
    let client = start("threads:2");
    let gate = Gate::new();
    let futures = vec![
        client.submit(|x: u64| x, 0),
        gated(&client, &gate, 1),
        client.submit(|x: u64| x, 2),
    ];
    gate.await_waiting(1);
    // Let the ungated tasks end first, so the timed wait below knows what to find.
    for index in [0, 2] {
        wait(&futures[index..=index], None, ReturnWhen::AllCompleted);
    }
    let outcome = wait(&futures, Some(Duration::ZERO), ReturnWhen::AllCompleted);
    assert_eq!(outcome.not_done, vec![1], "the blocked task is not done");
    assert_eq!(outcome.done, vec![0, 2], "in the order they were seen");

    let outcome = wait(
        &futures[1..2],
        Some(Duration::ZERO),
        ReturnWhen::FirstCompleted,
    );
    assert!(outcome.done.is_empty());
    assert_eq!(outcome.not_done, vec![0]);

    gate.open();
    let outcome = wait(&futures, None, ReturnWhen::AllCompleted);
    assert!(outcome.not_done.is_empty());
    let values: Vec<u64> = futures.into_iter().map(|f| f.value().unwrap()).collect();
    assert_eq!(values, vec![0, 1, 2]);

    let nothing = wait::<u64>(&[], Some(LONG), ReturnWhen::AllCompleted);
    assert!(nothing.done.is_empty() && nothing.not_done.is_empty());
}

#[test]
fn submit_blocks_only_when_the_queue_holds_queue_bound_jobs() {
    let client = start("threads:1");
    let gate = Gate::new();
    let blocked = gated(&client, &gate, 0);
    gate.await_waiting(1);
    // The only pool thread waits at the gate, so the queue fills up. Once it holds
    // QUEUE_BOUND jobs the gate opens; when the first queued job runs, the
    // submitter can have queued at most one more (the slot that job freed).
    let submitted = Arc::new(AtomicUsize::new(0));
    let seen_by_first_job = Arc::new(AtomicUsize::new(usize::MAX));
    let (full, filled) = std::sync::mpsc::channel();
    let submitter = {
        let (client, submitted) = (client.clone(), submitted.clone());
        let seen = seen_by_first_job.clone();
        std::thread::spawn(move || {
            let futures: Vec<Future<u64>> = (0..QUEUE_BOUND as u64 + 10)
                .map(|x| {
                    let (submitted_then, seen) = (submitted.clone(), seen.clone());
                    let future = client.submit(
                        move |x: u64| {
                            if x == 0 {
                                seen.store(submitted_then.load(Ordering::SeqCst), Ordering::SeqCst);
                            }
                            x
                        },
                        x,
                    );
                    if submitted.fetch_add(1, Ordering::SeqCst) + 1 == QUEUE_BOUND {
                        let _ = full.send(());
                    }
                    future
                })
                .collect();
            client.gather(futures).unwrap().len()
        })
    };
    filled
        .recv_timeout(LONG)
        .expect("the queue never held QUEUE_BOUND jobs");
    gate.open();
    assert_eq!(submitter.join().unwrap(), QUEUE_BOUND + 10);
    assert_eq!(blocked.value().unwrap(), 0);
    let seen = seen_by_first_job.load(Ordering::SeqCst);
    assert!(
        (QUEUE_BOUND..=QUEUE_BOUND + 1).contains(&seen),
        "the queue takes QUEUE_BOUND jobs, then submit waits; the first queued job \
         saw {seen} submitted"
    );
}
