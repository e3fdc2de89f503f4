//! Drawing progress: an `indicatif` bar on a terminal, or periodic plain lines.

use super::mode::Mode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::time::{Duration, Instant};

/// How often plain-line progress prints a line.
pub(crate) const LINE_PERIOD: Duration = Duration::from_secs(5);

/// Where a call stands: items done (failed included) and failed, of `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) total: u64,
}

/// A progress display for one call.
pub(crate) enum Display {
    /// A bar on the terminal.
    Bar(ProgressBar),
    /// Plain lines, one every [`LINE_PERIOD`] and one at the end.
    Lines {
        label: String,
        start: Instant,
        last: Instant,
    },
}

impl Display {
    /// A display for `mode` (none for [`Mode::Off`]), labelled `label`.
    pub(crate) fn new(mode: Mode, label: &str, total: u64) -> Option<Display> {
        match mode {
            Mode::Off => None,
            Mode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("#>-");
                bar.set_style(style);
                bar.set_prefix(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(Display::Bar(bar))
            }
            Mode::Lines => {
                let now = Instant::now();
                Some(Display::Lines {
                    label: label.to_string(),
                    start: now,
                    last: now,
                })
            }
        }
    }

    /// Shows `counts` (plain lines: only when a period has passed).
    pub(crate) fn update(&mut self, counts: Counts) {
        match self {
            Display::Bar(bar) => {
                bar.set_length(counts.total);
                bar.set_position(counts.done);
                if counts.failed > 0 {
                    bar.set_message(format!("{} failed", counts.failed));
                }
            }
            Display::Lines { label, start, last } => {
                if last.elapsed() >= LINE_PERIOD {
                    *last = Instant::now();
                    print_line(label, *start, counts);
                }
            }
        }
    }

    /// Shows the final `counts` and ends the display.
    pub(crate) fn finish(self, counts: Counts) {
        match self {
            Display::Bar(bar) => {
                bar.set_length(counts.total);
                bar.set_position(counts.done);
                bar.finish();
                // The bar stays; what the program prints next starts on a line of its own.
                let _ = writeln!(std::io::stderr().lock());
            }
            Display::Lines { label, start, .. } => print_line(&label, start, counts),
        }
    }
}

/// One plain progress line on stderr.
fn print_line(label: &str, start: Instant, counts: Counts) {
    let line = plain_line(label, start.elapsed(), counts);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `wherever: map calc_mean 120/200 done (3 failed), 45.1/s, ETA 2s`
pub(crate) fn plain_line(label: &str, elapsed: Duration, counts: Counts) -> String {
    let rate = counts.done as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut line = format!("wherever: {label} {}/{} done", counts.done, counts.total);
    if counts.failed > 0 {
        line += &format!(" ({} failed)", counts.failed);
    }
    line += &format!(", {rate:.1}/s");
    if counts.done < counts.total && rate > 0.0 {
        let eta = (counts.total - counts.done) as f64 / rate;
        line += &format!(", ETA {eta:.0}s");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_done_total_failures_rate_and_eta() {
        let counts = Counts {
            done: 50,
            failed: 2,
            total: 100,
        };
        assert_eq!(
            plain_line("map f", Duration::from_secs(10), counts),
            "wherever: map f 50/100 done (2 failed), 5.0/s, ETA 10s"
        );
        let finished = Counts {
            done: 100,
            failed: 0,
            total: 100,
        };
        assert_eq!(
            plain_line("map f", Duration::from_secs(10), finished),
            "wherever: map f 100/100 done, 10.0/s"
        );
    }
}
