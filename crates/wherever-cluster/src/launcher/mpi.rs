//! The `mpi` launcher, dask-mpi's layout without an MPI library: under
//! `mpirun -n N ./my_study --plan mpi`, rank 0 runs the program's `main` and the
//! scheduler; ranks 1 to N-1 become its workers. The ranks meet through a
//! rendezvous file ([`rendezvous`](super::mpi_rendezvous)): rank 0 writes the
//! scheduler's address and the secret to it, the workers wait for it.

use super::mpi_rendezvous::{self, Rendezvous};
use super::{BindScope, LaunchStatus, LaunchedWorkers, Launcher, WorkerLaunch};
use crate::worker::{
    DEATH_TIMEOUT_VARIABLE, MEMORY_LIMIT_VARIABLE, MEMORY_SHARE_VARIABLE, THREADS_VARIABLE,
};
use std::path::PathBuf;
use std::time::Duration;

/// How long a worker rank waits for rank 0's rendezvous file.
pub const RENDEZVOUS_WAIT: Duration = Duration::from_secs(60);

/// The variables that hold a process's MPI rank, in the order they are read.
pub const RANK_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"];

/// The variables that hold the number of ranks, in the order they are read.
pub const SIZE_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// This process's place in an MPI job (`mpirun`, or `srun` of a step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpiRank {
    /// This process's rank, from 0.
    pub rank: usize,
    /// How many ranks the job has.
    pub size: usize,
    /// What names this run on every rank (and no other run): Open MPI's PMIx
    /// namespace or job id, or Slurm's `JOB.STEP`; `None` when nothing does.
    pub job: Option<String>,
}

impl MpiRank {
    /// The rank of this process, if it runs under `mpirun` (or in a Slurm step).
    pub fn from_env() -> Result<Option<MpiRank>, String> {
        MpiRank::detect(&|name| std::env::var(name).ok())
    }

    /// The rank that `env` (an environment lookup) describes: the rank from
    /// `OMPI_COMM_WORLD_RANK`, `PMI_RANK`, `PMIX_RANK` or (in a Slurm step, not
    /// the batch script) `SLURM_PROCID`; the size from `OMPI_COMM_WORLD_SIZE`,
    /// `PMI_SIZE` or `SLURM_NTASKS`. `None` outside an MPI job.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<MpiRank>, String> {
        let in_slurm_step = env("SLURM_STEP_ID").is_some() && env("SLURM_JOB_ID").is_some();
        let rank = RANK_VARIABLES
            .iter()
            .find_map(|name| env(name).map(|value| (*name, value)))
            .or_else(|| {
                in_slurm_step
                    .then(|| env("SLURM_PROCID").map(|v| ("SLURM_PROCID", v)))
                    .flatten()
            });
        let Some((rank_name, rank_text)) = rank else {
            return Ok(None);
        };
        let number = |name: &str, text: &str| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| format!("{name}=`{text}`: expected a whole number"))
        };
        let rank = number(rank_name, &rank_text)?;
        let size = SIZE_VARIABLES
            .iter()
            .find_map(|name| env(name).map(|value| (*name, value)))
            .or_else(|| env("SLURM_NTASKS").map(|v| ("SLURM_NTASKS", v)));
        let size = match size {
            Some((name, text)) => number(name, &text)?,
            None => {
                return Err(format!(
                    "{rank_name} is set but no variable gives the number of ranks \
                     (looked for {}, SLURM_NTASKS)",
                    SIZE_VARIABLES.join(", ")
                ))
            }
        };
        if rank >= size {
            return Err(format!(
                "{rank_name}={rank} is not below the number of ranks {size}"
            ));
        }
        let job = env("PMIX_NAMESPACE")
            .or_else(|| env("OMPI_MCA_ess_base_jobid"))
            .or_else(|| env("OMPI_MCA_orte_ess_jobid"))
            .or_else(|| {
                in_slurm_step
                    .then(|| {
                        Some(format!(
                            "{}.{}",
                            env("SLURM_JOB_ID")?,
                            env("SLURM_STEP_ID")?
                        ))
                    })
                    .flatten()
            })
            .filter(|job| !job.trim().is_empty());
        Ok(Some(MpiRank { rank, size, job }))
    }

    /// The rendezvous file of this run (see [`mpi_rendezvous::path`]).
    pub fn rendezvous_path(&self) -> Result<PathBuf, String> {
        mpi_rendezvous::path(self.job.as_deref())
    }
}

/// `mpi[:N]` on rank 0: the other ranks are the workers.
#[derive(Debug, Clone)]
pub struct MpiLauncher {
    rank: MpiRank,
    path: PathBuf,
    /// Each worker rank's memory limit in bytes (`mpi:mem=SIZE`); `None`: its
    /// node's memory divided by the ranks on that node ([`local_ranks`]).
    memory_limit: Option<u64>,
}

impl MpiLauncher {
    /// The launcher of rank 0 of this run; `expected` is the plan's `mpi:N` worker
    /// count, if given, which must match the ranks there are. An error outside
    /// `mpirun`, on another rank, or with fewer than two ranks.
    pub fn from_env(expected: Option<usize>) -> Result<Self, String> {
        let Some(rank) = MpiRank::from_env()? else {
            return Err("the `mpi` plan runs under mpirun, and no MPI rank is set \
                 (OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK or SLURM_PROCID in a step): \
                 start the program as `mpirun -n 4 ./my_study --plan mpi`"
                .to_string());
        };
        MpiLauncher::new(rank, expected)
    }

    /// The launcher of `rank` (which must be rank 0); see [`MpiLauncher::from_env`].
    pub fn new(rank: MpiRank, expected: Option<usize>) -> Result<Self, String> {
        if rank.rank != 0 {
            return Err(format!(
                "rank {} of the mpi plan is a worker and cannot start the plan",
                rank.rank
            ));
        }
        if rank.size < 2 {
            return Err(
                "the `mpi` plan needs at least 2 ranks (rank 0 runs main and the \
                 scheduler, the others are workers): start it as `mpirun -n 4 ...`"
                    .to_string(),
            );
        }
        if let Some(expected) = expected.filter(|&n| n != rank.size - 1) {
            return Err(format!(
                "the plan asks for mpi:{expected} workers, but this mpirun has {} ranks, \
                 hence {} workers (rank 0 runs main); use `mpirun -n {}` or the plain `mpi` plan",
                rank.size,
                rank.size - 1,
                expected + 1
            ));
        }
        let path = rank.rendezvous_path()?;
        Ok(MpiLauncher {
            rank,
            path,
            memory_limit: None,
        })
    }

    /// The same launcher with each worker rank's memory limit (`mpi:mem=SIZE`), or,
    /// with `None`, each node's memory shared by the ranks on it.
    pub fn with_memory_limit(mut self, memory_limit: Option<u64>) -> Self {
        self.memory_limit = memory_limit;
        self
    }

    /// Where rank 0 writes the rendezvous file.
    pub fn rendezvous_path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Launcher for MpiLauncher {
    fn describe(&self) -> String {
        format!("mpi ({} ranks)", self.rank.size)
    }

    fn bind_scope(&self) -> BindScope {
        BindScope::Routable
    }

    fn workers(&self) -> usize {
        self.rank.size - 1
    }

    /// The host `mpirun` (or `srun`) runs on, as a host of the worker ranks: the
    /// scheduler advertises the local address that routes there, which the other
    /// ranks' hosts reach too (also without a default route).
    fn peer_hint(&self) -> Option<String> {
        launcher_addresses(&|name| std::env::var(name).ok())
            .into_iter()
            .find(|address| routable(address))
    }

    fn launch(
        &self,
        launch: &WorkerLaunch,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        let mut env = vec![
            (THREADS_VARIABLE.to_string(), launch.threads.to_string()),
            // mpirun cannot restart one rank: a worker that lost its scheduler
            // has nothing to wait for.
            (DEATH_TIMEOUT_VARIABLE.to_string(), "0".to_string()),
        ];
        if let Some(limit) = self.memory_limit {
            env.push((MEMORY_LIMIT_VARIABLE.to_string(), limit.to_string()));
        }
        // The launch's own settings come last: they win.
        env.extend(launch.env.iter().cloned());
        let rendezvous = Rendezvous {
            scheduler: launch.scheduler.clone(),
            secret_hex: launch.secret_hex.clone(),
            env,
        };
        rendezvous.write(&self.path)?;
        Ok(Box::new(RankWorkers {
            path: Some(self.path.clone()),
        }))
    }
}

/// The addresses of the host that started the ranks: Open MPI's `mpirun` (the
/// `tcp://A,B:PORT` part of `OMPI_MCA_orte_hnp_uri`) or Slurm's `srun`
/// (`SLURM_LAUNCH_NODE_IPADDR`).
fn launcher_addresses(env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut addresses = Vec::new();
    if let Some(uri) = env("OMPI_MCA_orte_hnp_uri") {
        for part in uri.split(';') {
            if let Some(rest) = part.strip_prefix("tcp://") {
                let hosts = rest.rsplit_once(':').map_or(rest, |(hosts, _port)| hosts);
                addresses.extend(hosts.split(',').map(str::to_string));
            }
        }
    }
    addresses.extend(env("SLURM_LAUNCH_NODE_IPADDR"));
    addresses.retain(|a| a.parse::<std::net::Ipv4Addr>().is_ok());
    addresses
}

/// Whether this host has a route to `address` (a UDP "connect" sends nothing).
fn routable(address: &str) -> bool {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| socket.connect((address, 9)))
        .is_ok()
}

/// The worker ranks, as rank 0 sees them: it only owns the rendezvous file.
struct RankWorkers {
    path: Option<PathBuf>,
}

impl LaunchedWorkers for RankWorkers {
    fn poll(&mut self) -> LaunchStatus {
        LaunchStatus::Running
    }

    /// Removes the rendezvous file; the worker ranks exit when the scheduler closes.
    fn stop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for RankWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves as a worker rank (1 or above) of this run: waits (up to
/// [`RENDEZVOUS_WAIT`]) for rank 0's rendezvous file, then runs the worker
/// ([`crate::worker::run`]) and exits the process. Call it before any thread
/// starts (it sets this process's environment from the file).
pub fn serve_rank(rank: &MpiRank) -> ! {
    let outcome = rank
        .rendezvous_path()
        .and_then(|path| Rendezvous::wait_for(&path, RENDEZVOUS_WAIT));
    let rendezvous = match outcome {
        Ok(rendezvous) => rendezvous,
        Err(reason) => {
            eprintln!(
                "wherever worker (mpi rank {} of {}): {reason}",
                rank.rank, rank.size
            );
            std::process::exit(1)
        }
    };
    for (key, value) in &rendezvous.env {
        std::env::set_var(key, value);
    }
    // Without a limit from the plan, the ranks on this node share its memory.
    let limited = [MEMORY_LIMIT_VARIABLE, MEMORY_SHARE_VARIABLE]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !limited {
        if let Some(ranks) = local_ranks(&|name| std::env::var(name).ok()) {
            std::env::set_var(MEMORY_SHARE_VARIABLE, ranks.to_string());
        }
    }
    // Read back, then removed from the environment, by `Secret::take_for_worker`
    // before any thread or task starts.
    std::env::set_var(crate::auth::SECRET_VARIABLE, &rendezvous.secret_hex);
    crate::worker::run(&format!("tcp://{}", rendezvous.scheduler))
}

/// How many ranks of this run are on this node, as the MPI runtime says (Open
/// MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's `MPI_LOCALNRANKS`, PMIx's
/// `PMIX_LOCAL_SIZE`); `None` when none of them says (or says nonsense).
fn local_ranks(env: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "PMIX_LOCAL_SIZE",
    ]
    .iter()
    .find_map(|name| env(name))
    .and_then(|text| text.trim().parse::<u64>().ok())
    .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_ranks_on_a_node_are_read_from_open_mpi_mpich_or_pmix() {
        assert_eq!(
            local_ranks(&env(&[("OMPI_COMM_WORLD_LOCAL_SIZE", "3")])),
            Some(3)
        );
        assert_eq!(local_ranks(&env(&[("MPI_LOCALNRANKS", "2")])), Some(2));
        assert_eq!(local_ranks(&env(&[("PMIX_LOCAL_SIZE", "4")])), Some(4));
        assert_eq!(local_ranks(&env(&[])), None);
        assert_eq!(
            local_ranks(&env(&[("OMPI_COMM_WORLD_LOCAL_SIZE", "0")])),
            None
        );
        assert_eq!(local_ranks(&env(&[("MPI_LOCALNRANKS", "many")])), None);
    }

    #[test]
    fn open_mpi_ranks_sizes_and_namespaces_are_read() {
        let rank = MpiRank::detect(&env(&[
            ("OMPI_COMM_WORLD_RANK", "2"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("PMIX_RANK", "2"),
            ("PMIX_NAMESPACE", "1936326657"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            rank,
            MpiRank {
                rank: 2,
                size: 4,
                job: Some("1936326657".into())
            }
        );
    }

    #[test]
    fn mpich_and_slurm_steps_are_read_but_not_a_batch_script() {
        let mpich = MpiRank::detect(&env(&[("PMI_RANK", "1"), ("PMI_SIZE", "3")]))
            .unwrap()
            .unwrap();
        assert_eq!((mpich.rank, mpich.size, mpich.job), (1, 3, None));
        let step = MpiRank::detect(&env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_ID", "17"),
            ("SLURM_STEP_ID", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(step.job.as_deref(), Some("17.2"));
        // A batch script has SLURM_PROCID=0 too, but no step: it is no MPI rank.
        let batch = MpiRank::detect(&env(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_ID", "17"),
        ]))
        .unwrap();
        assert_eq!(batch, None);
        assert_eq!(MpiRank::detect(&env(&[])).unwrap(), None);
    }

    #[test]
    fn malformed_rank_variables_are_clear_errors() {
        let cases: [(&'static [(&'static str, &'static str)], &str); 3] = [
            (
                &[("PMI_RANK", "x"), ("PMI_SIZE", "2")],
                "PMI_RANK=`x`: expected a whole number",
            ),
            (
                &[("PMI_RANK", "1")],
                "no variable gives the number of ranks",
            ),
            (
                &[("PMI_RANK", "2"), ("PMI_SIZE", "2")],
                "not below the number of ranks 2",
            ),
        ];
        for (pairs, expected) in cases {
            let error = MpiRank::detect(&env(pairs)).unwrap_err();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }

    #[test]
    fn the_launching_host_is_read_from_open_mpi_and_slurm() {
        let open_mpi = env(&[(
            "OMPI_MCA_orte_hnp_uri",
            "1936326656.0;tcp://192.0.2.2,10.77.0.1:47279;tcp6://[fd00::2]:48423",
        )]);
        assert_eq!(launcher_addresses(&open_mpi), ["192.0.2.2", "10.77.0.1"]);
        let slurm = env(&[("SLURM_LAUNCH_NODE_IPADDR", "10.1.2.3")]);
        assert_eq!(launcher_addresses(&slurm), ["10.1.2.3"]);
        assert!(launcher_addresses(&env(&[("OMPI_MCA_orte_hnp_uri", "garbage")])).is_empty());
        assert!(routable("127.0.0.1"));
    }

    #[test]
    fn rank_zero_needs_workers_and_a_matching_count() {
        let rank = |size| MpiRank {
            rank: 0,
            size,
            job: Some("7".into()),
        };
        let error = MpiLauncher::new(rank(1), None).unwrap_err();
        assert!(error.contains("at least 2 ranks"), "{error}");
        let error = MpiLauncher::new(rank(3), Some(4)).unwrap_err();
        assert!(
            error.contains("mpi:4") && error.contains("3 ranks"),
            "{error}"
        );
        assert_eq!(MpiLauncher::new(rank(3), Some(2)).unwrap().workers(), 2);
        let worker = MpiRank { rank: 1, ..rank(3) };
        assert!(MpiLauncher::new(worker, None).is_err());
    }
}
