//! The rank of a graph task on the local executors: a depth-first order of its
//! graph (a simple `dask.order`), so that a consumer runs as soon as its inputs are
//! there, before more leaves start. The graph code sets it while it submits a task;
//! the submission code reads it then, and hands it to the executor with the job.

use std::cell::Cell;

/// Where a graph task comes in the order its local executor runs ready tasks:
/// lower first; earlier graphs first, then by depth-first rank in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GraphRank {
    /// The graph's number (graphs submitted earlier come first).
    pub(crate) graph: u64,
    /// The task's place in its graph's depth-first order.
    pub(crate) index: u64,
}

thread_local! {
    static CURRENT: Cell<Option<GraphRank>> = const { Cell::new(None) };
}

/// Runs `submit` with `rank` as the rank of the tasks it submits (the outer rank
/// comes back afterwards, even if `submit` panics).
pub(crate) fn with_graph_rank<T>(rank: GraphRank, submit: impl FnOnce() -> T) -> T {
    /// Puts the outer rank back when dropped.
    struct Restore(Option<GraphRank>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(rank))));
    submit()
}

/// The rank of the graph task being submitted in this thread, if any (futures
/// submitted directly have none: they run first come, first served).
pub(crate) fn current_graph_rank() -> Option<GraphRank> {
    CURRENT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rank_holds_while_submitting_only() {
        let rank = GraphRank { graph: 3, index: 7 };
        assert_eq!(current_graph_rank(), None);
        let inner = GraphRank { graph: 4, index: 0 };
        with_graph_rank(rank, || {
            assert_eq!(current_graph_rank(), Some(rank));
            with_graph_rank(inner, || assert_eq!(current_graph_rank(), Some(inner)));
            assert_eq!(current_graph_rank(), Some(rank));
        });
        assert_eq!(current_graph_rank(), None);
    }

    #[test]
    fn the_rank_is_put_back_after_a_panic() {
        let rank = GraphRank { graph: 1, index: 1 };
        let caught = std::panic::catch_unwind(|| with_graph_rank(rank, || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(current_graph_rank(), None);
    }

    #[test]
    fn earlier_graphs_then_lower_indices_rank_first() {
        let a = GraphRank { graph: 1, index: 9 };
        let b = GraphRank { graph: 2, index: 0 };
        let c = GraphRank { graph: 2, index: 1 };
        assert!(a < b && b < c);
    }
}
