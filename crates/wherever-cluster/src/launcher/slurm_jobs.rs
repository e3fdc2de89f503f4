//! The `slurm:jobs=N,...` launcher (dask-jobqueue's model): it submits N batch
//! jobs whose Slurm tasks are workers that connect back to this process's
//! scheduler, and more on [`LaunchedWorkers::add`] (a job is a scaling unit and
//! its id the workers' group).
//!
//! - **Script.** [`job_script`](super::slurm_script::job_script) gives the text, the
//!   same for every run; `sbatch` gets it on standard input, with the scheduler's
//!   address ([`WORKER_VARIABLE`]) and the secret file ([`SECRET_FILE_VARIABLE`])
//!   in its environment and `--export=ALL`.
//! - **Run directory.** `.wherever-jobs-PID-N/` in the submission directory (or in
//!   `WHEREVER_SLURM_DIR`), on the file system jobs share with the client: mode
//!   0700, with the secret file (0600) and one output file per job (`JOBID.out`).
//!   When the cluster ends, the secret and empty output files are removed, and so
//!   is the output of a job this client cancelled when it holds only Slurm's own
//!   cancellation lines (`srun: ...`, `slurmstepd...`); the directory goes if
//!   nothing is left in it. Any other output stays for the user to read.
//! - **Failures.** sbatch refusing a job is an error quoting sbatch. A job that
//!   ends before its workers connected is an error with the tail of its output.
//! - **End.** The workers are told goodbye and their jobs end by themselves; what is
//!   still queued after a short wait is `scancel`led, and stopping waits until
//!   `squeue` lists none of the jobs. Every submitted job is in the process-wide
//!   registry of [`super::slurm_cancel`], cancelled on SIGINT, SIGTERM and SIGHUP.

use super::slurm_cancel;
use super::slurm_script::{job_script, RUN_DIR_VARIABLE};
use super::slurm_spec::SlurmJobsSpec;
use super::{BindScope, LaunchStatus, LaunchedWorkers, Launcher, WorkerLaunch, WORKER_VARIABLE};
use crate::auth::{Secret, SECRET_FILE_VARIABLE};
use crate::worker::{MEMORY_LIMIT_VARIABLE, MEMORY_SHARE_VARIABLE};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable naming the directory (shared with the compute nodes)
/// where run directories go; default: the current directory.
pub const SLURM_DIR_VARIABLE: &str = "WHEREVER_SLURM_DIR";

/// How long one `sbatch`, `squeue` or `scancel` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long stopping lets jobs end by themselves after the goodbye.
const QUIET_END_WAIT: Duration = Duration::from_secs(3);

/// How long stopping waits for cancelled jobs to leave the queue (Slurm's
/// `KillWait` is 30 s by default).
const STOP_WAIT: Duration = Duration::from_secs(90);

/// How long a job whose workers all left may take to end by itself before it is
/// cancelled.
const LEAVE_GRACE: Duration = Duration::from_secs(5);

/// How often job states are read from `squeue` at most.
const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The most bytes of a failed job's output an error quotes.
const OUTPUT_TAIL: usize = 2000;

/// Job states in which a job may still run workers.
const ACTIVE_STATES: &[&str] = &[
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
];

/// Job states in which a job's workers have not started yet.
const WAITING_STATES: &[&str] = &[
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
];

/// `slurm:jobs=N,...`: see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct SlurmJobsLauncher {
    spec: SlurmJobsSpec,
}

impl SlurmJobsLauncher {
    /// The launcher for a checked plan level.
    pub fn new(spec: SlurmJobsSpec) -> Self {
        SlurmJobsLauncher { spec }
    }

    /// The plan level it serves.
    pub fn spec(&self) -> &SlurmJobsSpec {
        &self.spec
    }

    /// The batch script every job of this launcher gets when `executable` is the
    /// worker program (this program, by absolute path).
    pub fn job_script(&self, executable: &Path) -> Result<String, String> {
        job_script(&self.spec, executable)
    }
}

impl Launcher for SlurmJobsLauncher {
    fn describe(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.spec.is_per_task() {
            return format!(
                "slurm:per-task (one job per task, at most {} queued)",
                self.spec.max_pending()
            );
        }
        let (jobs, workers) = (self.spec.jobs(), self.spec.workers_per_job());
        format!(
            "slurm:jobs ({jobs} job{} of {workers} worker{})",
            plural(jobs),
            plural(workers)
        )
    }

    fn bind_scope(&self) -> BindScope {
        BindScope::Routable
    }

    fn workers(&self) -> usize {
        self.spec.jobs() * self.spec.workers_per_job()
    }

    fn peer_hint(&self) -> Option<String> {
        partition_node_address(self.spec.option("partition"))
    }

    fn per_task_max_pending(&self) -> Option<usize> {
        self.spec.is_per_task().then(|| self.spec.max_pending())
    }

    fn launch(
        &self,
        launch: &WorkerLaunch,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        let script = self.job_script(&launch.executable)?;
        let run_dir = make_run_dir()?;
        let secret_file = run_dir.join("secret");
        let secret = Secret::from_hex(&launch.secret_hex, "the cluster secret")
            .map_err(|e| e.to_string())?;
        let mut jobs = SlurmJobs {
            spec: self.spec.clone(),
            script,
            run_dir,
            secret_file,
            ids: Vec::new(),
            states: Mutex::new(States::default()),
            cancelled: Vec::new(),
            seen: None,
            leaving: Vec::new(),
            named: HashSet::new(),
            submitted: HashSet::new(),
            stopped: false,
        };
        secret.write_new_file(&jobs.secret_file).map_err(|e| {
            jobs.stop();
            format!("cannot write the secret file for the jobs: {e}")
        })?;
        if self.spec.is_per_task() {
            if let Err(error) = jobs.check_submittable(launch) {
                jobs.stop();
                return Err(error);
            }
        }
        if let Err(error) = jobs.add(self.spec.jobs(), launch) {
            jobs.stop();
            return Err(error);
        }
        Ok(Box::new(jobs))
    }
}

/// The last states read from `squeue`.
#[derive(Default)]
struct States {
    read_at: Option<Instant>,
    by_job: HashMap<String, String>,
}

/// The jobs a [`SlurmJobsLauncher`] submitted.
struct SlurmJobs {
    spec: SlurmJobsSpec,
    script: String,
    run_dir: PathBuf,
    secret_file: PathBuf,
    /// Jobs submitted and not yet released by `left` or `stop`, in order.
    ids: Vec<String>,
    states: Mutex<States>,
    /// Jobs this client cancelled itself (their output is Slurm's notice).
    cancelled: Vec<String>,
    /// The jobs whose workers have connected, once [`LaunchedWorkers::connected`]
    /// has been called (`None` before: `starting` then goes by queue states).
    seen: Option<HashSet<String>>,
    /// Threads cancelling jobs whose workers left, if they do not end by themselves.
    leaving: Vec<std::thread::JoinHandle<()>>,
    /// Per-task jobs already named after their task.
    named: HashSet<String>,
    /// Every job submitted (per-task jobs are named after their task even when
    /// their worker has left).
    submitted: HashSet<String>,
    stopped: bool,
}

impl SlurmJobs {
    /// Submits one job; its id.
    fn submit(&self, launch: &WorkerLaunch) -> Result<String, String> {
        let mut command = self.sbatch(launch);
        let output = run(&mut command, Some(&self.script), "sbatch")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "sbatch refused the job: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let id = stdout.trim().split(';').next().unwrap_or_default().trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "sbatch printed no job id: {:?} {}",
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(id.to_string())
    }

    /// Asks `sbatch --test-only` whether Slurm would take a job (a per-task plan
    /// submits none at start: a bad partition, account or memory request is
    /// sbatch's message at start, not a task that waits forever).
    fn check_submittable(&self, launch: &WorkerLaunch) -> Result<(), String> {
        let mut command = self.sbatch(launch);
        command.arg("--test-only");
        let output = run(&mut command, Some(&self.script), "sbatch --test-only")?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }

    /// The `sbatch` command that submits one job (the script on its input).
    fn sbatch(&self, launch: &WorkerLaunch) -> Command {
        let mut command = Command::new("sbatch");
        command
            .arg("--parsable")
            .arg("--export=ALL")
            .arg(format!(
                "--output={}",
                self.run_dir.join("%j.out").display()
            ))
            .env(WORKER_VARIABLE, format!("tcp://{}", launch.scheduler))
            .env(SECRET_FILE_VARIABLE, &self.secret_file)
            .env(RUN_DIR_VARIABLE, &self.run_dir)
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // The job's `mem`, shared by its workers on a node, is each worker's limit
        // (spilling, pausing and exiting by it), unless the caller set one. Without
        // `mem`, each worker divides its node's memory by the workers on that node.
        let set = |name: &str| launch.env.iter().any(|(k, _)| k == name);
        if !set(MEMORY_LIMIT_VARIABLE) && !set(MEMORY_SHARE_VARIABLE) {
            match self.spec.worker_memory_limit() {
                Some(limit) => command.env(MEMORY_LIMIT_VARIABLE, limit.to_string()),
                None => command.env(
                    MEMORY_SHARE_VARIABLE,
                    self.spec.workers_per_node().to_string(),
                ),
            };
        }
        command
    }

    /// The jobs' states, read again from `squeue` when older than `max_age`.
    fn states(&self, max_age: Duration) -> HashMap<String, String> {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if states.read_at.is_none_or(|at| at.elapsed() >= max_age) {
            states.by_job = job_states(&self.ids);
            states.read_at = Some(Instant::now());
        }
        states.by_job.clone()
    }

    /// The jobs `squeue` still lists as active, read now.
    fn active(&self) -> Vec<String> {
        let states = self.states(Duration::ZERO);
        self.ids
            .iter()
            .filter(|id| {
                states
                    .get(*id)
                    .is_some_and(|s| ACTIVE_STATES.contains(&s.as_str()))
            })
            .cloned()
            .collect()
    }

    /// The end of job `id`'s output file.
    fn output_tail(&self, id: &str) -> String {
        let path = self.run_dir.join(format!("{id}.out"));
        match std::fs::read(&path) {
            Ok(bytes) if bytes.is_empty() => format!("its output file {} is empty", path.display()),
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(OUTPUT_TAIL);
                format!(
                    "the end of its output file {}:\n{}",
                    path.display(),
                    String::from_utf8_lossy(&bytes[start..]).trim_end()
                )
            }
            Err(error) => format!("its output file {} cannot be read: {error}", path.display()),
        }
    }

    /// Removes the secret, empty output files and, if then empty, the run directory.
    fn clean_up(&self) {
        let _ = std::fs::remove_file(&self.secret_file);
        if let Ok(entries) = std::fs::read_dir(&self.run_dir) {
            for entry in entries.flatten() {
                let name_file = entry.file_name().to_string_lossy().ends_with(".task");
                if name_file || entry.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for id in &self.cancelled {
            let path = self.run_dir.join(format!("{id}.out"));
            let only_slurm = std::fs::read_to_string(&path).is_ok_and(|text| {
                text.lines()
                    .all(|line| line.starts_with("srun:") || line.starts_with("slurmstepd"))
            });
            if only_slurm {
                let _ = std::fs::remove_file(&path);
            }
        }
        let _ = std::fs::remove_dir(&self.run_dir);
    }
}

impl LaunchedWorkers for SlurmJobs {
    fn poll(&mut self) -> LaunchStatus {
        let states = self.states(REFRESH_EVERY);
        for id in &self.ids {
            match states.get(id) {
                Some(state) if ACTIVE_STATES.contains(&state.as_str()) => {}
                // Submitted a moment ago, not listed yet.
                None if states.is_empty() => {}
                state => {
                    let state = state.map_or("gone from the queue", String::as_str);
                    return LaunchStatus::Failed(format!(
                        "Slurm job {id} ended ({state}) before its workers connected to the \
                         scheduler; {}",
                        self.output_tail(id)
                    ));
                }
            }
        }
        LaunchStatus::Running
    }

    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        for handle in self.leaving.drain(..) {
            let _ = handle.join();
        }
        // Jobs still queued have no worker to say goodbye to: cancel them now.
        let states = self.states(Duration::ZERO);
        let waiting: Vec<String> = self
            .ids
            .iter()
            .filter(|id| {
                states
                    .get(*id)
                    .is_some_and(|s| WAITING_STATES.contains(&s.as_str()))
            })
            .cloned()
            .collect();
        if let Err(error) = slurm_cancel::scancel(&waiting) {
            tracing::warn!("{error}");
        }
        self.cancelled.extend(waiting);
        let deadline = Instant::now() + QUIET_END_WAIT;
        let mut active = self.active();
        while !active.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            active = self.active();
        }
        if !active.is_empty() {
            if let Err(error) = slurm_cancel::scancel(&active) {
                tracing::warn!("{error}");
            }
            self.cancelled.extend(active.iter().cloned());
            let deadline = Instant::now() + STOP_WAIT;
            while !active.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                active = self.active();
            }
            if !active.is_empty() {
                tracing::warn!(
                    "Slurm jobs {} are still listed {STOP_WAIT:?} after scancel",
                    active.join(", ")
                );
            }
        }
        for id in self.ids.drain(..) {
            slurm_cancel::unregister(&id);
        }
        self.clean_up();
    }

    /// A per-task plan starts its jobs by itself (one per task): not by `scale`
    /// or `adapt`.
    fn can_scale(&self) -> bool {
        !self.spec.is_per_task()
    }

    /// Names a per-task job `JOB-NAME-TASK-POSITION` after the task its worker
    /// took, once: writes `RUN-DIR/JOBID.task`, which the job's script reads when
    /// its worker has ended and takes as its name (`scontrol update`) while it
    /// still runs. A failure is logged, not an error.
    fn task_placed(&mut self, group: &str, tasks: &[(String, u64)]) {
        if !self.spec.is_per_task() || self.named.contains(group) {
            return;
        }
        // Its worker may have left already (a task done in a moment).
        let Some(id) = self.submitted.get(group).cloned() else {
            return;
        };
        let Some((task, position)) = tasks.first() else {
            return;
        };
        self.named.insert(id.clone());
        let name = per_task_job_name(self.spec.job_name(), task, *position);
        let path = self.run_dir.join(format!("{id}.task"));
        let partial = self.run_dir.join(format!("{id}.task.partial"));
        let written = std::fs::write(&partial, format!("{name}\n"))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(error) = written {
            tracing::warn!(
                "cannot name Slurm job {id} `{name}` ({}): {error}",
                path.display()
            );
        }
    }

    fn workers_per_unit(&self) -> usize {
        self.spec.workers_per_job()
    }

    fn add(&mut self, units: usize, launch: &WorkerLaunch) -> Result<(), String> {
        if self.stopped {
            return Err("the cluster has ended: no more jobs are submitted".to_string());
        }
        for _ in 0..units {
            let id = self.submit(launch)?;
            slurm_cancel::register(&id);
            self.submitted.insert(id.clone());
            self.ids.push(id);
        }
        // The next look at the queue includes the new jobs.
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .read_at = None;
        Ok(())
    }

    /// The workers of jobs still queued, and (once [`LaunchedWorkers::connected`]
    /// has told which jobs connected) of running jobs none of whose workers has
    /// connected yet; a job that ended is not starting.
    fn starting(&self) -> usize {
        let states = self.states(Duration::from_secs(1));
        let waiting = self
            .ids
            .iter()
            .filter(|id| match (states.get(*id), &self.seen) {
                // Reported connected: never starting, whatever a queue state read
                // a moment before said.
                (_, Some(seen)) if seen.contains(*id) => false,
                // Slurm forgot it (it ended long ago) or squeue failed.
                (None, _) => false,
                (Some(state), _) if WAITING_STATES.contains(&state.as_str()) => true,
                (Some(state), Some(_)) => ACTIVE_STATES.contains(&state.as_str()),
                (Some(_), None) => false,
            })
            .count();
        waiting * self.spec.workers_per_job()
    }

    /// Cancels the newest jobs still queued (none of their workers can have
    /// connected), at most `units`.
    fn cancel_starting(&mut self, units: usize) -> usize {
        let states = self.states(Duration::ZERO);
        let queued: Vec<String> = self
            .ids
            .iter()
            .rev()
            .filter(|id| {
                states
                    .get(*id)
                    .is_some_and(|s| WAITING_STATES.contains(&s.as_str()))
                    && !self.seen.as_ref().is_some_and(|seen| seen.contains(*id))
            })
            .take(units)
            .cloned()
            .collect();
        if queued.is_empty() {
            return 0;
        }
        if let Err(error) = slurm_cancel::scancel(&queued) {
            tracing::warn!("{error}");
            return 0;
        }
        self.ids.retain(|id| !queued.contains(id));
        for id in &queued {
            slurm_cancel::unregister(id);
        }
        self.cancelled.extend(queued.iter().cloned());
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .read_at = None;
        queued.len() * self.spec.workers_per_job()
    }

    fn connected(&mut self, groups: &[String]) {
        let seen = self.seen.get_or_insert_with(HashSet::new);
        for group in groups {
            if self.ids.contains(group) {
                seen.insert(group.clone());
            }
        }
    }

    /// The jobs' workers have left: a job normally ends by itself a moment later
    /// (its `srun` ends with its last worker); one still listed after
    /// [`LEAVE_GRACE`] is cancelled, on a thread of its own (stopping waits for it).
    fn left(&mut self, groups: &[String]) {
        let ours: Vec<String> = self
            .ids
            .iter()
            .filter(|id| groups.contains(id))
            .cloned()
            .collect();
        if ours.is_empty() {
            return;
        }
        self.ids.retain(|id| !ours.contains(id));
        // Slurm's own notice is all a cancelled job's output would hold.
        self.cancelled.extend(ours.iter().cloned());
        let leaving = ours.clone();
        match std::thread::Builder::new()
            .name("wherever-slurm-left".into())
            .spawn(move || cancel_unless_ended(&leaving, LEAVE_GRACE))
        {
            Ok(handle) => self.leaving.push(handle),
            Err(_) => cancel_unless_ended(&ours, Duration::ZERO),
        }
    }
}

impl Drop for SlurmJobs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The name of a per-task job whose worker took task `task` (its registered
/// name) at `position` in its client's submission order: `BASE-TASK-POSITION`,
/// with characters Slurm or a shell would trip on replaced by `_`.
fn per_task_job_name(base: &str, task: &str, position: u64) -> String {
    let task: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{base}-{task}-{position}")
}

/// Waits up to `grace` for `ids` to leave Slurm's active states, `scancel`s those
/// still active then, and takes them out of the process's registry.
fn cancel_unless_ended(ids: &[String], grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        let states = job_states(ids);
        let active: Vec<String> = ids
            .iter()
            .filter(|id| {
                states
                    .get(*id)
                    .is_some_and(|s| ACTIVE_STATES.contains(&s.as_str()))
            })
            .cloned()
            .collect();
        if active.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if let Err(error) = slurm_cancel::scancel(&active) {
                tracing::warn!("{error}");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in ids {
        slurm_cancel::unregister(id);
    }
}

/// Runs `command` (with `stdin` as its standard input) for at most
/// [`COMMAND_TIMEOUT`]; an error names `what` when it cannot run or hangs.
fn run(command: &mut Command, stdin: Option<&str>, what: &str) -> Result<Output, String> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{what}` (is Slurm installed here?): {e}"))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        let _ = input.write_all(text.as_bytes());
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{what}` did not answer within {COMMAND_TIMEOUT:?} (is slurmctld up?)"
                ));
            }
        }
    }
    child
        .wait_with_output()
        .map_err(|e| format!("cannot read `{what}`'s output: {e}"))
}

/// `squeue`'s state of each of `ids` it still knows (ended jobs stay listed for
/// Slurm's `MinJobAge`); a job it does not know is missing from the map.
fn job_states(ids: &[String]) -> HashMap<String, String> {
    let mut states = HashMap::new();
    if ids.is_empty() {
        return states;
    }
    let query = |ids: &str| {
        run(
            Command::new("squeue").args(["-h", "-t", "all", "-o", "%i %T", "-j", ids]),
            None,
            "squeue",
        )
    };
    let parse = |output: &Output, states: &mut HashMap<String, String>| {
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some((id, state)) = line.trim().split_once(' ') {
                states.insert(id.to_string(), state.trim().to_string());
            }
        }
    };
    match query(&ids.join(",")) {
        Ok(output) if output.status.success() => parse(&output, &mut states),
        // One unknown id fails the whole query: ask job by job.
        _ => {
            for id in ids {
                if let Ok(output) = query(id) {
                    parse(&output, &mut states);
                }
            }
        }
    }
    states
}

/// A new private run directory: see the [module documentation](self).
fn make_run_dir() -> Result<PathBuf, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = match std::env::var_os(SLURM_DIR_VARIABLE) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?,
    };
    let dir = base.join(format!(
        ".wherever-jobs-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| {
        format!(
            "cannot make the jobs' directory {} (jobs need a directory on a file system \
             they share with this program; set {SLURM_DIR_VARIABLE}): {e}",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// The address (`NodeAddr`) of a node of `partition` (else of the default
/// partition), for the scheduler to advertise the local address that routes there.
fn partition_node_address(partition: Option<&str>) -> Option<String> {
    let output = run(
        Command::new("sinfo").args(["-h", "-N", "-o", "%P %o"]),
        None,
        "sinfo",
    )
    .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.lines().find_map(|line| {
        let (name, address) = line.trim().split_once(' ')?;
        let matches = match partition {
            Some(partition) => name.trim_end_matches('*') == partition,
            None => name.ends_with('*'),
        };
        matches.then(|| address.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_slurm_command_is_a_clear_error() {
        let error = run(
            &mut Command::new("/no/such/sbatch"),
            Some("#!/bin/sh\n"),
            "sbatch",
        )
        .unwrap_err();
        assert!(
            error.starts_with("cannot run `sbatch` (is Slurm installed here?)"),
            "{error}"
        );
    }

    /// Jobs with these cached queue states, read just now (no squeue is asked
    /// within the cache's age), and already stopped (dropping it asks nothing).
    fn jobs_in_states(states: &[(&str, &str)], workers_per_job: &str) -> SlurmJobs {
        let options = [
            ("jobs".to_string(), "1".to_string()),
            ("workers-per-job".to_string(), workers_per_job.to_string()),
        ];
        SlurmJobs {
            spec: SlurmJobsSpec::from_options(&options).unwrap(),
            script: String::new(),
            run_dir: PathBuf::from("/nonexistent"),
            secret_file: PathBuf::from("/nonexistent/secret"),
            ids: states.iter().map(|(id, _)| id.to_string()).collect(),
            states: Mutex::new(States {
                read_at: Some(Instant::now()),
                by_job: states
                    .iter()
                    .map(|(id, state)| (id.to_string(), state.to_string()))
                    .collect(),
            }),
            cancelled: Vec::new(),
            seen: None,
            leaving: Vec::new(),
            named: HashSet::new(),
            submitted: HashSet::new(),
            stopped: true,
        }
    }

    #[test]
    fn a_job_reported_connected_is_not_starting_whatever_an_older_state_says() {
        let mut jobs = jobs_in_states(&[("1", "PENDING"), ("2", "RUNNING"), ("3", "PENDING")], "2");
        // Before any report: queued jobs are starting, running ones are not.
        assert_eq!(jobs.starting(), 4);
        // The state of job 1 was read before its workers connected.
        jobs.connected(&["1".to_string(), "not-ours".to_string()]);
        assert_eq!(
            jobs.starting(),
            2 + 2,
            "job 2 runs unreported, job 3 is queued"
        );
        jobs.connected(&["1".to_string(), "2".to_string()]);
        assert_eq!(jobs.starting(), 2, "only the queued job 3");
    }

    #[test]
    fn ended_or_forgotten_jobs_are_not_starting() {
        let mut jobs = jobs_in_states(&[("1", "FAILED"), ("2", "CANCELLED")], "1");
        jobs.ids.push("3".to_string());
        jobs.connected(&[]);
        assert_eq!(jobs.starting(), 0);
    }

    #[test]
    fn a_per_task_job_is_named_after_its_task_and_position() {
        assert_eq!(
            per_task_job_name("wherever", "calc_mean", 3),
            "wherever-calc_mean-3"
        );
        assert_eq!(
            per_task_job_name("study", "my::mod task", 0),
            "study-my__mod_task-0"
        );
    }

    #[test]
    fn job_states_of_no_jobs_asks_nobody() {
        assert!(job_states(&[]).is_empty());
    }
}
