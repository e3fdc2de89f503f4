//! Failed tasks: a panic or an `Err` resolves the task's future to a `TaskError`
//! naming the task, its position, the worker and the message; the other tasks go on.

mod common;

use common::{host_name, start, LOCAL_PLANS};
use wherever::{Future, TaskError, TaskErrorKind};

#[wherever::task]
fn explode_on(x: u64, bad: u64) -> u64 {
    if x == bad {
        panic!("task input {x} exploded");
    }
    x + 100
}

#[wherever::task]
fn parse_number(text: String) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|e| format!("cannot parse {text:?}: {e}"))
}

/// Whether `std::backtrace::Backtrace::capture` records a backtrace in this process,
/// judged from the environment as the test started (never set here).
fn backtraces_enabled() -> Option<bool> {
    let setting = std::env::var("RUST_LIB_BACKTRACE")
        .or_else(|_| std::env::var("RUST_BACKTRACE"))
        .ok()?;
    Some(setting != "0")
}

fn assert_worker_label(error: &TaskError, plan: &str) {
    let worker = error.worker.as_deref().expect("the worker is named");
    let host = host_name();
    if plan == "sequential" {
        assert_eq!(worker, format!("the calling thread (sequential) on {host}"));
    } else {
        let threads = plan.strip_prefix("threads:").unwrap();
        let (index, rest) = worker
            .strip_prefix("thread ")
            .and_then(|w| w.split_once(' '))
            .unwrap_or_else(|| panic!("unexpected worker label {worker:?}"));
        let index: usize = index.parse().unwrap();
        assert!((1..=threads.parse().unwrap()).contains(&index), "{worker}");
        assert_eq!(rest, format!("of threads:{threads} on {host}"));
    }
}

#[test]
fn a_panicking_task_names_task_position_worker_and_message_and_others_go_on() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        let futures: Vec<_> = (0..6).map(|x| client.submit(explode_on, (x, 3))).collect();
        let outcomes: Vec<_> = futures.into_iter().map(|f| f.value()).collect();
        for (x, outcome) in outcomes.iter().enumerate() {
            if x != 3 {
                assert_eq!(outcome.as_ref().unwrap(), &(x as u64 + 100), "{plan}");
            }
        }
        let error = outcomes[3].as_ref().unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::Panicked, "{plan}");
        assert_eq!(error.task, "errors::explode_on");
        assert_eq!(error.position, 3);
        assert!(
            error.message.starts_with("task input 3 exploded at ")
                && error.message.contains("errors.rs"),
            "the message and where the panic happened: {}",
            error.message
        );
        assert_worker_label(error, plan);
        let shown = error.to_string();
        assert!(
            shown.starts_with("task `errors::explode_on` #3 panicked on "),
            "{shown}"
        );
        if let Some(enabled) = backtraces_enabled() {
            assert_eq!(error.backtrace.is_some(), enabled, "RUST_BACKTRACE decides");
        } else {
            assert!(error.backtrace.is_none(), "no backtrace unless asked for");
        }
    }
}

#[test]
fn a_panic_does_not_take_down_the_only_worker_thread() {
    let client = start("threads:1");
    for round in 0..3 {
        assert!(client.submit(explode_on, (1, 1)).value().is_err());
        assert_eq!(
            client.submit(explode_on, (round, 99)).value().unwrap(),
            round + 100
        );
    }
}

#[test]
fn an_err_returning_task_fails_with_its_message() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        // `Result<i64, String>`: the result type says `Err` is a failure.
        let good: Future<i64> = client.submit(parse_number, "-12".to_string());
        let bad: Future<i64> = client.submit(parse_number, "twelve".to_string());
        assert_eq!(good.value().unwrap(), -12);
        let error = bad.value().unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::Failed, "{plan}");
        assert_eq!(error.task, "errors::parse_number");
        assert_eq!(error.position, 1);
        assert_eq!(
            error.message,
            "cannot parse \"twelve\": invalid digit found in string"
        );
        assert!(
            error.backtrace.is_none(),
            "a returned error has no backtrace"
        );
        assert_worker_label(&error, plan);
    }
}

#[test]
fn gather_returns_the_failed_futures_error() {
    let client = start("threads:2");
    let futures: Vec<_> = (0..5).map(|x| client.submit(explode_on, (x, 2))).collect();
    let error = client.gather(futures).unwrap_err();
    assert_eq!(error.task, "errors::explode_on");
    assert_eq!(error.position, 2);
    assert_eq!(error.kind, TaskErrorKind::Panicked);

    // The first failure in input order is the one reported.
    let futures: Vec<Future<i64>> = ["1", "x", "y"]
        .map(|text| client.submit(parse_number, text.to_string()))
        .into_iter()
        .collect();
    let error = client.gather(futures).unwrap_err();
    assert_eq!(error.position, 6, "five tasks were submitted before");
    assert!(error.message.starts_with("cannot parse \"x\""));

    // And it converts into wherever's error with `?`.
    let through_question_mark = || -> wherever::Result<Vec<u64>> {
        Ok(client.gather([client.submit(explode_on, (0, 0))])?)
    };
    match through_question_mark() {
        Err(wherever::Error::Task(error)) => assert_eq!(error.task, "errors::explode_on"),
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn a_panicking_closure_is_named_closure() {
    let client = start("threads:2");
    let error = client
        .submit(|x: u64| -> u64 { panic!("closure got {x}") }, 4)
        .value()
        .unwrap_err();
    assert_eq!(error.task, "closure");
    assert_eq!(error.kind, TaskErrorKind::Panicked);
    assert!(
        error.message.starts_with("closure got 4"),
        "{}",
        error.message
    );
}
