//! Telling a client that its scheduler has no workers: a notice on stderr once
//! tasks have waited a while with no worker, and, if configured, an error for the
//! waiting tasks after a longer time with none (instead of waiting forever).

use super::Shared;
use crate::protocol::{Message, TaskId};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc::WeakUnboundedSender;
use tokio::time::Instant;
use wherever_core::{TaskError, TaskErrorKind};

/// Seconds with tasks waiting and no worker before the client prints a notice.
pub const NOTICE_VARIABLE: &str = "WHEREVER_NO_WORKERS_NOTICE";

/// Seconds with tasks waiting and no worker before the waiting tasks fail
/// (unset: they wait for workers as long as it takes).
pub const TIMEOUT_VARIABLE: &str = "WHEREVER_NO_WORKERS_TIMEOUT";

/// The notice delay when [`NOTICE_VARIABLE`] is not set.
pub const DEFAULT_NOTICE: Duration = Duration::from_secs(5);

/// How often the client looks.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// What the client should do about having no workers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing (yet).
    Wait,
    /// Print the notice (said once per stretch without workers).
    Notice,
    /// Fail the waiting tasks.
    Fail,
}

/// The pure rule: how long tasks have waited with no workers, and what that calls for.
#[derive(Debug)]
pub(crate) struct Watch {
    notice: Duration,
    timeout: Option<Duration>,
    since: Option<Instant>,
    noticed: bool,
}

impl Watch {
    /// A watch that notices after `notice` and fails after `timeout` (if any).
    pub(crate) fn new(notice: Duration, timeout: Option<Duration>) -> Self {
        Watch {
            notice,
            timeout,
            since: None,
            noticed: false,
        }
    }

    /// At `now`, with tasks `waiting` or not and `workers` workers: the verdict.
    pub(crate) fn look(&mut self, now: Instant, waiting: bool, workers: u32) -> Verdict {
        if !waiting || workers > 0 {
            self.since = None;
            if workers > 0 {
                self.noticed = false;
            }
            return Verdict::Wait;
        }
        let since = *self.since.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        if self.timeout.is_some_and(|timeout| waited >= timeout) {
            self.since = None;
            return Verdict::Fail;
        }
        if waited >= self.notice && !self.noticed {
            self.noticed = true;
            return Verdict::Notice;
        }
        Verdict::Wait
    }
}

/// Reads a number of seconds from `variable`; `None` if unset or not a number.
fn seconds(variable: &str) -> Option<Duration> {
    std::env::var(variable)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Watches `shared` until the client is gone or disconnected: prints the notice
/// and fails (and cancels, through `commands`) waiting tasks as [`Watch`] says.
pub(super) async fn watch(shared: Weak<Shared>, commands: WeakUnboundedSender<Message>) {
    let timeout = seconds(TIMEOUT_VARIABLE);
    let mut rule = Watch::new(seconds(NOTICE_VARIABLE).unwrap_or(DEFAULT_NOTICE), timeout);
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let waiting = {
            let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.len()
        };
        let workers = shared.workers.load(Ordering::Relaxed);
        match rule.look(Instant::now(), waiting > 0, workers) {
            Verdict::Wait => {}
            Verdict::Notice => eprintln!(
                "wherever: {waiting} task(s) are waiting and the scheduler at {} has no \
                 workers for this program's build (start workers of this program with \
                 WHEREVER_WORKER=tcp://{}; set {TIMEOUT_VARIABLE} to fail instead of waiting)",
                shared.scheduler, shared.scheduler
            ),
            Verdict::Fail => fail_waiting(&shared, &commands, timeout.unwrap_or_default()),
        }
    }
}

/// Fails every waiting task with an error saying there were no workers, and
/// cancels them at the scheduler.
fn fail_waiting(shared: &Arc<Shared>, commands: &WeakUnboundedSender<Message>, waited: Duration) {
    let waiting: Vec<(TaskId, super::TaskEnd)> = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    if let Some(commands) = commands.upgrade() {
        let tasks = waiting.iter().map(|(task, _)| *task).collect();
        let _ = commands.send(Message::Cancel { tasks });
    }
    let message = format!(
        "the scheduler at {} had no workers for this program's build for {} s \
         ({TIMEOUT_VARIABLE})",
        shared.scheduler,
        waited.as_secs_f64()
    );
    for (_, end) in waiting {
        end.arrive(Err(TaskError::new(
            "?",
            0,
            TaskErrorKind::Runtime,
            message.clone(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_comes_once_after_its_delay_and_only_with_tasks_waiting() {
        let start = Instant::now();
        let mut watch = Watch::new(Duration::from_secs(5), None);
        assert_eq!(watch.look(start, false, 0), Verdict::Wait);
        assert_eq!(watch.look(start, true, 0), Verdict::Wait);
        let later = start + Duration::from_secs(5);
        assert_eq!(watch.look(later, true, 0), Verdict::Notice);
        assert_eq!(
            watch.look(later + Duration::from_secs(60), true, 0),
            Verdict::Wait
        );
    }

    #[test]
    fn workers_reset_the_clock_and_the_timeout_fails_the_waiting() {
        let start = Instant::now();
        let mut watch = Watch::new(Duration::from_secs(5), Some(Duration::from_secs(10)));
        watch.look(start, true, 0);
        assert_eq!(
            watch.look(start + Duration::from_secs(8), true, 1),
            Verdict::Wait
        );
        let again = start + Duration::from_secs(9);
        watch.look(again, true, 0);
        assert_eq!(
            watch.look(again + Duration::from_secs(5), true, 0),
            Verdict::Notice
        );
        assert_eq!(
            watch.look(again + Duration::from_secs(10), true, 0),
            Verdict::Fail
        );
    }
}
