//! What a `slurm:jobs=N,KEY=VALUE,...` plan asks of Slurm: the checked options
//! (sbatch long options plus wherever's own), and what a plan string cannot say
//! (extra `#SBATCH` lines, module loads, a prologue), which the facade's
//! `SlurmPlan` builder adds. [`crate::launcher::slurm_script`] turns it into the
//! job script; [`crate::launcher::SlurmJobsLauncher`] submits it.

/// The sbatch long options a `slurm:jobs=...` plan passes through as `#SBATCH` lines.
pub const SBATCH_OPTIONS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "time",
    "mem",
    "cpus-per-task",
    "nodes",
    "ntasks-per-node",
    "constraint",
    "job-name",
];

/// wherever's own keys of a `slurm:jobs=...` plan.
pub const JOBS_KEYS: &[&str] = &[
    "jobs",
    "workers-per-job",
    "threads-per-worker",
    "death-timeout",
];

/// wherever's own keys of a `slurm:per-task,...` plan (besides the sbatch ones but
/// `nodes` and `ntasks-per-node`: a job runs one worker).
pub const PER_TASK_KEYS: &[&str] = &["threads-per-worker", "death-timeout", "max-pending"];

/// The word that makes a `slurm:` level submit one job per task.
pub const PER_TASK_WORD: &str = "per-task";

/// How many jobs of a `slurm:per-task` plan wait in the queue at once when the
/// plan does not say (`max-pending=N`): enough to keep a small partition busy,
/// few enough that a shared cluster's scheduler and fair-share are not flooded
/// (many sites cap a user's queued jobs in the hundreds; 16 stays far below).
pub const DEFAULT_MAX_PENDING: usize = 16;

/// The death timeout of job workers when the plan gives none (Dask's default).
pub const DEFAULT_JOB_DEATH_TIMEOUT: u64 = 60;

/// The job name when the plan gives none.
pub const DEFAULT_JOB_NAME: &str = "wherever";

/// The largest count (jobs, workers, threads, nodes) a plan may give.
const MAX_COUNT: usize = 65_535;

/// A checked `slurm:jobs=N,...` level: see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJobsSpec {
    /// `slurm:per-task`: one job per task, submitted as tasks are ready.
    per_task: bool,
    options: Vec<(String, String)>,
    extra_lines: Vec<String>,
    modules: Vec<String>,
    prologue: Vec<String>,
}

/// Checks one `KEY=VALUE` option of a `slurm:jobs` or `slurm:per-task` level whose
/// key is allowed there: not given twice (`seen` holds the keys so far), printable,
/// and a value of the key's kind (counts, seconds, a walltime, a memory size).
fn check_option<'a>(seen: &mut Vec<&'a str>, key: &'a str, value: &str) -> Result<(), String> {
    if seen.contains(&key) {
        return Err(format!("the slurm option `{key}` is given twice"));
    }
    seen.push(key);
    check_value(key, value)?;
    match key {
        "jobs" | "workers-per-job" | "threads-per-worker" | "cpus-per-task" | "nodes"
        | "ntasks-per-node" | "max-pending" => {
            parse_count(key, value)?;
        }
        "death-timeout" => {
            parse_seconds(value).ok_or_else(|| {
                format!(
                    "slurm option death-timeout=`{value}`: expected a whole number of \
                     seconds from 0 to 86400"
                )
            })?;
        }
        "time" => {
            parse_walltime(value)?;
        }
        "mem" => check_memory(value)?,
        _ => {}
    }
    Ok(())
}

impl SlurmJobsSpec {
    /// Checks the `KEY=VALUE` options of a `slurm:jobs=N,...` level (see
    /// [`SBATCH_OPTIONS`] and [`JOBS_KEYS`]); `jobs` must be among them. The
    /// error says what is wrong on one line.
    pub fn from_options(options: &[(String, String)]) -> Result<Self, String> {
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in options {
            if !SBATCH_OPTIONS.contains(&key.as_str()) && !JOBS_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown slurm option `{key}`: with jobs=N the keys are {} (sbatch long \
                     options) and {}",
                    SBATCH_OPTIONS.join(", "),
                    JOBS_KEYS.join(", ")
                ));
            }
            check_option(&mut seen, key, value)?;
        }
        let spec = SlurmJobsSpec {
            per_task: false,
            options: options.to_vec(),
            extra_lines: Vec::new(),
            modules: Vec::new(),
            prologue: Vec::new(),
        };
        if spec.option("jobs").is_none() {
            return Err(
                "a slurm plan that submits jobs needs jobs=N (without it, `slurm` \
                 runs inside the allocation it is started in)"
                    .to_string(),
            );
        }
        spec.check_tasks()?;
        Ok(spec)
    }

    /// Checks the `KEY=VALUE` options of a `slurm:per-task,...` level: the sbatch
    /// long options of [`SBATCH_OPTIONS`] but `nodes` and `ntasks-per-node` (a job
    /// runs one worker), and [`PER_TASK_KEYS`]. The error says what is wrong on
    /// one line.
    pub fn per_task_from_options(options: &[(String, String)]) -> Result<Self, String> {
        let allowed = |key: &str| {
            (SBATCH_OPTIONS.contains(&key) && key != "nodes" && key != "ntasks-per-node")
                || PER_TASK_KEYS.contains(&key)
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in options {
            if !allowed(key) {
                let why = match key.as_str() {
                    "jobs" | "workers-per-job" => {
                        " (per-task submits one job of one worker per task: \
                         use slurm:jobs=N for a fixed number of jobs)"
                    }
                    "nodes" | "ntasks-per-node" => " (a per-task job runs one worker)",
                    _ => "",
                };
                let keys: Vec<&str> = SBATCH_OPTIONS
                    .iter()
                    .chain(PER_TASK_KEYS)
                    .copied()
                    .filter(|k| allowed(k))
                    .collect();
                return Err(format!(
                    "slurm option `{key}` is not one of per-task's{why}; the keys are {}",
                    keys.join(", ")
                ));
            }
            check_option(&mut seen, key, value)?;
        }
        Ok(SlurmJobsSpec {
            per_task: true,
            options: options.to_vec(),
            extra_lines: Vec::new(),
            modules: Vec::new(),
            prologue: Vec::new(),
        })
    }

    /// Whether this is a `slurm:per-task` level (one job per task).
    pub fn is_per_task(&self) -> bool {
        self.per_task
    }

    /// The most jobs of a per-task plan queued at once (`max-pending`, else
    /// [`DEFAULT_MAX_PENDING`]).
    pub fn max_pending(&self) -> usize {
        self.count("max-pending").unwrap_or(DEFAULT_MAX_PENDING)
    }

    /// Adds a line `#SBATCH LINE` (e.g. `--exclusive`) after the plan's own; an
    /// error for an empty line or one with a line break.
    pub fn add_sbatch_line(&mut self, line: &str) -> Result<(), String> {
        self.extra_lines
            .push(one_line("sbatch line", line.trim())?.to_string());
        Ok(())
    }

    /// Adds `module load MODULE` before the workers start.
    pub fn add_module(&mut self, module: &str) -> Result<(), String> {
        let module = one_line("module", module.trim())?;
        if module.contains(|c: char| !(c.is_ascii_alphanumeric() || "._-/+@:".contains(c))) {
            return Err(format!(
                "the module `{module}` has a character a module name cannot have"
            ));
        }
        self.modules.push(module.to_string());
        Ok(())
    }

    /// Adds shell text run before the workers start (e.g. `export X=1`); it may
    /// span lines but not hold a NUL.
    pub fn add_prologue(&mut self, text: &str) -> Result<(), String> {
        if text.trim().is_empty() || text.contains('\0') {
            return Err("a prologue needs some text and no NUL character".to_string());
        }
        self.prologue.push(text.trim_end().to_string());
        Ok(())
    }

    /// The options as given, in order (for the plan string).
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// Whether the plan string can say all of it (no extra lines, modules or prologue).
    pub fn is_plain(&self) -> bool {
        self.extra_lines.is_empty() && self.modules.is_empty() && self.prologue.is_empty()
    }

    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, key: &str) -> Option<usize> {
        self.option(key).and_then(|v| parse_count(key, v).ok())
    }

    /// How many jobs the launch submits (per-task: none; jobs follow the tasks).
    pub fn jobs(&self) -> usize {
        if self.per_task {
            return 0;
        }
        self.count("jobs").unwrap_or(1)
    }

    /// Workers (Slurm tasks) per job: `workers-per-job`, else `nodes` ×
    /// `ntasks-per-node` when either is given, else 1.
    pub fn workers_per_job(&self) -> usize {
        self.count("workers-per-job").unwrap_or_else(|| {
            match (self.count("nodes"), self.count("ntasks-per-node")) {
                (None, None) => 1,
                (nodes, per_node) => nodes.unwrap_or(1) * per_node.unwrap_or(1),
            }
        })
    }

    /// Task threads per worker: `threads-per-worker`, else `cpus-per-task` (each
    /// worker is one Slurm task with that many CPUs), else 1.
    pub fn threads_per_worker(&self) -> usize {
        self.count("threads-per-worker")
            .or_else(|| self.count("cpus-per-task"))
            .unwrap_or(1)
    }

    /// CPUs each worker's task asks for: `cpus-per-task`, else
    /// `threads-per-worker` when more than 1, else none (Slurm's default, 1).
    pub fn cpus_per_task(&self) -> Option<usize> {
        self.count("cpus-per-task")
            .or_else(|| self.count("threads-per-worker").filter(|&n| n > 1))
    }

    /// Each worker's memory limit in bytes (issue 14's limits), from the job's
    /// `mem` (sbatch's `--mem`, per node, in MB unless suffixed K, M, G or T,
    /// powers of 1024 as Slurm counts) shared by the workers on one node; `None`
    /// without `mem` (each worker then takes its node's memory divided by
    /// [`SlurmJobsSpec::workers_per_node`]).
    pub fn worker_memory_limit(&self) -> Option<u64> {
        let bytes = memory_bytes(self.option("mem")?)?;
        Some(bytes / self.workers_per_node() as u64).filter(|&limit| limit > 0)
    }

    /// How many of a job's workers share one of its nodes (at least 1): its
    /// `workers-per-job` spread over its `nodes`, rounded up.
    pub fn workers_per_node(&self) -> usize {
        let nodes = self.count("nodes").unwrap_or(1).max(1);
        self.workers_per_job().div_ceil(nodes).max(1)
    }

    /// Seconds a worker waits for a scheduler it lost before it exits.
    pub fn death_timeout(&self) -> u64 {
        self.option("death-timeout")
            .and_then(parse_seconds)
            .unwrap_or(DEFAULT_JOB_DEATH_TIMEOUT)
    }

    /// The walltime in seconds, when `time` is given (and not unlimited).
    pub fn walltime_seconds(&self) -> Option<u64> {
        self.option("time")
            .and_then(|t| parse_walltime(t).ok().flatten())
    }

    /// The job name (`job-name`, else [`DEFAULT_JOB_NAME`]).
    pub fn job_name(&self) -> &str {
        self.option("job-name").unwrap_or(DEFAULT_JOB_NAME)
    }

    /// The extra `#SBATCH` lines, module loads and prologue texts.
    pub fn extras(&self) -> (&[String], &[String], &[String]) {
        (&self.extra_lines, &self.modules, &self.prologue)
    }

    /// An error when the task counts contradict each other.
    fn check_tasks(&self) -> Result<(), String> {
        let workers = self.workers_per_job();
        if let (Some(given), Some(_)) =
            (self.count("workers-per-job"), self.count("ntasks-per-node"))
        {
            let implied =
                self.count("nodes").unwrap_or(1) * self.count("ntasks-per-node").unwrap_or(1);
            if given != implied {
                return Err(format!(
                    "workers-per-job={given} contradicts nodes × ntasks-per-node = {implied} \
                     (each worker is one Slurm task; give one or the other)"
                ));
            }
        }
        if let Some(nodes) = self.count("nodes") {
            if nodes > workers {
                return Err(format!(
                    "nodes={nodes} needs at least {nodes} workers per job (one Slurm task a \
                     worker), got workers-per-job={workers}"
                ));
            }
        }
        if workers > MAX_COUNT {
            return Err(format!(
                "{workers} workers per job is more than {MAX_COUNT}"
            ));
        }
        Ok(())
    }
}

/// An error unless `value` is non-empty without blanks or control characters.
fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the slurm option `{key}` needs a value without blanks or control characters, \
             got {value:?}"
        ));
    }
    Ok(())
}

/// `text` unless it is empty or spans lines.
fn one_line<'a>(what: &str, text: &'a str) -> Result<&'a str, String> {
    if text.is_empty() || text.chars().any(|c| c.is_control()) {
        return Err(format!(
            "a {what} must be one line of text without control characters, got {text:?}"
        ));
    }
    Ok(text)
}

/// A count from 1 to [`MAX_COUNT`].
fn parse_count(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_COUNT).contains(n) && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("slurm option {key}=`{value}`: expected a whole number from 1 to {MAX_COUNT}")
        })
}

/// Whole seconds from 0 to a day.
fn parse_seconds(value: &str) -> Option<u64> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= 86_400 && value.bytes().all(|b| b.is_ascii_digit()))
}

/// An sbatch memory size: digits with an optional K, M, G or T suffix.
fn check_memory(value: &str) -> Result<(), String> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffixes = value.len() - digits.len();
    if digits.is_empty() || suffixes > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "slurm option mem=`{value}`: expected a size such as 4000, 500M or 4G (sbatch's --mem)"
        ));
    }
    Ok(())
}

/// The bytes of an sbatch memory size (checked by `check_memory`): MB without a
/// suffix, else K, M, G or T as powers of 1024.
pub(super) fn memory_bytes(value: &str) -> Option<u64> {
    let (digits, unit) = match value.chars().last()?.to_ascii_uppercase() {
        'K' => (&value[..value.len() - 1], 1u64 << 10),
        'M' => (&value[..value.len() - 1], 1 << 20),
        'G' => (&value[..value.len() - 1], 1 << 30),
        'T' => (&value[..value.len() - 1], 1 << 40),
        _ => (value, 1 << 20),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// An sbatch walltime in seconds (`None`: unlimited): `MINUTES`, `MINUTES:SECONDS`,
/// `HOURS:MINUTES:SECONDS`, `DAYS-HOURS`, `DAYS-HOURS:MINUTES` or
/// `DAYS-HOURS:MINUTES:SECONDS`, or `infinite`/`unlimited`.
pub fn parse_walltime(text: &str) -> Result<Option<u64>, String> {
    if ["infinite", "unlimited"].contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    let error = || {
        format!(
            "slurm option time=`{text}`: expected MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, \
             DAYS-HOURS, DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS (sbatch's --time), \
             not zero"
        )
    };
    let number = |part: &str| -> Result<u64, String> {
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        part.parse::<u64>().map_err(|_| error())
    };
    let (days, clock) = match text.split_once('-') {
        Some((days, clock)) => (Some(number(days)?), clock),
        None => (None, text),
    };
    let parts = clock
        .split(':')
        .map(number)
        .collect::<Result<Vec<u64>, String>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [minutes]) => minutes * 60,
        (None, [minutes, seconds]) => minutes * 60 + seconds,
        (None, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
        (Some(days), [hours]) => days * 86_400 + hours * 3600,
        (Some(days), [hours, minutes]) => days * 86_400 + hours * 3600 + minutes * 60,
        (Some(days), [hours, minutes, seconds]) => {
            days * 86_400 + hours * 3600 + minutes * 60 + seconds
        }
        _ => return Err(error()),
    };
    if seconds == 0 {
        return Err(error());
    }
    Ok(Some(seconds))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_jobs_memory_is_shared_by_the_workers_on_one_node() {
        let limit = |options: &str| {
            let pairs: Vec<(String, String)> = options
                .split(',')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            super::SlurmJobsSpec::from_options(&pairs)
                .unwrap()
                .worker_memory_limit()
        };
        assert_eq!(limit("jobs=1"), None);
        assert_eq!(limit("jobs=1,mem=4G"), Some(4 << 30));
        assert_eq!(limit("jobs=1,mem=500"), Some(500 << 20));
        assert_eq!(limit("jobs=1,mem=4G,workers-per-job=4"), Some(1 << 30));
        assert_eq!(
            limit("jobs=1,mem=4G,nodes=2,ntasks-per-node=2"),
            Some(2 << 30)
        );
        assert_eq!(limit("jobs=1,mem=2048K"), Some(2 << 20));
    }

    #[test]
    fn without_mem_the_workers_on_one_node_share_it() {
        let per_node = |options: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            super::SlurmJobsSpec::from_options(&pairs)
                .unwrap()
                .workers_per_node()
        };
        assert_eq!(per_node(&[("jobs", "1")]), 1);
        assert_eq!(per_node(&[("jobs", "1"), ("workers-per-job", "3")]), 3);
        assert_eq!(
            per_node(&[("jobs", "1"), ("nodes", "2"), ("ntasks-per-node", "2")]),
            2
        );
    }

    use super::*;

    fn spec(text: &str) -> Result<SlurmJobsSpec, String> {
        let options: Vec<(String, String)> = text
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        SlurmJobsSpec::from_options(&options)
    }

    #[test]
    fn defaults_and_derived_counts() {
        let plain = spec("jobs=2").unwrap();
        assert_eq!(
            (
                plain.jobs(),
                plain.workers_per_job(),
                plain.threads_per_worker()
            ),
            (2, 1, 1)
        );
        assert_eq!(plain.death_timeout(), DEFAULT_JOB_DEATH_TIMEOUT);
        assert_eq!(plain.cpus_per_task(), None);
        let cpus = spec("jobs=1,cpus-per-task=4,workers-per-job=2").unwrap();
        assert_eq!((cpus.workers_per_job(), cpus.threads_per_worker()), (2, 4));
        let threads = spec("jobs=1,threads-per-worker=3").unwrap();
        assert_eq!(threads.cpus_per_task(), Some(3));
        let nodes = spec("jobs=1,nodes=2,ntasks-per-node=3").unwrap();
        assert_eq!(nodes.workers_per_job(), 6);
        assert_eq!(spec("jobs=1,death-timeout=5").unwrap().death_timeout(), 5);
    }

    #[test]
    fn walltimes_in_every_sbatch_form() {
        let cases = [
            ("30", Some(1800)),
            ("5:30", Some(330)),
            ("00:05:00", Some(300)),
            ("1-0", Some(86_400)),
            ("1-2:3", Some(86_400 + 7200 + 180)),
            ("1-02:03:04", Some(86_400 + 7200 + 180 + 4)),
            ("infinite", None),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse_walltime(text), Ok(seconds), "{text}");
        }
        for bad in [
            "",
            "0",
            "00:00:00",
            "1:2:3:4",
            "a",
            "5m",
            "-1",
            "1-",
            "1--2",
            ":5",
            "1-1:1:1:1",
        ] {
            assert!(parse_walltime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_options_are_one_line_errors_saying_what_is_wrong() {
        let cases = [
            ("jobs=2,partiton=debug", "unknown slurm option `partiton`"),
            ("jobs=2,jobs=3", "`jobs` is given twice"),
            ("jobs=0", "jobs=`0`: expected a whole number from 1"),
            ("jobs=two", "jobs=`two`"),
            ("jobs=+2", "jobs=`+2`"),
            ("jobs=2,workers-per-job=0", "workers-per-job=`0`"),
            ("jobs=2,cpus-per-task=x", "cpus-per-task=`x`"),
            ("jobs=2,time=5m", "time=`5m`: expected MINUTES"),
            ("jobs=2,time=0", "not zero"),
            ("jobs=2,mem=lots", "mem=`lots`"),
            ("jobs=2,mem=4GG", "mem=`4GG`"),
            ("jobs=2,partition=a b", "without blanks"),
            ("jobs=2,partition=a\u{1}", "control characters"),
            ("jobs=2,death-timeout=soon", "death-timeout=`soon`"),
            ("partition=debug", "needs jobs=N"),
            (
                "jobs=1,nodes=2,workers-per-job=1",
                "nodes=2 needs at least 2 workers per job",
            ),
            (
                "jobs=1,nodes=2,ntasks-per-node=2,workers-per-job=3",
                "contradicts nodes × ntasks-per-node = 4",
            ),
        ];
        for (text, expected) in cases {
            let error = spec(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn extras_are_checked() {
        let mut spec = spec("jobs=1").unwrap();
        assert!(spec.is_plain());
        spec.add_sbatch_line("--exclusive").unwrap();
        spec.add_module("gcc/12").unwrap();
        spec.add_prologue("export X=1\necho hi").unwrap();
        assert!(!spec.is_plain());
        assert!(spec.add_sbatch_line("--a\n--b").is_err());
        assert!(spec.add_sbatch_line("  ").is_err());
        assert!(spec.add_module("gcc; rm -rf").is_err());
        assert!(spec.add_prologue("").is_err());
    }
}
