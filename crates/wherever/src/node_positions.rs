//! The random-stream positions a graph node got under each client key it was
//! computed under. Nearly every node is computed under one key only, so the first
//! is kept inline: keeping it allocates nothing (a `Vec` per node cost an
//! allocation per node and showed in the graph overhead benchmark).

use crate::StreamKey;

/// A node's positions by client key: the first inline, any further ones in a `Vec`.
#[derive(Debug, Default)]
pub(crate) struct NodePositions {
    first: Option<(StreamKey, u64)>,
    more: Vec<(StreamKey, u64)>,
}

impl NodePositions {
    /// The position kept under `key`, if any.
    pub(crate) fn under(&self, key: &StreamKey) -> Option<u64> {
        self.first
            .iter()
            .chain(&self.more)
            .find(|(known, _)| known == key)
            .map(|&(_, position)| position)
    }

    /// Keeps `position` under `key` unless one is kept already; returns the one kept.
    pub(crate) fn keep(&mut self, key: StreamKey, position: u64) -> u64 {
        if let Some(kept) = self.under(&key) {
            return kept;
        }
        match self.first {
            None => self.first = Some((key, position)),
            Some(_) => self.more.push((key, position)),
        }
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_position_under_each_key() {
        let one = StreamKey::from_seed(1);
        let two = StreamKey::from_seed(2);
        let three = StreamKey::from_seed(3);
        let mut positions = NodePositions::default();
        assert_eq!(positions.under(&one), None);
        assert_eq!(positions.keep(one, 5), 5);
        assert_eq!(positions.keep(one, 9), 5);
        assert_eq!(positions.keep(two, 7), 7);
        assert_eq!(positions.keep(three, 8), 8);
        assert_eq!(positions.keep(two, 1), 7);
        assert_eq!(
            [&one, &two, &three].map(|key| positions.under(key)),
            [Some(5), Some(7), Some(8)]
        );
    }
}
