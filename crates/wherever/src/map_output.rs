//! The buffer a `map` writes its results into, in place (as rayon's `collect` does):
//! chunks write their own disjoint windows, and only slots known to be written are
//! ever read or dropped.

/// A map's results, written in place by the chunks as they finish, so they are
/// neither gathered per chunk nor copied again.
pub(crate) struct Output<R> {
    buffer: Vec<R>,
    /// The buffer's start, taken once (the buffer is not touched until the end).
    base: *mut R,
    /// The number of slots: the buffer's capacity as the map asked for it.
    slots: usize,
    /// Ranges `(offset, count)` written so far, to drop if the map fails.
    written: Vec<(usize, usize)>,
}

/// A chunk's window of the output: a raw pointer to its first slot and its length.
pub(crate) struct Window<R> {
    start: *mut R,
    len: usize,
}

// SAFETY: a window is written by exactly one job, at disjoint slots, while the
// output it points into is kept alive and untouched by the map that waits for it.
unsafe impl<R: Send> Send for Window<R> {}

impl<R> Window<R> {
    /// Writes `value` at slot `at` of the window; panics if `at` is outside it.
    ///
    /// # Safety
    /// The output this window was taken from must be alive, and slot `at` must not
    /// have been written before.
    pub(crate) unsafe fn write(&self, at: usize, value: R) {
        assert!(
            at < self.len,
            "slot {at} is outside a window of {} slots",
            self.len
        );
        // SAFETY: `at` is inside the window, which is inside the live buffer.
        unsafe { self.start.add(at).write(value) }
    }

    /// Writes the value `produce` makes of each of `items` at the slot of the
    /// item's index, in order, stopping at the first error; `written` counts the
    /// slots written so far (also when `produce` panics). The window's bound is
    /// checked once, for all the items (panics if they do not fit), instead of
    /// once per slot: an item's index is below `items.len()`.
    ///
    /// # Safety
    /// The output this window was taken from must be alive, and none of its first
    /// `items.len()` slots written before.
    pub(crate) unsafe fn fill<A, E>(
        &self,
        items: Vec<A>,
        written: &std::cell::Cell<usize>,
        mut produce: impl FnMut(usize, A) -> Result<R, E>,
    ) -> Result<(), E> {
        assert!(
            items.len() <= self.len,
            "{} items do not fit in a window of {} slots",
            items.len(),
            self.len
        );
        for (at, item) in items.into_iter().enumerate() {
            let value = produce(at, item)?;
            // SAFETY: `at < items.len() <= self.len` (checked above), so the slot is
            // inside the window, which is inside the live buffer; each index comes
            // once, so it was not written before.
            unsafe { self.start.add(at).write(value) };
            written.set(at + 1);
        }
        Ok(())
    }
}

impl<R> Output<R> {
    /// An output of `slots` slots, none written.
    pub(crate) fn with_slots(slots: usize) -> Self {
        let mut buffer = Vec::with_capacity(slots);
        let base = buffer.as_mut_ptr();
        Output {
            buffer,
            base,
            slots,
            written: Vec::new(),
        }
    }

    /// The window of `len` slots from `offset`; panics if it does not fit.
    pub(crate) fn window(&self, offset: usize, len: usize) -> Window<R> {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.slots),
            "a window of {len} slots at {offset} does not fit in {} slots",
            self.slots
        );
        // SAFETY: `offset` is at most `slots`, the capacity the buffer was made with.
        Window {
            start: unsafe { self.base.add(offset) },
            len,
        }
    }

    /// Records that a chunk wrote the `count` slots from `offset` (no more than its
    /// window, which the caller vouches for).
    pub(crate) fn mark_written(&mut self, offset: usize, count: usize) {
        self.written.push((offset, count));
    }

    /// Writes the results of a chunk that came back from elsewhere into its
    /// `expected` slots from `offset`; a chunk of the wrong length is an error and
    /// nothing of it is written.
    pub(crate) fn write_all(
        &mut self,
        offset: usize,
        expected: usize,
        values: Vec<R>,
    ) -> Result<(), String> {
        if values.len() != expected {
            return Err(format!(
                "a chunk of {expected} items came back with {} results",
                values.len()
            ));
        }
        let window = self.window(offset, expected);
        let mut written = 0;
        for value in values {
            // SAFETY: the output is alive (`&mut self`), each offset range belongs
            // to one part and is written once.
            unsafe { window.write(written, value) };
            written += 1;
        }
        self.mark_written(offset, written);
        Ok(())
    }

    /// The results, if exactly the `slots` slots were written; else an error and
    /// what was written is dropped with the output.
    pub(crate) fn take_vec(&mut self) -> Result<Vec<R>, String> {
        let written: usize = self.written.iter().map(|(_, n)| n).sum();
        if written != self.slots {
            return Err(format!("{written} of {} results were written", self.slots));
        }
        self.written.clear();
        // SAFETY: the windows are disjoint and inside 0..slots, and they add up to
        // `slots` slots, so every slot below `slots` was written.
        unsafe { self.buffer.set_len(self.slots) };
        Ok(std::mem::take(&mut self.buffer))
    }
}

impl<R> Drop for Output<R> {
    fn drop(&mut self) {
        // A failed map: drop what was written; the buffer itself has length 0.
        for &(offset, count) in &self.written {
            // SAFETY: these slots were written and not yet handed out.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    self.base.add(offset),
                    count,
                ))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn full_output_becomes_the_vector() {
        let mut output = Output::with_slots(4);
        output.write_all(2, 2, vec![2, 3]).unwrap();
        output.write_all(0, 2, vec![0, 1]).unwrap();
        assert_eq!(output.take_vec().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_chunk_of_the_wrong_length_is_refused_and_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut output = Output::with_slots(3);
        let longer: Vec<Counted> = (0..5).map(|_| Counted(drops.clone())).collect();
        let error = output.write_all(0, 3, longer).unwrap_err();
        assert_eq!(error, "a chunk of 3 items came back with 5 results");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            5,
            "the refused chunk is dropped"
        );
        let shorter = vec![Counted(drops.clone())];
        assert!(output.write_all(0, 3, shorter).is_err());
        assert!(output.take_vec().is_err(), "nothing was written");
    }

    #[test]
    fn a_partly_written_output_is_an_error_and_drops_only_written_slots() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut output = Output::with_slots(4);
        let values = vec![Counted(drops.clone()), Counted(drops.clone())];
        output.write_all(1, 2, values).unwrap();
        assert_eq!(
            output.take_vec().err().as_deref(),
            Some("2 of 4 results were written")
        );
        drop(output);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_window_past_the_end_is_refused() {
        let output = Output::<u8>::with_slots(4);
        let _ = output.window(3, 2);
    }

    #[test]
    fn a_filled_window_counts_its_writes_and_stops_at_an_error() {
        let mut output = Output::with_slots(5);
        let window = output.window(1, 3);
        let written = std::cell::Cell::new(0);
        // SAFETY: the output is alive and nothing was written.
        let outcome = unsafe {
            window.fill(vec![10, 20, 30], &written, |at, item| match at {
                2 => Err(item),
                _ => Ok(item + at),
            })
        };
        assert_eq!((outcome, written.get()), (Err(30), 2));
        output.mark_written(1, written.get());
        assert_eq!(
            output.take_vec().err().as_deref(),
            Some("2 of 5 results were written")
        );
        let mut whole = Output::with_slots(2);
        let written = std::cell::Cell::new(0);
        // SAFETY: the output is alive and nothing was written.
        let filled = unsafe {
            whole
                .window(0, 2)
                .fill(vec![1, 2], &written, |_, v| Ok::<_, ()>(v))
        };
        assert_eq!(filled, Ok(()));
        whole.mark_written(0, written.get());
        assert_eq!(whole.take_vec().unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_task_panicking_mid_fill_leaves_the_slots_before_it_counted_and_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut output = Output::with_slots(4);
        let window = output.window(0, 4);
        let written = std::cell::Cell::new(0);
        let items: Vec<Counted> = (0..4).map(|_| Counted(drops.clone())).collect();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the output is alive and nothing was written.
            unsafe {
                window.fill(items, &written, |at, item| {
                    assert!(at < 2, "task {at} panics");
                    Ok::<_, ()>(item)
                })
            }
        }));
        assert!(unwound.is_err());
        assert_eq!(written.get(), 2);
        // The panicking item and the ones after it were dropped by the unwinding.
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        output.mark_written(0, written.get());
        assert!(output.take_vec().is_err());
        drop(output);
        assert_eq!(drops.load(Ordering::SeqCst), 4, "each value dropped once");
    }

    #[test]
    #[should_panic(expected = "do not fit in a window")]
    fn more_items_than_the_window_holds_are_refused_before_any_write() {
        let output = Output::<u8>::with_slots(4);
        let window = output.window(1, 2);
        let written = std::cell::Cell::new(0);
        // SAFETY: the output is alive; the fill is refused before touching memory.
        let _ = unsafe { window.fill(vec![1, 2, 3], &written, |_, v| Ok::<_, ()>(v)) };
    }

    #[test]
    #[should_panic(expected = "outside a window")]
    fn a_write_past_the_window_is_refused() {
        let output = Output::<u8>::with_slots(4);
        let window = output.window(0, 1);
        // SAFETY: the output is alive; the write is refused before touching memory.
        unsafe { window.write(1, 7) };
    }
}
