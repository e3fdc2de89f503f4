//! [`SlotDeque`]: a double-ended queue of `Option<V>` slots kept in fixed-size
//! chunks, for [`crate::dense_table::DenseTable`]'s run.
//!
//! A `VecDeque` doubles its buffer when it fills, so a table of 2 M records holds
//! room for up to 4 M; and a queue used as a ring (records removed at the front as
//! tasks end, added at the back) touches all of that room. Here the slots sit in
//! chunks of about 64 KiB, made as the back grows and freed as the front empties:
//! at most two chunks are not full, and growing never copies a slot. One emptied
//! chunk is kept for the next one needed, so a queue that fills and empties again
//! and again (one task at a time) neither allocates nor clears a chunk each time.

use std::collections::VecDeque;

/// About how many bytes one chunk holds.
const CHUNK_BYTES: usize = 64 * 1024;

/// A deque of `Option<V>` slots in chunks; see the [module documentation](self).
#[derive(Debug, Clone)]
pub(crate) struct SlotDeque<V> {
    /// The chunks, each [`SlotDeque::chunk_len`] slots; never a chunk with no slot
    /// in use.
    chunks: VecDeque<Box<[Option<V>]>>,
    /// Index of the first slot in use within `chunks[0]`.
    head: usize,
    /// How many slots are in use (from `head` on).
    len: usize,
    /// An emptied chunk (every slot `None`) kept for the next one needed.
    spare: Option<Box<[Option<V>]>>,
}

impl<V> Default for SlotDeque<V> {
    fn default() -> Self {
        SlotDeque {
            chunks: VecDeque::new(),
            head: 0,
            len: 0,
            spare: None,
        }
    }
}

impl<V> SlotDeque<V> {
    /// Slots per chunk: about [`CHUNK_BYTES`] of them, at least 16.
    fn chunk_len() -> usize {
        (CHUNK_BYTES / std::mem::size_of::<Option<V>>().max(1)).max(16)
    }

    /// A chunk of empty slots: the spare one, or a new one.
    fn new_chunk(&mut self) -> Box<[Option<V>]> {
        self.spare.take().unwrap_or_else(|| {
            std::iter::repeat_with(|| None)
                .take(Self::chunk_len())
                .collect()
        })
    }

    /// Keeps `chunk`, whose slots are all `None`, as the spare if there is none.
    fn keep_spare(&mut self, chunk: Option<Box<[Option<V>]>>) {
        if self.spare.is_none() {
            self.spare = chunk;
        }
    }

    /// How many slots are in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is in use.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many slots the chunks hold, in use or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.len() * Self::chunk_len()
    }

    /// The chunk and the index in it of slot `i` (`i < len`).
    fn locate(&self, i: usize) -> (usize, usize) {
        let at = self.head + i;
        (at / Self::chunk_len(), at % Self::chunk_len())
    }

    /// Slot `i`, if `i < len`.
    pub(crate) fn get(&self, i: usize) -> Option<&Option<V>> {
        (i < self.len).then(|| {
            let (c, j) = self.locate(i);
            &self.chunks[c][j]
        })
    }

    /// Slot `i`, if `i < len`.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut Option<V>> {
        (i < self.len).then(|| {
            let (c, j) = self.locate(i);
            &mut self.chunks[c][j]
        })
    }

    /// The first slot in use.
    pub(crate) fn front(&self) -> Option<&Option<V>> {
        self.get(0)
    }

    /// The last slot in use.
    pub(crate) fn back(&self) -> Option<&Option<V>> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// Adds a slot at the back.
    pub(crate) fn push_back(&mut self, slot: Option<V>) {
        let (c, j) = self.locate(self.len);
        if c == self.chunks.len() {
            let chunk = self.new_chunk();
            self.chunks.push_back(chunk);
        }
        self.chunks[c][j] = slot;
        self.len += 1;
    }

    /// Adds a slot at the front.
    pub(crate) fn push_front(&mut self, slot: Option<V>) {
        if self.head == 0 {
            let chunk = self.new_chunk();
            self.chunks.push_front(chunk);
            self.head = Self::chunk_len();
        }
        self.head -= 1;
        self.chunks[0][self.head] = slot;
        self.len += 1;
    }

    /// Removes the first slot in use, returning it.
    pub(crate) fn pop_front(&mut self) -> Option<Option<V>> {
        if self.len == 0 {
            return None;
        }
        let slot = self.chunks[0][self.head].take();
        self.head += 1;
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        } else if self.head == Self::chunk_len() {
            let emptied = self.chunks.pop_front();
            self.keep_spare(emptied);
            self.head = 0;
        }
        Some(slot)
    }

    /// Removes the last slot in use, returning it.
    pub(crate) fn pop_back(&mut self) -> Option<Option<V>> {
        if self.len == 0 {
            return None;
        }
        let (c, j) = self.locate(self.len - 1);
        let slot = self.chunks[c][j].take();
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        } else if j == 0 {
            let emptied = self.chunks.pop_back();
            self.keep_spare(emptied);
        }
        Some(slot)
    }

    /// Removes every slot and frees the chunks (but one kept as the spare).
    pub(crate) fn clear(&mut self) {
        for slot in self.iter_mut_in_use() {
            *slot = None;
        }
        let first = self.chunks.pop_front();
        self.keep_spare(first);
        self.chunks = VecDeque::new();
        self.head = 0;
        self.len = 0;
    }

    /// The slots in use, to change.
    fn iter_mut_in_use(&mut self) -> impl Iterator<Item = &mut Option<V>> {
        let (head, len) = (self.head, self.len);
        self.chunks
            .iter_mut()
            .flat_map(|c| c.iter_mut())
            .skip(head)
            .take(len)
    }

    /// The slots in use, front to back.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Option<V>> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.head)
            .take(self.len)
    }

    /// The slots in use, front to back, taken out.
    pub(crate) fn into_iter_slots(self) -> impl Iterator<Item = Option<V>> {
        let (head, len) = (self.head, self.len);
        self.chunks
            .into_iter()
            .flat_map(|c| c.into_vec())
            .skip(head)
            .take(len)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::SlotDeque;

    proptest! {
        /// Pushes and pops at both ends, reads and writes of slots: the same as a
        /// `VecDeque` of `Option`s, with no chunk left unused.
        #[test]
        fn behaves_as_a_vec_deque(ops in proptest::collection::vec((0u8..7, any::<u16>()), 0..3000)) {
            let mut d: SlotDeque<u64> = SlotDeque::default();
            let mut model: VecDeque<Option<u64>> = VecDeque::new();
            let per_chunk = SlotDeque::<u64>::chunk_len();
            for (op, x) in ops {
                let slot = (x % 3 != 0).then_some(u64::from(x));
                match op {
                    0 | 1 => { d.push_back(slot); model.push_back(slot); }
                    2 => { d.push_front(slot); model.push_front(slot); }
                    3 => prop_assert_eq!(d.pop_front(), model.pop_front()),
                    4 => prop_assert_eq!(d.pop_back(), model.pop_back()),
                    5 => {
                        let i = usize::from(x) % (model.len() + 1);
                        prop_assert_eq!(d.get(i), model.get(i));
                        if let (Some(a), Some(b)) = (d.get_mut(i), model.get_mut(i)) {
                            *a = slot;
                            *b = slot;
                        }
                    }
                    _ => prop_assert_eq!(d.back(), model.back()),
                }
                prop_assert_eq!(d.len(), model.len());
                prop_assert_eq!(d.front(), model.front());
                prop_assert!(d.capacity() < d.len() + 2 * per_chunk, "at most two chunks not full");
                prop_assert!(!d.is_empty() || d.capacity() == 0, "an empty deque frees its chunks");
                prop_assert!(
                    d.spare.as_ref().is_none_or(|c| c.iter().all(Option::is_none)),
                    "the spare chunk is empty"
                );
            }
            prop_assert!(d.iter().eq(model.iter()));
            prop_assert!(d.clone().into_iter_slots().eq(model.into_iter()));
        }
    }

    #[test]
    fn filling_and_emptying_again_reuses_one_chunk() {
        let mut d: SlotDeque<u64> = SlotDeque::default();
        d.push_back(Some(1));
        let chunk = d.chunks[0].as_ptr();
        for i in 1..1_000 {
            assert_eq!(d.pop_front(), Some(Some(i)));
            d.push_back(Some(i + 1));
        }
        d.pop_front();
        d.push_front(Some(7));
        d.clear();
        d.push_back(Some(8));
        assert_eq!(d.chunks[0].as_ptr(), chunk, "no new chunk was made");
        assert_eq!(d.front(), Some(&Some(8)));
    }

    #[test]
    fn a_ring_of_a_million_slots_holds_only_the_chunks_in_use() {
        let mut d: SlotDeque<[u64; 10]> = SlotDeque::default();
        let per_chunk = SlotDeque::<[u64; 10]>::chunk_len();
        for i in 0..1_000_000u64 {
            d.push_back(Some([i; 10]));
            if i >= 1_000 {
                assert!(d.pop_front().is_some_and(|s| s.is_some()));
            }
        }
        assert_eq!(d.len(), 1_000);
        assert!(d.capacity() <= 1_000 + 2 * per_chunk);
        assert_eq!(d.front(), Some(&Some([999_000; 10])));
    }
}
