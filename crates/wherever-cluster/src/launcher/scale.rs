//! Scaling a launched cluster to a number of workers (Dask's `cluster.scale(n)`):
//! up, the launcher starts more units; down, the scheduler retires whole groups
//! gracefully (idle ones first, then those holding least), and once their workers
//! have left, the launcher releases them ([`LaunchedWorkers::left`]).

use super::{LaunchedCluster, LaunchedWorkers, WorkerLaunch};
use crate::server::Control;
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};
use wherever_scheduler::reactor::ClusterStatus;

/// What one scaling step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleStep {
    /// Units the launcher was asked to start.
    pub units_added: usize,
    /// Groups the scheduler was asked to retire.
    pub groups_retired: Vec<String>,
    /// Units still starting (queued jobs) that were cancelled.
    pub units_cancelled: usize,
}

/// The launched workers of a cluster and what scaling them needs (shared with
/// the adapt loop).
pub(super) struct Scaler {
    /// The launched workers.
    pub(super) workers: Arc<Mutex<Box<dyn LaunchedWorkers>>>,
    /// The plan level the launcher serves, for messages.
    pub(super) plan: String,
    /// What every worker it starts needs.
    pub(super) launch: WorkerLaunch,
    /// Asks the scheduler about its workers and queue, and to retire workers.
    pub(super) control: Control,
}

impl LaunchedCluster {
    /// The plan level of this cluster's launcher (`processes:2`).
    pub fn plan(&self) -> &str {
        &self.scaler.plan
    }

    /// The connected workers (retiring ones included) and the scheduler's queue.
    pub fn status(&self) -> Result<ClusterStatus, String> {
        self.scaler.control.status()
    }

    /// Grows or shrinks the cluster to `workers` workers: up, the launcher starts
    /// enough units (rounded up to whole units of
    /// [`LaunchedWorkers::workers_per_unit`]); down, units still starting (queued
    /// jobs) are cancelled first, whole ones while at least `workers` stay, then
    /// the scheduler retires whole groups gracefully, idle ones first, then those holding the fewest bytes,
    /// as long as at least `workers` stay. Returns at once: workers join or leave
    /// in the background. Counted are the connected workers not retiring, plus
    /// those the launcher is still starting. An error for a plan whose workers are
    /// a fixed set (it names the plan), or if the launcher cannot start more.
    pub fn scale(&self, workers: usize) -> Result<ScaleStep, String> {
        let status = self.status()?;
        self.scaler.scale_with(workers, &status, usize::MAX, true)
    }
}

impl Scaler {
    /// Whether the launcher can start more workers; an error naming the plan if not.
    pub(super) fn check_can_scale(&self, what: &str) -> Result<(), String> {
        if self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .can_scale()
        {
            return Ok(());
        }
        if self.plan.starts_with("slurm:per-task") {
            return Err(format!(
                "`{}` submits one job per task by itself: it cannot {what} (use \
                 slurm:jobs=N to scale or adapt a set of workers)",
                self.plan
            ));
        }
        Err(format!(
            "`{}` runs a fixed set of workers: it cannot {what} (scale and adapt need \
             a plan that starts workers, such as processes:N or slurm:jobs=N)",
            self.plan
        ))
    }

    /// [`LaunchedCluster::scale`] from `status`, starting at most `max_units` units,
    /// and cancelling queued units above `target` only if `cancel_queued`.
    pub(super) fn scale_with(
        &self,
        target: usize,
        status: &ClusterStatus,
        max_units: usize,
        cancel_queued: bool,
    ) -> Result<ScaleStep, String> {
        self.check_can_scale("scale")?;
        let mut launched = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let groups: Vec<String> = status.workers.iter().map(|w| w.group.clone()).collect();
        launched.connected(&groups);
        let active = status.workers.iter().filter(|w| !w.retiring).count();
        let have = active + launched.starting();
        let mut step = ScaleStep::default();
        if target > have {
            let per_unit = launched.workers_per_unit().max(1);
            step.units_added = (target - have).div_ceil(per_unit).min(max_units);
            if step.units_added > 0 {
                // The workers there are get their lower share before the new
                // ones start, so the shares never add up to more than the machine.
                if let Some(limit) = launched.share_memory(step.units_added * per_unit) {
                    self.control.set_memory_limit(limit)?;
                }
                launched.add(step.units_added, &self.launch)?;
            }
        } else if target < have && cancel_queued {
            // Queued units first: they hold nothing and run nothing.
            let per_unit = launched.workers_per_unit().max(1);
            let starting_units = launched.starting().div_ceil(per_unit);
            let units = ((have - target) / per_unit).min(starting_units);
            if units > 0 {
                step.units_cancelled = launched.cancel_starting(units) / per_unit;
            }
        }
        if target < active {
            drop(launched);
            step.groups_retired = groups_to_retire(status, target);
            if !step.groups_retired.is_empty() {
                self.control.retire(step.groups_retired.clone())?;
            }
        }
        Ok(step)
    }
}

/// The groups to retire so that at least `target` of the connected workers that
/// are not retiring stay: whole groups, idle ones first, then those holding the
/// fewest bytes (ties: by name); a group with a retiring worker is not chosen.
pub fn groups_to_retire(status: &ClusterStatus, target: usize) -> Vec<String> {
    let mut groups: BTreeMap<&str, GroupLoad> = BTreeMap::new();
    for w in &status.workers {
        let g = groups.entry(w.group.as_str()).or_default();
        g.workers += 1;
        g.processing += w.processing;
        g.held_bytes += w.held_bytes;
        g.retiring |= w.retiring;
    }
    let mut active = status.workers.iter().filter(|w| !w.retiring).count();
    let mut candidates: Vec<(&str, GroupLoad)> =
        groups.into_iter().filter(|(_, g)| !g.retiring).collect();
    candidates.sort_by_key(|&(name, g)| (g.processing > 0, g.held_bytes, name));
    let mut chosen = Vec::new();
    for (name, g) in candidates {
        if active >= target + g.workers {
            active -= g.workers;
            chosen.push(name.to_string());
        }
    }
    chosen
}

/// What a group of workers has, for choosing groups to retire.
#[derive(Debug, Default, Clone, Copy)]
struct GroupLoad {
    /// Its connected workers.
    workers: usize,
    /// Tasks assigned to them.
    processing: usize,
    /// The bytes of the results they hold.
    held_bytes: u64,
    /// Whether any of them is retiring already.
    retiring: bool,
}

/// Calls [`LaunchedWorkers::left`] for each batch of groups the scheduler reports
/// as gone, on a thread of its own, until the scheduler stops; where the workers'
/// memory limit is a share of the machine, the workers that stay get their larger
/// share once the others have gone.
pub(super) fn reap_groups_that_left(
    groups_left: mpsc::Receiver<Vec<String>>,
    workers: Arc<Mutex<Box<dyn LaunchedWorkers>>>,
    control: Control,
) {
    let reaper = move || {
        while let Ok(groups) = groups_left.recv() {
            tracing::info!("workers retired and left: {}", groups.join(", "));
            let mut workers = workers.lock().unwrap_or_else(|p| p.into_inner());
            workers.left(&groups);
            if let Some(limit) = workers.share_memory(0) {
                drop(workers);
                if let Err(error) = control.set_memory_limit(limit) {
                    tracing::warn!("cannot give the workers their new memory limit: {error}");
                }
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("wherever-reaper".into())
        .spawn(reaper)
    {
        tracing::warn!("cannot start the thread that releases retired workers: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wherever_scheduler::reactor::WorkerStatus;

    fn worker(id: u64, group: &str, processing: usize, held_bytes: u64) -> WorkerStatus {
        WorkerStatus {
            id,
            name: format!("{group}.{id}"),
            group: group.to_string(),
            slots: 1,
            processing,
            held: 0,
            held_bytes,
            retiring: false,
            limited_tasks: Vec::new(),
        }
    }

    #[test]
    fn idle_groups_go_first_then_those_holding_least_and_whole_groups_only() {
        let status = ClusterStatus {
            workers: vec![
                worker(1, "busy", 3, 0),
                worker(2, "big", 0, 1000),
                worker(3, "small", 0, 10),
                worker(4, "pair", 0, 5),
                worker(5, "pair", 1, 0),
            ],
            ..ClusterStatus::default()
        };
        assert_eq!(groups_to_retire(&status, 4), ["small"]);
        assert_eq!(groups_to_retire(&status, 3), ["small", "big"]);
        // Busy ones last (fewest bytes first among them); never half of the pair.
        assert_eq!(groups_to_retire(&status, 1), ["small", "big", "busy"]);
        assert_eq!(groups_to_retire(&status, 5), Vec::<String>::new());
        assert_eq!(groups_to_retire(&status, 0).len(), 4);
    }

    #[test]
    fn a_group_already_retiring_is_neither_counted_nor_chosen() {
        let mut retiring = worker(2, "b", 0, 0);
        retiring.retiring = true;
        let status = ClusterStatus {
            workers: vec![worker(1, "a", 0, 0), retiring, worker(3, "c", 0, 1)],
            ..ClusterStatus::default()
        };
        assert_eq!(groups_to_retire(&status, 1), ["a"]);
    }
}
