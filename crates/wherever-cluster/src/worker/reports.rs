//! Task reports held back briefly, so that a worker running many short tasks
//! sends their reports a batch at a time: one wake-up of its connection's writer
//! and one write per batch rather than per task (Dask's worker batches what it
//! tells the scheduler every 2 ms the same way).
//!
//! A task thread holds a report only while more tasks are queued behind it, the
//! task that made it was short, and the held batch is small and young; anything
//! else sends the batch at once. While the event stream is read, the `Started`
//! of a task is held the same way when the thread's previous task was short. A report can still wait behind one long task
//! that started while it was held: before a task blocks (secedes) the batch goes
//! out, and the memory monitor sends batches older than [`HOLD_AT_MOST_FOR`] on
//! its rounds, so that wait is bounded by the monitor's period (where it runs:
//! wherever resident memory can be read; elsewhere, by that one task).

use crate::protocol::Message;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// At most this many reports are held.
pub const HOLD_AT_MOST: usize = 64;

/// A held batch older than this goes out.
pub const HOLD_AT_MOST_FOR: Duration = Duration::from_millis(1);

/// Only the report of a task that ran for less than this is held.
pub const SHORT_TASK: Duration = Duration::from_micros(200);

/// The reports held for one connection, and its writer's queue.
pub struct HeldReports {
    held: Mutex<Held>,
    outgoing: UnboundedSender<Message>,
}

/// The held batch and when its oldest report was held.
#[derive(Default)]
struct Held {
    messages: Vec<Message>,
    since: Option<Instant>,
}

impl HeldReports {
    /// Reports held for the writer fed by `outgoing`.
    pub fn new(outgoing: UnboundedSender<Message>) -> Self {
        HeldReports {
            held: Mutex::default(),
            outgoing,
        }
    }

    /// Adds `report` of a task that ran for `ran` at `now`; holds it if `more_queued`
    /// tasks wait and the rules above allow, else sends the batch. `false` once the
    /// connection's writer is gone.
    pub fn report(&self, report: Message, ran: Duration, now: Instant, more_queued: bool) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.messages.push(report);
        let since = *held.since.get_or_insert(now);
        let hold = more_queued
            && ran < SHORT_TASK
            && held.messages.len() < HOLD_AT_MOST
            && now.saturating_duration_since(since) < HOLD_AT_MOST_FOR;
        hold || self.send(&mut held)
    }

    /// Sends the held batch; `false` once the writer is gone.
    pub fn flush(&self) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        self.send(&mut held)
    }

    /// Sends the held batch if its oldest report was held before `now - HOLD_AT_MOST_FOR`.
    pub fn flush_if_old(&self, now: Instant) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= HOLD_AT_MOST_FOR)
        {
            self.send(&mut held);
        }
    }

    /// How many reports are held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().unwrap().messages.len()
    }

    fn send(&self, held: &mut Held) -> bool {
        held.since = None;
        let mut open = true;
        for message in held.messages.drain(..) {
            open &= self.outgoing.send(message).is_ok();
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn finished(task: u64) -> Message {
        Message::Finished {
            task,
            nbytes: 8,
            result: None,
            ran_for: None,
        }
    }

    fn sent(queue: &mut tokio::sync::mpsc::UnboundedReceiver<Message>) -> Vec<Message> {
        std::iter::from_fn(|| queue.try_recv().ok()).collect()
    }

    const SHORT: Duration = Duration::from_micros(1);

    #[test]
    fn a_report_goes_at_once_when_no_task_is_queued_behind_it() {
        let (outgoing, mut queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        assert!(reports.report(finished(1), SHORT, Instant::now(), false));
        assert_eq!(sent(&mut queue), [finished(1)]);
    }

    #[test]
    fn reports_of_short_tasks_with_more_queued_go_together_in_order() {
        let (outgoing, mut queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        let now = Instant::now();
        for task in 1..=3 {
            assert!(reports.report(finished(task), SHORT, now, true));
        }
        assert!(sent(&mut queue).is_empty());
        assert!(reports.report(finished(4), SHORT, now, false));
        assert_eq!(sent(&mut queue), (1..=4).map(finished).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_batch_goes_out() {
        let (outgoing, mut queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        let now = Instant::now();
        for task in 0..HOLD_AT_MOST as u64 - 1 {
            reports.report(finished(task), SHORT, now, true);
        }
        assert_eq!(reports.held(), HOLD_AT_MOST - 1);
        reports.report(finished(99), SHORT, now, true);
        assert_eq!(reports.held(), 0);
        assert_eq!(sent(&mut queue).len(), HOLD_AT_MOST);
    }

    #[test]
    fn a_long_task_or_an_old_batch_sends_the_batch() {
        let (outgoing, mut queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        let start = Instant::now();
        reports.report(finished(1), SHORT, start, true);
        reports.report(finished(2), SHORT_TASK, start, true);
        assert_eq!(
            sent(&mut queue).len(),
            2,
            "a long task's report is not held"
        );
        reports.report(finished(3), SHORT, start, true);
        reports.report(finished(4), SHORT, start + HOLD_AT_MOST_FOR, true);
        assert_eq!(sent(&mut queue).len(), 2, "a batch held that long goes");
    }

    #[test]
    fn the_monitor_sends_only_a_batch_held_long_enough() {
        let (outgoing, mut queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        let start = Instant::now();
        reports.flush_if_old(start + HOLD_AT_MOST_FOR); // nothing held: nothing sent
        reports.report(finished(1), SHORT, start, true);
        reports.flush_if_old(start);
        assert!(sent(&mut queue).is_empty());
        reports.flush_if_old(start + HOLD_AT_MOST_FOR);
        assert_eq!(sent(&mut queue), [finished(1)]);
        reports.report(finished(2), SHORT, start, true);
        assert!(reports.flush());
        assert_eq!(sent(&mut queue), [finished(2)]);
    }

    #[test]
    fn a_closed_writer_is_reported() {
        let (outgoing, queue) = unbounded_channel();
        let reports = HeldReports::new(outgoing);
        reports.report(finished(1), SHORT, Instant::now(), true);
        drop(queue);
        assert!(!reports.flush());
        assert!(!reports.report(finished(2), SHORT, Instant::now(), false));
    }
}
