//! The static table of registered tasks. `#[wherever::task]` adds an entry with
//! `inventory`; a worker process looks tasks up by name and runs them on encoded
//! arguments. Entries in crates that nothing references can be dropped by the
//! linker, which is why the cluster handshake compares [`fingerprint`]s.

use crate::{codec, StreamKey, TaskContext, TaskFailure};
use serde::{de::DeserializeOwned, Serialize};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// One call as a worker receives it: encoded arguments and where the task stands.
#[derive(Debug, Clone, Copy)]
pub struct EncodedCall<'a> {
    /// The encoded arguments: one `A`, or for a chunk a `Vec<A>`.
    pub args: &'a [u8],
    /// The stream key of the submitting client.
    pub key: StreamKey,
    /// Whether the submitting client set a seed.
    pub seeded: bool,
    /// The position of the (first) item.
    pub position: u64,
    /// `true`: `args` is a `Vec<A>` of items at positions `position..`; the result
    /// is the encoded `Vec<R>`.
    pub chunk: bool,
}

/// A failure of an encoded call: which item (its position) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFailure {
    /// The position of the item that failed.
    pub position: u64,
    /// The failure.
    pub failure: TaskFailure,
}

/// The type-erased entry point of a registered task.
pub type Dispatch = fn(EncodedCall<'_>) -> Result<Vec<u8>, EncodedFailure>;

/// A registered task: its stable name and its type-erased entry point.
#[derive(Debug)]
pub struct TaskEntry {
    /// The stable name (module path and function name).
    pub name: &'static str,
    /// Decodes arguments, runs the function, encodes the result.
    pub dispatch: Dispatch,
    /// The function as a typed task, found from the function's own type.
    pub function: Option<FunctionEntry>,
    /// Entry points running the function over every element of a partition (for a
    /// function of one element, or of an accumulator and an element).
    pub element: Option<crate::element::ElementFns>,
}

/// How a client finds a registered task from the function passed to it
/// (`client.submit(square, 3)`): the `TypeId` of the function's item type.
#[derive(Debug)]
pub struct FunctionEntry {
    /// The `TypeId` of the function item (a non-capturing closure, so it fits in a
    /// static).
    pub type_id: fn() -> TypeId,
    /// The registered `Task<A, R>`, type-erased.
    pub task: &'static (dyn Any + Send + Sync),
}

/// The `TypeId` of `value`'s type: of a function item, for [`FunctionEntry::type_id`].
pub fn type_id_of_val<T: 'static>(_value: &T) -> TypeId {
    TypeId::of::<T>()
}

/// The registry entry of the function whose item type has `type_id`, if
/// `#[wherever::task]` registered it (collections find a task's name and element
/// entry points from the function passed to them).
pub fn lookup_function_entry(type_id: TypeId) -> Option<&'static TaskEntry> {
    static TABLE: OnceLock<HashMap<TypeId, &'static TaskEntry, BuildHasherDefault<TypeIdHasher>>> =
        OnceLock::new();
    TABLE
        .get_or_init(|| {
            inventory::iter::<TaskEntry>
                .into_iter()
                .filter_map(|entry| Some(((entry.function.as_ref()?.type_id)(), entry)))
                .collect()
        })
        .get(&type_id)
        .copied()
}

/// The registered task (a `Task<A, R>`, type-erased) of the function whose item type
/// has `type_id`, if `#[wherever::task]` registered it.
pub fn lookup_function(type_id: TypeId) -> Option<&'static (dyn Any + Send + Sync)> {
    let hit = LAST_FUNCTION.with(|last| match last.get() {
        Some((last_id, task)) if last_id == type_id => Some(task),
        _ => None,
    });
    if let Some(task) = hit {
        return task;
    }
    let task = lookup_function_in_table(type_id);
    LAST_FUNCTION.with(|last| last.set(Some((type_id, task))));
    task
}

/// A registered function (or its absence) as remembered for its `TypeId`.
type FunctionLookup = (TypeId, Option<&'static (dyn Any + Send + Sync)>);

thread_local! {
    /// The last function looked up in this thread and what was found: a loop
    /// submitting one function finds it without hashing.
    static LAST_FUNCTION: std::cell::Cell<Option<FunctionLookup>> =
        const { std::cell::Cell::new(None) };
}

/// [`lookup_function`] in the table of every registered function.
fn lookup_function_in_table(type_id: TypeId) -> Option<&'static (dyn Any + Send + Sync)> {
    static TABLE: OnceLock<FunctionTable> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            inventory::iter::<TaskEntry>
                .into_iter()
                .filter_map(|entry| entry.function.as_ref())
                .map(|function| ((function.type_id)(), function.task))
                .collect()
        })
        .get(&type_id)
        .copied()
}

/// The registered functions by the `TypeId` of their item type. Looked up on every
/// `submit`, so keyed without SipHash: a `TypeId` is a hash already.
type FunctionTable =
    HashMap<TypeId, &'static (dyn Any + Send + Sync), BuildHasherDefault<TypeIdHasher>>;

/// A hasher for `TypeId` keys, which are hashes already: it keeps the bits it is
/// given (folding any byte input in, should `TypeId` ever write bytes).
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

inventory::collect!(TaskEntry);

thread_local! {
    static CURRENT_POSITION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The position of the item [`dispatch`] last started in this thread: after a panic
/// in a chunk, the item that panicked.
pub fn current_position() -> u64 {
    CURRENT_POSITION.with(std::cell::Cell::get)
}

fn table() -> &'static HashMap<&'static str, &'static TaskEntry> {
    static TABLE: OnceLock<HashMap<&'static str, &'static TaskEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        inventory::iter::<TaskEntry>
            .into_iter()
            .map(|entry| (entry.name, entry))
            .collect()
    })
}

/// The registered task called `name`, if this executable has it.
pub fn lookup(name: &str) -> Option<&'static TaskEntry> {
    table().get(name).copied()
}

/// The names of all registered tasks, sorted.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<_> = table().keys().copied().collect();
    names.sort_unstable();
    names
}

/// A digest of the registered task names (FNV-1a over the sorted names), compared
/// at the cluster handshake so that a worker missing a task is refused up front.
pub fn fingerprint() -> u64 {
    let mut digest = crate::Fnv1a::default();
    for name in names() {
        digest.eat(name.as_bytes());
        digest.eat(&[0]);
    }
    digest.finish()
}

/// Runs a typed task function on an encoded call: the body of every generated
/// [`Dispatch`] function.
pub fn dispatch<A: DeserializeOwned, R: Serialize>(
    call: EncodedCall<'_>,
    run: fn(A, &mut TaskContext) -> Result<R, TaskFailure>,
) -> Result<Vec<u8>, EncodedFailure> {
    let codec_failure = |what: &str, error: codec::CodecError| EncodedFailure {
        position: call.position,
        failure: TaskFailure::from_error(format!("{what}: {error}")),
    };
    if call.chunk {
        let items: Vec<A> = codec::decode(call.args)
            .map_err(|e| codec_failure("cannot decode the chunk's arguments", e))?;
        let mut results = Vec::with_capacity(items.len());
        for (offset, item) in items.into_iter().enumerate() {
            let position = call.position + offset as u64;
            CURRENT_POSITION.with(|current| current.set(position));
            let mut ctx = TaskContext::new(call.key, call.seeded, position);
            let result =
                crate::scope::in_task(call.key, call.seeded, position, || run(item, &mut ctx));
            results.push(result.map_err(|failure| EncodedFailure { position, failure })?);
        }
        codec::encode(&results).map_err(|e| codec_failure("cannot encode the chunk's results", e))
    } else {
        CURRENT_POSITION.with(|current| current.set(call.position));
        let args: A = codec::decode(call.args)
            .map_err(|e| codec_failure("cannot decode the arguments", e))?;
        let mut ctx = TaskContext::new(call.key, call.seeded, call.position);
        let result =
            crate::scope::in_task(call.key, call.seeded, call.position, || run(args, &mut ctx))
                .map_err(|failure| EncodedFailure {
                    position: call.position,
                    failure,
                })?;
        codec::encode(&result).map_err(|e| codec_failure("cannot encode the result", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn type_ids_keep_distinct_hashes_and_unknown_functions_are_not_found() {
        let hash = |id: TypeId| BuildHasherDefault::<TypeIdHasher>::default().hash_one(id);
        let ids = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<fn()>(),
        ];
        assert_ne!(hash(ids[0]), hash(ids[1]));
        assert_ne!(hash(ids[1]), hash(ids[2]));
        assert_eq!(hash(ids[0]), hash(TypeId::of::<u8>()));
        assert!(lookup_function(TypeId::of::<String>()).is_none());
    }
}
