//! The node descriptions this thread shares between the graph nodes of plain
//! functions (see `graph::shared_node_task`): a few, the most recently used
//! first, found by the type of the function with its argument and result types.

use crate::graph::NodeTask;
use std::any::TypeId;
use std::cell::RefCell;
use std::sync::Arc;

/// How many descriptions a thread keeps.
const KEPT: usize = 16;

thread_local! {
    static KEPT_TASKS: RefCell<Vec<(TypeId, Arc<NodeTask>)>> = const { RefCell::new(Vec::new()) };
}

/// The description kept for `kind`, else the one `make` makes (then kept).
pub(crate) fn shared(kind: TypeId, make: impl FnOnce() -> Arc<NodeTask>) -> Arc<NodeTask> {
    KEPT_TASKS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some(at) = kept.iter().position(|(known, _)| *known == kind) {
            kept[..=at].rotate_right(1);
            return kept[0].1.clone();
        }
        let made = make();
        kept.truncate(KEPT - 1);
        kept.insert(0, (kind, made.clone()));
        made
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of descriptions `shared` made while `kinds` were asked in turn.
    fn made_for(kinds: &[TypeId]) -> usize {
        let mut made = 0;
        for &kind in kinds {
            shared(kind, || {
                made += 1;
                crate::graph::test_node_task()
            });
        }
        made
    }

    fn kind<const N: usize>() -> TypeId {
        TypeId::of::<[u8; N]>()
    }

    #[test]
    fn a_kind_is_made_once_and_the_least_recently_used_goes_first() {
        KEPT_TASKS.with(|kept| kept.borrow_mut().clear());
        let (a, b, c) = (kind::<100>(), kind::<101>(), kind::<102>());
        assert_eq!(made_for(&[a, b, a, b, c]), 3);
        assert!(Arc::ptr_eq(
            &shared(a, crate::graph::test_node_task),
            &shared(a, crate::graph::test_node_task)
        ));
        let others = [
            kind::<0>(),
            kind::<1>(),
            kind::<2>(),
            kind::<3>(),
            kind::<4>(),
            kind::<5>(),
            kind::<6>(),
            kind::<7>(),
            kind::<8>(),
            kind::<9>(),
            kind::<10>(),
            kind::<11>(),
            kind::<12>(),
            kind::<13>(),
            kind::<14>(),
        ];
        assert_eq!(made_for(&others), KEPT - 1);
        // `a` was used last of the first three, so it alone is still kept.
        assert_eq!(made_for(&[a]), 0);
        assert_eq!(made_for(&[b, c]), 2);
        assert_eq!(KEPT_TASKS.with(|kept| kept.borrow().len()), KEPT);
    }
}
