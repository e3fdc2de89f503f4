//! # wherever
//!
//! Write parallel code once; choose at run time how and where it runs:
//! sequentially, on threads, in worker processes, or across machines, with the same
//! results bit for bit, random numbers included.
//!
//! ```
//! use wherever::prelude::*;
//!
//! #[wherever::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let client = Plan::parse("threads:2")?.start()?;
//! let future = client.submit(square, 7);
//! assert_eq!(future.value()?, 49);
//! assert_eq!(client.map(square, 0..4)?, vec![0, 1, 4, 9]);
//! # Ok::<(), wherever::Error>(())
//! ```
//!
//! See [`plan`] for the plan strings, [`Client`] for submitting work, and
//! [`TaskRng`] for reproducible random numbers.
//!
#![doc = include_str!("../docs/calls.md")]

extern crate self as wherever;

pub mod args;
mod arguments;
mod awaiting;
mod client;
mod cores;
mod dashboard;
mod elastic;
mod error;
mod future;
mod graph;
mod graph_outputs;
mod held_fetch;
mod local;
mod map;
mod map_dependent;
mod map_output;
mod map_results;
mod nested;
mod node_index;
mod node_keys;
mod node_positions;
mod node_tasks;
mod options;
pub mod plan;
#[cfg(feature = "clap")]
mod plan_args;
mod plan_launcher;
mod plan_memory;
pub mod progress;
mod readiness;
mod slot;
mod slurm_plan;
mod submission;
mod task_events;
mod task_names;
mod timer;
mod worker_mode;

pub use args::seed_from_args;
pub use arguments::{IntoArg, IntoArgs};
pub use awaiting::{FutureValue, FutureValueRef};
pub use client::{Client, Value, DEFAULT_RETRIES};
pub use cores::{available_cores, cores_from, CORE_LIMIT_VARIABLES};
pub use dashboard::{DASHBOARD_PORT_VARIABLE, DASHBOARD_VARIABLE};
pub use error::{Error, Result};
pub use future::{as_completed, wait, AsCompleted, Future, ReturnWhen, Shared, WaitOutcome};
pub use graph::{
    compute, delayed, delayed_labelled, delayed_layer, delayed_pure, optimize, persist, to_dot,
    Delayed, FusedTask, GraphOutput, OptimizedGraph,
};
pub use graph_outputs::{ComputeOutputs, DelayedOutput};
pub use local::QUEUE_BOUND;
pub use map::{Scheduling, AUTO_CHUNKS_PER_WORKER};
pub use nested::client;
pub use options::Options;
pub use plan::{Level, MpiOptions, Plan, PlanError, ProcessesOptions, SshHost, SshLevel, Workers};
#[cfg(feature = "clap")]
pub use plan_args::PlanArgs;
pub use slurm_plan::SlurmPlan;
pub use task_events::DEFAULT_EVENT_CAPACITY;
pub use wherever_cluster::launcher::AdaptOptions;
pub use wherever_cluster::worker::{worker_memory_limits, MemoryLimits};
pub use wherever_cluster::{ResourceError, Resources};
/// The event stream: task and worker events for progress bars and the dashboard.
pub use wherever_core::events;
/// Partition payloads: a collection partition's elements in one byte buffer.
pub use wherever_core::partition;
pub use wherever_core::{
    markers, IntoTask, Resolved, SharedRef, StreamKey, StreamLabel, Task, TaskContext, TaskError,
    TaskErrorDetails, TaskErrorKind, TaskFailure, TaskRng,
};
pub use wherever_macros::{main, task};
pub use worker_mode::init;

/// The README's snippets, compiled as doctests (those marked `rust,ignore` are
/// fragments that lean on the text around them).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}

/// What a program using wherever usually needs, in one `use`.
pub mod prelude {
    /// [`crate::Future`], named so that it does not shadow [`std::future::Future`]
    /// (in the 2024 prelude) in async programs.
    pub use crate::Future as TaskFuture;
    pub use crate::{
        as_completed, compute, delayed, seed_from_args, wait, Client, Delayed, Plan, ReturnWhen,
        Scheduling, Shared, SharedRef, TaskContext, TaskError, TaskRng,
    };
    pub use rand::Rng;
    pub use rand_distr::{Distribution, StandardNormal};
}

/// Used by the code `#[wherever::task]` generates; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use wherever_core::element;
    pub use wherever_core::registry;
}
