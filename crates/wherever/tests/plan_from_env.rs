//! `WHEREVER_PLAN` and `WHEREVER_SEED`. Environment variables are process-wide, so
//! this file holds one test and is its own test binary: nothing else reads them
//! while it changes them.

use wherever::{seed_from_args, Plan};

#[test]
fn the_environment_chooses_the_plan_and_seed_and_malformed_values_are_errors() {
    std::env::remove_var("WHEREVER_PLAN");
    std::env::remove_var("WHEREVER_SEED");
    assert_eq!(
        Plan::from_env_or("threads:2").unwrap().to_string(),
        "threads:2"
    );
    assert_eq!(
        Plan::from_args_or("sequential").unwrap(),
        Plan::sequential()
    );
    assert_eq!(seed_from_args().unwrap(), None);

    std::env::set_var("WHEREVER_PLAN", "threads:3");
    assert_eq!(
        Plan::from_env_or("sequential").unwrap(),
        Plan::threads(Some(3))
    );
    assert_eq!(
        Plan::from_args_or("sequential").unwrap(),
        Plan::threads(Some(3))
    );
    let client = Plan::from_env_or("sequential").unwrap().start().unwrap();
    assert_eq!(client.workers(), 3);

    for input in [
        "threads:0",
        "threads:-1",
        "thread",
        "processes:",
        "tcp://nohost",
        "",
    ] {
        std::env::set_var("WHEREVER_PLAN", input);
        let error = Plan::from_env_or("threads").unwrap_err();
        assert_eq!(
            error,
            Plan::parse(input).unwrap_err(),
            "the variable is parsed as given"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("invalid plan `{input}`: ")),
            "{message}"
        );
        assert!(message.contains("expected"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        let through_args = Plan::from_args_or("threads").unwrap_err().to_string();
        assert_eq!(through_args, message);
    }
    std::env::remove_var("WHEREVER_PLAN");

    std::env::set_var("WHEREVER_SEED", "12345");
    assert_eq!(seed_from_args().unwrap(), Some(12345));
    std::env::set_var("WHEREVER_SEED", "-3");
    let message = seed_from_args().unwrap_err().to_string();
    assert!(message.starts_with("invalid seed `-3`"), "{message}");
    std::env::remove_var("WHEREVER_SEED");
}
