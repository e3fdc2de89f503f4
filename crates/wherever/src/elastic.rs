//! Growing and shrinking a cluster's workers (Dask's `cluster.scale` and
//! `cluster.adapt`): [`Client::scale`], [`Client::adapt`].

use crate::client::{Client, Executor};
use crate::Error;
use wherever_cluster::launcher::{AdaptOptions, LaunchedCluster};

impl Client {
    /// Grows or shrinks the plan's workers to `workers` (Dask's `cluster.scale`):
    /// up, the launcher starts more (whole units: a Slurm job's workers); down, the
    /// scheduler retires whole groups of workers gracefully, idle ones first, then
    /// those holding the fewest bytes: they get no new tasks, their queued tasks
    /// go elsewhere, running ones finish, and the results only they hold that are
    /// still wanted are copied to another worker before they leave. Returns at
    /// once; workers join and leave in the background.
    ///
    /// An [`Error::Scale`] naming the plan for a plan whose workers are fixed
    /// (`sequential`, `threads:N`, `ssh:`, a Slurm allocation, `mpi`, `tcp://`).
    pub fn scale(&self, workers: usize) -> Result<(), Error> {
        let cluster = self.launched_cluster()?;
        self.mark_rescaled();
        cluster
            .scale(workers)
            .map(|_| ())
            .map_err(|reason| self.scale_error(reason))
    }

    /// Adapts the number of workers to the work between `minimum` and `maximum`
    /// (Dask's `cluster.adapt`), with [`AdaptOptions::new`]'s interval, idle grace
    /// period and cap on workers starting at once: see [`Client::adapt_with`].
    pub fn adapt(&self, minimum: usize, maximum: usize) -> Result<(), Error> {
        self.adapt_with(AdaptOptions::new(minimum, maximum))
    }

    /// Adapts the number of workers to the work from now on: a loop reads the
    /// scheduler's queue every `options.interval`, starts workers while tasks wait
    /// (one slot per waiting or running task, at most `options.maximum`, at most
    /// `options.max_starting` units starting at once) and retires workers (as
    /// [`Client::scale`] does) once the work has needed fewer for
    /// `options.idle_grace`, down to `options.minimum`. Replaces an adapt loop
    /// already running. Errors as [`Client::scale`], and for options that make no
    /// sense (a minimum above the maximum, a zero interval or cap).
    pub fn adapt_with(&self, options: AdaptOptions) -> Result<(), Error> {
        let cluster = self.launched_cluster()?;
        self.mark_rescaled();
        cluster
            .adapt(options)
            .map_err(|reason| self.scale_error(reason))
    }

    /// Stops adapting (the workers stay as they are); a no-op if not adapting.
    pub fn stop_adapting(&self) {
        if let Ok(cluster) = self.launched_cluster() {
            cluster.stop_adapting();
        }
    }

    /// How many worker processes are connected now (retired ones no longer count);
    /// for local plans, their task slots.
    pub fn connected_workers(&self) -> usize {
        match &self.shared.executor {
            Executor::Cluster(cluster) => cluster.client.workers().0 as usize,
            _ => self.workers(),
        }
    }

    /// The launched cluster behind this client, or an [`Error::Scale`] saying the
    /// plan has none to grow or shrink.
    fn launched_cluster(&self) -> Result<&LaunchedCluster, Error> {
        match &self.shared.executor {
            Executor::Cluster(cluster) => cluster.launched.as_ref().ok_or_else(|| {
                self.scale_error(
                    "its workers belong to a scheduler this program did not start: \
                     they are scaled where they were started"
                        .to_string(),
                )
            }),
            _ => Err(self.scale_error(
                "it runs in this process: there are no worker processes to start or \
                 stop (use processes:N, or slurm:jobs=N)"
                    .to_string(),
            )),
        }
    }

    /// From now on [`Client::workers`] counts the slots the scheduler announces,
    /// not the plan's.
    fn mark_rescaled(&self) {
        if let Executor::Cluster(cluster) = &self.shared.executor {
            cluster
                .rescaled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn scale_error(&self, reason: String) -> Error {
        Error::Scale {
            plan: self.plan().to_string(),
            reason,
        }
    }
}
