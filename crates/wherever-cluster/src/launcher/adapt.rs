//! Adapting a launched cluster's size to its work (Dask's `cluster.adapt`): a
//! loop on a thread of its own reads the scheduler's queue every
//! [`AdaptOptions::interval`] and scales up while tasks wait (at most
//! [`AdaptOptions::max_starting`] units starting at once, so a busy batch queue is
//! not flooded), and down to what the work needs once that has been less than the
//! workers for [`AdaptOptions::idle_grace`].

use super::scale::Scaler;
use super::LaunchedCluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wherever_scheduler::reactor::ClusterStatus;

/// How [`LaunchedCluster::adapt`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptOptions {
    /// The fewest workers.
    pub minimum: usize,
    /// The most workers.
    pub maximum: usize,
    /// How often the queue is read.
    pub interval: Duration,
    /// How long the work must have needed fewer workers before workers are retired.
    pub idle_grace: Duration,
    /// The most units (a Slurm job, a process) starting at once.
    pub max_starting: usize,
}

impl AdaptOptions {
    /// Between `minimum` and `maximum` workers, reading the queue every second,
    /// retiring after 10 s with less work, at most 4 units starting at once.
    pub fn new(minimum: usize, maximum: usize) -> Self {
        AdaptOptions {
            minimum,
            maximum,
            interval: Duration::from_secs(1),
            idle_grace: Duration::from_secs(10),
            max_starting: 4,
        }
    }

    /// `Ok` if the bounds and durations make sense; else what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.minimum > self.maximum {
            return Err(format!(
                "adapt: the minimum ({}) is more than the maximum ({})",
                self.minimum, self.maximum
            ));
        }
        if self.maximum == 0 {
            return Err("adapt: the maximum is 0: no worker could ever run a task".into());
        }
        if self.interval.is_zero() {
            return Err("adapt: the interval is zero".into());
        }
        if self.max_starting == 0 {
            return Err("adapt: max_starting is 0: no worker could ever start".into());
        }
        Ok(())
    }
}

/// The workers the work in `status` needs: one slot per waiting or assigned task
/// (workers with `slots_per_worker` slots each), between the options' bounds.
pub fn wanted_workers(
    status: &ClusterStatus,
    slots_per_worker: usize,
    options: &AdaptOptions,
) -> usize {
    let tasks = status.ready + status.processing;
    tasks
        .div_ceil(slots_per_worker.max(1))
        .clamp(options.minimum, options.maximum)
}

/// A running adapt loop; dropping it does not stop it, [`Adapting::stop`] does.
pub(super) struct Adapting {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Adapting {
    /// A loop on `thread` that ends once `stop` is set and notified.
    pub(super) fn new(
        stop: Arc<(Mutex<bool>, Condvar)>,
        thread: std::thread::JoinHandle<()>,
    ) -> Self {
        Adapting {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop and waits for it.
    pub(super) fn stop(mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LaunchedCluster {
    /// Grows and shrinks the cluster with its work from now on (see the
    /// [module documentation](self)); replaces an adapt loop already running. An
    /// error for a plan whose workers are a fixed set (naming the plan) or
    /// options that make no sense.
    pub fn adapt(&self, options: AdaptOptions) -> Result<(), String> {
        self.scaler.check_can_scale("adapt")?;
        options.check()?;
        self.stop_adapting();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let cluster = self.scaler.clone();
        let stop_for_loop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wherever-adapt".into())
            .spawn(move || adapt_loop(cluster, options, stop_for_loop))
            .map_err(|e| format!("cannot start the adapt thread: {e}"))?;
        *self.adapting.lock().unwrap_or_else(|p| p.into_inner()) = Some(Adapting {
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the adapt loop, if one runs (the workers stay as they are).
    pub fn stop_adapting(&self) {
        let adapting = self
            .adapting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(adapting) = adapting {
            adapting.stop();
        }
    }
}

/// The loop behind [`LaunchedCluster::adapt`]; ends when stopped.
fn adapt_loop(cluster: Arc<Scaler>, options: AdaptOptions, stop: Arc<(Mutex<bool>, Condvar)>) {
    let logged_error = AtomicBool::new(false);
    let mut fewer_needed_since: Option<Instant> = None;
    loop {
        {
            let (stopped, wake) = &*stop;
            let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, options.interval, |stopped| !*stopped)
                .unwrap_or_else(|p| p.into_inner());
            if *guard {
                return;
            }
        }
        let outcome = cluster.control.status().and_then(|status| {
            let slots = status
                .workers
                .iter()
                .map(|w| w.slots as usize)
                .max()
                .unwrap_or(cluster.launch.threads);
            let wanted = wanted_workers(&status, slots, &options);
            let active = status.workers.iter().filter(|w| !w.retiring).count();
            if wanted >= active {
                fewer_needed_since = None;
                let cap = options
                    .max_starting
                    .saturating_sub(cluster.starting_units());
                cluster.scale_with(wanted, &status, cap, false).map(|_| ())
            } else {
                let since = *fewer_needed_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= options.idle_grace {
                    fewer_needed_since = None;
                    cluster.scale_with(wanted, &status, 0, true).map(|_| ())
                } else {
                    Ok(())
                }
            }
        });
        if let Err(error) = outcome {
            if !logged_error.swap(true, Ordering::Relaxed) {
                tracing::warn!("adapt: {error}");
            }
        }
    }
}

impl Scaler {
    /// Units the launcher is still starting (its starting workers, in whole units).
    fn starting_units(&self) -> usize {
        let launched = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        launched
            .starting()
            .div_ceil(launched.workers_per_unit().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_workers_follow_the_queue_within_the_bounds() {
        let options = AdaptOptions::new(1, 4);
        let status = |ready, processing| ClusterStatus {
            ready,
            processing,
            ..ClusterStatus::default()
        };
        assert_eq!(wanted_workers(&status(0, 0), 2, &options), 1);
        assert_eq!(wanted_workers(&status(3, 2), 2, &options), 3);
        assert_eq!(wanted_workers(&status(100, 2), 2, &options), 4);
    }

    #[test]
    fn options_that_make_no_sense_are_errors_saying_why() {
        let mut options = AdaptOptions::new(3, 2);
        assert!(options
            .check()
            .unwrap_err()
            .contains("minimum (3) is more than the maximum (2)"));
        options = AdaptOptions::new(0, 0);
        assert!(options.check().unwrap_err().contains("maximum is 0"));
        options = AdaptOptions::new(0, 2);
        options.interval = Duration::ZERO;
        assert!(options.check().unwrap_err().contains("interval is zero"));
        options = AdaptOptions::new(0, 2);
        options.max_starting = 0;
        assert!(options.check().unwrap_err().contains("max_starting is 0"));
        assert!(AdaptOptions::new(1, 2).check().is_ok());
    }
}
