//! Parallel map: how `map` splits its inputs into tasks, and running them.

use crate::arguments::{Args, IntoArgs};
use crate::client::Client;
use crate::future::{Future, Slot};
use crate::nested::with_current_client;
use crate::submission::{encoded_parts, local_task_error, RemoteTask};
use crate::{IntoTask, TaskContext, TaskError, Value};
use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::Arc;
use wherever_core::panic_capture::run_caught;
use wherever_core::scope::in_tasks;

/// How many chunks the default scheduling makes per worker: enough that a slow
/// chunk does not leave the other workers idle for long, few enough that the cost
/// per chunk stays negligible.
pub const AUTO_CHUNKS_PER_WORKER: usize = 4;

/// How `map` splits its inputs into tasks (R's `future.scheduling` /
/// `future.chunk.size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// The default: [`AUTO_CHUNKS_PER_WORKER`] chunks per worker (fewer when there are
    /// fewer items), so overhead stays small and load stays balanced.
    #[default]
    Auto,
    /// One chunk per worker, as `future_lapply` does by default.
    Static,
    /// One task per item: best for few, long and uneven items.
    Dynamic,
    /// Chunks of exactly this many items (the last may be shorter).
    ChunkSize(NonZeroUsize),
}

impl Scheduling {
    /// Chunks of `size` items; `None` for 0.
    pub fn chunk_size(size: usize) -> Option<Self> {
        NonZeroUsize::new(size).map(Scheduling::ChunkSize)
    }

    /// The number of items per chunk for `items` items on `workers` workers; at least 1.
    pub fn items_per_chunk(self, items: usize, workers: usize) -> usize {
        let workers = workers.max(1);
        let size = match self {
            Scheduling::Auto => items.div_ceil(workers * AUTO_CHUNKS_PER_WORKER),
            Scheduling::Static => items.div_ceil(workers),
            Scheduling::Dynamic => 1,
            Scheduling::ChunkSize(size) => size.get(),
        };
        size.max(1)
    }
}

impl Client {
    /// Applies `task` to every input with the default [`Scheduling`] and returns the
    /// results in input order, or the error of the first failed item (in input order).
    /// Inputs are argument tuples (or single arguments), whose elements may also be
    /// references to futures, as for [`Client::submit`].
    pub fn map<A: Value, R: Value, X: IntoArgs<A>>(
        &self,
        task: impl IntoTask<A, R>,
        inputs: impl IntoIterator<Item = X>,
    ) -> Result<Vec<R>, TaskError> {
        self.map_with(task, inputs, Scheduling::Auto)
    }

    /// [`Client::map`] with an explicit [`Scheduling`]. Item `i` gets the random
    /// stream of position `first + i`, whatever the chunking.
    pub fn map_with<A: Value, R: Value, X: IntoArgs<A>>(
        &self,
        task: impl IntoTask<A, R>,
        inputs: impl IntoIterator<Item = X>,
        scheduling: Scheduling,
    ) -> Result<Vec<R>, TaskError> {
        let inputs = inputs.into_iter();
        match inputs.size_hint() {
            (low, Some(high)) if low == high => {
                self.map_counted(Arc::new(task), inputs, low, scheduling)
            }
            _ => {
                let collected: Vec<X> = inputs.collect();
                let count = collected.len();
                self.map_counted(Arc::new(task), collected.into_iter(), count, scheduling)
            }
        }
    }

    /// [`Client::map_with`] over `count` items.
    fn map_counted<A: Value, R: Value, X: IntoArgs<A>, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        items: impl Iterator<Item = X>,
        count: usize,
        scheduling: Scheduling,
    ) -> Result<Vec<R>, TaskError> {
        let first = self.take_positions(count as u64);
        let chunk_size = scheduling.items_per_chunk(count, self.workers());
        let mut parts: Vec<Part<R>> = Vec::with_capacity(count.div_ceil(chunk_size));
        let mut chunk: Vec<A> = Vec::with_capacity(chunk_size.min(count));
        let mut chunk_first = first;
        for (offset, item) in items.enumerate() {
            let position = first + offset as u64;
            match item.into_args() {
                Args::Plain(args) => {
                    if chunk.is_empty() {
                        chunk_first = position;
                    }
                    chunk.push(args);
                    if chunk.len() == chunk_size {
                        let full = std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(chunk_size.min(count)),
                        );
                        parts.push(Part::Chunk(self.submit_chunk(
                            task.clone(),
                            full,
                            chunk_first,
                        )));
                    }
                }
                dependent => {
                    if !chunk.is_empty() {
                        let partial = std::mem::take(&mut chunk);
                        parts.push(Part::Chunk(self.submit_chunk(
                            task.clone(),
                            partial,
                            chunk_first,
                        )));
                    }
                    parts.push(Part::One(self.submit_at(task.clone(), dependent, position)));
                }
            }
        }
        if !chunk.is_empty() {
            parts.push(Part::Chunk(self.submit_chunk(
                task.clone(),
                chunk,
                chunk_first,
            )));
        }
        let mut results = Vec::with_capacity(count);
        for part in parts {
            match part {
                Part::Chunk(future) => results.extend(future.value()?),
                Part::One(future) => results.push(future.value()?),
            }
        }
        Ok(results)
    }

    /// Submits `items` (at positions `first..`) as one task.
    fn submit_chunk<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        items: Vec<A>,
        first: u64,
    ) -> Future<Vec<R>> {
        let name = task.task_name();
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, first);
        if let Some(cluster) = self.cluster() {
            let call = RemoteTask::of(task.as_ref(), encoded_parts(&items), first, true);
            self.submit_remote(cluster, call, slot);
            return future;
        }
        let (key, seeded, runner) = (self.key, self.seeded, self.clone());
        self.spawn(Box::new(move || {
            if !slot.start() {
                return;
            }
            let current = Cell::new(first);
            let outcome = with_current_client(&runner, || {
                in_tasks(key, seeded, first, |reposition| {
                    run_caught(|| {
                        let mut results = Vec::with_capacity(items.len());
                        let mut ctx = TaskContext::new(key, seeded, first);
                        for item in items {
                            let position = current.get();
                            ctx.reposition(position);
                            reposition(position);
                            results.push(task.run(item, &mut ctx)?);
                            current.set(position + 1);
                        }
                        Ok(results)
                    })
                })
            });
            slot.resolve(outcome.map_err(|failure| local_task_error(name, current.get(), failure)));
        }));
        future
    }
}

/// A part of a map's results: a chunk of items, or one item that waited on others.
enum Part<R> {
    Chunk(Future<Vec<R>>),
    One(Future<R>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_follow_the_scheduling() {
        assert_eq!(Scheduling::Static.items_per_chunk(100, 4), 25);
        assert_eq!(Scheduling::Static.items_per_chunk(101, 4), 26);
        assert_eq!(Scheduling::Dynamic.items_per_chunk(100, 4), 1);
        assert_eq!(
            Scheduling::chunk_size(7).unwrap().items_per_chunk(100, 4),
            7
        );
        assert_eq!(Scheduling::Auto.items_per_chunk(1_000_000, 2), 125_000);
        assert_eq!(Scheduling::Auto.items_per_chunk(3, 2), 1);
        assert_eq!(Scheduling::Auto.items_per_chunk(0, 2), 1);
        assert!(Scheduling::chunk_size(0).is_none());
    }
}
