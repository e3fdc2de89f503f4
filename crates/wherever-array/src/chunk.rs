//! [`Chunk`]: one block of an array, and its raw wire form.
//!
//! A chunk travels as one byte string: a 16-byte header (rows and columns, each a
//! little-endian `u64`) followed by the elements as little-endian `f64`, row-major.
//! It is never encoded element by element.

use ndarray::Array2;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The header's length in bytes: rows and columns as little-endian `u64`.
pub const HEADER_LEN: usize = 16;

/// One block of an array: a 2-D `ndarray` of `f64` (a 1-D array's blocks have one
/// row). As a task argument or result it travels as a raw little-endian buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk(pub Array2<f64>);

/// Why a byte string is not a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Fewer bytes than the header.
    #[error("chunk buffer of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    ShortHeader(usize),
    /// The header's shape does not fit in memory.
    #[error("chunk header gives an impossible shape {rows} x {cols}")]
    BadShape {
        /// Rows in the header.
        rows: u64,
        /// Columns in the header.
        cols: u64,
    },
    /// The data is not `rows * cols` elements.
    #[error("chunk of shape {rows} x {cols} needs {expected} data bytes, got {got}")]
    WrongLength {
        /// Rows in the header.
        rows: u64,
        /// Columns in the header.
        cols: u64,
        /// `rows * cols * 8`.
        expected: usize,
        /// The data bytes after the header.
        got: usize,
    },
}

impl Chunk {
    /// A chunk of `rows` x `cols` zeros.
    pub fn zeros(rows: usize, cols: usize) -> Chunk {
        Chunk(Array2::zeros((rows, cols)))
    }

    /// Rows and columns.
    pub fn shape(&self) -> (usize, usize) {
        self.0.dim()
    }

    /// The raw form: header, then the elements as little-endian `f64`, row-major.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (rows, cols) = self.0.dim();
        let mut bytes = Vec::with_capacity(HEADER_LEN + rows * cols * 8);
        bytes.extend_from_slice(&(rows as u64).to_le_bytes());
        bytes.extend_from_slice(&(cols as u64).to_le_bytes());
        match self.0.as_slice() {
            Some(values) => extend_le(&mut bytes, values),
            None => {
                let standard = self.0.as_standard_layout();
                extend_le(&mut bytes, standard.as_slice().expect("standard layout"));
            }
        }
        bytes
    }

    /// Reads the raw form written by [`Chunk::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER_LEN {
            return Err(ChunkError::ShortHeader(bytes.len()));
        }
        let rows = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let cols = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let data = &bytes[HEADER_LEN..];
        let expected = usize::try_from(rows)
            .ok()
            .zip(usize::try_from(cols).ok())
            .and_then(|(r, c)| r.checked_mul(c))
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or(ChunkError::BadShape { rows, cols })?;
        if data.len() != expected {
            return Err(ChunkError::WrongLength {
                rows,
                cols,
                expected,
                got: data.len(),
            });
        }
        let values: Vec<f64> = data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let array = Array2::from_shape_vec((rows as usize, cols as usize), values)
            .map_err(|_| ChunkError::BadShape { rows, cols })?;
        Ok(Chunk(array))
    }
}

/// Appends `values` as little-endian bytes (one copy on little-endian machines).
fn extend_le(bytes: &mut Vec<u8>, values: &[f64]) {
    if cfg!(target_endian = "little") {
        bytes.extend_from_slice(bytemuck::cast_slice(values));
    } else {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
}

impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_bytes::Bytes::new(&self.to_bytes()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Chunk, D::Error> {
        // Reads the bytes where the deserializer has them (postcard lends its input),
        // so the elements are copied once, into the array.
        struct RawChunk;
        impl serde::de::Visitor<'_> for RawChunk {
            type Value = Chunk;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a chunk's raw bytes (shape header, little-endian f64)")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Chunk, E> {
                Chunk::from_bytes(bytes).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(RawChunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trips_through_postcard_as_one_byte_string() {
        let chunk = Chunk(array![[1.0, -2.5, f64::INFINITY], [0.0, 1e-300, -0.0]]);
        let encoded = postcard::to_allocvec(&chunk).unwrap();
        // A varint length (1 byte here), the header and 6 raw elements: nothing else.
        assert_eq!(encoded.len(), 1 + HEADER_LEN + 6 * 8);
        let decoded: Chunk = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(decoded.0.map(|v| v.to_bits()), chunk.0.map(|v| v.to_bits()));
    }

    #[test]
    fn transposed_views_are_written_row_major() {
        let chunk = Chunk(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].reversed_axes());
        let back = Chunk::from_bytes(&chunk.to_bytes()).unwrap();
        assert_eq!(back.0, array![[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]);
    }

    #[test]
    fn empty_chunks_round_trip() {
        let chunk = Chunk::zeros(0, 7);
        assert_eq!(
            Chunk::from_bytes(&chunk.to_bytes()).unwrap().shape(),
            (0, 7)
        );
    }

    #[test]
    fn a_short_header_is_refused() {
        let err = Chunk::from_bytes(&[1, 2, 3]).unwrap_err();
        assert_eq!(err, ChunkError::ShortHeader(3));
        assert!(err.to_string().contains("shorter than its 16-byte header"));
    }

    #[test]
    fn a_wrong_data_length_is_refused() {
        let mut bytes = Chunk::zeros(2, 3).to_bytes();
        bytes.pop();
        let err = Chunk::from_bytes(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk of shape 2 x 3 needs 48 data bytes, got 47"
        );
    }

    #[test]
    fn an_impossible_shape_is_refused() {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        bytes[8..16].copy_from_slice(&3u64.to_le_bytes());
        let err = Chunk::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, ChunkError::BadShape { .. }), "{err}");
        assert!(err.to_string().contains("impossible shape"));
    }

    #[test]
    fn a_value_of_another_type_is_refused() {
        let encoded = postcard::to_allocvec(&(1u8, 2u8)).unwrap();
        assert!(postcard::from_bytes::<Chunk>(&encoded).is_err());
    }

    #[test]
    fn malformed_bytes_are_a_clear_postcard_error() {
        let encoded = postcard::to_allocvec(&serde_bytes::Bytes::new(&[9u8; 20])).unwrap();
        let err = postcard::from_bytes::<Chunk>(&encoded).unwrap_err();
        // postcard keeps only its own error kind; the custom message is ours above.
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }
}
