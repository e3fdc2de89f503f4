//! Progress bars for `map`, `gather` and `compute`, fed by the event stream.
//!
//! - **When.** On a terminal (stderr), a call shows an `indicatif` bar: done/total,
//!   rate, ETA and failures. When stderr is not a terminal nothing is shown, unless
//!   asked for (`client.progress(true)` or `WHEREVER_PROGRESS=1`): then a plain line
//!   every few seconds and one at the end, for batch logs (a Slurm job's output file).
//!   `WHEREVER_PROGRESS=0` or `client.progress(false)` turns it off; the code's choice
//!   wins over the environment's.
//! - **Nested levels.** Only the outermost call shows progress: nothing is shown by a
//!   call made inside a task, or while another call of this process shows progress, so
//!   inner work never garbles the bar.
//! - **Fed by the event stream.** A call subscribes to its client's stream
//!   ([`Client::events`]) and counts the `TaskFinished` / `TaskFailed` events of the tasks
//!   it submitted itself (weighted by their items: a `map` chunk counts its length);
//!   `gather` counts the end of any task, starting from the futures already resolved.
//!   A reader thread draws; the call itself never waits for the display.

mod display;
mod mode;

use crate::client::Client;
use display::{Counts, Display};
pub use mode::PROGRESS_VARIABLE;
use mode::{decide, requested_by_env, Mode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a progress display redraws.
const REDRAW: Duration = Duration::from_millis(100);
use wherever_core::events::{Event, Subscription, TaskKey};

/// How many unread events a progress display's subscription holds.
const PROGRESS_EVENT_CAPACITY: usize = 65_536;

/// The tasks (and their items) the current thread's tracked call submitted.
type Submitted = Arc<Mutex<HashMap<TaskKey, u64>>>;

thread_local! {
    static SUBMITTED: RefCell<Option<Submitted>> = const { RefCell::new(None) };
}

/// Whether a call of this process shows progress now (only the outermost does).
static SHOWING: AtomicBool = AtomicBool::new(false);

/// Notes that the current thread submitted `task` computing `items` items, for the
/// call it runs, if that call shows progress.
pub(crate) fn note_submitted(task: TaskKey, items: u64) {
    if !SHOWING.load(std::sync::atomic::Ordering::Relaxed) {
        return; // no call shows progress: nothing to note (one load)
    }
    SUBMITTED.with(|submitted| {
        if let Some(submitted) = &*submitted.borrow() {
            lock(submitted).insert(task, items);
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which ends of tasks a call counts.
enum Counting {
    /// The tasks the call submitted (`map`, `compute`), by their items.
    Submitted(Submitted),
    /// Any task's end, one each (`gather`, whose futures were submitted earlier).
    Any,
}

/// The progress display of one call; dropping it ends the display.
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    all_done: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    tracked_here: bool,
}

impl Client {
    /// Turns progress display on or off for this client and its clones, whatever the
    /// environment says: on a terminal a bar, else periodic plain lines on stderr.
    ///
    /// ```
    /// # use wherever::prelude::*;
    /// let client = Plan::parse("threads:2")?.start()?.progress(false);
    /// assert_eq!(client.map(|x: u64| x * 2, 0..4)?, vec![0, 2, 4, 6]);
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn progress(self, on: bool) -> Client {
        *lock(&self.shared.progress) = Some(on);
        self
    }

    /// How this call would show progress now.
    fn progress_mode(&self) -> Mode {
        if wherever_core::scope::current_task().is_some() {
            return Mode::Off;
        }
        let by_env = requested_by_env(std::env::var(PROGRESS_VARIABLE).ok().as_deref())
            .unwrap_or_else(|message| {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| eprintln!("wherever: {message}"));
                None
            });
        let by_code = *lock(&self.shared.progress);
        if by_code.or(by_env) == Some(false) {
            return Mode::Off;
        }
        decide(by_code, by_env, std::io::stderr().is_terminal())
    }

    /// Progress for a call that submits its own tasks (`map`, `compute`), of `total`
    /// items when known up front (else the items submitted so far).
    pub(crate) fn track_submitted(&self, label: &str, total: u64) -> Option<Progress> {
        let submitted: Submitted = Arc::default();
        let mut progress = self.start_progress(
            label,
            Counting::Submitted(submitted.clone()),
            Counts {
                total,
                ..Counts::default()
            },
        )?;
        SUBMITTED.with(|slot| *slot.borrow_mut() = Some(submitted));
        progress.tracked_here = true;
        Some(progress)
    }

    /// Progress for `gather` of `total` futures, `done` of them resolved already.
    pub(crate) fn track_any(&self, label: &str, total: u64, done: u64) -> Option<Progress> {
        self.start_progress(
            label,
            Counting::Any,
            Counts {
                done,
                total,
                failed: 0,
            },
        )
    }

    fn start_progress(&self, label: &str, counting: Counting, counts: Counts) -> Option<Progress> {
        let mode = self.progress_mode();
        if mode == Mode::Off || SHOWING.swap(true, Ordering::AcqRel) {
            return None;
        }
        let events = self.event_bus().subscribe(PROGRESS_EVENT_CAPACITY);
        self.forward_remote_events();
        let stop = Arc::new(AtomicBool::new(false));
        let all_done = Arc::new(AtomicBool::new(false));
        let display = Display::new(mode, label, counts.total);
        let reader = {
            let (stop, all_done) = (stop.clone(), all_done.clone());
            std::thread::Builder::new()
                .name("wherever-progress".into())
                .spawn(move || read_events(events, counting, counts, display, &stop, &all_done))
                .ok()
        };
        if reader.is_none() {
            SHOWING.store(false, Ordering::Release);
            return None;
        }
        Some(Progress {
            stop,
            all_done,
            reader,
            tracked_here: false,
        })
    }
}

/// Counts the ends of tasks from `events` and draws them, until told to stop and every
/// waiting event is read.
fn read_events(
    events: Subscription,
    counting: Counting,
    mut counts: Counts,
    mut display: Option<Display>,
    stop: &AtomicBool,
    all_done: &AtomicBool,
) {
    let mut submitted_items = 0;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        // Redraw at least every REDRAW, also while events keep coming.
        let redraw_at = Instant::now() + REDRAW;
        loop {
            let wait = if stopping {
                Duration::ZERO
            } else {
                redraw_at.saturating_duration_since(Instant::now())
            };
            let Some(stamped) = events.recv_timeout(wait) else {
                break;
            };
            count(&stamped.event, &counting, &mut counts, &mut submitted_items);
            if !stopping && Instant::now() >= redraw_at {
                break;
            }
        }
        if stopping {
            break;
        }
        if let Some(display) = &mut display {
            display.update(counts);
        }
    }
    if all_done.load(Ordering::Acquire) {
        counts.done = counts.total; // also when a slow display lost events
    }
    if let Some(display) = display {
        display.finish(counts);
    }
}

/// Counts `event` into `counts`.
fn count(event: &Event, counting: &Counting, counts: &mut Counts, submitted_items: &mut u64) {
    let (task, failed) = match *event {
        Event::TaskFinished { task, .. } => (task, false),
        Event::TaskFailed { task, .. } => (task, true),
        Event::TaskSubmitted { items, .. } if matches!(counting, Counting::Submitted(_)) => {
            *submitted_items += items;
            counts.total = counts.total.max(*submitted_items);
            return;
        }
        _ => return,
    };
    let items = match counting {
        Counting::Any => 1,
        Counting::Submitted(ours) => match lock(ours).remove(&task) {
            Some(items) => items,
            None => return,
        },
    };
    counts.done = (counts.done + items).min(counts.total);
    if failed {
        counts.failed += items;
    }
}

impl Progress {
    /// Ends the display with every item counted as done (the call has every result).
    pub(crate) fn all_done(self) {
        self.all_done.store(true, Ordering::Release);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.tracked_here {
            SUBMITTED.with(|slot| slot.borrow_mut().take());
        }
        self.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        SHOWING.store(false, Ordering::Release);
    }
}
