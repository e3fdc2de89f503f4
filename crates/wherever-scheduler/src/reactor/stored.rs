//! A submitted task as the server keeps it until the scheduler forgets it: the
//! fields of its [`TaskMessage`] in less memory. What many tasks share (the task
//! name, the client's stream key, the client) is stored once and shared behind one
//! pointer; small arguments sit in the record itself; the fields most tasks leave
//! at their defaults (dependencies, holes, chain, resources, timeout, priority)
//! live in one optional box. [`StoredTask::message`] gives the message
//! back, field for field.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use wherever_core::holes::Hole;

use super::PeerId;
use crate::protocol::{ChainLink, TaskId, TaskMessage};
use crate::Resources;
use wherever_core::StreamKey;

/// Arguments up to this many bytes are kept inline in the record.
const INLINE_ARGS: usize = 16;

/// How many distinct origins (name, key, client) the sharing table holds before it
/// starts over; a peer sending a new name with every task cannot grow it past this.
pub(super) const SHARED_CAP: usize = 4096;

/// The fields of a [`TaskMessage`] that most tasks leave at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rest {
    deps: Vec<TaskId>,
    holes: Vec<Hole>,
    chain: Vec<ChainLink>,
    resources: Resources,
    timeout: Option<Duration>,
    priority: i64,
}

/// What the tasks of one kind from one client share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    /// The registered task name.
    name: Box<str>,
    /// The submitting client's stream key.
    key: StreamKey,
    /// The client that submitted it.
    owner: PeerId,
}

/// One submitted task, compact (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredTask {
    origin: Arc<Origin>,
    args: SmallVec<[u8; INLINE_ARGS]>,
    position: u64,
    rest: Option<Box<Rest>>,
    retries: u32,
    seeded: bool,
    chunk: bool,
    wanted: bool,
}

impl StoredTask {
    /// The registered task name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// The client that submitted it.
    pub fn owner(&self) -> PeerId {
        self.origin.owner
    }

    /// The task's position in its client's submission order.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether the client wants this task's result sent to it
    /// ([`TaskMessage::wanted`]).
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// The client no longer wants the result sent (it released the task).
    pub fn unwant(&mut self) {
        self.wanted = false;
    }

    /// The task as it was submitted, under id `id`.
    pub fn message(&self, id: TaskId) -> TaskMessage {
        let rest = self.rest.as_deref();
        TaskMessage {
            id,
            name: self.origin.name.to_string(),
            args: self.args.to_vec(),
            key: self.origin.key,
            seeded: self.seeded,
            position: self.position,
            chunk: self.chunk,
            deps: rest.map(|r| r.deps.clone()).unwrap_or_default(),
            holes: rest.map(|r| r.holes.clone()).unwrap_or_default(),
            chain: rest.map(|r| r.chain.clone()).unwrap_or_default(),
            retries: self.retries,
            priority: rest.map_or(0, |r| r.priority),
            resources: rest.map(|r| r.resources.clone()).unwrap_or_default(),
            timeout: rest.and_then(|r| r.timeout),
            wanted: self.wanted,
        }
    }
}

/// Stores tasks, sharing their names, stream keys and clients.
#[derive(Default)]
pub(super) struct TaskStore {
    origins: HashSet<Arc<Origin>>,
}

impl TaskStore {
    /// `message`, submitted by `owner`, as a compact record (its id is the
    /// caller's key for it).
    pub fn store(&mut self, message: TaskMessage, owner: PeerId) -> StoredTask {
        // Every field named: a field added to the message must be stored too.
        let TaskMessage {
            id: _,
            name,
            args,
            key,
            seeded,
            position,
            chunk,
            deps,
            holes,
            chain,
            retries,
            priority,
            resources,
            timeout,
            wanted,
        } = message;
        let plain = deps.is_empty()
            && holes.is_empty()
            && chain.is_empty()
            && resources.is_empty()
            && timeout.is_none()
            && priority == 0;
        StoredTask {
            origin: self.origin(Origin {
                name: name.into_boxed_str(),
                key,
                owner,
            }),
            args: SmallVec::from_vec(args),
            position,
            retries,
            seeded,
            chunk,
            wanted,
            rest: (!plain).then(|| {
                Box::new(Rest {
                    deps,
                    holes,
                    chain,
                    resources,
                    timeout,
                    priority,
                })
            }),
        }
    }

    /// The shared copy of `origin`.
    fn origin(&mut self, origin: Origin) -> Arc<Origin> {
        if let Some(shared) = self.origins.get(&origin) {
            return shared.clone();
        }
        if self.origins.len() >= SHARED_CAP {
            self.origins.clear();
        }
        let shared = Arc::new(origin);
        self.origins.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::{StoredTask, TaskStore, INLINE_ARGS, SHARED_CAP};
    use crate::protocol::{ChainLink, TaskMessage};
    use crate::Resources;
    use std::sync::Arc;
    use std::time::Duration;
    use wherever_core::holes::Hole;
    use wherever_core::StreamKey;

    fn every_field_set() -> TaskMessage {
        TaskMessage {
            key: StreamKey::from_seed(7),
            seeded: true,
            position: 41,
            chunk: true,
            deps: vec![3, 4],
            holes: vec![Hole { offset: 1, dep: 1 }],
            chain: vec![ChainLink {
                name: "next".into(),
                args: vec![9; 3],
                offset: 2,
                position: 42,
            }],
            retries: 5,
            priority: -3,
            resources: Resources::parse("gpu=1").expect("resources"),
            timeout: Some(Duration::from_millis(1500)),
            wanted: false,
            ..TaskMessage::new(12, "crate::f", vec![1; 100])
        }
    }

    #[test]
    fn gives_back_every_field_of_the_message() {
        let mut store = TaskStore::default();
        for message in [
            every_field_set(),
            TaskMessage::new(1, "crate::inc", vec![2]),
            TaskMessage::new(u64::MAX, "", Vec::new()),
            TaskMessage::new(2, "crate::inc", vec![0; INLINE_ARGS + 1]),
        ] {
            let stored = store.store(message.clone(), 3);
            assert_eq!(stored.message(message.id), message);
            assert_eq!(stored.owner(), 3);
            assert_eq!(stored.name(), message.name);
            assert_eq!(stored.position(), message.position);
        }
    }

    #[test]
    fn plain_tasks_share_names_and_keys_and_box_nothing() {
        let mut store = TaskStore::default();
        let a = store.store(TaskMessage::new(1, "crate::inc", vec![1]), 1);
        let b = store.store(TaskMessage::new(2, "crate::inc", vec![2]), 1);
        let c = store.store(TaskMessage::new(3, "crate::inc", vec![2]), 2);
        assert!(Arc::ptr_eq(&a.origin, &b.origin));
        assert!(!Arc::ptr_eq(&a.origin, &c.origin), "another client's");
        assert_eq!((a.owner(), c.owner()), (1, 2));
        assert!(a.rest.is_none() && !a.args.spilled());
        let mut retried = TaskMessage::new(5, "crate::inc", vec![2]);
        retried.retries = 3; // the client's default: kept inline
        assert!(store.store(retried, 1).rest.is_none());
        assert!(store.store(every_field_set(), 1).rest.is_some());
        let mut prioritised = TaskMessage::new(4, "crate::inc", vec![2]);
        prioritised.priority = 1;
        assert!(store.store(prioritised, 1).rest.is_some());
        // Every byte is paid once per pending task (issue 14 item 5).
        assert!(
            std::mem::size_of::<StoredTask>() <= 56,
            "a stored task is {} bytes",
            std::mem::size_of::<StoredTask>()
        );
    }

    #[test]
    fn a_new_name_per_task_does_not_grow_the_tables_past_their_cap() {
        let mut store = TaskStore::default();
        let mut kept = Vec::new();
        for i in 0..3 * SHARED_CAP as u64 {
            let mut message = TaskMessage::new(i, format!("name{i}"), vec![]);
            message.key = StreamKey::from_seed(i);
            kept.push((message.clone(), store.store(message, 1)));
        }
        assert!(store.origins.len() <= SHARED_CAP);
        for (message, stored) in &kept {
            assert_eq!(&stored.message(message.id), message);
        }
    }
}
