//! How a call becomes a running task: as a job on a local executor, or as an
//! encoded call to a cluster; with its dependencies awaited (locally) or named to
//! the scheduler (remotely); alone, or as a fused chain of graph nodes.

use crate::arguments::{dependency_failed, DepRef, Parts};
use crate::client::{Client, Cluster, Executor};
use crate::future::{Future, Slot};
use crate::held_fetch::{Decoder, RemoteFetch};
use crate::local::{current_graph_rank, current_worker_label, host_name, GraphRank, Job};
use crate::options::TaskOptions;
use crate::slot::Fetcher;
use crate::task_events::TaskWatch;
use crate::{IntoTask, StreamKey, TaskContext, TaskError, TaskErrorKind, TaskFailure, Value};
use std::sync::{Arc, Mutex};
use wherever_cluster::protocol::ChainLink;
use wherever_cluster::{Arrival, Arrive, RemoteCall, TaskEnd};
use wherever_core::codec;
use wherever_core::holes::{fill_holes, Hole};
use wherever_core::panic_capture::run_caught;
use wherever_core::scope::in_task;

/// Runs a task on encoded arguments, returning its encoded result: a graph
/// node's task with its types erased, for fused chains on local plans.
pub(crate) type LocalRun =
    Arc<dyn Fn(&[u8], StreamKey, bool, u64) -> Result<Vec<u8>, TaskFailure> + Send + Sync>;

/// One task of a fused chain.
pub(crate) struct ChainPart {
    pub(crate) name: &'static str,
    pub(crate) registered: bool,
    /// The head's arguments (with its dependencies); for later links, the
    /// arguments with one hole where the previous result goes.
    pub(crate) parts: Parts,
    pub(crate) position: u64,
    pub(crate) run: LocalRun,
}

thread_local! {
    /// Whether the client reads the results of the tasks this thread submits now:
    /// `false` while a graph's intermediates are submitted.
    static RESULT_WANTED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `submit` with the results of the tasks it sends to a cluster marked as
/// read by this client (`wanted`) or not (a graph's intermediates: they stay on
/// the workers that use them, and the scheduler does not report them done).
pub(crate) fn with_result_wanted<T>(wanted: bool, submit: impl FnOnce() -> T) -> T {
    let before = RESULT_WANTED.with(|cell| cell.replace(wanted));
    let restore = Restore(before);
    let out = submit();
    drop(restore);
    out
}

/// Puts the thread's former [`RESULT_WANTED`] back, also on a panic.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        RESULT_WANTED.with(|cell| cell.set(self.0));
    }
}

/// A call as a cluster receives it.
pub(crate) struct RemoteTask {
    pub(crate) registered: bool,
    pub(crate) name: &'static str,
    pub(crate) parts: Parts,
    pub(crate) position: u64,
    pub(crate) chunk: bool,
    pub(crate) chain: Vec<ChainLink>,
    /// How many items it computes (a `map` chunk's length), for the event stream.
    pub(crate) items: u64,
}

impl RemoteTask {
    /// A call of `task` at `position` on encoded `parts`.
    pub(crate) fn of<A, R>(
        task: &impl IntoTask<A, R>,
        parts: Parts,
        position: u64,
        chunk: bool,
    ) -> Self {
        RemoteTask {
            registered: task.registered().is_some(),
            name: task.task_name(),
            parts,
            position,
            chunk,
            chain: Vec::new(),
            items: 1,
        }
    }
}

/// Encoded values as arguments without dependencies (or the encoding error).
pub(crate) fn encoded_parts<T: Value>(value: &T) -> Parts {
    match codec::encode(value) {
        Ok(bytes) => Parts {
            bytes,
            ..Parts::default()
        },
        Err(error) => Parts {
            error: Some(error.to_string()),
            ..Parts::default()
        },
    }
}

impl Client {
    /// Submits a call whose arguments are all values.
    pub(crate) fn submit_plain<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        args: A,
        position: u64,
    ) -> Future<R> {
        let slot = Slot::new(task.task_name(), position);
        let future = Future::new(slot.clone());
        match &self.shared.executor {
            Executor::Cluster(cluster) => {
                let call = RemoteTask::of(task.as_ref(), encoded_parts(&args), position, false);
                self.submit_remote(cluster, call, slot);
            }
            // Runs here and now: no job to box, no client to clone for it.
            Executor::Sequential => {
                let watch = self.watch(task.task_name(), 1);
                self.run_job(task.as_ref(), args, position, &slot, watch)
            }
            Executor::Threads(_) => {
                let watch = self.watch(task.task_name(), 1);
                self.spawn(self.job(task, args, position, slot, watch))
            }
        }
        future
    }

    /// The job that runs `task` on `args` locally and resolves `slot`.
    pub(crate) fn job<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        args: A,
        position: u64,
        slot: Arc<Slot<R>>,
        watch: Option<TaskWatch>,
    ) -> Job {
        let runner = self.clone();
        Box::new(move || runner.run_job(task.as_ref(), args, position, &slot, watch))
    }

    /// Runs `task` on `args` in this thread as the task at `position` of this
    /// client, unless it was cancelled, and resolves `slot`; `watch` reports its
    /// start and end on the event stream when somebody observes it.
    fn run_job<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: &T,
        args: A,
        position: u64,
        slot: &Arc<Slot<R>>,
        mut watch: Option<TaskWatch>,
    ) {
        if !slot.start() {
            if let Some(watch) = watch {
                watch.cancelled(self.event_bus());
            }
            return;
        }
        if let Some(watch) = &mut watch {
            watch.started(self.event_bus());
        }
        let (key, seeded, name) = (self.key, self.seeded, task.task_name());
        if let Some(timeout) = self.options.timeout {
            let (late, options) = (Arc::downgrade(slot), self.options.clone());
            crate::timer::after(timeout, move || {
                if let Some(slot) = late.upgrade() {
                    slot.resolve(Err(options.timed_out(name, position, false)));
                }
            });
        }
        let outcome = crate::nested::with_current_client(self, || {
            in_task(key, seeded, position, || {
                run_caught(|| task.run(args, &mut TaskContext::new(key, seeded, position)))
            })
        });
        let outcome = outcome.map_err(|failure| {
            self.options
                .label(local_task_error(name, position, failure))
        });
        if let Some(watch) = watch {
            watch.ended(self.event_bus(), &outcome, 0);
        }
        slot.resolve(outcome);
    }

    /// Runs a job on the local executor (at the rank of the graph task being
    /// submitted, if any).
    pub(crate) fn spawn(&self, job: Job) {
        self.spawn_at(job, current_graph_rank())
    }

    /// Runs a job on the local executor; a pool runs ranked jobs best first.
    pub(crate) fn spawn_at(&self, job: Job, rank: Option<GraphRank>) {
        match &self.shared.executor {
            Executor::Sequential => job(),
            Executor::Threads(pool) => match rank {
                Some(rank) => pool.spawn_ranked(job, rank),
                None => pool.spawn(job),
            },
            Executor::Cluster(_) => unreachable!("cluster tasks are submitted, not spawned"),
        }
    }

    /// Submits a call whose arguments are encoded (by a graph node).
    pub(crate) fn submit_parts<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        parts: Parts,
        position: u64,
    ) -> Future<R> {
        if parts.holes.is_empty() && parts.error.is_none() && self.cluster().is_none() {
            match codec::decode::<A>(&parts.bytes) {
                Ok(args) => return self.submit_plain(task, args, position),
                Err(error) => {
                    let parts = Parts {
                        error: Some(format!("cannot decode the arguments: {error}")),
                        ..parts
                    };
                    return self.submit_with_deps(task, parts, position);
                }
            }
        }
        self.submit_with_deps(task, parts, position)
    }

    /// Submits a call that waits on dependencies.
    pub(crate) fn submit_with_deps<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        parts: Parts,
        position: u64,
    ) -> Future<R> {
        let name = task.task_name();
        let slot = Slot::new(name, position);
        let future = Future::new(slot.clone());
        if let Executor::Cluster(cluster) = &self.shared.executor {
            self.submit_remote(
                cluster,
                RemoteTask::of(task.as_ref(), parts, position, false),
                slot,
            );
            return future;
        }
        let (client, job_slot) = (self.clone(), slot.clone());
        let watch = self.watch_keeping_bus(name, 1);
        let rank = current_graph_rank();
        self.await_inputs(
            parts,
            name,
            position,
            slot,
            Box::new(move |filled| match codec::decode::<A>(&filled) {
                Ok(args) => {
                    client.spawn_at(client.job(task, args, position, job_slot, watch), rank)
                }
                Err(error) => job_slot.resolve(Err(TaskError::new(
                    name,
                    position,
                    TaskErrorKind::Runtime,
                    format!("cannot decode the arguments: {error}"),
                ))),
            }),
        );
        future
    }

    /// Submits a fused chain of graph nodes as one task: the head runs on its
    /// arguments, each later link on the previous result; the future is the last's.
    pub(crate) fn submit_chain<R: Value>(
        &self,
        head: ChainPart,
        links: Vec<ChainPart>,
    ) -> Future<R> {
        let last = links.last().map_or(head.name, |link| link.name);
        let last_position = links.last().map_or(head.position, |link| link.position);
        let slot = Slot::new(last, last_position);
        let future = Future::new(slot.clone());
        if let Executor::Cluster(cluster) = &self.shared.executor {
            let chain = links
                .iter()
                .map(|link| ChainLink {
                    name: link.name.to_string(),
                    args: link.parts.bytes.clone(),
                    offset: link
                        .parts
                        .holes
                        .first()
                        .map_or(0, |(offset, _)| *offset as u32),
                    position: link.position,
                })
                .collect();
            let call = RemoteTask {
                registered: head.registered && links.iter().all(|link| link.registered),
                name: head.name,
                parts: head.parts,
                position: head.position,
                chunk: false,
                chain,
                items: 1,
            };
            self.submit_remote(cluster, call, slot);
            return future;
        }
        let (name, position) = (head.name, head.position);
        let (client, job_slot) = (self.clone(), slot.clone());
        let run_head = head.run;
        let mut watch = self.watch_keeping_bus(last, 1);
        let rank = current_graph_rank();
        self.await_inputs(
            head.parts,
            name,
            position,
            slot,
            Box::new(move |filled| {
                let runner = client.clone();
                client.spawn_at(
                    Box::new(move || {
                        if !job_slot.start() {
                            return;
                        }
                        if let Some(watch) = &mut watch {
                            watch.started(runner.event_bus());
                        }
                        let (key, seeded) = (runner.key, runner.seeded);
                        let outcome = crate::nested::with_current_client(&runner, || {
                            let mut result =
                                run_caught(|| run_head(&filled, key, seeded, position))
                                    .map_err(|failure| local_task_error(name, position, failure))?;
                            for link in &links {
                                let offset =
                                    link.parts.holes.first().map_or(0, |(offset, _)| *offset);
                                let args =
                                    fill_holes(&link.parts.bytes, &[hole(offset, 0)], &[&result])
                                        .unwrap_or_default();
                                result =
                                    run_caught(|| (link.run)(&args, key, seeded, link.position))
                                        .map_err(|failure| {
                                            local_task_error(link.name, link.position, failure)
                                        })?;
                            }
                            codec::decode::<R>(&result).map_err(|e| {
                                TaskError::new(
                                    last,
                                    last_position,
                                    TaskErrorKind::Runtime,
                                    format!("cannot decode: {e}"),
                                )
                            })
                        });
                        if let Some(watch) = watch {
                            watch.ended(runner.event_bus(), &outcome, 0);
                        }
                        job_slot.resolve(outcome);
                    }),
                    rank,
                );
            }),
        );
        future
    }

    /// Waits (without blocking) for every dependency in `parts`, then calls
    /// `launch` with the filled arguments; a failed dependency fails `slot`.
    fn await_inputs<R: Value>(
        &self,
        parts: Parts,
        name: &'static str,
        position: u64,
        slot: Arc<Slot<R>>,
        launch: Box<dyn FnOnce(Vec<u8>) + Send>,
    ) {
        if let Some(error) = parts.error {
            slot.resolve(Err(TaskError::new(
                name,
                position,
                TaskErrorKind::Runtime,
                error,
            )));
            return;
        }
        let holes: Vec<Hole> = parts
            .holes
            .iter()
            .enumerate()
            .map(|(dep, (offset, _))| hole(*offset, dep))
            .collect();
        if holes.is_empty() {
            return launch(parts.bytes);
        }
        let bytes = parts.bytes;
        let launch = Arc::new(Mutex::new(Some(Box::new(move |inputs: Vec<Vec<u8>>| {
            let slices: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            launch(fill_holes(&bytes, &holes, &slices).unwrap_or_default())
        })
            as Box<dyn FnOnce(Vec<Vec<u8>>) + Send>)));
        let waiting = Arc::new(Mutex::new(Waiting {
            inputs: vec![None; parts.holes.len()],
            missing: parts.holes.len(),
        }));
        for (index, (_, dep)) in parts.holes.into_iter().enumerate() {
            let (waiting, launch, slot) = (waiting.clone(), launch.clone(), slot.clone());
            let arrived = move |input: Result<Vec<u8>, TaskError>| {
                let mut state = waiting.lock().unwrap_or_else(|p| p.into_inner());
                if state.missing == 0 {
                    return;
                }
                match input {
                    Ok(bytes) => {
                        state.inputs[index] = Some(bytes);
                        state.missing -= 1;
                        if state.missing > 0 {
                            return;
                        }
                        let inputs = state
                            .inputs
                            .iter_mut()
                            .map(|i| i.take().unwrap_or_default())
                            .collect();
                        drop(state);
                        if let Some(launch) =
                            launch.lock().unwrap_or_else(|p| p.into_inner()).take()
                        {
                            launch(inputs);
                        }
                    }
                    Err(error) => {
                        state.missing = 0;
                        drop(state);
                        launch.lock().unwrap_or_else(|p| p.into_inner()).take();
                        slot.resolve(Err(dependency_failed(name, position, &error)));
                    }
                }
            };
            match dep {
                DepRef::Future(future) => future.when_resolved_encoded(Box::new(arrived)),
                DepRef::Shared(shared) => arrived(Ok(shared.bytes.as_ref().clone())),
                DepRef::Node(_) => {
                    unreachable!("graph nodes are submitted before their dependents")
                }
            }
        }
    }

    /// Sends an encoded call to the cluster; `slot` resolves with the decoded result.
    pub(crate) fn submit_remote<R: Value>(
        &self,
        cluster: &Cluster,
        call: RemoteTask,
        slot: Arc<Slot<R>>,
    ) {
        let (name, position) = (call.name, call.position);
        let runtime_error =
            move |message: String| TaskError::new(name, position, TaskErrorKind::Runtime, message);
        if !call.registered {
            slot.resolve(Err(runtime_error(format!(
                "a closure cannot run on plan `{}`: it cannot cross a process boundary; \
                 register the function with #[wherever::task]",
                self.plan()
            ))));
            return;
        }
        if let Some(error) = call.parts.error {
            return slot.resolve(Err(runtime_error(format!(
                "cannot encode the arguments: {error}"
            ))));
        }
        let (args, deps, holes) = match remote_arguments(cluster, call.parts) {
            Ok(split) => split,
            Err(error) => {
                let error = dependency_failed(name, position, &error);
                return slot.resolve(Err(self.options.label(error)));
            }
        };
        let remote = RemoteCall {
            name,
            args,
            key: self.key,
            seeded: self.seeded,
            position,
            chunk: call.chunk,
            retries: self.options.retries(),
            priority: self.options.priority,
            deps,
            holes,
            chain: call.chain,
            resources: self.options.resources.clone(),
            timeout: self.options.timeout,
            wanted: RESULT_WANTED.with(|cell| cell.get()),
        };
        // The stream of a cluster plan is the scheduler's (in this process, or
        // forwarded by it).
        let items = call.items;
        // The slot is what the connection hands the task's end to (no closure per
        // task); it knows its handle and options before it can be reached.
        let id = cluster.client.next_task_id();
        slot.set_remote(cluster.client.handle(id), self.options.clone());
        cluster
            .client
            .submit_as(id, remote, TaskEnd::from(slot.clone()));
        crate::progress::note_submitted(id, items);
        crate::task_events::note_task_key(id);
        if let Some(timeout) = self.options.timeout {
            let (late, options) = (Arc::downgrade(&slot), self.options.clone());
            let cancel = cluster.client.canceller(id);
            crate::timer::after(timeout, move || {
                if let Some(slot) = late.upgrade().filter(|slot| !slot.is_resolved()) {
                    slot.resolve(Err(options.timed_out(name, position, true)));
                    cancel();
                }
            });
        }
    }
}

/// A task submitted to a cluster ends in its slot: the slot resolves with the
/// decoded result. A result held on its workers is fetched when the slot is first
/// read; if something waits for the value itself (a callback), it is fetched now.
impl<R: Value> Arrive for Slot<R> {
    fn arrive(self: Arc<Self>, outcome: Result<Arrival, TaskError>) {
        let (name, position) = (self.task(), self.position());
        let options = self.remote_options().unwrap_or_default();
        match outcome {
            Ok(Arrival::Held(held)) => {
                let decode: Decoder<R> = Box::new({
                    let options = options.clone();
                    move |bytes| decode_remote(bytes, &options, name, position)
                });
                let fetch: Fetcher<R> = Box::new(RemoteFetch { held, decode });
                if let Err(fetch) = self.resolve_held(fetch) {
                    // Something waits for the value itself: fetch it now.
                    if let Ok((held, _)) = fetch.into_held() {
                        held.fetch_then(Box::new(move |arrival| self.arrive(arrival)));
                    }
                }
            }
            Ok(Arrival::Bytes(bytes)) => {
                self.resolve(decode_remote(Ok(bytes), &options, name, position))
            }
            Err(error) => self.resolve(decode_remote(Err(error), &options, name, position)),
        }
    }
}

/// A cluster task's outcome decoded, its error labelled and named.
fn decode_remote<R: Value>(
    outcome: Result<Vec<u8>, TaskError>,
    options: &TaskOptions,
    name: &'static str,
    position: u64,
) -> Result<R, TaskError> {
    outcome
        .and_then(|bytes| {
            codec::decode::<R>(&bytes).map_err(|e| {
                let message = format!("cannot decode the result: {e}");
                TaskError::new(name, position, TaskErrorKind::Runtime, message)
            })
        })
        .map_err(|error| options.label(name_unnamed(error, name, position)))
}

struct Waiting {
    inputs: Vec<Option<Vec<u8>>>,
    missing: usize,
}

fn hole(offset: usize, dep: usize) -> Hole {
    Hole {
        offset: offset as u32,
        dep: dep as u32,
    }
}

/// Encoded arguments for a cluster: the bytes, the tasks whose results fill the
/// holes, and the holes.
type RemoteArguments = (Vec<u8>, Vec<u64>, Vec<Hole>);

/// Splits arguments for a cluster: results held by this cluster become
/// dependencies the scheduler routes; anything else (futures of other clients,
/// local scattered values) is awaited here and sent as a value.
fn remote_arguments(cluster: &Cluster, parts: Parts) -> Result<RemoteArguments, TaskError> {
    let this = cluster.client.id();
    let mut args = Vec::with_capacity(parts.bytes.len());
    let (mut deps, mut holes) = (Vec::new(), Vec::new());
    let mut copied = 0;
    for (offset, dep) in parts.holes {
        args.extend_from_slice(&parts.bytes[copied..offset]);
        copied = offset;
        let remote = match &dep {
            DepRef::Future(future) => future.remote(),
            DepRef::Shared(shared) => shared.remote,
            DepRef::Node(_) => unreachable!("graph nodes are submitted before their dependents"),
        };
        match remote {
            Some((cluster_id, task)) if cluster_id == this => {
                holes.push(hole(args.len(), deps.len()));
                deps.push(task);
            }
            _ => args.extend_from_slice(&value_here(&dep)?),
        }
    }
    args.extend_from_slice(&parts.bytes[copied..]);
    Ok((args, deps, holes))
}

/// The encoded value of a dependency from elsewhere, waiting for it if need be.
pub(crate) fn value_here(dep: &DepRef) -> Result<Vec<u8>, TaskError> {
    match dep {
        DepRef::Shared(shared) => Ok(shared.bytes.as_ref().clone()),
        DepRef::Future(future) => {
            let (sender, receiver) = crossbeam_channel::bounded(1);
            future.when_resolved_encoded(Box::new(move |outcome| {
                let _ = sender.send(outcome);
            }));
            wherever_core::scope::while_blocked(|| receiver.recv()).unwrap_or_else(|_| {
                Err(TaskError::new(
                    "?",
                    0,
                    TaskErrorKind::Runtime,
                    "the dependency was dropped",
                ))
            })
        }
        DepRef::Node(_) => unreachable!("graph nodes are submitted before their dependents"),
    }
}

/// Errors made where the task's name was not known carry `?`: fill it in.
pub(crate) fn name_unnamed(mut error: TaskError, name: &str, position: u64) -> TaskError {
    if error.task == "?" {
        error.task = name.to_string();
        error.position = position;
    }
    error
}

/// The error of a task that failed on a local executor, naming where it ran.
pub(crate) fn local_task_error(name: &str, position: u64, failure: TaskFailure) -> TaskError {
    let worker = current_worker_label()
        .unwrap_or_else(|| format!("the calling thread (sequential) on {}", host_name()));
    TaskError::from_failure(name, position, failure).on_worker(worker)
}
