//! A task's name and position packed into one word, so that a pending task's slot
//! stays small (issue 14 item 5): task names are few (registered names, `closure`),
//! so each is interned once and a slot keeps its 16-bit index beside a 48-bit
//! position instead of a 16-byte `&str` and an 8-byte position.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, RwLock};

/// Bits of a packed identity that hold the position.
const POSITION_BITS: u32 = 48;
/// The largest position a packed identity keeps (larger ones are kept as this).
pub(crate) const MAX_POSITION: u64 = (1 << POSITION_BITS) - 1;
/// How many names can be interned; later names read as [`OVERFLOW_NAME`].
const MAX_NAMES: usize = 1 << (64 - POSITION_BITS);
/// The name of a task whose name came after [`MAX_NAMES`] others.
pub(crate) const OVERFLOW_NAME: &str = "?";

/// The interned names: index to name, and name to index.
struct Names {
    by_index: RwLock<Vec<&'static str>>,
    by_name: Mutex<HashMap<&'static str, u16>>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names {
        by_index: RwLock::new(vec![OVERFLOW_NAME]),
        by_name: Mutex::new(HashMap::from([(OVERFLOW_NAME, 0)])),
    })
}

thread_local! {
    /// The last name this thread interned (its address and length) and its index:
    /// tasks come in runs of one name, so most lookups end here.
    static LAST: Cell<(usize, usize, u16)> = const { Cell::new((0, 0, 0)) };
}

/// The index of `name`, interning it on first use.
fn index_of(name: &'static str) -> u16 {
    let key = (name.as_ptr() as usize, name.len());
    let (address, length, index) = LAST.with(Cell::get);
    if (address, length) == key && address != 0 {
        return index;
    }
    let names = names();
    let mut by_name = names.by_name.lock().unwrap_or_else(|p| p.into_inner());
    let index = match by_name.get(name) {
        Some(&index) => index,
        None => {
            let mut by_index = names.by_index.write().unwrap_or_else(|p| p.into_inner());
            if by_index.len() >= MAX_NAMES {
                return 0;
            }
            let index = by_index.len() as u16;
            by_index.push(name);
            by_name.insert(name, index);
            index
        }
    };
    LAST.with(|last| last.set((key.0, key.1, index)));
    index
}

/// A task's name and position in one word (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskIdentity(u64);

impl TaskIdentity {
    /// The identity of task `name` at `position` (a position above
    /// [`MAX_POSITION`] is kept as [`MAX_POSITION`]).
    pub(crate) fn new(name: &'static str, position: u64) -> Self {
        let index = u64::from(index_of(name));
        TaskIdentity(index << POSITION_BITS | position.min(MAX_POSITION))
    }

    /// The task's name.
    pub(crate) fn name(self) -> &'static str {
        let index = (self.0 >> POSITION_BITS) as usize;
        let by_index = names().by_index.read().unwrap_or_else(|p| p.into_inner());
        by_index.get(index).copied().unwrap_or(OVERFLOW_NAME)
    }

    /// The task's position in its client's submission order.
    pub(crate) fn position(self) -> u64 {
        self.0 & MAX_POSITION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_gives_back_its_name_and_position() {
        let first = TaskIdentity::new("identity_first", 7);
        let second = TaskIdentity::new("identity_second", 1 << 40);
        assert_eq!((first.name(), first.position()), ("identity_first", 7));
        assert_eq!(
            (second.name(), second.position()),
            ("identity_second", 1 << 40)
        );
        assert_eq!(std::mem::size_of::<TaskIdentity>(), 8);
    }

    #[test]
    fn equal_names_from_different_strings_share_one_index() {
        let leaked: &'static str = Box::leak(String::from("identity_shared").into_boxed_str());
        let a = TaskIdentity::new("identity_shared", 1);
        let b = TaskIdentity::new(leaked, 1);
        assert_eq!(a, b);
        assert_eq!(b.name(), "identity_shared");
    }

    #[test]
    fn a_position_beyond_the_packed_range_is_kept_as_the_largest() {
        let far = TaskIdentity::new("identity_far", u64::MAX);
        assert_eq!(far.position(), MAX_POSITION);
        assert_eq!(far.name(), "identity_far");
    }
}
