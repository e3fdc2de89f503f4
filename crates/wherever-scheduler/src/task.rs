//! A task's record inside the scheduler: its status, reference counts and holders.

use std::cmp::Reverse;

use smallvec::SmallVec;

use crate::id_hash::IdSet;
use crate::per_worker::PerWorker;
use crate::{Resources, TaskId, TaskState, WorkerId};

/// Where a task is in its life (the public [`TaskState`] plus the worker it runs on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Some dependency is not in memory.
    Waiting,
    /// All dependencies are in memory; queued in the ready set.
    Ready,
    /// Assigned to this worker.
    Processing(WorkerId),
    /// The result is held by at least one worker.
    Memory,
    /// The result was dropped (or never computed); the spec is kept for lineage.
    Released,
    /// The task or a dependency failed.
    Erred,
    /// The retry budget is exhausted, or scattered data lost all its holders.
    Lost,
    /// The task or a dependency was cancelled.
    Cancelled,
}

impl Status {
    /// Waiting, ready or processing: it still has to run.
    pub(crate) fn active(self) -> bool {
        matches!(
            self,
            Status::Waiting | Status::Ready | Status::Processing(_)
        )
    }

    /// Ended without a result: erred, lost or cancelled.
    pub(crate) fn failed(self) -> bool {
        matches!(self, Status::Erred | Status::Lost | Status::Cancelled)
    }

    /// The state as reported by [`crate::Scheduler::state`].
    pub(crate) fn public(self) -> TaskState {
        match self {
            Status::Waiting => TaskState::Waiting,
            Status::Ready => TaskState::Ready,
            Status::Processing(_) => TaskState::Processing,
            Status::Memory => TaskState::Memory,
            Status::Released => TaskState::Released,
            Status::Erred => TaskState::Erred,
            Status::Lost => TaskState::Lost,
            Status::Cancelled => TaskState::Cancelled,
        }
    }
}

/// Whether the scheduler asked the worker running a task to give it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StealFlag {
    /// Not asked.
    None,
    /// [`crate::Command::Steal`] sent, no answer yet.
    Pending,
    /// The worker had started it (or it is known to run): never ask again.
    Refused,
}

/// How a task ends without a result.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure {
    /// The user function of this task failed.
    Erred(TaskId),
    /// The retry budget is exhausted, or scattered data has no holder left.
    Lost,
    /// Cancelled by the client.
    Cancelled,
}

/// Order of the ready set, best first: (user priority, tier: 0 = unlocked by a finished
/// dependency or re-run, 1 = fresh; order within the tier, task id).
pub(crate) type ReadyKey = (Reverse<i64>, u8, u64, TaskId);

/// [`Task::ready_tier`] of a task not in the ready set.
pub(crate) const NOT_QUEUED: u8 = u8::MAX;

/// The tasks that depend on one task: none for most and one for most others (a
/// tree, a chain), so a single dependent is kept inline and a hash set is made,
/// boxed, only for a second one (no allocation per task for the usual graphs).
#[derive(Debug, Default)]
pub(crate) enum Dependents {
    /// No dependents.
    #[default]
    None,
    /// Exactly one.
    One(TaskId),
    /// Two or more (never empty).
    Many(Box<IdSet>),
}

impl Dependents {
    /// Adds `task`; `false` if it was there.
    pub(crate) fn insert(&mut self, task: TaskId) -> bool {
        match self {
            Dependents::None => {
                *self = Dependents::One(task);
                true
            }
            Dependents::One(one) if *one == task => false,
            Dependents::One(one) => {
                let mut set = Box::<IdSet>::default();
                set.insert(*one);
                set.insert(task);
                *self = Dependents::Many(set);
                true
            }
            Dependents::Many(set) => set.insert(task),
        }
    }

    /// Removes `task`; `false` if it was not there. The set goes with its last member.
    pub(crate) fn remove(&mut self, task: &TaskId) -> bool {
        match self {
            Dependents::None => false,
            Dependents::One(one) if one == task => {
                *self = Dependents::None;
                true
            }
            Dependents::One(_) => false,
            Dependents::Many(set) => {
                let removed = set.remove(task);
                if set.is_empty() {
                    *self = Dependents::None;
                }
                removed
            }
        }
    }

    /// Whether `task` is one of them.
    pub(crate) fn contains(&self, task: &TaskId) -> bool {
        match self {
            Dependents::None => false,
            Dependents::One(one) => one == task,
            Dependents::Many(set) => set.contains(task),
        }
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Dependents::None => true,
            Dependents::One(_) => false,
            Dependents::Many(set) => set.is_empty(),
        }
    }

    /// Each of them, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TaskId> {
        let (one, many) = match self {
            Dependents::None => (None, None),
            Dependents::One(one) => (Some(one), None),
            Dependents::Many(set) => (None, Some(set.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

impl<'a> IntoIterator for &'a Dependents {
    type Item = &'a TaskId;
    type IntoIter = Box<dyn Iterator<Item = &'a TaskId> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The workers holding a result: one is kept inline (the usual case).
pub(crate) type Holders = SmallVec<[WorkerId; 1]>;

/// The scheduler's record of one task, split by phase of its life: the core is what
/// a submitted task needs while it waits or is ready (issue 14 item 5: every byte
/// here is paid once per pending task, 2 M of them in a large submit), and
/// [`Placed`] what a task needs once it is assigned, holds a result, is stolen, has
/// failed or was re-queued: boxed, made on the first write to it
/// ([`Task::placed_mut`]); until then reads see [`NOT_PLACED`]'s defaults.
#[derive(Debug)]
pub(crate) struct Task {
    /// Dependencies, without duplicates, in the spec's order.
    pub(crate) deps: Box<[TaskId]>,
    /// Tasks that depend on this one and are not forgotten.
    pub(crate) dependents: Dependents,
    /// Its kind (0: unknown), for learning durations.
    pub(crate) kind: u64,
    /// Where it is in its life (the worker of [`Status::Processing`] is in
    /// [`Placed::processing_on`]); see [`Task::status`].
    status: Tag,
    /// The parts of a task that has been placed (or otherwise needed them).
    placed: Option<Box<Placed>>,
    /// How many worker deaths while running it are retried.
    pub(crate) retries: u32,
    /// For waiting tasks: dependencies not in memory.
    pub(crate) missing_deps: u32,
    /// Dependents that are waiting, ready or processing.
    pub(crate) active_dependents: u32,
    /// While it is in the ready set (or parked): the tier of its key there
    /// (see [`ReadyKey`]), or [`FRESH`] for tier 1 ordered by its id; [`NOT_QUEUED`]
    /// otherwise.
    ready_tier: u8,
    /// The client holds a future for it.
    pub(crate) wanted: bool,
    /// The client-view terminal state was reached (first finish, or failure).
    pub(crate) ended: bool,
}

/// [`Task::ready_tier`] of a task queued in tier 1 with its id as its order (every
/// fresh submission): no order is stored.
const FRESH: u8 = u8::MAX - 1;

/// [`Status`] without the worker: one byte in the task's core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Waiting,
    Ready,
    Processing,
    Memory,
    Released,
    Erred,
    Lost,
    Cancelled,
}

/// The parts of a task's record that a task waiting or ready since its submission
/// does not use (see [`Task`]).
#[derive(Debug)]
pub(crate) struct Placed {
    /// While processing: the worker it is assigned to.
    pub(crate) processing_on: WorkerId,
    /// User priority; higher runs first (a task with another than 0 makes its
    /// placed part when submitted).
    pub(crate) priority: i64,
    /// What it holds on its worker while assigned there (a task asking for some
    /// makes its placed part when submitted).
    pub(crate) resources: Resources,
    /// Data put on workers by the client: no lineage to recompute it from.
    pub(crate) scattered: bool,
    /// The scheduler's clock when it was last assigned (ms).
    pub(crate) assigned_at_ms: u64,
    /// Whether its worker's slots were all taken when it was last assigned there.
    pub(crate) assigned_queued: bool,
    /// Workers holding the result (in memory only); one holder is kept inline.
    pub(crate) who_has: Holders,
    /// Sequence number at which each holder was added (parallel to `who_has`).
    pub(crate) holder_since: SmallVec<[u64; 1]>,
    /// Size of the result.
    pub(crate) nbytes: u64,
    /// How many times a worker died while running it.
    pub(crate) attempts: u32,
    /// While queued with a tier other than [`FRESH`]: the order within the tier of
    /// its key in the ready set.
    pub(crate) ready_order: u64,
    /// Sequence number of its current assignment (its key in the worker's `processing`).
    pub(crate) assign_seq: u64,
    /// Whether it was asked back from its worker.
    pub(crate) steal: StealFlag,
    /// Processing and seceded: running, but not occupying a slot of its worker.
    pub(crate) seceded: bool,
    /// Per worker, how many reports of holding the result it may still send: one per
    /// compute of this task, or of a dependent that fetches it, sent there; less those
    /// received (see [`crate::stale_reports`]).
    pub(crate) reports_due: PerWorker,
    /// What few tasks need (after a steal, a free racing a report, missing data):
    /// `None` until first needed, to keep the record small.
    pub(crate) rare: Option<Box<Rare>>,
}

/// What [`Task::placed`] reads for a task whose placed part was never made: the
/// values a new task starts with.
pub(crate) static NOT_PLACED: Placed = Placed::unplaced();

impl Placed {
    /// The values a new task's placed part starts with.
    const fn unplaced() -> Placed {
        Placed {
            processing_on: 0,
            priority: 0,
            resources: Resources::new(),
            scattered: false,
            assigned_at_ms: 0,
            assigned_queued: false,
            who_has: Holders::new_const(),
            holder_since: SmallVec::new_const(),
            nbytes: 0,
            attempts: 0,
            ready_order: 0,
            assign_seq: 0,
            steal: StealFlag::None,
            seceded: false,
            reports_due: PerWorker::new_const(),
            rare: None,
        }
    }
}

/// The parts of a task's record that most tasks never use (see [`Placed::rare`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Rare {
    /// A worker not to assign it to next (the one it was just stolen from).
    pub(crate) avoid: Option<WorkerId>,
    /// A client reported the result missing and waits to be told again how it ends.
    pub(crate) client_waits: bool,
    /// How many times clients reported the result missing.
    pub(crate) client_missing_reports: u32,
    /// How many times its worker reported one of its inputs missing.
    pub(crate) missing_input_reports: u32,
    /// Per worker told to free the result: how many of its next reports of holding it may
    /// have been sent before it dropped its copy.
    pub(crate) stale_reports: PerWorker,
    /// Per worker, how many steal requests for this task it has still to answer that were
    /// forgotten while pending (the task was taken back or seceded): its next that many
    /// answers about this task are stale.
    pub(crate) stale_steal_answers: PerWorker,
    /// For an erred task, the task whose failure caused it, if not itself.
    pub(crate) cause: Option<TaskId>,
}

impl Task {
    /// A released task (not yet activated) with these dependencies and settings.
    pub(crate) fn new(
        _id: TaskId,
        deps: Vec<TaskId>,
        priority: i64,
        retries: u32,
        wanted: bool,
    ) -> Self {
        let mut task = Task {
            deps: deps.into_boxed_slice(),
            dependents: Dependents::default(),
            kind: 0,
            status: Tag::Released,
            placed: None,
            retries,
            missing_deps: 0,
            active_dependents: 0,
            ready_tier: NOT_QUEUED,
            wanted,
            ended: false,
        };
        if priority != 0 {
            task.placed_mut().priority = priority;
        }
        task
    }

    /// The parts of a placed task (the starting values if it was never placed).
    pub(crate) fn placed(&self) -> &Placed {
        self.placed.as_deref().unwrap_or(&NOT_PLACED)
    }

    /// The parts of a placed task, made on first use.
    pub(crate) fn placed_mut(&mut self) -> &mut Placed {
        self.placed
            .get_or_insert_with(|| Box::new(Placed::unplaced()))
    }

    /// Where it is in its life.
    pub(crate) fn status(&self) -> Status {
        match self.status {
            Tag::Waiting => Status::Waiting,
            Tag::Ready => Status::Ready,
            Tag::Processing => Status::Processing(self.placed().processing_on),
            Tag::Memory => Status::Memory,
            Tag::Released => Status::Released,
            Tag::Erred => Status::Erred,
            Tag::Lost => Status::Lost,
            Tag::Cancelled => Status::Cancelled,
        }
    }

    /// Sets where it is in its life.
    pub(crate) fn set_status(&mut self, status: Status) {
        self.status = match status {
            Status::Waiting => Tag::Waiting,
            Status::Ready => Tag::Ready,
            Status::Processing(worker) => {
                self.placed_mut().processing_on = worker;
                Tag::Processing
            }
            Status::Memory => Tag::Memory,
            Status::Released => Tag::Released,
            Status::Erred => Tag::Erred,
            Status::Lost => Tag::Lost,
            Status::Cancelled => Tag::Cancelled,
        };
    }

    /// Whether its placed part was never made (for tests of the compact record).
    pub(crate) fn is_compact(&self) -> bool {
        self.placed.is_none()
    }

    /// What it holds on its worker while assigned there (usually nothing).
    pub(crate) fn resources(&self) -> &Resources {
        &self.placed().resources
    }

    /// Sets what it holds on its worker while assigned there.
    pub(crate) fn set_resources(&mut self, resources: Resources) {
        if !resources.is_empty() || self.placed.is_some() {
            self.placed_mut().resources = resources;
        }
    }

    /// User priority; higher runs first.
    pub(crate) fn priority(&self) -> i64 {
        self.placed().priority
    }

    /// For an erred task (`id`), the task whose failure caused it.
    pub(crate) fn cause(&self, id: TaskId) -> TaskId {
        self.placed()
            .rare
            .as_ref()
            .and_then(|r| r.cause)
            .unwrap_or(id)
    }

    /// Sets the task whose failure caused this one (`id`) to fail.
    pub(crate) fn set_cause(&mut self, id: TaskId, cause: TaskId) {
        if cause != id || self.cause(id) != id {
            self.rare_mut().cause = Some(cause);
        }
    }

    /// Its key in the ready set (or among the parked), while it is queued there.
    pub(crate) fn ready_key(&self, id: TaskId) -> Option<ReadyKey> {
        match self.ready_tier {
            NOT_QUEUED => None,
            FRESH => Some((Reverse(self.priority()), 1, id, id)),
            tier => Some((
                Reverse(self.priority()),
                tier,
                self.placed().ready_order,
                id,
            )),
        }
    }

    /// Notes that it is queued under `key`.
    pub(crate) fn set_ready_key(&mut self, key: ReadyKey) {
        debug_assert!(key.1 < FRESH);
        debug_assert_eq!(key.0, Reverse(self.priority()));
        if key.1 == 1 && key.2 == key.3 {
            self.ready_tier = FRESH;
        } else {
            self.ready_tier = key.1;
            self.placed_mut().ready_order = key.2;
        }
    }

    /// Notes that it is no longer queued, returning the key it was queued under.
    pub(crate) fn take_ready_key(&mut self, id: TaskId) -> Option<ReadyKey> {
        let key = self.ready_key(id);
        self.ready_tier = NOT_QUEUED;
        key
    }

    /// The rarely used parts, made on first use.
    pub(crate) fn rare_mut(&mut self) -> &mut Rare {
        self.placed_mut().rare.get_or_insert_with(Box::default)
    }

    /// The rarely used parts, if they were made.
    pub(crate) fn rare(&self) -> Option<&Rare> {
        self.placed().rare.as_deref()
    }

    /// The rarely used parts, if they were made.
    pub(crate) fn rare_if_made_mut(&mut self) -> Option<&mut Rare> {
        self.placed.as_mut().and_then(|p| p.rare.as_deref_mut())
    }

    /// A worker not to assign it to next (the one it was just stolen from).
    pub(crate) fn avoid(&self) -> Option<WorkerId> {
        self.rare().and_then(|r| r.avoid)
    }

    /// Forgets the worker to avoid.
    pub(crate) fn clear_avoid(&mut self) {
        if let Some(rare) = self.rare_if_made_mut() {
            rare.avoid = None;
        }
    }

    /// Whether a client reported the result missing and waits to be told again.
    pub(crate) fn client_waits(&self) -> bool {
        self.rare().is_some_and(|r| r.client_waits)
    }

    /// Sets whether a client waits to be told again how it ends.
    pub(crate) fn set_client_waits(&mut self, waits: bool) {
        if waits || self.rare().is_some() {
            self.rare_mut().client_waits = waits;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Task;

    #[test]
    fn a_task_record_stays_small() {
        // Every byte here is paid once per pending task (issue 14 item 5): what a
        // task needs once placed lives in `Placed` (boxed, made when placed), rarely
        // used parts in `Rare`, one dependent inline (8 bytes more than a boxed set,
        // which cost a box
        // and a hash table for every task with a dependent).
        let size = std::mem::size_of::<Task>();
        assert!(size <= 64, "a task record is {size} bytes");
    }

    #[test]
    fn dependents_are_inline_when_one_and_a_set_boxed_only_while_two_or_more() {
        let mut d = super::Dependents::default();
        assert!(d.is_empty() && !d.contains(&1) && !d.remove(&1));
        assert!(d.insert(1) && !d.insert(1) && d.insert(u64::MAX));
        assert!(d.contains(&1) && d.contains(&u64::MAX) && !d.is_empty());
        let mut seen: Vec<u64> = (&d).into_iter().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, u64::MAX]);
        assert!(d.remove(&1) && d.remove(&u64::MAX) && !d.remove(&1));
        assert!(
            d.is_empty() && matches!(d, super::Dependents::None),
            "the empty set is freed"
        );
        assert!(
            d.insert(5) && matches!(d, super::Dependents::One(5)),
            "one is inline"
        );
        assert!(!d.insert(5) && d.contains(&5) && !d.contains(&6));
        assert_eq!((&d).into_iter().copied().collect::<Vec<_>>(), [5]);
        assert!(!d.remove(&6) && d.remove(&5) && matches!(d, super::Dependents::None));
    }

    #[test]
    fn the_ready_key_is_rebuilt_from_the_tier_and_order() {
        use std::cmp::Reverse;
        let mut t = Task::new(7, Vec::new(), -2, 0, true);
        assert_eq!(t.ready_key(7), None);
        t.set_ready_key((Reverse(-2), 0, u64::MAX - 3, 7));
        assert_eq!(t.ready_key(7), Some((Reverse(-2), 0, u64::MAX - 3, 7)));
        assert_eq!(t.take_ready_key(7), Some((Reverse(-2), 0, u64::MAX - 3, 7)));
        assert_eq!(t.take_ready_key(7), None);
    }
}
