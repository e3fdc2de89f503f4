//! Resources (Dask's `resources=`) under `processes:2`: two workers of this test
//! binary, one advertising `gpu=1` through `WHEREVER_WORKER_RESOURCES`, the other
//! nothing. Tasks asking for a gpu run only on the first; a request no worker fits
//! fails at once with an error naming the resource and the most any worker has.
//! Local plans ignore resources.

#[path = "common/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Duration;
use wherever::prelude::*;
use wherever::{Error, TaskErrorKind};
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::worker::RESOURCES_VARIABLE;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The worker's process id and the resources it was started with.
#[wherever::task]
fn where_am_i(_i: u64) -> (u32, String) {
    (
        std::process::id(),
        std::env::var(RESOURCES_VARIABLE).unwrap_or_default(),
    )
}

/// The file whose creation makes a worker of this test process the gpu worker: the
/// first worker started after it was removed creates it and advertises `gpu=1`.
fn gpu_claim(test_process: u32) -> PathBuf {
    std::env::temp_dir().join(format!("wherever-gpu-claim-{test_process}"))
}

/// Before the process becomes a worker: the first worker of a cluster claims the gpu.
/// (Single-threaded here, so setting the variable is sound.)
fn claim_the_gpu_if_first_worker() {
    if std::env::var_os(WORKER_VARIABLE).is_none() {
        return;
    }
    let claim = gpu_claim(std::os::unix::process::parent_id());
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(claim)
        .is_ok()
    {
        std::env::set_var(RESOURCES_VARIABLE, "gpu=1");
    }
}

fn gpu_tasks_run_only_on_the_worker_with_a_gpu() {
    let claim = gpu_claim(std::process::id());
    let _ = std::fs::remove_file(&claim);
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let _ = std::fs::remove_file(&claim);
    assert_eq!(client.wait_for_workers(2, HANG_GUARD).unwrap(), 2);
    // Without resources, tasks spread over both workers.
    let anywhere: Vec<(u32, String)> = client.map(where_am_i, 0..40u64).unwrap();
    let plain_pid = anywhere
        .iter()
        .find(|(_, resources)| resources.is_empty())
        .map(|(pid, _)| *pid);
    let on_gpu = client.options().resources("gpu=1").unwrap();
    let futures: Vec<_> = (0..40u64).map(|i| on_gpu.submit(where_am_i, i)).collect();
    let placed: Vec<(u32, String)> = client.gather(futures).unwrap();
    let gpu_pid = placed[0].0;
    for (pid, resources) in &placed {
        assert_eq!(
            resources, "gpu=1",
            "a gpu task ran on a worker without a gpu"
        );
        assert_eq!(*pid, gpu_pid);
    }
    assert_ne!(plain_pid, Some(gpu_pid), "{anywhere:?}");
    // The typed builder and `map` carry them the same way.
    let typed = client.options().resource("gpu", 0.5);
    let mapped: Vec<(u32, String)> = typed.map(where_am_i, 0..20u64).unwrap();
    assert!(mapped.iter().all(|(pid, _)| *pid == gpu_pid), "{mapped:?}");
}

fn a_request_no_worker_fits_fails_at_once_naming_the_resource() {
    let claim = gpu_claim(std::process::id());
    let _ = std::fs::remove_file(&claim);
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let _ = std::fs::remove_file(&claim);
    assert_eq!(client.wait_for_workers(2, HANG_GUARD).unwrap(), 2);
    for (request, named, most) in [
        ("gpu=2", "gpu=2", "gpu=1"),
        ("tpu=1", "tpu=1", "tpu=0"),
        ("cpus=4", "cpus=4", "cpus=1"),
    ] {
        let asking = client.options().resources(request).unwrap();
        let error = asking
            .submit(where_am_i, 0)
            .value_timeout(HANG_GUARD)
            .unwrap_err();
        assert_eq!(error.kind, TaskErrorKind::Runtime, "{error}");
        let text = error.to_string();
        assert!(
            text.contains(named) && text.contains(most) && text.contains("where_am_i"),
            "{request}: {text}"
        );
    }
    // The cluster goes on.
    let on_gpu = client.options().resources("gpu=1").unwrap();
    assert_eq!(
        on_gpu
            .submit(where_am_i, 1)
            .value_timeout(HANG_GUARD)
            .unwrap()
            .1,
        "gpu=1"
    );
}

fn local_plans_ignore_resources_and_malformed_ones_are_errors() {
    for plan in ["sequential", "threads:2"] {
        let client = Plan::parse(plan).unwrap().start().unwrap();
        let asking = client.options().resources("gpu=8,mem=1TB").unwrap();
        let (pid, _) = asking
            .submit(where_am_i, 0)
            .value_timeout(HANG_GUARD)
            .unwrap()
            .clone();
        assert_eq!(pid, std::process::id(), "{plan}");
        let error = client.options().resources("gpu=1,,mem=2GB").unwrap_err();
        assert!(matches!(error, Error::Resources(_)), "{plan}: {error}");
        assert!(error.to_string().contains("is not NAME=AMOUNT"), "{error}");
    }
}

fn main() {
    claim_the_gpu_if_first_worker();
    wherever::init();
    harness::run_checks(&[
        (
            "gpu_tasks_run_only_on_the_worker_with_a_gpu",
            gpu_tasks_run_only_on_the_worker_with_a_gpu,
        ),
        (
            "a_request_no_worker_fits_fails_at_once_naming_the_resource",
            a_request_no_worker_fits_fails_at_once_naming_the_resource,
        ),
        (
            "local_plans_ignore_resources_and_malformed_ones_are_errors",
            local_plans_ignore_resources_and_malformed_ones_are_errors,
        ),
    ]);
}
