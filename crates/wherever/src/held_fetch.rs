//! Results left on their workers until read, as a future's slot holds them
//! ([`Slot::resolve_held`](crate::slot::Slot::resolve_held)): fetched alone and
//! blocking (a plain read), off the reading thread (`.await`), or together in
//! one batched fetch ([`fetch_together`], for `gather`).

use crate::slot::{Fetcher, Slot};
use crate::TaskError;
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
    let mut together: Vec<(&Arc<Slot<R>>, Decoder<R>)> = Vec::new();
    let mut held = Vec::new();
    let mut alone = Vec::new();
    for slot in slots {
        let Some(fetch) = slot.take_held() else {
            continue;
        };
        match fetch.into_held() {
            Ok((result, decode)) => {
                held.push(result);
                together.push((slot, decode));
            }
            Err(fetch) => alone.push((slot, fetch)),
        }
    }
    // Each decoded here as it arrives, while the next are read.
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
