//! The writer side of a connection: packing queued messages into frames of
//! bounded size, handshake messages alone, and heartbeats when idle.

use super::chunks::{detach_large, is_large_submit, split_large_submits, stream_messages, Payload};
use super::{write_batch, Writer};
use crate::protocol::{Message, MAX_FRAME};
use bytes::Bytes;
use futures_util::SinkExt;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// The byte budget of one frame: queued messages are packed into a frame until
/// the next would take it over; a message larger than the budget goes alone.
pub const FRAME_BUDGET: usize = 4 << 20;

/// A writer with nothing to send for this long sends a [`Message::Heartbeat`].
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// The encoded size of `value` (a message, a task) in bytes, without encoding it.
pub fn encoded_size<T: serde::Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX)
}

/// Whether a message of `size` encoded bytes fits in a frame.
pub fn fits_a_frame(size: usize) -> bool {
    size.saturating_add(BATCH_OVERHEAD) <= MAX_FRAME
}

/// Whether `message` belongs to the handshake, which always travels alone.
fn is_handshake(message: &Message) -> bool {
    matches!(
        message,
        Message::Challenge { .. }
            | Message::Hello(_)
            | Message::Welcome { .. }
            | Message::Refused { .. }
    )
}

/// The frame room a message of `size` bytes takes, with the batch's length prefix.
const BATCH_OVERHEAD: usize = 16;

/// One frame ready to send: a batch encoded as `encode_batch` encodes it.
#[derive(Debug)]
pub struct EncodedFrame {
    /// The frame body.
    pub body: Bytes,
    /// How many messages it holds.
    pub messages: usize,
}

/// A postcard output that appends to a `Vec` it borrows, so one buffer serves
/// every message the writer encodes.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the encoding of `value` to `buffer`; its size, or `usize::MAX` (and
/// nothing appended) if it cannot be encoded.
fn encode_into<T: serde::Serialize>(value: &T, buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    match postcard::serialize_with_flavor(value, AppendTo(buffer)) {
        Ok(()) => buffer.len() - start,
        Err(_) => {
            buffer.truncate(start);
            usize::MAX
        }
    }
}

/// The frame of `messages` messages whose encodings follow each other in
/// `encoded`: the count, then the messages, as a `Vec<Message>` is encoded.
fn frame_of(messages: usize, encoded: &[u8]) -> EncodedFrame {
    let mut body = Vec::with_capacity(encoded.len() + 10);
    encode_into(&messages, &mut body);
    body.extend_from_slice(encoded);
    EncodedFrame {
        body: Bytes::from(body),
        messages,
    }
}

/// Encodes `messages` into the frames the writer sends, each message encoded
/// once (into `scratch`, which keeps its room for the next call): handshake
/// messages alone, the others packed up to [`FRAME_BUDGET`] bytes, a message over
/// the budget alone. Messages that fit no frame at all ([`MAX_FRAME`]) are
/// returned apart with their sizes.
pub fn pack_frames(
    messages: impl IntoIterator<Item = Message>,
    scratch: &mut Vec<u8>,
) -> (Vec<EncodedFrame>, Vec<(Message, usize)>) {
    let (mut frames, mut unsendable) = (Vec::new(), Vec::new());
    scratch.clear();
    let (mut frame_start, mut count) = (0usize, 0usize);
    for message in messages {
        let start = scratch.len();
        let size = encode_into(&message, scratch);
        if !fits_a_frame(size) {
            scratch.truncate(start);
            unsendable.push((message, size));
            continue;
        }
        let alone = is_handshake(&message) || size >= FRAME_BUDGET;
        if count > 0 && (alone || start - frame_start + size > FRAME_BUDGET) {
            frames.push(frame_of(count, &scratch[frame_start..start]));
            (frame_start, count) = (start, 0);
        }
        count += 1;
        if alone {
            frames.push(frame_of(count, &scratch[frame_start..]));
            (frame_start, count) = (scratch.len(), 0);
        }
    }
    if count > 0 {
        frames.push(frame_of(count, &scratch[frame_start..]));
    }
    (frames, unsendable)
}

/// Sends every message that arrives on `queue`, packing those already waiting
/// into frames of at most [`FRAME_BUDGET`] bytes (see [`pack_frames`]), and a
/// heartbeat after [`HEARTBEAT_INTERVAL`] with nothing to send. A message too
/// large for any frame is dropped and logged; a failed send is logged and ends
/// the writer. Ends when the queue closes or the peer goes away.
pub async fn run_writer(writer: Writer, queue: UnboundedReceiver<Message>) {
    run_writer_with(writer, queue, |_| {}).await
}

/// [`run_writer`], calling `written` with the messages it takes off the queue,
/// before sending them (the server counts the bytes queued for each peer with it).
pub async fn run_writer_with(
    mut writer: Writer,
    mut queue: UnboundedReceiver<Message>,
    mut written: impl FnMut(&[Message]),
) {
    let peer = writer
        .get_ref()
        .peer_addr()
        .map(|address| address.to_string())
        .unwrap_or_else(|_| "a peer".to_string());
    let (mut waiting, mut scratch) = (Vec::new(), Vec::new());
    let mut next_stream = 0u64;
    // One timer for the connection, moved only when it fires (not one per wake-up).
    let heartbeat = tokio::time::sleep(HEARTBEAT_INTERVAL);
    tokio::pin!(heartbeat);
    let mut last_sent = Instant::now();
    loop {
        tokio::select! {
            biased;
            received = queue.recv_many(&mut waiting, 4096) => if received == 0 {
                break;
            },
            () = &mut heartbeat => {
                let (due, now) = (last_sent + HEARTBEAT_INTERVAL, Instant::now());
                if now < due {
                    heartbeat.as_mut().reset(due);
                    continue;
                }
                heartbeat.as_mut().reset(now + HEARTBEAT_INTERVAL);
                waiting.push(Message::Heartbeat);
            }
        }
        // Taken off the queue: counted as written (the server bounds what waits in
        // the queue; the writer holds at most one batch of it while sending).
        written(&waiting);
        for segment in segments(waiting.drain(..)) {
            let sent = match segment {
                Segment::Whole(messages) => {
                    send_packed(&mut writer, messages, &peer, &mut scratch).await
                }
                Segment::Large(head, payload) => {
                    next_stream += 1;
                    send_streamed(&mut writer, next_stream, *head, Payload::Owned(payload)).await
                }
            };
            if let Err(reason) = sent {
                tracing::warn!("sending to {peer} failed: {reason}; closing the connection");
                return;
            }
        }
        if scratch.capacity() > 2 * FRAME_BUDGET {
            scratch = Vec::new(); // after a large message: do not keep its room
        }
        last_sent = Instant::now();
    }
    let _ = SinkExt::<Bytes>::close(&mut writer).await;
}

/// A run of messages the writer sends the same way.
enum Segment {
    /// Messages packed into frames.
    Whole(Vec<Message>),
    /// A message whose large payload is streamed.
    Large(Box<Message>, Vec<u8>),
}

/// Splits queued messages, in order, into runs packed into frames and messages
/// whose payload is streamed (see `chunks.rs`).
fn segments(messages: impl IntoIterator<Item = Message>) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut whole = Vec::new();
    let mut place = |mut message: Message| match detach_large(&mut message) {
        Some(payload) => {
            if !whole.is_empty() {
                segments.push(Segment::Whole(std::mem::take(&mut whole)));
            }
            segments.push(Segment::Large(Box::new(message), payload));
        }
        None => whole.push(message),
    };
    for message in messages {
        // Split only what needs it: a `Vec` per message was an allocation per
        // message sent.
        if is_large_submit(&message) {
            split_large_submits(message)
                .into_iter()
                .for_each(&mut place);
        } else {
            place(message);
        }
    }
    if !whole.is_empty() {
        segments.push(Segment::Whole(whole));
    }
    segments
}

/// Sends `messages` packed into frames (see [`pack_frames`]); a message too large
/// for any frame is dropped and logged.
async fn send_packed(
    writer: &mut Writer,
    messages: Vec<Message>,
    peer: &str,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let (frames, unsendable) = pack_frames(messages, scratch);
    for (message, size) in unsendable {
        tracing::warn!(
            "not sent to {peer}: the {} is {size} bytes, over the frame limit of \
             {MAX_FRAME} bytes",
            describe_unsendable(&message)
        );
    }
    for frame in frames {
        let count = frame.messages;
        writer
            .send(frame.body)
            .await
            .map_err(|e| format!("cannot send {count} message(s): {e}"))?;
    }
    Ok(())
}

/// Sends `head` with its large `payload` as stream `stream`: a header, then one
/// frame per chunk, in order (so the message keeps its place among the others,
/// and the reader sees a frame at least every chunk).
pub async fn send_streamed(
    writer: &mut Writer,
    stream: u64,
    head: Message,
    payload: Payload,
) -> Result<(), String> {
    for message in stream_messages(stream, head, payload) {
        write_batch(writer, std::slice::from_ref(&message)).await?;
    }
    Ok(())
}

/// What a message too large to send was, for logs (without formatting its bytes).
fn describe_unsendable(message: &Message) -> String {
    match message {
        Message::Submit { tasks } => format!("submission of {} task(s)", tasks.len()),
        Message::Compute { task, .. } => format!("task {} (`{}`)", task.id, task.name),
        Message::Scatter { task, .. } | Message::Store { task, .. } => {
            format!("scattered value {task}")
        }
        Message::Done { task, .. }
        | Message::Finished { task, .. }
        | Message::Data { task, .. } => format!("result of task {task}"),
        _ => "message".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_batch, encode_batch};

    /// [`pack_frames`], its frames decoded back into their messages (and checked
    /// to be exactly what `encode_batch` makes of them).
    fn packed(
        messages: impl IntoIterator<Item = Message>,
    ) -> (Vec<Vec<Message>>, Vec<(Message, usize)>) {
        let (frames, unsendable) = pack_frames(messages, &mut Vec::new());
        let batches = frames
            .iter()
            .map(|frame| {
                let batch = decode_batch(&frame.body).unwrap();
                assert_eq!(batch.len(), frame.messages);
                assert_eq!(encode_batch(&batch).unwrap(), frame.body);
                batch
            })
            .collect();
        (batches, unsendable)
    }

    fn payload(bytes: usize) -> Message {
        Message::Store {
            task: 1,
            data: vec![7; bytes],
        }
    }

    #[test]
    fn encoded_sizes_are_exact() {
        for message in [Message::Heartbeat, payload(0), payload(1000)] {
            assert_eq!(
                encoded_size(&message),
                postcard::to_stdvec(&message).unwrap().len()
            );
        }
    }

    #[test]
    fn a_welcome_never_shares_a_frame() {
        let mut messages = vec![Message::Welcome { id: 1 }];
        messages.extend((0..33).map(|_| payload(100)));
        messages.push(Message::Refused { reason: "r".into() });
        messages.push(Message::Heartbeat);
        let (frames, unsendable) = packed(messages);
        assert!(unsendable.is_empty());
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], vec![Message::Welcome { id: 1 }]);
        assert_eq!(frames[1].len(), 33);
        assert_eq!(frames[2], vec![Message::Refused { reason: "r".into() }]);
        assert_eq!(frames[3], vec![Message::Heartbeat]);
    }

    #[test]
    fn frames_stay_within_the_budget_and_a_large_message_goes_alone() {
        let mib = 1 << 20;
        let mut messages: Vec<Message> = (0..40).map(|_| payload(mib)).collect();
        messages.insert(5, payload(FRAME_BUDGET + 1));
        let (frames, unsendable) = packed(messages);
        assert!(unsendable.is_empty());
        assert_eq!(frames.iter().map(Vec::len).sum::<usize>(), 41);
        for frame in &frames {
            let bytes = encode_batch(frame).unwrap().len();
            assert!(
                frame.len() == 1 || bytes <= FRAME_BUDGET + BATCH_OVERHEAD,
                "{} messages in {bytes} bytes",
                frame.len()
            );
        }
        assert!(frames
            .iter()
            .any(|f| f.len() == 1 && encoded_size(&f[0]) > FRAME_BUDGET));
    }

    #[test]
    fn a_message_over_the_frame_limit_is_set_apart_with_its_size() {
        let (frames, unsendable) = packed([Message::Heartbeat, payload(MAX_FRAME)]);
        assert_eq!(frames, vec![vec![Message::Heartbeat]]);
        assert_eq!(unsendable.len(), 1);
        assert!(unsendable[0].1 > MAX_FRAME);
        assert_eq!(describe_unsendable(&unsendable[0].0), "scattered value 1");
    }

    #[test]
    fn the_scratch_buffer_is_reused_from_call_to_call() {
        let mut scratch = Vec::new();
        let (frames, _) = pack_frames((0..3).map(|_| payload(100)), &mut scratch);
        assert_eq!(frames.len(), 1);
        let room = scratch.capacity();
        let (frames, _) = pack_frames([Message::Heartbeat], &mut scratch);
        assert_eq!(
            decode_batch(&frames[0].body).unwrap(),
            vec![Message::Heartbeat]
        );
        assert_eq!(scratch.capacity(), room);
    }
}
