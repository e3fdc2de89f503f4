//! What a worker reports for the event stream, and only while the scheduler says
//! somebody reads it ([`OBSERVED`]): each task's start, and its resident memory, read
//! from `/proc/self/statm` at most once per [`REPORT_PERIOD`] when a task starts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether the scheduler's event stream has a reader (told by `Message::Observed`).
pub(crate) static OBSERVED: AtomicBool = AtomicBool::new(false);
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often a worker reports its memory at most.
pub(crate) const REPORT_PERIOD: Duration = Duration::from_secs(1);

/// The resident set size if a report is due (the first call, then once a period);
/// `None` when not due or where `/proc` is not available.
pub(crate) fn due_report(at: Instant) -> Option<u64> {
    static START: OnceLock<Instant> = OnceLock::new();
    static LAST: AtomicU64 = AtomicU64::new(u64::MAX);
    let now = at
        .saturating_duration_since(*START.get_or_init(|| at))
        .as_millis() as u64;
    let last = LAST.load(Ordering::Relaxed);
    if last != u64::MAX && now.saturating_sub(last) < REPORT_PERIOD.as_millis() as u64 {
        return None;
    }
    if LAST
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return None; // another thread reports
    }
    resident_bytes()
}

/// This process's resident set size in bytes, from `/proc/self/statm`.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm(&statm, page_size())
}

/// The resident bytes in a `statm` line (its second field counts pages).
fn parse_statm(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page)
}

fn page_size() -> u64 {
    // Linux on the machines we run on uses 4 KiB pages (statm counts them).
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_resident_pages_times_the_page_size() {
        assert_eq!(
            parse_statm("1000 250 30 1 0 100 0\n", 4096),
            Some(250 * 4096)
        );
        assert_eq!(parse_statm("", 4096), None);
        assert_eq!(parse_statm("1000 many", 4096), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        if std::path::Path::new("/proc/self/statm").exists() {
            assert!(resident_bytes().unwrap() > 0);
        }
    }
}
