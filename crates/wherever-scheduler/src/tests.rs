use std::collections::HashMap;

use super::*;

pub(crate) fn sched() -> Scheduler {
    Scheduler::new(SchedulerConfig::default())
}

pub(crate) fn sched0() -> Scheduler {
    Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(0),
        ..SchedulerConfig::default()
    })
}

pub(crate) fn ev(s: &mut Scheduler, e: Event) -> Vec<Command> {
    let mut out = Vec::new();
    s.handle(e, &mut out).expect("valid event");
    s.check_invariants().expect("invariants");
    out
}

pub(crate) fn add_worker(s: &mut Scheduler, worker: WorkerId, slots: u32) -> Vec<Command> {
    ev(
        s,
        Event::WorkerAdded {
            worker,
            slots,
            resources: Resources::new(),
        },
    )
}

pub(crate) fn submit(s: &mut Scheduler, tasks: Vec<TaskSpec>) -> Vec<Command> {
    ev(s, Event::Submit { tasks })
}

pub(crate) fn finish(
    s: &mut Scheduler,
    worker: WorkerId,
    task: TaskId,
    nbytes: u64,
) -> Vec<Command> {
    ev(
        s,
        Event::TaskFinished {
            worker,
            task,
            nbytes,
        },
    )
}

pub(crate) fn computes(out: &[Command]) -> Vec<(WorkerId, TaskId)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Compute { worker, task, .. } => Some((*worker, *task)),
            _ => None,
        })
        .collect()
}

pub(crate) fn frees(out: &[Command]) -> Vec<(WorkerId, TaskId)> {
    let mut v: Vec<_> = out
        .iter()
        .filter_map(|c| match c {
            Command::Free { worker, task } => Some((*worker, *task)),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn single_task_runs_and_is_done() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, vec![TaskSpec::new(10)]);
    assert_eq!(
        out,
        vec![Command::Compute {
            worker: 1,
            task: 10,
            inputs: vec![]
        }]
    );
    assert_eq!(s.state(10), Some(TaskState::Processing));
    let out = finish(&mut s, 1, 10, 8);
    assert_eq!(out, vec![Command::Done { task: 10 }]);
    assert_eq!(s.who_has(10), &[1]);
    assert_eq!(s.workers()[0].held_bytes, 8);
    let out = ev(&mut s, Event::Release { task: 10 });
    assert_eq!(
        out,
        vec![Command::Free {
            worker: 1,
            task: 10
        }]
    );
    assert_eq!(s.state(10), None);
    assert_eq!(s.task_count(), 0);
}

#[test]
fn tasks_wait_for_a_worker() {
    let mut s = sched();
    assert!(submit(&mut s, vec![TaskSpec::new(1)]).is_empty());
    assert_eq!(s.state(1), Some(TaskState::Ready));
    let out = add_worker(&mut s, 7, 2);
    assert_eq!(computes(&out), vec![(7, 1)]);
}

#[test]
fn capacity_is_slots_plus_prefetch() {
    let mut s = sched();
    add_worker(&mut s, 1, 2);
    let out = submit(&mut s, (0..10).map(TaskSpec::new).collect());
    // default prefetch = slots: 4 assigned, in submission order
    assert_eq!(computes(&out), vec![(1, 0), (1, 1), (1, 2), (1, 3)]);
    let mut s = Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(0),
        ..SchedulerConfig::default()
    });
    add_worker(&mut s, 1, 2);
    let out = submit(&mut s, (0..10).map(TaskSpec::new).collect());
    assert_eq!(computes(&out).len(), 2);
    let out = finish(&mut s, 1, 0, 1);
    assert_eq!(computes(&out), vec![(1, 2)]);
}

#[test]
fn least_loaded_then_lowest_id() {
    let mut s = sched();
    add_worker(&mut s, 5, 1);
    add_worker(&mut s, 3, 1);
    add_worker(&mut s, 4, 2);
    let out = submit(&mut s, (0..3).map(TaskSpec::new).collect());
    assert_eq!(computes(&out), vec![(3, 0), (4, 1), (5, 2)]);
}

#[test]
fn assignment_prefers_the_input_holder() {
    let mut s = sched();
    add_worker(&mut s, 1, 4);
    add_worker(&mut s, 2, 4);
    submit(&mut s, vec![TaskSpec::new(1).wanted(false)]);
    submit(&mut s, vec![TaskSpec::new(2).wanted(false)]);
    assert_eq!(s.processing_on(1), Some(1));
    assert_eq!(s.processing_on(2), Some(2));
    let out = submit(
        &mut s,
        vec![
            TaskSpec::new(3).deps([1, 2]),
            TaskSpec::new(4).deps([1]),
            TaskSpec::new(5).deps([2]),
        ],
    );
    assert!(computes(&out).is_empty());
    finish(&mut s, 1, 1, 100);
    // task 4 is ready: worker 1 holds its input (100 bytes) and is more loaded? no: equal
    assert_eq!(s.processing_on(4), Some(1));
    finish(&mut s, 2, 2, 1000);
    // task 3: worker 2 holds 1000 bytes of its inputs, worker 1 only 100
    let out_state = s.processing_on(3);
    assert_eq!(out_state, Some(2));
    assert_eq!(s.processing_on(5), Some(2));
    // inputs tell where the data lives
    let mut s2 = sched();
    add_worker(&mut s2, 1, 1);
    submit(&mut s2, vec![TaskSpec::new(1)]);
    let out = finish(&mut s2, 1, 1, 1);
    assert_eq!(s2.state(1), Some(TaskState::Memory));
    assert!(out.contains(&Command::Done { task: 1 }));
    let out = submit(&mut s2, vec![TaskSpec::new(2).deps([1, 1])]);
    assert_eq!(
        out,
        vec![Command::Compute {
            worker: 1,
            task: 2,
            inputs: vec![(1, vec![1])]
        }]
    );
}

#[test]
fn holder_preferred_even_when_more_loaded() {
    let mut s = sched();
    add_worker(&mut s, 1, 2);
    add_worker(&mut s, 2, 2);
    submit(
        &mut s,
        vec![TaskSpec::new(1), TaskSpec::new(2), TaskSpec::new(3)],
    );
    // 1 -> w1, 2 -> w2, 3 -> w1
    assert_eq!(s.processing_on(3), Some(1));
    finish(&mut s, 1, 1, 50);
    let out = submit(&mut s, vec![TaskSpec::new(4).deps([1])]);
    assert_eq!(computes(&out), vec![(1, 4)]);
}

#[test]
fn priority_then_depth_first_then_id() {
    let mut s = sched();
    submit(
        &mut s,
        vec![
            TaskSpec::new(1),
            TaskSpec::new(2),
            TaskSpec::new(3).priority(5),
            TaskSpec::new(4),
            TaskSpec::new(10).deps([1, 2]),
        ],
    );
    let out = add_worker(&mut s, 1, 1);
    assert_eq!(computes(&out), vec![(1, 3), (1, 1)]);
    let out = finish(&mut s, 1, 3, 1);
    assert_eq!(computes(&out), vec![(1, 2)]);
    let out = finish(&mut s, 1, 1, 1);
    assert_eq!(computes(&out), vec![(1, 4)]);
    // 2 finishes: 10 becomes ready and goes before fresh leaves (none left here)
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(computes(&out), vec![(1, 10)]);

    // a task unlocked by a finished dependency goes before fresh leaves
    let mut s = Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(0),
        ..SchedulerConfig::default()
    });
    add_worker(&mut s, 1, 1);
    let mut specs: Vec<TaskSpec> = (0..5).map(TaskSpec::new).collect();
    specs.push(TaskSpec::new(100).deps([0]));
    submit(&mut s, specs);
    let out = finish(&mut s, 1, 0, 1);
    assert_eq!(computes(&out), vec![(1, 100)]);
}

#[test]
fn intermediate_results_are_freed_when_dependents_finish() {
    let mut s = sched();
    add_worker(&mut s, 1, 2);
    submit(
        &mut s,
        vec![
            TaskSpec::new(1).wanted(false),
            TaskSpec::new(2).wanted(false),
            TaskSpec::new(3).deps([1, 2]),
        ],
    );
    assert!(finish(&mut s, 1, 1, 1).is_empty());
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(computes(&out), vec![(1, 3)]);
    let out = finish(&mut s, 1, 3, 1);
    assert!(out.contains(&Command::Done { task: 3 }));
    assert_eq!(frees(&out), vec![(1, 1), (1, 2)]);
    assert_eq!(s.state(1), Some(TaskState::Released));
    assert_eq!(s.task_count(), 3);
    let out = ev(&mut s, Event::Release { task: 3 });
    assert_eq!(frees(&out), vec![(1, 3)]);
    assert_eq!(s.task_count(), 0);
    assert_eq!(s.workers()[0].held, 0);
}

#[test]
fn wanted_dependency_is_kept_until_released() {
    let mut s = sched();
    add_worker(&mut s, 1, 2);
    submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2).deps([1])]);
    finish(&mut s, 1, 1, 1);
    let out = finish(&mut s, 1, 2, 1);
    assert!(frees(&out).is_empty());
    let out = ev(&mut s, Event::Release { task: 1 });
    assert_eq!(frees(&out), vec![(1, 1)]);
    assert_eq!(s.state(1), Some(TaskState::Released)); // lineage for 2
    ev(&mut s, Event::Release { task: 2 });
    assert_eq!(s.task_count(), 0);
}

#[test]
fn replicas_are_freed_too() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 1);
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    assert_eq!(s.who_has(1), &[1, 2]);
    let out = ev(&mut s, Event::Release { task: 1 });
    assert_eq!(frees(&out), vec![(1, 1), (2, 1)]);
    // a late replica of a forgotten result is freed at once
    let out = ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    assert_eq!(frees(&out), vec![(2, 1)]);
}

#[test]
fn steal_flow() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, (1..=3).map(TaskSpec::new).collect());
    assert_eq!(computes(&out), vec![(1, 1), (1, 2)]);
    // worker 2 joins: nothing ready, so steal the most recently queued task of worker 1
    let out = add_worker(&mut s, 2, 1);
    assert_eq!(computes(&out), vec![(2, 3)]);
    let out = finish(&mut s, 2, 3, 1);
    assert!(out.contains(&Command::Done { task: 3 }));
    assert_eq!(out.last(), Some(&Command::Steal { worker: 1, task: 2 }));
    // stolen: reassigned, not to the victim
    let out = ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: 2,
            stolen: true,
        },
    );
    assert_eq!(computes(&out), vec![(2, 2)]);
    assert_eq!(s.attempts(2), Some(0));
    finish(&mut s, 1, 1, 1);
    finish(&mut s, 2, 2, 1);
    assert!((1..=3).all(|t| s.state(t) == Some(TaskState::Memory)));
}

#[test]
fn steal_refused_and_lost_race() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, (1..=2).map(TaskSpec::new).collect());
    let out = add_worker(&mut s, 2, 1);
    assert_eq!(out, vec![Command::Steal { worker: 1, task: 2 }]);
    // refused: it had started; nothing changes and it is not asked again
    let out = ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: 2,
            stolen: false,
        },
    );
    assert!(out.is_empty());
    assert_eq!(s.processing_on(2), Some(1));
    // a finish for a task under a steal request counts (the steal lost the race)
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(&mut s, (1..=2).map(TaskSpec::new).collect());
    add_worker(&mut s, 2, 1);
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(out, vec![Command::Done { task: 2 }]);
    let out = ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: 2,
            stolen: false,
        },
    );
    assert!(out.is_empty());
    assert_eq!(s.state(2), Some(TaskState::Memory));
}

#[test]
fn worker_death_reruns_processing_tasks() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1).retries(1)]);
    assert_eq!(s.processing_on(1), Some(1));
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert_eq!(computes(&out), vec![(2, 1)]);
    assert_eq!(s.attempts(1), Some(1));
    // a late finish from the dead worker is refused
    let mut out = Vec::new();
    assert_eq!(
        s.handle(
            Event::TaskFinished {
                worker: 1,
                task: 1,
                nbytes: 1
            },
            &mut out
        ),
        Err(SchedulerError::UnknownWorker(1))
    );
    assert!(out.is_empty());
    let out = finish(&mut s, 2, 1, 1);
    assert_eq!(out, vec![Command::Done { task: 1 }]);
}

#[test]
fn retries_exhausted_is_lost_and_dependents_err() {
    let mut s = sched();
    submit(
        &mut s,
        vec![
            TaskSpec::new(1).retries(1),
            TaskSpec::new(2).deps([1]),
            TaskSpec::new(3).deps([2]).wanted(true),
        ],
    );
    add_worker(&mut s, 1, 1);
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert!(out.is_empty());
    assert_eq!(s.state(1), Some(TaskState::Ready));
    add_worker(&mut s, 2, 1);
    let mut out = ev(&mut s, Event::WorkerRemoved { worker: 2 });
    out.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        out,
        vec![
            Command::Erred { task: 2, cause: 1 },
            Command::Erred { task: 3, cause: 1 },
            Command::Lost {
                task: 1,
                attempts: 2
            },
        ]
    );
    assert_eq!(s.state(1), Some(TaskState::Lost));
    for t in 1..=3 {
        ev(&mut s, Event::Release { task: t });
    }
    assert_eq!(s.task_count(), 0);
}

#[test]
fn erred_propagates_with_cause() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![
            TaskSpec::new(1).wanted(false),
            TaskSpec::new(2).deps([1]).wanted(false),
            TaskSpec::new(3).deps([2]),
            TaskSpec::new(4),
        ],
    );
    let out = ev(&mut s, Event::TaskErred { worker: 1, task: 1 });
    assert_eq!(out[0], Command::Erred { task: 3, cause: 1 });
    assert_eq!(computes(&out), vec![(1, 4)]);
    // non-wanted erred tasks end silently and are forgotten
    assert_eq!(s.state(1), None);
    assert_eq!(s.state(2), None);
    assert_eq!(s.state(3), Some(TaskState::Erred));
    // a late submission on an erred task errs at once with the original cause
    let out = submit(&mut s, vec![TaskSpec::new(5).deps([3])]);
    assert_eq!(out, vec![Command::Erred { task: 5, cause: 1 }]);
    let out = ev(&mut s, Event::TaskErred { worker: 1, task: 4 });
    assert_eq!(out, vec![Command::Erred { task: 4, cause: 4 }]);
    for t in [3, 4, 5] {
        ev(&mut s, Event::Release { task: t });
    }
    assert_eq!(s.task_count(), 0);
}

#[test]
fn death_recomputes_lost_results_from_lineage() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![
            TaskSpec::new(1).wanted(false),
            TaskSpec::new(2).deps([1]).wanted(false),
            TaskSpec::new(3).wanted(false),
            TaskSpec::new(4).deps([2, 3]).retries(1),
        ],
    );
    assert_eq!(computes(&finish(&mut s, 1, 1, 1)), vec![(1, 2)]);
    assert_eq!(computes(&finish(&mut s, 1, 2, 1)), vec![(1, 3)]);
    assert_eq!(computes(&finish(&mut s, 1, 3, 1)), vec![(1, 4)]);
    assert_eq!(s.state(1), Some(TaskState::Released));
    add_worker(&mut s, 2, 2);
    // worker 1 dies holding 2 and 3, running 4: 2 needs 1 again, which was released
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    let mut c = computes(&out);
    c.sort_unstable();
    assert_eq!(c, vec![(2, 1), (2, 3)]);
    assert_eq!(s.state(2), Some(TaskState::Waiting));
    assert_eq!(s.state(4), Some(TaskState::Waiting));
    assert_eq!(s.attempts(4), Some(1));
    finish(&mut s, 2, 1, 1);
    finish(&mut s, 2, 3, 1);
    let out = finish(&mut s, 2, 2, 1);
    assert_eq!(computes(&out), vec![(2, 4)]);
    let out = finish(&mut s, 2, 4, 1);
    assert!(out.contains(&Command::Done { task: 4 }));
    ev(&mut s, Event::Release { task: 4 });
    assert_eq!(s.task_count(), 0);
    assert_eq!(s.workers()[0].held, 0);
}

#[test]
fn death_with_replica_only_drops_the_holder() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 1);
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert!(out.is_empty());
    assert_eq!(s.who_has(1), &[2]);
    assert_eq!(s.state(1), Some(TaskState::Memory));
}

#[test]
fn lost_scattered_data_errs_dependents() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    ev(
        &mut s,
        Event::Scattered {
            task: 100,
            workers: vec![1],
            nbytes: 10,
        },
    );
    let out = submit(&mut s, vec![TaskSpec::new(1).deps([100]).retries(5)]);
    assert_eq!(computes(&out), vec![(1, 1)]);
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert_eq!(
        out,
        vec![Command::Erred {
            task: 1,
            cause: 100
        }]
    );
    assert_eq!(s.state(100), Some(TaskState::Lost));
    ev(&mut s, Event::Release { task: 1 });
    ev(&mut s, Event::Release { task: 100 });
    assert_eq!(s.task_count(), 0);
}

#[test]
fn cancel_ends_task_and_dependents() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![
            TaskSpec::new(1).wanted(false),
            TaskSpec::new(2).deps([1]),
            TaskSpec::new(3),
        ],
    );
    let out = ev(&mut s, Event::Cancel { task: 1 });
    assert_eq!(
        out,
        vec![
            Command::Cancel { worker: 1, task: 1 },
            Command::Cancelled { task: 2 },
            Command::Compute {
                worker: 1,
                task: 3,
                inputs: vec![]
            },
        ]
    );
    // a late finish of the cancelled task is freed
    let out = finish(&mut s, 1, 1, 1);
    assert_eq!(out, vec![Command::Free { worker: 1, task: 1 }]);
    // cancelling a finished task changes nothing
    finish(&mut s, 1, 3, 1);
    assert!(ev(&mut s, Event::Cancel { task: 3 }).is_empty());
    assert_eq!(s.state(3), Some(TaskState::Memory));
    ev(&mut s, Event::Release { task: 2 });
    ev(&mut s, Event::Release { task: 3 });
    assert_eq!(s.task_count(), 0);
}

#[test]
fn release_of_unfinished_task_drops_unneeded_work() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![TaskSpec::new(1).wanted(false), TaskSpec::new(2).deps([1])],
    );
    let out = ev(&mut s, Event::Release { task: 2 });
    assert_eq!(out, vec![Command::Cancel { worker: 1, task: 1 }]);
    assert_eq!(s.task_count(), 0);
}

#[test]
fn stale_finish_after_reassignment_first_wins() {
    let mut s = sched();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1).wanted(false)]);
    let out = submit(&mut s, vec![TaskSpec::new(2).deps([1])]);
    assert!(out.is_empty());
    // task 1 runs on worker 1; pretend worker 2 also computed it (e.g. a cancelled copy)
    let out = finish(&mut s, 2, 1, 1);
    assert_eq!(out[0], Command::Cancel { worker: 1, task: 1 });
    assert_eq!(computes(&out), vec![(2, 2)]);
    // the original finishes later: just a replica
    let out = finish(&mut s, 1, 1, 1);
    assert!(out.is_empty());
    assert_eq!(s.who_has(1), &[2, 1]);
    let out = finish(&mut s, 2, 2, 1);
    assert_eq!(frees(&out), vec![(1, 1), (2, 1)]);
}

#[test]
fn processing_dependent_is_pulled_back_when_its_inputs_vanish() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    finish(&mut s, 1, 1, 1);
    // occupy worker 1 so that 2 goes to worker 2, told to read from worker 1
    assert_eq!(
        computes(&submit(&mut s, vec![TaskSpec::new(9)])),
        vec![(1, 9)]
    );
    let out = submit(&mut s, vec![TaskSpec::new(2).deps([1])]);
    assert_eq!(
        out,
        vec![Command::Compute {
            worker: 2,
            task: 2,
            inputs: vec![(1, vec![1])]
        }]
    );
    // a replica that arrived after the assignment does not help: the task was told to
    // read from the dying worker, so it is sent again with fresh locations
    ev(&mut s, Event::Replicated { worker: 2, task: 1 });
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert_eq!(
        out,
        vec![
            Command::Lost {
                task: 9,
                attempts: 1
            },
            Command::Cancel { worker: 2, task: 2 },
            Command::Compute {
                worker: 2,
                task: 2,
                inputs: vec![(1, vec![2])]
            }
        ]
    );
}

#[test]
fn bad_events_are_errors_and_change_nothing() {
    let mut s = sched();
    let mut out = Vec::new();
    assert_eq!(
        s.handle(
            Event::WorkerAdded {
                worker: 1,
                slots: 0,
                resources: Resources::new(),
            },
            &mut out
        ),
        Err(SchedulerError::ZeroSlots(1))
    );
    add_worker(&mut s, 1, 1);
    assert_eq!(
        s.handle(
            Event::WorkerAdded {
                worker: 1,
                slots: 1,
                resources: Resources::new(),
            },
            &mut out
        ),
        Err(SchedulerError::DuplicateWorker(1))
    );
    assert_eq!(
        s.handle(Event::WorkerRemoved { worker: 9 }, &mut out),
        Err(SchedulerError::UnknownWorker(9))
    );
    assert_eq!(
        s.handle(Event::Release { task: 9 }, &mut out),
        Err(SchedulerError::UnknownTask(9))
    );
    assert_eq!(
        s.handle(Event::Cancel { task: 9 }, &mut out),
        Err(SchedulerError::UnknownTask(9))
    );
    assert_eq!(
        s.handle(
            Event::Submit {
                tasks: vec![TaskSpec::new(1), TaskSpec::new(1)]
            },
            &mut out
        ),
        Err(SchedulerError::DuplicateTask(1))
    );
    assert_eq!(
        s.handle(
            Event::Submit {
                tasks: vec![TaskSpec::new(1), TaskSpec::new(2).deps([3])]
            },
            &mut out
        ),
        Err(SchedulerError::UnknownDependency { task: 2, dep: 3 })
    );
    assert_eq!(
        s.handle(
            Event::Submit {
                tasks: vec![TaskSpec::new(1).deps([2]), TaskSpec::new(2).deps([1])]
            },
            &mut out
        ),
        Err(SchedulerError::Cycle(1))
    );
    assert_eq!(
        s.handle(
            Event::Scattered {
                task: 5,
                workers: vec![7],
                nbytes: 1
            },
            &mut out
        ),
        Err(SchedulerError::UnknownWorker(7))
    );
    assert!(out.is_empty());
    assert_eq!(s.task_count(), 0);
    assert!(!SchedulerError::Cycle(1).to_string().is_empty());
    // a batch in any order within itself is fine
    let out = submit(&mut s, vec![TaskSpec::new(2).deps([1]), TaskSpec::new(1)]);
    assert_eq!(computes(&out), vec![(1, 1)]);
    // unknown task ids from a known worker: freed, not an error
    let out = finish(&mut s, 1, 77, 1);
    assert_eq!(
        out,
        vec![Command::Free {
            worker: 1,
            task: 77
        }]
    );
}

#[test]
fn big_batch_runs_every_task_once() {
    // A 20k-task graph submitted at once: every task is computed exactly once and every
    // wanted one is done once (the timing of this workload is in the benches).
    let n = 20_000u64;
    let mut s = sched();
    for w in 0..8 {
        add_worker(&mut s, w, 4);
    }
    let specs: Vec<TaskSpec> = (0..n)
        .map(|i| {
            let deps = if i >= 100 {
                vec![i - 100, i / 2]
            } else {
                vec![]
            };
            TaskSpec::new(i).deps(deps).wanted(i % 10 == 0)
        })
        .collect();
    let mut out = Vec::new();
    s.handle(Event::Submit { tasks: specs }, &mut out).unwrap();
    let mut computed: HashMap<TaskId, u32> = HashMap::new();
    let mut done = 0;
    while let Some(c) = out.pop() {
        if let Command::Compute { worker, task, .. } = c {
            *computed.entry(task).or_default() += 1;
            s.handle(
                Event::TaskFinished {
                    worker,
                    task,
                    nbytes: 8,
                },
                &mut out,
            )
            .unwrap();
        } else if matches!(c, Command::Done { .. }) {
            done += 1;
        }
    }
    assert_eq!(done, n / 10);
    assert_eq!(computed.len() as u64, n);
    assert!(computed.values().all(|&k| k == 1));
    s.check_invariants().unwrap();
}

fn secede(s: &mut Scheduler, worker: WorkerId, task: TaskId) -> Vec<Command> {
    ev(s, Event::Secede { worker, task })
}

fn rejoin(s: &mut Scheduler, worker: WorkerId, task: TaskId) -> Vec<Command> {
    ev(s, Event::Rejoin { worker, task })
}

fn seceded(s: &Scheduler, worker: WorkerId) -> usize {
    s.workers().iter().find(|w| w.id == worker).unwrap().seceded
}

#[test]
fn secede_frees_the_slot_and_rejoin_takes_it_back() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, vec![TaskSpec::new(1), TaskSpec::new(2)]);
    assert_eq!(computes(&out), vec![(1, 1)]);
    assert_eq!(s.state(2), Some(TaskState::Ready));
    // A blocks on other work: B gets its slot at once
    let out = secede(&mut s, 1, 1);
    assert_eq!(computes(&out), vec![(1, 2)]);
    assert_eq!(s.state(1), Some(TaskState::Processing));
    assert_eq!(s.processing_on(1), Some(1));
    let info = &s.workers()[0];
    assert_eq!((info.processing, info.seceded), (2, 1));
    // the worker is full again
    assert!(computes(&submit(&mut s, vec![TaskSpec::new(3)])).is_empty());
    // rejoin: over capacity (2 running on 1 slot), no new assignment
    assert!(rejoin(&mut s, 1, 1).is_empty());
    assert_eq!(seceded(&s, 1), 0);
    // B finishes: A alone fills the slot, still nothing for C
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(out, vec![Command::Done { task: 2 }]);
    // A finishes: C runs
    let out = finish(&mut s, 1, 1, 1);
    assert_eq!(out[0], Command::Done { task: 1 });
    assert_eq!(computes(&out), vec![(1, 3)]);
    finish(&mut s, 1, 3, 1);
    assert!((1..=3).all(|t| s.state(t) == Some(TaskState::Memory)));
}

#[test]
fn seceded_task_finishing_or_erring_ends_normally() {
    // finish while seceded, before the task that took its slot
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(&mut s, (1..=3).map(TaskSpec::new).collect());
    assert_eq!(computes(&secede(&mut s, 1, 1)), vec![(1, 2)]);
    let out = finish(&mut s, 1, 1, 1);
    assert_eq!(out, vec![Command::Done { task: 1 }]); // B still holds the slot
    assert_eq!(seceded(&s, 1), 0);
    assert_eq!(s.workers()[0].processing, 1);
    // a late rejoin for the finished task is an error and changes nothing
    let mut o = Vec::new();
    assert_eq!(
        s.handle(Event::Rejoin { worker: 1, task: 1 }, &mut o),
        Err(SchedulerError::NotProcessing { task: 1, worker: 1 })
    );
    assert!(o.is_empty());
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(computes(&out), vec![(1, 3)]);
    // erring while seceded: the dependent errs, the slot count is right
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![
            TaskSpec::new(1),
            TaskSpec::new(2).deps([1]),
            TaskSpec::new(3),
        ],
    );
    assert_eq!(computes(&secede(&mut s, 1, 1)), vec![(1, 3)]);
    let out = ev(&mut s, Event::TaskErred { worker: 1, task: 1 });
    assert_eq!(
        out,
        vec![
            Command::Erred { task: 1, cause: 1 },
            Command::Erred { task: 2, cause: 1 }
        ]
    );
    assert_eq!(seceded(&s, 1), 0);
    // cancelling a seceded task tells the worker and frees its bookkeeping
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(&mut s, (1..=2).map(TaskSpec::new).collect());
    secede(&mut s, 1, 1);
    let out = ev(&mut s, Event::Cancel { task: 1 });
    assert_eq!(
        out,
        vec![
            Command::Cancel { worker: 1, task: 1 },
            Command::Cancelled { task: 1 }
        ]
    );
    assert_eq!((s.workers()[0].processing, seceded(&s, 1)), (1, 0));
}

#[test]
fn death_of_a_worker_with_a_seceded_task_reruns_it() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    submit(
        &mut s,
        vec![TaskSpec::new(1).retries(1), TaskSpec::new(2).retries(1)],
    );
    assert_eq!(computes(&secede(&mut s, 1, 1)), vec![(1, 2)]);
    add_worker(&mut s, 2, 1);
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    // both re-run (re-run tasks go last-in first-out); only one slot is left
    assert_eq!(computes(&out), vec![(2, 2)]);
    assert_eq!(s.attempts(1), Some(1));
    assert_eq!(s.state(1), Some(TaskState::Ready));
    assert_eq!(seceded(&s, 2), 0);
    let out = finish(&mut s, 2, 2, 1);
    assert_eq!(computes(&out), vec![(2, 1)]);
    // it may secede again on the new worker, and dying again exhausts its retries
    secede(&mut s, 2, 1);
    assert_eq!(seceded(&s, 2), 1);
    add_worker(&mut s, 3, 1);
    let out = ev(&mut s, Event::WorkerRemoved { worker: 2 });
    assert!(out.contains(&Command::Lost {
        task: 1,
        attempts: 2
    }));
}

#[test]
fn seceded_tasks_are_never_stolen() {
    let mut s = sched(); // prefetch = slots
    add_worker(&mut s, 1, 1);
    submit(&mut s, vec![TaskSpec::new(1)]);
    secede(&mut s, 1, 1);
    let out = submit(&mut s, vec![TaskSpec::new(2), TaskSpec::new(3)]);
    assert_eq!(computes(&out), vec![(1, 2), (1, 3)]);
    // an idle worker joins: it asks for the queued task, never for the seceded one
    let out = add_worker(&mut s, 2, 1);
    assert_eq!(out, vec![Command::Steal { worker: 1, task: 3 }]);
    // 3 had in fact started and secedes too: the request is moot, the late answer ignored
    let out = secede(&mut s, 1, 3);
    assert!(!out
        .iter()
        .any(|c| matches!(c, Command::Steal { task: 1 | 3, .. })));
    let out = ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: 3,
            stolen: false,
        },
    );
    assert!(out.is_empty());
    assert_eq!(seceded(&s, 1), 2);
    // with only seceded tasks and a running one left, nothing is stealable
    let out = finish(&mut s, 1, 2, 1);
    assert_eq!(out, vec![Command::Done { task: 2 }]);
    // rejoined tasks are running too: not stolen either
    rejoin(&mut s, 1, 1);
    rejoin(&mut s, 1, 3);
    let out = submit(&mut s, vec![TaskSpec::new(4)]);
    assert_eq!(computes(&out), vec![(2, 4)]);
    let out = finish(&mut s, 2, 4, 1);
    assert!(!out.iter().any(|c| matches!(c, Command::Steal { .. })));
}

#[test]
fn bad_secede_and_rejoin_are_errors_and_change_nothing() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    add_worker(&mut s, 2, 1);
    submit(&mut s, (1..=3).map(TaskSpec::new).collect());
    assert_eq!((s.processing_on(1), s.processing_on(2)), (Some(1), Some(2)));
    let mut out = Vec::new();
    for e in [
        (
            Event::Secede { worker: 9, task: 1 },
            SchedulerError::UnknownWorker(9),
        ),
        (
            Event::Rejoin { worker: 9, task: 1 },
            SchedulerError::UnknownWorker(9),
        ),
        (
            Event::Secede { worker: 1, task: 9 },
            SchedulerError::UnknownTask(9),
        ),
        (
            Event::Rejoin { worker: 1, task: 9 },
            SchedulerError::UnknownTask(9),
        ),
        // processing elsewhere
        (
            Event::Secede { worker: 1, task: 2 },
            SchedulerError::NotProcessing { task: 2, worker: 1 },
        ),
        // ready, not processing
        (
            Event::Secede { worker: 1, task: 3 },
            SchedulerError::NotProcessing { task: 3, worker: 1 },
        ),
    ] {
        assert_eq!(s.handle(e.0, &mut out), Err(e.1));
        s.check_invariants().unwrap();
    }
    assert!(out.is_empty());
    assert_eq!(s.state(3), Some(TaskState::Ready));
    assert!(s.workers().iter().all(|w| w.seceded == 0));
    assert!(!SchedulerError::NotProcessing { task: 1, worker: 2 }
        .to_string()
        .is_empty());
    // rejoin without secede: no-op
    assert!(rejoin(&mut s, 1, 1).is_empty());
    // secede twice: the second is a no-op
    assert_eq!(computes(&secede(&mut s, 1, 1)), vec![(1, 3)]);
    assert!(secede(&mut s, 1, 1).is_empty());
    assert_eq!(seceded(&s, 1), 1);
    assert!(rejoin(&mut s, 1, 1).is_empty());
    assert!(rejoin(&mut s, 1, 1).is_empty());
    assert_eq!(seceded(&s, 1), 0);
}

/// Dask's nested-task deadlock: every outer task submits inner tasks and waits for them.
/// Without secede, one slot held by an outer task could never run its inner tasks.
#[test]
fn nested_tasks_on_one_slot_do_not_deadlock() {
    let mut s = sched0();
    add_worker(&mut s, 1, 1);
    let outer: Vec<TaskId> = (0..50).collect();
    let mut out = submit(&mut s, outer.iter().map(|&t| TaskSpec::new(t)).collect());
    let mut next_id = 1000;
    // outer task -> its inner tasks not yet done
    let mut waiting: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    let mut parent: HashMap<TaskId, TaskId> = HashMap::new();
    let mut done: HashMap<TaskId, u32> = HashMap::new();
    let mut queue: std::collections::VecDeque<Command> = out.drain(..).collect();
    while let Some(c) = queue.pop_front() {
        let next = match c {
            Command::Compute { worker, task, .. } if task < 1000 => {
                let inner: Vec<TaskId> = (next_id..next_id + 10).collect();
                next_id += 10;
                for &i in &inner {
                    parent.insert(i, task);
                }
                waiting.insert(task, inner.clone());
                let mut o = submit(&mut s, inner.into_iter().map(TaskSpec::new).collect());
                o.extend(secede(&mut s, worker, task));
                o
            }
            Command::Compute { worker, task, .. } => finish(&mut s, worker, task, 1),
            Command::Done { task } => {
                *done.entry(task).or_default() += 1;
                let mut o = Vec::new();
                if let Some(&p) = parent.get(&task) {
                    let w = waiting.get_mut(&p).unwrap();
                    w.retain(|&i| i != task);
                    if w.is_empty() {
                        o = rejoin(&mut s, 1, p);
                        o.extend(finish(&mut s, 1, p, 1));
                    }
                }
                o
            }
            other => panic!("unexpected {other:?}"),
        };
        queue.extend(next);
    }
    assert_eq!(done.len(), 50 + 500);
    assert!(done.values().all(|&n| n == 1));
    assert!(waiting.values().all(|w| w.is_empty()));
    let info = &s.workers()[0];
    assert_eq!((info.processing, info.seceded), (0, 0));
    assert_eq!(s.ready_count(), 0);
}

#[test]
fn steal_skips_a_seceded_task_assigned_after_queued_ones() {
    let mut s = Scheduler::new(SchedulerConfig {
        prefetch_per_worker: Some(2),
        ..SchedulerConfig::default()
    });
    add_worker(&mut s, 1, 1);
    let out = submit(&mut s, (1..=3).map(TaskSpec::new).collect());
    assert_eq!(computes(&out), vec![(1, 1), (1, 2), (1, 3)]);
    // the worker happened to start 3 first, and 3 waits
    let out = secede(&mut s, 1, 3);
    assert!(computes(&out).is_empty());
    let out = submit(&mut s, vec![TaskSpec::new(4)]);
    assert_eq!(computes(&out), vec![(1, 4)]);
    // two idle slots: ask for the two most recent queued tasks, skipping 3
    let out = add_worker(&mut s, 2, 2);
    assert_eq!(
        out,
        vec![
            Command::Steal { worker: 1, task: 4 },
            Command::Steal { worker: 1, task: 2 }
        ]
    );
}
