//! The bottom layer of wherever: everything the facade (`wherever`) and the worker
//! runtime (`wherever-cluster`) both need, so that neither reaches into the other.
//!
//! - [`Task`]: a registered function (made by `#[wherever::task]`) with typed
//!   arguments and result, and the name it is registered under;
//! - [`registry`]: the static table of registered tasks, looked up by name in workers;
//! - [`codec`]: the compact serde codec used for task arguments and results;
//! - [`TaskError`] / [`TaskFailure`]: how a failed task is reported;
//! - [`TaskRng`] / [`StreamKey`]: each task's own reproducible random stream;
//! - [`TaskContext`]: what the runtime hands a running task;
//! - [`panic_capture`]: running task code with panics turned into failures;
//! - [`SharedRef`]: a value tasks share instead of decoding a copy each;
//! - [`partition`] / [`element`]: a collection partition's elements in one buffer,
//!   and registered tasks applied to each of them;
//! - [`events`]: the stream of task and worker events that progress bars and the
//!   dashboard read;
//! - [`dense_table`] / [`id_hash`]: maps keyed by task or worker ids, dense for ids
//!   handed out one after another (the scheduler's, the client's and the dashboard's
//!   tables of tasks).

pub mod byte_units;
pub mod codec;
mod context;
pub mod crew;
pub mod dense_table;
mod digest;
pub mod element;
mod error;
pub mod events;
pub mod holes;
pub mod id_hash;
pub mod panic_capture;
pub mod partition;
pub mod registry;
mod rng;
pub mod scope;
pub mod shared_ref;
mod slot_deque;
mod task;

pub use context::TaskContext;
pub use digest::{host_name, Fnv1a};
pub use error::{TaskError, TaskErrorDetails, TaskErrorKind, TaskFailure};
pub use rng::{StreamKey, StreamLabel, TaskRng};
pub use shared_ref::SharedRef;
pub use task::{markers, IntoTask, Resolved, Task};
