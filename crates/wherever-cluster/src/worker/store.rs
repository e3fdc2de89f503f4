//! The results a worker holds, with their accounting: each value's size, the
//! bytes held in memory and on disk, and least-recently-used spilling to the
//! worker's own spill directory ([`super::spill`]) past a target, read back on
//! demand. The target is for the whole process: the memory it uses besides the
//! values held (its code, buffers, running tasks: sampled by the memory monitor,
//! [`Store::set_unmanaged`]) leaves that much less for them.

use super::spill::SpillFiles;
use crate::protocol::{Input, TaskId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wherever_core::id_hash::IdMap;

/// Where a held value is.
enum Place {
    /// In memory.
    Memory(Arc<Vec<u8>>),
    /// In a file of the spill directory, its bytes as they are.
    Disk,
}

/// One held value.
struct Entry {
    place: Place,
    size: u64,
    /// When it was last used (its key in the recency order while in memory).
    used: u64,
}

/// What the store holds, under its lock.
#[derive(Default)]
struct Held {
    /// By task id, hashed by the id itself (SipHash cost a tenth of a worker's
    /// task threads on trivial tasks).
    entries: IdMap<Entry>,
    /// Values in memory, least recently used first.
    recency: BTreeMap<u64, TaskId>,
    clock: u64,
    memory_bytes: u64,
    spilled_bytes: u64,
}

/// A snapshot of a store's accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreBytes {
    /// Bytes of values held in memory.
    pub memory: u64,
    /// Bytes of values spilled to disk.
    pub spilled: u64,
    /// How many values are held, in memory or on disk.
    pub count: usize,
}

/// The results (and fetched inputs, scattered values) a worker holds, by task;
/// shared by the task threads, the scheduler connection and the data server.
pub struct Store {
    held: Mutex<Held>,
    files: SpillFiles,
    /// Past this many bytes in memory, less [`Store::unmanaged`], least recently
    /// used values go to disk (`u64::MAX`: never).
    target_bytes: AtomicU64,
    /// The process's resident memory besides the values held, as last sampled.
    unmanaged: AtomicU64,
}

impl Store {
    /// An empty store that spills past `target_bytes` in memory, into `files`.
    pub fn new(target_bytes: u64, files: SpillFiles) -> Self {
        Store {
            held: Mutex::default(),
            files,
            target_bytes: AtomicU64::new(target_bytes),
            unmanaged: AtomicU64::new(0),
        }
    }

    /// Spills past `target_bytes` from now on (the worker's memory limit changed).
    pub fn set_target(&self, target_bytes: u64) {
        self.target_bytes.store(target_bytes, Ordering::Relaxed);
    }

    /// Takes `rss` as the process's resident memory now: what of it is not the
    /// values held in memory counts against the target from now on.
    pub fn set_unmanaged(&self, rss: u64) {
        let held = self.lock().memory_bytes;
        self.unmanaged
            .store(rss.saturating_sub(held), Ordering::Relaxed);
    }

    /// The bytes values may take in memory before they spill.
    fn room(&self) -> u64 {
        self.target_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.unmanaged.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `value` as the result of `task` (replacing one held), then spills
    /// least recently used values while over the target.
    pub fn insert(&self, task: TaskId, value: Arc<Vec<u8>>) {
        let mut held = self.lock();
        let size = value.len() as u64;
        held.clock += 1;
        let used = held.clock;
        held.recency.insert(used, task);
        held.memory_bytes += size;
        let entry = Entry {
            place: Place::Memory(value),
            size,
            used,
        };
        // One lookup: a value replaced is uncounted after the new one is in.
        if let Some(old) = held.entries.insert(task, entry) {
            self.uncount(&mut held, task, old);
        }
        self.spill_past(&mut held, self.room());
    }

    /// Whether a value is held for `task`, in memory or on disk.
    pub fn contains(&self, task: TaskId) -> bool {
        self.lock().entries.contains_key(&task)
    }

    /// The `inputs` of which no value is held, in order; one lock for all (a
    /// lock per input showed on tasks with thousands of inputs).
    pub fn missing(&self, inputs: Vec<Input>) -> Vec<Input> {
        if inputs.is_empty() {
            return inputs;
        }
        let held = self.lock();
        inputs
            .into_iter()
            .filter(|input| !held.entries.contains_key(&input.task))
            .collect()
    }

    /// Whether the value held for `task` is in memory (not spilled, not absent).
    pub fn is_in_memory(&self, task: TaskId) -> bool {
        self.lock()
            .entries
            .get(&task)
            .is_some_and(|entry| matches!(entry.place, Place::Memory(_)))
    }

    /// The size of the value held for `task`, without reading it back.
    pub fn size(&self, task: TaskId) -> Option<u64> {
        self.lock().entries.get(&task).map(|entry| entry.size)
    }

    /// The value held for `task`, read back from disk if it was spilled (it is
    /// then in memory again, as the most recently used, and others may spill);
    /// `None` if none is held or its file cannot be read (said in the log).
    pub fn get(&self, task: TaskId) -> Option<Arc<Vec<u8>>> {
        let mut held = self.lock();
        held.clock += 1;
        let now = held.clock;
        let entry = held.entries.get_mut(&task)?;
        let old = std::mem::replace(&mut entry.used, now);
        let (value, read_back) = match &entry.place {
            Place::Memory(value) => (value.clone(), false),
            Place::Disk => match self.files.read(task) {
                Ok(bytes) => {
                    let value = Arc::new(bytes);
                    entry.place = Place::Memory(value.clone());
                    (value, true)
                }
                Err(error) => {
                    entry.used = old;
                    tracing::warn!("cannot read back the spilled result of task {task}: {error}");
                    return None;
                }
            },
        };
        let size = entry.size;
        if read_back {
            held.spilled_bytes -= size;
            held.memory_bytes += size;
            self.files.remove(task);
        } else {
            held.recency.remove(&old);
        }
        held.recency.insert(now, task);
        self.spill_past(&mut held, self.room());
        Some(value)
    }

    /// Forgets the value held for `task` (its file too); `false` if none was.
    pub fn remove(&self, task: TaskId) -> bool {
        let mut held = self.lock();
        self.forget(&mut held, task)
    }

    /// Spills the least recently used value in memory, if any but the most
    /// recently used one; returns its size (0: nothing spilled).
    pub fn spill_one(&self) -> u64 {
        let mut held = self.lock();
        if held.recency.len() < 2 {
            return 0;
        }
        let Some((_, task)) = held.recency.pop_first() else {
            return 0;
        };
        self.spill_entry(&mut held, task).unwrap_or(0)
    }

    /// The bytes held in memory and on disk, and how many values.
    pub fn bytes(&self) -> StoreBytes {
        let held = self.lock();
        StoreBytes {
            memory: held.memory_bytes,
            spilled: held.spilled_bytes,
            count: held.entries.len(),
        }
    }

    fn forget(&self, held: &mut Held, task: TaskId) -> bool {
        let Some(entry) = held.entries.remove(&task) else {
            return false;
        };
        self.uncount(held, task, entry);
        true
    }

    /// Takes `entry`, no longer in the entries, out of the recency order, the
    /// byte counts and the spill directory.
    fn uncount(&self, held: &mut Held, task: TaskId, entry: Entry) {
        match entry.place {
            Place::Memory(_) => {
                held.recency.remove(&entry.used);
                held.memory_bytes -= entry.size;
            }
            Place::Disk => {
                held.spilled_bytes -= entry.size;
                self.files.remove(task);
            }
        }
    }

    /// Spills least recently used values while more than `limit` bytes are in
    /// memory, keeping the most recently used one there.
    fn spill_past(&self, held: &mut Held, limit: u64) -> u64 {
        let mut spilled = 0;
        while held.memory_bytes > limit && held.recency.len() > 1 {
            let Some((_, task)) = held.recency.pop_first() else {
                break;
            };
            match self.spill_entry(held, task) {
                Some(bytes) => spilled += bytes,
                None => break, // the disk refuses: keep the rest in memory
            }
        }
        spilled
    }

    /// Writes the value of `task` (taken out of the recency order already) to
    /// its file and returns its size; one that cannot be written stays in memory
    /// as the most recently used, said in the log (`None`).
    fn spill_entry(&self, held: &mut Held, task: TaskId) -> Option<u64> {
        let entry = held.entries.get_mut(&task)?;
        let Place::Memory(value) = &entry.place else {
            return Some(0);
        };
        match self.files.write(task, value) {
            Ok(()) => {
                entry.place = Place::Disk;
                let size = entry.size;
                held.memory_bytes -= size;
                held.spilled_bytes += size;
                Some(size)
            }
            Err(error) => {
                tracing::warn!("cannot spill the result of task {task} to disk: {error}");
                // Most recently used now: the next spill tries another value.
                held.clock += 1;
                entry.used = held.clock;
                held.recency.insert(entry.used, task);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(byte: u8, size: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![byte; size])
    }

    fn store(target: u64) -> Store {
        Store::new(target, SpillFiles::in_new_directory().unwrap())
    }

    #[test]
    fn counts_what_it_holds_and_forgets() {
        let store = store(u64::MAX);
        store.insert(1, value(1, 10));
        store.insert(2, value(2, 30));
        assert_eq!(
            store.bytes(),
            StoreBytes {
                memory: 40,
                spilled: 0,
                count: 2
            }
        );
        assert_eq!(store.size(2), Some(30));
        store.insert(2, value(2, 5)); // replaced, not counted twice
        assert_eq!(store.bytes().memory, 15);
        assert!(store.remove(1));
        assert!(!store.remove(1));
        assert!(!store.contains(1));
        assert_eq!(store.get(1), None);
        assert_eq!(store.bytes().memory, 5);
    }

    #[test]
    fn the_missing_inputs_are_those_not_held_in_order() {
        let store = store(u64::MAX);
        store.insert(2, value(2, 1));
        let input = |task| Input {
            task,
            holders: Vec::new(),
        };
        let missing = store.missing(vec![input(3), input(2), input(1)]);
        let tasks: Vec<u64> = missing.iter().map(|input| input.task).collect();
        assert_eq!(tasks, [3, 1]);
        assert!(store.missing(Vec::new()).is_empty());
    }

    #[test]
    fn past_the_target_the_least_recently_used_go_to_disk_and_come_back() {
        let store = store(25);
        store.insert(1, value(1, 10));
        store.insert(2, value(2, 10));
        store.get(1); // 2 is now the least recently used
        store.insert(3, value(3, 10));
        let bytes = store.bytes();
        assert_eq!((bytes.memory, bytes.spilled, bytes.count), (20, 10, 3));
        assert!(
            store.files.holds(2),
            "the least recently used was not spilled"
        );
        assert!(!store.files.holds(1) && !store.files.holds(3));
        assert!(!store.is_in_memory(2) && store.is_in_memory(3) && !store.is_in_memory(9));
        // Read back on demand, whole; 1 (now least recently used) goes instead.
        assert_eq!(store.get(2).unwrap().as_slice(), &[2u8; 10][..]);
        assert!(!store.files.holds(2));
        assert!(store.files.holds(1));
        assert_eq!(store.bytes().spilled, 10);
        // Freeing a spilled value removes its file.
        assert!(store.remove(1));
        assert!(!store.files.holds(1));
        assert_eq!(store.bytes().spilled, 0);
    }

    #[test]
    fn memory_the_process_uses_besides_the_values_leaves_less_room_for_them() {
        let store = store(100);
        store.insert(1, value(1, 30));
        store.insert(2, value(2, 30));
        // 60 held of 130 resident: 70 used otherwise, so 30 is all they may take.
        store.set_unmanaged(130);
        store.insert(3, value(3, 30));
        assert_eq!(store.bytes().memory, 30);
        assert_eq!(store.bytes().spilled, 60);
        store.set_unmanaged(30);
        store.insert(4, value(4, 30));
        assert_eq!(store.bytes().memory, 60);
    }

    #[test]
    fn one_value_larger_than_the_target_stays_in_memory() {
        let store = store(5);
        store.insert(1, value(1, 10));
        assert_eq!(store.bytes().spilled, 0);
        store.insert(2, value(2, 10));
        assert_eq!(store.bytes().memory, 10);
        assert_eq!(store.bytes().spilled, 10);
    }

    #[test]
    fn spilling_on_demand_keeps_the_most_recent_value() {
        let store = store(u64::MAX);
        for task in 0..4 {
            store.insert(task, value(task as u8, 100));
        }
        assert_eq!(store.spill_one(), 100);
        assert!(store.files.holds(0));
        assert_eq!(store.spill_one() + store.spill_one(), 200);
        assert_eq!(store.bytes().memory, 100);
        assert_eq!(store.spill_one(), 0);
        for task in 0..4 {
            assert_eq!(store.get(task).unwrap().as_slice(), &[task as u8; 100][..]);
        }
    }

    #[test]
    fn a_spilled_file_that_disappeared_is_not_held_bytes_but_an_absence() {
        let store = store(u64::MAX);
        store.insert(1, value(1, 10));
        store.insert(2, value(2, 10));
        store.spill_one();
        store.files.remove(1);
        assert_eq!(store.get(1), None);
        assert_eq!(store.bytes().spilled, 10); // still counted until freed
        assert!(store.remove(1));
        assert_eq!(store.bytes().spilled, 0);
    }
}
