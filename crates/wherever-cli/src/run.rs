//! `wherever run --plan processes:N -- PROGRAM ARGS...`: starts a scheduler and N
//! worker processes of PROGRAM (a program whose `main` has `#[wherever::main]`), runs
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
use wherever_cluster::auth::SECRET_FILE_VARIABLE;
use wherever_cluster::launcher::{Launcher, ProcessesLauncher, WorkerLaunch};
use wherever_cluster::server::{serve_until, shutdown_channel, ServerOptions, GOODBYE_WAIT};
use wherever_cluster::{ClusterRuntime, Secret};
use wherever_core::events::{Event, EventBus, Subscription};

/// The plans `wherever run` starts, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPlan {
    /// `processes:N`: N worker processes on this machine.
    Processes(usize),
}

/// Parses `--plan` of `wherever run`.
pub fn parse_run_plan(text: &str) -> Result<RunPlan, String> {
    let text = text.trim();
    let Some(count) = text.strip_prefix("processes:") else {
        return Err(format!(
            "`{text}` is not a plan `wherever run` starts: give `processes:N` (N worker \
             processes of the program on this machine)"
        ));
    };
    match count.trim().parse::<usize>() {
        Ok(workers) if (1..=1024).contains(&workers) => Ok(RunPlan::Processes(workers)),
        _ => Err(format!(
            "`{text}`: the number of worker processes must be a whole number from 1 to 1024"
        )),
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

/// Reads `joined` until `workers` workers joined or `wait` passed.
fn wait_for_workers(joined: &Subscription, workers: usize, wait: Duration) {
    let deadline = std::time::Instant::now() + wait;
    let mut seen = 0;
    while seen < workers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match joined.recv_timeout(left) {
            Some(stamped) if matches!(stamped.event, Event::WorkerJoined { .. }) => seen += 1,
            Some(_) => {}
            None => return,
        }
    }
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
    let RunPlan::Processes(workers) = plan;
    let runtime = ClusterRuntime::start().context("cannot start the I/O thread")?;
    let handle = runtime.handle().clone();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("cannot open a port on 127.0.0.1")?;
    let address = listener.local_addr()?;
    let secret = Secret::generate();
    let secret_file = SecretFile::write(&secret)?;
    let options = ServerOptions {
        events: events.clone(),
        ..ServerOptions::default()
    };
    let (shutdown, signal) = shutdown_channel();
    handle.spawn(serve_until(listener, secret.clone(), options, signal));
    let launch = WorkerLaunch {
        scheduler: address.to_string(),
        secret_hex: secret.to_hex(),
        executable: PathBuf::from(executable),
        threads: 1,
        env: Vec::new(),
    };
    let joined = events.subscribe(4 * workers + 64);
    let mut launched = {
        let _context = handle.enter();
        ProcessesLauncher { workers }
            .launch(&launch, &handle)
            .map_err(|reason| {
                anyhow::anyhow!(
                    "cannot start the workers ({}): {reason}",
                    executable.to_string_lossy()
                )
            })?
    };
    launched.started(&handle);
    // As `processes:N` does, start the program once the workers are up (its first
    // tasks' time is not start-up time); a slow start goes on in the background.
    wait_for_workers(&joined, workers, STARTUP_WAIT);
    drop(joined);
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
        .env("WHEREVER_PLAN", format!("tcp://{address}"))
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
    fn processes_plans_parse_and_others_are_refused_with_a_reason() {
        assert_eq!(parse_run_plan("processes:2"), Ok(RunPlan::Processes(2)));
        assert_eq!(parse_run_plan(" processes: 3 "), Ok(RunPlan::Processes(3)));
        for bad in [
            "processes:0",
            "processes:x",
            "processes:",
            "processes:99999",
        ] {
            let error = parse_run_plan(bad).unwrap_err();
            assert!(error.contains("whole number"), "{bad}: {error}");
        }
        for other in ["threads:2", "tcp://127.0.0.1:8786", "", "ssh:a,b"] {
            let error = parse_run_plan(other).unwrap_err();
            assert!(error.contains("processes:N"), "{other}: {error}");
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
