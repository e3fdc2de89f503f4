//! Waiting for a cluster's workers (Dask's `Client.wait_for_workers`).

use crate::client::{Client, Executor};
use crate::Error;
use std::time::{Duration, Instant};

impl Client {
    /// Waits until at least `count` workers are connected (at most `timeout`), and
    /// returns how many are. Useful with `tcp://` plans, where workers join a
    /// running scheduler when they are ready; under `processes:N` the plan's
    /// workers are counted as soon as they joined. Local plans (`sequential`,
    /// `threads:N`) have their workers from the start: it returns at once.
    ///
    /// Fails with [`Error::Workers`] if fewer are connected when `timeout` passed
    /// (or the connection to the scheduler closed), or at once when a local plan has
    /// fewer workers than `count`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wherever::prelude::*;
    ///
    /// let client = Plan::parse("threads:2")?.start()?;
    /// assert_eq!(client.wait_for_workers(2, Duration::from_secs(60))?, 2);
    /// assert!(client.wait_for_workers(3, Duration::from_secs(60)).is_err());
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn wait_for_workers(&self, count: usize, timeout: Duration) -> Result<usize, Error> {
        let started = Instant::now();
        let (connected, waited) = match &self.shared.executor {
            Executor::Cluster(cluster) => {
                let wanted = u32::try_from(count).unwrap_or(u32::MAX);
                let connected = cluster.client.wait_for_workers(wanted, timeout) as usize;
                (connected, started.elapsed())
            }
            _ => (self.workers(), Duration::ZERO),
        };
        if connected >= count {
            return Ok(connected);
        }
        Err(Error::Workers {
            wanted: count,
            connected,
            waited_ms: waited.as_millis() as u64,
        })
    }
}
