//! Asking a running scheduler server about its workers and queue, and to retire
//! groups of workers: what `scale` and `adapt` use from the process that runs the
//! scheduler ([`control_channel`]).

use super::builds::Builds;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use wherever_scheduler::reactor::{ClusterStatus, Comm};

/// How long a control request waits for the server's answer.
pub const CONTROL_WAIT: Duration = Duration::from_secs(10);

/// A request to the server's core.
pub(super) enum Request {
    /// Answer with the workers and the queue.
    Status(mpsc::Sender<ClusterStatus>),
    /// Retire these groups; answer with how many workers are retiring for them.
    Retire(Vec<String>, mpsc::Sender<usize>),
    /// Tell every worker its new memory limit in bytes; answer with how many
    /// were told.
    SetMemoryLimit(u64, mpsc::Sender<usize>),
    /// From now on, send `()` whenever a task goes to a worker with a task limit.
    WatchPlacements(mpsc::SyncSender<()>),
}

/// The caller's end: ask the server (from any thread outside its runtime).
#[derive(Clone)]
pub struct Control {
    requests: UnboundedSender<Request>,
}

/// The server's end, given to [`super::serve_controlled`].
pub struct ControlSide {
    pub(super) requests: UnboundedReceiver<Request>,
    /// Where the server reports groups whose retired workers have all left.
    pub(super) groups_left: mpsc::Sender<Vec<String>>,
}

/// A [`Control`], the [`ControlSide`] for the server, and the receiver of the
/// groups whose retired workers have all left (in the order they left).
pub fn control_channel() -> (Control, ControlSide, mpsc::Receiver<Vec<String>>) {
    let (requests, incoming) = unbounded_channel();
    let (groups_left, left) = mpsc::channel();
    (
        Control { requests },
        ControlSide {
            requests: incoming,
            groups_left,
        },
        left,
    )
}

impl Control {
    /// The connected workers and the queue of every build's scheduler.
    pub fn status(&self) -> Result<ClusterStatus, String> {
        let (answer, answered) = mpsc::channel();
        self.ask(Request::Status(answer), answered)
    }

    /// Retires every worker of `groups` gracefully; returns how many are retiring.
    pub fn retire(&self, groups: Vec<String>) -> Result<usize, String> {
        let (answer, answered) = mpsc::channel();
        self.ask(Request::Retire(groups, answer), answered)
    }

    /// Tells every connected worker to run under a memory limit of `limit` bytes
    /// from now on (keeping its spill, pause and terminate fractions); returns how
    /// many were told.
    pub fn set_memory_limit(&self, limit: u64) -> Result<usize, String> {
        let (answer, answered) = mpsc::channel();
        self.ask(Request::SetMemoryLimit(limit, answer), answered)
    }

    /// A receiver that gets `()` soon after a task went to a worker with a task
    /// limit (a `slurm:per-task` job's), so that its launcher names the job while
    /// it still runs; several placements may give one `()`.
    pub fn watch_placements(&self) -> Result<mpsc::Receiver<()>, String> {
        let (wake, woken) = mpsc::sync_channel(1);
        self.requests
            .send(Request::WatchPlacements(wake))
            .map_err(|_| "the scheduler has stopped".to_string())?;
        Ok(woken)
    }

    fn ask<T>(&self, request: Request, answered: mpsc::Receiver<T>) -> Result<T, String> {
        self.requests
            .send(request)
            .map_err(|_| "the scheduler has stopped".to_string())?;
        answered.recv_timeout(CONTROL_WAIT).map_err(|_| {
            format!(
                "the scheduler did not answer within {} s",
                CONTROL_WAIT.as_secs()
            )
        })
    }
}

/// Answers `request` from the reactors in `builds`; a watch request joins `watchers`.
pub(super) fn answer(
    request: Request,
    builds: &mut Builds,
    comm: &mut impl Comm,
    watchers: &mut Vec<mpsc::SyncSender<()>>,
) {
    match request {
        Request::WatchPlacements(wake) => watchers.push(wake),
        Request::Status(answer) => {
            let _ = answer.send(builds.cluster_status());
        }
        Request::Retire(groups, answer) => {
            let _ = answer.send(builds.retire_groups(&groups, comm));
        }
        Request::SetMemoryLimit(limit, answer) => {
            let _ = answer.send(builds.set_memory_limit(limit, comm));
        }
    }
}

/// Wakes the `watchers` (dropping those gone); a full one is awake already.
pub(super) fn wake_watchers(watchers: &mut Vec<mpsc::SyncSender<()>>) {
    watchers.retain(|wake| !matches!(wake.try_send(()), Err(mpsc::TrySendError::Disconnected(_))));
}
