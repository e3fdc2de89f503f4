//! Per-task options (Dask's `submit(..., retries=, priority=)`, Ray's `.options(...)`):
//! [`Client::options`] gives an [`Options`] builder whose calls carry them.

use crate::client::{Client, DEFAULT_RETRIES};
use crate::{Error, TaskError, TaskErrorKind};
use std::sync::Arc;
use std::time::Duration;
use wherever_cluster::Resources;

/// The options a client's calls carry (all default: [`DEFAULT_RETRIES`], priority 0,
/// no name).
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskOptions {
    /// How often a task is rerun after its worker died; `None` for the default.
    pub(crate) retries: Option<u32>,
    /// Among ready tasks, higher runs first.
    pub(crate) priority: i64,
    /// A name shown in errors next to the task function's name.
    pub(crate) name: Option<Arc<str>>,
    /// How long a task may run before its future fails.
    pub(crate) timeout: Option<Duration>,
    /// What a task holds on its worker while it runs there (cluster plans only).
    pub(crate) resources: Resources,
}

impl TaskOptions {
    /// The retry budget to send with a task.
    pub(crate) fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    /// The error of a task that had not finished within its timeout.
    pub(crate) fn timed_out(&self, name: &str, position: u64, remote: bool) -> TaskError {
        let timeout = self.timeout.unwrap_or_default();
        let message = if remote {
            format!(
                "not done within its timeout of {:.3} s from submission; cancelled",
                timeout.as_secs_f64()
            )
        } else {
            format!(
                "not done within its timeout of {:.3} s; the thread running it goes on \
                 (a thread cannot be stopped), its result is dropped",
                timeout.as_secs_f64()
            )
        };
        self.label(TaskError::new(
            name,
            position,
            TaskErrorKind::TimedOut,
            message,
        ))
    }

    /// `error` naming the task by its name option too (`fit [model 7]`), once.
    pub(crate) fn label(&self, mut error: TaskError) -> TaskError {
        if let Some(name) = &self.name {
            let suffix = format!(" [{name}]");
            if !error.task.ends_with(&suffix) {
                error.task.push_str(&suffix);
            }
        }
        error
    }
}

/// A client whose calls carry per-task options, from [`Client::options`]. It
/// dereferences to a [`Client`], so `submit`, `map`, `map_results`, `scatter`, and
/// `compute(&options, …)` work on it as on any client (same workers, same seed, same
/// positions) and every call made through it carries the options.
///
/// What each option does under each plan:
///
/// | option | `processes:N`, `tcp://` | `threads:N` | `sequential` |
/// |---|---|---|---|
/// | [`retries`](Options::retries) | reruns after the worker died, at most this often | no effect: a thread pool loses no workers | no effect |
/// | [`priority`](Options::priority) | the scheduler starts ready tasks with higher priority first | no effect: the pool's queue is first in, first out | no effect: each task runs when submitted |
/// | [`name`](Options::name) | shown in the task's errors | shown in errors | shown in errors |
/// | [`timeout`](Options::timeout) | from submission; the task is cancelled, and a worker still running it after a grace period restarts | from the start; the thread runs on | from the start; fails the future once the task returns |
/// | [`resources`](Options::resources) | runs only on a worker with these amounts free, holding them meanwhile; fails at once if no connected worker has them | ignored | ignored |
///
/// ```
/// use wherever::prelude::*;
///
/// #[wherever::task]
/// fn fit(model: u32) -> u32 {
///     if model == 7 { panic!("diverged") } else { model }
/// }
///
/// let client = Plan::parse("threads:2")?.start()?;
/// let careful = client.options().retries(5).priority(10).name("model 7");
/// let error = careful.submit(fit, 7).value().unwrap_err();
/// assert!(error.to_string().contains("fit [model 7]"), "{error}");
/// assert_eq!(careful.map(fit, 0..3u32)?, vec![0, 1, 2]);
/// # Ok::<(), wherever::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    client: Client,
}

impl Client {
    /// A builder of per-task options for the calls made through it (this client's
    /// own calls keep theirs). See [`Options`].
    pub fn options(&self) -> Options {
        Options {
            client: self.clone(),
        }
    }
}

impl Options {
    /// How often a task is rerun after the worker running it died (default
    /// [`DEFAULT_RETRIES`]); past that its future fails with
    /// [`crate::TaskErrorKind::WorkerLost`]. `0` fails it at the first loss.
    pub fn retries(mut self, retries: u32) -> Self {
        self.client.options.retries = Some(retries);
        self
    }

    /// The scheduler's priority: among tasks ready to run, higher runs first
    /// (default 0; negative values run after the default).
    pub fn priority(mut self, priority: i64) -> Self {
        self.client.options.priority = priority;
        self
    }

    /// A name for the tasks, shown in their errors after the function's name
    /// (`task `fit [model 7]` #3 panicked`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.client.options.name = Some(Arc::from(name.into()));
        self
    }

    /// How long a task may take before its future fails with
    /// [`TaskErrorKind::TimedOut`](crate::TaskErrorKind::TimedOut), naming the timeout.
    /// On local plans the clock starts when the task starts; the thread running it
    /// cannot be stopped and runs on (its result is dropped). On `processes:N` and
    /// `tcp://` plans the clock starts at submission and the task is cancelled; a
    /// worker still running the task when its timeout plus a grace period
    /// (`WHEREVER_TIMEOUT_GRACE` seconds on the worker, default 5) have passed since
    /// the task started exits, so that a thread that does not stop cannot hold a
    /// slot for ever: the `processes:N` launcher starts another worker, the exited
    /// worker's other tasks run again elsewhere (as when a worker dies) and its
    /// held results are recomputed. A `tcp://` worker that exits this way needs a
    /// supervisor (systemd, Slurm) to come back.
    /// `map` on local plans ignores it: its chunks write their results in place,
    /// so it waits for them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn spin(_x: u64) -> u64 {
    ///     loop {
    ///         std::hint::spin_loop();
    ///     }
    /// }
    ///
    /// #[wherever::main]
    /// fn main() -> wherever::Result<()> {
    ///     let client = Plan::parse("processes:2")?.start()?;
    ///     let stuck = client.options().timeout(Duration::from_secs(1)).submit(spin, 0);
    ///     let error = stuck.value().unwrap_err();
    ///     assert_eq!(error.kind, wherever::TaskErrorKind::TimedOut);
    ///     // Its worker exits after the grace period and is replaced; other tasks run on.
    ///     Ok(())
    /// }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.options.timeout = Some(timeout);
        self
    }

    /// The resources each task holds on its worker while it runs there, as
    /// `NAME=AMOUNT` items separated by commas (Dask's `submit(..., resources={"GPU": 1})`):
    /// `"gpu=1,mem=2GB"`. Amounts are numbers (`1`, `0.5`) with an optional byte unit
    /// (`4GB` = 4·10⁹, `512MiB` = 512·2²⁰). Replaces resources set before.
    ///
    /// Workers advertise theirs with `WHEREVER_WORKER_RESOURCES=gpu=2,mem=16GB` in
    /// their environment or `wherever worker --resources gpu=2,mem=16GB`; every worker
    /// has `cpus` (its task threads unless it says otherwise). Tasks that ask for
    /// nothing hold nothing. On `processes:N` and `tcp://` plans a task runs only on
    /// a worker whose free amounts cover its request, and holds them from assignment
    /// until it ends, so several tasks share a worker up to its totals; it is never
    /// moved to a worker lacking them. A task that no worker connected at
    /// submission could ever fit fails at once with an error naming the resource and
    /// the most any worker has (Dask would wait for ever). The check is made once,
    /// at submission, against the workers connected then: a task submitted while no
    /// worker is connected waits until one that fits joins (workers joining later
    /// that do not fit do not fail it), and so does a task whose fitting workers all
    /// left. Local plans (`sequential`, `threads:N`) ignore resources: they have one
    /// machine.
    ///
    /// A malformed string is an [`Error::Resources`] saying what is wrong.
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn train(model: u32) -> u32 {
    ///     model * 10
    /// }
    ///
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let on_gpu = client.options().resources("gpu=1,mem=2GB")?;
    /// assert_eq!(on_gpu.submit(train, 4).value()?, 40);
    /// assert!(client.options().resources("gpu=one").is_err());
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn resources(mut self, resources: &str) -> Result<Self, Error> {
        self.client.options.resources = Resources::parse(resources)?;
        Ok(self)
    }

    /// Adds one resource to those each task holds (see [`Options::resources`]):
    /// `.resource("gpu", 1.0).resource("mem", 2e9)`. A zero amount removes it.
    ///
    /// # Panics
    ///
    /// If `name` is not a resource name (a letter, then letters, digits, `_`, `-`
    /// or `.`) or `amount` is negative, not finite or above 10¹⁵: these are
    /// mistakes in the program, as `Duration::from_secs_f64(-1.0)` is.
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// let client = Plan::parse("sequential")?.start()?;
    /// let big = client.options().resource("gpu", 1.0).resource("mem", 4e9);
    /// # let _ = big;
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        let resources = std::mem::take(&mut self.client.options.resources);
        self.client.options.resources = resources
            .with(name, amount)
            .unwrap_or_else(|error| panic!("Options::resource: {error}"));
        self
    }

    /// The client carrying these options, to keep or pass on.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl std::ops::Deref for Options {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskErrorKind;

    #[test]
    fn defaults_keep_the_default_retries_and_no_name() {
        let options = TaskOptions::default();
        assert_eq!(options.retries(), DEFAULT_RETRIES);
        assert_eq!(options.priority, 0);
        let error = TaskError::new("fit", 0, TaskErrorKind::Failed, "no");
        assert_eq!(options.label(error).task, "fit");
    }

    #[test]
    fn resources_parse_into_the_options_and_malformed_ones_say_why() {
        let client = crate::Plan::parse("sequential").unwrap().start().unwrap();
        let options = client.options().resources("gpu=1, mem=2GB").unwrap();
        assert_eq!(options.options.resources.get("gpu"), 1.0);
        assert_eq!(options.options.resources.get("mem"), 2e9);
        let typed = client.options().resource("gpu", 1.0).resource("mem", 2e9);
        assert_eq!(typed.options.resources, options.options.resources);
        let error = client.options().resources("gpu=1,mem").unwrap_err();
        assert!(
            error.to_string().contains("`mem` is not NAME=AMOUNT"),
            "{error}"
        );
        assert!(matches!(error, Error::Resources(_)));
    }

    #[test]
    #[should_panic(expected = "Options::resource: `gpu`: -1 is not a non-negative amount")]
    fn a_negative_typed_resource_panics_with_a_clear_message() {
        let client = crate::Plan::parse("sequential").unwrap().start().unwrap();
        let _ = client.options().resource("gpu", -1.0);
    }

    #[test]
    fn a_name_is_added_to_the_error_once() {
        let options = TaskOptions {
            name: Some(Arc::from("model 7")),
            ..TaskOptions::default()
        };
        let error = TaskError::new("fit", 0, TaskErrorKind::Failed, "no");
        let error = options.label(options.label(error));
        assert_eq!(error.task, "fit [model 7]");
    }
}
