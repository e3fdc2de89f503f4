//! Small per-worker counters kept on a task record: [`PerWorker`].

use crate::WorkerId;

/// Per worker, a count; a worker is listed only while its count is not zero. One
/// worker's count is kept inline (the usual case: a task computed once), so a task
/// record needs no allocation for it.
pub(crate) type PerWorker = smallvec::SmallVec<[(WorkerId, u32); 1]>;

/// Adds one to `worker`'s count.
pub(crate) fn bump(counts: &mut PerWorker, worker: WorkerId) {
    add(counts, worker, 1);
}

/// Adds `n` (not zero) to `worker`'s count.
pub(crate) fn add(counts: &mut PerWorker, worker: WorkerId, n: u32) {
    match counts.iter_mut().find(|(w, _)| *w == worker) {
        Some((_, c)) => *c += n,
        None => counts.push((worker, n)),
    }
}

/// Takes one from `worker`'s count; `false` if it was zero.
pub(crate) fn take_one(counts: &mut PerWorker, worker: WorkerId) -> bool {
    let Some(i) = counts.iter().position(|(w, _)| *w == worker) else {
        return false;
    };
    counts[i].1 -= 1;
    if counts[i].1 == 0 {
        counts.swap_remove(i);
        if counts.is_empty() && counts.spilled() {
            *counts = PerWorker::new(); // give back the heap block of a past crowd
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{add, bump, take_one, PerWorker};

    #[test]
    fn counts_list_only_workers_with_a_count() {
        let mut c = PerWorker::new();
        assert!(!take_one(&mut c, 1));
        add(&mut c, 1, 2);
        bump(&mut c, 2);
        assert!(take_one(&mut c, 1));
        assert!(take_one(&mut c, 1));
        assert!(!take_one(&mut c, 1));
        assert_eq!(c.as_slice(), &[(2, 1)]);
        assert!(take_one(&mut c, 2));
        assert!(!c.spilled(), "an emptied list gives its heap block back");
        bump(&mut c, 3);
        assert!(!c.spilled(), "one worker's count is kept inline");
    }
}
