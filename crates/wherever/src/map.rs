//! How `map` splits its inputs into tasks.

use std::num::NonZeroUsize;

/// How many chunks the default scheduling makes per worker: enough that a slow
/// chunk does not leave the other workers idle for long, few enough that the cost
/// per chunk stays negligible.
pub const AUTO_CHUNKS_PER_WORKER: usize = 4;

/// How `map` splits its inputs into tasks (R's `future.scheduling` /
/// `future.chunk.size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// The default: [`AUTO_CHUNKS_PER_WORKER`] chunks per worker (fewer when there are
    /// fewer items), so overhead stays small and load stays balanced.
    #[default]
    Auto,
    /// One chunk per worker, as `future_lapply` does by default.
    Static,
    /// One task per item: best for few, long and uneven items.
    Dynamic,
    /// Chunks of exactly this many items (the last may be shorter).
    ChunkSize(NonZeroUsize),
}

impl Scheduling {
    /// Chunks of `size` items; `None` for 0.
    pub fn chunk_size(size: usize) -> Option<Self> {
        NonZeroUsize::new(size).map(Scheduling::ChunkSize)
    }

    /// The number of items per chunk for `items` items on `workers` workers; at least 1.
    pub fn items_per_chunk(self, items: usize, workers: usize) -> usize {
        let workers = workers.max(1);
        let size = match self {
            Scheduling::Auto => items.div_ceil(workers * AUTO_CHUNKS_PER_WORKER),
            Scheduling::Static => items.div_ceil(workers),
            Scheduling::Dynamic => 1,
            Scheduling::ChunkSize(size) => size.get(),
        };
        size.max(1)
    }
}

/// Splits `items` into consecutive chunks of `size` items (the last may be
/// shorter), moving each item once.
pub(crate) fn split_into_chunks<A>(mut items: Vec<A>, size: usize) -> Vec<Vec<A>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(size));
    while !items.is_empty() {
        let start = (items.len() - 1) / size * size;
        chunks.push(items.split_off(start));
    }
    chunks.reverse();
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_follow_the_scheduling() {
        assert_eq!(Scheduling::Static.items_per_chunk(100, 4), 25);
        assert_eq!(Scheduling::Static.items_per_chunk(101, 4), 26);
        assert_eq!(Scheduling::Dynamic.items_per_chunk(100, 4), 1);
        assert_eq!(
            Scheduling::chunk_size(7).unwrap().items_per_chunk(100, 4),
            7
        );
        assert_eq!(Scheduling::Auto.items_per_chunk(1_000_000, 2), 125_000);
        assert_eq!(Scheduling::Auto.items_per_chunk(3, 2), 1);
        assert_eq!(Scheduling::Auto.items_per_chunk(0, 2), 1);
        assert!(Scheduling::chunk_size(0).is_none());
    }

    #[test]
    fn splitting_keeps_every_item_in_order() {
        for (n, size) in [(0, 3), (1, 3), (9, 3), (10, 3), (10, 20)] {
            let chunks = split_into_chunks((0..n).collect::<Vec<_>>(), size);
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= size));
            assert_eq!(chunks.concat(), (0..n).collect::<Vec<_>>());
        }
    }
}
