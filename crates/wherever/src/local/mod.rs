//! The local executors: `sequential` (in the calling thread) and `threads:N` (a
//! pool of threads in this process). They run jobs; the client turns tasks into jobs.

mod rank;
mod ranked_jobs;
mod threads;

pub(crate) use rank::{current_graph_rank, with_graph_rank, GraphRank};

pub use threads::QUEUE_BOUND;
pub(crate) use threads::{current_worker_index, current_worker_label, ThreadPool};

/// A unit of work for a local executor: runs one task (or one chunk of a `map`) and
/// resolves its future.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

pub(crate) use wherever_core::host_name;
