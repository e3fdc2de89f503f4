//! The reading codec of a connection: length-prefixed frames decoded into batches
//! of messages, with streamed large values reassembled (see `chunks.rs`).

use super::chunks::{max_value_size, Assembler};
use crate::protocol::{decode_batch, Message, MAX_FRAME};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// Decodes frames into batches of complete messages. A frame holding only parts
/// of a large value gives an empty batch, so a reader sees progress during a long
/// transfer.
pub struct MessageCodec {
    frames: LengthDelimitedCodec,
    assembler: Assembler,
}

impl MessageCodec {
    /// A codec taking frames of at most `max_frame` bytes and no large values.
    pub fn new(max_frame: usize) -> Self {
        MessageCodec {
            frames: LengthDelimitedCodec::builder()
                .max_frame_length(max_frame)
                .new_codec(),
            assembler: Assembler::default(),
        }
    }

    /// The largest frame taken now.
    pub fn max_frame_length(&self) -> usize {
        self.frames.max_frame_length()
    }

    /// The peer has authenticated: take frames up to [`MAX_FRAME`] and large values
    /// up to [`max_value_size`].
    pub fn authenticate(&mut self) {
        self.frames.set_max_frame_length(MAX_FRAME);
        self.assembler.accept_up_to(max_value_size());
    }

    /// Takes large values up to `limit` bytes (a server's own limit) from now on;
    /// call after [`MessageCodec::authenticate`].
    pub fn limit_values(&mut self, limit: u64) {
        self.assembler.accept_up_to(limit);
    }
}

fn invalid(text: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, text)
}

impl Decoder for MessageCodec {
    type Item = Vec<Message>;
    type Error = std::io::Error;

    fn decode(&mut self, source: &mut BytesMut) -> Result<Option<Vec<Message>>, Self::Error> {
        let Some(frame) = self.frames.decode(source)? else {
            return Ok(None);
        };
        let batch = decode_batch(&frame).map_err(|e| invalid(format!("undecodable frame: {e}")))?;
        self.assembler
            .absorb(batch)
            .map(Some)
            .map_err(|e| invalid(format!("bad large value: {e}")))
    }
}
