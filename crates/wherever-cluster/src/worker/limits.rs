//! A worker's memory limit and the fractions of it where it spills, pauses and
//! exits, as Dask's `memory_limit` and `distributed.worker.memory.*`.

use wherever_core::events::MemoryThresholds;

/// The environment variable giving a worker's memory limit in bytes (a whole
/// number); launchers set it (`processes:N,mem=SIZE`, by default the machine's
/// memory divided by the workers). Without it a worker takes the machine's memory,
/// divided by [`MEMORY_SHARE_VARIABLE`] when that is set.
pub const MEMORY_LIMIT_VARIABLE: &str = "WHEREVER_WORKER_MEMORY_LIMIT";

/// The environment variable giving how many workers share the memory of the
/// machine a worker runs on (a whole number, at least 1): without
/// [`MEMORY_LIMIT_VARIABLE`], the worker's limit is that machine's memory (its own
/// `/proc/meminfo`) divided by it. Launchers of remote workers set it (the ssh
/// workers started on one host, the MPI ranks on one node, the workers of a Slurm
/// job on one node), since only the worker can read its own machine's memory.
pub const MEMORY_SHARE_VARIABLE: &str = "WHEREVER_WORKER_MEMORY_SHARE";

/// The limits this process runs under as a worker, once [`MemoryLimits::from_env`]
/// has read them (changed by [`change_limit`]).
static THIS_WORKER: std::sync::Mutex<Option<MemoryLimits>> = std::sync::Mutex::new(None);

/// The fractions of the limit this worker's thresholds are at (`None`: off), as
/// [`MemoryLimits::from_env`] read them.
static FRACTIONS: std::sync::OnceLock<[Option<f64>; 3]> = std::sync::OnceLock::new();

/// The memory limits this worker process runs under now (`None` outside a
/// worker, or before it read them): a task can report its worker's limit with it.
pub fn worker_memory_limits() -> Option<MemoryLimits> {
    *THIS_WORKER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes `limit` bytes (at least 1) this worker's memory limit from now on, its
/// thresholds at the same fractions of it as before; returns the new limits,
/// which [`worker_memory_limits`] gives from now on.
pub fn change_limit(limit: u64) -> MemoryLimits {
    let fractions = FRACTIONS.get().copied().unwrap_or(DEFAULT_STEPS);
    let limits = MemoryLimits::at_fractions(limit.max(1), fractions);
    *THIS_WORKER.lock().unwrap_or_else(|p| p.into_inner()) = Some(limits);
    limits
}

/// [`DEFAULT_FRACTIONS`], each step on.
const DEFAULT_STEPS: [Option<f64>; 3] = [
    Some(DEFAULT_FRACTIONS.0),
    Some(DEFAULT_FRACTIONS.1),
    Some(DEFAULT_FRACTIONS.2),
];

/// The fraction of the limit past which held results spill to disk (default 0.6).
pub const TARGET_VARIABLE: &str = "WHEREVER_MEMORY_TARGET";

/// The fraction of the limit past which the worker starts no new task (default 0.8).
pub const PAUSE_VARIABLE: &str = "WHEREVER_MEMORY_PAUSE";

/// The fraction of the limit past which the worker exits to be restarted
/// (default 0.95).
pub const TERMINATE_VARIABLE: &str = "WHEREVER_MEMORY_TERMINATE";

/// The defaults of the three fractions, Dask's.
pub const DEFAULT_FRACTIONS: (f64, f64, f64) = (0.6, 0.8, 0.95);

/// A worker's memory limit and thresholds, in bytes (`None`: that step is off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryLimits {
    /// The limit.
    pub limit: u64,
    /// Past this many bytes, results spill.
    pub target: Option<u64>,
    /// Past this many bytes of resident memory, no new task starts.
    pub pause: Option<u64>,
    /// Past this many bytes of resident memory, the worker exits.
    pub terminate: Option<u64>,
}

impl MemoryLimits {
    /// This worker's limits, from the environment; an error naming the variable
    /// for a malformed value. The first call's limits are kept for
    /// [`worker_memory_limits`].
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok();
        let (limits, fractions) = Self::parse_with_fractions(
            var(MEMORY_LIMIT_VARIABLE).as_deref(),
            var(MEMORY_SHARE_VARIABLE).as_deref(),
            [
                var(TARGET_VARIABLE).as_deref(),
                var(PAUSE_VARIABLE).as_deref(),
                var(TERMINATE_VARIABLE).as_deref(),
            ],
            machine_memory,
        )?;
        let _ = FRACTIONS.set(fractions);
        THIS_WORKER
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(limits);
        Ok(limits)
    }

    /// The limit and thresholds as the event stream and the handshake carry
    /// them; `None` for no limit (the machine's memory could not be read).
    pub fn thresholds(&self) -> Option<MemoryThresholds> {
        (self.limit != u64::MAX).then_some(MemoryThresholds {
            limit: self.limit,
            target: self.target,
            pause: self.pause,
            terminate: self.terminate,
        })
    }

    /// The limits at `limit` bytes with thresholds at `fractions` of it.
    fn at_fractions(limit: u64, fractions: [Option<f64>; 3]) -> Self {
        let at = |fraction: Option<f64>| fraction.map(|f| (limit as f64 * f) as u64);
        MemoryLimits {
            limit,
            target: at(fractions[0]),
            pause: at(fractions[1]),
            terminate: at(fractions[2]),
        }
    }

    #[cfg(test)]
    fn parse(
        limit: Option<&str>,
        share: Option<&str>,
        fractions: [Option<&str>; 3],
        machine: impl FnOnce() -> Option<u64>,
    ) -> Result<Self, String> {
        Self::parse_with_fractions(limit, share, fractions, machine).map(|(limits, _)| limits)
    }

    /// The limits from the text of the five variables, and the fractions read;
    /// `machine` gives the machine's memory when no limit is given, divided by
    /// `share` if given.
    fn parse_with_fractions(
        limit: Option<&str>,
        share: Option<&str>,
        fractions: [Option<&str>; 3],
        machine: impl FnOnce() -> Option<u64>,
    ) -> Result<(Self, [Option<f64>; 3]), String> {
        let share = match share {
            None => 1,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    format!(
                        "{MEMORY_SHARE_VARIABLE}=`{text}`: expected a whole number of workers \
                         sharing this machine's memory (at least 1)"
                    )
                })?,
        };
        let limit = match limit {
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&bytes| bytes > 0)
                .ok_or_else(|| {
                    format!(
                        "{MEMORY_LIMIT_VARIABLE}=`{text}`: expected a whole number of bytes \
                         (at least 1)"
                    )
                })?,
            None => machine().map_or(u64::MAX, |total| (total / share).max(1)),
        };
        let names = [TARGET_VARIABLE, PAUSE_VARIABLE, TERMINATE_VARIABLE];
        let defaults = [
            DEFAULT_FRACTIONS.0,
            DEFAULT_FRACTIONS.1,
            DEFAULT_FRACTIONS.2,
        ];
        let mut read = [None; 3];
        for i in 0..3 {
            let fraction = match fractions[i].map(str::trim) {
                None => Some(defaults[i]),
                Some("off" | "false") => None,
                Some(text) => Some(
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| *f > 0.0 && *f <= 1.0)
                        .ok_or_else(|| {
                            format!(
                                "{}=`{text}`: expected a fraction of the memory limit above 0 \
                                 and at most 1 (e.g. {}), or `off`",
                                names[i], defaults[i]
                            )
                        })?,
                ),
            };
            read[i] = fraction;
        }
        Ok((Self::at_fractions(limit, read), read))
    }
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`).
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dasks_fractions_of_the_machine() {
        let limits = MemoryLimits::parse(None, None, [None; 3], || Some(1000)).unwrap();
        assert_eq!(
            limits,
            MemoryLimits {
                limit: 1000,
                target: Some(600),
                pause: Some(800),
                terminate: Some(950),
            }
        );
    }

    #[test]
    fn a_given_limit_and_fractions_are_taken_and_off_turns_a_step_off() {
        let limits = MemoryLimits::parse(
            Some("200000000"),
            Some("7"),
            [Some("0.5"), Some("off"), Some("1")],
            || None,
        )
        .unwrap();
        assert_eq!(limits.limit, 200_000_000);
        assert_eq!(limits.target, Some(100_000_000));
        assert_eq!(limits.pause, None);
        assert_eq!(limits.terminate, Some(200_000_000));
    }

    #[test]
    fn malformed_values_are_errors_naming_the_variable() {
        for limit in ["", "0", "-5", "200MB", "1.5"] {
            let error = MemoryLimits::parse(Some(limit), None, [None; 3], || None).unwrap_err();
            assert!(
                error.contains(&format!("{MEMORY_LIMIT_VARIABLE}=`{limit}`")),
                "{error}"
            );
        }
        for fraction in ["0", "1.5", "-0.2", "half", "NaN"] {
            let error =
                MemoryLimits::parse(Some("100"), None, [None, Some(fraction), None], || None)
                    .unwrap_err();
            assert!(
                error.contains(&format!("{PAUSE_VARIABLE}=`{fraction}`")),
                "{error}"
            );
        }
    }

    #[test]
    fn without_a_limit_the_machine_is_shared_by_the_workers_on_it() {
        let limits = MemoryLimits::parse(None, Some("4"), [None; 3], || Some(1000)).unwrap();
        assert_eq!(limits.limit, 250);
        assert_eq!(limits.target, Some(150));
        // A limit given wins over the share (checked in the test above, share 7).
        let unreadable = MemoryLimits::parse(None, Some("4"), [None; 3], || None).unwrap();
        assert_eq!(unreadable.limit, u64::MAX);
        for share in ["0", "", "two", "-1", "1.5"] {
            let error =
                MemoryLimits::parse(None, Some(share), [None; 3], || Some(1000)).unwrap_err();
            assert!(
                error.contains(&format!("{MEMORY_SHARE_VARIABLE}=`{share}`")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_changed_limit_keeps_the_fractions() {
        let limits = MemoryLimits::at_fractions(1000, [Some(0.5), None, Some(0.9)]);
        assert_eq!(
            limits,
            MemoryLimits {
                limit: 1000,
                target: Some(500),
                pause: None,
                terminate: Some(900),
            }
        );
        let thresholds = limits.thresholds().unwrap();
        assert_eq!((thresholds.limit, thresholds.pause), (1000, None));
        let unlimited = MemoryLimits::at_fractions(u64::MAX, DEFAULT_STEPS);
        assert_eq!(unlimited.thresholds(), None);
    }

    #[test]
    fn meminfo_gives_the_total_in_bytes() {
        let text = "MemTotal:       24684092 kB\nMemFree:        1 kB\n";
        assert_eq!(parse_meminfo(text), Some(24_684_092 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n"), None);
    }
}
