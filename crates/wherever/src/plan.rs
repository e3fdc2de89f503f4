//! Plans: how and where tasks run, parsed from a string.
//!
//! # Grammar
//!
//! ```text
//! plan    := level ( "/" level )*          nested levels: the first runs the top-level tasks,
//!                                          the next the tasks those tasks submit, and so on
//! level   := "sequential"                  in the calling thread, one task at a time
//!          | "threads" [ ":" N ]           a pool of N threads in this process
//!          | "processes" [ ":" N ]         N worker processes of this program on this machine
//!          | "tcp://" HOST ":" PORT        a running `wherever scheduler`
//!          | "ssh:" HOST ["*" N] ( "," HOST ["*" N] )*
//!                                          workers started over SSH, N per host (default 1)
//!          | "slurm" [ ":" KEY "=" VALUE ( "," KEY "=" VALUE )* ]
//!                                          one worker per task of the Slurm allocation
//!                                          this runs in, through one srun; KEY is an
//!                                          srun long option (ntasks, cpus-per-task, ...)
//!          | "mpi" [ ":" N ]               under mpirun: rank 0 runs main, the other
//!                                          ranks (N of them, checked) are the workers
//! N       := a whole number from 1 to 65535
//! ```
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

/// One level of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// In the calling thread, one task at a time (eagerly, at `submit`).
    Sequential,
    /// A pool of threads in this process.
    Threads(Workers),
    /// Worker processes of this program on this machine.
    Processes(Workers),
    /// A running scheduler at `host:port`.
    Tcp {
        /// The scheduler's host name or address.
        host: String,
        /// The scheduler's port.
        port: u16,
    },
    /// Workers started on these hosts over SSH.
    Ssh(Vec<SshHost>),
    /// Workers started in a Slurm allocation, with `srun` options as key/value pairs.
    Slurm(Vec<(String, String)>),
    /// Under `mpirun`: rank 0 runs `main` and the scheduler, the other ranks are the
    /// workers; a count, if given, must match them.
    Mpi(Workers),
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
    "expected sequential, threads[:N], processes[:N], tcp://HOST:PORT, ssh:HOST[*N],..., \
                        slurm[:KEY=VALUE,...] or mpi[:N], nested levels joined with `/`";

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

/// Splits at `/`, except inside the `tcp://` prefix.
fn split_levels(input: &str) -> Vec<&str> {
    let mut levels = Vec::new();
    let mut rest = input;
    loop {
        let skip = if rest.trim_start().starts_with("tcp://") {
            rest.find("tcp://").unwrap() + 6
        } else {
            0
        };
        match rest[skip..].find('/') {
            Some(i) => {
                levels.push(&rest[..skip + i]);
                rest = &rest[skip + i + 1..];
            }
            None => {
                levels.push(rest);
                return levels;
            }
        }
    }
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
        ("processes", argument) => Ok(Level::Processes(parse_workers("processes", argument)?)),
        ("mpi", argument) => Ok(Level::Mpi(parse_workers("mpi", argument)?)),
        ("ssh", Some(hosts)) => parse_ssh(hosts),
        ("ssh", None) => Err("expected ssh:HOST[*N][,HOST[*N]...] (no hosts given)".to_string()),
        ("slurm", argument) => parse_slurm(argument),
        (other, _) => {
            let hint = suggestion(other)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            Err(format!("unknown level `{other}`{hint}; {EXPECTED}"))
        }
    }
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

fn parse_ssh(hosts: &str) -> Result<Level, String> {
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
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!(
                "expected ssh:HOST[*N][,HOST[*N]...], got an empty or blank host in `{hosts}`"
            ));
        }
        parsed.push(SshHost {
            host: host.to_string(),
            workers,
        });
    }
    Ok(Level::Ssh(parsed))
}

fn parse_slurm(argument: Option<&str>) -> Result<Level, String> {
    let Some(options) = argument else {
        return Ok(Level::Slurm(Vec::new()));
    };
    options
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                Ok((key.trim().to_string(), value.trim().to_string()))
            }
            _ => Err(format!(
                "expected slurm:KEY=VALUE[,KEY=VALUE...], got `{pair}`"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Level::Slurm)
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

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Sequential => write!(f, "sequential"),
            Level::Threads(n) => write!(f, "threads{n}"),
            Level::Processes(n) => write!(f, "processes{n}"),
            Level::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Level::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Level::Ssh(hosts) => {
                let hosts: Vec<String> = hosts
                    .iter()
                    .map(|h| {
                        if h.workers == 1 {
                            h.host.clone()
                        } else {
                            format!("{}*{}", h.host, h.workers)
                        }
                    })
                    .collect();
                write!(f, "ssh:{}", hosts.join(","))
            }
            Level::Slurm(options) if options.is_empty() => write!(f, "slurm"),
            Level::Slurm(options) => {
                let options: Vec<String> =
                    options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "slurm:{}", options.join(","))
            }
            Level::Mpi(n) => write!(f, "mpi{n}"),
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
            ("processes:2", Level::Processes(Workers::Exactly(2))),
            (
                "tcp://127.0.0.1:8786",
                Level::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8786,
                },
            ),
            ("mpi", Level::Mpi(Workers::Auto)),
            (
                "ssh:node1*8,node2",
                Level::Ssh(vec![
                    SshHost {
                        host: "node1".into(),
                        workers: 8,
                    },
                    SshHost {
                        host: "node2".into(),
                        workers: 1,
                    },
                ]),
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
            ("ssh:a*0", "expected ssh:HOST*N"),
            ("slurm:nodes", "expected slurm:KEY=VALUE"),
            ("threads:99999999999999999999999", "got `99999999999999999999999`"),
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
}
