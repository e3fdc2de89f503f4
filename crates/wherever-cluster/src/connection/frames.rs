//! The writer side of a connection: packing queued messages into frames of
//! bounded size, handshake messages alone, and heartbeats when idle.

use super::{write_batch, Writer};
use crate::protocol::{Message, MAX_FRAME};
use bytes::Bytes;
use futures_util::SinkExt;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

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

/// Splits `messages` into the batches the writer sends as frames: handshake
/// messages alone, the others packed up to [`FRAME_BUDGET`] bytes, a message over
/// the budget alone. Messages that fit no frame at all ([`MAX_FRAME`]) are returned
/// apart with their sizes.
pub fn pack_frames(
    messages: impl IntoIterator<Item = Message>,
) -> (Vec<Vec<Message>>, Vec<(Message, usize)>) {
    let (mut frames, mut unsendable) = (Vec::new(), Vec::new());
    let (mut current, mut bytes) = (Vec::new(), 0usize);
    for message in messages {
        let size = encoded_size(&message);
        if !fits_a_frame(size) {
            unsendable.push((message, size));
            continue;
        }
        let alone = is_handshake(&message) || size >= FRAME_BUDGET;
        if !current.is_empty() && (alone || bytes + size > FRAME_BUDGET) {
            frames.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(message);
        bytes += size;
        if alone {
            frames.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    if !current.is_empty() {
        frames.push(current);
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

/// [`run_writer`], calling `written` with each frame's messages once they are
/// sent (the server counts the bytes queued for each peer with it).
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
    let mut waiting = Vec::new();
    loop {
        match tokio::time::timeout(HEARTBEAT_INTERVAL, queue.recv_many(&mut waiting, 4096)).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => waiting.push(Message::Heartbeat),
        }
        let (frames, unsendable) = pack_frames(waiting.drain(..));
        for (message, size) in unsendable {
            tracing::warn!(
                "not sent to {peer}: the {} is {size} bytes, over the frame limit of \
                 {MAX_FRAME} bytes",
                describe_unsendable(&message)
            );
            written(std::slice::from_ref(&message));
        }
        for frame in frames {
            if let Err(reason) = write_batch(&mut writer, &frame).await {
                tracing::warn!(
                    "sending {} message(s) to {peer} failed: {reason}; closing the connection",
                    frame.len()
                );
                return;
            }
            written(&frame);
        }
    }
    let _ = SinkExt::<Bytes>::close(&mut writer).await;
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
    use crate::protocol::encode_batch;

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
        let (frames, unsendable) = pack_frames(messages);
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
        let (frames, unsendable) = pack_frames(messages);
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
        let (frames, unsendable) = pack_frames([Message::Heartbeat, payload(MAX_FRAME)]);
        assert_eq!(frames, vec![vec![Message::Heartbeat]]);
        assert_eq!(unsendable.len(), 1);
        assert!(unsendable[0].1 > MAX_FRAME);
        assert_eq!(describe_unsendable(&unsendable[0].0), "scattered value 1");
    }
}
