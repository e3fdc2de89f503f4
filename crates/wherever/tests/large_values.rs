//! Values larger than a frame (256 MiB) under `processes:2` with real worker
//! processes: a 600 MB result, a 300 MB argument and a 300 MB scattered value
//! arrive byte for byte (streamed in chunks), and a value over a configured limit
//! (`WHEREVER_MAX_VALUE`) fails its own task with its size and the limit while
//! the others go on. Like `processes.rs`, this test binary is its own worker
//! executable. (The same checks against a `wherever scheduler`: the CLI's
//! `large_values` test.)

#[path = "common/harness.rs"]
mod harness;
// The example uses the client-only limit check too; this test cannot (its workers
// share its environment).
#[allow(dead_code)]
#[path = "common/large_value.rs"]
mod large_value;

use large_value::{check_argument, check_limit_of_1_mib, check_result, check_scatter, MB};
use wherever::prelude::*;

fn a_600_mb_result_arrives_whole() {
    let (client_peak, worker_peak) = check_result(&start(), 600 * MB);
    eprintln!(
        "600 MB result: peak RSS {client_peak} MiB in the client, {worker_peak} MiB in \
         the worker"
    );
}

fn a_300_mb_argument_arrives_whole() {
    check_argument(&start(), 300 * MB);
}

fn a_300_mb_scatter_reaches_every_worker() {
    check_scatter(&start(), 300 * MB);
}

/// Runs last: it sets `WHEREVER_MAX_VALUE` for this process and its workers.
fn a_value_over_the_limit_fails_its_task_alone() {
    std::env::set_var("WHEREVER_MAX_VALUE", "1M");
    check_limit_of_1_mib(&start());
}

fn start() -> Client {
    Plan::parse("processes:2").unwrap().start().unwrap()
}

#[wherever::main]
fn main() {
    let checks: [(&str, fn()); 4] = [
        (
            "a_600_mb_result_arrives_whole",
            a_600_mb_result_arrives_whole,
        ),
        (
            "a_300_mb_argument_arrives_whole",
            a_300_mb_argument_arrives_whole,
        ),
        (
            "a_300_mb_scatter_reaches_every_worker",
            a_300_mb_scatter_reaches_every_worker,
        ),
        (
            "a_value_over_the_limit_fails_its_task_alone",
            a_value_over_the_limit_fails_its_task_alone,
        ),
    ];
    harness::run_checks(&checks)
}
