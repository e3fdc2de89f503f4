//! [`SlurmPlan`]: the `slurm:jobs=N,...` (or `slurm:per-task,...`) plan built in code, with what a plan
//! string cannot say (extra `#SBATCH` lines, module loads, a prologue), and the
//! job script it submits.

use crate::plan::{Level, Plan, PlanError};
use std::fmt;
use std::path::Path;
use wherever_cluster::launcher::{job_script, SlurmJobsSpec};

/// Workers in Slurm batch jobs, as dask-jobqueue's `SLURMCluster`: each job runs
/// `workers_per_job` workers (one Slurm task each) that connect back to this
/// program's scheduler.
///
/// ```
/// use wherever::SlurmPlan;
/// let plan = SlurmPlan::new()
///     .jobs(2)
///     .partition("debug")
///     .time("00:05:00")
///     .sbatch_line("--exclusive")
///     .module_load("gcc/12")
///     .prologue("export OMP_NUM_THREADS=1");
/// let script = plan.job_script_for(std::path::Path::new("/shared/my_study")).unwrap();
/// assert!(script.contains("#SBATCH --partition=debug\n"));
/// assert!(script.contains("module load gcc/12\n"));
/// ```
///
/// Each job runs one `srun --ntasks=W` of the worker program (your program, by
/// absolute path; the job asks for W tasks), so a job may span nodes. Workers are
/// named `JOBID.PROCID`, a job is a group that scaling starts and retires whole,
/// and with [`SlurmPlan::time`] every worker knows when its job ends.
///
/// Jobs are never left behind: dropping the client tells the workers goodbye (their
/// jobs end by themselves) and `scancel`s what is still queued; on SIGINT, SIGTERM or
/// SIGHUP a handler (installed when the first job is submitted) cancels every job
/// this process submitted, then lets the signal end the process as it would have; a
/// client killed with SIGKILL leaves workers that exit after their death timeout
/// ([`SlurmPlan::death_timeout`]), and their jobs end with them.
///
/// Use `slurm:jobs=N` from a login node (the jobs wait in the queue like any
/// other); inside an allocation you already have, the plan `slurm` (one `srun`
/// step) starts faster.
///
/// The script is the same for every run: the scheduler's address and the secret
/// file reach the jobs through `sbatch`'s environment, so [`SlurmPlan::job_script`]
/// shows beforehand exactly what is submitted. Values are checked when the plan
/// is made ([`Plan::try_from`], [`SlurmPlan::start`], [`SlurmPlan::job_script`]).
///
/// [`SlurmPlan::per_task`] submits one job per task instead (R batchtools' model):
/// see there for when to use which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmPlan {
    /// `slurm:per-task`: one job per task.
    per_task: bool,
    options: Vec<(String, String)>,
    sbatch_lines: Vec<String>,
    modules: Vec<String>,
    prologue: Vec<String>,
}

impl Default for SlurmPlan {
    fn default() -> Self {
        SlurmPlan::new()
    }
}

impl SlurmPlan {
    /// One job of one worker, with Slurm's defaults for everything else.
    pub fn new() -> Self {
        SlurmPlan {
            per_task: false,
            options: vec![("jobs".to_string(), "1".to_string())],
            sbatch_lines: Vec::new(),
            modules: Vec::new(),
            prologue: Vec::new(),
        }
    }

    /// Sets `key` (an sbatch long option such as `gres`-less `partition`, or one of
    /// wherever's keys; see the [plan grammar](crate::plan)) to `value`, replacing
    /// an earlier value.
    pub fn option(mut self, key: &str, value: impl ToString) -> Self {
        let value = value.to_string();
        match self.options.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.options.push((key.to_string(), value)),
        }
        self
    }

    /// How many jobs to submit at start.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.per_task = false;
        self.option("jobs", jobs)
    }

    /// One job per task (`slurm:per-task`, R batchtools' model): each top-level
    /// task the client submits runs in its own batch job, whose one worker leaves
    /// after it; at most [`SlurmPlan::max_pending`] jobs wait in the queue at once.
    /// Each job is named `JOB-NAME-TASK-POSITION` once its worker took its task,
    /// so `squeue`/`sacct` show which task a job ran, with Slurm's own accounting
    /// and limits (time, memory) per task.
    ///
    /// Use it for few long tasks that each need their own Slurm accounting or
    /// limits; use [`SlurmPlan::jobs`] (workers that run many tasks each) for many
    /// short tasks: a job per task costs a queue wait and a worker start each.
    /// Takes away `jobs` and `workers-per-job`, which per-task has not.
    pub fn per_task(mut self) -> Self {
        self.per_task = true;
        self.options
            .retain(|(k, _)| k != "jobs" && k != "workers-per-job");
        self
    }

    /// The most per-task jobs queued at once (default 16, see
    /// [`wherever_cluster::launcher::slurm_spec::DEFAULT_MAX_PENDING`]).
    pub fn max_pending(self, jobs: usize) -> Self {
        self.option("max-pending", jobs)
    }

    /// `--partition` (dask-jobqueue's `queue`).
    pub fn partition(self, partition: &str) -> Self {
        self.option("partition", partition)
    }

    /// `--account`.
    pub fn account(self, account: &str) -> Self {
        self.option("account", account)
    }

    /// `--qos`.
    pub fn qos(self, qos: &str) -> Self {
        self.option("qos", qos)
    }

    /// `--time`, the walltime (`00:30:00`, `1-12:00:00`, ...); workers are told
    /// when their job ends.
    pub fn time(self, time: &str) -> Self {
        self.option("time", time)
    }

    /// `--mem`, per node (`4G`, `500M`): shared by the job's workers on a node, it is
    /// each worker's memory limit; without it, each worker takes its node's memory
    /// divided by the job's workers on that node.
    pub fn mem(self, mem: &str) -> Self {
        self.option("mem", mem)
    }

    /// `--cpus-per-task`: CPUs of each worker (and its task threads, unless
    /// [`SlurmPlan::threads_per_worker`] says otherwise).
    pub fn cpus_per_task(self, cpus: usize) -> Self {
        self.option("cpus-per-task", cpus)
    }

    /// `--nodes` per job.
    pub fn nodes(self, nodes: usize) -> Self {
        self.option("nodes", nodes)
    }

    /// `--ntasks-per-node`: workers per node of a job.
    pub fn ntasks_per_node(self, tasks: usize) -> Self {
        self.option("ntasks-per-node", tasks)
    }

    /// `--constraint`.
    pub fn constraint(self, constraint: &str) -> Self {
        self.option("constraint", constraint)
    }

    /// `--job-name` (default `wherever`).
    pub fn job_name(self, name: &str) -> Self {
        self.option("job-name", name)
    }

    /// Workers per job (default 1, or nodes × ntasks-per-node).
    pub fn workers_per_job(self, workers: usize) -> Self {
        self.option("workers-per-job", workers)
    }

    /// Task threads per worker (default: cpus-per-task, else 1).
    pub fn threads_per_worker(self, threads: usize) -> Self {
        self.option("threads-per-worker", threads)
    }

    /// How long, in seconds, a worker whose scheduler is gone waits for it before
    /// exiting (default 60): a client killed with SIGKILL leaves no job longer.
    pub fn death_timeout(self, seconds: u64) -> Self {
        self.option("death-timeout", seconds)
    }

    /// An extra `#SBATCH` line, e.g. `--exclusive` or `--gres=gpu:1`.
    pub fn sbatch_line(mut self, line: &str) -> Self {
        self.sbatch_lines.push(line.to_string());
        self
    }

    /// `module load MODULE` before the workers start.
    pub fn module_load(mut self, module: &str) -> Self {
        self.modules.push(module.to_string());
        self
    }

    /// Shell text run before the workers start (`export X=1`, `source env.sh`).
    pub fn prologue(mut self, text: &str) -> Self {
        self.prologue.push(text.to_string());
        self
    }

    /// The checked plan level.
    pub fn spec(&self) -> Result<SlurmJobsSpec, PlanError> {
        let error = |reason: String| PlanError {
            input: self.to_string(),
            reason,
        };
        let mut spec = if self.per_task {
            SlurmJobsSpec::per_task_from_options(&self.options)
        } else {
            SlurmJobsSpec::from_options(&self.options)
        }
        .map_err(error)?;
        for line in &self.sbatch_lines {
            spec.add_sbatch_line(line).map_err(error)?;
        }
        for module in &self.modules {
            spec.add_module(module).map_err(error)?;
        }
        for text in &self.prologue {
            spec.add_prologue(text).map_err(error)?;
        }
        Ok(spec)
    }

    /// The plan string (`slurm:jobs=2,partition=debug`), when one can say it all:
    /// `None` with extra `#SBATCH` lines, modules or a prologue.
    pub fn plan_string(&self) -> Option<String> {
        (self.sbatch_lines.is_empty() && self.modules.is_empty() && self.prologue.is_empty())
            .then(|| self.to_string())
    }

    /// The exact script each job gets when this program is the worker program.
    pub fn job_script(&self) -> Result<String, crate::Error> {
        let program = std::env::current_exe()
            .map_err(|e| crate::Error::Plan(self.plan_error(format!("no executable: {e}"))))?;
        Ok(self.job_script_for(&program)?)
    }

    /// The exact script each job gets when `program` (an absolute path) is the
    /// worker program.
    pub fn job_script_for(&self, program: &Path) -> Result<String, PlanError> {
        job_script(&self.spec()?, program).map_err(|reason| self.plan_error(reason))
    }

    /// Starts the plan: submits the jobs and waits for their workers (see
    /// [`Plan::start`]).
    pub fn start(&self) -> Result<crate::Client, crate::Error> {
        Plan::try_from(self.clone())?.start()
    }

    fn plan_error(&self, reason: String) -> PlanError {
        PlanError {
            input: self.to_string(),
            reason,
        }
    }
}

impl TryFrom<SlurmPlan> for Plan {
    type Error = PlanError;

    fn try_from(plan: SlurmPlan) -> Result<Self, PlanError> {
        Plan::new(vec![Level::SlurmJobs(plan.spec()?)])
    }
}

impl fmt::Display for SlurmPlan {
    /// The plan string of the options (extra lines, modules and a prologue have
    /// no string form; see [`SlurmPlan::plan_string`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut options: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if self.per_task {
            options.insert(
                0,
                wherever_cluster::launcher::slurm_spec::PER_TASK_WORD.to_string(),
            );
        }
        write!(f, "slurm:{}", options.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_gives_the_plan_string_and_parses_back() {
        let plan = SlurmPlan::new()
            .jobs(2)
            .partition("debug")
            .time("00:05:00")
            .workers_per_job(2)
            .death_timeout(5);
        let text = plan.plan_string().unwrap();
        assert_eq!(
            text,
            "slurm:jobs=2,partition=debug,time=00:05:00,workers-per-job=2,death-timeout=5"
        );
        assert_eq!(Plan::try_from(plan).unwrap(), Plan::parse(&text).unwrap());
    }

    #[test]
    fn the_per_task_builder_gives_the_plan_string_and_a_one_task_script() {
        let plan = SlurmPlan::new()
            .per_task()
            .partition("debug")
            .time("00:05:00")
            .max_pending(4);
        let text = plan.plan_string().unwrap();
        assert_eq!(
            text,
            "slurm:per-task,partition=debug,time=00:05:00,max-pending=4"
        );
        assert_eq!(
            Plan::try_from(plan.clone()).unwrap(),
            Plan::parse(&text).unwrap()
        );
        let script = plan.job_script_for(Path::new("/bin/prog")).unwrap();
        assert!(
            script.contains("export WHEREVER_WORKER_MAX_TASKS=1\n"),
            "{script}"
        );
        let error = Plan::try_from(SlurmPlan::new().per_task().workers_per_job(2))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid plan `slurm:per-task,workers-per-job=2`"),
            "{error}"
        );
    }

    #[test]
    fn extras_have_no_plan_string_but_appear_in_the_script() {
        let plan = SlurmPlan::new()
            .sbatch_line("--exclusive")
            .module_load("gcc/12")
            .prologue("export X=1");
        assert_eq!(plan.plan_string(), None);
        let script = plan.job_script_for(Path::new("/bin/prog")).unwrap();
        assert!(script.contains("#SBATCH --exclusive\nmodule load gcc/12\nexport X=1\n"));
        assert_eq!(plan.job_script_for(Path::new("/bin/prog")).unwrap(), script);
    }

    #[test]
    fn bad_values_are_plan_errors_naming_the_plan() {
        let cases = [
            (SlurmPlan::new().jobs(0), "jobs=`0`"),
            (SlurmPlan::new().time("soon"), "time=`soon`"),
            (SlurmPlan::new().partition("a b"), "without blanks"),
            (
                SlurmPlan::new().option("nodez", 2),
                "unknown slurm option `nodez`",
            ),
            (SlurmPlan::new().sbatch_line("--a\n--b"), "one line"),
            (SlurmPlan::new().module_load("x;y"), "module"),
        ];
        for (plan, expected) in cases {
            let error = Plan::try_from(plan).unwrap_err().to_string();
            assert!(
                error.starts_with("invalid plan `slurm:jobs=") && error.contains(expected),
                "{error}"
            );
        }
    }
}
