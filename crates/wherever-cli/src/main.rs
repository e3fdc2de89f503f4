//! `wherever`: the command-line side of wherever.
//!
//! `wherever scheduler --port 8786` runs a scheduler that programs reach with the
//! plan `tcp://HOST:8786`, and that workers join when the user's own program is
//! started with `WHEREVER_WORKER=tcp://HOST:8786` (e.g. under `srun`), or with
//! `wherever worker tcp://HOST:8786 --threads 4 --resources gpu=2,mem=16GB -- ./program`.
//! On SIGTERM or Ctrl-C the scheduler tells its workers goodbye (they exit with
//! status 0 instead of waiting for it to come back) and exits.
//!
//! `wherever run --plan processes:4 -- ./program ARGS` starts a scheduler and four
//! workers of `./program`, runs it as their client with a progress bar and the
//! dashboard, and exits with its status (see [`run`]).

mod run;
mod slurm_script;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use wherever_cluster::auth::{default_secret_path, SECRET_FILE_VARIABLE};
use wherever_cluster::connection::{configured_max_value, parse_size};
use wherever_cluster::launcher::{interface_address, INTERFACE_VARIABLE, WORKER_VARIABLE};
use wherever_cluster::server::{serve_until, shutdown_channel, ServerOptions};
use wherever_cluster::worker::{parse_address, RESOURCES_VARIABLE, THREADS_VARIABLE};
use wherever_cluster::{Resources, Secret};
use wherever_core::events::EventBus;
use wherever_dashboard::feed::Feed;
use wherever_dashboard::{Dashboard, DEFAULT_PORT};

#[derive(Parser)]
#[command(name = "wherever", version, about = "Run wherever's scheduler")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a scheduler: clients connect with `--plan tcp://HOST:PORT`, workers by
    /// starting the same program with `WHEREVER_WORKER=tcp://HOST:PORT`.
    Scheduler {
        /// The port to listen on (0: any free port, printed at start).
        #[arg(long, default_value_t = 8786)]
        port: u16,
        /// The address to listen on; 0.0.0.0 to accept workers from other machines
        /// (default: 127.0.0.1, or the address `--interface` names).
        #[arg(long)]
        host: Option<String>,
        /// Listen on this network interface (e.g. `eth0`, `ib0`) or IP address, as
        /// Dask's `--interface`: the address workers and clients dial. Default:
        /// $WHEREVER_INTERFACE (same meaning) when `--host` is not given.
        #[arg(long, value_parser = parse_interface, conflicts_with = "host")]
        interface: Option<String>,
        /// The file holding the cluster secret (created with a fresh secret if
        /// missing; refused unless private to its owner, like an SSH key: mode
        /// 600); default: $WHEREVER_SECRET_FILE, else ~/.wherever/secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Seconds of silence after which a worker or client is considered dead
        /// (every peer sends a heartbeat after 2 s with nothing else to send).
        #[arg(long, default_value_t = 30)]
        heartbeat_timeout: u64,
        /// The largest value (task arguments, scattered value, result) the cluster
        /// takes, in bytes or with a K, M or G suffix; announced to every client
        /// and worker, which fail a task whose value is larger. Default:
        /// $WHEREVER_MAX_VALUE, else 4G.
        #[arg(long, value_parser = parse_max_value)]
        max_value: Option<u64>,
        /// The live dashboard (task stream, progress per task name, workers) on
        /// 127.0.0.1:8787 or the next free port: `on` or `off`. Default:
        /// $WHEREVER_DASHBOARD, else on.
        #[arg(long, value_parser = parse_on_off)]
        dashboard: Option<bool>,
        /// The first port the dashboard tries. Default: $WHEREVER_DASHBOARD_PORT,
        /// else 8787.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        dashboard_port: Option<u16>,
    },
    /// Run PROGRAM (a program of yours whose `main` has `#[wherever::main]`) as a
    /// worker of the scheduler at ADDRESS, as Dask's `dask-worker`: it is started with
    /// WHEREVER_WORKER, WHEREVER_WORKER_THREADS and WHEREVER_WORKER_RESOURCES set, and
    /// this command exits with its status.
    Worker {
        /// The scheduler: tcp://HOST:PORT.
        #[arg(value_parser = parse_scheduler_address)]
        address: String,
        /// Task threads the worker runs (default 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        threads: Option<u32>,
        /// Resources the worker advertises, e.g. `gpu=2,mem=16GB,licence=1`: a task
        /// asking for some (`client.options().resources("gpu=1")`) runs only on a
        /// worker with them free. Without `cpus`, one cpu per thread.
        #[arg(long, value_parser = parse_resources)]
        resources: Option<Resources>,
        /// The program to run as a worker, and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        program: Vec<OsString>,
    },
    /// Print the batch script a `slurm:jobs=N,...` plan submits for each job, byte
    /// for byte (the scheduler's address and the secret file reach the jobs through
    /// sbatch's environment, so the script is the same for every run).
    SlurmScript {
        /// The plan, e.g. `slurm:jobs=2,partition=debug,time=00:30:00`.
        #[arg(long)]
        plan: String,
        /// The worker program (your program); default: a placeholder path.
        #[arg(long)]
        program: Option<PathBuf>,
    },
    /// Run PROGRAM (a program of yours whose `main` has `#[wherever::main]`) on a
    /// cluster started for it: a scheduler and the plan's workers (PROGRAM started
    /// as workers), PROGRAM as their client with WHEREVER_PLAN=tcp://ADDRESS, one
    /// progress bar over all its tasks on stderr when stderr is a terminal, and the
    /// dashboard. Exits with PROGRAM's exit status.
    Run {
        /// The plan, any plan string a program takes whose first level starts
        /// workers: `processes[:N][,mem=SIZE]` (N worker processes of PROGRAM on
        /// this machine, each with a memory limit), `ssh:HOST[*N],...[;mem=SIZE]`,
        /// `slurm[:KEY=VALUE,...]` (inside an allocation) or `slurm:jobs=N,...`;
        /// levels after `/` are the plan of the tasks PROGRAM's tasks submit.
        #[arg(long, value_parser = run::parse_run_plan)]
        plan: run::RunPlan,
        /// The live dashboard: `on` or `off`. Default: $WHEREVER_DASHBOARD, else on.
        #[arg(long, value_parser = parse_on_off)]
        dashboard: Option<bool>,
        /// The first port the dashboard tries. Default: $WHEREVER_DASHBOARD_PORT,
        /// else 8787.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        dashboard_port: Option<u16>,
        /// The program to run, and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        program: Vec<OsString>,
    },
}

/// Parses the scheduler address of `wherever worker`.
fn parse_scheduler_address(text: &str) -> Result<String, String> {
    parse_address(text).map(|_| text.to_string())
}

/// Parses `--resources`: `NAME=AMOUNT` items separated by commas.
fn parse_resources(text: &str) -> Result<Resources, String> {
    Resources::parse(text).map_err(|e| e.to_string())
}

/// Runs `program` as a worker of `address` and returns its exit code.
fn run_worker(
    address: &str,
    threads: Option<u32>,
    resources: Option<Resources>,
    program: &[OsString],
) -> anyhow::Result<i32> {
    let (executable, args) = program.split_first().context("no program to run")?;
    let mut command = std::process::Command::new(executable);
    command.args(args).env(WORKER_VARIABLE, address);
    if let Some(threads) = threads {
        command.env(THREADS_VARIABLE, threads.to_string());
    }
    if let Some(resources) = resources {
        command.env(RESOURCES_VARIABLE, resources.to_string());
    }
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", executable.to_string_lossy()))?;
    Ok(status.code().unwrap_or(1))
}

/// Parses `--interface`: an IP address or a network interface's name; its address.
fn parse_interface(text: &str) -> Result<String, String> {
    interface_address(text)
}

/// The address to listen on: `--interface`'s, else `--host`, else
/// $WHEREVER_INTERFACE's, else 127.0.0.1.
fn listen_host(host: Option<String>, interface: Option<String>) -> anyhow::Result<String> {
    if let Some(address) = interface.or(host) {
        return Ok(address);
    }
    match std::env::var(INTERFACE_VARIABLE) {
        Ok(chosen) => {
            interface_address(&chosen).map_err(|e| anyhow::anyhow!("{INTERFACE_VARIABLE}={e}"))
        }
        Err(_) => Ok("127.0.0.1".to_string()),
    }
}

/// Writes a line to stderr; a closed stderr (the terminal or the pipe that
/// started the scheduler is gone) is not an error: the scheduler goes on, and
/// still stops cleanly when told to.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Watches for SIGTERM and SIGINT (Ctrl-C) from the moment it is called (inside
/// the runtime); the returned future resolves on the first of them, and the
/// scheduler then ends normally. Called before the scheduler says where it
/// listens, so that a signal sent as soon as that line appears is never the
/// default action's (an abrupt exit) instead.
fn termination() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let watchers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut terminate), Ok(mut interrupt)) = watchers else {
            say("wherever scheduler: cannot watch for SIGTERM and SIGINT");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}

/// Parses `on` / `off` (and `1` / `0`, `true` / `false`, `yes` / `no`).
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(format!("`{text}` is neither `on` nor `off`")),
    }
}

/// Starts the dashboard `wherever scheduler` serves, fed by the scheduler's
/// events, unless `--dashboard off` or `WHEREVER_DASHBOARD=off` say not to.
fn start_dashboard(
    flag: Option<bool>,
    port: Option<u16>,
    events: &EventBus,
) -> anyhow::Result<Option<(Dashboard, Feed)>> {
    let on = match flag {
        Some(on) => on,
        None => match std::env::var("WHEREVER_DASHBOARD") {
            Ok(value) if !value.trim().is_empty() => {
                parse_on_off(&value).map_err(|e| anyhow::anyhow!("WHEREVER_DASHBOARD: {e}"))?
            }
            _ => true,
        },
    };
    if !on {
        return Ok(None);
    }
    let port = match port {
        Some(port) => port,
        None => match std::env::var("WHEREVER_DASHBOARD_PORT") {
            Ok(value) => value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .with_context(|| {
                    format!("WHEREVER_DASHBOARD_PORT is `{value}`: it must be a port number from 1 to 65535")
                })?,
            Err(_) => DEFAULT_PORT,
        },
    };
    let dashboard = Dashboard::start(port)?;
    let feed = Feed::start(events.subscribe(65_536), dashboard.sink())?;
    dashboard.announce();
    Ok(Some((dashboard, feed)))
}

/// Parses `--max-value`: bytes, or a number with a K, M or G suffix.
fn parse_max_value(text: &str) -> Result<u64, String> {
    parse_size(text).ok_or_else(|| format!("`{text}` is not a size (e.g. 512M, 4G)"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match Cli::parse().command {
        Commands::SlurmScript { plan, program } => {
            if program.is_none() {
                say(&format!(
                    "wherever slurm-script: no --program given; the script names {}",
                    slurm_script::PLACEHOLDER_PROGRAM
                ));
            }
            let script =
                slurm_script::script_for(&plan, program.as_deref()).map_err(anyhow::Error::msg)?;
            print!("{script}");
            Ok(())
        }
        Commands::Worker {
            address,
            threads,
            resources,
            program,
        } => std::process::exit(run_worker(&address, threads, resources, &program)?),
        Commands::Run {
            plan,
            dashboard,
            dashboard_port,
            program,
        } => {
            let events = EventBus::new();
            let dashboard = start_dashboard(dashboard, dashboard_port, &events)?;
            let status = run::run(plan, &program, events)?;
            drop(dashboard);
            std::process::exit(status)
        }
        Commands::Scheduler {
            port,
            host,
            interface,
            secret_file,
            heartbeat_timeout,
            max_value,
            dashboard,
            dashboard_port,
        } => {
            let events = EventBus::new();
            let _dashboard = start_dashboard(dashboard, dashboard_port, &events)?;
            let path = secret_file
                .or_else(|| std::env::var_os(SECRET_FILE_VARIABLE).map(PathBuf::from))
                .unwrap_or_else(default_secret_path);
            let host = listen_host(host, interface)?;
            let secret = Secret::read_or_create_file(&path)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                let address = listener.local_addr()?;
                let terminated = termination();
                eprintln!(
                    "wherever scheduler listening on tcp://{address} (secret file {})",
                    path.display()
                );
                let options = ServerOptions {
                    heartbeat_timeout: std::time::Duration::from_secs(heartbeat_timeout.max(1)),
                    max_value: max_value.unwrap_or_else(configured_max_value),
                    events,
                    ..ServerOptions::default()
                };
                let (shutdown, signal) = shutdown_channel();
                tokio::spawn(async move {
                    terminated.await;
                    say("wherever scheduler: stopping; telling the workers goodbye");
                    shutdown.request();
                });
                serve_until(listener, secret, options, signal).await;
                say("wherever scheduler: stopped");
                Ok(())
            })
        }
    }
}
