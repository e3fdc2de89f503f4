//! A minimal test runner for `harness = false` test binaries that are their own
//! worker executables: runs each named check, reports like libtest, and answers
//! `--list` for `cargo nextest`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Runs the `checks` selected by the command line; exits with 1 if one failed.
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
    let filter: Option<String> = args.iter().find(|a| !a.starts_with('-')).cloned();
    let failed = AtomicU64::new(0);
    for (name, check) in checks {
        let skipped =
            filter
                .as_deref()
                .is_some_and(|f| if exact { name != &f } else { !name.contains(f) });
        if skipped {
            continue;
        }
        if std::panic::catch_unwind(check).is_ok() {
            println!("test {name} ... ok");
        } else {
            println!("test {name} ... FAILED");
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "test result: {}. {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    std::process::exit(i32::from(failed > 0))
}
