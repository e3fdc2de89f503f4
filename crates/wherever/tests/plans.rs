//! Plan strings through the public API: malformed ones give one-line errors saying
//! what was expected; plans without a runtime yet fail at `start()`, naming the plan;
//! the `--plan` / `--seed` helpers.

mod common;

use wherever::args::{flag_value, parse_seed};
use wherever::{available_cores, Error, Level, Plan, Workers};

/// The malformed strings of the issue, with what each error must say.
pub const MALFORMED: [(&str, &str); 6] = [
    (
        "threads:0",
        "expected threads:N with N a worker count from 1 to 65535, got 0",
    ),
    (
        "threads:-1",
        "expected threads:N with N a worker count from 1 to 65535, got `-1`",
    ),
    ("thread", "unknown level `thread` (did you mean `threads`?)"),
    (
        "processes:",
        "expected processes:N with N a worker count from 1 to 65535, but nothing follows `:`",
    ),
    (
        "tcp://nohost",
        "expected tcp://HOST:PORT with PORT from 1 to 65535",
    ),
    (
        "",
        "the plan is empty; expected sequential, threads[:N], processes[:N], tcp://HOST:PORT",
    ),
];

#[test]
fn malformed_plan_strings_give_one_line_errors_saying_what_was_expected() {
    for (input, expected) in MALFORMED {
        let error = Plan::parse(input).unwrap_err();
        assert_eq!(error.input, input);
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("invalid plan `{input}`: ")),
            "{message}"
        );
        assert!(message.contains(expected), "`{input}`: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
        assert_eq!(input.parse::<Plan>().unwrap_err(), error, "FromStr agrees");
        let wrapped: Error = error.into();
        assert_eq!(
            wrapped.to_string(),
            message,
            "wherever::Error shows it unchanged"
        );
    }
}

#[test]
fn every_level_of_the_grammar_parses_and_prints_back() {
    for text in [
        "sequential",
        "threads",
        "threads:4",
        "processes:2",
        "processes",
        "tcp://127.0.0.1:8786",
        "ssh:node1*8,node2",
        "slurm",
        "slurm:nodes=2,cpus=4",
        "mpi",
        "mpi:16",
        "processes:2/threads:2",
        "tcp://sched:8786/threads:3",
    ] {
        let plan = Plan::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.to_string(), text);
    }
    let nested = Plan::parse("processes:2/threads:2").unwrap();
    assert_eq!(
        nested.first(),
        &Level::Processes(Workers::Exactly(2), Default::default())
    );
    assert_eq!(nested.inner().unwrap(), Plan::threads(Some(2)));
    assert!(
        Plan::parse(" threads:2 ").is_ok(),
        "surrounding blanks are ignored"
    );
}

#[test]
fn plans_without_a_runtime_fail_at_start_naming_the_plan() {
    for text in ["ssh:node1*2", "mpi", "mpi:4", "slurm:nodes=2"] {
        let plan = Plan::parse(text).expect("parses");
        match plan.start() {
            Err(Error::Start {
                plan: named,
                reason,
            }) => {
                assert_eq!(named, text);
                assert!(!reason.is_empty());
                let message = Error::Start {
                    plan: named,
                    reason,
                }
                .to_string();
                assert!(message.starts_with(&format!("cannot start plan `{text}`: ")));
                assert!(!message.contains('\n'), "{message}");
            }
            Err(other) => panic!("`{text}`: expected Error::Start, got {other}"),
            Ok(client) => panic!("`{text}` started: {client:?}"),
        }
    }
}

#[test]
fn local_plans_start_with_the_requested_worker_count() {
    assert_eq!(Plan::sequential().start().unwrap().workers(), 1);
    assert_eq!(
        Plan::parse("threads:3").unwrap().start().unwrap().workers(),
        3
    );
    let default = Plan::parse("threads").unwrap().start().unwrap();
    assert_eq!(default.workers(), available_cores());
    assert!(default.workers() >= 1);
    assert_eq!(default.plan().to_string(), "threads");
}

fn args(list: &[&str]) -> Vec<String> {
    std::iter::once("program")
        .chain(list.iter().copied())
        .map(String::from)
        .collect()
}

#[test]
fn plan_and_seed_flags_feed_a_client() {
    let given = args(&["--n", "10", "--plan", "threads:2", "--seed=7", "extra"]);
    let plan = flag_value(given.clone(), "--plan").unwrap().unwrap();
    let seed = parse_seed(&flag_value(given, "--seed").unwrap().unwrap()).unwrap();
    let client = Plan::parse(&plan).unwrap().start().unwrap().with_seed(seed);
    assert_eq!(client.plan().to_string(), "threads:2");
    assert_eq!(client.workers(), 2);
    assert_eq!(seed, 7);
}

#[test]
fn flag_helpers_handle_repeats_missing_values_and_the_end_of_options() {
    let last = args(&["--plan", "sequential", "--plan=threads:1"]);
    assert_eq!(
        flag_value(last, "--plan").unwrap().as_deref(),
        Some("threads:1")
    );
    assert_eq!(
        flag_value(args(&["--", "--plan", "x"]), "--plan").unwrap(),
        None
    );
    assert_eq!(
        flag_value(args(&["--planning", "x"]), "--plan").unwrap(),
        None
    );
    assert_eq!(flag_value(args(&[]), "--seed").unwrap(), None);
    let missing = flag_value(args(&["--seed"]), "--seed").unwrap_err();
    assert!(matches!(missing, Error::Args(_)));
    assert_eq!(missing.to_string(), "`--seed` needs a value");
    let bad_seed = parse_seed("one").unwrap_err().to_string();
    assert!(
        bad_seed.starts_with("invalid seed `one`: expected a whole number"),
        "{bad_seed}"
    );
    let bad_plan = Plan::parse(
        &flag_value(args(&["--plan=thread"]), "--plan")
            .unwrap()
            .unwrap(),
    );
    assert!(bad_plan
        .unwrap_err()
        .to_string()
        .contains("did you mean `threads`?"));
}
