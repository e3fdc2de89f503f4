//! The client: submits tasks under a plan and hands back futures.

use crate::future::{Future, Slot};
use crate::local::{host_name, Job, ThreadPool};
use crate::map::{split_into_chunks, Scheduling};
use crate::plan::{Level, Plan};
use crate::{Error, IntoTask, StreamKey, TaskContext, TaskError, TaskErrorKind};
use serde::{de::DeserializeOwned, Serialize};
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wherever_cluster::{ClusterClient, ClusterRuntime, LocalCluster, RemoteCall, Secret};
use wherever_core::codec;
use wherever_core::panic_capture::{install_hook, run_caught};

/// Values that can be task arguments or results: owned, sendable, serde types
/// (so the same code runs when the plan sends them to another process).
pub trait Value: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Value for T {}

/// The handle a program uses to submit work under a plan. Cloning is cheap; clones
/// share the workers, the seed and the submission counter.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    key: StreamKey,
    seeded: bool,
    positions: Arc<AtomicU64>,
}

struct Shared {
    plan: Plan,
    executor: Executor,
}

enum Executor {
    Sequential,
    Threads(ThreadPool),
    Cluster(Cluster),
}

/// A multi-process plan's connection, and for `processes:N` the local cluster.
struct Cluster {
    client: ClusterClient,
    /// Task slots when known from the plan (`processes:N`), else as announced.
    slots: Option<usize>,
    _local: Option<LocalCluster>,
}

/// How often a task is rerun after the worker running it died (Dask's
/// `allowed-failures`).
pub const DEFAULT_RETRIES: u32 = 3;

impl Plan {
    /// Starts the plan's workers and returns a client for it.
    ///
    /// `sequential` and `threads` start here; a plan that parses but has no runtime
    /// in this build yet is an [`Error::Start`] naming it.
    pub fn start(&self) -> Result<Client, Error> {
        install_hook();
        let executor = match self.first() {
            Level::Sequential => Executor::Sequential,
            Level::Threads(workers) => Executor::Threads(ThreadPool::start(workers.resolve())?),
            Level::Processes(workers) => {
                let workers = workers.resolve();
                let (local, client) =
                    LocalCluster::start(workers, 1).map_err(|reason| start_error(self, reason))?;
                Executor::Cluster(Cluster {
                    client,
                    slots: Some(workers),
                    _local: Some(local),
                })
            }
            Level::Tcp { host, port } => {
                let secret = Secret::from_env().map_err(|e| start_error(self, e.to_string()))?;
                let runtime = Arc::new(ClusterRuntime::start()?);
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let client = ClusterClient::connect(runtime, &address, secret)
                    .map_err(|reason| start_error(self, reason))?;
                Executor::Cluster(Cluster {
                    client,
                    slots: None,
                    _local: None,
                })
            }
            other => {
                return Err(Error::Start {
                    plan: self.to_string(),
                    reason: format!("the `{other}` level is not available in this build yet"),
                })
            }
        };
        Ok(Client {
            shared: Arc::new(Shared {
                plan: self.clone(),
                executor,
            }),
            key: StreamKey::from_seed(random_seed()),
            seeded: false,
            positions: Arc::new(AtomicU64::new(0)),
        })
    }
}

fn start_error(plan: &Plan, reason: String) -> Error {
    Error::Start {
        plan: plan.to_string(),
        reason,
    }
}

fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

impl Client {
    /// This client with the root seed `seed`: task `p` (in submission order from
    /// here on, counting every `map` item) gets stream `p` of the seed's key, so
    /// results are bit-identical under every plan and chunking. Positions restart at 0.
    pub fn with_seed(self, seed: u64) -> Client {
        Client {
            key: StreamKey::from_seed(seed),
            seeded: true,
            positions: Arc::new(AtomicU64::new(0)),
            ..self
        }
    }

    /// This client with `seed` if it is `Some` (e.g. from [`crate::seed_from_args`]).
    pub fn with_seed_option(self, seed: Option<u64>) -> Client {
        match seed {
            Some(seed) => self.with_seed(seed),
            None => self,
        }
    }

    /// The plan this client runs under.
    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// How many tasks can run at once.
    pub fn workers(&self) -> usize {
        match &self.shared.executor {
            Executor::Sequential => 1,
            Executor::Threads(pool) => pool.threads(),
            Executor::Cluster(cluster) => cluster
                .slots
                .unwrap_or_else(|| cluster.client.workers().1 as usize)
                .max(1),
        }
    }

    /// Submits one call of `task` with `args` and returns its future at once (under
    /// `sequential`, the task runs before `submit` returns). Blocks only while the
    /// plan's queue is full (see [`crate::QUEUE_BOUND`]).
    pub fn submit<A: Value, R: Value>(&self, task: impl IntoTask<A, R>, args: A) -> Future<R> {
        let position = self.positions.fetch_add(1, Ordering::Relaxed);
        let name = task.task_name();
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, position);
        if let Executor::Cluster(cluster) = &self.shared.executor {
            let encoded = codec::encode(&args).map_err(|e| e.to_string());
            self.submit_remote(
                cluster,
                task.registered().is_some(),
                name,
                encoded,
                position,
                false,
                slot,
            );
            return future;
        }
        let (key, seeded) = (self.key, self.seeded);
        self.spawn(Box::new(move || {
            if !slot.start() {
                return;
            }
            let outcome =
                run_caught(|| task.run(args, &mut TaskContext::new(key, seeded, position)));
            slot.resolve(outcome.map_err(|failure| task_error(name, position, failure)));
        }));
        future
    }

    /// Sends an encoded call to the cluster; `slot` resolves with the decoded result.
    #[allow(clippy::too_many_arguments)]
    fn submit_remote<R: Value>(
        &self,
        cluster: &Cluster,
        registered: bool,
        name: &'static str,
        args: Result<Vec<u8>, String>,
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
        let args = match args {
            Ok(args) => args,
            Err(error) => {
                return slot.resolve(Err(runtime_error(format!(
                    "cannot encode the arguments: {error}"
                ))))
            }
        };
        let call = RemoteCall {
            name,
            args,
            key: self.key,
            seeded: self.seeded,
            position,
            chunk,
            retries: DEFAULT_RETRIES,
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
    }

    /// Applies `task` to every input with the default [`Scheduling`] and returns the
    /// results in input order, or the error of the first failed item (in input order).
    pub fn map<A: Value, R: Value>(
        &self,
        task: impl IntoTask<A, R>,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, TaskError> {
        self.map_with(task, inputs, Scheduling::Auto)
    }

    /// [`Client::map`] with an explicit [`Scheduling`]. Item `i` gets the random
    /// stream of position `first + i`, whatever the chunking.
    pub fn map_with<A: Value, R: Value>(
        &self,
        task: impl IntoTask<A, R>,
        inputs: impl IntoIterator<Item = A>,
        scheduling: Scheduling,
    ) -> Result<Vec<R>, TaskError> {
        let items: Vec<A> = inputs.into_iter().collect();
        let count = items.len();
        let first = self.positions.fetch_add(count as u64, Ordering::Relaxed);
        let chunk = scheduling.items_per_chunk(count, self.workers());
        let task = Arc::new(task);
        let futures: Vec<Future<Vec<R>>> = split_into_chunks(items, chunk)
            .into_iter()
            .enumerate()
            .map(|(index, items)| {
                self.submit_chunk(task.clone(), items, first + (index * chunk) as u64)
            })
            .collect();
        let mut results = Vec::with_capacity(count);
        for future in futures {
            results.extend(future.value()?);
        }
        Ok(results)
    }

    fn submit_chunk<A: Value, R: Value, T: IntoTask<A, R>>(
        &self,
        task: Arc<T>,
        items: Vec<A>,
        first: u64,
    ) -> Future<Vec<R>> {
        let name = task.task_name();
        let slot = Slot::new();
        let future = Future::new(slot.clone(), name, first);
        if let Executor::Cluster(cluster) = &self.shared.executor {
            let encoded = codec::encode(&items).map_err(|e| e.to_string());
            self.submit_remote(
                cluster,
                task.registered().is_some(),
                name,
                encoded,
                first,
                true,
                slot,
            );
            return future;
        }
        let (key, seeded) = (self.key, self.seeded);
        self.spawn(Box::new(move || {
            if !slot.start() {
                return;
            }
            let current = Cell::new(first);
            let outcome = run_caught(|| {
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    results
                        .push(task.run(item, &mut TaskContext::new(key, seeded, current.get()))?);
                    current.set(current.get() + 1);
                }
                Ok(results)
            });
            slot.resolve(outcome.map_err(|failure| task_error(name, current.get(), failure)));
        }));
        future
    }

    /// The values of `futures`, in order; the first error met stops the gathering
    /// and is returned (the other tasks still run to the end).
    pub fn gather<R>(
        &self,
        futures: impl IntoIterator<Item = Future<R>>,
    ) -> Result<Vec<R>, TaskError> {
        futures.into_iter().map(Future::value).collect()
    }

    fn spawn(&self, job: Job) {
        match &self.shared.executor {
            Executor::Sequential => job(),
            Executor::Threads(pool) => pool.spawn(job),
            Executor::Cluster(_) => unreachable!("cluster tasks are submitted, not spawned"),
        }
    }
}

/// Errors made where the task's name was not known carry `?`: fill it in.
fn name_unnamed(mut error: TaskError, name: &str, position: u64) -> TaskError {
    if error.task == "?" {
        error.task = name.to_string();
        error.position = position;
    }
    error
}

fn task_error(name: &str, position: u64, failure: crate::TaskFailure) -> TaskError {
    let worker = crate::local::current_worker_label()
        .unwrap_or_else(|| format!("the calling thread (sequential) on {}", host_name()));
    TaskError::from_failure(name, position, failure).on_worker(worker)
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Client({}, {} workers)",
            self.shared.plan,
            self.workers()
        )
    }
}
