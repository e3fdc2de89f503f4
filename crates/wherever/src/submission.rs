//! How a call becomes a running task: as a job on a local executor, or as an
//! encoded call to a cluster; with its dependencies awaited (locally) or named to
//! the scheduler (remotely).

use crate::arguments::{dependency_failed, DepRef, Parts};
use crate::client::{Client, Cluster, Executor, DEFAULT_RETRIES};
use crate::future::{Future, Slot};
use crate::local::{current_worker_label, host_name, Job};
use crate::{IntoTask, TaskContext, TaskError, TaskErrorKind, TaskFailure, Value};
use std::sync::{Arc, Mutex};
use wherever_cluster::RemoteCall;
use wherever_core::codec;
use wherever_core::holes::{fill_holes, Hole};
use wherever_core::panic_capture::run_caught;
use wherever_core::scope::in_task;

impl Client {
    /// Submits a call whose arguments are all values.
    pub(crate) fn submit_plain<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        args: A,
        position: u64,
    ) -> Future<R> {
        let name = task.task_name();
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, position);
        match &self.shared.executor {
            Executor::Cluster(cluster) => {
                let parts = match codec::encode(&args) {
                    Ok(bytes) => Parts {
                        bytes,
                        ..Parts::default()
                    },
                    Err(error) => Parts {
                        error: Some(error.to_string()),
                        ..Parts::default()
                    },
                };
                self.submit_remote(
                    cluster,
                    task.registered().is_some(),
                    name,
                    parts,
                    position,
                    false,
                    slot,
                );
            }
            _ => self.spawn(self.job(task, args, position, slot)),
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
    ) -> Job {
        let (key, seeded, name) = (self.key, self.seeded, task.task_name());
        let runner = self.clone();
        Box::new(move || {
            if !slot.start() {
                return;
            }
            let outcome = crate::nested::with_current_client(&runner, || {
                in_task(key, seeded, position, || {
                    run_caught(|| task.run(args, &mut TaskContext::new(key, seeded, position)))
                })
            });
            slot.resolve(outcome.map_err(|failure| local_task_error(name, position, failure)));
        })
    }

    /// Runs a job on the local executor.
    pub(crate) fn spawn(&self, job: Job) {
        match &self.shared.executor {
            Executor::Sequential => job(),
            Executor::Threads(pool) => pool.spawn(job),
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
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, position);
        if let Some(error) = &parts.error {
            slot.resolve(Err(TaskError::new(
                name,
                position,
                TaskErrorKind::Runtime,
                error.clone(),
            )));
            return future;
        }
        match &self.shared.executor {
            Executor::Cluster(cluster) => self.submit_remote(
                cluster,
                task.registered().is_some(),
                name,
                parts,
                position,
                false,
                slot,
            ),
            _ => self.submit_local_with_deps(task, parts, position, slot),
        }
        future
    }

    /// Waits (without blocking) for every dependency, then runs the task locally.
    fn submit_local_with_deps<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        parts: Parts,
        position: u64,
        slot: Arc<Slot<R>>,
    ) {
        let name = task.task_name();
        let holes: Vec<Hole> = parts
            .holes
            .iter()
            .enumerate()
            .map(|(dep, (offset, _))| hole(*offset, dep))
            .collect();
        let waiting = Arc::new(Mutex::new(Waiting {
            inputs: vec![None; holes.len()],
            missing: holes.len(),
        }));
        let launch = {
            let (client, slot, bytes) = (self.clone(), slot.clone(), parts.bytes);
            let launch: Box<dyn FnOnce(Vec<Vec<u8>>) + Send> = Box::new(move |inputs| {
                let slices: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                let decoded = fill_holes(&bytes, &holes, &slices)
                    .ok_or_else(|| "the inputs do not fit the arguments".to_string())
                    .and_then(|filled| codec::decode::<A>(&filled).map_err(|e| e.to_string()));
                match decoded {
                    Ok(args) => client.spawn(client.job(task, args, position, slot)),
                    Err(error) => slot.resolve(Err(TaskError::new(
                        name,
                        position,
                        TaskErrorKind::Runtime,
                        format!("cannot decode the arguments: {error}"),
                    ))),
                }
            });
            Arc::new(Mutex::new(Some(launch)))
        };
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
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_remote<R: Value>(
        &self,
        cluster: &Cluster,
        registered: bool,
        name: &'static str,
        parts: Parts,
        position: u64,
        chunk: bool,
        slot: Arc<Slot<R>>,
    ) {
        let runtime_error =
            move |message: String| TaskError::new(name, position, TaskErrorKind::Runtime, message);
        if !registered {
            slot.resolve(Err(runtime_error(format!(
                "a closure cannot run on plan `{}`: it cannot cross a process boundary; \
                 register the function with #[wherever::task]",
                self.plan()
            ))));
            return;
        }
        if let Some(error) = parts.error {
            return slot.resolve(Err(runtime_error(format!(
                "cannot encode the arguments: {error}"
            ))));
        }
        let (args, deps, holes) = match remote_arguments(cluster, parts) {
            Ok(split) => split,
            Err(error) => return slot.resolve(Err(dependency_failed(name, position, &error))),
        };
        let call = RemoteCall {
            name,
            args,
            key: self.key,
            seeded: self.seeded,
            position,
            chunk,
            retries: DEFAULT_RETRIES,
            deps,
            holes,
        };
        let resolver = slot.clone();
        let id = cluster.client.submit(
            call,
            Box::new(move |outcome| {
                let outcome = outcome.and_then(|bytes| {
                    codec::decode::<R>(&bytes)
                        .map_err(|e| runtime_error(format!("cannot decode the result: {e}")))
                });
                resolver.resolve(outcome.map_err(|error| name_unnamed(error, name, position)));
            }),
        );
        slot.set_canceller(cluster.client.canceller(id));
        slot.set_remote(cluster.client.id(), id, cluster.client.releaser(id));
    }
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
fn value_here(dep: &DepRef) -> Result<Vec<u8>, TaskError> {
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
