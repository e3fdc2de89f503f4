//! What the runtime hands a running task: its position, its random stream and, for
//! nested submissions, the key its children derive their streams from.

use crate::rng::{StreamKey, TaskRng};
use std::sync::atomic::{AtomicBool, Ordering};

static UNSEEDED_WARNING_GIVEN: AtomicBool = AtomicBool::new(false);

/// The context of one running task.
#[derive(Debug)]
pub struct TaskContext {
    key: StreamKey,
    seeded: bool,
    position: u64,
    rng: Option<TaskRng>,
}

impl TaskContext {
    /// The context of the task at `position` of a client whose streams use `key`;
    /// `seeded` says whether the user set the seed (if not, drawing warns once).
    pub fn new(key: StreamKey, seeded: bool, position: u64) -> Self {
        TaskContext {
            key,
            seeded,
            position,
            rng: None,
        }
    }

    /// Makes this the context of the task at `position` of the same client (the
    /// next item of a chunk), with a fresh random stream.
    pub fn reposition(&mut self, position: u64) {
        self.position = position;
        self.rng = None;
    }

    /// The task's position in its client's submission order.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The task's random stream, created on first use. Without a seed set on the
    /// client the stream is still independent but not reproducible; the first such
    /// use in a process prints one warning to stderr (as R's future does).
    pub fn rng(&mut self) -> &mut TaskRng {
        if self.rng.is_none() {
            if !self.seeded && !UNSEEDED_WARNING_GIVEN.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "wherever: warning: a task drew random numbers but no seed was set; \
                     results are not reproducible (use client.with_seed(...) or --seed)"
                );
            }
            self.rng = Some(self.key.stream(self.position));
        }
        self.rng.as_mut().expect("just created")
    }

    /// The stream key for tasks this task submits itself (nested parallelism).
    pub fn child_key(&self) -> StreamKey {
        self.key.child(self.position)
    }

    /// Whether the client that submitted this task had a seed set.
    pub fn seeded(&self) -> bool {
        self.seeded
    }
}
