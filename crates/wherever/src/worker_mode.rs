//! Turning a process of the user's program into a worker before `main`'s body runs,
//! and refusing to start plans in a worker process whose `main` did not do so.

use crate::plan::{Level, Plan};
use crate::Error;
use wherever_cluster::launcher::MpiRank;

/// The environment variable that makes a process of a wherever program a worker:
/// the address of the scheduler to serve (`tcp://HOST:PORT`).
pub const WORKER_VARIABLE: &str = "WHEREVER_WORKER";

/// The flag with the same meaning as [`WORKER_VARIABLE`].
pub const WORKER_FLAG: &str = "--wherever-worker";

/// Call first in `main` (or use `#[wherever::main]`). In an ordinary run it
/// returns at once. In a process started as a worker (with `WHEREVER_WORKER` set or
/// `--wherever-worker ADDRESS`), or in an MPI rank above 0 of a program whose plan
/// (`--plan` or `WHEREVER_PLAN`) is `mpi`, it serves the scheduler and exits the
/// process instead of returning, so `main`'s own body never runs there.
pub fn init() {
    if let Some(address) = worker_address() {
        wherever_cluster::worker::run(&address)
    }
    if plan_is_mpi() {
        serve_if_mpi_worker_rank();
    }
}

/// In an MPI rank above 0, serves rank 0's scheduler as a worker and exits the
/// process (see [`wherever_cluster::launcher::mpi::serve_rank`]); returns at once
/// in rank 0 or outside MPI. A malformed rank variable is reported by rank 0's
/// [`Plan::start`] (every rank reads the same kind of variables).
pub(crate) fn serve_if_mpi_worker_rank() {
    if let Ok(Some(rank)) = MpiRank::from_env() {
        if rank.rank > 0 {
            wherever_cluster::launcher::mpi::serve_rank(&rank)
        }
    }
}

/// Whether the plan this program was started with (`--plan`, else
/// `WHEREVER_PLAN`) has `mpi` as its first level; a missing or malformed plan is
/// not (`main` reports a malformed one).
fn plan_is_mpi() -> bool {
    let text = match crate::args::flag_value(std::env::args(), "--plan") {
        Ok(Some(text)) => text,
        Ok(None) => match std::env::var("WHEREVER_PLAN") {
            Ok(text) => text,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    Plan::parse(&text)
        .map(|plan| matches!(plan.first(), Level::Mpi(..)))
        .unwrap_or(false)
}

/// The scheduler address this process was started to serve as a worker, if any:
/// the `--wherever-worker` flag, else [`WORKER_VARIABLE`].
fn worker_address() -> Option<String> {
    let flag = crate::args::flag_value(std::env::args(), WORKER_FLAG)
        .ok()
        .flatten();
    flag.or_else(|| std::env::var(WORKER_VARIABLE).ok())
}

/// An error if this process was started as a worker: there, `main`'s body only
/// runs when [`init`] was not called first, and a plan it started would start
/// workers of its own, each starting more (a fork bomb). Tasks running in a worker
/// start their nested plans through [`crate::client()`], which does not come here.
pub(crate) fn refuse_in_worker(plan: &Plan) -> Result<(), Error> {
    let Some(address) = worker_address() else {
        return Ok(());
    };
    Err(Error::Start {
        plan: plan.to_string(),
        reason: format!(
            "this process was started as a worker of the scheduler at {address} \
             ({WORKER_VARIABLE} or {WORKER_FLAG} is set), yet its main() went on to start \
             a plan, which would start workers of its own. Put #[wherever::main] on \
             fn main (or call wherever::init() as its first line) so that worker \
             processes serve tasks instead of running main's body. For tasks that \
             submit tasks, call wherever::client() inside the task and give the nested \
             levels in the plan (e.g. `processes:2/threads:4`); to start an independent \
             plan from this process anyway, remove {WORKER_VARIABLE} from its environment."
        ),
    })
}
