//! Arguments with holes: encoded task arguments where the results of other tasks
//! (dependencies) are spliced in before the task runs.
//!
//! This works because the codec (postcard) encodes a tuple as the plain
//! concatenation of its elements: the encoding of `(a, b)` is the encoding of `a`
//! followed by that of `b`. An argument that is another task's result can therefore
//! be left out when encoding and its result's bytes inserted at that offset later.

use serde::{Deserialize, Serialize};

/// Where a dependency's encoded result goes in the encoded arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hole {
    /// The byte offset in the encoded arguments.
    pub offset: u32,
    /// Which dependency (index into the task's dependency list).
    pub dep: u32,
}

/// Splices the dependencies' encoded results into `args` at `holes` (sorted by
/// offset). Returns `None` if a hole is out of range or names a missing dependency.
pub fn fill_holes(args: &[u8], holes: &[Hole], deps: &[&[u8]]) -> Option<Vec<u8>> {
    let extra: usize = holes
        .iter()
        .map(|h| deps.get(h.dep as usize).map_or(0, |d| d.len()))
        .sum();
    let mut filled = Vec::with_capacity(args.len() + extra);
    let mut copied = 0usize;
    for hole in holes {
        let offset = hole.offset as usize;
        if offset < copied || offset > args.len() {
            return None;
        }
        filled.extend_from_slice(&args[copied..offset]);
        filled.extend_from_slice(deps.get(hole.dep as usize)?);
        copied = offset;
    }
    filled.extend_from_slice(&args[copied..]);
    Some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    #[test]
    fn a_tuple_with_a_hole_decodes_after_filling() {
        let a = encode(&3u64).unwrap();
        let c = encode(&"x".to_string()).unwrap();
        let mut args = a.clone();
        let offset = args.len() as u32;
        args.extend_from_slice(&c);
        let b = encode(&vec![1.5f64, 2.5]).unwrap();
        let filled = fill_holes(&args, &[Hole { offset, dep: 0 }], &[&b]).unwrap();
        let value: (u64, Vec<f64>, String) = decode(&filled).unwrap();
        assert_eq!(value, (3, vec![1.5, 2.5], "x".to_string()));
    }

    #[test]
    fn bad_holes_are_refused() {
        assert!(fill_holes(&[1, 2], &[Hole { offset: 3, dep: 0 }], &[&[9]]).is_none());
        assert!(fill_holes(&[1, 2], &[Hole { offset: 1, dep: 1 }], &[&[9]]).is_none());
        assert!(fill_holes(
            &[1, 2],
            &[Hole { offset: 2, dep: 0 }, Hole { offset: 1, dep: 0 }],
            &[&[9]]
        )
        .is_none());
    }
}
