//! The issue items "task functions stay callable", "errors that keep the rest", "a
//! smaller error type" and "flags the ecosystem's way" under `sequential`, `threads:2` and `processes:2`. The test
//! binary is its own worker executable (see `harness = false` in Cargo.toml).

#[path = "common/harness.rs"]
mod harness;

use clap::Parser;
use wherever::prelude::*;
use wherever::{PlanArgs, TaskErrorKind};

const PLANS: [&str; 3] = ["sequential", "threads:2", "processes:2"];

const SCHEDULINGS: [Scheduling; 4] = [
    Scheduling::Auto,
    Scheduling::Static,
    Scheduling::Dynamic,
    Scheduling::ChunkSize(match std::num::NonZeroUsize::new(7) {
        Some(size) => size,
        None => unreachable!(),
    }),
];

/// Fails on multiples of 17, panics on 40, else a draw from the item's stream.
#[wherever::task]
fn fragile(x: u64, rng: &mut TaskRng) -> Result<(u64, u64), String> {
    assert!(x != 40, "forty is cursed");
    if x > 0 && x.is_multiple_of(17) {
        return Err(format!("{x} is a multiple of 17"));
    }
    Ok((x, rng.random::<u64>()))
}

/// A user function returning `wherever::Result`, linted by the workspace's clippy
/// run with default lints (no `result_large_err`).
fn keep_going(
    plan: &str,
    scheduling: Scheduling,
) -> wherever::Result<Vec<Result<(u64, u64), TaskError>>> {
    let client = Plan::parse(plan)?.start()?.with_seed(3);
    Ok(client.map_results_with(fragile, 0..50, scheduling))
}

/// A user function returning `Result<_, TaskError>`, linted likewise.
fn first_failure(plan: &str) -> Result<Vec<(u64, u64)>, TaskError> {
    let client = Plan::parse(plan).expect("plan").start().expect("start");
    client.with_seed(3).map(fragile, 0..50)
}

fn map_results_keeps_the_good_items_under_every_plan_and_chunking() {
    let reference = keep_going("sequential", Scheduling::Dynamic).unwrap();
    for plan in PLANS {
        for scheduling in SCHEDULINGS {
            let outcomes = keep_going(plan, scheduling).unwrap();
            assert_eq!(outcomes.len(), 50);
            for (i, outcome) in outcomes.iter().enumerate() {
                match outcome {
                    Ok(value) => assert_eq!(Ok(value), reference[i].as_ref(), "{plan} {i}"),
                    Err(error) => {
                        assert_eq!(error.item, Some(i as u64), "{plan} {scheduling:?}: {error}");
                        assert_eq!(error.position, i as u64, "{error}");
                        let expected = if i == 40 {
                            TaskErrorKind::Panicked
                        } else {
                            TaskErrorKind::Failed
                        };
                        assert_eq!(error.kind, expected, "{plan}: {error}");
                        assert!(
                            error
                                .to_string()
                                .contains(&format!("(item {i} of this map)")),
                            "{error}"
                        );
                    }
                }
            }
            let failed: Vec<usize> = (0..50).filter(|&i| outcomes[i].is_err()).collect();
            assert_eq!(failed, vec![17, 34, 40], "{plan} {scheduling:?}");
        }
    }
}

fn a_failing_map_names_the_item_within_the_call() {
    for plan in PLANS {
        let client = start(plan).with_seed(1);
        // `Result<_, String>`: the result type says `Err` is a failure.
        let first: TaskFuture<(u64, u64)> = client.submit(fragile, 1); // takes position 0
        first.value().unwrap();
        let outcome: Result<Vec<(u64, u64)>, _> =
            client.map_with(fragile, 10..60, Scheduling::chunk_size(5).unwrap());
        let error = outcome.unwrap_err();
        assert_eq!(
            error.item,
            Some(7),
            "{plan}: 17 is item 7 of 10..60: {error}"
        );
        assert_eq!(error.position, 8, "{plan}: {error}");
        assert!(
            error.to_string().contains("#8 (item 7 of this map) failed"),
            "{error}"
        );
        let error = first_failure(plan).unwrap_err();
        assert_eq!(error.item, Some(17), "{plan}: {error}");
    }
}

fn gather_results_returns_every_outcome() {
    for plan in PLANS {
        let client = start(plan).with_seed(3);
        let futures: Vec<_> = (30..45).map(|x| client.submit(fragile, x)).collect();
        let outcomes = client.gather_results(futures);
        let failed: Vec<u64> = (30..45)
            .filter(|&x| outcomes[x as usize - 30].is_err())
            .collect();
        assert_eq!(failed, vec![34, 40], "{plan}");
        assert!(
            client.gather(client_futures(&client)).is_err(),
            "gather stops at the first error"
        );
        let good: Vec<(u64, u64)> = outcomes.into_iter().flatten().collect();
        assert_eq!(good.len(), 13, "{plan}");
    }
}

fn client_futures(client: &Client) -> Vec<TaskFuture<(u64, u64)>> {
    (33..36).map(|x| client.submit(fragile, x)).collect()
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    wherever: PlanArgs,
    #[arg(long, default_value_t = 8)]
    tasks: u64,
}

fn plan_args_start_every_plan_with_its_seed() {
    let reference: Vec<(u64, u64)> = start("sequential").with_seed(9).map(fragile, 1..9).unwrap();
    for plan in PLANS {
        let cli =
            Cli::try_parse_from(["study", "--plan", plan, "--seed", "9", "--tasks", "8"]).unwrap();
        let client = cli.wherever.start_or("threads").unwrap();
        assert_eq!(client.plan().to_string(), plan);
        let results: Vec<(u64, u64)> = client.map(fragile, 1..=cli.tasks).unwrap();
        assert_eq!(results, reference, "{plan}");
    }
    assert!(Cli::try_parse_from(["study", "--paln", "sequential"]).is_err());
}

#[wherever::task]
fn square(x: u64) -> u64 {
    x * x
}

#[wherever::task]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

/// Draws with the stream the runtime passes (or the caller's own, called directly).
#[wherever::task]
fn noisy(x: u64, scale: u64, rng: &mut TaskRng) -> u64 {
    x * scale + rng.random_range(0..1000)
}

/// Reads the context the runtime passes (or the caller's own, called directly).
#[wherever::task]
fn where_am_i(x: u64, ctx: &mut TaskContext) -> (u64, u64) {
    (x, ctx.position())
}

/// A `Result` that is the task's value, not a failure.
#[wherever::task(result_is_value)]
fn checked_half(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

/// Not a task: runs on local plans as a closure would.
fn triple(x: u64) -> u64 {
    3 * x
}

fn task_functions_stay_callable_and_run_as_tasks_on_every_plan() {
    // Called directly, as in the user's own code and unit tests.
    assert_eq!(square(3), 9);
    assert_eq!(add(2, 3), 5);
    let mut rng = wherever::StreamKey::from_seed(4).stream(2);
    let direct = noisy(1, 10_000, &mut rng);
    let mut ctx = TaskContext::new(wherever::StreamKey::from_seed(4), true, 2);
    assert_eq!(where_am_i(5, &mut ctx), (5, 2));
    assert_eq!(checked_half(3), Err("3 is odd".to_string()));

    for plan in PLANS {
        let client = start(plan).with_seed(4);
        assert_eq!(client.submit(square, 7).value().unwrap(), 49, "{plan}");
        assert_eq!(client.submit(add, (2, 3)).value().unwrap(), 5, "{plan}");
        // The runtime passes stream 2 (position 2), as the direct call above used.
        assert_eq!(
            client.submit(noisy, (1, 10_000)).value().unwrap(),
            direct,
            "{plan}"
        );
        assert_eq!(
            client.submit(where_am_i, 5).value().unwrap(),
            (5, 3),
            "{plan}"
        );
        assert_eq!(client.map(square, 0..5).unwrap(), vec![0, 1, 4, 9, 16]);
        let x = client.submit(square, 3);
        let sum = client.submit(add, (&x, 1)).value().unwrap();
        assert_eq!(sum, 10, "{plan}");
        let lazy = delayed(add, (&delayed(square, 4), 2));
        assert_eq!(lazy.compute(&client).unwrap(), 18, "{plan}");
        let halves: Vec<Result<u64, String>> = client.map(checked_half, 1..5).unwrap();
        assert_eq!(
            halves,
            vec![Err("1 is odd".into()), Ok(1), Err("3 is odd".into()), Ok(2)]
        );
        let future = client.submit(triple, 2);
        if plan.starts_with("processes") {
            let error = future.value().unwrap_err();
            assert_eq!(error.kind, TaskErrorKind::Runtime, "{error}");
            assert_eq!(error.task, "api_plans::triple");
            assert!(error.message.contains("#[wherever::task]"), "{error}");
        } else {
            assert_eq!(future.value().unwrap(), 6, "{plan}");
        }
    }
}

fn start(plan: &str) -> Client {
    Plan::parse(plan).unwrap().start().unwrap()
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "task_functions_stay_callable_and_run_as_tasks_on_every_plan",
            task_functions_stay_callable_and_run_as_tasks_on_every_plan,
        ),
        (
            "map_results_keeps_the_good_items_under_every_plan_and_chunking",
            map_results_keeps_the_good_items_under_every_plan_and_chunking,
        ),
        (
            "a_failing_map_names_the_item_within_the_call",
            a_failing_map_names_the_item_within_the_call,
        ),
        (
            "gather_results_returns_every_outcome",
            gather_results_returns_every_outcome,
        ),
        (
            "plan_args_start_every_plan_with_its_seed",
            plan_args_start_every_plan_with_its_seed,
        ),
    ])
}
