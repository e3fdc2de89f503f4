//! The position of each node in a graph being laid out, found by the node's
//! number (every `delayed` call numbers its node) or, for a pure node, by its key
//! (pure nodes with equal keys are one node). A number is one integer to hash; a
//! key is text read and hashed byte by byte behind a pointer, and looking keys up
//! was a fifth of the client's time building a large graph.

use crate::node_keys::KeyMap;
use std::sync::Arc;
use wherever_core::id_hash::IdMap;

/// The positions of the nodes of one graph; see the [module documentation](self).
#[derive(Default)]
pub(crate) struct NodeIndex {
    /// By number: one integer to hash (the id hasher).
    numbered: IdMap<usize>,
    keyed: KeyMap<Arc<str>, usize>,
}

/// The number of a node that has none (a pure node, found by its key).
pub(crate) const NO_NUMBER: u64 = 0;

impl NodeIndex {
    /// The position of the node numbered `number` (keyed `key` if it has no number).
    pub(crate) fn get(&self, number: u64, key: &Arc<str>) -> Option<usize> {
        if number == NO_NUMBER {
            self.keyed.get(key).copied()
        } else {
            self.numbered.get(&number).copied()
        }
    }

    /// Gives the node numbered `number` (keyed `key`) the position `position`.
    pub(crate) fn insert(&mut self, number: u64, key: &Arc<str>, position: usize) {
        if number == NO_NUMBER {
            self.keyed.insert(key.clone(), position);
        } else {
            self.numbered.insert(number, position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_nodes_are_found_by_number_and_pure_ones_by_key() {
        let mut index = NodeIndex::default();
        let (a, b): (Arc<str>, Arc<str>) = ("add-1".into(), "add-0123456789abcdef".into());
        index.insert(1, &a, 0);
        index.insert(NO_NUMBER, &b, 1);
        assert_eq!(index.get(1, &a), Some(0));
        // Another pure node with an equal key is the same node.
        assert_eq!(
            index.get(NO_NUMBER, &Arc::from("add-0123456789abcdef")),
            Some(1)
        );
        assert_eq!(index.get(2, &"add-2".into()), None);
        assert_eq!(index.get(NO_NUMBER, &a), None, "a number is not a key");
    }

    #[test]
    fn near_numbers_spread_over_the_table() {
        use std::hash::BuildHasher;
        let build = wherever_core::id_hash::IdBuild::default();
        let (a, b) = (build.hash_one(12u64), build.hash_one(13u64));
        assert_ne!(a >> 57, b >> 57, "the top bits (the table's tags) differ");
        assert_ne!(a & 0xff, b & 0xff);
    }
}
