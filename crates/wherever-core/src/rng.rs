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
//! - A *labelled* key ([`StreamKey::labelled`], behind `client.seeded(label)`) is
//!   derived from its parent key and the label alone, so one call (a `map`, a batch
//!   of submits, a `compute`) can run on a stream tree of its own, with positions
//!   starting at 0, whatever ran before it. For a `u64` label `h`, the key is the 32
//!   bytes at block `2^63 + (h >> 63)` of stream `2^63 + (h mod 2^63)` of the parent
//!   key. A text label is absorbed 8 bytes at a time: first its length `n` gives
//!   `k0` = the 32 bytes at block `2^63 + 2` of stream `2^63 + n`; then each 8-byte
//!   little-endian word `w` of the text (the last zero-padded) gives `k' = ` the 32
//!   bytes at block `2^63 + 2 + (w >> 63)` of stream `2^63 + (w mod 2^63)` of `k`.
//!   No hash function is involved: the label's bits go straight into ChaCha inputs.
//!
//! # The guarantee
//!
//! A task's random numbers depend only on the root seed, the labels on the way to
//! its client (none for the root client) and its position there: not on the plan,
//! the worker count, the chunking, or what else ran. Under a labelled client the
//! positions are the call's own item indices (0, 1, … for a `map`; submission order
//! for submits; depth-first order for a graph), so inserting a call before it, or
//! running it under another plan, does not change its numbers.
//!
//! Graphs (`delayed`): a node takes its position when it is first computed under a
//! key and keeps it, so computing the same graph again (under a client with the
//! same key) gives the same numbers; a graph rebuilt with new `delayed` calls and
//! computed under a fresh labelled client with the same label gets the same
//! depth-first positions, hence the same numbers too.
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
//! Labelled keys read blocks at counter `2^63` and above of the streams `2^63 + x`,
//! which neither task streams (stream below `2^63`) nor child keys (block 0) ever
//! read, so a labelled key is a ChaCha output on inputs no other key derivation and
//! no task uses. Two different `u64` labels read different (stream, block) inputs;
//! two different text labels differ in their length (different `k0`) or in a first
//! differing word (different inputs under the same key), and text and numbers use
//! different blocks. Distinct labels therefore give keys that are outputs of ChaCha
//! on distinct inputs: as far as ChaCha is a pseudo-random function, they are
//! independent uniform 256-bit keys, and the chance that two of `m` labelled keys
//! coincide (the only way their streams could overlap) is below `m^2 / 2^257`.
//!
//! Nothing here depends on the plan, the worker count or the chunking, which is why
//! results are bit-identical under every plan.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// The stream number offset reserved for deriving child and labelled keys.
const CHILD_KEY_STREAMS: u64 = 1 << 63;

/// The first block (counter) of a key-derivation stream used for labelled keys:
/// `+ 0..=1` for numbers, `+ 2..=3` for text (child keys use block 0).
const LABEL_BLOCKS: u64 = 1 << 63;

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
        self.derived(CHILD_KEY_STREAMS + position, 0)
    }

    /// The key of the stream tree labelled `label` under this key (see the module
    /// documentation for the derivation and why labelled streams do not overlap).
    pub fn labelled(&self, label: impl StreamLabel) -> StreamKey {
        label.key_under(self)
    }

    /// The key under this one for the 64 bits of a word (a label or a part of one),
    /// read from the label blocks starting at `LABEL_BLOCKS + first_block`.
    fn for_word(&self, word: u64, first_block: u64) -> StreamKey {
        self.derived(
            CHILD_KEY_STREAMS + (word & (CHILD_KEY_STREAMS - 1)),
            LABEL_BLOCKS + first_block + (word >> 63),
        )
    }

    /// The 32 bytes at block `block` of stream `stream` of this key, as a key.
    fn derived(&self, stream: u64, block: u64) -> StreamKey {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream);
        rng.set_word_pos(u128::from(block) * 16);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        StreamKey { key }
    }
}

/// What can label a stream tree ([`StreamKey::labelled`], `client.seeded(label)`):
/// a number or a text. Different labels give independent, non-overlapping trees.
pub trait StreamLabel {
    /// The key of this label's tree under `parent`.
    fn key_under(&self, parent: &StreamKey) -> StreamKey;
}

impl StreamLabel for u64 {
    fn key_under(&self, parent: &StreamKey) -> StreamKey {
        parent.for_word(*self, 0)
    }
}

impl StreamLabel for &str {
    fn key_under(&self, parent: &StreamKey) -> StreamKey {
        let bytes = self.as_bytes();
        let start = parent.for_word(bytes.len() as u64, 2);
        bytes.chunks(8).fold(start, |key, chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            key.for_word(u64::from_le_bytes(word), 2)
        })
    }
}

impl StreamLabel for String {
    fn key_under(&self, parent: &StreamKey) -> StreamKey {
        self.as_str().key_under(parent)
    }
}

impl StreamLabel for &String {
    fn key_under(&self, parent: &StreamKey) -> StreamKey {
        self.as_str().key_under(parent)
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
    fn different_labels_give_different_keys() {
        let root = StreamKey::from_seed(1);
        let keys = [
            root.labelled(0),
            root.labelled(1),
            root.labelled(1 << 63),
            root.labelled(""),
            root.labelled("a"),
            root.labelled("a\0"),
            root.labelled("abcdefgh"),
            root.labelled("abcdefghi"),
            root.child(0),
            root.child(1),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(root.labelled("sim"), root.labelled(String::from("sim")));
        assert_eq!(root.labelled(7), root.labelled(7));
    }

    #[test]
    fn child_keys_are_unchanged_by_the_label_derivation() {
        // The derivation as it was before labels existed (no explicit block).
        let parent = StreamKey::from_seed(42);
        let mut rng = ChaCha8Rng::from_seed(parent.key);
        rng.set_stream(CHILD_KEY_STREAMS + 3);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        assert_eq!(parent.child(3), StreamKey { key });
    }

    #[test]
    fn labelled_keys_are_pinned() {
        let root = StreamKey::from_seed(42);
        let by_number = first_words(root.labelled(5).stream(7));
        let by_text = first_words(root.labelled("simulation").stream(7));
        assert_eq!([by_number, by_text], PINNED_LABELLED);
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

    const PINNED_LABELLED: [[u64; 4]; 2] = [
        [
            2638579997018660984,
            234887153347471504,
            7682304543373447330,
            11806695031784883861,
        ],
        [
            15248450804854965973,
            17159083100758531042,
            16987713932692094755,
            430240783313491520,
        ],
    ];
}
