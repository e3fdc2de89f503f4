//! Parallel map: how `map` splits its inputs into tasks, and running them.

use crate::arguments::{Args, IntoArgs, PartsBox};
use crate::client::Client;
use crate::future::{Future, Slot};
use crate::map_dependent::{remote_chunk, Pending};
use crate::map_output::Output;
use crate::nested::with_current_client;
use crate::submission::{encoded_parts, local_task_error, RemoteTask};
use crate::{IntoTask, Resolved, TaskContext, TaskError, TaskErrorKind, Value};
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
    /// results in input order, or the error of the first failed item (in input order),
    /// which names the item (`item 17 of this map`). [`Client::map_results`] keeps
    /// the other items' results instead.
    /// Inputs are argument tuples (or single arguments), whose elements may also be
    /// references to futures, as for [`Client::submit`].
    pub fn map<A: Value, R: Value, X: IntoArgs<A>, M: 'static>(
        &self,
        task: impl IntoTask<A, R, M>,
        inputs: impl IntoIterator<Item = X>,
    ) -> Result<Vec<R>, TaskError> {
        self.map_with(task, inputs, Scheduling::Auto)
    }

    /// [`Client::map`] with an explicit [`Scheduling`]. Item `i` gets the random
    /// stream of position `first + i`, whatever the chunking.
    pub fn map_with<A: Value, R: Value, X: IntoArgs<A>, M: 'static>(
        &self,
        task: impl IntoTask<A, R, M>,
        inputs: impl IntoIterator<Item = X>,
        scheduling: Scheduling,
    ) -> Result<Vec<R>, TaskError> {
        let task = Resolved::new(task);
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

    /// [`Client::map_with`] over `count` items (the iterator's exact `size_hint`,
    /// which is checked: an iterator that yields more or fewer items is an error).
    fn map_counted<A: Value, R: Value, X: IntoArgs<A>, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        items: impl Iterator<Item = X>,
        count: usize,
        scheduling: Scheduling,
    ) -> Result<Vec<R>, TaskError> {
        let first = self.take_positions(count as u64);
        let chunk_size = scheduling.items_per_chunk(count, self.workers());
        // Declared before anything is submitted: if the input iterator panics, the
        // collector waits for every local chunk before the output is freed.
        let mut collector = Collector {
            output: Output::with_slots(count),
            parts: Vec::with_capacity(count.div_ceil(chunk_size)),
        };
        let mut chunk: Pending<A> = Pending::Values(Vec::with_capacity(chunk_size.min(count)));
        let mut chunk_offset = 0;
        let mut yielded = 0;
        let name = task.task_name();
        let progress = self.track_submitted(&format!("map {name}"), count as u64);
        for item in items {
            if yielded == count {
                // One more than promised: stop before it could be written anywhere.
                yielded += 1;
                break;
            }
            let offset = yielded;
            yielded += 1;
            let position = first + offset as u64;
            if chunk.is_empty() {
                chunk_offset = offset;
            }
            match item.into_args() {
                Args::Plain(args) => chunk.push_value(args),
                Args::Parts(PartsBox(parts)) if chunk_size > 1 && self.cluster().is_some() => {
                    chunk.push_encoded(crate::graph::submit_nodes_in(self, parts));
                }
                Args::Parts(PartsBox(parts)) if chunk_size > 1 => {
                    match self.arguments_here::<A>(parts, name, position) {
                        Ok(args) => chunk.push_value(args),
                        Err(error) => {
                            self.flush_chunk(
                                &task,
                                &mut chunk,
                                first,
                                chunk_offset,
                                &mut collector,
                            );
                            let slot = Slot::new(name, position);
                            let future = Future::new(slot.clone());
                            slot.resolve(Err(self.options.label(error)));
                            collector.parts.push(Part::One { future, offset });
                        }
                    }
                }
                dependent => {
                    self.flush_chunk(&task, &mut chunk, first, chunk_offset, &mut collector);
                    let future = self.submit_at(task.clone(), dependent, position);
                    future.slot.fetch_when_done();
                    collector.parts.push(Part::One { future, offset });
                }
            }
            if chunk.len() == chunk_size {
                self.flush_chunk(&task, &mut chunk, first, chunk_offset, &mut collector);
            }
        }
        self.flush_chunk(&task, &mut chunk, first, chunk_offset, &mut collector);
        let first_error = collector.wait_all();
        if let Some(progress) = progress {
            progress.all_done();
        }
        let runtime_error = |message: String| {
            TaskError::new(task.task_name(), first, TaskErrorKind::Runtime, message)
        };
        if yielded != count {
            let yielded = if yielded > count {
                format!("more than {count}")
            } else {
                yielded.to_string()
            };
            return Err(runtime_error(format!(
                "the inputs' iterator promised exactly {count} items (its size_hint) \
                 but yielded {yielded}"
            )));
        }
        if let Some(error) = first_error {
            return Err(name_item(error, first, count));
        }
        collector.output.take_vec().map_err(runtime_error)
    }

    /// Submits the items of `chunk` (at offsets `offset..`) as one task, if any,
    /// leaving `chunk` empty.
    fn flush_chunk<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: &Arc<T>,
        chunk: &mut Pending<A>,
        first: u64,
        offset: usize,
        collector: &mut Collector<R>,
    ) {
        if chunk.is_empty() {
            return;
        }
        let part = match std::mem::replace(chunk, Pending::Values(Vec::new())) {
            Pending::Values(items) => {
                self.submit_chunk(task.clone(), items, first, offset, &collector.output)
            }
            Pending::Encoded(items) => {
                let (len, position) = (items.len(), first + offset as u64);
                let slot = Slot::new(task.task_name(), position);
                // The map reads every result: fetch a large one as its chunk ends.
                slot.fetch_when_done();
                let future = Future::new(slot.clone());
                match self.cluster() {
                    Some(cluster) => {
                        let mut call = remote_chunk(task.as_ref(), items, position);
                        call.items = len as u64;
                        self.submit_remote(cluster, call, slot);
                    }
                    None => unreachable!("only cluster chunks are encoded"),
                }
                Part::Chunk {
                    future,
                    offset,
                    len,
                }
            }
        };
        collector.parts.push(part);
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
        let len = items.len();
        if let Some(cluster) = self.cluster() {
            let slot = Slot::new(name, position);
            let future = Future::new(slot.clone());
            let mut call = RemoteTask::of(task.as_ref(), encoded_parts(&items), position, true);
            call.items = len as u64;
            self.submit_remote(cluster, call, slot);
            return Part::Chunk {
                future,
                offset,
                len,
            };
        }
        let slot = Slot::new(name, position);
        let future = Future::new(slot.clone());
        let (key, seeded, runner, target) = (
            self.key,
            self.seeded,
            self.clone(),
            output.window(offset, len),
        );
        let mut watch = self.watch_keeping_bus(name, len as u64);
        self.spawn(Box::new(move || {
            if !slot.start() {
                return;
            }
            if let Some(watch) = &mut watch {
                watch.started(runner.event_bus());
            }
            let written = Cell::new(0usize);
            let outcome = with_current_client(&runner, || {
                in_tasks(key, seeded, position, |reposition| {
                    run_caught(|| {
                        let mut ctx = TaskContext::new(key, seeded, position);
                        // SAFETY: `target` is this chunk's own window of the output,
                        // which outlives the job (the map's collector waits for
                        // every local chunk, also when unwinding), and none of its
                        // slots was written before.
                        unsafe {
                            target.fill(items, &written, |at, item| {
                                let item_position = position + at as u64;
                                ctx.reposition(item_position);
                                reposition(item_position);
                                task.run(item, &mut ctx)
                            })
                        }
                    })
                })
            });
            let position_of_failure = position + written.get() as u64;
            let error = outcome.err().map(|failure| {
                let error = local_task_error(name, position_of_failure, failure);
                runner.options.label(error)
            });
            if let Some(watch) = watch {
                match &error {
                    Some(error) => watch.failed(runner.event_bus(), error),
                    None => watch.finished(runner.event_bus(), 0),
                }
            }
            slot.resolve(Ok(ChunkReport {
                offset,
                written: written.get(),
                error,
            }));
        }));
        Part::Written(future)
    }
}

/// `error` naming its item within the map (the item at position `first + i` is
/// item `i`), when its position is one of the map's `count` items.
fn name_item(error: TaskError, first: u64, count: usize) -> TaskError {
    match error.position.checked_sub(first) {
        Some(item) if item < count as u64 && error.item.is_none() => error.in_map(item),
        _ => error,
    }
}

/// A part of a map's results.
enum Part<R> {
    /// A local chunk that writes its results into the output.
    Written(Future<ChunkReport>),
    /// A remote chunk of `len` items: its results, to copy into the output at `offset`.
    Chunk {
        future: Future<Vec<R>>,
        offset: usize,
        len: usize,
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

/// A map's output and the parts submitted to fill it. Dropping it (also while
/// unwinding) first waits for every local chunk still writing into the output, so
/// the output is never freed under a running chunk.
struct Collector<R> {
    output: Output<R>,
    parts: Vec<Part<R>>,
}

impl<R> Collector<R> {
    /// Waits for every part, even after an error (local chunks write into the
    /// output until they end), copies remote results in, and returns the first
    /// error in input order.
    fn wait_all(&mut self) -> Option<TaskError> {
        let mut first_error = None;
        for part in std::mem::take(&mut self.parts) {
            let failed = match part {
                Part::Written(future) => match future.value() {
                    Ok(report) => {
                        self.output.mark_written(report.offset, report.written);
                        report.error
                    }
                    Err(error) => Some(error),
                },
                Part::Chunk {
                    future,
                    offset,
                    len,
                } => self.copy_in(future, offset, len, |values| values),
                Part::One { future, offset } => {
                    self.copy_in(future, offset, 1, |value| vec![value])
                }
            };
            if first_error.is_none() {
                first_error = failed;
            }
        }
        first_error
    }

    /// Waits for a result that came back from elsewhere and copies it into its `len`
    /// slots from `offset`: the task's error, or an error if its length is wrong.
    fn copy_in<V>(
        &mut self,
        future: Future<V>,
        offset: usize,
        len: usize,
        as_values: impl FnOnce(V) -> Vec<R>,
    ) -> Option<TaskError> {
        let (name, position) = (future.task_name(), future.position());
        let values = match future.value() {
            Ok(value) => as_values(value),
            Err(error) => return Some(error),
        };
        let written = self.output.write_all(offset, len, values);
        written
            .err()
            .map(|message| TaskError::new(name, position, TaskErrorKind::Runtime, message))
    }
}

impl<R> Drop for Collector<R> {
    fn drop(&mut self) {
        for part in std::mem::take(&mut self.parts) {
            if let Part::Written(future) = part {
                if let Ok(report) = future.value() {
                    self.output.mark_written(report.offset, report.written);
                }
            }
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
