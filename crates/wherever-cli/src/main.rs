//! `wherever`: the command-line side of wherever.
//!
//! `wherever scheduler --port 8786` runs a scheduler that programs reach with the
//! plan `tcp://HOST:8786`, and that workers join when the user's own program is
//! started with `WHEREVER_WORKER=tcp://HOST:8786` (e.g. under `srun`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use wherever_cluster::auth::{default_secret_path, SECRET_FILE_VARIABLE};
use wherever_cluster::server::{serve, ServerOptions};
use wherever_cluster::Secret;

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
        /// The address to listen on; 0.0.0.0 to accept workers from other machines.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The file holding the cluster secret (created with a fresh secret if
        /// missing; refused unless private to its owner, like an SSH key: mode
        /// 600); default: $WHEREVER_SECRET_FILE, else ~/.wherever/secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Seconds of silence after which a worker or client is considered dead
        /// (every peer sends a heartbeat after 2 s with nothing else to send).
        #[arg(long, default_value_t = 30)]
        heartbeat_timeout: u64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match Cli::parse().command {
        Commands::Scheduler {
            port,
            host,
            secret_file,
            heartbeat_timeout,
        } => {
            let path = secret_file
                .or_else(|| std::env::var_os(SECRET_FILE_VARIABLE).map(PathBuf::from))
                .unwrap_or_else(default_secret_path);
            let secret = Secret::read_or_create_file(&path)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                let address = listener.local_addr()?;
                eprintln!(
                    "wherever scheduler listening on tcp://{address} (secret file {})",
                    path.display()
                );
                let options = ServerOptions {
                    heartbeat_timeout: std::time::Duration::from_secs(heartbeat_timeout.max(1)),
                    ..ServerOptions::default()
                };
                serve(listener, secret, options).await;
                Ok(())
            })
        }
    }
}
