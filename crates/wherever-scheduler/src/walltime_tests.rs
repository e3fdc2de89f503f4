//! Deadlines: durations learned per kind, placement within the time left,
//! retirement near the deadline.

use crate::tests::{add_worker, computes, ev, finish, sched0, submit};
use crate::walltime::MIN_MARGIN_MS;
use crate::{Command, Event, Scheduler, SchedulerConfig, TaskSpec};

const KIND: u64 = 7;

fn tick(s: &mut Scheduler, now_ms: u64) -> Vec<Command> {
    ev(s, Event::Tick { now_ms })
}

fn deadline(s: &mut Scheduler, worker: u64, deadline_ms: u64) -> Vec<Command> {
    ev(
        s,
        Event::WorkerDeadline {
            worker,
            deadline_ms,
        },
    )
}

/// One task of `KIND` takes 10 s on worker 1 (no deadline): the mean is 10 s.
fn learn_ten_seconds(s: &mut Scheduler) {
    tick(s, 1_000);
    add_worker(s, 1, 1);
    assert_eq!(
        computes(&submit(s, vec![TaskSpec::new(1).kind(KIND)])),
        [(1, 1)]
    );
    tick(s, 11_000);
    finish(s, 1, 1, 8);
    assert_eq!(s.walltime.mean_ms(KIND), Some(10_000.0));
}

#[test]
fn a_task_goes_to_the_worker_whose_time_left_fits_its_kinds_mean() {
    let mut s = Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(0),
        walltime_margin_ms: Some(1_000),
    });
    learn_ten_seconds(&mut s);
    // Worker 2 (idle, first in line) has 5 s left; worker 1 has no deadline but is busy.
    add_worker(&mut s, 2, 1);
    deadline(&mut s, 2, 16_000);
    let out = submit(
        &mut s,
        vec![
            TaskSpec::new(2).kind(KIND),
            TaskSpec::new(3).kind(KIND),
            TaskSpec::new(4).kind(99),
        ],
    );
    // 2 goes to worker 1; 3 would not finish on worker 2 and waits; 4 (no history) fits.
    let placed = computes(&out);
    assert!(placed.contains(&(1, 2)), "{placed:?}");
    assert!(placed.contains(&(2, 4)), "{placed:?}");
    assert!(!placed.iter().any(|&(_, t)| t == 3), "{placed:?}");
    assert_eq!(s.ready_count(), 1);
    tick(&mut s, 13_000);
    let out = finish(&mut s, 1, 2, 8);
    assert!(computes(&out).contains(&(1, 3)), "{out:?}");
}

#[test]
fn a_worker_within_the_margin_of_its_deadline_is_retired_and_nothing_reruns() {
    let mut s = sched0();
    learn_ten_seconds(&mut s);
    // Default margin: twice the longest mean (20 s), at least MIN_MARGIN_MS.
    assert_eq!(s.walltime_margin_ms(), 20_000.max(MIN_MARGIN_MS));
    add_worker(&mut s, 2, 1);
    deadline(&mut s, 2, 100_000);
    submit(
        &mut s,
        vec![TaskSpec::new(2).kind(KIND), TaskSpec::new(3).kind(KIND)],
    );
    tick(&mut s, 30_000);
    // 79 s before the deadline: still taking work.
    assert!(!s.workers().iter().any(|w| w.retiring));
    let out = tick(&mut s, 80_000);
    assert!(
        s.workers().iter().any(|w| w.id == 2 && w.retiring),
        "{out:?}"
    );
    // Whatever it runs finishes there; what it alone holds is copied to worker 1.
    let running_on_2: Vec<u64> = [2, 3]
        .into_iter()
        .filter(|&t| s.processing_on(t) == Some(2))
        .collect();
    assert_eq!(running_on_2.len(), 1, "one task each");
    let t = running_on_2[0];
    let out = finish(&mut s, 2, t, 8);
    assert_eq!(
        out,
        [
            Command::Done { task: t },
            Command::Replicate {
                worker: 1,
                task: t,
                holders: vec![2]
            }
        ]
    );
    let out = ev(&mut s, Event::Replicated { worker: 1, task: t });
    assert_eq!(out, [Command::Retired { worker: 2 }]);
    assert!(!s.workers().iter().any(|w| w.id == 2));
    assert_eq!(s.who_has(t), [1]);
    assert_eq!(s.attempts(2), Some(0));
    assert_eq!(s.attempts(3), Some(0));
}
