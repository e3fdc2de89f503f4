//! `wherever::PlanArgs` (feature `clap`) reads `WHEREVER_PLAN` and `WHEREVER_SEED`
//! when the flags are absent. Environment variables are process-wide, so this file
//! holds one test and is its own test binary.
#![cfg(feature = "clap")]

use clap::Parser;
use wherever::{Plan, PlanArgs};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    wherever: PlanArgs,
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
}

#[test]
fn the_environment_fills_in_absent_flags_and_malformed_values_are_errors() {
    std::env::remove_var("WHEREVER_PLAN");
    std::env::remove_var("WHEREVER_SEED");
    let none = parse(&[]).unwrap().wherever;
    assert_eq!(none, PlanArgs::default());
    assert_eq!(none.plan_or("threads:2").unwrap(), Plan::threads(Some(2)));

    std::env::set_var("WHEREVER_PLAN", "threads:3");
    std::env::set_var("WHEREVER_SEED", "12345");
    let from_env = parse(&[]).unwrap().wherever;
    assert_eq!(from_env.plan, Some(Plan::threads(Some(3))));
    assert_eq!(from_env.seed, Some(12345));
    assert_eq!(from_env.start_or("sequential").unwrap().workers(), 3);
    let flags_win = parse(&["--plan", "sequential", "--seed", "1"])
        .unwrap()
        .wherever;
    assert_eq!(flags_win.plan, Some(Plan::sequential()));
    assert_eq!(flags_win.seed, Some(1));

    std::env::set_var("WHEREVER_PLAN", "thread");
    let error = parse(&[]).unwrap_err().to_string();
    assert!(error.contains("invalid plan `thread`"), "{error}");
    std::env::remove_var("WHEREVER_PLAN");
    std::env::set_var("WHEREVER_SEED", "-3");
    let error = parse(&[]).unwrap_err().to_string();
    assert!(error.contains("invalid seed `-3`"), "{error}");
    std::env::remove_var("WHEREVER_SEED");
}
