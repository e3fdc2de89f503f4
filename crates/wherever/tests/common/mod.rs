//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Arc, Condvar, Mutex};
use wherever::{Client, Plan};

/// The local plans every result must agree across.
pub const LOCAL_PLANS: [&str; 4] = ["sequential", "threads:1", "threads:2", "threads:5"];

/// Starts a client for `plan` (a plan string that must parse and start).
pub fn start(plan: &str) -> Client {
    Plan::parse(plan)
        .unwrap_or_else(|e| panic!("{plan}: {e}"))
        .start()
        .unwrap_or_else(|e| panic!("{plan}: {e}"))
}

/// This machine's host name, as the local plans report it in task errors.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// A gate that tasks wait at until the test opens it: keeps a pool's threads busy
/// so that later tasks stay queued.
#[derive(Clone, Default)]
pub struct Gate {
    state: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    waiting: usize,
}

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks the calling task until [`Gate::open`].
    pub fn pass(&self) {
        let (lock, signal) = &*self.state;
        let mut state = lock.lock().unwrap();
        state.waiting += 1;
        signal.notify_all();
        while !state.open {
            state = signal.wait(state).unwrap();
        }
    }

    /// Blocks until `count` tasks wait at the gate (so they are surely running).
    pub fn await_waiting(&self, count: usize) {
        let (lock, signal) = &*self.state;
        let mut state = lock.lock().unwrap();
        while state.waiting < count {
            state = signal.wait(state).unwrap();
        }
    }

    /// Lets every waiting and future task through.
    pub fn open(&self) {
        let (lock, signal) = &*self.state;
        lock.lock().unwrap().open = true;
        signal.notify_all();
    }
}
