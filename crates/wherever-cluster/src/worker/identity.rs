//! A worker's name, group and deadline, read from the environment its launcher
//! set ([`WORKER_NAME_VARIABLE`], [`WORKER_GROUP_VARIABLE`],
//! [`DEADLINE_VARIABLE`]) and announced in its hello.

use crate::launcher::{WORKER_GROUP_VARIABLE, WORKER_NAME_VARIABLE};
use crate::protocol::MAX_WORKER_NAME;

/// The environment variable giving the time a worker must be gone by, in whole
/// seconds since the Unix epoch (a Slurm job's end): the scheduler places no task
/// on it that would not finish in time, and retires it gracefully before then.
pub const DEADLINE_VARIABLE: &str = "WHEREVER_WORKER_DEADLINE";

/// The environment variable giving how many tasks a worker takes before it leaves
/// (a `slurm:per-task` job's worker takes 1): a whole number from 1; unset, no limit.
pub const MAX_TASKS_VARIABLE: &str = "WHEREVER_WORKER_MAX_TASKS";

/// This worker's task limit from [`MAX_TASKS_VARIABLE`], if set.
pub fn max_tasks() -> Result<Option<u32>, String> {
    match read(MAX_TASKS_VARIABLE)? {
        None => Ok(None),
        Some(text) => parse_max_tasks(&text).map(Some),
    }
}

/// A task limit: a whole number from 1.
fn parse_max_tasks(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "{MAX_TASKS_VARIABLE}={text:?}: expected a whole number of tasks from 1                  (unset it for no limit)"
            )
        })
}

/// This worker's name from [`WORKER_NAME_VARIABLE`], if set.
pub fn name() -> Result<Option<String>, String> {
    read_name(WORKER_NAME_VARIABLE)
}

/// This worker's group from [`WORKER_GROUP_VARIABLE`], if set.
pub fn group() -> Result<Option<String>, String> {
    read_name(WORKER_GROUP_VARIABLE)
}

/// This worker's deadline from [`DEADLINE_VARIABLE`], if set.
pub fn deadline() -> Result<Option<u64>, String> {
    match read(DEADLINE_VARIABLE)? {
        None => Ok(None),
        Some(text) => parse_deadline(&text).map(Some),
    }
}

/// Milliseconds from now to `deadline` (seconds since the Unix epoch); 0 if past.
pub fn time_left_ms(deadline: u64) -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    deadline.saturating_mul(1000).saturating_sub(now_ms)
}

/// The value of `variable`, `None` if unset; not UTF-8 is an error naming it.
fn read(variable: &str) -> Result<Option<String>, String> {
    match std::env::var(variable) {
        Ok(text) => Ok(Some(text)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{variable} is not valid UTF-8")),
    }
}

/// A name or group from `variable`, checked.
fn read_name(variable: &str) -> Result<Option<String>, String> {
    match read(variable)? {
        None => Ok(None),
        Some(text) => check_name(variable, &text).map(Some),
    }
}

/// `text` as the value of `variable` if it is a usable name: not empty, at most
/// [`MAX_WORKER_NAME`] bytes, no control characters.
fn check_name(variable: &str, text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err(format!("{variable} is empty: unset it, or give a name"));
    }
    if text.len() > MAX_WORKER_NAME {
        return Err(format!(
            "{variable} is {} bytes long, more than the {MAX_WORKER_NAME} allowed",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{variable}={text:?} has control characters"));
    }
    Ok(text.to_string())
}

/// The deadline in `text`: whole seconds since the Unix epoch.
fn parse_deadline(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        format!(
            "{DEADLINE_VARIABLE}=`{text}`: expected whole seconds since the Unix epoch \
             (as `date +%s` prints)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_names_are_errors_naming_the_variable() {
        let empty = check_name(WORKER_NAME_VARIABLE, "").unwrap_err();
        assert!(empty.contains("WHEREVER_WORKER_NAME is empty"), "{empty}");
        let long = check_name(WORKER_GROUP_VARIABLE, &"x".repeat(300)).unwrap_err();
        assert!(
            long.contains("WHEREVER_WORKER_GROUP is 300 bytes long"),
            "{long}"
        );
        let control = check_name(WORKER_NAME_VARIABLE, "a\nb").unwrap_err();
        assert!(control.contains("control characters"), "{control}");
        assert_eq!(
            check_name(WORKER_NAME_VARIABLE, "4711.0").unwrap(),
            "4711.0"
        );
    }

    #[test]
    fn malformed_task_limits_are_errors_naming_the_variable() {
        for bad in ["", "0", "-1", "one", "1.5", "99999999999"] {
            let error = parse_max_tasks(bad).unwrap_err();
            assert!(error.starts_with("WHEREVER_WORKER_MAX_TASKS="), "{error}");
        }
        assert_eq!(parse_max_tasks(" 1 "), Ok(1));
    }

    #[test]
    fn malformed_deadlines_are_errors_naming_the_variable() {
        for bad in ["", "soon", "-5", "1.5", "99999999999999999999999"] {
            let error = parse_deadline(bad).unwrap_err();
            assert!(error.contains(DEADLINE_VARIABLE), "{error}");
        }
        assert_eq!(parse_deadline(" 1800000000 ").unwrap(), 1_800_000_000);
    }
}
