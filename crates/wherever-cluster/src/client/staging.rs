//! Submitted tasks on their way from the submitting threads to the connection's
//! thread, in one shared list rather than one queued message (and one heap block)
//! each.
//!
//! A message per task put a `Vec` of one task message (about 240 bytes) on the
//! submitting thread's heap, freed later by the connection's thread. The result
//! slots made on the same thread (128-byte blocks) were then cut out of those
//! freed blocks, each leaving a 112-byte remainder nothing else asked for: at
//! 2,000,000 pending tasks about 860,000 of them, 97 MB (issue 14 item 5). Here a
//! submitting thread appends to a list whose room the connection's thread made,
//! and queues one empty `Submit` as a marker only when the list was empty; the
//! connection's thread takes the whole list when it reads the marker.
//!
//! Order: a task is in the list before its `submit` returns, and the marker that
//! will take it was queued (under the list's lock) no later than the task was
//! added, so anything queued about a task after its submission comes after the
//! marker that takes it.

use crate::protocol::TaskMessage;
use std::sync::Mutex;

/// The room a taken list leaves for the next one, at most (tasks).
const MAX_ROOM: usize = 4096;

/// The tasks submitted and not yet taken by the connection's thread.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    tasks: Mutex<Vec<TaskMessage>>,
}

impl Staging {
    /// Adds `task`, giving `None`. When the list was empty, `mark` runs (under the
    /// list's lock) to queue the marker; if it fails (the connection's queue is
    /// gone), the task is handed back (`Some`) and the list stays empty.
    #[must_use = "a task handed back was not submitted"]
    pub(crate) fn push(
        &self,
        task: TaskMessage,
        mark: impl FnOnce() -> bool,
    ) -> Option<TaskMessage> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.is_empty() && !mark() {
            return Some(task);
        }
        tasks.push(task);
        None
    }

    /// Takes every task added so far, in order, leaving room for as many (up to
    /// [`MAX_ROOM`]) made on the calling thread, so that submitting threads do not
    /// grow the list on their own heap.
    pub(crate) fn take(&self) -> Vec<TaskMessage> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let room = tasks.len().min(MAX_ROOM);
        std::mem::replace(&mut *tasks, Vec::with_capacity(room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64) -> TaskMessage {
        TaskMessage::new(id, "t", Vec::new())
    }

    #[test]
    fn only_the_first_task_of_a_list_queues_a_marker() {
        let staging = Staging::default();
        let mut marks = 0;
        for id in 1..=3 {
            assert!(staging
                .push(task(id), || {
                    marks += 1;
                    true
                })
                .is_none());
        }
        assert_eq!(marks, 1);
        let taken: Vec<u64> = staging.take().into_iter().map(|t| t.id).collect();
        assert_eq!(taken, [1, 2, 3]);
        assert!(staging
            .push(task(4), || {
                marks += 1;
                true
            })
            .is_none());
        assert_eq!(marks, 2, "a list taken empty needs a new marker");
        assert_eq!(staging.take().len(), 1);
        assert!(staging.take().is_empty());
    }

    #[test]
    fn a_task_whose_marker_cannot_be_queued_is_handed_back() {
        let staging = Staging::default();
        let back = staging.push(task(7), || false).expect("handed back");
        assert_eq!(back.id, 7);
        assert!(staging.take().is_empty());
        // The next submission tries to queue a marker again.
        let mut marked = false;
        assert!(staging
            .push(task(8), || {
                marked = true;
                true
            })
            .is_none());
        assert!(marked);
    }

    #[test]
    fn a_taken_list_leaves_bounded_room() {
        let staging = Staging::default();
        for id in 0..(MAX_ROOM as u64 + 10) {
            assert!(staging.push(task(id), || true).is_none());
        }
        assert_eq!(staging.take().len(), MAX_ROOM + 10);
        let room = staging.tasks.lock().unwrap().capacity();
        assert!((MAX_ROOM..MAX_ROOM + 10).contains(&room), "room {room}");
    }
}
