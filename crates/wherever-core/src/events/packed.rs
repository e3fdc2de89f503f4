//! Task events packed into a ring slot: six words, no allocation, no strings copied.
//!
//! Word 0 is the kind, word 1 the time (nanoseconds of the stream's clock), words 2-5
//! the fields. A registered task name is a `&'static str`: its pointer and length are
//! stored and the same `&'static str` is rebuilt on reading, so that names are
//! interned for free. Any other event (worker events, a given name, a name longer
//! than 4 GiB) is kept beside the ring ([`super::ring::Ring::push_other`]).

use std::borrow::Cow;
use std::time::Duration;

use super::{Event, FailureKind, TaskOutcome};

/// Words per slot.
pub const WORDS: usize = 6;

const SUBMITTED: u64 = 1;
const STARTED: u64 = 2;
const FINISHED: u64 = 3;
const FAILED: u64 = 4;
const RETRIED: u64 = 5;
const RELEASED: u64 = 6;
const OTHER: u64 = 7;
const RAN: u64 = 8;

/// In a [`RAN`] record's outcome word: the task failed (the low bits are the kind).
const FAILED_BIT: u64 = 1 << 63;

/// A submission's group length meaning "the name's prefix, found by the reader".
const DERIVED_GROUP: u64 = u32::MAX as u64;

/// A slot's words as a reader copied them.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// The words.
    pub words: [u64; WORDS],
}

/// What a record stands for once read.
pub enum Unpacked {
    /// A task event.
    Event(Event),
    /// An event held beside the ring at this index.
    Other(u64),
    /// A task that ran on the ring's thread: its `TaskStarted` (unless a reader
    /// reported it while it ran) and its end.
    Ran {
        /// Its `TaskStarted`.
        started: Event,
        /// When it started.
        start: u64,
        /// Its `TaskFinished` or `TaskFailed`.
        ended: Event,
    },
    /// Not a record this version writes (never happens with intact slots).
    Unknown,
}

fn failure_code(kind: FailureKind) -> u64 {
    match kind {
        FailureKind::Panicked => 0,
        FailureKind::Failed => 1,
        FailureKind::Cancelled => 2,
        FailureKind::DependencyFailed => 3,
        FailureKind::WorkerLost => 4,
        FailureKind::Other => 5,
    }
}

fn failure_of(code: u64) -> FailureKind {
    match code {
        0 => FailureKind::Panicked,
        1 => FailureKind::Failed,
        2 => FailureKind::Cancelled,
        3 => FailureKind::DependencyFailed,
        4 => FailureKind::WorkerLost,
        _ => FailureKind::Other,
    }
}

/// `Some(worker)` as a word: 0 for none, else the worker plus one.
fn optional(worker: Option<u64>) -> u64 {
    worker.map_or(0, |worker| worker.wrapping_add(1))
}

fn optional_of(word: u64) -> Option<u64> {
    word.checked_sub(1)
}

impl Record {
    /// The slot of an event held beside the ring at `index`.
    pub fn other(at: u64, index: u64) -> [u64; WORDS] {
        [OTHER, at, index, 0, 0, 0]
    }

    /// The slot of a `TaskSubmitted` whose group is its name's prefix ([`group_of`],
    /// found by the reader), or `None` for a name longer than 4 GiB.
    ///
    /// [`group_of`]: super::group_of
    #[inline]
    pub fn submitted(at: u64, task: u64, name: &'static str, items: u64) -> Option<[u64; WORDS]> {
        if name.len() >= u32::MAX as usize {
            return None;
        }
        let lengths = (name.len() as u64) | (DERIVED_GROUP << 32);
        Some([
            SUBMITTED,
            at,
            task,
            name.as_ptr() as usize as u64,
            lengths,
            items,
        ])
    }

    /// The slot of a task that ran on the ring's thread from `start` to `at`, and
    /// ended with `outcome`: its start and its end in one record.
    #[inline]
    pub fn ran(at: u64, task: u64, worker: u64, start: u64, outcome: TaskOutcome) -> [u64; WORDS] {
        let outcome = match outcome {
            TaskOutcome::Finished { result_bytes } => result_bytes & !FAILED_BIT,
            TaskOutcome::Failed(kind) => FAILED_BIT | failure_code(kind),
        };
        [RAN, at, task, worker, start, outcome]
    }

    /// `event` at `at` as slot words, or `None` when it does not fit in a slot.
    #[inline]
    pub fn pack(at: u64, event: &Event) -> Option<[u64; WORDS]> {
        Some(match *event {
            Event::TaskSubmitted {
                task,
                ref name,
                ref group,
                items,
            } => {
                let (Cow::Borrowed(name), Cow::Borrowed(group)) = (name, group) else {
                    return None;
                };
                // The group must be a prefix of the name (as `group_of` gives it).
                let prefix = group.len() <= name.len() && name.as_ptr() == group.as_ptr();
                if !prefix || name.len() >= u32::MAX as usize {
                    return None;
                }
                let lengths = (name.len() as u64) | ((group.len() as u64) << 32);
                [
                    SUBMITTED,
                    at,
                    task,
                    name.as_ptr() as usize as u64,
                    lengths,
                    items,
                ]
            }
            Event::TaskStarted { task, worker } => [STARTED, at, task, worker, 0, 0],
            Event::TaskFinished {
                task,
                worker,
                duration,
                result_bytes,
            } => [
                FINISHED,
                at,
                task,
                optional(worker),
                duration.as_nanos().min(u64::MAX as u128) as u64,
                result_bytes,
            ],
            Event::TaskFailed { task, worker, kind } => {
                [FAILED, at, task, optional(worker), failure_code(kind), 0]
            }
            Event::TaskRetried { task, attempts } => [RETRIED, at, task, u64::from(attempts), 0, 0],
            Event::TaskReleased { task } => [RELEASED, at, task, 0, 0, 0],
            _ => return None,
        })
    }

    /// The time word.
    pub fn at(&self) -> u64 {
        self.words[1]
    }

    /// The order of records with the same time in a merged batch: a task's
    /// submission before its other events, its release last.
    pub fn rank(&self) -> u8 {
        match self.words[0] {
            SUBMITTED => 0,
            RELEASED => 2,
            _ => 1,
        }
    }

    /// What the record stands for.
    pub fn unpack(&self) -> Unpacked {
        let [kind, _, a, b, c, d] = self.words;
        Unpacked::Event(match kind {
            SUBMITTED => {
                let (len, group_len) = ((c & u64::from(u32::MAX)) as usize, (c >> 32) as usize);
                // SAFETY: an intact slot of kind SUBMITTED was written by `pack` from a
                // `&'static str` of this pointer and length (the reader discards slots
                // the producer may have overwritten), and `group_len <= len` there.
                let name: &'static str = unsafe {
                    std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                        b as usize as *const u8,
                        len,
                    ))
                };
                let group = if group_len as u64 == DERIVED_GROUP {
                    super::group_of(name)
                } else {
                    let Some(group) = name.get(..group_len) else {
                        return Unpacked::Unknown;
                    };
                    group
                };
                Event::TaskSubmitted {
                    task: a,
                    name: Cow::Borrowed(name),
                    group: Cow::Borrowed(group),
                    items: d,
                }
            }
            STARTED => Event::TaskStarted { task: a, worker: b },
            FINISHED => Event::TaskFinished {
                task: a,
                worker: optional_of(b),
                duration: Duration::from_nanos(c),
                result_bytes: d,
            },
            FAILED => Event::TaskFailed {
                task: a,
                worker: optional_of(b),
                kind: failure_of(c),
            },
            RETRIED => Event::TaskRetried {
                task: a,
                attempts: b.min(u64::from(u32::MAX)) as u32,
            },
            RELEASED => Event::TaskReleased { task: a },
            OTHER => return Unpacked::Other(a),
            RAN => {
                let at = self.words[1];
                let ended = if d & FAILED_BIT == 0 {
                    Event::TaskFinished {
                        task: a,
                        worker: Some(b),
                        duration: Duration::from_nanos(at.saturating_sub(c)),
                        result_bytes: d,
                    }
                } else {
                    Event::TaskFailed {
                        task: a,
                        worker: Some(b),
                        kind: failure_of(d & !FAILED_BIT),
                    }
                };
                return Unpacked::Ran {
                    started: Event::TaskStarted { task: a, worker: b },
                    start: c,
                    ended,
                };
            }
            _ => return Unpacked::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(event: Event) -> Event {
        let words = Record::pack(42, &event).expect("fits in a slot");
        let record = Record { words };
        assert_eq!(record.at(), 42);
        match record.unpack() {
            Unpacked::Event(back) => back,
            _ => panic!("{event:?} did not come back"),
        }
    }

    #[test]
    fn task_events_come_back_as_they_went() {
        let name: &'static str = "fit-3";
        let events = [
            Event::TaskSubmitted {
                task: 1,
                name: name.into(),
                group: super::super::group_of(name).into(),
                items: 7,
            },
            Event::TaskStarted { task: 1, worker: 2 },
            Event::TaskFinished {
                task: 1,
                worker: Some(0),
                duration: Duration::from_micros(3),
                result_bytes: 9,
            },
            Event::TaskFinished {
                task: 1,
                worker: None,
                duration: Duration::ZERO,
                result_bytes: 0,
            },
            Event::TaskFailed {
                task: 4,
                worker: None,
                kind: FailureKind::DependencyFailed,
            },
            Event::TaskRetried {
                task: 5,
                attempts: 3,
            },
            Event::TaskReleased { task: 6 },
        ];
        for event in events {
            assert_eq!(round_trip(event.clone()), event);
        }
    }

    #[test]
    fn a_name_comes_back_shared_not_copied() {
        let name: &'static str = "calc_mean";
        let back = round_trip(Event::TaskSubmitted {
            task: 0,
            name: name.into(),
            group: name.into(),
            items: 1,
        });
        let Event::TaskSubmitted { name: got, .. } = back else {
            unreachable!()
        };
        assert!(matches!(got, Cow::Borrowed(s) if s.as_ptr() == name.as_ptr()));
    }

    #[test]
    fn a_submission_packed_without_its_group_gets_it_from_its_name() {
        let words = Record::submitted(3, 9, "fit-3", 2).unwrap();
        let Unpacked::Event(event) = (Record { words }).unpack() else {
            panic!("not an event");
        };
        assert_eq!(
            event,
            Event::TaskSubmitted {
                task: 9,
                name: "fit-3".into(),
                group: "fit".into(),
                items: 2,
            }
        );
    }

    #[test]
    fn a_task_that_ran_gives_its_start_and_its_end() {
        let words = Record::ran(50, 3, 1, 20, TaskOutcome::Finished { result_bytes: 8 });
        let Unpacked::Ran {
            started,
            start,
            ended,
        } = (Record { words }).unpack()
        else {
            panic!("not a run");
        };
        assert_eq!(started, Event::TaskStarted { task: 3, worker: 1 });
        assert_eq!(start, 20);
        assert_eq!(
            ended,
            Event::TaskFinished {
                task: 3,
                worker: Some(1),
                duration: Duration::from_nanos(30),
                result_bytes: 8
            }
        );
        let failed = Record::ran(50, 3, 1, 20, TaskOutcome::Failed(FailureKind::Panicked));
        let Unpacked::Ran { ended, .. } = (Record { words: failed }).unpack() else {
            panic!("not a run");
        };
        assert_eq!(
            ended,
            Event::TaskFailed {
                task: 3,
                worker: Some(1),
                kind: FailureKind::Panicked
            }
        );
    }

    #[test]
    fn events_with_strings_do_not_fit() {
        let given = Event::TaskSubmitted {
            task: 0,
            name: Cow::Owned("fit-3".to_string()),
            group: Cow::Borrowed("fit"),
            items: 1,
        };
        assert!(Record::pack(0, &given).is_none());
        let unrelated = Event::TaskSubmitted {
            task: 0,
            name: Cow::Borrowed("fit-3"),
            group: Cow::Borrowed("label"),
            items: 1,
        };
        assert!(Record::pack(0, &unrelated).is_none());
        let joined = Event::WorkerJoined {
            worker: 1,
            host: "h".into(),
            slots: 2,
            name: "h.1".into(),
        };
        assert!(Record::pack(0, &joined).is_none());
    }
}
