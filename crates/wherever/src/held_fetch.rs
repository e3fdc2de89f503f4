//! Results left on their workers until read, as a future's slot holds them
//! ([`Slot::resolve_held`](crate::slot::Slot::resolve_held)): fetched alone and
//! blocking (a plain read), off the reading thread (`.await`), or together in
//! one batched fetch ([`fetch_together`], for `gather`).

use crate::slot::{Fetcher, Slot};
use crate::TaskError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use wherever_cluster::HeldResult;

/// Turns a held result's fetched bytes (or the error) into the task's outcome.
pub(crate) type Decoder<R> =
    Box<dyn FnOnce(Result<Vec<u8>, TaskError>) -> Result<R, TaskError> + Send>;

/// Called with a fetched outcome.
pub(crate) type Then<R> = Box<dyn FnOnce(Result<R, TaskError>) + Send>;

/// How a held result is fetched.
pub(crate) trait Fetch<R>: Send {
    /// Fetches it, blocking this thread.
    fn fetch(self: Box<Self>) -> Result<R, TaskError>;
    /// Fetches it off this thread and calls `then` with the outcome.
    fn fetch_then(self: Box<Self>, then: Then<R>);
    /// The cluster's held result and its decoder, to fetch it with others;
    /// `Err` with itself if it is not one.
    fn into_held(self: Box<Self>) -> Result<(HeldResult, Decoder<R>), Fetcher<R>>;
}

/// Any function that fetches (as tests make them): run on a helper thread when
/// it must not block the reader.
impl<R, F> Fetch<R> for F
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, TaskError> + Send + 'static,
{
    fn fetch(self: Box<Self>) -> Result<R, TaskError> {
        self()
    }

    fn fetch_then(self: Box<Self>, then: Then<R>) {
        let spawned = std::thread::Builder::new()
            .name("wherever-fetch".into())
            .spawn(move || then(self()));
        if let Err(error) = spawned {
            panic!("cannot start a thread to fetch a result: {error}");
        }
    }

    fn into_held(self: Box<Self>) -> Result<(HeldResult, Decoder<R>), Fetcher<R>> {
        Err(self)
    }
}

/// A cluster task's result held on its workers, and how to decode it.
pub(crate) struct RemoteFetch<R> {
    pub(crate) held: HeldResult,
    pub(crate) decode: Decoder<R>,
}

impl<R: Send + 'static> Fetch<R> for RemoteFetch<R> {
    fn fetch(self: Box<Self>) -> Result<R, TaskError> {
        let RemoteFetch { held, decode } = *self;
        decode(held.fetch_blocking())
    }

    /// Fetched on the cluster connection's runtime; `then` runs there.
    fn fetch_then(self: Box<Self>, then: Then<R>) {
        let RemoteFetch { held, decode } = *self;
        held.fetch_bytes_then(Box::new(move |bytes| then(decode(bytes))));
    }

    fn into_held(self: Box<Self>) -> Result<(HeldResult, Decoder<R>), Fetcher<R>> {
        let RemoteFetch { held, decode } = *self;
        Ok((held, decode))
    }
}

/// Fetches the held results of those of `slots` that have ended, all together:
/// one request per worker for the results it holds, not one per result. Readers
/// of these slots meanwhile wait for the fetch; a slot not ended or already
/// fetched is left as it is.
pub(crate) fn fetch_together<'a, R: 'a>(slots: impl Iterator<Item = &'a Arc<Slot<R>>>) {
    fetch_taken(
        slots
            .filter_map(|slot| slot.take_held().map(|fetch| (slot, fetch)))
            .collect(),
    );
}

/// Fetches results taken from their slots ([`Slot::take_held`]) together,
/// blocking this thread, and puts each into its slot, decoded here as it
/// arrives while the next are read.
fn fetch_taken<R>(taken: Vec<(&Arc<Slot<R>>, Fetcher<R>)>) {
    let mut together: Vec<(&Arc<Slot<R>>, Decoder<R>)> = Vec::new();
    let mut held = Vec::new();
    let mut alone = Vec::new();
    for (slot, fetch) in taken {
        match fetch.into_held() {
            Ok((result, decode)) => {
                held.push(result);
                together.push((slot, decode));
            }
            Err(fetch) => alone.push((slot, fetch)),
        }
    }
    let mut together: Vec<Option<_>> = together.into_iter().map(Some).collect();
    HeldResult::fetch_all(held, |index, bytes| {
        if let Some((slot, decode)) = together.get_mut(index).and_then(Option::take) {
            slot.put_fetched(decode(bytes));
        }
    });
    for (slot, fetch) in alone {
        slot.put_fetched(fetch.fetch());
    }
}

/// A fetched result on its way to its slot: the slot, its decoder, the bytes.
type Fetched<R> = (Arc<Slot<R>>, Decoder<R>, Result<Vec<u8>, TaskError>);

/// Fetches results taken from their slots ([`Slot::take_held`]) together, off
/// this thread: one request per worker for the results it holds. Each is
/// decoded and put into its slot (waking its readers) as it arrives, on a
/// thread of this batch's own, so that the connection's runtime goes on reading
/// the next meanwhile (as [`fetch_together`] decodes on its caller's thread).
/// `batched` runs once the batched requests have ended (at once if there are
/// none); a result that did not come that way is then still being fetched
/// alone, as a read of it alone would, and reaches its slot later. Other
/// fetches (not a cluster's) run on their own. `largest`, if given, is raised
/// to the size of each encoded result that comes.
pub(crate) fn fetch_taken_then<R: Send + Sync + 'static>(
    taken: Vec<(Arc<Slot<R>>, Fetcher<R>)>,
    largest: Option<Arc<AtomicUsize>>,
    batched: impl FnOnce() + Send + 'static,
) {
    let (decoding, to_decode) = std::sync::mpsc::channel::<Fetched<R>>();
    let mut held: Vec<(HeldResult, wherever_cluster::client::BytesThen)> = Vec::new();
    for (slot, fetch) in taken {
        match fetch.into_held() {
            Ok((result, decode)) => {
                let (largest, decoding) = (largest.clone(), decoding.clone());
                let then: wherever_cluster::client::BytesThen = Box::new(move |bytes| {
                    if let (Ok(bytes), Some(largest)) = (&bytes, largest) {
                        largest.fetch_max(bytes.len(), Ordering::Relaxed);
                    }
                    // No decoding thread: decoded here.
                    if let Err(unsent) = decoding.send((slot, decode, bytes)) {
                        let (slot, decode, bytes) = unsent.0;
                        slot.put_fetched(decode(bytes));
                    }
                });
                held.push((result, then));
            }
            Err(fetch) => fetch.fetch_then(Box::new(move |outcome| slot.put_fetched(outcome))),
        }
    }
    drop(decoding);
    if held.is_empty() {
        return batched();
    }
    // Ends once every result was handed over (each `then` ran or was
    // dropped). Without it (no thread to be had), `to_decode` is dropped and
    // each result is decoded where it arrives.
    let _ = std::thread::Builder::new()
        .name("wherever-decode".into())
        .spawn(move || {
            for (slot, decode, bytes) in to_decode {
                slot.put_fetched(decode(bytes));
            }
        });
    HeldResult::fetch_all_then(held, batched);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// How long a test waits for an event before it is considered hung.
    const HANG_GUARD: Duration = Duration::from_secs(60);

    /// A waker that tells a channel when it is woken.
    struct ChannelWaker(std::sync::Mutex<mpsc::Sender<()>>);

    impl std::task::Wake for ChannelWaker {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(());
        }
    }

    #[test]
    fn polling_a_held_result_fetches_it_off_the_polling_thread_and_wakes_once_here() {
        let slot = Slot::<u64>::new("t", 0);
        slot.add_handle();
        let (finish, finishing) = mpsc::channel::<()>();
        let polling_thread = std::thread::current().id();
        let fetch: Fetcher<u64> = Box::new(move || {
            assert_ne!(std::thread::current().id(), polling_thread);
            finishing.recv_timeout(HANG_GUARD).expect("told to finish");
            Ok(11)
        });
        assert!(slot.resolve_held(fetch).is_ok());
        let (woken, wakes) = mpsc::channel();
        let waker = std::task::Waker::from(Arc::new(ChannelWaker(woken.into())));
        // The fetch waits for `finish`: a poll that fetched here would hang.
        assert!(!slot.poll_fetched(&waker));
        assert!(!slot.poll_fetched(&waker), "polled again while fetching");
        finish.send(()).unwrap();
        wakes.recv_timeout(HANG_GUARD).expect("woken once fetched");
        assert!(slot.poll_fetched(&waker));
        assert!(matches!(slot.outcome_for_last_handle(), Ok(Ok(11))));
    }

    #[test]
    fn fetching_together_leaves_pending_slots_alone_and_fills_held_ones() {
        let held: Vec<Arc<Slot<u64>>> = (0..3).map(|i| Slot::new("t", i)).collect();
        for (i, slot) in held.iter().enumerate() {
            slot.add_handle();
            let value = i as u64 * 10;
            assert!(slot.resolve_held(Box::new(move || Ok(value))).is_ok());
        }
        let pending = Slot::<u64>::new("t", 0);
        pending.add_handle();
        fetch_together(held.iter().chain(std::iter::once(&pending)));
        for (i, slot) in held.iter().enumerate() {
            assert!(slot.take_held().is_none(), "slot {i} still held");
            assert!(matches!(slot.outcome_for_last_handle(), Ok(Ok(v)) if v == i as u64 * 10));
        }
        assert!(!pending.is_resolved());
    }
}
