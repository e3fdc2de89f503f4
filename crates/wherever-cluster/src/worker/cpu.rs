//! The CPU time this worker process used so far (user and system), from
//! `/proc/self/stat`, reported with its memory for the dashboard's workers page (which
//! turns two reports into a usage rate).

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat`'s times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// This process's CPU time so far; zero where `/proc` is not available.
pub(crate) fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .unwrap_or_default()
}

/// User plus system time in a `stat` line: fields 14 and 15, counted after the
/// command name in parentheses (which may hold spaces and parentheses itself).
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = user.checked_add(system)?;
    Some(Duration::from_millis(
        ticks.saturating_mul(1000 / TICKS_PER_SECOND),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_added_after_the_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_secs(3)));
    }

    #[test]
    fn malformed_stat_lines_give_nothing() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("42 (x) S 1 2"), None);
        assert_eq!(parse_stat("42 (x) S 1 2 3 4 5 6 7 8 9 ten 11"), None);
    }

    #[test]
    fn this_process_s_stat_line_parses() {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            assert!(parse_stat(&stat).is_some(), "{stat}");
        }
    }
}
