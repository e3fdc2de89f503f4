//! How long a worker keeps trying to reach its scheduler (Dask's
//! `--death-timeout`), and the connecting with backoff itself.

use crate::connection::{connect_tcp, HANDSHAKE_TIMEOUT};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The environment variable giving a worker's death timeout in seconds: how long
/// it keeps trying to connect (at start, or again after losing its scheduler)
/// before it gives up and exits with status 1. `0`: never try again.
pub const DEATH_TIMEOUT_VARIABLE: &str = "WHEREVER_DEATH_TIMEOUT";

/// The death timeout when [`DEATH_TIMEOUT_VARIABLE`] is not set (as Dask's).
pub const DEFAULT_DEATH_TIMEOUT: Duration = Duration::from_secs(60);

/// The first pause between connection attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// This worker's death timeout: [`DEATH_TIMEOUT_VARIABLE`] seconds if set, else
/// [`DEFAULT_DEATH_TIMEOUT`]; an error for text that is not a number of seconds.
pub fn death_timeout() -> Result<Duration, String> {
    match std::env::var(DEATH_TIMEOUT_VARIABLE) {
        Ok(text) => parse_seconds(&text).ok_or_else(|| {
            format!("{DEATH_TIMEOUT_VARIABLE}=`{text}`: expected a number of seconds (0 or more)")
        }),
        Err(_) => Ok(DEFAULT_DEATH_TIMEOUT),
    }
}

/// Parses a non-negative, finite number of seconds.
fn parse_seconds(text: &str) -> Option<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The pause after `attempts` failed attempts: doubling from [`FIRST_BACKOFF`],
/// at most [`MAX_BACKOFF`].
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.min(16))
        .min(MAX_BACKOFF)
}

/// Connects to `target`, trying again with backoff for up to `death_timeout`
/// (a zero timeout tries once, and only on the `first` connection: the local
/// launcher's workers never come back). The error says why it gave up.
pub(super) async fn connect_within(
    target: &str,
    death_timeout: Duration,
    first: bool,
) -> Result<TcpStream, String> {
    if death_timeout.is_zero() && !first {
        return Err(format!("lost the scheduler at {target}"));
    }
    let deadline = Instant::now() + death_timeout;
    let mut attempts = 0;
    loop {
        let attempt = deadline
            .saturating_duration_since(Instant::now())
            .max(HANDSHAKE_TIMEOUT);
        let error = match connect_tcp(target, attempt).await {
            Ok(stream) => return Ok(stream),
            Err(error) => error,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "cannot connect to the scheduler at {target}: {error} \
                 (gave up after {} s; set {DEATH_TIMEOUT_VARIABLE} to wait longer)",
                death_timeout.as_secs_f64()
            ));
        }
        if attempts == 0 {
            eprintln!(
                "wherever worker (process {}): cannot connect to the scheduler at {target} \
                 yet ({error}); trying again for up to {} s",
                std::process::id(),
                death_timeout.as_secs_f64()
            );
        }
        tokio::time::sleep(backoff(attempts).min(deadline - now)).await;
        attempts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn seconds_parse_as_non_negative_numbers() {
        assert_eq!(parse_seconds(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_seconds("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("soon"), None);
    }
}
