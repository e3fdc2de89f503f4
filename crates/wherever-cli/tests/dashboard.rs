//! `wherever scheduler` serves the live dashboard, fed by the scheduler's events:
//! on by default, `--dashboard off` turns it off, malformed values are refused.

mod common;

use common::*;
use std::process::Command;

#[test]
fn the_scheduler_serves_a_dashboard_of_its_workers_and_tasks() {
    let dir = TempDir::new("dashboard-on");
    let scheduler = Scheduler::start(&dir.0);
    let link = scheduler.dashboard_link();
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    let once = scheduler.log().matches("dashboard at").count();
    assert_eq!(once, 1, "printed once");
    let mut worker = start_worker(&scheduler);
    wait_until("the worker on the dashboard", || {
        get_json(&link, "api/workers")["workers"]
            .as_array()
            .is_some_and(|workers| workers.len() == 1)
    });
    a_real_client_still_works(&scheduler);
    wait_until("tasks done on the dashboard", || {
        get_json(&link, "api/progress")["total"]["done"]
            .as_u64()
            .is_some_and(|done| done > 0)
    });
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn dashboard_off_starts_none() {
    let dir = TempDir::new("dashboard-off");
    let scheduler = Scheduler::start_with(&dir.0, &["--dashboard", "off"]);
    a_real_client_still_works(&scheduler);
    assert!(
        !scheduler.log().contains("dashboard at"),
        "{}",
        scheduler.log()
    );
}

#[test]
fn malformed_dashboard_flags_are_refused() {
    for args in [
        &["--dashboard", "maybe"][..],
        &["--dashboard-port", "0"],
        &["--dashboard-port", "http"],
    ] {
        let output = Command::new(wherever_binary())
            .args(["scheduler", "--port", "0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}
