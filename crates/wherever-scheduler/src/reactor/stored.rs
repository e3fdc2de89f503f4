//! A submitted task as the server keeps it until the scheduler forgets it: the
//! fields of its [`TaskMessage`] in less memory. What many tasks share (the task
//! name, the client's stream key) is stored once and shared; small arguments sit
//! in the record itself; the fields most tasks leave empty (dependencies, holes,
//! chain, resources, timeout) live in one optional box. [`StoredTask::message`]
//! gives the message back, field for field.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use wherever_core::holes::Hole;

use crate::protocol::{ChainLink, TaskId, TaskMessage};
use crate::Resources;
use wherever_core::StreamKey;

/// Arguments up to this many bytes are kept inline in the record.
const INLINE_ARGS: usize = 16;

/// How many distinct names (and keys) the sharing tables hold before they start
/// over; a peer sending a new name with every task cannot grow them past this.
pub(super) const SHARED_CAP: usize = 4096;

/// The fields of a [`TaskMessage`] that most tasks leave at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rest {
    deps: Vec<TaskId>,
    holes: Vec<Hole>,
    chain: Vec<ChainLink>,
    resources: Resources,
    timeout: Option<Duration>,
}

/// One submitted task, compact (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredTask {
    name: Arc<str>,
    key: Arc<StreamKey>,
    args: SmallVec<[u8; INLINE_ARGS]>,
    position: u64,
    priority: i64,
    retries: u32,
    seeded: bool,
    chunk: bool,
    wanted: bool,
    rest: Option<Box<Rest>>,
}

impl StoredTask {
    /// The registered task name.
    pub fn name(&self) -> &str {
        &self.name
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
            name: self.name.to_string(),
            args: self.args.to_vec(),
            key: *self.key,
            seeded: self.seeded,
            position: self.position,
            chunk: self.chunk,
            deps: rest.map(|r| r.deps.clone()).unwrap_or_default(),
            holes: rest.map(|r| r.holes.clone()).unwrap_or_default(),
            chain: rest.map(|r| r.chain.clone()).unwrap_or_default(),
            retries: self.retries,
            priority: self.priority,
            resources: rest.map(|r| r.resources.clone()).unwrap_or_default(),
            timeout: rest.and_then(|r| r.timeout),
            wanted: self.wanted,
        }
    }
}

/// Stores tasks, sharing their names and stream keys.
#[derive(Default)]
pub(super) struct TaskStore {
    names: HashSet<Arc<str>>,
    keys: HashSet<Arc<StreamKey>>,
}

impl TaskStore {
    /// `message` as a compact record (its id is the caller's key for it).
    pub fn store(&mut self, message: TaskMessage) -> StoredTask {
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
            && timeout.is_none();
        StoredTask {
            name: self.name(&name),
            key: self.key(key),
            args: SmallVec::from_vec(args),
            position,
            priority,
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
                })
            }),
        }
    }

    /// The shared copy of `name`.
    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        if self.names.len() >= SHARED_CAP {
            self.names.clear();
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(shared.clone());
        shared
    }

    /// The shared copy of `key`.
    fn key(&mut self, key: StreamKey) -> Arc<StreamKey> {
        if let Some(shared) = self.keys.get(&key) {
            return shared.clone();
        }
        if self.keys.len() >= SHARED_CAP {
            self.keys.clear();
        }
        let shared = Arc::new(key);
        self.keys.insert(shared.clone());
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
            let stored = store.store(message.clone());
            assert_eq!(stored.message(message.id), message);
            assert_eq!(stored.name(), message.name);
            assert_eq!(stored.position(), message.position);
        }
    }

    #[test]
    fn plain_tasks_share_names_and_keys_and_box_nothing() {
        let mut store = TaskStore::default();
        let a = store.store(TaskMessage::new(1, "crate::inc", vec![1]));
        let b = store.store(TaskMessage::new(2, "crate::inc", vec![2]));
        assert!(Arc::ptr_eq(&a.name, &b.name));
        assert!(Arc::ptr_eq(&a.key, &b.key));
        assert!(a.rest.is_none() && !a.args.spilled());
        assert!(store.store(every_field_set()).rest.is_some());
        assert!(
            std::mem::size_of::<StoredTask>() <= 96,
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
            kept.push((message.clone(), store.store(message)));
        }
        assert!(store.names.len() <= SHARED_CAP && store.keys.len() <= SHARED_CAP);
        for (message, stored) in &kept {
            assert_eq!(&stored.message(message.id), message);
        }
    }
}
