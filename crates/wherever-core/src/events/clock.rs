//! The stream's coarse clock: one atomic, read by every emission, that a ticker thread
//! advances every [`TICK`] while some bus has a subscriber. Reading it is one relaxed
//! load of a cache line written once a tick, where `Instant::now()` per event would
//! cost a good share of a trivial task.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How often the ticker advances the clock (its resolution).
pub const TICK: Duration = Duration::from_millis(1);

static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Nanoseconds since [`EPOCH`], as last advanced.
static NANOS: AtomicU64 = AtomicU64::new(0);
/// How many subscriptions exist, over all buses (the ticker sleeps when none).
static READERS: AtomicUsize = AtomicUsize::new(0);
static TICKER: OnceLock<Option<Thread>> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// The precise time, in nanoseconds since the process's clock epoch.
pub fn precise_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// `instant` in nanoseconds since the epoch (0 if before it).
pub fn nanos_of(instant: Instant) -> u64 {
    instant.saturating_duration_since(epoch()).as_nanos() as u64
}

/// The coarse time: at most about one [`TICK`] behind [`precise_nanos`] while somebody
/// subscribed (the only time emissions read it).
#[inline]
pub fn coarse_nanos() -> u64 {
    NANOS.load(Ordering::Relaxed)
}

/// Brings the coarse clock up to the precise time.
pub fn advance() {
    NANOS.fetch_max(precise_nanos(), Ordering::Relaxed);
}

/// A subscription was made: the clock must tick.
pub fn reader_added() {
    READERS.fetch_add(1, Ordering::Relaxed);
    advance();
    if let Some(ticker) = TICKER.get_or_init(spawn_ticker) {
        ticker.unpark();
    }
}

/// A subscription was dropped.
pub fn reader_removed() {
    READERS.fetch_sub(1, Ordering::Relaxed);
}

/// The ticker: advances the clock every tick while any subscription exists, parks
/// otherwise. Without it (spawning failed) the clock still advances on each read and
/// subscription, only more coarsely.
fn spawn_ticker() -> Option<Thread> {
    std::thread::Builder::new()
        .name("wherever-event-clock".to_string())
        .spawn(|| loop {
            if READERS.load(Ordering::Relaxed) == 0 {
                std::thread::park();
                continue;
            }
            advance();
            std::thread::sleep(TICK);
        })
        .ok()
        .map(|handle| handle.thread().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_back_and_advances_on_demand() {
        let before = coarse_nanos();
        advance();
        let after = coarse_nanos();
        assert!(after >= before);
        assert!(after <= precise_nanos());
    }
}
