//! [`DenseTable`]: a map from task ids to records, laid out for ids handed out one
//! after another (a client numbers its tasks `first, first + 1, ...`).
//!
//! A hash map of a million records costs each record its size again in empty buckets
//! on average, and twice when it grows (old and new table alive together, every page
//! of both touched). Here the records of the current run of consecutive ids sit in a
//! double-ended queue indexed by `id - base`: no key, no empty bucket, and the queue
//! ([`SlotDeque`]) grows and shrinks by chunks of about 64 KiB, so it holds little
//! room beyond its records and never copies one (a doubling `VecDeque` held room for
//! up to twice its records, all of it touched once used as a ring). Ids that do not extend the run (another client's, far-off or reused
//! ones) go to a hash map, so any id works; only the memory layout differs.

use std::ops::Index;

use crate::id_hash::IdMap;
use crate::slot_deque::SlotDeque;

/// How many missing ids a new id may skip past the end (or before the start) of the
/// run and still join it (the skipped ones are empty slots), unless the table was
/// made with another limit ([`DenseTable::with_max_gap`]).
const MAX_GAP: u64 = 64;

/// Below this many slots, a sparse run is not compacted.
const MIN_COMPACT: usize = 1024;

/// A run is compacted when fewer than one slot in this many holds a value: 4, or
/// more for small values, whose empty slots cost less than their entries would in
/// the hash map (a 2-byte slot against a 16-byte `(id, value)` entry and its
/// bucket's share: 16). Compacting stops once one slot in half as many holds one.
const fn sparse_ratio<V>() -> usize {
    let slot = std::mem::size_of::<Option<V>>();
    let entry = std::mem::size_of::<(u64, V)>();
    match (2 * entry).checked_div(slot) {
        Some(ratio) if ratio > 4 => ratio,
        _ => 4,
    }
}

/// A map from `u64` ids to `V`, dense for runs of consecutive ids; see the
/// [module documentation](self).
#[derive(Debug, Clone)]
pub struct DenseTable<V> {
    /// The id of `run[0]`.
    base: u64,
    /// The values of ids `base..base + run.len()`; `None` for ids not in the run
    /// (such an id may still be in `sparse`).
    run: SlotDeque<V>,
    /// How many slots of `run` hold a value.
    in_run: usize,
    /// Values whose ids did not fit the run.
    sparse: IdMap<V>,
    /// How many missing ids a new id may skip and still join the run.
    max_gap: u64,
}

impl<V> Default for DenseTable<V> {
    fn default() -> Self {
        DenseTable {
            base: 0,
            run: SlotDeque::default(),
            in_run: 0,
            sparse: IdMap::default(),
            max_gap: MAX_GAP,
        }
    }
}

impl<V> DenseTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose run takes a new id up to `max_gap` ids past its end (or
    /// before its start), filling the skipped ones with empty slots: for ids that
    /// come in order with holes, such as those of a lossy event stream.
    pub fn with_max_gap(max_gap: u64) -> Self {
        DenseTable {
            max_gap,
            ..Self::default()
        }
    }

    /// How many ids have a value.
    pub fn len(&self) -> usize {
        self.in_run + self.sparse.len()
    }

    /// Whether no id has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of `id` in the run, if the run covers it.
    fn index(&self, id: u64) -> Option<usize> {
        let offset = id.checked_sub(self.base)?;
        (offset < self.run.len() as u64).then_some(offset as usize)
    }

    /// The value of `id`.
    pub fn get(&self, id: &u64) -> Option<&V> {
        if let Some(Some(value)) = self.index(*id).and_then(|i| self.run.get(i)) {
            return Some(value);
        }
        if self.sparse.is_empty() {
            return None;
        }
        self.sparse.get(id)
    }

    /// The value of `id`, to change.
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        match self.index(*id) {
            Some(i) if self.run.get(i).is_some_and(Option::is_some) => {
                self.run.get_mut(i).and_then(Option::as_mut)
            }
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get_mut(id),
        }
    }

    /// Whether `id` has a value.
    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Makes room for `additional` more values at the end of the run (the run
    /// grows by chunks as values come, so this only keeps the old signature).
    pub fn reserve(&mut self, additional: usize) {
        let _ = additional;
    }

    /// Sets the value of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if !self.sparse.is_empty() {
            if let Some(old) = self.sparse.get_mut(&id) {
                return Some(std::mem::replace(old, value));
            }
        }
        if self.in_run == 0 {
            self.run.clear();
            self.base = id;
        }
        if let Some(i) = self.index(id) {
            let old = self.run.get_mut(i).expect("in the run").replace(value);
            if old.is_none() {
                self.in_run += 1;
            }
            return old;
        }
        let end = self.base.saturating_add(self.run.len() as u64);
        if id >= end && id - end <= self.max_gap {
            for _ in end..id {
                self.run.push_back(None);
            }
            self.run.push_back(Some(value));
            self.in_run += 1;
        } else if id < self.base && self.base - id <= self.max_gap + 1 {
            for _ in id + 1..self.base {
                self.run.push_front(None);
            }
            self.run.push_front(Some(value));
            self.base = id;
            self.in_run += 1;
        } else {
            self.sparse.insert(id, value);
        }
        None
    }

    /// Removes the value of `id`, returning it.
    pub fn remove(&mut self, id: &u64) -> Option<V> {
        let Some(slot) = self
            .index(*id)
            .and_then(|i| self.run.get_mut(i))
            .filter(|slot| slot.is_some())
        else {
            return self.sparse.remove(id);
        };
        let value = slot.take();
        self.in_run -= 1;
        self.trim();
        value
    }

    /// Drops the empty slots at both ends of the run. When the run became mostly
    /// empty (removed out of order), moves values from its front to the hash map
    /// until what is left is at least half full: a few values left behind at the
    /// front (a long task's, or one whose end a lossy reader never saw) no longer
    /// hold open a run of empty slots, and the dense rest (the tasks still queued
    /// behind them) stays in the run. A run empty all through moves entirely.
    fn trim(&mut self) {
        self.pop_empty_front();
        while let Some(None) = self.run.back() {
            self.run.pop_back();
        }
        let ratio = const { sparse_ratio::<V>() };
        if self.run.len() >= MIN_COMPACT && self.in_run * ratio < self.run.len() {
            while self.in_run * (ratio / 2) < self.run.len() {
                if let Some(Some(value)) = self.run.pop_front() {
                    self.sparse.insert(self.base, value);
                    self.in_run -= 1;
                }
                self.base += 1;
            }
            self.pop_empty_front();
        }
    }

    /// Drops the empty slots at the front of the run.
    fn pop_empty_front(&mut self) {
        while let Some(None) = self.run.front() {
            self.run.pop_front();
            self.base += 1;
        }
    }

    /// Every id and its value: the run's in id order, then the others in no order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let base = self.base;
        self.run
            .iter()
            .enumerate()
            .filter_map(move |(i, slot)| slot.as_ref().map(|v| (base + i as u64, v)))
            .chain(self.sparse.iter().map(|(&id, v)| (id, v)))
    }

    /// Removes every value, returning them with their ids (the run's in id order).
    pub fn drain(&mut self) -> impl Iterator<Item = (u64, V)> {
        let base = self.base;
        let run = std::mem::take(&mut self.run);
        self.in_run = 0;
        run.into_iter_slots()
            .enumerate()
            .filter_map(move |(i, slot)| slot.map(|v| (base + i as u64, v)))
            .chain(std::mem::take(&mut self.sparse))
    }

    /// Every value, in the order of [`DenseTable::iter`].
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

impl<V> Index<&u64> for DenseTable<V> {
    type Output = V;

    /// The value of `id`; panics if it has none (as a map's index does).
    fn index(&self, id: &u64) -> &V {
        self.get(id)
            .unwrap_or_else(|| panic!("no value for id {id} in the table"))
    }
}

#[cfg(test)]
mod tests {
    use super::{sparse_ratio, DenseTable, MAX_GAP, MIN_COMPACT};
    use std::collections::HashMap;

    #[test]
    fn consecutive_ids_stay_in_the_run() {
        let mut t = DenseTable::new();
        for id in 1000..3000u64 {
            assert_eq!(t.insert(id, id * 2), None);
        }
        assert_eq!(t.len(), 2000);
        assert!(t.sparse.is_empty(), "consecutive ids need no hash map");
        assert_eq!(t[&1500], 3000);
        assert_eq!(t.get(&999), None);
        assert_eq!(t.get(&3000), None);
        assert_eq!(
            t.insert(1500, 7),
            Some(3000),
            "replacing returns the old value"
        );
        assert_eq!(t.remove(&1000), Some(2000));
        assert_eq!(t.base, 1001, "the emptied front slot is dropped");
        assert_eq!(t.remove(&1000), None, "removing twice finds nothing");
    }

    #[test]
    fn far_ids_reused_ids_and_extremes_go_to_the_hash_map() {
        let mut t = DenseTable::new();
        t.insert(1000, 'a');
        t.insert(u64::MAX, 'z');
        t.insert(0, 'o');
        t.insert(1000 + MAX_GAP + 2, 'f');
        assert_eq!(t.len(), 4);
        assert_eq!(t.sparse.len(), 3);
        for (id, v) in [
            (1000, 'a'),
            (u64::MAX, 'z'),
            (0, 'o'),
            (1000 + MAX_GAP + 2, 'f'),
        ] {
            assert_eq!(t.get(&id), Some(&v), "id {id}");
        }
        // The run grows over an id kept in the hash map: it is still found once.
        t.insert(1001 + MAX_GAP, 'g');
        assert_eq!(t.insert(1000 + MAX_GAP + 2, 'F'), Some('f'));
        assert_eq!(t.len(), 5);
        assert_eq!(t.iter().count(), 5);
        assert_eq!(t.remove(&(1000 + MAX_GAP + 2)), Some('F'));
        assert_eq!(t.get(&(1000 + MAX_GAP + 2)), None);
        assert_eq!(t.remove(&u64::MAX), Some('z'));
        assert_eq!(t.remove(&u64::MAX), None);
    }

    #[test]
    fn small_gaps_and_ids_just_before_the_run_join_it() {
        let mut t = DenseTable::new();
        t.insert(100, 0);
        t.insert(100 + MAX_GAP + 1, 1);
        t.insert(100 - MAX_GAP - 1, 2);
        assert!(t.sparse.is_empty());
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(&101), None, "a skipped id has no value");
        assert_eq!(t.remove(&101), None);
        assert_eq!(t.remove(&(100 - MAX_GAP - 1)), Some(2));
        assert_eq!(
            t.base, 100,
            "the empty slots before the next value are dropped"
        );
    }

    #[test]
    fn a_run_emptied_out_of_order_moves_its_values_to_the_hash_map() {
        let mut t = DenseTable::new();
        let n = 4 * MIN_COMPACT as u64;
        for id in 0..n {
            t.insert(id, id);
        }
        // Keep every eighth value, but the first and last, so the run cannot shrink.
        for id in 1..n - 1 {
            if id % 8 != 0 {
                t.remove(&id);
            }
        }
        assert!(
            t.run.len() < MIN_COMPACT && t.sparse.len() > t.in_run,
            "a run sparse all through is compacted: {} of {} slots in use, {} moved",
            t.in_run,
            t.run.len(),
            t.sparse.len()
        );
        let kept: Vec<u64> = (0..n).filter(|id| id % 8 == 0 || *id == n - 1).collect();
        assert_eq!(t.len(), kept.len());
        for id in &kept {
            assert_eq!(t.get(id), Some(id));
        }
        // The run goes on after compaction.
        let in_run = t.in_run;
        t.insert(n, n);
        assert_eq!(t.get(&n), Some(&n));
        assert_eq!(t.in_run, in_run + 1);
    }

    #[test]
    fn small_values_stay_in_a_sparser_run_than_large_ones() {
        assert_eq!(sparse_ratio::<[u64; 8]>(), 4);
        assert_eq!(sparse_ratio::<std::num::NonZeroU16>(), 16);
        let n = 16 * MIN_COMPACT as u64;
        let mut small = DenseTable::new();
        let mut large = DenseTable::new();
        for id in 0..n {
            small.insert(id, std::num::NonZeroU16::MIN);
            large.insert(id, [id; 8]);
        }
        // One value in eight left, the first and last among them.
        for id in 1..n - 1 {
            if id % 8 != 0 {
                small.remove(&id);
                large.remove(&id);
            }
        }
        assert!(
            small.sparse.is_empty(),
            "2-byte slots: cheaper than the map"
        );
        assert!(
            large.sparse.len() > large.in_run,
            "64-byte slots: compacted"
        );
        assert_eq!(small.len(), large.len());
    }

    #[test]
    fn values_left_behind_at_the_front_go_to_the_hash_map_and_the_dense_rest_stays() {
        // Tasks 0..n queued; four in five end, in order, except that the first two
        // never do (a long task, or one whose end a lossy reader missed).
        let mut t = DenseTable::new();
        let n = 100 * MIN_COMPACT as u64;
        for id in 0..n {
            t.insert(id, id);
        }
        let ended = n / 5 * 4;
        for id in 2..ended {
            t.remove(&id);
        }
        assert_eq!(t.sparse.len(), 2, "only the two left behind moved");
        assert_eq!((t.base, t.in_run), (ended, (n - ended) as usize));
        assert_eq!(t.len(), (n - ended) as usize + 2);
        for id in [0, 1, ended, n - 1] {
            assert_eq!(t.get(&id), Some(&id));
        }
        assert_eq!(t.remove(&0), Some(0));
        assert_eq!(t.get(&(ended - 1)), None);
        // New ids still join the run.
        t.insert(n, n);
        assert_eq!(t.in_run, (n - ended) as usize + 1);
    }

    #[test]
    fn behaves_as_a_hash_map_under_random_operations() {
        let mut t = DenseTable::new();
        let mut m = HashMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for step in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Mostly ids near a moving front, some far away.
            let id = match state % 10 {
                0 => state >> 20,
                _ => step / 2 + (state >> 40) % 100,
            };
            if state.is_multiple_of(3) {
                assert_eq!(t.remove(&id), m.remove(&id), "remove {id} at {step}");
            } else {
                assert_eq!(
                    t.insert(id, step),
                    m.insert(id, step),
                    "insert {id} at {step}"
                );
            }
            assert_eq!(t.len(), m.len());
        }
        let mut listed: Vec<(u64, u64)> = t.iter().map(|(id, v)| (id, *v)).collect();
        let mut expected: Vec<(u64, u64)> = m.into_iter().collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        let mut drained: Vec<(u64, u64)> = t.drain().collect();
        drained.sort_unstable();
        assert_eq!(drained, expected);
        assert!(t.is_empty() && t.iter().next().is_none());
    }

    #[test]
    #[should_panic(expected = "no value for id 7")]
    fn indexing_a_missing_id_panics_with_the_id() {
        let t: DenseTable<u8> = DenseTable::new();
        let _ = t[&7];
    }

    #[test]
    fn a_wider_gap_keeps_ids_with_holes_in_the_run() {
        let mut t = DenseTable::with_max_gap(1000);
        t.insert(1, 'a');
        t.insert(900, 'b');
        t.insert(1_901, 'c');
        t.insert(2_903, 'd'); // past the gap: to the hash map
        assert_eq!((t.in_run, t.sparse.len()), (3, 1));
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [(1, &'a'), (900, &'b'), (1_901, &'c'), (2_903, &'d')]
        );
        let mut narrow = DenseTable::new();
        narrow.insert(1, 'a');
        narrow.insert(900, 'b');
        assert_eq!((narrow.in_run, narrow.sparse.len()), (1, 1));
    }
}
