//! The launcher of a plan level: what starts its worker processes. [`Plan::start`]
//! uses it for the program's own workers, and the `wherever run` command for the
//! workers of another program, so both start the same workers for the same plan
//! string.
//!
//! [`Plan::start`]: crate::Plan::start

use crate::plan::{Level, SshLevel};
use wherever_cluster::launcher::{
    Launcher, ProcessesLauncher, SlurmJobsLauncher, SlurmLauncher, SshHostSpec, SshLauncher,
};

impl Level {
    /// The launcher that starts this level's workers on their own (without a
    /// program of this process waiting as rank 0): `processes`, `ssh:`, `slurm`
    /// (inside an allocation) and `slurm:jobs=`/`slurm:per-task`. `Ok(None)` for
    /// the levels that start no worker processes (`sequential`, `threads`,
    /// `tcp://`) and for `mpi`, whose workers are the other ranks of the `mpirun`
    /// this process runs in. An error says why the launcher cannot be made (a
    /// `slurm` level outside an allocation, a malformed environment setting).
    pub fn worker_launcher(&self) -> Result<Option<Box<dyn Launcher>>, String> {
        Ok(match self {
            Level::Sequential | Level::Threads(_) | Level::Tcp { .. } | Level::Mpi(..) => None,
            Level::Processes(workers, options) => Some(Box::new(ProcessesLauncher {
                workers: workers.resolve(),
                memory_limit: options.memory_limit,
            })),
            Level::Ssh(level) => Some(Box::new(ssh_launcher(level)?)),
            Level::Slurm(options) => Some(Box::new(SlurmLauncher::from_env(options)?)),
            Level::SlurmJobs(spec) => Some(Box::new(SlurmJobsLauncher::new(spec.clone()))),
        })
    }
}

/// The launcher of an `ssh:` level.
fn ssh_launcher(level: &SshLevel) -> Result<SshLauncher, String> {
    let hosts = level
        .hosts
        .iter()
        .map(|h| SshHostSpec {
            host: h.host.clone(),
            workers: h.workers,
        })
        .collect();
    SshLauncher::new(
        hosts,
        level.ship,
        level.partial,
        level.connect_timeout.map(std::time::Duration::from_secs),
    )
    .map(|launcher| launcher.with_memory_limit(level.memory_limit))
}

#[cfg(test)]
mod tests {
    use crate::Plan;

    fn launcher(plan: &str) -> Option<Box<dyn wherever_cluster::launcher::Launcher>> {
        Plan::parse(plan)
            .unwrap()
            .first()
            .worker_launcher()
            .unwrap()
    }

    #[test]
    fn levels_with_worker_processes_have_a_launcher_with_the_plan_s_options() {
        let processes = launcher("processes:3,mem=200MB").unwrap();
        assert_eq!(processes.workers(), 3);
        assert_eq!(processes.describe(), "processes:3");
        let ssh = launcher("ssh:h1*2,h2;mem=1GB").unwrap();
        assert_eq!(ssh.workers(), 3);
        let jobs = launcher("slurm:jobs=2,partition=debug").unwrap();
        assert_eq!(jobs.workers(), 2);
    }

    #[test]
    fn levels_without_worker_processes_have_none() {
        for plan in ["sequential", "threads:2", "tcp://127.0.0.1:8786", "mpi:2"] {
            assert!(launcher(plan).is_none(), "{plan}");
        }
    }
}
