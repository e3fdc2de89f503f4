//! The codec for task arguments, results and small control values: `postcard`
//! (serde, compact, varint integers). Large numeric payloads should not go through
//! here element by element; they travel as raw frames.

use serde::{de::DeserializeOwned, Serialize};

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("codec error: {0}")]
pub struct CodecError(#[from] postcard::Error);

/// Encodes `value` into a fresh byte vector.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

/// Decodes a value of type `T` from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CodecError(postcard::Error::DeserializeBadEncoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_tuples() {
        let bytes = encode(&(3u64, 1.5f64, "x".to_string())).unwrap();
        let back: (u64, f64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (3, 1.5, "x".to_string()));
    }

    #[test]
    fn rejects_truncated_and_trailing_bytes() {
        let bytes = encode(&(300u64, 2.0f64)).unwrap();
        assert!(decode::<(u64, f64)>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(u64, f64)>(&longer).is_err());
    }
}
