//! [`SharedRef`]: a value that tasks share instead of each decoding its own copy.
//!
//! Its encoded form is a key and the value's encoding. Decoding looks the key up in
//! this process's table first, so a worker decodes a scattered `SharedRef` once and
//! hands the same [`Arc`] to every task that takes it. A local plan's client pins
//! the value itself in the table while the scattered handle lives
//! ([`encode_pinned`]) and sends only the key: its tasks never decode it.

use crate::codec::{self, CodecError};
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A shared, read-only value for task arguments: scatter one
/// (`client.scatter(&SharedRef::new(data))`) and every task taking a
/// `SharedRef<T>` parameter reads the same `T` (through `Deref` or
/// [`SharedRef::arc`]) instead of decoding a copy of its own.
pub struct SharedRef<T> {
    key: u64,
    value: Arc<T>,
}

type Erased = Arc<dyn Any + Send + Sync>;

/// How many recently decoded values a process keeps besides the pinned ones.
const RECENT: usize = 16;

#[derive(Default)]
struct Table {
    /// Values pinned by their scattered handles on local plans, with a pin count.
    pinned: HashMap<u64, (usize, Erased)>,
    /// Values decoded here (workers), newest last.
    recent: VecDeque<(u64, Erased)>,
}

fn table() -> std::sync::MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl Table {
    fn find(&mut self, key: u64) -> Option<Erased> {
        if let Some((_, value)) = self.pinned.get(&key) {
            return Some(value.clone());
        }
        let at = self.recent.iter().position(|(k, _)| *k == key)?;
        let entry = self.recent.remove(at)?;
        let value = entry.1.clone();
        self.recent.push_back(entry);
        Some(value)
    }

    fn remember(&mut self, key: u64, value: Erased) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((key, value));
    }
}

thread_local! {
    /// While [`encode_pinned`] runs on this thread: the keys it pinned.
    static PINNING: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

/// Keeps values pinned in this process's table. Dropped, it unpins them: each
/// joins the recently used values, so a task queued before the handle was dropped
/// still finds it (unless [`RECENT`] other values came after it).
#[derive(Debug)]
pub struct Pins(Vec<u64>);

impl Drop for Pins {
    fn drop(&mut self) {
        let mut table = table();
        for key in &self.0 {
            if let Some((count, _)) = table.pinned.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    if let Some((_, value)) = table.pinned.remove(key) {
                        table.remember(*key, value);
                    }
                }
            }
        }
    }
}

/// Encodes `value` for tasks of this process: each [`SharedRef`] in it is pinned
/// in this process's table (until the returned [`Pins`] are dropped) and encoded
/// as its key alone.
pub fn encode_pinned<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Pins), CodecError> {
    let previous = PINNING.with(|p| p.borrow_mut().replace(Vec::new()));
    let encoded = codec::encode(value);
    let pinned = PINNING.with(|p| std::mem::replace(&mut *p.borrow_mut(), previous));
    let pins = Pins(pinned.unwrap_or_default());
    Ok((encoded?, pins))
}

fn fresh_key() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(base ^ NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}

impl<T> SharedRef<T> {
    /// Wraps `value` for sharing.
    pub fn new(value: T) -> Self {
        SharedRef::from_arc(Arc::new(value))
    }

    /// Wraps a value already behind an [`Arc`].
    pub fn from_arc(value: Arc<T>) -> Self {
        SharedRef {
            key: fresh_key(),
            value,
        }
    }

    /// The shared value's [`Arc`] (a task may keep it).
    pub fn arc(&self) -> &Arc<T> {
        &self.value
    }
}

impl<T> Clone for SharedRef<T> {
    fn clone(&self) -> Self {
        SharedRef {
            key: self.key,
            value: self.value.clone(),
        }
    }
}

impl<T> std::ops::Deref for SharedRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SharedRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: PartialEq> PartialEq for SharedRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// Bytes encoded as one byte string.
struct Blob<'a>(&'a [u8]);

impl Serialize for Blob<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<T: Serialize + Send + Sync + 'static> Serialize for SharedRef<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let pinning = PINNING.with(|p| {
            let mut p = p.borrow_mut();
            p.as_mut().map(|keys| keys.push(self.key)).is_some()
        });
        let bytes = if pinning {
            let erased: Erased = self.value.clone();
            table()
                .pinned
                .entry(self.key)
                .and_modify(|(count, _)| *count += 1)
                .or_insert((1, erased));
            Vec::new()
        } else {
            codec::encode(self.value.as_ref()).map_err(serde::ser::Error::custom)?
        };
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.key)?;
        tuple.serialize_element(&Blob(&bytes))?;
        tuple.end()
    }
}

/// A byte string, borrowed from the input where the deserializer allows.
struct BlobIn<'de>(Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for BlobIn<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = BlobIn<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(BlobIn(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(BlobIn(Cow::Owned(v.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(BlobIn(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

impl<'de, T: DeserializeOwned + Send + Sync + 'static> Deserialize<'de> for SharedRef<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: DeserializeOwned + Send + Sync + 'static> Visitor<'de> for PairVisitor<T> {
            type Value = SharedRef<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a shared value's key and encoding")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let key: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let BlobIn(bytes) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                shared_value(key, &bytes).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_tuple(2, PairVisitor(std::marker::PhantomData))
    }
}

/// The value under `key` in this process's table, else decoded from `bytes` (and
/// remembered).
fn shared_value<T: DeserializeOwned + Send + Sync + 'static>(
    key: u64,
    bytes: &[u8],
) -> Result<SharedRef<T>, String> {
    let found = table().find(key);
    if let Some(found) = found {
        return found
            .downcast::<T>()
            .map(|value| SharedRef { key, value })
            .map_err(|_| format!("the shared value {key:#x} has another type"));
    }
    if bytes.is_empty() {
        return Err(format!(
            "the shared value {key:#x} is not in this process (its handle was dropped)"
        ));
    }
    let value = Arc::new(codec::decode::<T>(bytes).map_err(|e| e.to_string())?);
    table().remember(key, value.clone());
    Ok(SharedRef { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static DECODES: AtomicUsize = AtomicUsize::new(0);

    /// A value that counts how often it is decoded.
    #[derive(Serialize, PartialEq, Debug)]
    struct Counted(Vec<u32>);

    impl<'de> Deserialize<'de> for Counted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            DECODES.fetch_add(1, Ordering::SeqCst);
            Ok(Counted(Vec::deserialize(d)?))
        }
    }

    #[test]
    fn a_shared_value_is_decoded_once_per_process_and_pinned_values_never() {
        let shared = SharedRef::new(Counted(vec![1, 2, 3]));
        let full = codec::encode(&(7u8, shared.clone())).unwrap();
        let before = DECODES.load(Ordering::SeqCst);
        for _ in 0..5 {
            let (seven, back): (u8, SharedRef<Counted>) = codec::decode(&full).unwrap();
            assert_eq!((seven, &back.0), (7, &vec![1, 2, 3]));
        }
        assert_eq!(DECODES.load(Ordering::SeqCst) - before, 1);

        let pinned_value = SharedRef::new(Counted(vec![4]));
        let (short, pins) = encode_pinned(&pinned_value).unwrap();
        assert!(short.len() < 12, "only the key: {short:?}");
        let before = DECODES.load(Ordering::SeqCst);
        let back: SharedRef<Counted> = codec::decode(&short).unwrap();
        assert!(Arc::ptr_eq(back.arc(), pinned_value.arc()));
        assert_eq!(DECODES.load(Ordering::SeqCst), before);
        drop(pins);
        // Unpinned, it is among the recent values for a while, then gone.
        assert!(codec::decode::<SharedRef<Counted>>(&short).is_ok());
        for i in 0..RECENT as u32 {
            let other = codec::encode(&SharedRef::new(Counted(vec![i]))).unwrap();
            codec::decode::<SharedRef<Counted>>(&other).unwrap();
        }
        assert!(codec::decode::<SharedRef<Counted>>(&short).is_err());
    }
}
