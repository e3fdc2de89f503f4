//! The local executors: `sequential` (in the calling thread) and `threads:N` (a
//! pool of threads in this process). They run jobs; the client turns tasks into jobs.

mod threads;

pub use threads::QUEUE_BOUND;
pub(crate) use threads::{current_worker_label, ThreadPool};

/// A unit of work for a local executor: runs one task (or one chunk of a `map`) and
/// resolves its future.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The host name, for naming where a task ran.
pub(crate) fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string())
    })
}
