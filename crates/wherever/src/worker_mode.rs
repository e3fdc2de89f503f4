//! Turning a process of the user's program into a worker before `main`'s body runs.

/// The environment variable that makes a process of a wherever program a worker:
/// the address of the scheduler to serve (`tcp://HOST:PORT`).
pub const WORKER_VARIABLE: &str = "WHEREVER_WORKER";

/// The flag with the same meaning as [`WORKER_VARIABLE`].
pub const WORKER_FLAG: &str = "--wherever-worker";

/// Call first in `main` (or use `#[wherever::main]`). In an ordinary run it
/// returns at once. In a process started as a worker (with `WHEREVER_WORKER` set or
/// `--wherever-worker ADDRESS`), it serves the scheduler and exits the process
/// instead of returning, so `main`'s own body never runs there.
pub fn init() {
    let flag = crate::args::flag_value(std::env::args(), WORKER_FLAG)
        .ok()
        .flatten();
    let Some(address) = flag.or_else(|| std::env::var(WORKER_VARIABLE).ok()) else {
        return;
    };
    wherever_cluster::worker::run(&address)
}
