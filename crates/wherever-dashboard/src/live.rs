//! [`LiveTask`]: what the dashboard keeps per task until it ends.
//!
//! One per submitted task, so 2 M pending tasks cost 2 M of them (issue 14 item 5):
//! a queued task is 16 bytes (its name's index and its item count), and the worker
//! and start time are boxed only once it starts.

use std::time::Duration;

use wherever_core::dense_table::DenseTable;

/// How many ids a new task may skip past the last one seen and still be kept in
/// [`LiveTasks`]' run: the dashboard's subscription drops events when it reads too
/// slowly, so the ids it sees have holes (an empty slot costs 16 bytes; past this,
/// a task's entry goes to a hash map).
const MAX_ID_GAP: u64 = 1 << 20;

/// The tasks not ended, by id: a client numbers its tasks one after another, so
/// they sit in a run indexed by id (no key, no hash bucket per task).
#[derive(Debug)]
pub(crate) struct LiveTasks(DenseTable<LiveTask>);

impl Default for LiveTasks {
    fn default() -> Self {
        LiveTasks(DenseTable::with_max_gap(MAX_ID_GAP))
    }
}

impl LiveTasks {
    /// Sets the entry of `task`, returning the one it replaces.
    pub(crate) fn insert(&mut self, task: u64, live: LiveTask) -> Option<LiveTask> {
        self.0.insert(task, live)
    }

    /// The entry of `task`.
    pub(crate) fn get_mut(&mut self, task: &u64) -> Option<&mut LiveTask> {
        self.0.get_mut(task)
    }

    /// Removes the entry of `task`, returning it.
    pub(crate) fn remove(&mut self, task: &u64) -> Option<LiveTask> {
        self.0.remove(task)
    }
}

/// One task the dashboard counts until it ends.
#[derive(Debug)]
pub(crate) enum LiveTask {
    /// Queued, with a name index and an item count that fit 32 bits (the usual case).
    Queued {
        /// Index into the names seen.
        name: u32,
        /// How many items it computes.
        items: u32,
    },
    /// Running, or with numbers too large for [`LiveTask::Queued`].
    Detailed(Box<Detail>),
}

/// A [`LiveTask`] in full.
#[derive(Debug)]
pub(crate) struct Detail {
    /// Index into the names seen.
    name: usize,
    /// How many items it computes.
    items: u64,
    /// The worker it runs on and when it started, once it started.
    running_on: Option<(String, Duration)>,
}

impl LiveTask {
    /// A queued task of the name at index `name`, computing `items` items.
    pub(crate) fn queued(name: usize, items: u64) -> Self {
        match (u32::try_from(name), u32::try_from(items)) {
            (Ok(name), Ok(items)) => LiveTask::Queued { name, items },
            _ => LiveTask::Detailed(Box::new(Detail {
                name,
                items,
                running_on: None,
            })),
        }
    }

    /// Its name's index.
    pub(crate) fn name(&self) -> usize {
        match self {
            LiveTask::Queued { name, .. } => *name as usize,
            LiveTask::Detailed(detail) => detail.name,
        }
    }

    /// How many items it computes.
    pub(crate) fn items(&self) -> u64 {
        match self {
            LiveTask::Queued { items, .. } => u64::from(*items),
            LiveTask::Detailed(detail) => detail.items,
        }
    }

    /// The worker it runs on and when it started, if it started.
    pub(crate) fn running_on(&self) -> Option<&(String, Duration)> {
        match self {
            LiveTask::Queued { .. } => None,
            LiveTask::Detailed(detail) => detail.running_on.as_ref(),
        }
    }

    /// Notes that it started on `worker` at `at`.
    pub(crate) fn start(&mut self, worker: String, at: Duration) {
        let running_on = Some((worker, at));
        match self {
            LiveTask::Queued { name, items } => {
                *self = LiveTask::Detailed(Box::new(Detail {
                    name: *name as usize,
                    items: u64::from(*items),
                    running_on,
                }));
            }
            LiveTask::Detailed(detail) => detail.running_on = running_on,
        }
    }

    /// Notes that it is queued again, giving back where and when it had started.
    pub(crate) fn take_running(&mut self) -> Option<(String, Duration)> {
        match self {
            LiveTask::Queued { .. } => None,
            LiveTask::Detailed(detail) => detail.running_on.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LiveTask;

    #[test]
    fn a_queued_task_is_small_and_a_started_one_keeps_its_worker() {
        assert!(std::mem::size_of::<LiveTask>() <= 16);
        assert!(std::mem::size_of::<Option<LiveTask>>() <= 16);
        let mut t = LiveTask::queued(3, 7);
        assert!(matches!(t, LiveTask::Queued { name: 3, items: 7 }));
        assert_eq!(t.running_on(), None);
        t.start("w1".into(), Duration::from_secs(2));
        assert_eq!((t.name(), t.items()), (3, 7));
        assert_eq!(
            t.running_on(),
            Some(&("w1".to_string(), Duration::from_secs(2)))
        );
        assert_eq!(
            t.take_running(),
            Some(("w1".to_string(), Duration::from_secs(2)))
        );
        assert_eq!(t.running_on(), None);
    }

    #[test]
    fn numbers_past_32_bits_are_kept_whole() {
        let big = LiveTask::queued(1, u64::from(u32::MAX) + 1);
        assert_eq!((big.name(), big.items()), (1, u64::from(u32::MAX) + 1));
        let far = LiveTask::queued(usize::MAX, 2);
        assert_eq!((far.name(), far.items()), (usize::MAX, 2));
    }
}
