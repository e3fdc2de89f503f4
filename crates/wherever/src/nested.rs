//! Nested parallelism: a running task gets a client with [`client()`] and submits
//! tasks of its own. They run under the next level of the plan
//! (`processes:2/threads:2`: each worker process runs its tasks' subtasks on 2
//! threads), or, with a single level, on the same workers. Their random streams
//! derive from the parent task's, so nested results are bit-identical under every
//! plan. A task waiting on its subtasks gives up its slot while it waits, so
//! nesting never deadlocks however small the pool.

use crate::client::{connect, Client, Cluster, Executor};
use crate::plan::Plan;
use crate::Error;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use wherever_cluster::Secret;

thread_local! {
    /// The client running this thread's task, borrowed from the frame of
    /// [`with_current_client`] (null outside a task): setting it per task touches
    /// no reference counts; it is cloned only when the task asks for it.
    static CURRENT_CLIENT: Cell<*const Client> = const { Cell::new(std::ptr::null()) };
}

/// Runs `body` (a task on a local executor) knowing which client runs it.
pub(crate) fn with_current_client<T>(client: &Client, body: impl FnOnce() -> T) -> T {
    let _restore = Restore {
        outer: CURRENT_CLIENT.with(|current| current.replace(client)),
    };
    body()
}

/// Puts the outer task's client back when the body returns or unwinds.
struct Restore {
    outer: *const Client,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = CURRENT_CLIENT.try_with(|current| current.set(self.outer));
    }
}

/// A clone of the client running this thread's task, if any.
fn current_client() -> Option<Client> {
    let client = CURRENT_CLIENT.with(Cell::get);
    // SAFETY: a non-null pointer was set by `with_current_client` in this thread
    // from a `&Client` that lives until that call's `Restore` puts the outer value
    // back (also on unwinding); that call is still on this thread's stack while
    // its body runs, which is the only time this pointer is read.
    unsafe { client.as_ref() }.cloned()
}

/// The client for tasks submitted by the running task (Dask's `get_client()`,
/// R future's nested `future()`): under the plan's next level, or the same workers
/// when the plan has one level, drawing random streams derived from the running
/// task's own. Outside a task it is an error.
pub fn client() -> Result<Client, Error> {
    let scope = wherever_core::scope::current_task().ok_or_else(|| {
        Error::Args("wherever::client() is for code running inside a task".to_string())
    })?;
    let base = match current_client() {
        Some(parent) => match parent.plan().inner() {
            Some(inner) => started(&inner)?,
            None => parent,
        },
        None => worker_process_client()?,
    };
    Ok(base.with_key(scope.child_key(), scope.seeded))
}

/// In a worker process: the inner plan its scheduler passed down (from the
/// client's handshake), or else a connection back to its own scheduler.
fn worker_process_client() -> Result<Client, Error> {
    if let Some(inner) = wherever_cluster::worker::inner_plan().filter(|p| !p.is_empty()) {
        return started(&Plan::parse(&inner)?);
    }
    let address = std::env::var(crate::worker_mode::WORKER_VARIABLE).map_err(|_| {
        Error::Args("this task runs outside any client; it cannot submit tasks".to_string())
    })?;
    let address = wherever_cluster::worker::parse_address(&address).map_err(Error::Args)?;
    let key = format!("tcp://{address}");
    cached(&key, || {
        let secret = Secret::from_env().map_err(|e| Error::Args(e.to_string()))?;
        let client = connect(&address, secret, None).map_err(|reason| Error::Start {
            plan: key.clone(),
            reason,
        })?;
        let cluster = Cluster::connected(client);
        Ok(Client::new(Plan::parse(&key)?, Executor::Cluster(cluster)))
    })
}

/// The client of `plan`, started once per process and shared by all tasks.
fn started(plan: &Plan) -> Result<Client, Error> {
    cached(&plan.to_string(), || plan.start_here())
}

fn cached(key: &str, start: impl FnOnce() -> Result<Client, Error>) -> Result<Client, Error> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Client>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Mutex::default);
    if let Some(client) = clients.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
        return Ok(client.clone());
    }
    let client = start()?;
    let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
    Ok(clients.entry(key.to_string()).or_insert(client).clone())
}
