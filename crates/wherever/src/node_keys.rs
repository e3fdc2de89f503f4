//! Graph node keys: how they are made, and the maps keyed by them. Keys are made
//! in this process from task names and counters (never by a peer), so the maps
//! use FNV-1a with a final mix instead of SipHash, whose flooding resistance they
//! do not need and which cost a tenth of a tree graph's instructions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use wherever_core::Fnv1a;

/// A hasher for node keys: FNV-1a, then a murmur3 finaliser so that every bit
/// of the result depends on every byte (the table uses the low and high bits).
#[derive(Default)]
pub(crate) struct KeyHasher(Fnv1a);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.eat(bytes);
    }

    fn finish(&self) -> u64 {
        let mut hash = self.0.finish();
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// Builds [`KeyHasher`]s.
pub(crate) type KeyBuild = BuildHasherDefault<KeyHasher>;

/// A map keyed by node keys.
pub(crate) type KeyMap<K, V> = HashMap<K, V, KeyBuild>;

/// The last part of a task's path name (`f` for `crate::module::f`).
pub(crate) fn short_name(name: &str) -> &str {
    match name.as_bytes().windows(2).rposition(|pair| pair == b"::") {
        Some(at) => &name[at + 2..],
        None => name,
    }
}

/// The key `SHORT-NUMBER` of the `number`th node made, built without the
/// formatting machinery and allocated once (a graph makes one per node).
pub(crate) fn numbered_key(short: &str, number: u64) -> Arc<str> {
    thread_local! {
        static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let digits = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
    TEXT.with(|text| {
        let mut text = text.borrow_mut();
        text.clear();
        text.push_str(short);
        text.push('-');
        text.push_str(digits);
        Arc::from(text.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_short_name_is_what_follows_the_last_path_separator() {
        for name in ["f", "a::f", "a::b::f", "<a as b>::f", "a:::f", "a::", ""] {
            assert_eq!(
                short_name(name),
                name.rsplit("::").next().unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn numbered_keys_are_the_formatted_ones() {
        for number in [0, 1, 9, 10, 99, 100, 123_456, u64::MAX] {
            assert_eq!(&*numbered_key("add", number), format!("add-{number}"));
        }
        assert_eq!(&*numbered_key("", 7), "-7");
        assert_eq!(
            &*numbered_key("a_long_task_name", 42),
            "a_long_task_name-42"
        );
    }

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ_in_low_and_high_bits() {
        let hash = |key: &str| KeyBuild::default().hash_one(key);
        assert_eq!(hash("add-12"), hash(&String::from("add-12")));
        let (a, b) = (hash("add-12"), hash("add-13"));
        assert_ne!(a & 0xff, b & 0xff);
        assert_ne!(a >> 57, b >> 57);
    }
}
