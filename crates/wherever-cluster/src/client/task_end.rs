//! What a submitted task's end is handed to: the pending-task table of a
//! [`ClusterClient`](super::ClusterClient) holds one [`TaskEnd`] (16 bytes) per task
//! whose end it waits for. A future's result slot implements [`Arrive`] itself, so
//! a pending task costs no allocation here; a boxed closure ([`Callback`]) is
//! wrapped for the rarer callers that want one.

use super::{Arrival, Callback};
use std::sync::{Arc, Mutex};
use wherever_core::TaskError;

/// Receives a submitted task's end: its encoded result (or where it is held), or
/// its error. Called at most once per submission, on the connection's thread.
pub trait Arrive: Send + Sync {
    /// Takes the task's outcome.
    fn arrive(self: Arc<Self>, outcome: Result<Arrival, TaskError>);
}

/// The receiver of one pending task's end (see the module documentation).
pub struct TaskEnd(Arc<dyn Arrive>);

impl TaskEnd {
    /// Hands `outcome` to the receiver.
    pub fn arrive(self, outcome: Result<Arrival, TaskError>) {
        self.0.arrive(outcome)
    }
}

impl<T: Arrive + 'static> From<Arc<T>> for TaskEnd {
    fn from(receiver: Arc<T>) -> Self {
        TaskEnd(receiver)
    }
}

impl From<Callback> for TaskEnd {
    fn from(callback: Callback) -> Self {
        TaskEnd(Arc::new(Boxed(Mutex::new(Some(callback)))))
    }
}

/// A boxed closure as a receiver (run once; a second arrival is ignored).
struct Boxed(Mutex<Option<Callback>>);

impl Arrive for Boxed {
    fn arrive(self: Arc<Self>, outcome: Result<Arrival, TaskError>) {
        let callback = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(callback) = callback {
            callback(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter(AtomicUsize);

    impl Arrive for Counter {
        fn arrive(self: Arc<Self>, outcome: Result<Arrival, TaskError>) {
            assert!(matches!(outcome, Ok(Arrival::Bytes(ref b)) if b == &[7]));
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_task_end_is_two_words_and_reaches_its_receiver() {
        assert_eq!(std::mem::size_of::<Option<TaskEnd>>(), 16);
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        TaskEnd::from(counter.clone()).arrive(Ok(Arrival::Bytes(vec![7])));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            Arc::strong_count(&counter),
            1,
            "the end let its receiver go"
        );
    }

    #[test]
    fn a_boxed_callback_runs_once_with_the_outcome() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let callback: Callback = Box::new(move |outcome| {
            assert!(outcome.is_err());
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let end = TaskEnd::from(callback);
        end.arrive(Err(TaskError::new(
            "t",
            0,
            wherever_core::TaskErrorKind::Runtime,
            "lost",
        )));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
