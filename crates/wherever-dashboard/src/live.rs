//! [`LiveTasks`]: what the dashboard keeps per task until it ends.
//!
//! One entry per submitted task, so 2 M pending tasks cost 2 M of them (issue 14
//! item 5). A queued task is 2 bytes: the number of its *kind* (its name and item
//! count, shared by every queued task of that name and count, [`Kinds`]) in a
//! [`DenseTable`] indexed by task id. A task that starts moves to a hash map of
//! started tasks with its worker and start time; there are only as many of those as
//! tasks run at once.
//!
//! The events that end a task (finished, failed, released) carry only its id, so
//! the entry is what says which name's counts a task that ends without starting
//! (cancelled, failed on a dead dependency, released) leaves.

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::time::Duration;

use wherever_core::dense_table::DenseTable;
use wherever_core::id_hash::IdMap;

/// How many ids a new task may skip past the last one seen and still be kept in
/// [`LiveTasks`]' run: the dashboard's subscription drops events when it reads too
/// slowly, so the ids it sees have holes (an empty slot costs 2 bytes; past this,
/// a task's entry goes to a hash map).
const MAX_ID_GAP: u64 = 1 << 20;

/// How many kinds can be queued at once (numbered `1..=MAX_KINDS`); the tasks of
/// further kinds are kept in full, as started ones are.
const MAX_KINDS: usize = u16::MAX as usize;

/// A task the dashboard counts, in full: what it is taken out of the counts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveTask {
    /// Index into the names seen.
    pub(crate) name: usize,
    /// How many items it computes.
    pub(crate) items: u64,
    /// The worker it runs on and when it started, once it started.
    pub(crate) running_on: Option<(String, Duration)>,
}

/// The number of a kind in [`Kinds`] (1-based, so that an empty slot is free).
type KindNo = NonZeroU16;

/// One kind of queued task.
#[derive(Debug)]
struct Kind {
    /// Index into the names seen.
    name: usize,
    /// How many items each task of this kind computes.
    items: u64,
    /// How many queued tasks are of this kind (0: free to reuse).
    queued: u64,
}

/// The kinds of queued tasks: a name and an item count, numbered so that a queued
/// task holds only the number.
#[derive(Debug, Default)]
struct Kinds {
    /// Kind `n` is at `kinds[n - 1]`.
    kinds: Vec<Kind>,
    /// The number of each kind by its name and item count.
    numbers: HashMap<(usize, u64), KindNo>,
    /// Numbers of kinds no task uses, free to reuse.
    free: Vec<KindNo>,
}

impl Kinds {
    /// The number of the kind (`name`, `items`), counting one more task of it;
    /// `None` when [`MAX_KINDS`] kinds are queued at once.
    fn take(&mut self, name: usize, items: u64) -> Option<KindNo> {
        let number = match self.numbers.get(&(name, items)) {
            Some(&number) => number,
            None => {
                let number = self.free_number()?;
                let kind = Kind {
                    name,
                    items,
                    queued: 0,
                };
                match self.kinds.get_mut(usize::from(number.get()) - 1) {
                    Some(slot) => *slot = kind,
                    None => self.kinds.push(kind),
                }
                self.numbers.insert((name, items), number);
                number
            }
        };
        self.kinds[usize::from(number.get()) - 1].queued += 1;
        Some(number)
    }

    /// A number no kind uses. Kinds whose tasks are all gone keep their number
    /// until the numbers run out (so a kind queued and emptied again and again is
    /// not made anew each time); then they are all freed at once.
    fn free_number(&mut self) -> Option<KindNo> {
        if self.free.is_empty() && self.kinds.len() < MAX_KINDS {
            return KindNo::new(self.kinds.len() as u16 + 1);
        }
        if self.free.is_empty() {
            for (i, kind) in self.kinds.iter().enumerate() {
                let number = KindNo::new(i as u16 + 1).expect("1-based");
                let key = (kind.name, kind.items);
                if kind.queued == 0 && self.numbers.get(&key) == Some(&number) {
                    self.numbers.remove(&key);
                    self.free.push(number);
                }
            }
        }
        self.free.pop()
    }

    /// The name and item count of kind `number`, counting one task of it less.
    fn give_back(&mut self, number: KindNo) -> (usize, u64) {
        let kind = &mut self.kinds[usize::from(number.get()) - 1];
        kind.queued = kind.queued.saturating_sub(1);
        (kind.name, kind.items)
    }
}

/// The tasks not ended, by id: a client numbers its tasks one after another, so
/// queued tasks sit in a run indexed by id (no key, no hash bucket per task).
#[derive(Debug)]
pub(crate) struct LiveTasks {
    /// Each queued task's kind.
    queued: DenseTable<KindNo>,
    /// The kinds `queued` refers to.
    kinds: Kinds,
    /// Started tasks, and queued ones whose kind found no number.
    detailed: IdMap<LiveTask>,
}

impl Default for LiveTasks {
    fn default() -> Self {
        LiveTasks {
            queued: DenseTable::with_max_gap(MAX_ID_GAP),
            kinds: Kinds::default(),
            detailed: IdMap::default(),
        }
    }
}

impl LiveTasks {
    /// Notes that `task`, of the name at index `name` computing `items` items, is
    /// queued; returns the entry it replaces (the same id submitted again).
    pub(crate) fn submit(&mut self, task: u64, name: usize, items: u64) -> Option<LiveTask> {
        let old = self.remove(task);
        match self.kinds.take(name, items) {
            Some(kind) => {
                self.queued.insert(task, kind);
            }
            None => {
                self.detailed.insert(
                    task,
                    LiveTask {
                        name,
                        items,
                        running_on: None,
                    },
                );
            }
        }
        old
    }

    /// Notes that queued `task` started on `worker` at `at`, returning its name's
    /// index and item count; `None` (and nothing changes) when it is not known or
    /// already running.
    pub(crate) fn start(&mut self, task: u64, worker: &str, at: Duration) -> Option<(usize, u64)> {
        let running_on = Some((worker.to_string(), at));
        if let Some(kind) = self.queued.remove(&task) {
            let (name, items) = self.kinds.give_back(kind);
            self.detailed.insert(
                task,
                LiveTask {
                    name,
                    items,
                    running_on,
                },
            );
            return Some((name, items));
        }
        let live = self.detailed.get_mut(&task)?;
        if live.running_on.is_some() {
            return None;
        }
        live.running_on = running_on;
        Some((live.name, live.items))
    }

    /// Notes that `task` is queued again, returning its entry as it was while it
    /// ran; `None` when it is not known or not running.
    pub(crate) fn requeue(&mut self, task: u64) -> Option<LiveTask> {
        let live = self.detailed.get_mut(&task)?;
        let running_on = live.running_on.take()?;
        Some(LiveTask {
            running_on: Some(running_on),
            ..live.clone()
        })
    }

    /// Removes `task` (it ended or was released), returning its entry.
    pub(crate) fn remove(&mut self, task: u64) -> Option<LiveTask> {
        if let Some(kind) = self.queued.remove(&task) {
            let (name, items) = self.kinds.give_back(kind);
            return Some(LiveTask {
                name,
                items,
                running_on: None,
            });
        }
        if self.detailed.is_empty() {
            return None;
        }
        self.detailed.remove(&task)
    }

    /// How many tasks are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queued.len() + self.detailed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{KindNo, LiveTask, LiveTasks, MAX_KINDS};

    fn queued(name: usize, items: u64) -> Option<LiveTask> {
        Some(LiveTask {
            name,
            items,
            running_on: None,
        })
    }

    #[test]
    fn a_queued_task_is_two_bytes_and_a_started_one_keeps_its_worker() {
        assert_eq!(std::mem::size_of::<Option<KindNo>>(), 2);
        let mut tasks = LiveTasks::default();
        assert_eq!(tasks.submit(1, 3, 7), None);
        assert_eq!(tasks.start(1, "w1", Duration::from_secs(2)), Some((3, 7)));
        assert_eq!(
            tasks.start(1, "w2", Duration::from_secs(3)),
            None,
            "a second start of a running task changes nothing"
        );
        let running = LiveTask {
            name: 3,
            items: 7,
            running_on: Some(("w1".to_string(), Duration::from_secs(2))),
        };
        assert_eq!(tasks.requeue(1), Some(running.clone()));
        assert_eq!(tasks.requeue(1), None, "it is queued now");
        assert_eq!(tasks.start(1, "w1", Duration::from_secs(2)), Some((3, 7)));
        assert_eq!(tasks.remove(1), Some(running));
        assert_eq!(tasks.remove(1), None);
        assert_eq!(tasks.len(), 0);
    }

    #[test]
    fn a_task_that_ends_without_starting_gives_its_name_and_items_back() {
        let mut tasks = LiveTasks::default();
        for task in 0..1_000u64 {
            tasks.submit(task, (task % 3) as usize, 1 + task % 2);
        }
        assert!(tasks.detailed.is_empty(), "queued tasks hold only a kind");
        for task in (0..1_000u64).rev() {
            assert_eq!(
                tasks.remove(task),
                queued((task % 3) as usize, 1 + task % 2),
                "task {task}"
            );
        }
        assert_eq!(tasks.len(), 0);
        assert!(tasks.kinds.kinds.iter().all(|kind| kind.queued == 0));
    }

    #[test]
    fn a_task_submitted_again_replaces_its_entry() {
        let mut tasks = LiveTasks::default();
        tasks.submit(5, 0, 1);
        assert_eq!(tasks.submit(5, 1, 2), queued(0, 1));
        tasks.start(5, "w0", Duration::ZERO);
        assert_eq!(
            tasks.submit(5, 2, 1).map(|old| old.running_on.is_some()),
            Some(true)
        );
        assert_eq!(tasks.remove(5), queued(2, 1));
    }

    #[test]
    fn past_the_kinds_that_fit_tasks_are_kept_in_full_and_emptied_kinds_are_reused() {
        let mut tasks = LiveTasks::default();
        let n = MAX_KINDS as u64 + 10;
        for task in 0..n {
            tasks.submit(task, task as usize, 1);
        }
        assert_eq!(tasks.detailed.len(), 10, "the kinds ran out");
        for task in (0..n).rev() {
            assert_eq!(tasks.remove(task), queued(task as usize, 1));
        }
        // Every kind is free again: new names get numbers, not full entries.
        for task in 0..100 {
            tasks.submit(n + task, (n + task) as usize, 1);
        }
        assert!(tasks.detailed.is_empty());
        assert_eq!(tasks.remove(n + 42), queued((n + 42) as usize, 1));
    }
}
