//! Ready graph jobs of a thread pool, ordered by [`GraphRank`]: the pool's FIFO
//! queue carries one ticket per ranked job, and a thread running a ticket runs the
//! best-ranked job waiting then, not the one the ticket was queued for. So a
//! consumer that became ready overtakes the leaves queued before it.

use super::rank::GraphRank;
use super::Job;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

/// The waiting ranked jobs of one pool.
#[derive(Clone, Default)]
pub(crate) struct RankedJobs {
    heap: Arc<Mutex<BinaryHeap<Reverse<Ranked>>>>,
}

/// A job and its rank; ties keep their arrival order.
struct Ranked {
    rank: GraphRank,
    arrival: u64,
    job: Job,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        (self.rank, self.arrival) == (other.rank, other.arrival)
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.rank, self.arrival).cmp(&(other.rank, other.arrival))
    }
}

impl RankedJobs {
    /// Keeps `job` at `rank` and returns its ticket: the job to queue in its place,
    /// which runs the best-ranked job waiting when it runs.
    pub(crate) fn ticket(&self, rank: GraphRank, job: Job) -> Job {
        static ARRIVALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let arrival = ARRIVALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().push(Reverse(Ranked { rank, arrival, job }));
        let jobs = self.clone();
        Box::new(move || {
            // One ticket per job kept: the heap is never empty here.
            let best = jobs.lock().pop();
            if let Some(Reverse(best)) = best {
                (best.job)();
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<Ranked>>> {
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_run_the_best_ranked_job_waiting() {
        let jobs = RankedJobs::default();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let rank = |index| GraphRank { graph: 0, index };
        let tickets: Vec<Job> = [5, 1, 3, 1]
            .into_iter()
            .enumerate()
            .map(|(n, index)| {
                let ran = ran.clone();
                jobs.ticket(rank(index), Box::new(move || ran.lock().unwrap().push(n)))
            })
            .collect();
        for ticket in tickets {
            ticket();
        }
        // Ranks 1 (arrived second), 1 (fourth), 3, 5.
        assert_eq!(*ran.lock().unwrap(), vec![1, 3, 2, 0]);
    }
}
