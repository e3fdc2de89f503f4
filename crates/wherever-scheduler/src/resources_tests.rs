//! Placement with resources: tasks go only where their request fits, hold it while
//! assigned, share a worker up to its totals, are never stolen to a worker lacking
//! it, and fail at once when no worker present could ever fit them.

use crate::tests::{add_worker, computes, ev, finish, sched, sched0, submit};
use crate::*;

fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap()
}

fn add_worker_with(
    s: &mut Scheduler,
    worker: WorkerId,
    slots: u32,
    resources: &str,
) -> Vec<Command> {
    ev(
        s,
        Event::WorkerAdded {
            worker,
            slots,
            resources: res(resources),
        },
    )
}

fn asking(id: TaskId, resources: &str) -> TaskSpec {
    TaskSpec::new(id).resources(res(resources))
}

#[test]
fn a_task_asking_for_a_gpu_goes_only_to_the_worker_with_one() {
    let mut s = sched();
    add_worker(&mut s, 1, 4);
    add_worker_with(&mut s, 2, 4, "gpu=1");
    let out = submit(
        &mut s,
        vec![asking(10, "gpu=1"), asking(11, "gpu=1"), TaskSpec::new(12)],
    );
    // One gpu task holds the only gpu; the other waits although worker 2 has slots.
    assert_eq!(computes(&out), vec![(2, 10), (1, 12)]);
    assert_eq!(s.state(11), Some(TaskState::Ready));
    assert_eq!(s.ready_count(), 1);
    assert_eq!(s.workers()[1].free.get("gpu"), 0.0);
    let out = finish(&mut s, 2, 10, 1);
    assert_eq!(computes(&out), vec![(2, 11)]);
    finish(&mut s, 2, 11, 1);
    assert_eq!(s.workers()[1].free.get("gpu"), 1.0);
}

#[test]
fn tasks_share_a_worker_up_to_its_totals() {
    let mut s = sched();
    add_worker_with(&mut s, 1, 8, "gpu=2,mem=4GB");
    let out = submit(
        &mut s,
        (0..6).map(|i| asking(i, "gpu=0.5,mem=1GB")).collect(),
    );
    // Four fit by memory (and by gpu), the other two wait.
    assert_eq!(computes(&out).len(), 4);
    let out = finish(&mut s, 1, 0, 1);
    assert_eq!(computes(&out), vec![(1, 4)]);
}

#[test]
fn a_request_no_worker_could_fit_fails_at_once_naming_the_resource() {
    let mut s = sched();
    add_worker(&mut s, 1, 2);
    add_worker_with(&mut s, 2, 2, "gpu=1");
    let out = submit(
        &mut s,
        vec![asking(10, "gpu=2"), TaskSpec::new(11).deps([10])],
    );
    let reason = out
        .iter()
        .find_map(|c| match c {
            Command::NoWorkerFits { task: 10, reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("NoWorkerFits");
    assert!(
        reason.contains("gpu=2")
            && reason.contains("gpu=1")
            && reason.contains("2 connected workers"),
        "{reason}"
    );
    assert!(out.contains(&Command::Erred {
        task: 10,
        cause: 10
    }));
    assert!(out.contains(&Command::Erred {
        task: 11,
        cause: 10
    }));
    assert!(computes(&out).is_empty());
    // Each resource fits somewhere, but no worker has both.
    let out = submit(&mut s, vec![asking(20, "gpu=1,cpus=3")]);
    let reason = out
        .iter()
        .find_map(|c| match c {
            Command::NoWorkerFits { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("NoWorkerFits");
    assert!(reason.contains("cpus=3"), "{reason}");
}

#[test]
fn a_request_for_resources_no_worker_has_waits_while_no_worker_is_connected() {
    let mut s = sched();
    assert!(submit(&mut s, vec![asking(1, "gpu=1")]).is_empty());
    assert_eq!(s.state(1), Some(TaskState::Ready));
    // A worker that does not fit joins: the task still waits (checked at submission only).
    let out = add_worker(&mut s, 1, 2);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.state(1), Some(TaskState::Ready));
    let out = add_worker_with(&mut s, 2, 1, "gpu=1");
    assert_eq!(computes(&out), vec![(2, 1)]);
}

#[test]
fn a_parked_task_runs_when_its_worker_gets_a_slot_back() {
    let mut s = sched0();
    add_worker_with(&mut s, 1, 1, "gpu=1");
    let out = submit(&mut s, vec![TaskSpec::new(1), asking(2, "gpu=1")]);
    assert_eq!(computes(&out), vec![(1, 1)]);
    let out = finish(&mut s, 1, 1, 1);
    assert_eq!(computes(&out), vec![(1, 2)]);
}

#[test]
fn cancelled_and_lost_tasks_give_their_resources_back() {
    let mut s = sched();
    add_worker_with(&mut s, 1, 2, "gpu=1");
    add_worker_with(&mut s, 2, 2, "gpu=1");
    let out = submit(
        &mut s,
        vec![
            asking(1, "gpu=1"),
            asking(2, "gpu=1"),
            asking(3, "gpu=1").retries(1),
        ],
    );
    assert_eq!(computes(&out), vec![(1, 1), (2, 2)]);
    let out = ev(&mut s, Event::Cancel { task: 1 });
    assert_eq!(computes(&out), vec![(1, 3)]);
    let out = add_worker_with(&mut s, 3, 1, "gpu=1");
    assert!(computes(&out).is_empty());
    // Worker 1 dies: its task reruns on the only worker with a free gpu.
    let out = ev(&mut s, Event::WorkerRemoved { worker: 1 });
    assert_eq!(computes(&out), vec![(3, 3)]);
}

#[test]
fn a_queued_task_is_never_stolen_for_a_worker_lacking_its_resources() {
    let mut s = sched();
    add_worker_with(&mut s, 1, 1, "gpu=2");
    let out = submit(&mut s, vec![asking(1, "gpu=1"), asking(2, "gpu=1")]);
    // One slot plus one prefetched: both go to worker 1.
    assert_eq!(computes(&out), vec![(1, 1), (1, 2)]);
    let out = add_worker(&mut s, 2, 4);
    assert!(
        !out.iter().any(|c| matches!(c, Command::Steal { .. })),
        "{out:?}"
    );
    let out = add_worker_with(&mut s, 3, 1, "gpu=1");
    assert_eq!(out, vec![Command::Steal { worker: 1, task: 2 }]);
    let out = ev(
        &mut s,
        Event::StealResponse {
            worker: 1,
            task: 2,
            stolen: true,
        },
    );
    assert_eq!(computes(&out), vec![(3, 2)]);
}

/// A small deterministic generator for the randomised test.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random workers (some with gpus, joining, dying), random tasks (some asking for
/// gpus, some with dependencies), random finishes: every assignment fits the worker's
/// totals, the amounts held never exceed them (the invariants check free + held =
/// total after every event), and every task ends exactly once.
#[test]
fn random_runs_respect_resources_and_end_every_task() {
    for seed in 0..200 {
        let mut rng = Lcg(seed);
        let mut s = sched();
        // Worker 1 (never removed) fits every request, so none fails at submission.
        let mut totals: std::collections::HashMap<WorkerId, f64> = Default::default();
        let mut out = add_worker_with(&mut s, 1, 1, "gpu=2");
        totals.insert(1, 2.0);
        let add = |s: &mut Scheduler,
                   rng: &mut Lcg,
                   totals: &mut std::collections::HashMap<WorkerId, f64>| {
            let id = totals.len() as WorkerId + 1;
            let gpus = rng.below(3);
            let slots = 1 + rng.below(3) as u32;
            totals.insert(id, gpus as f64);
            add_worker_with(s, id, slots, &format!("gpu={gpus}"))
        };
        let n = 40;
        let mut requests = Vec::new();
        let specs: Vec<TaskSpec> = (0..n)
            .map(|i| {
                let gpu = [0.0, 0.5, 1.0, 2.0][rng.below(4) as usize];
                requests.push(gpu);
                let spec = TaskSpec::new(i).resources(Resources::new().with("gpu", gpu).unwrap());
                if i > 0 && rng.below(3) == 0 {
                    spec.deps([rng.below(i)])
                } else {
                    spec
                }
            })
            .collect();
        out.extend(submit(&mut s, specs));
        let mut ended = std::collections::HashSet::new();
        let mut running: Vec<(WorkerId, TaskId)> = Vec::new();
        for _ in 0..2000 {
            for c in out.drain(..) {
                match c {
                    Command::Compute { worker, task, .. } => {
                        assert!(
                            requests[task as usize] <= totals[&worker],
                            "seed {seed}: task {task} on worker {worker}"
                        );
                        running.push((worker, task));
                    }
                    Command::Done { task }
                    | Command::Erred { task, .. }
                    | Command::Lost { task, .. }
                    | Command::Cancelled { task } => {
                        assert!(ended.insert(task), "seed {seed}: {task} ended twice");
                    }
                    // Steals stay unanswered: the task runs where it is.
                    _ => {}
                }
            }
            if ended.len() as u64 == n {
                break;
            }
            match rng.below(10) {
                0 => {
                    let added = add(&mut s, &mut rng, &mut totals);
                    out.extend(added);
                }
                1 if s.workers().len() > 2 => {
                    let workers = s.workers();
                    let w = workers[rng.below(workers.len() as u64) as usize].id;
                    if w != 1 {
                        running.retain(|(rw, _)| *rw != w);
                        out.extend(ev(&mut s, Event::WorkerRemoved { worker: w }));
                    }
                }
                _ if !running.is_empty() => {
                    let (w, t) = running.remove(rng.below(running.len() as u64) as usize);
                    if s.processing_on(t) == Some(w) {
                        out.extend(finish(&mut s, w, t, 1));
                    }
                }
                _ => {}
            }
        }
        assert_eq!(ended.len() as u64, n, "seed {seed}: not every task ended");
    }
}
