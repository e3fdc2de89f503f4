//! Ends a worker whose task runs past its timeout plus a grace period: a thread
//! cannot be stopped, so a task that does not stop would hold its slot for ever.
//! The client has already failed the task's future (`TaskErrorKind::TimedOut`) at
//! its timeout; the worker exits, the `processes:N` launcher starts another, and
//! the scheduler reruns the exited worker's other tasks elsewhere.

use crate::protocol::TaskMessage;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable giving the grace period in seconds (default
/// [`DEFAULT_GRACE`]): how long past its timeout a task may run before its worker
/// exits.
pub const GRACE_VARIABLE: &str = "WHEREVER_TIMEOUT_GRACE";

/// The grace period when [`GRACE_VARIABLE`] is not set.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The exit status of a worker ended by its watchdog.
pub const EXIT_STATUS: i32 = 3;

/// This worker's grace period, from [`GRACE_VARIABLE`]; an error for text that is
/// not a number of seconds.
pub fn grace() -> Result<Duration, String> {
    parse_grace(std::env::var(GRACE_VARIABLE).ok().as_deref())
}

/// The grace period `text` gives (the default without one).
fn parse_grace(text: Option<&str>) -> Result<Duration, String> {
    match text {
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .ok_or_else(|| {
                format!("{GRACE_VARIABLE}=`{text}`: expected a number of seconds (0 or more)")
            }),
        None => Ok(DEFAULT_GRACE),
    }
}

/// What a watched task is, for the message at exit.
struct Watched {
    name: String,
    position: u64,
    timeout: Duration,
    started: Instant,
}

/// The running tasks with a timeout, by the instant their worker must exit if they
/// still run (and a number making the key unique).
struct Watchdog {
    deadlines: Mutex<BTreeMap<(Instant, u64), Watched>>,
    changed: Condvar,
    grace: Duration,
}

static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();

/// Watches a task while the returned value lives (drop it when the task ends);
/// tasks without a timeout cost nothing.
pub(crate) fn watch(task: &TaskMessage) -> Watch {
    let Some(timeout) = task.timeout else {
        return Watch(None);
    };
    let dog = *WATCHDOG.get_or_init(start);
    let started = Instant::now();
    let deadline = started + timeout + dog.grace;
    let mut deadlines = dog.deadlines.lock().unwrap_or_else(|p| p.into_inner());
    let unique = deadlines.last_key_value().map_or(0, |((_, n), _)| n + 1);
    let key = (deadline, unique);
    deadlines.insert(
        key,
        Watched {
            name: task.name.clone(),
            position: task.position,
            timeout,
            started,
        },
    );
    dog.changed.notify_one();
    Watch(Some(key))
}

/// A watched task; dropping it ends the watch.
pub(crate) struct Watch(Option<(Instant, u64)>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let (Some(key), Some(dog)) = (self.0, WATCHDOG.get()) {
            dog.deadlines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
    }
}

/// The watchdog and its thread, started at the first task with a timeout.
fn start() -> &'static Watchdog {
    let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
        deadlines: Mutex::new(BTreeMap::new()),
        changed: Condvar::new(),
        grace: grace().unwrap_or(DEFAULT_GRACE),
    }));
    std::thread::Builder::new()
        .name("wherever-watchdog".to_string())
        .spawn(move || dog.run())
        .expect("the worker can start its watchdog thread");
    dog
}

impl Watchdog {
    fn run(&self) {
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            let first = deadlines.first_key_value().map(|((at, _), w)| (*at, w));
            deadlines = match first {
                Some((at, watched)) if at <= now => self.exit(watched),
                Some((at, _)) => {
                    self.changed
                        .wait_timeout(deadlines, at - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self
                    .changed
                    .wait(deadlines)
                    .unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn exit(&self, watched: &Watched) -> ! {
        eprintln!(
            "wherever worker (process {}): task `{}` #{} has run for {:.1} s, past its timeout \
             of {:.1} s plus a grace of {:.1} s ({GRACE_VARIABLE}), and does not stop: this \
             worker exits so that it can be replaced; its other tasks run again elsewhere",
            std::process::id(),
            watched.name,
            watched.position,
            watched.started.elapsed().as_secs_f64(),
            watched.timeout.as_secs_f64(),
            self.grace.as_secs_f64(),
        );
        super::spill::remove_directory();
        std::process::exit(EXIT_STATUS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_without_a_timeout_is_not_watched() {
        let task = TaskMessage::new(1, "f", Vec::new());
        assert!(watch(&task).0.is_none());
    }

    #[test]
    fn the_grace_period_is_read_and_checked() {
        // The only test in this crate touching the variable.
        std::env::set_var(GRACE_VARIABLE, "0.5");
        let half = grace();
        std::env::set_var(GRACE_VARIABLE, "soon");
        let malformed = grace();
        std::env::set_var(GRACE_VARIABLE, "-1");
        let negative = grace();
        std::env::remove_var(GRACE_VARIABLE);
        assert_eq!(half, Ok(Duration::from_millis(500)));
        assert!(malformed
            .unwrap_err()
            .contains("WHEREVER_TIMEOUT_GRACE=`soon`"));
        assert!(negative.is_err());
        assert_eq!(grace(), Ok(DEFAULT_GRACE));
    }
}
