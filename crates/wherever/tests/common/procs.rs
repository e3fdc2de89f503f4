//! What the memory tests read of processes in `/proc`: this process's worker
//! processes and a process's peak resident memory.
#![allow(dead_code)] // each test binary uses a different subset

/// The process ids of this process's children: the worker processes.
pub fn worker_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    for thread in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        if let Ok(children) = std::fs::read_to_string(thread.path().join("children")) {
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The peak resident memory (`VmHWM`) of process `pid` in bytes, sampled by the
/// kernel over the process's life (or since [`reset_own_peak`]).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// Resets this process's peak resident memory (`VmHWM`) to its resident memory
/// now, and returns that.
pub fn reset_own_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    peak_rss(std::process::id())
}
