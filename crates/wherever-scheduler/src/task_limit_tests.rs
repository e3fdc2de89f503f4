//! Task limits per worker, and retirement with nobody to copy to.

use crate::tests::{add_worker, computes, ev, finish, sched, submit};
use crate::{Command, Event, Scheduler, TaskSpec, WorkerId};

fn limit(s: &mut Scheduler, worker: WorkerId, max_tasks: u32) -> Vec<Command> {
    ev(s, Event::WorkerTaskLimit { worker, max_tasks })
}

fn retired(out: &[Command]) -> Vec<WorkerId> {
    out.iter()
        .filter_map(|c| match c {
            Command::Retired { worker } => Some(*worker),
            _ => None,
        })
        .collect()
}

#[test]
fn a_worker_with_a_limit_of_one_gets_one_task_and_retires_once_the_client_has_it() {
    let mut s = sched();
    add_worker(&mut s, 1, 4);
    limit(&mut s, 1, 1);
    let out = submit(&mut s, (1..=3).map(TaskSpec::new).collect());
    assert_eq!(
        computes(&out),
        [(1, 1)],
        "one task, though 4 slots and prefetch"
    );
    assert_eq!(s.tasks_left(1), Some(0));
    assert_eq!(s.ready_count(), 2);
    // Done, but the client has not had the value: it stays (nobody to copy to).
    let out = finish(&mut s, 1, 1, 8);
    assert!(retired(&out).is_empty(), "{out:?}");
    assert!(s.workers().iter().any(|w| w.id == 1 && w.retiring));
    assert!(computes(&out).is_empty(), "a retiring worker takes nothing");
    let out = ev(&mut s, Event::Delivered { task: 1 });
    assert_eq!(retired(&out), [1]);
    // A limit given before the worker joins holds from its start: one task, not
    // slot plus prefetch.
    limit(&mut s, 2, 1);
    assert_eq!(computes(&add_worker(&mut s, 2, 1)).len(), 1);
    assert_eq!(computes(&add_worker(&mut s, 3, 1)).len(), 1);
}

#[test]
fn the_limit_counts_tasks_already_assigned_and_a_task_given_back_does_not_count() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, (1..=2).map(TaskSpec::new).collect());
    assert_eq!(computes(&out).len(), 2, "slot plus prefetch");
    limit(&mut s, 1, 2);
    assert_eq!(s.tasks_left(1), Some(0));
    // Another worker steals task 2; worker 1 gives it back: one task left again.
    let out = add_worker(&mut s, 2, 1);
    let stolen = out
        .iter()
        .find_map(|c| match c {
            Command::Steal { worker: 1, task } => Some(*task),
            _ => None,
        })
        .expect("a steal request");
    ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: stolen,
            stolen: true,
        },
    );
    assert_eq!(s.tasks_left(1), Some(1));
    // Its first task ends: it is not retired, it may take one more.
    let first = 3 - stolen;
    ev(&mut s, Event::Delivered { task: first }).len();
    let out = finish(&mut s, 1, first, 8);
    assert!(retired(&out).is_empty(), "{out:?}");
    assert!(!s.workers().iter().any(|w| w.id == 1 && w.retiring));
}

#[test]
fn with_nobody_to_copy_to_a_wanted_result_keeps_the_worker_until_released() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 8);
    let out = ev(&mut s, Event::Retire { worker: 1 });
    assert!(retired(&out).is_empty(), "the client has not had it");
    let out = ev(&mut s, Event::Release { task: 1 });
    assert_eq!(retired(&out), [1]);
}

#[test]
fn with_nobody_to_copy_to_a_result_the_client_has_does_not_keep_the_worker() {
    // Before the fix a retirement with no other worker waited for one forever.
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 8);
    ev(&mut s, Event::Delivered { task: 1 });
    let out = ev(&mut s, Event::Retire { worker: 1 });
    assert_eq!(retired(&out), [1]);
}

#[test]
fn a_result_a_dependent_still_needs_is_copied_even_when_the_client_has_it() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    limit(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2).deps([1])]);
    ev(&mut s, Event::Delivered { task: 1 }).len();
    let out = finish(&mut s, 1, 1, 8);
    assert!(retired(&out).is_empty());
    // A second worker: the dependent goes there, and the result is copied to it
    // before worker 1 leaves.
    let out = add_worker(&mut s, 2, 1);
    assert!(
        out.iter().any(|c| matches!(
            c,
            Command::Replicate {
                worker: 2,
                task: 1,
                ..
            }
        )),
        "{out:?}"
    );
    assert!(retired(&out).is_empty());
    assert_eq!(computes(&out), [(2, 2)]);
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    // The dependent was sent before worker 2 had the copy: it may still fetch it
    // from worker 1, which leaves once it ends.
    let out = finish(&mut s, 2, 2, 8);
    assert_eq!(retired(&out), [1]);
}

#[test]
fn a_limited_worker_is_not_kept_to_copy_a_result_the_client_has() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    limit(&mut s, 1, 1);
    limit(&mut s, 2, 1);
    let out = submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2)]);
    assert_eq!(computes(&out).len(), 2);
    let on_1 = s.assigned_to(1)[0];
    ev(&mut s, Event::Delivered { task: on_1 }).len();
    let out = finish(&mut s, 1, on_1, 8);
    assert_eq!(retired(&out), [1], "no copy to worker 2: {out:?}");
}

#[test]
fn delivery_of_an_unknown_task_is_an_error() {
    let mut s = sched();
    let mut out = Vec::new();
    assert!(s.handle(Event::Delivered { task: 9 }, &mut out).is_err());
    assert!(out.is_empty());
}
