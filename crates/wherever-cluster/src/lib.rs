//! The multi-process engine of wherever, one code path for every multi-process plan:
//!
//! - [`protocol`]: the versioned, length-framed binary wire protocol;
//! - [`auth`]: the per-cluster secret, challenge-response and build checks;
//! - [`server`]: the scheduler server around the sans-IO `wherever-scheduler`;
//! - [`worker`]: the worker runtime, run inside the user's own executable;
//! - [`client`]: a client's connection to a scheduler;
//! - [`fetch`]: fetching results from workers' data ports, with timeouts;
//! - [`launcher`]: starting workers (local processes for `processes:N`).
//!
//! This crate knows nothing of the facade: it runs registered tasks from the
//! `wherever-core` registry on encoded arguments.

pub mod auth;
pub mod client;
pub mod connection;
pub mod fetch;
pub mod launcher;
pub mod protocol;
pub mod server;
pub mod worker;

pub use auth::Secret;
pub use client::{
    Arrival, Arrive, Callback, ClusterClient, ClusterRuntime, HeldResult, RemoteCall, TaskEnd,
    TaskHandle,
};
pub use launcher::LocalCluster;
pub use wherever_scheduler::{ResourceError, Resources};

pub use wherever_core::host_name;
