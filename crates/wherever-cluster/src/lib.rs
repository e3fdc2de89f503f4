//! The multi-process engine of wherever, one code path for every multi-process plan:
//!
//! - [`protocol`]: the versioned, length-framed binary wire protocol;
//! - [`auth`]: the per-cluster secret, challenge-response and build checks;
//! - [`server`]: the scheduler server around the sans-IO `wherever-scheduler`;
//! - [`worker`]: the worker runtime, run inside the user's own executable;
//! - [`client`]: a client's connection to a scheduler;
//! - [`launcher`]: starting workers (local processes for `processes:N`).
//!
//! This crate knows nothing of the facade: it runs registered tasks from the
//! `wherever-core` registry on encoded arguments.

pub mod auth;
pub mod client;
pub mod connection;
pub mod launcher;
pub mod protocol;
pub mod server;
pub mod worker;

pub use auth::Secret;
pub use client::{Callback, ClusterClient, ClusterRuntime, RemoteCall};
pub use launcher::LocalCluster;

/// The host name, for naming where things run.
pub fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string())
    })
}
