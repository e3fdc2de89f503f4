//! `wherever run --plan PLAN -- PROGRAM ARGS...`: starts a scheduler and the
//! workers of PLAN's first level (`processes:N[,mem=SIZE]`: N worker processes of
//! PROGRAM, a program whose `main` has `#[wherever::main]`; also `ssh:`, `slurm`
//! and `slurm:jobs=`, read by the library's plan parser), runs
//! PROGRAM as the scheduler's client with `WHEREVER_PLAN=tcp://ADDRESS`, shows one
//! progress bar over all its tasks on stderr when stderr is a terminal, serves the
//! dashboard, and exits with PROGRAM's exit status.
//!
//! The cluster's secret reaches PROGRAM in a file only its owner can read, named by
//! `WHEREVER_SECRET_FILE` (as a `tcp://` client finds it), and the workers on their
//! standard input (as `processes:N` hands it over): never in an argument.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wherever::{Level, Plan};
use wherever_cluster::auth::SECRET_FILE_VARIABLE;
use wherever_cluster::launcher::{
    advertised_address, join_host_port, LaunchStatus, LaunchedWorkers, WorkerLaunch,
};
use wherever_cluster::server::{serve_until, shutdown_channel, ServerOptions, GOODBYE_WAIT};
use wherever_cluster::{ClusterRuntime, Secret};
use wherever_core::events::{Event, EventBus, Subscription};

/// The plan `wherever run` starts, parsed by the library's own parser (so every
/// plan string a program takes means the same here): its first level starts
/// worker processes of the program, and the levels after it are the plan the
/// program's tasks submit their own tasks under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan(Plan);

impl RunPlan {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.0
    }
}

/// The plans `wherever run` can start, for its error messages.
const RUN_PLANS: &str = "processes[:N][,mem=SIZE], ssh:HOST[*N],...[;mem=SIZE], \
                         slurm[:KEY=VALUE,...] (inside an allocation) or slurm:jobs=N,...";

/// Parses `--plan` of `wherever run`: any plan string the library takes whose
/// first level starts worker processes; an error says what is wrong.
pub fn parse_run_plan(text: &str) -> Result<RunPlan, String> {
    let plan = Plan::parse(text).map_err(|e| e.to_string())?;
    let first = plan.first();
    let refusal = match first {
        Level::Sequential | Level::Threads(_) => Some(
            "runs the tasks inside the program itself, which needs no `wherever run`: run the \
             program with this plan directly",
        ),
        Level::Tcp { .. } => Some(
            "names a running scheduler: run the program with this plan directly, and its \
             workers with `wherever worker`",
        ),
        Level::Mpi(..) => Some(
            "makes the ranks of an `mpirun` the workers: run the program itself under \
             `mpirun` with this plan",
        ),
        Level::SlurmJobs(spec) if spec.is_per_task() => Some(
            "starts a job per task of the program, which only the program can do: run the \
             program with this plan directly",
        ),
        _ => None,
    };
    match refusal {
        Some(why) => Err(format!(
            "`{first}` is not a plan `wherever run` starts: it {why}; `wherever run` takes \
             {RUN_PLANS}"
        )),
        None => Ok(RunPlan(plan)),
    }
}

/// What a bar counts: items of the tasks submitted, and of those ended.
#[derive(Default)]
struct Tally {
    items: HashMap<u64, u64>,
    total: u64,
    done: u64,
    failed: u64,
}

impl Tally {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::TaskSubmitted { task, items, .. } => {
                let items = (*items).max(1);
                self.items.insert(*task, items);
                self.total += items;
            }
            Event::TaskFinished { task, .. } => {
                self.done += self.items.remove(task).unwrap_or(0);
            }
            Event::TaskFailed { task, .. } => {
                let items = self.items.remove(task).unwrap_or(0);
                self.done += items;
                self.failed += items;
            }
            _ => {}
        }
    }
}

/// Draws a bar from `events` until `stop` is set.
fn show_progress(events: Subscription, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("run [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
    bar.set_style(style);
    let mut tally = Tally::default();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(first) = events.recv_timeout(Duration::from_millis(200)) {
            tally.apply(&first.event);
            for stamped in events.drain() {
                tally.apply(&stamped.event);
            }
            bar.set_length(tally.total);
            bar.set_position(tally.done);
            if tally.failed > 0 {
                bar.set_message(format!("{} failed", tally.failed));
            }
        }
    }
    bar.finish();
}

/// How long `wherever run` waits for its workers to join before it starts the
/// program anyway.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Reads `joined` until `workers` workers joined or `wait` passed; an error if
/// the launch failed meanwhile (a host that cannot be reached).
fn wait_for_workers(
    joined: &Subscription,
    launched: &mut dyn LaunchedWorkers,
    workers: usize,
    wait: Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    let (mut seen, mut expected, mut lost_reported) = (0, workers, 0);
    while seen < expected && std::time::Instant::now() < deadline {
        match launched.poll() {
            LaunchStatus::Failed(reason) => anyhow::bail!("cannot start the workers: {reason}"),
            // (A `partial` ssh plan: the other hosts go on.)
            LaunchStatus::Lost { workers: lost, .. } if lost > lost_reported => {
                lost_reported = lost;
                expected = workers.saturating_sub(lost);
            }
            LaunchStatus::Lost { .. } | LaunchStatus::Running => {}
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if let Some(stamped) = joined.recv_timeout(left.min(Duration::from_millis(200))) {
            if matches!(stamped.event, Event::WorkerJoined { .. }) {
                seen += 1;
            }
        }
    }
    Ok(())
}

/// A file holding the secret, removed when dropped.
struct SecretFile(PathBuf);

impl SecretFile {
    fn write(secret: &Secret) -> anyhow::Result<SecretFile> {
        let path = std::env::temp_dir().join(format!(
            "wherever-run-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(
                wherever_cluster::auth::random_bytes()[..8]
                    .try_into()
                    .expect("8 bytes")
            )
        ));
        secret.write_new_file(&path)?;
        Ok(SecretFile(path))
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `program` under `plan` (see the module's documentation); returns its exit
/// status. `events` is the scheduler's stream (the dashboard, if any, reads it).
pub fn run(plan: RunPlan, program: &[OsString], events: EventBus) -> anyhow::Result<i32> {
    let (executable, args) = program.split_first().context("no program to run")?;
    let plan = plan.plan();
    let launcher = plan
        .first()
        .worker_launcher()
        .map_err(|reason| anyhow::anyhow!("cannot start the plan `{plan}`: {reason}"))?
        .with_context(|| format!("the plan `{plan}` starts no workers"))?;
    let runtime = ClusterRuntime::start().context("cannot start the I/O thread")?;
    let handle = runtime.handle().clone();
    let scope = launcher.bind_scope();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind(scope.bind_address()))
        .with_context(|| format!("cannot open a port on {}", scope.bind_address()))?;
    let port = listener.local_addr()?.port();
    let host =
        advertised_address(scope, launcher.peer_hint().as_deref()).map_err(anyhow::Error::msg)?;
    let secret = Secret::generate();
    let secret_file = SecretFile::write(&secret)?;
    let options = ServerOptions {
        events: events.clone(),
        ..ServerOptions::default()
    };
    let (shutdown, signal) = shutdown_channel();
    handle.spawn(serve_until(listener, secret.clone(), options, signal));
    let launch = WorkerLaunch {
        scheduler: join_host_port(&host, port),
        secret_hex: secret.to_hex(),
        executable: PathBuf::from(executable),
        threads: 1,
        env: Vec::new(),
    };
    let workers = launcher.workers();
    let joined = events.subscribe(4 * workers + 64);
    let mut launched = {
        let _context = handle.enter();
        launcher.launch(&launch, &handle).map_err(|reason| {
            anyhow::anyhow!(
                "cannot start the workers ({}): {reason}",
                executable.to_string_lossy()
            )
        })?
    };
    // As `processes:N` does, start the program once the workers are up (its first
    // tasks' time is not start-up time); a slow start goes on in the background.
    if let Err(error) = wait_for_workers(&joined, launched.as_mut(), workers, STARTUP_WAIT) {
        launched.stop();
        return Err(error);
    }
    launched.started(&handle);
    drop(joined);
    // The program dials the scheduler here, and its tasks' own tasks run under
    // the plan's inner levels.
    let mut client_plan = format!("tcp://{}", join_host_port(scope.loopback_host(), port));
    if let Some(inner) = plan.inner() {
        client_plan = format!("{client_plan}/{inner}");
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (events, stop) = (events.subscribe(65_536), stop.clone());
            std::thread::spawn(move || show_progress(events, stop))
        };
        (stop, reader)
    });
    let mut command = std::process::Command::new(executable);
    command
        .args(args)
        .env("WHEREVER_PLAN", &client_plan)
        .env(SECRET_FILE_VARIABLE, &secret_file.0);
    if bar.is_some() && std::env::var_os("WHEREVER_PROGRESS").is_none() {
        // One bar: ours, over all the program's tasks.
        command.env("WHEREVER_PROGRESS", "0");
    }
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", executable.to_string_lossy()));
    if let Some((stop, reader)) = bar {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = reader.join();
    }
    launched.stopping();
    shutdown.goodbye(GOODBYE_WAIT);
    launched.stop();
    Ok(status?.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_string_that_starts_workers_is_taken_as_the_library_reads_it() {
        for text in [
            "processes:2",
            " processes:3 ",
            "processes",
            "processes:2,mem=300MB",
            "processes:mem=1GiB",
            "processes:2/threads:2",
            "ssh:h1*2,h2;mem=2GB;partial",
            "slurm:jobs=2,partition=debug,mem=1G",
            "slurm:ntasks=2",
        ] {
            let parsed = parse_run_plan(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.plan(), &Plan::parse(text).unwrap(), "{text}");
        }
        let parsed = parse_run_plan("processes:2,mem=300MB").unwrap();
        let Level::Processes(_, options) = parsed.plan().first() else {
            panic!("a processes level");
        };
        assert_eq!(options.memory_limit, Some(300_000_000));
    }

    #[test]
    fn malformed_plans_get_the_library_s_reason() {
        for (bad, reason) in [
            ("processes:0", "worker count from 1 to 65535, got 0"),
            ("processes:x", "got `x`"),
            ("processes:", "nothing follows"),
            ("processes:99999", "got `99999`"),
            ("processes:2,mem=", "mem=SIZE"),
            ("processes:2,mem=12XB", "mem=SIZE"),
            ("processes:2,mem=1GB,mem=2GB", "given twice"),
            (
                "processes:2,memory=1GB",
                "unknown processes option `memory=1GB`",
            ),
            ("processes:2/", "a nested level is empty"),
            ("ssh:h1;mem=lots", "ssh option mem=SIZE"),
            ("proc:2", "did you mean `processes`"),
            ("", "the plan is empty"),
        ] {
            let error = parse_run_plan(bad).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
            assert!(error.contains("invalid plan"), "{bad}: {error}");
        }
    }

    #[test]
    fn plans_that_start_no_workers_of_their_own_are_refused_with_a_reason() {
        for (other, reason) in [
            ("threads:2", "inside the program itself"),
            ("sequential", "inside the program itself"),
            ("tcp://127.0.0.1:8786", "`wherever worker`"),
            ("mpi:2", "under `mpirun`"),
            ("slurm:per-task", "a job per task"),
        ] {
            let error = parse_run_plan(other).unwrap_err();
            assert!(error.contains(reason), "{other}: {error}");
            assert!(
                error.contains("processes[:N][,mem=SIZE]"),
                "{other}: {error}"
            );
        }
    }

    #[test]
    fn the_tally_counts_items_of_chunks_and_failures() {
        let mut tally = Tally::default();
        for (task, items) in [(1, 10), (2, 1)] {
            tally.apply(&Event::TaskSubmitted {
                task,
                name: "f".into(),
                group: "f".into(),
                items,
            });
        }
        tally.apply(&Event::TaskFinished {
            task: 1,
            worker: None,
            duration: Duration::ZERO,
            result_bytes: 0,
        });
        tally.apply(&Event::TaskFailed {
            task: 2,
            worker: None,
            kind: wherever_core::events::FailureKind::Failed,
        });
        assert_eq!((tally.total, tally.done, tally.failed), (11, 11, 1));
    }
}
