//! [`ReadySet`]: the ready tasks, best first, laid out for a large submit.
//!
//! A `BTreeSet` of 32-byte [`ReadyKey`]s costs 40–60 bytes per ready task in its
//! nodes; with 2 M submitted roots waiting for two workers that is most of the
//! scheduler's memory per pending task (issue 14 item 5). But the keys of freshly
//! submitted tasks, `(priority, 1, id, id)`, arrive in id order, so per priority they
//! form a run that a double-ended queue of ids holds at 8 bytes each. Keys that do
//! not extend such a run (tasks made ready again, fresh ones out of id order) go to a
//! `BTreeSet`; the set's order and contents are those of one `BTreeSet` of all keys.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::id_hash::IdSet;
use crate::task::ReadyKey;
use crate::TaskId;

/// How many removed ids a run may hold before it is compacted (and then only once
/// they are at least half of it).
const MIN_COMPACT: usize = 1024;

/// A set of [`ReadyKey`]s, best (smallest) first; see the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct ReadySet {
    /// Keys not held in a fresh run.
    tree: BTreeSet<ReadyKey>,
    /// Per priority, the fresh keys `(priority, 1, id, id)` in a run of ascending ids.
    fresh: BTreeMap<Reverse<i64>, FreshRun>,
    /// How many keys are in the set.
    len: usize,
}

/// Fresh keys of one priority, by id.
#[derive(Debug, Default)]
struct FreshRun {
    /// Ascending ids; never empty and never starting with a removed one.
    ids: VecDeque<TaskId>,
    /// Ids still in `ids` that were removed from the set.
    removed: IdSet,
}

impl FreshRun {
    /// Whether `id` is in the run and not removed.
    fn contains(&self, id: TaskId) -> bool {
        self.holds(id) && !self.removed.contains(&id)
    }

    /// Whether `id` is in `ids` (removed or not). The ids ascend without repeats, so
    /// `id` can sit no further than `id - front` from the front: with no gaps before
    /// it, that one probe finds it, else a binary search does. The probe keeps the
    /// scheduler's take of the best fresh task O(1) and one cache line, where a
    /// binary search over 2 M ids touched ~20 lines (issue 14 item 5).
    fn holds(&self, id: TaskId) -> bool {
        let Some(&front) = self.ids.front() else {
            return false;
        };
        if id < front {
            return false;
        }
        let last = self.ids.len() - 1;
        let probe = usize::try_from(id - front).map_or(last, |d| d.min(last));
        match self.ids[probe].cmp(&id) {
            std::cmp::Ordering::Equal => true,
            // Gaps before `id`: it is before the probe, if anywhere.
            std::cmp::Ordering::Greater => self.ids.binary_search(&id).is_ok(),
            // The probe is the last id and smaller.
            std::cmp::Ordering::Less => false,
        }
    }

    /// Drops removed ids from the front, and compacts the run once removed ids are
    /// many and at least half of it.
    fn tidy(&mut self) {
        while let Some(&front) = self.ids.front() {
            if !self.removed.remove(&front) {
                break;
            }
            self.ids.pop_front();
        }
        if self.removed.len() >= MIN_COMPACT && self.removed.len() * 2 >= self.ids.len() {
            let removed = std::mem::take(&mut self.removed);
            self.ids.retain(|id| !removed.contains(id));
        }
    }
}

/// Whether `key` is the key of a fresh submission: tier 1, ordered by its id.
fn is_fresh(key: &ReadyKey) -> bool {
    key.1 == 1 && key.2 == key.3
}

impl ReadySet {
    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The best (smallest) key.
    pub(crate) fn first(&self) -> Option<ReadyKey> {
        let fresh = self
            .fresh
            .first_key_value()
            .map(|(&priority, run)| (priority, 1, run.ids[0], run.ids[0]));
        match (self.tree.first().copied(), fresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether it holds `key`.
    pub(crate) fn contains(&self, key: &ReadyKey) -> bool {
        self.tree.contains(key)
            || (is_fresh(key) && self.fresh.get(&key.0).is_some_and(|r| r.contains(key.3)))
    }

    /// Adds `key`; `false` if it was there.
    pub(crate) fn insert(&mut self, key: ReadyKey) -> bool {
        if is_fresh(&key) && !self.tree.contains(&key) {
            let run = self.fresh.entry(key.0).or_default();
            let id = key.3;
            let added = match run.ids.back() {
                None => {
                    run.ids.push_back(id);
                    true
                }
                Some(&last) if last < id => {
                    run.ids.push_back(id);
                    true
                }
                // In the run: back in the set if it had been removed.
                Some(_) if run.holds(id) => run.removed.remove(&id),
                // Out of order: to the tree.
                Some(_) => self.tree.insert(key),
            };
            self.len += usize::from(added);
            return added;
        }
        let added = self.tree.insert(key);
        self.len += usize::from(added);
        added
    }

    /// Removes `key`; `false` if it was not there.
    pub(crate) fn remove(&mut self, key: &ReadyKey) -> bool {
        if self.tree.remove(key) {
            self.len -= 1;
            return true;
        }
        if !is_fresh(key) {
            return false;
        }
        let Some(run) = self.fresh.get_mut(&key.0) else {
            return false;
        };
        if !run.contains(key.3) {
            return false;
        }
        run.removed.insert(key.3);
        run.tidy();
        if run.ids.is_empty() {
            self.fresh.remove(&key.0);
        }
        self.len -= 1;
        true
    }

    /// Adds every key of `keys`.
    pub(crate) fn extend(&mut self, keys: impl IntoIterator<Item = ReadyKey>) {
        for key in keys {
            self.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::{ReadySet, MIN_COMPACT};
    use crate::task::ReadyKey;

    /// A key from small numbers: fresh (tier 1, order = id) most of the time.
    fn key(priority: i64, fresh: bool, order: u64, id: u64) -> ReadyKey {
        if fresh {
            (Reverse(priority), 1, id, id)
        } else {
            (Reverse(priority), (order % 2) as u8, order, id)
        }
    }

    /// Checks `set` against the `BTreeSet` model.
    fn same(set: &ReadySet, model: &BTreeSet<ReadyKey>) {
        assert_eq!(set.len(), model.len());
        assert_eq!(set.is_empty(), model.is_empty());
        assert_eq!(set.first(), model.first().copied());
    }

    proptest! {
        /// Any mix of inserts, removes and pops keeps the order and contents of one
        /// `BTreeSet` of all keys.
        #[test]
        fn behaves_as_a_btree_set(ops in proptest::collection::vec(
            (0u8..4, -1i64..2, any::<bool>(), 0u64..40, 0u64..60), 0..300)) {
            let mut set = ReadySet::default();
            let mut model = BTreeSet::new();
            let mut next = 0u64;
            for (op, priority, fresh, order, id) in ops {
                match op {
                    0 => {
                        // A fresh submission: ids mostly ascending.
                        next += id % 3;
                        let k = key(priority, true, 0, next);
                        prop_assert_eq!(set.insert(k), model.insert(k));
                    }
                    1 => {
                        let k = key(priority, fresh, order, id);
                        prop_assert_eq!(set.insert(k), model.insert(k));
                    }
                    2 => {
                        let k = key(priority, fresh, order, id.min(next));
                        prop_assert_eq!(set.remove(&k), model.remove(&k));
                    }
                    _ => {
                        let first = set.first();
                        prop_assert_eq!(first, model.first().copied());
                        if let Some(k) = first {
                            prop_assert!(set.remove(&k) && model.remove(&k));
                        }
                    }
                }
                for k in model.iter().take(5) {
                    prop_assert!(set.contains(k));
                }
                same(&set, &model);
            }
            while let Some(k) = model.pop_first() {
                prop_assert_eq!(set.first(), Some(k));
                prop_assert!(set.remove(&k));
            }
            prop_assert!(set.is_empty() && set.fresh.is_empty() && set.tree.is_empty());
        }
    }

    #[test]
    fn fresh_keys_in_id_order_are_held_in_a_run_not_the_tree() {
        let mut set = ReadySet::default();
        for id in 0..10_000 {
            assert!(set.insert((Reverse(0), 1, id, id)));
        }
        assert!(
            set.tree.is_empty(),
            "a submit in id order uses no tree node"
        );
        assert_eq!(set.fresh[&Reverse(0)].ids.len(), 10_000);
        // Removing most from the middle (cancelled tasks) compacts the run.
        for id in 1..9_000 {
            assert!(set.remove(&(Reverse(0), 1, id, id)));
        }
        let run = &set.fresh[&Reverse(0)];
        assert!(run.removed.len() < MIN_COMPACT && run.ids.len() < 2_100);
        assert_eq!(set.len(), 1_001);
        assert_eq!(set.first(), Some((Reverse(0), 1, 0, 0)));
        // A task made ready again (tier 0) runs before the fresh ones of its priority.
        set.insert((Reverse(0), 0, u64::MAX - 1, 5));
        assert_eq!(set.first(), Some((Reverse(0), 0, u64::MAX - 1, 5)));
    }

    /// The one-probe lookup finds ids after gaps and ids behind the front, and no id
    /// beyond the run's ends or in its gaps.
    #[test]
    fn a_run_with_gaps_is_searched_past_its_probe() {
        let mut set = ReadySet::default();
        let ids = [3u64, 4, 9, 10, 11, 40, 41];
        for id in ids {
            assert!(set.insert((Reverse(0), 1, id, id)));
        }
        let run = &set.fresh[&Reverse(0)];
        for id in 0..50 {
            assert_eq!(run.holds(id), ids.contains(&id), "id {id}");
            assert_eq!(set.contains(&(Reverse(0), 1, id, id)), ids.contains(&id));
        }
        // Taking the front repeatedly (the scheduler's usual removal) moves the
        // probe's origin; the rest stay found.
        assert!(set.remove(&(Reverse(0), 1, 3, 3)));
        assert!(set.remove(&(Reverse(0), 1, 4, 4)));
        let run = &set.fresh[&Reverse(0)];
        assert_eq!(run.ids.front(), Some(&9));
        for id in 0..50 {
            assert_eq!(run.holds(id), id >= 9 && ids.contains(&id), "id {id}");
        }
    }
}
