//! Reproducible, non-overlapping random streams for tasks.
//!
//! # Algorithm
//!
//! Every task draws from **ChaCha8** (`rand_chacha::ChaCha8Rng`), the ChaCha stream
//! cipher with 8 rounds used as a counter-based generator. A ChaCha generator is
//! addressed by a 256-bit *key*, a 64-bit *stream* number and a 64-bit block
//! *counter*; block `(key, stream, counter)` is the keyed permutation of that input.
//!
//! - The run's root seed `s` (a `u64`) is expanded into the key with SplitMix64
//!   (four successive outputs, little-endian). The expansion is written out here, not
//!   taken from `SeedableRng::seed_from_u64`, so a dependency update cannot change it.
//! - The task at position `p` in its client's submission order (for `map`, the
//!   item's position) draws from stream `p` of that key, starting at counter 0.
//! - A task that submits tasks of its own gives its children a key derived from its
//!   own: the first 32 bytes of stream `2^63 + p` of the parent key ([`StreamKey::child`]).
//!
//! # Why streams do not overlap
//!
//! Two tasks of the same client have different positions `p != q`, so every block
//! they can ever draw has a different input `(key, p, c)` versus `(key, q, c')`: the
//! inputs differ in the stream word whatever the counters are. A stream holds 2^64
//! blocks of 64 bytes (2^70 bytes), so no task can run off the end of its stream into
//! another's. The streams are therefore disjoint pieces of one keyed function's
//! output, not seeds that merely "probably" start far apart. Positions stay below
//! 2^63, so the key-derivation streams `2^63 + p` are disjoint from all task streams
//! too; keys of nested levels are outputs of the parent's keyed function, so their
//! streams are independent of the parent's as far as ChaCha is a pseudo-random
//! function.
//!
//! Nothing here depends on the plan, the worker count or the chunking, which is why
//! results are bit-identical under every plan.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// The stream number offset reserved for deriving child keys.
const CHILD_KEY_STREAMS: u64 = 1 << 63;

/// The address of a family of random streams: a 256-bit ChaCha key. Tasks submitted
/// by one client draw from the streams of its key, one stream per position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamKey {
    key: [u8; 32],
}

impl StreamKey {
    /// The root key of a run seeded with `seed` (SplitMix64 expansion).
    pub fn from_seed(seed: u64) -> Self {
        let mut state = seed;
        let mut key = [0u8; 32];
        for word in key.chunks_exact_mut(8) {
            word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        StreamKey { key }
    }

    /// The random stream of the task at `position`.
    pub fn stream(&self, position: u64) -> TaskRng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(position);
        TaskRng { inner: rng }
    }

    /// The key for tasks submitted by the task at `position` (nested submissions).
    pub fn child(&self, position: u64) -> StreamKey {
        assert!(
            position < CHILD_KEY_STREAMS,
            "task positions stay below 2^63"
        );
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(CHILD_KEY_STREAMS + position);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        StreamKey { key }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A task's own random number generator: ChaCha8 on the task's stream (see the
/// module documentation for how streams are assigned and why they do not overlap).
/// Use it with `rand` and `rand_distr`, e.g. `rng.sample(StandardNormal)`.
#[derive(Debug, Clone)]
pub struct TaskRng {
    inner: ChaCha8Rng,
}

impl RngCore for TaskRng {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    #[inline]
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_words(mut rng: TaskRng) -> [u64; 4] {
        [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ]
    }

    #[test]
    fn same_seed_and_position_give_the_same_stream() {
        let a = first_words(StreamKey::from_seed(1).stream(5));
        let b = first_words(StreamKey::from_seed(1).stream(5));
        assert_eq!(a, b);
    }

    #[test]
    fn positions_seeds_and_children_give_different_streams() {
        let key = StreamKey::from_seed(1);
        let base = first_words(key.stream(0));
        assert_ne!(base, first_words(key.stream(1)));
        assert_ne!(base, first_words(StreamKey::from_seed(2).stream(0)));
        assert_ne!(base, first_words(key.child(0).stream(0)));
        assert_ne!(key.child(0), key.child(1));
    }

    #[test]
    fn the_algorithm_is_pinned() {
        // If this changes, every user's published results change: never update it
        // without a major version and a note in the changelog.
        let words = first_words(StreamKey::from_seed(42).stream(7));
        assert_eq!(words, PINNED);
    }

    const PINNED: [u64; 4] = [
        3822459529237854166,
        8688307332784605643,
        7210452555278872466,
        11119755542280737312,
    ];
}
