//! One background thread that runs actions at their deadlines (task timeouts).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Action = Box<dyn FnOnce() + Send>;

/// An action due at a deadline; ordered by deadline, then by arrival.
struct Due {
    at: Instant,
    order: u64,
    action: Action,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

#[derive(Default)]
struct Timer {
    due: Mutex<(BinaryHeap<Reverse<Due>>, u64)>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("wherever-timer".into())
            .spawn(move || timer.run())
            .expect("the timer thread starts");
        timer
    })
}

impl Timer {
    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            match due.0.peek() {
                Some(Reverse(next)) if next.at <= now => {
                    let Some(Reverse(next)) = due.0.pop() else {
                        continue;
                    };
                    drop(due);
                    (next.action)();
                    due = self.due.lock().unwrap_or_else(|p| p.into_inner());
                }
                Some(Reverse(next)) => {
                    let wait = next.at - now;
                    due = self
                        .changed
                        .wait_timeout(due, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => due = self.changed.wait(due).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// Runs `action` on the timer thread once `delay` has passed (keep it short: it
/// holds up the actions due after it).
pub(crate) fn after(delay: Duration, action: impl FnOnce() + Send + 'static) {
    let timer = timer();
    let at = Instant::now()
        .checked_add(delay)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(60 * 60 * 24 * 365));
    let mut due = timer.due.lock().unwrap_or_else(|p| p.into_inner());
    due.1 += 1;
    let order = due.1;
    due.0.push(Reverse(Due {
        at,
        order,
        action: Box::new(action),
    }));
    timer.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_run_in_deadline_order() {
        let (sender, receiver) = std::sync::mpsc::channel();
        for (delay, tag) in [(600, 'c'), (0, 'a'), (300, 'b')] {
            let sender = sender.clone();
            after(Duration::from_millis(delay), move || {
                sender.send(tag).unwrap()
            });
        }
        let order: Vec<char> = receiver.iter().take(3).collect();
        assert_eq!(order, vec!['a', 'b', 'c']);
    }
}
