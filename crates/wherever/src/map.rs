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
        let mut output = Output::<R>::with_capacity(count);
        let mut parts: Vec<Part<R>> = Vec::with_capacity(count.div_ceil(chunk_size));
        let mut chunk: Vec<A> = Vec::with_capacity(chunk_size.min(count));
        let mut chunk_offset = 0;
        for (offset, item) in items.enumerate() {
            match item.into_args() {
                Args::Plain(args) => {
                    if chunk.is_empty() {
                        chunk_offset = offset;
                    }
                    chunk.push(args);
                    if chunk.len() == chunk_size {
                        let full = std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(chunk_size.min(count)),
                        );
                        parts.push(self.submit_chunk(
                            task.clone(),
                            full,
                            first,
                            chunk_offset,
                            &output,
                        ));
                    }
                }
                dependent => {
                    if !chunk.is_empty() {
                        let partial = std::mem::take(&mut chunk);
                        parts.push(self.submit_chunk(
                            task.clone(),
                            partial,
                            first,
                            chunk_offset,
                            &output,
                        ));
                    }
                    let future = self.submit_at(task.clone(), dependent, first + offset as u64);
                    parts.push(Part::One { future, offset });
                }
            }
        }
        if !chunk.is_empty() {
            parts.push(self.submit_chunk(task.clone(), chunk, first, chunk_offset, &output));
        }
        // Every part is waited for, even after an error: local chunks write into
        // `output` until they end.
        let mut first_error = None;
        for part in parts {
            let failed = match part {
                Part::Written(future) => match future.value() {
                    Ok(report) => {
                        output.mark_written(report.offset, report.written);
                        report.error
                    }
                    Err(error) => Some(error),
                },
                Part::Chunk { future, offset } => match future.value() {
                    Ok(values) => {
                        output.write_all(offset, values);
                        None
                    }
                    Err(error) => Some(error),
                },
                Part::One { future, offset } => match future.value() {
                    Ok(value) => {
                        output.write_all(offset, vec![value]);
                        None
                    }
                    Err(error) => Some(error),
                },
            };
            if first_error.is_none() {
                first_error = failed;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(output.into_vec(count)),
        }
    }

    /// Submits `items` (at offsets `offset..` of the map, positions `first + offset..`)
    /// as one task. On local plans its results go straight into `output`.
    fn submit_chunk<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        items: Vec<A>,
        first: u64,
        offset: usize,
        output: &Output<R>,
    ) -> Part<R> {
        let name = task.task_name();
        let position = first + offset as u64;
        if let Some(cluster) = self.cluster() {
            let slot = Slot::new();
            let future = Future::new(slot.clone(), name, position);
            let call = RemoteTask::of(task.as_ref(), encoded_parts(&items), position, true);
            self.submit_remote(cluster, call, slot);
            return Part::Chunk { future, offset };
        }
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, position);
        let (key, seeded, runner, target) =
            (self.key, self.seeded, self.clone(), output.window(offset));
        self.spawn(Box::new(move || {
            if !slot.start() {
                return;
            }
            let written = Cell::new(0usize);
            let outcome = with_current_client(&runner, || {
                in_tasks(key, seeded, position, |reposition| {
                    run_caught(|| {
                        let mut ctx = TaskContext::new(key, seeded, position);
                        for item in items {
                            let at = written.get();
                            let item_position = position + at as u64;
                            ctx.reposition(item_position);
                            reposition(item_position);
                            let value = task.run(item, &mut ctx)?;
                            // SAFETY: `target` is this chunk's own window of the output,
                            // which outlives the job (map waits for every chunk), and
                            // `at` stays below the chunk's length.
                            unsafe { target.write(at, value) };
                            written.set(at + 1);
                        }
                        Ok(())
                    })
                })
            });
            let position_of_failure = position + written.get() as u64;
            slot.resolve(Ok(ChunkReport {
                offset,
                written: written.get(),
                error: outcome
                    .err()
                    .map(|failure| local_task_error(name, position_of_failure, failure)),
            }));
        }));
        Part::Written(future)
    }
}

/// A part of a map's results.
enum Part<R> {
    /// A local chunk that wrote its results into the output.
    Written(Future<ChunkReport>),
    /// A remote chunk: its results, to copy into the output at `offset`.
    Chunk {
        future: Future<Vec<R>>,
        offset: usize,
    },
    /// One item that waited on other tasks.
    One { future: Future<R>, offset: usize },
}

/// What a local chunk did: how many results it wrote from `offset` on, and the
/// error that stopped it, if any.
struct ChunkReport {
    offset: usize,
    written: usize,
    error: Option<TaskError>,
}

/// A map's results, written in place by the chunks as they finish (as rayon's
/// `collect` does), so they are neither gathered per chunk nor copied again.
struct Output<R> {
    buffer: Vec<R>,
    /// The buffer's start, taken once (the buffer is not touched until the end).
    base: *mut R,
    /// Ranges written so far, to drop if the map fails.
    written: Vec<(usize, usize)>,
}

/// A chunk's window of the output: a raw pointer to its first slot.
struct Window<R>(*mut R);

// SAFETY: a window is written by exactly one job, at disjoint slots, while the
// output it points into is kept alive and untouched by the map that waits for it.
unsafe impl<R: Send> Send for Window<R> {}

impl<R> Window<R> {
    /// Writes `value` at slot `at` of the window.
    ///
    /// # Safety
    /// `at` must be inside the window and the slot not written before.
    unsafe fn write(&self, at: usize, value: R) {
        unsafe { self.0.add(at).write(value) }
    }
}

impl<R> Output<R> {
    fn with_capacity(count: usize) -> Self {
        let mut buffer = Vec::with_capacity(count);
        let base = buffer.as_mut_ptr();
        Output {
            buffer,
            base,
            written: Vec::new(),
        }
    }

    fn window(&self, offset: usize) -> Window<R> {
        // SAFETY: offsets are at most the capacity (`count`) the buffer was made with.
        Window(unsafe { self.base.add(offset) })
    }

    fn mark_written(&mut self, offset: usize, count: usize) {
        self.written.push((offset, count));
    }

    fn write_all(&mut self, offset: usize, values: Vec<R>) {
        let count = values.len();
        let window = self.window(offset);
        for (at, value) in values.into_iter().enumerate() {
            // SAFETY: each offset range belongs to one part and is written once.
            unsafe { window.write(at, value) };
        }
        self.mark_written(offset, count);
    }

    /// The results, once every slot below `count` was written.
    fn into_vec(mut self, count: usize) -> Vec<R> {
        debug_assert_eq!(self.written.iter().map(|(_, n)| n).sum::<usize>(), count);
        self.written.clear();
        // SAFETY: every part wrote its whole range, and the ranges cover 0..count.
        unsafe { self.buffer.set_len(count) };
        std::mem::take(&mut self.buffer)
    }
}

impl<R> Drop for Output<R> {
    fn drop(&mut self) {
        // A failed map: drop what was written; the buffer itself has length 0.
        for &(offset, count) in &self.written {
            // SAFETY: these slots were written and not yet handed out.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    self.window(offset).0,
                    count,
                ))
            };
        }
    }
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
