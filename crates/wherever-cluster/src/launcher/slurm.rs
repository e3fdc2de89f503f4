//! The `slurm` launcher, inside an allocation (`sbatch`/`salloc`, `SLURM_JOB_ID`
//! set): one `srun` step runs one worker per allocated task (as `srun dask-worker`
//! does), each with `SLURM_CPUS_PER_TASK` task threads. The secret reaches every
//! task on its standard input (`srun --input=all` broadcasts srun's standard input
//! to all tasks); stopping cancels the step (SIGTERM to `srun`, which cancels its
//! tasks) and waits until `srun` is gone.

use super::{BindScope, LaunchStatus, LaunchedWorkers, Launcher, WorkerLaunch, WORKER_VARIABLE};
use crate::auth::SECRET_STDIN_VARIABLE;
use crate::worker::{
    DEATH_TIMEOUT_VARIABLE, MEMORY_LIMIT_VARIABLE, MEMORY_SHARE_VARIABLE, THREADS_VARIABLE,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Each worker's memory setting, `(VARIABLE, VALUE)`: the node's memory of the step
/// (the plan's `mem`) or of the allocation (`SLURM_MEM_PER_NODE`, set by `--mem`)
/// divided by the workers on a node, as [`MEMORY_LIMIT_VARIABLE`]; without either,
/// how many workers share a node, as [`MEMORY_SHARE_VARIABLE`] (each worker then
/// divides its node's memory). Workers on a node: `ntasks-per-node`, else the
/// tasks spread over the nodes (`nodes`, else `SLURM_NNODES`, else 1), rounded up.
fn worker_memory(
    env: &dyn Fn(&str) -> Option<String>,
    option: &dyn Fn(&str) -> Option<String>,
    tasks: usize,
) -> (String, String) {
    let number = |text: Option<String>| {
        text.and_then(|t| t.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
    };
    let nodes = number(option("nodes"))
        .or_else(|| number(env("SLURM_NNODES")))
        .unwrap_or(1);
    let per_node = number(option("ntasks-per-node"))
        .unwrap_or_else(|| tasks.div_ceil(nodes))
        .max(1);
    let node_memory = option("mem")
        .or_else(|| env("SLURM_MEM_PER_NODE"))
        .and_then(|text| super::slurm_spec::memory_bytes(text.trim()));
    match node_memory.map(|bytes| bytes / per_node as u64) {
        Some(limit) if limit > 0 => (MEMORY_LIMIT_VARIABLE.to_string(), limit.to_string()),
        _ => (MEMORY_SHARE_VARIABLE.to_string(), per_node.to_string()),
    }
}

/// The `srun` long options a `slurm:KEY=VALUE,...` plan may pass through.
pub const SRUN_OPTIONS: &[&str] = &[
    "ntasks",
    "nodes",
    "ntasks-per-node",
    "cpus-per-task",
    "mem",
    "mem-per-cpu",
    "gres",
    "gpus-per-task",
    "constraint",
    "time",
];

/// How long stopping lets `srun` end by itself (its workers exit once the
/// scheduler says goodbye or closes) before cancelling the step.
const QUIET_END_WAIT: Duration = Duration::from_secs(2);

/// How long stopping waits for `srun` to end after SIGTERM before killing it and
/// cancelling its step with `scancel` (Slurm's `KillWait` is 30 s by default).
const STOP_WAIT: Duration = Duration::from_secs(40);

/// `slurm[:KEY=VALUE,...]` inside an allocation: see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct SlurmLauncher {
    job_id: String,
    tasks: usize,
    threads: Option<usize>,
    options: Vec<(String, String)>,
    peer: Option<String>,
    /// The workers' memory setting, `(VARIABLE, VALUE)`: see [`worker_memory`].
    memory: (String, String),
}

impl SlurmLauncher {
    /// The launcher for the allocation this process runs in, with the plan's
    /// `srun` options; an error outside an allocation or for an option not in
    /// [`SRUN_OPTIONS`].
    pub fn from_env(options: &[(String, String)]) -> Result<Self, String> {
        let launcher = SlurmLauncher::new(&|name| std::env::var(name).ok(), options)?;
        let peer = peer_node(
            std::env::var("SLURM_JOB_NODELIST").ok().as_deref(),
            std::env::var("SLURMD_NODENAME").ok().as_deref(),
        );
        Ok(SlurmLauncher { peer, ..launcher })
    }

    /// The launcher for the allocation that `env` (an environment lookup)
    /// describes; see [`SlurmLauncher::from_env`].
    pub fn new(
        env: &dyn Fn(&str) -> Option<String>,
        options: &[(String, String)],
    ) -> Result<Self, String> {
        let Some(job_id) = env("SLURM_JOB_ID").filter(|id| !id.trim().is_empty()) else {
            return Err("the `slurm` plan starts its workers inside a Slurm allocation, and \
                 SLURM_JOB_ID is not set: run the program in a batch script \
                 (`sbatch -n 8 --wrap './my_study --plan slurm'`) or under `salloc -n 8`, or let the plan submit batch jobs itself (`slurm:jobs=N,...`)"
                .to_string());
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in options {
            if !SRUN_OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown slurm option `{key}`: the slurm plan passes these srun options \
                     through: {}",
                    SRUN_OPTIONS.join(", ")
                ));
            }
            if seen.contains(&key.as_str()) {
                return Err(format!("the slurm option `{key}` is given twice"));
            }
            seen.push(key);
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "the slurm option `{key}` needs a value without blanks, got `{value}`"
                ));
            }
        }
        let option = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let count = |source: &str, text: String| {
            text.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{source}=`{text}`: expected a whole number of at least 1"))
        };
        let tasks = match (option("ntasks"), env("SLURM_NTASKS"), env("SLURM_NNODES")) {
            (Some(text), _, _) => count("slurm option ntasks", text)?,
            (None, Some(text), _) => count("SLURM_NTASKS", text)?,
            // Without -n, srun runs one task per node.
            (None, None, Some(text)) => count("SLURM_NNODES", text)?,
            (None, None, None) => 1,
        };
        let threads = match (option("cpus-per-task"), env("SLURM_CPUS_PER_TASK")) {
            (Some(text), _) => Some(count("slurm option cpus-per-task", text)?),
            (None, Some(text)) => Some(count("SLURM_CPUS_PER_TASK", text)?),
            (None, None) => None,
        };
        Ok(SlurmLauncher {
            job_id: job_id.trim().to_string(),
            tasks,
            threads,
            options: options.to_vec(),
            peer: None,
            memory: worker_memory(env, &option, tasks),
        })
    }

    /// Task threads per worker: `cpus-per-task`, else `SLURM_CPUS_PER_TASK`, else 1.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or(1)
    }

    /// The `srun` arguments (after `srun` itself) that start the workers of `launch`.
    pub fn srun_arguments(&self, launch: &WorkerLaunch) -> Vec<String> {
        let mut arguments = vec![
            format!("--ntasks={}", self.tasks),
            // A worker that fails must not take the others (or the job) with it.
            "--kill-on-bad-exit=0".to_string(),
            // srun's standard input (the secret) goes to every task.
            "--input=all".to_string(),
            format!("--job-name=wherever-workers-{}", std::process::id()),
        ];
        if let Some(threads) = self.threads {
            arguments.push(format!("--cpus-per-task={threads}"));
        }
        for (key, value) in &self.options {
            if key != "ntasks" && key != "cpus-per-task" {
                arguments.push(format!("--{key}={value}"));
            }
        }
        // The settings go on the command line through `env`, so they arrive even
        // when the site exports no environment to steps (SLURM_EXPORT_ENV=NONE).
        arguments.push("env".to_string());
        arguments.push(format!("{WORKER_VARIABLE}=tcp://{}", launch.scheduler));
        arguments.push(format!("{SECRET_STDIN_VARIABLE}=1"));
        arguments.push(format!("{THREADS_VARIABLE}={}", self.threads()));
        // Slurm cannot restart one task of a step: a worker that lost its
        // scheduler has nothing to wait for.
        arguments.push(format!("{DEATH_TIMEOUT_VARIABLE}=0"));
        arguments.push(format!("{}={}", self.memory.0, self.memory.1));
        // The launch's own settings come after: `env` takes the last one.
        for (key, value) in &launch.env {
            arguments.push(format!("{key}={value}"));
        }
        arguments.push(launch.executable.display().to_string());
        arguments
    }
}

impl Launcher for SlurmLauncher {
    fn describe(&self) -> String {
        format!("slurm ({} tasks of job {})", self.tasks, self.job_id)
    }

    fn bind_scope(&self) -> BindScope {
        BindScope::Routable
    }

    fn workers(&self) -> usize {
        self.tasks
    }

    fn peer_hint(&self) -> Option<String> {
        self.peer.clone()
    }

    fn launch(
        &self,
        launch: &WorkerLaunch,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        let mut srun = Command::new("srun")
            .args(self.srun_arguments(launch))
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `srun` (is Slurm's srun on PATH?): {e}"))?;
        let mut stdin = srun.stdin.take().expect("piped");
        let written =
            std::io::Write::write_all(&mut stdin, format!("{}\n", launch.secret_hex).as_bytes());
        drop(stdin);
        let mut workers = SrunStep {
            srun: Some(srun),
            job_id: self.job_id.clone(),
        };
        match written {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                workers.stop();
                Err(format!("cannot hand the secret to srun: {error}"))
            }
            // A broken pipe: srun already exited; `poll` reports its status.
            _ => Ok(Box::new(workers)),
        }
    }
}

/// The first node of the allocation's `nodelist` other than `this_node` (expanded
/// by `scontrol show hostnames`), for the scheduler to advertise the address that
/// routes there; `None` on a one-node allocation (any local address will do).
fn peer_node(nodelist: Option<&str>, this_node: Option<&str>) -> Option<String> {
    let output = Command::new("scontrol")
        .args(["show", "hostnames", nodelist?])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let nodes = String::from_utf8_lossy(&output.stdout).to_string();
    nodes
        .lines()
        .map(str::trim)
        .find(|node| !node.is_empty() && Some(*node) != this_node)
        .map(str::to_string)
}

/// The `srun` step running the workers.
struct SrunStep {
    srun: Option<Child>,
    job_id: String,
}

impl LaunchedWorkers for SrunStep {
    fn poll(&mut self) -> LaunchStatus {
        let Some(srun) = self.srun.as_mut() else {
            return LaunchStatus::Running;
        };
        match srun.try_wait() {
            Ok(Some(status)) => LaunchStatus::Failed(format!(
                "`srun` exited ({status}) before its workers connected to the scheduler; \
                 its messages above say why"
            )),
            _ => LaunchStatus::Running,
        }
    }

    fn stop(&mut self) {
        let Some(mut srun) = self.srun.take() else {
            return;
        };
        if srun.try_wait().ok().flatten().is_some() {
            return;
        }
        // Workers told goodbye (or whose scheduler closed) exit by themselves, and
        // then srun does, quietly: give it a moment before cancelling the step.
        if wait_for_exit(&mut srun, QUIET_END_WAIT) {
            return;
        }
        // SIGTERM: srun cancels its step (every task) and exits.
        if let Some(pid) = rustix::process::Pid::from_raw(srun.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if wait_for_exit(&mut srun, STOP_WAIT) {
            return;
        }
        tracing::warn!("srun did not end within {STOP_WAIT:?} of SIGTERM; killing it");
        let _ = srun.kill();
        let _ = srun.wait();
        cancel_steps_named(
            &self.job_id,
            &format!("wherever-workers-{}", std::process::id()),
        );
    }
}

/// Waits up to `wait` for `child` to exit; whether it did.
fn wait_for_exit(child: &mut Child, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for SrunStep {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `scancel`s the steps of job `job_id` named `name` (a step whose `srun` was killed).
fn cancel_steps_named(job_id: &str, name: &str) {
    let Ok(output) = Command::new("squeue")
        .args(["-h", "-s", "-j", job_id, "-o", "%i %j"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((step, step_name)) = line.trim().split_once(' ') {
            if step_name.trim() == name {
                let _ = Command::new("scancel").arg(step).status();
            }
        }
    }
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

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn launch() -> WorkerLaunch {
        WorkerLaunch {
            scheduler: "10.0.0.1:4000".into(),
            secret_hex: "ab".repeat(32),
            executable: "/shared/my_study".into(),
            threads: 1,
            env: vec![("X".into(), "1".into())],
        }
    }

    #[test]
    fn outside_an_allocation_the_error_says_to_use_sbatch_or_salloc() {
        let error = SlurmLauncher::new(&env(&[]), &[]).unwrap_err();
        assert!(
            error.contains("SLURM_JOB_ID") && error.contains("sbatch") && error.contains("salloc"),
            "{error}"
        );
    }

    #[test]
    fn one_worker_per_task_with_the_cpus_of_a_task_as_threads() {
        let job = env(&[
            ("SLURM_JOB_ID", "42"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_CPUS_PER_TASK", "4"),
        ]);
        let launcher = SlurmLauncher::new(&job, &[]).unwrap();
        assert_eq!((launcher.workers(), launcher.threads()), (8, 4));
        let arguments = launcher.srun_arguments(&launch());
        for expected in [
            "--ntasks=8",
            "--cpus-per-task=4",
            "--input=all",
            "--kill-on-bad-exit=0",
            "WHEREVER_WORKER=tcp://10.0.0.1:4000",
            "WHEREVER_SECRET_STDIN=1",
            "WHEREVER_WORKER_THREADS=4",
            "X=1",
        ] {
            assert!(arguments.iter().any(|a| a == expected), "{expected}");
        }
        assert_eq!(arguments.last().unwrap(), "/shared/my_study");
        assert!(
            !arguments.iter().any(|a| a.contains(&"ab".repeat(32))),
            "the secret is never an argument"
        );
    }

    #[test]
    fn without_cpus_per_task_a_worker_has_one_thread_and_nodes_count_when_tasks_are_unset() {
        let job = env(&[("SLURM_JOB_ID", "42"), ("SLURM_NNODES", "3")]);
        let launcher = SlurmLauncher::new(&job, &[]).unwrap();
        assert_eq!((launcher.workers(), launcher.threads()), (3, 1));
        assert!(!launcher
            .srun_arguments(&launch())
            .iter()
            .any(|a| a.starts_with("--cpus-per-task")));
    }

    #[test]
    fn workers_share_the_node_memory_of_the_step_or_the_allocation() {
        let memory = |pairs: &'static [(&'static str, &'static str)], plan: &[(&str, &str)]| {
            let launcher = SlurmLauncher::new(&env(pairs), &options(plan)).unwrap();
            launcher
                .srun_arguments(&launch())
                .into_iter()
                .find(|a| a.starts_with("WHEREVER_WORKER_MEMORY_"))
                .unwrap()
        };
        let four_on_two = &[
            ("SLURM_JOB_ID", "42"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_NNODES", "2"),
        ];
        assert_eq!(memory(four_on_two, &[]), "WHEREVER_WORKER_MEMORY_SHARE=2");
        assert_eq!(
            memory(four_on_two, &[("mem", "4G")]),
            format!("WHEREVER_WORKER_MEMORY_LIMIT={}", 2u64 << 30)
        );
        assert_eq!(
            memory(
                &[
                    ("SLURM_JOB_ID", "42"),
                    ("SLURM_NTASKS", "3"),
                    ("SLURM_MEM_PER_NODE", "3000"),
                ],
                &[]
            ),
            format!("WHEREVER_WORKER_MEMORY_LIMIT={}", 1000u64 << 20)
        );
        assert_eq!(
            memory(four_on_two, &[("ntasks-per-node", "1"), ("nodes", "4")]),
            "WHEREVER_WORKER_MEMORY_SHARE=1"
        );
        // An unreadable size falls back to sharing the node.
        assert_eq!(
            memory(four_on_two, &[("mem", "lots")]),
            "WHEREVER_WORKER_MEMORY_SHARE=2"
        );
    }

    #[test]
    fn plan_options_pass_through_as_srun_long_options() {
        let job = env(&[("SLURM_JOB_ID", "42"), ("SLURM_NTASKS", "8")]);
        let plan = options(&[("ntasks", "2"), ("cpus-per-task", "3"), ("gres", "gpu:1")]);
        let launcher = SlurmLauncher::new(&job, &plan).unwrap();
        assert_eq!((launcher.workers(), launcher.threads()), (2, 3));
        let arguments = launcher.srun_arguments(&launch());
        assert!(arguments.iter().any(|a| a == "--gres=gpu:1"));
        assert!(arguments.iter().any(|a| a == "--ntasks=2"));
        assert_eq!(
            arguments
                .iter()
                .filter(|a| a.starts_with("--ntasks="))
                .count(),
            1
        );
    }

    #[test]
    fn malformed_options_are_clear_errors() {
        let job = env(&[("SLURM_JOB_ID", "42")]);
        let cases = [
            (vec![("partition", "x")], "unknown slurm option `partition`"),
            (
                vec![("ntasks", "0")],
                "expected a whole number of at least 1",
            ),
            (vec![("ntasks", "two")], "slurm option ntasks=`two`"),
            (vec![("gres", "a b")], "without blanks"),
            (vec![("mem", "1G"), ("mem", "2G")], "given twice"),
        ];
        for (pairs, expected) in cases {
            let error = SlurmLauncher::new(&job, &options(&pairs)).unwrap_err();
            assert!(error.contains(expected), "{pairs:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let bad_env = env(&[("SLURM_JOB_ID", "42"), ("SLURM_CPUS_PER_TASK", "x")]);
        let error = SlurmLauncher::new(&bad_env, &[]).unwrap_err();
        assert!(error.contains("SLURM_CPUS_PER_TASK=`x`"), "{error}");
    }
}
