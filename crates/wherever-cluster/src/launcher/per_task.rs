//! One batch job per task (`slurm:per-task`, R batchtools' model): a loop on a
//! thread of its own reads the scheduler's queue every [`PER_TASK_INTERVAL`] and
//! keeps one unit (a job of one worker that takes one task, then retires) started
//! for each ready task no worker has taken yet, with at most `max_pending` units
//! starting at once. The scheduler places at most one task on each such worker
//! ([`wherever_scheduler::task_limit`]) and retires it once its task is done and
//! the client has the result; the launcher then sees its group leave
//! ([`super::LaunchedWorkers::left`]). Workers that took a task are reported to
//! the launcher ([`super::LaunchedWorkers::task_placed`]) as soon as the server
//! sees them ([`crate::server::Control::watch_placements`]), and the launcher
//! names the job after its task while it runs (Slurm renames no ended job: a job
//! whose task and exit take less than an `scontrol update` keeps its first name).

use super::adapt::Adapting;
use super::scale::Scaler;
use super::LaunchedCluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use wherever_scheduler::reactor::ClusterStatus;

/// How often the per-task loop reads the queue.
pub const PER_TASK_INTERVAL: Duration = Duration::from_millis(250);

/// How many more units to start: one per ready task not covered by a unit
/// starting or a connected worker that has not taken its task yet, at most
/// `max_pending` starting in all.
pub fn units_to_start(status: &ClusterStatus, starting: usize, max_pending: usize) -> usize {
    let waiting_for_a_task = status
        .workers
        .iter()
        .filter(|w| !w.retiring && w.processing == 0 && w.limited_tasks.is_empty())
        .count();
    let uncovered = status.ready.saturating_sub(starting + waiting_for_a_task);
    uncovered.min(max_pending.saturating_sub(starting))
}

impl LaunchedCluster {
    /// Starts the per-task loop (see the [module documentation](self)); it ends
    /// with the cluster.
    pub(super) fn start_per_task(&self, max_pending: usize) -> Result<(), String> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let scaler = self.scaler.clone();
        let stop_for_loop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wherever-per-task".into())
            .spawn(move || per_task_loop(scaler, max_pending.max(1), stop_for_loop))
            .map_err(|e| format!("cannot start the per-task thread: {e}"))?;
        *self.adapting.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Adapting::new(stop, thread));
        Ok(())
    }
}

/// The loop behind [`LaunchedCluster::start_per_task`]; ends when stopped.
fn per_task_loop(scaler: Arc<Scaler>, max_pending: usize, stop: Arc<(Mutex<bool>, Condvar)>) {
    let logged_error = AtomicBool::new(false);
    // Woken at once when a task goes to a worker, to name its job while it runs.
    let placed = scaler.control.watch_placements().ok();
    loop {
        let stopping = match &placed {
            Some(placed) => {
                let _ = placed.recv_timeout(PER_TASK_INTERVAL);
                *stop.0.lock().unwrap_or_else(|p| p.into_inner())
            }
            None => {
                let (stopped, wake) = &*stop;
                let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                let (guard, _) = wake
                    .wait_timeout_while(guard, PER_TASK_INTERVAL, |stopped| !*stopped)
                    .unwrap_or_else(|p| p.into_inner());
                *guard
            }
        };
        let outcome = scaler.control.status().and_then(|status| {
            let mut launched = scaler.workers.lock().unwrap_or_else(|p| p.into_inner());
            let groups: Vec<String> = status.workers.iter().map(|w| w.group.clone()).collect();
            launched.connected(&groups);
            for placed in &status.limited_placements {
                launched.task_placed(&placed.group, &[(placed.task.clone(), placed.position)]);
            }
            if stopping {
                return Ok(()); // a last look, to name the last jobs; nothing new
            }
            let units = units_to_start(&status, launched.starting(), max_pending);
            if units > 0 {
                launched.add(units, &scaler.launch)?;
            }
            Ok(())
        });
        if let Err(error) = outcome {
            if !logged_error.swap(true, Ordering::Relaxed) {
                tracing::warn!("per-task jobs: {error}");
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wherever_scheduler::reactor::WorkerStatus;

    fn worker(processing: usize, placed: bool, retiring: bool) -> WorkerStatus {
        WorkerStatus {
            id: 1,
            name: "1.0".into(),
            group: "1".into(),
            slots: 1,
            processing,
            held: 0,
            held_bytes: 0,
            retiring,
            limited_tasks: if placed {
                vec![("calc_mean".into(), 0)]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn one_unit_per_ready_task_not_covered_within_the_cap() {
        let status = |ready, workers| ClusterStatus {
            workers,
            ready,
            ..ClusterStatus::default()
        };
        assert_eq!(units_to_start(&status(6, vec![]), 0, 16), 6);
        assert_eq!(units_to_start(&status(6, vec![]), 2, 16), 4);
        assert_eq!(units_to_start(&status(40, vec![]), 0, 16), 16);
        assert_eq!(units_to_start(&status(40, vec![]), 16, 16), 0);
        // A connected worker without its task yet covers one ready task; busy or
        // retiring ones do not.
        let workers = vec![
            worker(0, false, false),
            worker(1, true, false),
            worker(0, true, true),
        ];
        assert_eq!(units_to_start(&status(3, workers), 0, 16), 2);
        assert_eq!(units_to_start(&status(0, vec![]), 0, 16), 0);
    }
}
