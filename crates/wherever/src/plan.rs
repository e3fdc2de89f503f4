//! Plans: how and where tasks run, parsed from a string.
//!
//! # Grammar
//!
//! ```text
//! plan    := level ( "/" level )*          nested levels: the first runs the top-level tasks,
//!                                          the next the tasks those tasks submit, and so on
//! level   := "sequential"                  in the calling thread, one task at a time
//!          | "threads" [ ":" N ]           a pool of N threads in this process
//!          | "processes" [ ":" N ] ( "," processes-option )*
//!                                          N worker processes of this program on this machine
//!          | "tcp://" HOST ":" PORT        a running `wherever scheduler`
//!          | "ssh:" hosts ( ";" ssh-option )*
//!                                          workers started over SSH, N per host (default 1)
//!          | "slurm" [ ":" KEY "=" VALUE ( "," KEY "=" VALUE )* ]
//!                                          one worker per task of the Slurm allocation
//!                                          this runs in, through one srun; KEY is an
//!                                          srun long option (ntasks, cpus-per-task, ...)
//!          | "slurm:jobs=" N ( "," KEY "=" VALUE )*
//!                                          submits N batch jobs whose tasks are workers;
//!                                          KEY is an sbatch long option (partition, account,
//!                                          qos, time, mem, cpus-per-task, nodes,
//!                                          ntasks-per-node, constraint, job-name) or
//!                                          workers-per-job, threads-per-worker,
//!                                          death-timeout (see `SlurmPlan`)
//!          | "slurm:per-task" ( "," KEY "=" VALUE )*
//!                                          one batch job per top-level task, running one
//!                                          worker that leaves after it (R batchtools' model);
//!                                          KEY as for jobs= but nodes, ntasks-per-node,
//!                                          workers-per-job, plus max-pending (jobs queued at
//!                                          once, default 16)
//!          | "mpi" [ ":" N ] ( "," mpi-option )*
//!                                          under mpirun: rank 0 runs main, the other
//!                                          ranks (N of them, checked) are the workers
//! processes-option := "mem=" SIZE          each worker's memory limit (default: the machine's
//!                                          memory divided by the workers): past 60% it spills
//!                                          results to disk, past 80% it pauses, past 95% it is
//!                                          restarted (WHEREVER_MEMORY_TARGET/_PAUSE/_TERMINATE)
//! mpi-option := "mem=" SIZE                each worker rank's memory limit (default: its
//!                                          node's memory divided by the ranks on that node)
//! SIZE    := a number and a unit: B, KB, MB, GB, TB (decimal) or KiB, MiB, GiB, TiB
//! N       := a whole number from 1 to 65535
//! hosts   := HOST ["*" N] ( "," HOST ["*" N] )*
//!          | "@" FILE                      a hostfile: one `HOST`, `HOST*N` or `HOST slots=N`
//!                                          a line; `#` starts a comment; blank lines ignored
//! ssh-option := "ship"                     copy the executable to each host once (cached by build)
//!          | "partial"                     go on without hosts that cannot be reached
//!          | "connect-timeout=" SECONDS    give up on a host after this long (default 30)
//!          | "mem=" SIZE                   each worker's memory limit (default: its host's
//!                                          memory divided by the workers started on that host)
//! ```
//!
//! A hostfile is read when the plan is parsed. Its path may contain `/`: the level
//! ends at a `/` followed by another level's name (`ssh:@conf/hosts.txt/threads:2`).
//!
//! Without `N`, `threads` and `processes` use [`available_cores`](crate::available_cores):
//! the cores this process may really use.

use std::fmt;
use std::str::FromStr;

/// The largest worker count a plan string may ask for.
pub const MAX_WORKERS: usize = 65_535;

/// A worker count: given in the plan string, or the cores this process may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// As many as [`available_cores`](crate::available_cores) says.
    Auto,
    /// Exactly this many (at least 1).
    Exactly(usize),
}

impl Workers {
    /// The number of workers this resolves to on this machine, now.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Auto => crate::available_cores(),
            Workers::Exactly(n) => n,
        }
    }
}

/// One SSH host of an `ssh:` plan with its number of workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// The host name as `ssh` understands it (may name an entry of `~/.ssh/config`).
    pub host: String,
    /// Workers to start on the host.
    pub workers: usize,
}

/// An `ssh:` level: the hosts and the options after `;`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshLevel {
    /// The hosts, in order, with their worker counts.
    pub hosts: Vec<SshHost>,
    /// The hostfile they were read from (`ssh:@FILE`), as written in the plan.
    pub hostfile: Option<String>,
    /// `ship`: copy the executable to every host (once per build) instead of
    /// expecting it at the same path there.
    pub ship: bool,
    /// `partial`: a host that cannot be reached is reported and the others go on.
    pub partial: bool,
    /// `connect-timeout=SECONDS`: how long to wait for a host before giving up
    /// (`None`: `WHEREVER_SSH_CONNECT_TIMEOUT`, else 30 s).
    pub connect_timeout: Option<u64>,
    /// `mem=SIZE`: each worker's memory limit in bytes; `None`: each host's memory
    /// divided by the workers started on it.
    pub memory_limit: Option<u64>,
}

/// The options of a `processes` level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessesOptions {
    /// Each worker's memory limit in bytes (`mem=SIZE`); `None`: the machine's memory
    /// divided by the workers.
    pub memory_limit: Option<u64>,
}

/// The options of an `mpi` level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpiOptions {
    /// Each worker rank's memory limit in bytes (`mem=SIZE`); `None`: its node's
    /// memory divided by the ranks on that node.
    pub memory_limit: Option<u64>,
}

/// One level of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// In the calling thread, one task at a time (eagerly, at `submit`).
    Sequential,
    /// A pool of threads in this process.
    Threads(Workers),
    /// Worker processes of this program on this machine, with their options.
    Processes(Workers, ProcessesOptions),
    /// A running scheduler at `host:port`.
    Tcp {
        /// The scheduler's host name or address.
        host: String,
        /// The scheduler's port.
        port: u16,
    },
    /// Workers started on these hosts over SSH.
    Ssh(SshLevel),
    /// Workers started in a Slurm allocation, with `srun` options as key/value pairs.
    Slurm(Vec<(String, String)>),
    /// Workers in Slurm batch jobs this program submits (`slurm:jobs=N,...`, or
    /// built with [`SlurmPlan`](crate::SlurmPlan)).
    SlurmJobs(wherever_cluster::launcher::SlurmJobsSpec),
    /// Under `mpirun`: rank 0 runs `main` and the scheduler, the other ranks are the
    /// workers; a count, if given, must match them.
    Mpi(Workers, MpiOptions),
}

/// How and where tasks run: one [`Level`] per nesting depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    levels: Vec<Level>,
}

/// A plan string that does not follow the grammar; the message says what was
/// expected, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plan `{input}`: {reason}")]
pub struct PlanError {
    /// The whole string that was given.
    pub input: String,
    /// What is wrong and what was expected.
    pub reason: String,
}

const EXPECTED: &str =
    "expected sequential, threads[:N], processes[:N], tcp://HOST:PORT, ssh:HOST[*N],... \
                        (or ssh:@HOSTFILE), slurm[:KEY=VALUE,...] or mpi[:N], nested levels joined with `/`";

impl Plan {
    /// A plan with these levels (outermost first); at least one.
    pub fn new(levels: Vec<Level>) -> Result<Self, PlanError> {
        if levels.is_empty() {
            return Err(PlanError {
                input: String::new(),
                reason: format!("a plan needs a level; {EXPECTED}"),
            });
        }
        Ok(Plan { levels })
    }

    /// The plan `sequential`.
    pub fn sequential() -> Self {
        Plan {
            levels: vec![Level::Sequential],
        }
    }

    /// The plan `threads:n` (or `threads` with `None`).
    pub fn threads(n: Option<usize>) -> Self {
        Plan {
            levels: vec![Level::Threads(n.map_or(Workers::Auto, Workers::Exactly))],
        }
    }

    /// Parses a plan string (see the module documentation for the grammar).
    pub fn parse(input: &str) -> Result<Self, PlanError> {
        let error = |reason: String| PlanError {
            input: input.to_string(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(error(format!("the plan is empty; {EXPECTED}")));
        }
        let levels = split_levels(trimmed)
            .into_iter()
            .map(|level| parse_level(level.trim()))
            .collect::<Result<Vec<_>, String>>()
            .map_err(error)?;
        Ok(Plan { levels })
    }

    /// The plan named by the `WHEREVER_PLAN` environment variable, or else `default`.
    pub fn from_env_or(default: &str) -> Result<Self, PlanError> {
        match std::env::var("WHEREVER_PLAN") {
            Ok(value) => Plan::parse(&value),
            Err(_) => Plan::parse(default),
        }
    }

    /// The plan given as `flag` (a program's own parsed `--plan` option), else
    /// `WHEREVER_PLAN`, else `default`.
    pub fn from_flag_or_env(flag: Option<&str>, default: &str) -> Result<Self, PlanError> {
        match flag {
            Some(plan) => Plan::parse(plan),
            None => Plan::from_env_or(default),
        }
    }

    /// The plan given with `--plan STRING` (or `--plan=STRING`) among the program's
    /// arguments, else `WHEREVER_PLAN`, else `default`.
    pub fn from_args_or(default: &str) -> Result<Self, crate::Error> {
        match crate::args::flag_value(std::env::args(), "--plan")? {
            Some(value) => Ok(Plan::parse(&value)?),
            None => Ok(Plan::from_env_or(default)?),
        }
    }

    /// All levels, outermost first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// The outermost level: where top-level tasks run.
    pub fn first(&self) -> &Level {
        &self.levels[0]
    }

    /// The plan for tasks submitted by tasks: the levels after the first, or
    /// `None` when this plan has one level.
    pub fn inner(&self) -> Option<Plan> {
        (self.levels.len() > 1).then(|| Plan {
            levels: self.levels[1..].to_vec(),
        })
    }
}

impl FromStr for Plan {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::parse(s)
    }
}

/// Splits at `/`, except inside the `tcp://` prefix and inside an `ssh:@FILE`
/// hostfile path (there only a `/` followed by a level's name splits).
fn split_levels(input: &str) -> Vec<&str> {
    let mut levels = Vec::new();
    let mut rest = input;
    loop {
        let level = rest.trim_start();
        let skip = if level.starts_with("tcp://") {
            rest.find("tcp://").unwrap() + 6
        } else {
            0
        };
        let in_hostfile = level.starts_with("ssh:@");
        let split = rest[skip..]
            .match_indices('/')
            .map(|(i, _)| skip + i)
            .find(|&i| !in_hostfile || starts_a_level(&rest[i + 1..]));
        match split {
            Some(i) => {
                levels.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                levels.push(rest);
                return levels;
            }
        }
    }
}

/// Whether `text` begins with a level's name (followed by its end, `:` or `/`), or
/// is empty (a trailing `/`, reported as an empty level).
fn starts_a_level(text: &str) -> bool {
    let text = text.trim_start();
    if text.is_empty() || text.starts_with("tcp://") {
        return true;
    }
    ["sequential", "threads", "processes", "ssh", "slurm", "mpi"]
        .iter()
        .any(|word| {
            text.strip_prefix(word)
                .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
        })
}

fn parse_level(level: &str) -> Result<Level, String> {
    if level.is_empty() {
        return Err(format!("a nested level is empty; {EXPECTED}"));
    }
    if let Some(address) = level.strip_prefix("tcp://") {
        return parse_tcp(address);
    }
    let (word, argument) = match level.split_once(':') {
        Some((word, argument)) => (word, Some(argument)),
        None => (level, None),
    };
    match (word, argument) {
        ("sequential", None) => Ok(Level::Sequential),
        ("sequential", Some(_)) => Err("`sequential` takes no `:` argument".to_string()),
        ("threads", argument) => Ok(Level::Threads(parse_workers("threads", argument)?)),
        ("processes", argument) => parse_processes(argument),
        ("mpi", argument) => parse_mpi(argument),
        ("ssh", Some(hosts)) => parse_ssh(hosts),
        ("ssh", None) => {
            Err("expected ssh:HOST[*N][,HOST[*N]...] or ssh:@HOSTFILE (no hosts given)".to_string())
        }
        ("slurm", argument) => parse_slurm(argument),
        (other, _) => {
            let hint = suggestion(other)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            Err(format!("unknown level `{other}`{hint}; {EXPECTED}"))
        }
    }
}

/// `processes[:N][,mem=SIZE]` (also `processes:mem=SIZE`), after `processes:`.
fn parse_processes(argument: Option<&str>) -> Result<Level, String> {
    let (workers, memory_limit) = parse_workers_and_memory("processes", argument)?;
    Ok(Level::Processes(workers, ProcessesOptions { memory_limit }))
}

/// `mpi[:N][,mem=SIZE]` (also `mpi:mem=SIZE`), after `mpi:`.
fn parse_mpi(argument: Option<&str>) -> Result<Level, String> {
    let (workers, memory_limit) = parse_workers_and_memory("mpi", argument)?;
    Ok(Level::Mpi(workers, MpiOptions { memory_limit }))
}

/// `WORD[:N][,mem=SIZE]` (also `WORD:mem=SIZE`), after `WORD:`: the worker count
/// and the memory limit; errors name `word` and the option.
fn parse_workers_and_memory(
    word: &str,
    argument: Option<&str>,
) -> Result<(Workers, Option<u64>), String> {
    let Some(argument) = argument else {
        return Ok((Workers::Auto, None));
    };
    let mut parts = argument.split(',');
    let first = parts.next().unwrap_or_default();
    let (workers, options) = if first.contains('=') {
        (Workers::Auto, argument.split(','))
    } else {
        (parse_workers(word, Some(first))?, parts)
    };
    let mut memory_limit = None;
    for option in options {
        match option.split_once('=') {
            Some(("mem", size)) if memory_limit.is_none() => {
                memory_limit = Some(parse_memory_option(word, size)?);
            }
            Some(("mem", _)) => return Err(format!("{word} option `mem` is given twice")),
            _ => {
                return Err(format!(
                    "unknown {word} option `{option}`; expected mem=SIZE (e.g. \
                     {word}:2,mem=4GB)"
                ))
            }
        }
    }
    Ok((workers, memory_limit))
}

/// The bytes of `word`'s option `mem=SIZE`; the error names the plan and the option.
fn parse_memory_option(word: &str, size: &str) -> Result<u64, String> {
    crate::plan_memory::parse_memory_size(size)
        .map_err(|why| format!("{word} option mem=SIZE: {why}"))
}

fn parse_workers(word: &str, argument: Option<&str>) -> Result<Workers, String> {
    match argument {
        None => Ok(Workers::Auto),
        Some(text) => parse_count(text).map(Workers::Exactly).map_err(|why| {
            format!("expected {word}:N with N a worker count from 1 to {MAX_WORKERS}, {why}")
        }),
    }
}

fn parse_count(text: &str) -> Result<usize, String> {
    if text.is_empty() {
        return Err("but nothing follows `:`".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("got `{text}`"));
    }
    match text.parse::<usize>() {
        Ok(0) => Err("got 0".to_string()),
        Ok(n) if n <= MAX_WORKERS => Ok(n),
        _ => Err(format!("got `{text}`")),
    }
}

fn parse_tcp(address: &str) -> Result<Level, String> {
    let expected = "expected tcp://HOST:PORT with PORT from 1 to 65535";
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{expected} (no `:PORT` in `tcp://{address}`)"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{expected} (no host name before `:{port}`)"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Level::Tcp {
            host: host.to_string(),
            port,
        }),
        _ => Err(format!("{expected} (got port `{port}`)")),
    }
}

fn parse_ssh(argument: &str) -> Result<Level, String> {
    let mut parts = argument.split(';');
    let hosts = parts.next().unwrap_or_default().trim();
    let mut level = match hosts.strip_prefix('@') {
        Some(file) => SshLevel {
            hosts: read_hostfile(file.trim())?,
            hostfile: Some(file.trim().to_string()),
            ..SshLevel::default()
        },
        None => SshLevel {
            hosts: parse_ssh_hosts(hosts)?,
            ..SshLevel::default()
        },
    };
    for option in parts {
        match option.trim().split_once('=') {
            None if option.trim() == "ship" => level.ship = true,
            None if option.trim() == "partial" => level.partial = true,
            Some((key, size)) if key.trim() == "mem" => {
                if level.memory_limit.is_some() {
                    return Err("ssh option `mem` is given twice".to_string());
                }
                level.memory_limit = Some(parse_memory_option("ssh", size)?);
            }
            Some((key, seconds)) if key.trim() == "connect-timeout" => {
                level.connect_timeout = Some(
                    seconds
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (1..=86_400).contains(s))
                        .ok_or_else(|| {
                            format!(
                                "expected ssh:...;connect-timeout=SECONDS with SECONDS a whole \
                                 number from 1 to 86400, got `{}`",
                                seconds.trim()
                            )
                        })?,
                );
            }
            _ => {
                return Err(format!(
                    "unknown ssh option `{}`; expected ship, partial, connect-timeout=SECONDS \
                     or mem=SIZE after `;`",
                    option.trim()
                ))
            }
        }
    }
    Ok(Level::Ssh(level))
}

fn parse_ssh_hosts(hosts: &str) -> Result<Vec<SshHost>, String> {
    let mut parsed = Vec::new();
    for entry in hosts.split(',') {
        let entry = entry.trim();
        let (host, workers) = match entry.split_once('*') {
            Some((host, count)) => (
                host,
                parse_count(count).map_err(|why| {
                    format!("expected ssh:HOST*N with N from 1 to {MAX_WORKERS}, {why}")
                })?,
            ),
            None => (entry, 1),
        };
        check_host(host).map_err(|why| {
            format!("expected ssh:HOST[*N][,HOST[*N]...], got {why} in `{hosts}`")
        })?;
        parsed.push(SshHost {
            host: host.to_string(),
            workers,
        });
    }
    Ok(parsed)
}

/// An error unless `host` can be a host for `ssh` (no blanks, not an option).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() || host.contains(char::is_whitespace) {
        Err("an empty or blank host".to_string())
    } else if host.starts_with('-') {
        Err(format!("the host `{host}`, which would be an ssh option"))
    } else if host.contains(['@', ';', '/', '\'', '"', '`', '$']) && !is_user_at_host(host) {
        Err(format!(
            "the host `{host}` with a character a host name cannot have"
        ))
    } else {
        Ok(())
    }
}

/// `user@host` with plain names on both sides.
fn is_user_at_host(text: &str) -> bool {
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:[]".contains(c))
    };
    matches!(text.split_once('@'), Some((user, host)) if plain(user) && plain(host))
}

/// The hosts of a hostfile: one `HOST`, `HOST*N` or `HOST slots=N` a line; `#`
/// starts a comment; blank lines are ignored. Errors name the file and the line.
fn read_hostfile(path: &str) -> Result<Vec<SshHost>, String> {
    if path.is_empty() {
        return Err("expected ssh:@HOSTFILE, got no file name after `@`".to_string());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the hostfile `{path}`: {e}"))?;
    let hosts = parse_hostfile(&text).map_err(|(line, why)| {
        format!("hostfile `{path}` line {line}: {why}; expected HOST, HOST*N or HOST slots=N")
    })?;
    if hosts.is_empty() {
        return Err(format!("the hostfile `{path}` names no host"));
    }
    Ok(hosts)
}

/// [`read_hostfile`]'s parsing; an error is `(line number, what is wrong)`.
fn parse_hostfile(text: &str) -> Result<Vec<SshHost>, (usize, String)> {
    let mut hosts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let (host, workers) = match (first.split_once('*'), words.next(), words.next()) {
            (Some((host, count)), None, _) => (host, count),
            (None, None, _) => (first, "1"),
            (None, Some(slots), None) => match slots.strip_prefix("slots=") {
                Some(count) => (first, count),
                None => return Err((number, format!("got `{slots}` after the host"))),
            },
            _ => return Err((number, format!("got `{line}`"))),
        };
        let workers = parse_count(workers).map_err(|why| {
            (
                number,
                format!("a worker count from 1 to {MAX_WORKERS}, {why}"),
            )
        })?;
        check_host(host).map_err(|why| (number, format!("got {why}")))?;
        hosts.push(SshHost {
            host: host.to_string(),
            workers,
        });
    }
    Ok(hosts)
}

fn parse_slurm(argument: Option<&str>) -> Result<Level, String> {
    let Some(options) = argument else {
        return Ok(Level::Slurm(Vec::new()));
    };
    let (per_task, options) = match options.split_once(',') {
        _ if options == wherever_cluster::launcher::slurm_spec::PER_TASK_WORD => (true, None),
        Some((first, rest)) if first == wherever_cluster::launcher::slurm_spec::PER_TASK_WORD => {
            (true, Some(rest))
        }
        _ => (false, Some(options)),
    };
    let Some(options) = options else {
        return wherever_cluster::launcher::SlurmJobsSpec::per_task_from_options(&[])
            .map(Level::SlurmJobs);
    };
    options
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                Ok((key.trim().to_string(), value.trim().to_string()))
            }
            _ if pair.trim() == wherever_cluster::launcher::slurm_spec::PER_TASK_WORD => {
                Err("`per-task` must come first: slurm:per-task[,KEY=VALUE...]".to_string())
            }
            _ => Err(format!(
                "expected slurm:KEY=VALUE[,KEY=VALUE...], got `{pair}`"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|options| {
            if per_task {
                wherever_cluster::launcher::SlurmJobsSpec::per_task_from_options(&options)
                    .map(Level::SlurmJobs)
            } else if options.iter().any(|(key, _)| key == "jobs") {
                wherever_cluster::launcher::SlurmJobsSpec::from_options(&options)
                    .map(Level::SlurmJobs)
            } else {
                Ok(Level::Slurm(options))
            }
        })
}

fn suggestion(word: &str) -> Option<&'static str> {
    [
        "sequential",
        "threads",
        "processes",
        "ssh",
        "slurm",
        "mpi",
        "tcp://",
    ]
    .into_iter()
    .find(|known| known.starts_with(word) || word.starts_with(known.trim_end_matches("://")))
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Auto => Ok(()),
            Workers::Exactly(n) => write!(f, ":{n}"),
        }
    }
}

/// `,mem=BYTESB` after a worker count (`:mem=BYTESB` without one), if a limit is set.
fn write_memory_option(
    f: &mut fmt::Formatter<'_>,
    workers: Workers,
    memory_limit: Option<u64>,
) -> fmt::Result {
    if let Some(bytes) = memory_limit {
        let separator = if workers == Workers::Auto { ':' } else { ',' };
        write!(f, "{separator}mem={bytes}B")?;
    }
    Ok(())
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Sequential => write!(f, "sequential"),
            Level::Threads(n) => write!(f, "threads{n}"),
            Level::Processes(n, options) => {
                write!(f, "processes{n}")?;
                write_memory_option(f, *n, options.memory_limit)
            }
            Level::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Level::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Level::Ssh(level) => {
                let hosts: Vec<String> = level
                    .hosts
                    .iter()
                    .map(|h| {
                        if h.workers == 1 {
                            h.host.clone()
                        } else {
                            format!("{}*{}", h.host, h.workers)
                        }
                    })
                    .collect();
                match &level.hostfile {
                    Some(file) => write!(f, "ssh:@{file}")?,
                    None => write!(f, "ssh:{}", hosts.join(","))?,
                }
                if level.ship {
                    write!(f, ";ship")?;
                }
                if level.partial {
                    write!(f, ";partial")?;
                }
                if let Some(seconds) = level.connect_timeout {
                    write!(f, ";connect-timeout={seconds}")?;
                }
                if let Some(bytes) = level.memory_limit {
                    write!(f, ";mem={bytes}B")?;
                }
                Ok(())
            }
            Level::Slurm(options) if options.is_empty() => write!(f, "slurm"),
            Level::Slurm(options) => {
                let options: Vec<String> =
                    options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "slurm:{}", options.join(","))
            }
            // Extra sbatch lines, modules and a prologue have no string form.
            Level::SlurmJobs(spec) => {
                let mut options: Vec<String> = spec
                    .options()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if spec.is_per_task() {
                    options.insert(
                        0,
                        wherever_cluster::launcher::slurm_spec::PER_TASK_WORD.to_string(),
                    );
                }
                write!(f, "slurm:{}", options.join(","))
            }
            Level::Mpi(n, options) => {
                write!(f, "mpi{n}")?;
                write_memory_option(f, *n, options.memory_limit)
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let levels: Vec<String> = self.levels.iter().map(Level::to_string).collect();
        write!(f, "{}", levels.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(input: &str) -> String {
        Plan::parse(input).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_level_kind() {
        let cases = [
            ("sequential", Level::Sequential),
            ("threads", Level::Threads(Workers::Auto)),
            ("threads:4", Level::Threads(Workers::Exactly(4))),
            (
                "processes:2",
                Level::Processes(Workers::Exactly(2), ProcessesOptions::default()),
            ),
            (
                "processes:2,mem=200000000B",
                Level::Processes(
                    Workers::Exactly(2),
                    ProcessesOptions {
                        memory_limit: Some(200_000_000),
                    },
                ),
            ),
            (
                "processes:mem=4096B",
                Level::Processes(
                    Workers::Auto,
                    ProcessesOptions {
                        memory_limit: Some(4096),
                    },
                ),
            ),
            (
                "tcp://127.0.0.1:8786",
                Level::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8786,
                },
            ),
            ("mpi", Level::Mpi(Workers::Auto, MpiOptions::default())),
            (
                "mpi:3,mem=300000000B",
                Level::Mpi(
                    Workers::Exactly(3),
                    MpiOptions {
                        memory_limit: Some(300_000_000),
                    },
                ),
            ),
            (
                "mpi:mem=4096B",
                Level::Mpi(
                    Workers::Auto,
                    MpiOptions {
                        memory_limit: Some(4096),
                    },
                ),
            ),
            (
                "ssh:node1*8,node2",
                Level::Ssh(SshLevel {
                    hosts: vec![
                        SshHost {
                            host: "node1".into(),
                            workers: 8,
                        },
                        SshHost {
                            host: "node2".into(),
                            workers: 1,
                        },
                    ],
                    ..SshLevel::default()
                }),
            ),
            (
                "ssh:root@node1*2;ship;partial;connect-timeout=5",
                Level::Ssh(SshLevel {
                    hosts: vec![SshHost {
                        host: "root@node1".into(),
                        workers: 2,
                    }],
                    ship: true,
                    partial: true,
                    connect_timeout: Some(5),
                    ..SshLevel::default()
                }),
            ),
            (
                "ssh:node1*2,node2;mem=2000000000B",
                Level::Ssh(SshLevel {
                    hosts: vec![
                        SshHost {
                            host: "node1".into(),
                            workers: 2,
                        },
                        SshHost {
                            host: "node2".into(),
                            workers: 1,
                        },
                    ],
                    memory_limit: Some(2_000_000_000),
                    ..SshLevel::default()
                }),
            ),
            (
                "slurm:nodes=2,cpus=4",
                Level::Slurm(vec![
                    ("nodes".into(), "2".into()),
                    ("cpus".into(), "4".into()),
                ]),
            ),
        ];
        for (text, level) in cases {
            let plan = Plan::parse(text).unwrap();
            assert_eq!(plan.levels(), &[level], "{text}");
            assert_eq!(plan.to_string(), text, "round trip of {text}");
        }
    }

    #[test]
    fn slurm_with_jobs_submits_jobs_and_round_trips() {
        let text = "slurm:jobs=2,partition=debug,time=00:05:00,workers-per-job=2";
        let plan = Plan::parse(text).unwrap();
        let Level::SlurmJobs(spec) = plan.first() else {
            panic!("{plan:?}")
        };
        assert_eq!((spec.jobs(), spec.workers_per_job()), (2, 2));
        assert_eq!(plan.to_string(), text);
        assert!(matches!(
            Plan::parse("slurm:ntasks=2").unwrap().first(),
            Level::Slurm(_)
        ));
    }

    #[test]
    fn slurm_per_task_submits_a_job_per_task_and_round_trips() {
        for text in [
            "slurm:per-task",
            "slurm:per-task,partition=debug,time=00:05:00,max-pending=4",
        ] {
            let plan = Plan::parse(text).unwrap();
            let Level::SlurmJobs(spec) = plan.first() else {
                panic!("{plan:?}")
            };
            assert!(spec.is_per_task(), "{text}");
            assert_eq!((spec.jobs(), spec.workers_per_job()), (0, 1), "{text}");
            assert_eq!(plan.to_string(), text);
        }
        let plan = Plan::parse("slurm:per-task,max-pending=4").unwrap();
        let Level::SlurmJobs(spec) = plan.first() else {
            panic!("{plan:?}")
        };
        assert_eq!(spec.max_pending(), 4);
        let Level::SlurmJobs(spec) = Plan::parse("slurm:per-task").unwrap().first().clone() else {
            panic!()
        };
        assert_eq!(
            spec.max_pending(),
            wherever_cluster::launcher::slurm_spec::DEFAULT_MAX_PENDING
        );
    }

    #[test]
    fn malformed_slurm_per_task_plans_are_one_line_errors() {
        let cases = [
            ("slurm:per-task,jobs=2", "`jobs` is not one of per-task's"),
            ("slurm:per-task,workers-per-job=2", "use slurm:jobs=N"),
            ("slurm:per-task,nodes=2", "a per-task job runs one worker"),
            (
                "slurm:per-task,ntasks-per-node=2",
                "a per-task job runs one worker",
            ),
            (
                "slurm:per-task,max-pending=0",
                "max-pending=`0`: expected a whole number",
            ),
            ("slurm:per-task,max-pending=many", "max-pending=`many`"),
            ("slurm:per-task,max-pending=1,max-pending=2", "given twice"),
            (
                "slurm:per-task,partiton=debug",
                "`partiton` is not one of per-task's",
            ),
            ("slurm:per-task,time=5m", "time=`5m`"),
            ("slurm:per-task,mem=lots", "mem=`lots`"),
            ("slurm:per-task,partition=", "expected slurm:KEY=VALUE"),
            ("slurm:per-task,", "expected slurm:KEY=VALUE"),
            (
                "slurm:partition=debug,per-task",
                "`per-task` must come first",
            ),
            ("slurm:per-task,per-task", "`per-task` must come first"),
            (
                "slurm:jobs=2,max-pending=3",
                "unknown slurm option `max-pending`",
            ),
        ];
        for (text, expected) in cases {
            let error = Plan::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }

    #[test]
    fn parses_nested_levels() {
        let plan = Plan::parse("processes:2/threads:2").unwrap();
        assert_eq!(plan.levels().len(), 2);
        assert_eq!(plan.inner().unwrap().to_string(), "threads:2");
        let plan = Plan::parse("tcp://sched:8786/threads:3").unwrap();
        assert_eq!(
            plan.first(),
            &Level::Tcp {
                host: "sched".into(),
                port: 8786
            }
        );
        assert_eq!(plan.to_string(), "tcp://sched:8786/threads:3");
    }

    #[test]
    fn malformed_plans_give_one_line_errors_saying_what_was_expected() {
        let cases = [
            ("threads:0", "expected threads:N with N a worker count from 1 to 65535, got 0"),
            ("threads:-1", "expected threads:N with N a worker count from 1 to 65535, got `-1`"),
            ("thread", "unknown level `thread` (did you mean `threads`?)"),
            ("processes:", "expected processes:N with N a worker count from 1 to 65535, but nothing follows `:`"),
            ("tcp://nohost", "expected tcp://HOST:PORT with PORT from 1 to 65535 (no `:PORT` in `tcp://nohost`)"),
            ("", "the plan is empty"),
            ("   ", "the plan is empty"),
            ("tcp://host:99999", "got port `99999`"),
            ("tcp://:80", "no host name"),
            ("threads:2/", "a nested level is empty"),
            ("sequential:3", "takes no `:` argument"),
            ("ssh:", "empty or blank host"),
            ("ssh:a*0", "expected ssh:HOST*N with N from 1 to 65535, got 0"),
            ("ssh:a,,b", "got an empty or blank host in `a,,b`"),
            ("ssh:*3", "got an empty or blank host"),
            ("ssh:-oProxyCommand=x", "which would be an ssh option"),
            ("ssh:a;b", "unknown ssh option `b`; expected ship, partial, connect-timeout=SECONDS or mem=SIZE"),
            ("ssh:a*2;mem=2", "ssh option mem=SIZE: `2` has no unit"),
            ("ssh:a;mem=0GB", "ssh option mem=SIZE: `0GB` is zero"),
            ("ssh:a;mem=lots", "ssh option mem=SIZE: expected a size with a unit"),
            ("ssh:a;mem=", "ssh option mem=SIZE: expected a size with a unit"),
            ("ssh:a;mem=1GB;mem=2GB", "ssh option `mem` is given twice"),
            ("ssh:a;memory=1GB", "unknown ssh option `memory=1GB`"),
            ("ssh:a;mem=9000TB", "ssh option mem=SIZE: `9000TB` is too large"),
            ("mpi:2,mem=2", "mpi option mem=SIZE: `2` has no unit"),
            ("mpi:mem=zero", "mpi option mem=SIZE: expected a size with a unit"),
            ("mpi:2,mem=1GB,mem=1GB", "mpi option `mem` is given twice"),
            ("mpi:2,ram=1GB", "unknown mpi option `ram=1GB`; expected mem=SIZE"),
            ("mpi:0,mem=1GB", "expected mpi:N with N a worker count"),
            ("mpi:2,", "unknown mpi option ``"),
            ("ssh:a;connect-timeout=0", "connect-timeout=SECONDS with SECONDS a whole number"),
            ("ssh:a;connect-timeout=soon", "got `soon`"),
            ("ssh:@", "no file name after `@`"),
            ("ssh:@/no/such/hostfile.txt", "cannot read the hostfile `/no/such/hostfile.txt`"),
            ("slurm:nodes", "expected slurm:KEY=VALUE"),
            ("slurm:jobs=0", "jobs=`0`: expected a whole number from 1"),
            ("slurm:jobs=x", "jobs=`x`"),
            ("slurm:jobs=2,jobs=3", "`jobs` is given twice"),
            ("slurm:jobs=2,ntasks=4", "unknown slurm option `ntasks`"),
            ("slurm:jobs=2,time=1:2:3:4", "time=`1:2:3:4`: expected MINUTES"),
            ("slurm:jobs=2,time=soon", "time=`soon`"),
            ("slurm:jobs=2,mem=4XB", "mem=`4XB`"),
            ("slurm:jobs=2,partition=", "expected slurm:KEY=VALUE"),
            ("slurm:jobs=2,partition=a\u{7}", "control characters"),
            ("slurm:jobs=2,death-timeout=-1", "death-timeout=`-1`"),
            ("slurm:jobs=2,workers-per-job=0", "workers-per-job=`0`"),
            ("threads:99999999999999999999999", "got `99999999999999999999999`"),
            ("processes:2,mem=200", "processes option mem=SIZE: `200` has no unit"),
            ("processes:2,mem=0MB", "`0MB` is zero"),
            ("processes:2,mem=plenty", "expected a size with a unit, e.g. 4GB or 512MiB"),
            ("processes:2,mem=", "expected a size with a unit"),
            ("processes:2,mem=5000TB", "`5000TB` is too large (at most 1000TB)"),
            ("processes:2,mem=1GB,mem=2GB", "`mem` is given twice"),
            ("processes:2,memory=1GB", "unknown processes option `memory=1GB`; expected mem=SIZE"),
            ("processes:2,", "unknown processes option ``"),
            ("processes:x,mem=1GB", "expected processes:N with N a worker count"),
        ];
        for (input, expected) in cases {
            let message = error(input);
            assert!(
                message.contains(expected),
                "`{input}` gave `{message}`, expected it to contain `{expected}`"
            );
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(
                message.starts_with(&format!("invalid plan `{input}`")),
                "{message}"
            );
        }
    }

    /// A hostfile in the temporary directory with `text`, removed on drop.
    struct Hostfile(std::path::PathBuf);

    impl Hostfile {
        fn new(tag: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "wherever-hostfile-{tag}-{}.txt",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            Hostfile(path)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for Hostfile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn host(host: &str, workers: usize) -> SshHost {
        SshHost {
            host: host.into(),
            workers,
        }
    }

    #[test]
    fn hostfiles_give_one_host_a_line_with_its_count() {
        let file = Hostfile::new(
            "good",
            "# the cluster\nnode1\n\n  node2*4  # four\nnode3 slots=2\n\tnode4\n",
        );
        let text = format!("ssh:@{};partial/threads:2", file.path());
        let plan = Plan::parse(&text).unwrap();
        let Level::Ssh(level) = plan.first() else {
            panic!("{plan:?}")
        };
        assert_eq!(
            level.hosts,
            [
                host("node1", 1),
                host("node2", 4),
                host("node3", 2),
                host("node4", 1)
            ]
        );
        assert!(level.partial && !level.ship);
        assert_eq!(level.hostfile.as_deref(), Some(file.path().as_str()));
        assert_eq!(plan.inner().unwrap().to_string(), "threads:2");
        assert_eq!(
            plan.to_string(),
            text,
            "the plan shows the file, not its hosts"
        );
    }

    #[test]
    fn a_hostfile_path_may_hold_slashes_and_names_that_are_not_levels() {
        assert_eq!(
            split_levels("ssh:@/etc/wherever/hosts.txt;ship/processes:2/threads"),
            [
                "ssh:@/etc/wherever/hosts.txt;ship",
                "processes:2",
                "threads"
            ]
        );
        assert_eq!(
            split_levels("ssh:@conf/threadsafe/h/mpi"),
            ["ssh:@conf/threadsafe/h", "mpi"]
        );
        assert_eq!(split_levels("ssh:a,b/threads:2"), ["ssh:a,b", "threads:2"]);
    }

    #[test]
    fn malformed_hostfile_lines_are_errors_naming_the_file_and_the_line() {
        let cases = [
            (
                "node1\nnode2*0\n",
                "line 2: a worker count from 1 to 65535, got 0",
            ),
            (
                "node1 slots=x\n",
                "line 1: a worker count from 1 to 65535, got `x`",
            ),
            (
                "# one\nnode1 cpus=3\n",
                "line 2: got `cpus=3` after the host",
            ),
            ("node1 slots=2 extra\n", "line 1: got `node1 slots=2 extra`"),
            ("*3\n", "line 1: got an empty or blank host"),
            (
                "-oProxyCommand=evil\n",
                "line 1: got the host `-oProxyCommand=evil`",
            ),
            ("\n# only comments\n\n", "names no host"),
        ];
        for (index, (text, expected)) in cases.into_iter().enumerate() {
            let file = Hostfile::new(&format!("bad{index}"), text);
            let input = format!("ssh:@{}", file.path());
            let message = error(&input);
            assert!(
                message.contains(&file.path()) && message.contains(expected),
                "{text:?} gave `{message}`, expected the file and `{expected}`"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }
}
