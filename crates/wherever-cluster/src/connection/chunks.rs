//! Values of any size: a message whose payload (task arguments, a result, a
//! scattered value) is larger than [`CHUNK_SIZE`] travels as a
//! [`Message::Large`] header carrying the message without its payload, followed by
//! [`Message::Part`]s of at most [`CHUNK_SIZE`] bytes, each in a frame of its own.
//! The receiver checks the announced size against its limit ([`max_value_size`])
//! before allocating, copies the parts into one buffer of that size and puts it
//! back into the message. Large values are refused before authentication.

use crate::protocol::{Message, TaskMessage};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The largest chunk of a payload sent in one frame; payloads larger than this
/// are streamed.
pub const CHUNK_SIZE: usize = 16 << 20;

/// The environment variable giving the largest value (in bytes, or with a `K`,
/// `M` or `G` suffix for KiB, MiB, GiB) this process sends or accepts.
pub const MAX_VALUE_VARIABLE: &str = "WHEREVER_MAX_VALUE";

/// The largest value by default: 4 GiB.
pub const DEFAULT_MAX_VALUE: u64 = 4 << 30;

/// The lowest limit a scheduler announced to this process ([`Message::ValueLimit`]).
static ANNOUNCED_LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The largest value this process sends or accepts: [`MAX_VALUE_VARIABLE`] if set
/// to a size, else [`DEFAULT_MAX_VALUE`]; lower if a scheduler announced a lower
/// limit ([`adopt_announced_limit`]).
pub fn max_value_size() -> u64 {
    max_value_size_given(configured_max_value())
}

/// [`max_value_size`] for a hot path that read [`configured_max_value`] once
/// (it reads the environment, under the standard library's lock): `configured`,
/// lower if a scheduler announced a lower limit since.
pub fn max_value_size_given(configured: u64) -> u64 {
    configured.min(ANNOUNCED_LIMIT.load(Ordering::Relaxed))
}

/// The largest value as configured for this process: [`MAX_VALUE_VARIABLE`] if
/// set to a size, else [`DEFAULT_MAX_VALUE`].
pub fn configured_max_value() -> u64 {
    std::env::var(MAX_VALUE_VARIABLE)
        .ok()
        .and_then(|text| parse_size(&text))
        .unwrap_or(DEFAULT_MAX_VALUE)
}

/// Takes a scheduler's announced limit ([`Message::ValueLimit`]) as this
/// process's limit from now on if it is lower than the present one.
pub fn adopt_announced_limit(bytes: u64) {
    ANNOUNCED_LIMIT.fetch_min(bytes, Ordering::Relaxed);
}

/// Parses a size: a whole number of bytes, optionally followed by `K`, `M` or `G`
/// (binary multiples, an optional `iB` or `B` after them).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The words every error about a value over the limit contains.
pub const OVER_THE_LIMIT: &str = "over the limit of";

/// The error for a value of `size` bytes over the `limit`, naming both.
pub fn over_the_limit(what: &str, size: u64, limit: u64) -> String {
    format!(
        "{what}: {size} bytes, {OVER_THE_LIMIT} {limit} bytes for one value \
         (set {MAX_VALUE_VARIABLE} to raise it)"
    )
}

/// The payload slot of a message that has one: where a large value goes.
pub fn payload_slot(message: &mut Message) -> Option<&mut Vec<u8>> {
    match message {
        Message::Submit { tasks } if tasks.len() == 1 => Some(&mut tasks[0].args),
        Message::Compute { task, .. } => Some(&mut task.args),
        Message::Scatter { data, .. } | Message::Store { data, .. } => Some(data),
        Message::Done {
            result: Some(result),
            ..
        }
        | Message::Finished {
            result: Some(result),
            ..
        }
        | Message::Data {
            result: Some(result),
            ..
        } => Some(result),
        _ => None,
    }
}

/// Whether `message` is a `Submit` that [`split_large_submits`] splits: more
/// than one task, one of them with more than [`CHUNK_SIZE`] bytes of arguments.
pub fn is_large_submit(message: &Message) -> bool {
    matches!(message, Message::Submit { tasks } if tasks.len() > 1 && has_a_large_task(tasks))
}

fn has_a_large_task(tasks: &[TaskMessage]) -> bool {
    tasks.iter().any(|t| t.args.len() > CHUNK_SIZE)
}

/// Splits a `Submit` holding a task with more than [`CHUNK_SIZE`] bytes of
/// arguments so that each such task is a `Submit` of its own (and can be
/// streamed), keeping the order; any other message is returned as it is.
pub fn split_large_submits(message: Message) -> Vec<Message> {
    let tasks = match message {
        Message::Submit { tasks } if tasks.len() > 1 && has_a_large_task(&tasks) => tasks,
        other => return vec![other],
    };
    let mut out = Vec::new();
    let mut small: Vec<TaskMessage> = Vec::new();
    for task in tasks {
        if task.args.len() > CHUNK_SIZE {
            if !small.is_empty() {
                out.push(Message::Submit {
                    tasks: std::mem::take(&mut small),
                });
            }
            out.push(Message::Submit { tasks: vec![task] });
        } else {
            small.push(task);
        }
    }
    if !small.is_empty() {
        out.push(Message::Submit { tasks: small });
    }
    out
}

/// Takes the payload out of `message` when it is larger than [`CHUNK_SIZE`] (to
/// stream it, `message` left as its head); `None` leaves it to be sent whole.
pub fn detach_large(message: &mut Message) -> Option<Vec<u8>> {
    payload_slot(message)
        .filter(|slot| slot.len() > CHUNK_SIZE)
        .map(std::mem::take)
}

/// A payload to stream: owned, or shared with a store that keeps it.
pub enum Payload {
    /// Taken out of a message.
    Owned(Vec<u8>),
    /// A result a worker holds (streamed without a copy of the whole).
    Shared(Arc<Vec<u8>>),
}

impl Payload {
    /// The payload's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Owned(bytes) => bytes,
            Payload::Shared(bytes) => bytes,
        }
    }
}

/// The messages that carry `payload` for `head` as stream `stream`: the
/// [`Message::Large`] header, then one [`Message::Part`] per chunk, made one at a
/// time (so only one chunk is copied at once).
pub fn stream_messages(
    stream: u64,
    head: Message,
    payload: Payload,
) -> impl Iterator<Item = Message> {
    let total = payload.as_slice().len();
    let header = Message::Large {
        stream,
        total: total as u64,
        head: Box::new(head),
    };
    let parts = (0..total.div_ceil(CHUNK_SIZE)).map(move |index| {
        let start = index * CHUNK_SIZE;
        let end = (start + CHUNK_SIZE).min(total);
        Message::Part {
            stream,
            bytes: payload.as_slice()[start..end].to_vec(),
            last: end == total,
        }
    });
    std::iter::once(header).chain(parts)
}

/// A large value being received.
struct Assembly {
    head: Message,
    buffer: Vec<u8>,
    total: usize,
}

/// The receiving side: reassembles streamed payloads into their messages.
#[derive(Default)]
pub struct Assembler {
    /// The largest value accepted; `None` before authentication (none accepted).
    limit: Option<u64>,
    streams: HashMap<u64, Assembly>,
}

impl Assembler {
    /// Accepts large values up to `limit` bytes from now on (after the handshake).
    pub fn accept_up_to(&mut self, limit: u64) {
        self.limit = Some(limit);
    }

    /// Passes on the messages of `batch` other than headers and parts, and each
    /// message whose last part came in this batch. A header over the limit (or
    /// before authentication), a part of no stream, or parts that do not add up to
    /// the announced size are errors: the connection is not to be trusted further.
    pub fn absorb(&mut self, batch: Vec<Message>) -> Result<Vec<Message>, String> {
        let mut complete = Vec::with_capacity(batch.len());
        for message in batch {
            match message {
                Message::Large {
                    stream,
                    total,
                    mut head,
                } => {
                    self.check_header(stream, total, &mut head)?;
                    let total = total as usize;
                    let buffer = Vec::with_capacity(total);
                    let (head, total) = (*head, total);
                    self.streams.insert(
                        stream,
                        Assembly {
                            head,
                            buffer,
                            total,
                        },
                    );
                }
                Message::Part {
                    stream,
                    bytes,
                    last,
                } => {
                    if let Some(message) = self.add(stream, &bytes, last)? {
                        complete.push(message);
                    }
                }
                other => complete.push(other),
            }
        }
        Ok(complete)
    }

    /// Checks a header before its stream starts (and anything is allocated).
    fn check_header(&self, stream: u64, total: u64, head: &mut Message) -> Result<(), String> {
        let Some(limit) = self.limit else {
            return Err("a large value before authentication".to_string());
        };
        if total > limit || usize::try_from(total).is_err() {
            return Err(over_the_limit("an announced value", total, limit));
        }
        if payload_slot(head).is_none_or(|slot| !slot.is_empty()) {
            return Err(format!("a large {} has no empty payload", head.name()));
        }
        if self.streams.contains_key(&stream) {
            return Err(format!("stream {stream} announced twice"));
        }
        Ok(())
    }

    /// Adds a part; the completed message after its last part.
    fn add(&mut self, stream: u64, bytes: &[u8], last: bool) -> Result<Option<Message>, String> {
        let assembly = self
            .streams
            .get_mut(&stream)
            .ok_or_else(|| format!("a part of stream {stream}, which was not announced"))?;
        if assembly.buffer.len() + bytes.len() > assembly.total {
            return Err(format!(
                "stream {stream} sent more than the {} bytes it announced",
                assembly.total
            ));
        }
        assembly.buffer.extend_from_slice(bytes);
        if !last {
            return Ok(None);
        }
        let Assembly {
            mut head,
            buffer,
            total,
        } = self.streams.remove(&stream).expect("present");
        if buffer.len() != total {
            return Err(format!(
                "stream {stream} ended after {} of the {total} bytes it announced",
                buffer.len()
            ));
        }
        if let Some(slot) = payload_slot(&mut head) {
            *slot = buffer;
        }
        Ok(Some(head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(bytes: usize) -> Message {
        Message::Store {
            task: 3,
            data: (0..bytes).map(|i| (i % 251) as u8).collect(),
        }
    }

    fn streamed(mut message: Message) -> Vec<Message> {
        let payload = detach_large(&mut message).expect("large");
        stream_messages(9, message, Payload::Owned(payload)).collect()
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("3K"), Some(3 << 10));
        assert_eq!(parse_size(" 64 MiB "), Some(64 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5T"), None);
    }

    #[test]
    fn a_small_payload_is_not_streamed() {
        assert_eq!(detach_large(&mut store(CHUNK_SIZE)), None);
        assert_eq!(detach_large(&mut Message::Heartbeat), None);
    }

    #[test]
    fn a_large_payload_comes_back_whole_with_other_messages_passed_on() {
        let original = store(2 * CHUNK_SIZE + 5);
        let messages = streamed(original.clone());
        assert_eq!(messages.len(), 4);
        let mut assembler = Assembler::default();
        assembler.accept_up_to(DEFAULT_MAX_VALUE);
        let mut out = Vec::new();
        for message in messages {
            out.extend(assembler.absorb(vec![message, Message::Heartbeat]).unwrap());
        }
        // Each batch's heartbeat passes; the value comes whole after its last part.
        assert_eq!(out.len(), 5);
        assert_eq!(out[3], original);
        let heartbeats = out.iter().filter(|m| **m == Message::Heartbeat).count();
        assert_eq!(heartbeats, 4);
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_allocating() {
        let mut assembler = Assembler::default();
        assembler.accept_up_to(1000);
        let header = Message::Large {
            stream: 1,
            total: u64::MAX,
            head: Box::new(Message::Store {
                task: 1,
                data: Vec::new(),
            }),
        };
        let error = assembler.absorb(vec![header]).unwrap_err();
        assert!(error.contains(&u64::MAX.to_string()), "{error}");
        assert!(error.contains("limit of 1000 bytes"), "{error}");
    }

    #[test]
    fn large_values_are_refused_before_authentication() {
        let mut messages = streamed(store(CHUNK_SIZE + 1));
        let error = Assembler::default()
            .absorb(vec![messages.remove(0)])
            .unwrap_err();
        assert!(error.contains("before authentication"), "{error}");
    }

    #[test]
    fn parts_that_do_not_add_up_are_errors() {
        let mut assembler = Assembler::default();
        assembler.accept_up_to(DEFAULT_MAX_VALUE);
        let messages = streamed(store(CHUNK_SIZE + 1));
        // The last part left out: a header, then a last part of one byte.
        assembler.absorb(vec![messages[0].clone()]).unwrap();
        let short = Message::Part {
            stream: 9,
            bytes: vec![1],
            last: true,
        };
        assert!(assembler
            .absorb(vec![short])
            .unwrap_err()
            .contains("ended after"));
        let stray = Message::Part {
            stream: 4,
            bytes: vec![1],
            last: true,
        };
        assert!(assembler.absorb(vec![stray]).is_err());
    }

    #[test]
    fn a_submit_with_a_large_task_is_split_in_order() {
        let task = |id, bytes| TaskMessage {
            position: id,
            ..TaskMessage::new(id, "t", vec![0; bytes])
        };
        let submit = Message::Submit {
            tasks: vec![task(1, 1), task(2, CHUNK_SIZE + 1), task(3, 1), task(4, 1)],
        };
        assert!(is_large_submit(&submit));
        let ids: Vec<Vec<u64>> = split_large_submits(submit)
            .into_iter()
            .map(|m| match m {
                Message::Submit { tasks } => tasks.iter().map(|t| t.id).collect(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, vec![vec![1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn only_a_submit_of_several_tasks_with_a_large_one_is_split() {
        let task = |id, bytes| TaskMessage::new(id, "t", vec![0; bytes]);
        let small = Message::Submit {
            tasks: vec![task(1, 1), task(2, CHUNK_SIZE)],
        };
        let alone = Message::Submit {
            tasks: vec![task(1, CHUNK_SIZE + 1)],
        };
        assert!(!is_large_submit(&small));
        assert!(!is_large_submit(&alone));
        assert!(!is_large_submit(&Message::Heartbeat));
        assert_eq!(split_large_submits(small).len(), 1);
    }
}
