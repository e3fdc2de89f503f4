//! Unit tests of [`crate::Event::MissingData`].

use crate::tests::{add_worker, computes, ev, finish, frees, sched, submit};
use crate::TaskState;
use crate::{
    Command, Event, Scheduler, SchedulerError, TaskId, TaskSpec, WorkerId, MISSING_DATA_LIMIT,
};

fn missing(
    s: &mut Scheduler,
    task: TaskId,
    holders: Vec<WorkerId>,
    requester: Option<(WorkerId, TaskId)>,
) -> Vec<Command> {
    ev(
        s,
        Event::MissingData {
            task,
            holders,
            requester,
        },
    )
}

fn cancels(out: &[Command]) -> Vec<(WorkerId, TaskId)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Cancel { worker, task } => Some((*worker, *task)),
            _ => None,
        })
        .collect()
}

fn inputs_of(out: &[Command], task: TaskId) -> Vec<(TaskId, Vec<WorkerId>)> {
    out.iter()
        .find_map(|c| match c {
            Command::Compute {
                task: t, inputs, ..
            } if *t == task => Some(inputs.clone()),
            _ => None,
        })
        .expect("a compute")
}

/// Two workers; task 1 on worker 1 (not wanted), task 2 depends on it and is sent to
/// worker 1 (the holder), with one slot each and no prefetch beyond slots.
fn input_on_worker_1() -> Scheduler {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    let out = submit(
        &mut s,
        vec![TaskSpec::new(1).wanted(false), TaskSpec::new(2).deps([1])],
    );
    assert_eq!(computes(&out), vec![(1, 1)]);
    let out = finish(&mut s, 1, 1, 10);
    assert_eq!(computes(&out), vec![(1, 2)]);
    s
}

#[test]
fn sole_holder_missing_recomputes_the_input_and_resends_the_dependent() {
    let mut s = input_on_worker_1();
    // Worker 1 could not read its own copy of 1 (say, spilled and corrupt).
    let out = missing(&mut s, 1, vec![1], Some((1, 2)));
    assert_eq!(frees(&out), vec![(1, 1)]);
    assert_eq!(cancels(&out), vec![(1, 2)]);
    assert_eq!(computes(&out).iter().filter(|c| c.1 == 1).count(), 1);
    assert_eq!(s.state(2), Some(TaskState::Waiting));
    let (w, _) = computes(&out)[0];
    let out = finish(&mut s, w, 1, 10);
    assert_eq!(inputs_of(&out, 2), vec![(1, vec![w])]);
    let (w2, _) = computes(&out)[0];
    let out = finish(&mut s, w2, 2, 1);
    assert!(out.contains(&Command::Done { task: 2 }));
}

#[test]
fn missing_holder_with_another_copy_resends_with_fresh_locations() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    add_worker(&mut s, 3, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 10);
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    // Block workers 1 and 2 so the dependent goes to worker 3.
    submit(&mut s, vec![TaskSpec::new(10), TaskSpec::new(11)]);
    let out = submit(&mut s, vec![TaskSpec::new(2).deps([1])]);
    assert_eq!(inputs_of(&out, 2), vec![(1, vec![1, 2])]);
    let worker = s.processing_on(2).unwrap();
    // Holder 1 did not answer; holder 2 still counts.
    let out = missing(&mut s, 1, vec![1], Some((worker, 2)));
    assert_eq!(frees(&out), vec![(1, 1)]);
    assert_eq!(cancels(&out), vec![(worker, 2)]);
    assert_eq!(inputs_of(&out, 2), vec![(1, vec![2])]);
    assert_eq!(s.who_has(1), &[2]);
    assert_eq!(s.state(1), Some(TaskState::Memory));
    assert!(!out.contains(&Command::Done { task: 1 }));
}

#[test]
fn client_missing_result_is_recomputed_and_done_again() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    assert_eq!(finish(&mut s, 1, 1, 10), vec![Command::Done { task: 1 }]);
    let out = missing(&mut s, 1, vec![1], None);
    assert_eq!(frees(&out), vec![(1, 1)]);
    assert_eq!(computes(&out), vec![(1, 1)]);
    assert!(!out.contains(&Command::Done { task: 1 }));
    assert_eq!(finish(&mut s, 1, 1, 10), vec![Command::Done { task: 1 }]);
    // Only once: a later copy is no news.
    assert!(ev(&mut s, Event::Replicated { worker: 1, task: 1 }).is_empty());
}

#[test]
fn client_missing_result_held_elsewhere_is_done_at_once() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 10);
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    let out = missing(&mut s, 1, vec![1], None);
    assert_eq!(frees(&out), vec![(1, 1)]);
    assert_eq!(out.last(), Some(&Command::Done { task: 1 }));
    assert!(computes(&out).is_empty());
    assert_eq!(s.who_has(1), &[2]);
}

#[test]
fn client_report_after_the_holder_died_gets_done_when_recomputed() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    let w = s.processing_on(1).unwrap();
    finish(&mut s, w, 1, 10);
    // The holder dies: the result is recomputed, but the client was told Done already.
    let out = ev(&mut s, Event::WorkerRemoved { worker: w });
    let (w2, _) = computes(&out)[0];
    // The client's fetch from the dead worker failed: it waits again.
    assert!(missing(&mut s, 1, vec![w], None).is_empty());
    assert_eq!(finish(&mut s, w2, 1, 10), vec![Command::Done { task: 1 }]);
    // Had the report come after the recompute, Done would be sent at once.
    assert_eq!(
        missing(&mut s, 1, vec![w], None),
        vec![Command::Done { task: 1 }]
    );
}

#[test]
fn scattered_data_missing_everywhere_is_lost() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    ev(
        &mut s,
        Event::Scattered {
            task: 5,
            workers: vec![1],
            nbytes: 3,
        },
    );
    let out = missing(&mut s, 5, vec![1], None);
    assert_eq!(
        out,
        vec![
            Command::Free { worker: 1, task: 5 },
            Command::Lost {
                task: 5,
                attempts: 0
            }
        ]
    );
    assert_eq!(s.state(5), Some(TaskState::Lost));
}

#[test]
fn a_dependent_whose_input_keeps_missing_fails_past_the_limit() {
    let mut s = input_on_worker_1();
    for round in 0..=MISSING_DATA_LIMIT {
        let holder = s.who_has(1)[0];
        let worker = s.processing_on(2).expect("dependent sent");
        let out = missing(&mut s, 1, vec![holder], Some((worker, 2)));
        if round < MISSING_DATA_LIMIT {
            let (w, t) = computes(&out)[0];
            assert_eq!(t, 1);
            finish(&mut s, w, 1, 10);
        } else {
            assert!(out.contains(&Command::Erred { task: 2, cause: 1 }));
            assert_eq!(s.state(2), Some(TaskState::Erred));
        }
    }
    ev(&mut s, Event::Release { task: 2 });
    assert_eq!(s.task_count(), 0);
}

#[test]
fn a_result_clients_keep_missing_is_lost_past_the_limit() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 10);
    for _ in 0..MISSING_DATA_LIMIT {
        missing(&mut s, 1, vec![1], None);
        assert_eq!(finish(&mut s, 1, 1, 10), vec![Command::Done { task: 1 }]);
    }
    let out = missing(&mut s, 1, vec![1], None);
    assert_eq!(
        out,
        vec![
            Command::Free { worker: 1, task: 1 },
            Command::Lost {
                task: 1,
                attempts: 0
            }
        ]
    );
    ev(&mut s, Event::Release { task: 1 });
    assert_eq!(s.task_count(), 0);
}

#[test]
fn stale_reports_change_nothing() {
    let mut s = input_on_worker_1();
    // Unknown task from a worker: late, ignored. From a client: a bad event.
    assert!(missing(&mut s, 99, vec![1], Some((1, 2))).is_empty());
    let mut out = Vec::new();
    assert_eq!(
        s.handle(
            Event::MissingData {
                task: 99,
                holders: vec![1],
                requester: None
            },
            &mut out
        ),
        Err(SchedulerError::UnknownTask(99))
    );
    assert!(out.is_empty());
    // Unknown holders and a requester not processing there: nothing.
    assert!(missing(&mut s, 1, vec![7, 2], Some((2, 2))).is_empty());
    assert!(missing(&mut s, 1, vec![], Some((1, 99))).is_empty());
    assert_eq!(s.processing_on(2), Some(1));
    assert_eq!(s.who_has(1), &[1]);
}

#[test]
fn a_wanted_input_recomputed_for_a_worker_is_not_done_twice() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2).deps([1])]);
    assert_eq!(finish(&mut s, 1, 1, 10)[0], Command::Done { task: 1 });
    let out = missing(&mut s, 1, vec![1], Some((1, 2)));
    assert_eq!(computes(&out), vec![(1, 1)]);
    let out = finish(&mut s, 1, 1, 10);
    assert!(!out.contains(&Command::Done { task: 1 }), "{out:?}");
}

#[test]
fn a_stale_worker_report_is_not_taken_for_a_client() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2).deps([1])]);
    let holder = s.processing_on(1).unwrap();
    assert_eq!(finish(&mut s, holder, 1, 10)[0], Command::Done { task: 1 });
    let worker = s.processing_on(2).unwrap();
    let elsewhere = 3 - worker;
    // The dependent is not assigned to the reporter (any more): only the holder is news.
    let out = missing(&mut s, 1, vec![holder], Some((elsewhere, 2)));
    assert_eq!(frees(&out), vec![(holder, 1)]);
    let (w, _) = computes(&out)[0];
    let out = finish(&mut s, w, 1, 10);
    assert!(!out.contains(&Command::Done { task: 1 }), "{out:?}");
}

#[test]
fn a_client_waiting_for_a_recompute_may_cancel_it() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 10);
    let out = missing(&mut s, 1, vec![1], None);
    assert_eq!(computes(&out), vec![(1, 1)]);
    let out = ev(&mut s, Event::Cancel { task: 1 });
    assert_eq!(
        out,
        vec![
            Command::Cancel { worker: 1, task: 1 },
            Command::Cancelled { task: 1 }
        ]
    );
}

/// Worker 1 has two reports on their way, sent while it held 3 and 6: "3 finished" and "6
/// finished" (answers to assignments of results it held already); the scheduler has just
/// freed 3 there (`Done` 6 was sent). Reports carry no assignment number.
fn stale_reports_on_the_way() -> Scheduler {
    let mut s = sched();
    add_worker(&mut s, 2, 1);
    let out = submit(
        &mut s,
        vec![TaskSpec::new(3).wanted(false), TaskSpec::new(6).deps([3])],
    );
    assert_eq!(computes(&out), vec![(2, 3)]);
    add_worker(&mut s, 1, 1);
    let out = finish(&mut s, 2, 3, 0);
    assert_eq!(computes(&out), vec![(1, 6)]);
    // Worker 1 fetches 3 from worker 2 and starts 6 (its `Replicated` is on its way).
    // Worker 2 dies: 6 is pulled back and 3 recomputed on worker 1, which holds it already
    // and reports it finished again (the first stale report).
    let out = ev(&mut s, Event::WorkerRemoved { worker: 2 });
    assert_eq!(cancels(&out), vec![(1, 6)]);
    assert_eq!(computes(&out), vec![(1, 3)]);
    let out = ev(&mut s, Event::Replicated { worker: 1, task: 3 });
    assert_eq!(computes(&out), vec![(1, 6)]);
    // Worker 1 finishes its first run of 6, and answers the new assignment with another
    // finish (the second stale report).
    let out = finish(&mut s, 1, 6, 10);
    assert_eq!(out[0], Command::Done { task: 6 });
    assert_eq!(frees(&out), vec![(1, 3)]);
    s
}

/// The first failure the property test found (regression seed `814c0964` in
/// `tests/properties.proptest-regressions`): a report sent before the worker dropped the
/// result on [`Command::Free`] arrived after the scheduler needed the result again, and was
/// taken as a fresh result, so the dependent (then the client, with `Done`) was sent to a
/// worker that no longer had it.
#[test]
fn a_report_sent_before_a_free_is_not_a_fresh_result() {
    let mut s = stale_reports_on_the_way();
    // Worker 1 gets busy; the client cannot fetch 6: it is recomputed, 3 first.
    let out = submit(&mut s, vec![TaskSpec::new(10), TaskSpec::new(11)]);
    assert_eq!(computes(&out), vec![(1, 10), (1, 11)]);
    let out = missing(&mut s, 6, vec![1], None);
    assert_eq!(out, vec![Command::Free { worker: 1, task: 6 }]);
    assert_eq!(s.state(3), Some(TaskState::Ready));
    // The stale reports arrive.
    let out = finish(&mut s, 1, 3, 1);
    assert_eq!(out, vec![Command::Free { worker: 1, task: 3 }]);
    assert_eq!(s.state(3), Some(TaskState::Ready), "3 is nowhere");
    let out = finish(&mut s, 1, 6, 1);
    assert_eq!(out, vec![Command::Free { worker: 1, task: 6 }]);
    assert_eq!(s.state(6), Some(TaskState::Waiting));
    // The real recompute.
    assert_eq!(computes(&finish(&mut s, 1, 10, 1)), vec![(1, 3)]);
    let out = finish(&mut s, 1, 3, 1);
    assert_eq!(inputs_of(&out, 6), vec![(3, vec![1])]);
    let out = finish(&mut s, 1, 6, 1);
    assert!(out.contains(&Command::Done { task: 6 }), "{out:?}");
}

/// The second failure (regression seed `a5198028` in
/// `tests/properties.proptest-regressions`): as above, but the freed result is assigned
/// to the same worker again before the stale report arrives. The stale report cannot be
/// told from the answer to the new assignment, so the worker is asked again; the answers
/// after the stale ones are taken.
#[test]
fn a_stale_report_after_reassigning_to_the_same_worker_is_not_a_fresh_result() {
    let mut s = stale_reports_on_the_way();
    // The client cannot fetch 6: it is recomputed, 3 first, on worker 1 at once.
    let out = missing(&mut s, 6, vec![1], None);
    assert_eq!(frees(&out), vec![(1, 6)]);
    assert_eq!(computes(&out), vec![(1, 3)]);
    // The stale reports arrive: 3 is asked for again, 6 (waiting) freed again.
    let out = finish(&mut s, 1, 3, 1);
    assert_eq!(computes(&out), vec![(1, 3)]);
    assert_eq!(s.state(3), Some(TaskState::Processing), "3 is nowhere yet");
    let out = finish(&mut s, 1, 6, 1);
    assert_eq!(out, vec![Command::Free { worker: 1, task: 6 }]);
    assert_eq!(s.state(6), Some(TaskState::Waiting));
    // Worker 1 computes 3 (and answers the second assignment with another finish).
    let out = finish(&mut s, 1, 3, 1);
    assert_eq!(inputs_of(&out, 6), vec![(3, vec![1])]);
    assert!(finish(&mut s, 1, 3, 1).is_empty());
    let out = finish(&mut s, 1, 6, 1);
    assert!(out.contains(&Command::Done { task: 6 }), "{out:?}");
}

/// The third failure (regression seed `dd13b024` in
/// `tests/properties.proptest-regressions`): a steal answer carries no assignment number.
/// The answer to a steal request for a task taken back meanwhile arrived after the task was
/// sent to the same worker again and asked back again: it was taken as the answer to the
/// new request ("refused"), and the real answer ("given back") was then ignored, so the task
/// stayed assigned to a worker that had dropped it, forever.
#[test]
fn a_steal_answer_for_an_earlier_assignment_is_not_the_answer_to_a_later_request() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    let out = submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(5)]);
    assert_eq!(computes(&out), vec![(1, 1), (2, 5)]);
    finish(&mut s, 1, 1, 100);
    finish(&mut s, 2, 5, 1);
    // 10 goes where most of its input is, behind 2; worker 2 is idle: 10 is asked back.
    let out = submit(
        &mut s,
        vec![TaskSpec::new(2), TaskSpec::new(10).deps([1, 5])],
    );
    assert_eq!(computes(&out), vec![(1, 2), (1, 10)]);
    assert_eq!(
        out.last(),
        Some(&Command::Steal {
            worker: 1,
            task: 10
        })
    );
    // Worker 1 cannot fetch 5 and drops 10; then it answers the steal: "not there" (on
    // its way).
    let out = missing(&mut s, 5, vec![2], Some((1, 10)));
    assert_eq!(cancels(&out), vec![(1, 10)]);
    assert_eq!(computes(&out), vec![(2, 5)]);
    // 5 is recomputed; 10 goes to worker 1 again and is asked back again.
    let out = finish(&mut s, 2, 5, 1);
    assert_eq!(computes(&out), vec![(1, 10)]);
    assert_eq!(
        out.last(),
        Some(&Command::Steal {
            worker: 1,
            task: 10
        })
    );
    // The answer to the first request arrives: it says nothing about the second.
    let steal_answer = |stolen| Event::StealResponse {
        worker: 1,
        task: 10,
        stolen,
    };
    assert!(ev(&mut s, steal_answer(false)).is_empty());
    // Worker 1 gives the second assignment back: 10 runs on worker 2.
    let out = ev(&mut s, steal_answer(true));
    assert_eq!(computes(&out), vec![(2, 10)]);
}
