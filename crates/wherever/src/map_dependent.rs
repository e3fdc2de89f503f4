//! `map` items whose arguments wait on other tasks (futures, scattered values,
//! delayed values), chunked like plain items: on a cluster, a chunk's encoded
//! items go as one task whose dependencies the scheduler routes; on local plans,
//! an item's inputs are awaited and it joins the chunk as a plain value.

use crate::arguments::{dependency_failed, length_prefix, Parts};
use crate::client::Client;
use crate::submission::{value_here, RemoteTask};
use crate::{IntoTask, TaskError, TaskErrorKind, Value};
use wherever_core::codec;
use wherever_core::holes::{fill_holes, Hole};

/// Items of a chunk waiting to be submitted, as values while every one is a
/// value, else (on a cluster) encoded.
pub(crate) enum Pending<A> {
    Values(Vec<A>),
    Encoded(Vec<Parts>),
}

impl<A: Value> Pending<A> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            Pending::Values(items) => items.len(),
            Pending::Encoded(items) => items.len(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a value (inlined: `map` calls it once per item).
    #[inline]
    pub(crate) fn push_value(&mut self, item: A) {
        match self {
            Pending::Values(items) => items.push(item),
            Pending::Encoded(items) => Self::push_encoded_value(items, &item),
        }
    }

    /// Adds a value to an encoded chunk (rare: kept out of line).
    #[inline(never)]
    fn push_encoded_value(items: &mut Vec<Parts>, item: &A) {
        items.push(crate::submission::encoded_parts(item));
    }

    /// Adds an encoded item with dependencies (the chunk is encoded from now on).
    pub(crate) fn push_encoded(&mut self, item: Parts) {
        if let Pending::Values(items) = self {
            let encoded = items.iter().map(crate::submission::encoded_parts).collect();
            *self = Pending::Encoded(encoded);
        }
        if let Pending::Encoded(items) = self {
            items.push(item);
        }
    }
}

/// The arguments of a chunk of encoded items: a `Vec` of them, with every item's
/// holes moved to where its bytes landed.
pub(crate) fn chunk_parts(items: Vec<Parts>) -> Parts {
    let mut chunk = Parts {
        bytes: length_prefix(items.len()),
        ..Parts::default()
    };
    for item in items {
        let base = chunk.bytes.len();
        chunk.bytes.extend_from_slice(&item.bytes);
        chunk.holes.extend(
            item.holes
                .into_iter()
                .map(|(offset, dep)| (base + offset, dep)),
        );
        if chunk.error.is_none() {
            chunk.error = item.error;
        }
    }
    chunk
}

/// A chunk of encoded items as a cluster task: its `RemoteTask`.
pub(crate) fn remote_chunk<A, R>(
    task: &impl IntoTask<A, R>,
    items: Vec<Parts>,
    position: u64,
) -> RemoteTask {
    RemoteTask::of(task, chunk_parts(items), position, true)
}

impl Client {
    /// The arguments in `parts` once their inputs exist here (waiting for them),
    /// for the item at `position` of a map of `name`.
    pub(crate) fn arguments_here<A: Value>(
        &self,
        parts: Parts,
        name: &str,
        position: u64,
    ) -> Result<A, TaskError> {
        let parts = crate::graph::submit_nodes_in(self, parts);
        if let Some(error) = parts.error {
            return Err(TaskError::new(
                name,
                position,
                TaskErrorKind::Runtime,
                error,
            ));
        }
        let mut inputs = Vec::with_capacity(parts.holes.len());
        let mut holes = Vec::with_capacity(parts.holes.len());
        for (dep, (offset, input)) in parts.holes.iter().enumerate() {
            let value =
                value_here(input).map_err(|error| dependency_failed(name, position, &error))?;
            inputs.push(value);
            holes.push(Hole {
                offset: *offset as u32,
                dep: dep as u32,
            });
        }
        let slices: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let runtime =
            |message: String| TaskError::new(name, position, TaskErrorKind::Runtime, message);
        let bytes = fill_holes(&parts.bytes, &holes, &slices)
            .ok_or_else(|| runtime("cannot fill in the arguments".to_string()))?;
        codec::decode::<A>(&bytes).map_err(|e| runtime(format!("cannot decode the arguments: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_of_encoded_items_decodes_as_a_vec() {
        let items = vec![
            crate::submission::encoded_parts(&(1u32, 2u64)),
            crate::submission::encoded_parts(&(3u32, 4u64)),
        ];
        let chunk = chunk_parts(items);
        let back: Vec<(u32, u64)> = codec::decode(&chunk.bytes).unwrap();
        assert_eq!(back, vec![(1, 2), (3, 4)]);
    }
}
