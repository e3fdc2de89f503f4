//! A small runner for the `harness = false` test binaries (which must have their
//! own `main`): runs each check in turn, honours a name filter and `--exact`, and
//! answers `--list` the way libtest does, so `cargo test` and `cargo nextest` both
//! run them.

/// Runs the `checks` the command line selects, reports like libtest, and exits
/// with status 1 if any failed.
pub fn run_checks(checks: &[(&str, fn())]) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in checks {
                println!("{name}: test");
            }
        }
        std::process::exit(0);
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    let mut failed = 0;
    for &(name, check) in checks {
        let selected = match filter {
            None => true,
            Some(f) if exact => name == f,
            Some(f) => name.contains(f.as_str()),
        };
        if !selected {
            continue;
        }
        match std::panic::catch_unwind(check) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "test result: {}. {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    std::process::exit(i32::from(failed > 0));
}
