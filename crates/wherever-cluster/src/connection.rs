//! Framed connections: reading and writing batches of messages, a writer task that
//! batches whatever has queued up under load, and both sides of the handshake.

use crate::auth::{random_bytes, Secret};
use crate::protocol::{
    decode_batch, encode_batch, BuildInfo, Hello, Message, Role, MAX_FRAME, PROTOCOL_VERSION,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// How long a peer has to complete the handshake, from its connection on.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame a peer may send before it has authenticated: enough for a
/// hello (host name, executable path), far too little to cost memory.
pub const HANDSHAKE_FRAME_LIMIT: usize = 16 << 10;

/// How many connections may be in the handshake at once on one listening port;
/// a newer one pushes out the oldest (an honest peer needs one round trip).
pub const MAX_HANDSHAKES: usize = 64;

/// The byte budget of one frame: queued messages are packed into a frame until
/// the next would take it over; a message larger than the budget goes alone.
pub const FRAME_BUDGET: usize = 4 << 20;

/// A writer with nothing to send for this long sends a [`Message::Heartbeat`].
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How long a reader of a long-lived connection waits for anything (a heartbeat
/// at least) before it takes the peer for dead, unless [`SILENCE_TIMEOUT_VARIABLE`]
/// says otherwise.
pub const DEFAULT_SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable overriding [`DEFAULT_SILENCE_TIMEOUT`], in seconds.
pub const SILENCE_TIMEOUT_VARIABLE: &str = "WHEREVER_SILENCE_TIMEOUT";

/// The longest peer-supplied text written to a log, in characters.
pub const LOGGED_TEXT_LIMIT: usize = 200;

/// The reading half of a connection.
pub type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
/// The writing half of a connection.
pub type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Splits a TCP stream into framed halves, with keepalive and a user timeout set
/// (see [`configure_socket`]). The reader takes only [`HANDSHAKE_FRAME_LIMIT`]-byte
/// frames until [`accept`] or [`join`] raises the limit after the handshake.
pub fn split(stream: TcpStream) -> (Reader, Writer) {
    configure_socket(&stream);
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, codec(HANDSHAKE_FRAME_LIMIT)),
        FramedWrite::new(write, codec(MAX_FRAME)),
    )
}

/// Sets no-delay, TCP keepalive (idle 10 s, then every 2 s, 5 probes) and, on
/// Linux, a 30 s `TCP_USER_TIMEOUT`, so a peer whose host vanished is noticed even
/// while data waits unacknowledged (the settings Dask uses).
pub fn configure_socket(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(2))
        .with_retries(5);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!("cannot set TCP keepalive: {error}");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = socket.set_tcp_user_timeout(Some(Duration::from_secs(30))) {
        tracing::debug!("cannot set TCP_USER_TIMEOUT: {error}");
    }
}

/// The silence timeout of this process: [`SILENCE_TIMEOUT_VARIABLE`] seconds if set
/// to a positive number, else [`DEFAULT_SILENCE_TIMEOUT`].
pub fn silence_timeout() -> Duration {
    std::env::var(SILENCE_TIMEOUT_VARIABLE)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_SILENCE_TIMEOUT)
}

/// Peer-supplied text made safe to log: escaped like `{:?}` (so newlines and
/// control characters cannot forge log lines) and cut to [`LOGGED_TEXT_LIMIT`]
/// characters.
pub fn printable(text: &str) -> String {
    let escaped = format!("{text:?}");
    if escaped.chars().count() <= LOGGED_TEXT_LIMIT {
        return escaped;
    }
    let cut: String = escaped.chars().take(LOGGED_TEXT_LIMIT).collect();
    format!("{cut}...\" ({} bytes)", text.len())
}

/// Reads the next batch; `Ok(None)` when the peer closed the connection cleanly.
/// Oversize, truncated or undecodable frames are errors that say which.
pub async fn read_batch(reader: &mut Reader) -> Result<Option<Vec<Message>>, String> {
    let limit = reader.decoder().max_frame_length();
    match reader.next().await {
        None => Ok(None),
        Some(Err(error)) => Err(match error.to_string() {
            text if text.contains("frame size too big") => {
                format!("oversize frame (the limit is {limit} bytes)")
            }
            text if text.contains("bytes remaining on stream") => {
                "truncated frame: the peer closed the connection in the middle of a frame"
                    .to_string()
            }
            text => format!("bad frame: {text}"),
        }),
        Some(Ok(frame)) => decode_batch(&frame)
            .map(Some)
            .map_err(|e| format!("undecodable frame: {e}")),
    }
}

/// Reads the next batch of a long-lived connection, taking silence longer than
/// `timeout` (no message at all, not even a heartbeat) for a dead peer.
pub async fn read_batch_within(
    reader: &mut Reader,
    timeout: Duration,
) -> Result<Option<Vec<Message>>, String> {
    match tokio::time::timeout(timeout, read_batch(reader)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "the peer sent nothing, not even a heartbeat, for {:.1} s: it is stopped, \
             hung or unreachable",
            timeout.as_secs_f64()
        )),
    }
}

/// Writes one batch as one frame.
pub async fn write_batch(writer: &mut Writer, batch: &[Message]) -> Result<(), String> {
    let body = encode_batch(batch).map_err(|e| format!("cannot encode: {e}"))?;
    writer
        .send(Bytes::from(body))
        .await
        .map_err(|e| format!("cannot send: {e}"))
}

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
pub async fn run_writer(mut writer: Writer, mut queue: UnboundedReceiver<Message>) {
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
        }
        for frame in frames {
            if let Err(reason) = write_batch(&mut writer, &frame).await {
                tracing::warn!(
                    "sending {} message(s) to {peer} failed: {reason}; closing the connection",
                    frame.len()
                );
                return;
            }
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

/// Bounds the connections in the handshake on one listening port to
/// [`MAX_HANDSHAKES`]: admitting one more pushes out the oldest still waiting.
#[derive(Clone, Default)]
pub struct HandshakeGate {
    waiting: std::sync::Arc<std::sync::Mutex<HandshakeQueue>>,
}

#[derive(Default)]
struct HandshakeQueue {
    next: u64,
    entries: std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>,
}

/// A connection's place in the handshake; ends when dropped.
pub struct HandshakeTicket {
    id: u64,
    evicted: tokio::sync::oneshot::Receiver<()>,
    gate: HandshakeGate,
}

impl HandshakeGate {
    /// A gate with nobody in it.
    pub fn new() -> Self {
        HandshakeGate::default()
    }

    /// Admits one connection, pushing out the oldest if [`MAX_HANDSHAKES`] wait.
    pub fn admit(&self) -> HandshakeTicket {
        let mut queue = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        while queue.entries.len() >= MAX_HANDSHAKES {
            if let Some((_, evict)) = queue.entries.pop_front() {
                let _ = evict.send(());
            }
        }
        queue.next += 1;
        let id = queue.next;
        let (evict, evicted) = tokio::sync::oneshot::channel();
        queue.entries.push_back((id, evict));
        HandshakeTicket {
            id,
            evicted,
            gate: self.clone(),
        }
    }

    /// How many connections are in the handshake.
    pub fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// Whether no connection is in the handshake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        let mut queue = self.gate.waiting.lock().unwrap_or_else(|p| p.into_inner());
        queue.entries.retain(|(id, _)| *id != self.id);
    }
}

/// [`accept`] under a [`HandshakeGate`] ticket and the [`HANDSHAKE_TIMEOUT`] for
/// the whole exchange: the way every listening port admits a connection.
pub async fn accept_gated(
    ticket: HandshakeTicket,
    reader: &mut Reader,
    writer: &mut Writer,
    secret: &Secret,
    expected_build: &std::sync::Mutex<Option<BuildInfo>>,
) -> Result<Hello, String> {
    let mut ticket = ticket;
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept(reader, writer, secret, expected_build),
    );
    tokio::select! {
        outcome = handshake => outcome.unwrap_or_else(|_| Err(format!(
            "no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs()
        ))),
        _ = &mut ticket.evicted => Err(format!(
            "pushed out by newer connections ({MAX_HANDSHAKES} handshakes at once at most)"
        )),
    }
}

/// The server side of the handshake: challenge, check the proof, the protocol and
/// (for workers) the build. Returns the peer's hello, or the reason it was refused
/// (which has been sent to the peer when it got that far).
pub async fn accept(
    reader: &mut Reader,
    writer: &mut Writer,
    secret: &Secret,
    expected_build: &std::sync::Mutex<Option<BuildInfo>>,
) -> Result<Hello, String> {
    let nonce = random_bytes();
    write_batch(
        writer,
        &[Message::Challenge {
            protocol: PROTOCOL_VERSION,
            nonce,
        }],
    )
    .await?;
    let batch = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader))
        .await
        .map_err(|_| "no handshake within 10 s".to_string())??
        .ok_or("closed during the handshake")?;
    let hello = match batch.as_slice() {
        [Message::Hello(hello)] => hello.clone(),
        _ => return Err("the first frame was not a hello".to_string()),
    };
    if !secret.verify(&nonce, &hello.proof) {
        // Say nothing about why: an unauthenticated peer gets nothing.
        return Err(format!(
            "authentication failed for a peer claiming to be {} on {}",
            hello.pid,
            printable(&hello.host)
        ));
    }
    let refusal = if hello.protocol != PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} is not the scheduler's {PROTOCOL_VERSION}",
            hello.protocol
        ))
    } else if matches!(hello.role, Role::DataFetch) {
        None
    } else {
        let mut expected = expected_build.lock().unwrap_or_else(|p| p.into_inner());
        match expected.as_ref() {
            None => {
                *expected = Some(hello.build.clone());
                None
            }
            Some(expected) => crate::auth::build_mismatch(expected, &hello.build),
        }
    };
    if let Some(reason) = refusal {
        let _ = write_batch(
            writer,
            &[Message::Refused {
                reason: reason.clone(),
            }],
        )
        .await;
        return Err(reason);
    }
    reader.decoder_mut().set_max_frame_length(MAX_FRAME);
    Ok(hello)
}

/// The peer side of the handshake: answer the challenge and wait to be welcomed.
/// Returns the id the scheduler gave (worker id or client number) and any messages
/// that came in the same frame as the welcome.
pub async fn join(
    reader: &mut Reader,
    writer: &mut Writer,
    secret: &Secret,
    role: Role,
    build: &BuildInfo,
    expect_welcome: bool,
) -> Result<(u64, Vec<Message>), String> {
    let batch = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader))
        .await
        .map_err(|_| "the scheduler sent no challenge within 10 s".to_string())??
        .ok_or("the scheduler closed the connection")?;
    let nonce = match batch.as_slice() {
        [Message::Challenge { protocol, nonce }] if *protocol == PROTOCOL_VERSION => *nonce,
        [Message::Challenge { protocol, .. }] => {
            return Err(format!(
                "the scheduler speaks protocol {protocol}, this program {PROTOCOL_VERSION}"
            ))
        }
        _ => return Err("the peer is not a wherever scheduler (no challenge)".to_string()),
    };
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        proof: secret.prove(&nonce),
        role,
        build: build.clone(),
        host: crate::host_name().to_string(),
        pid: std::process::id(),
    };
    write_batch(writer, &[Message::Hello(hello)]).await?;
    if !expect_welcome {
        reader.decoder_mut().set_max_frame_length(MAX_FRAME);
        return Ok((0, Vec::new()));
    }
    let batch = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader))
        .await
        .map_err(|_| "no answer to the handshake within 10 s".to_string())??
        .ok_or("the scheduler closed the connection during the handshake (wrong secret?)")?;
    let mut messages = batch.into_iter();
    match messages.next() {
        Some(Message::Welcome { id }) => {
            reader.decoder_mut().set_max_frame_length(MAX_FRAME);
            Ok((id, messages.collect()))
        }
        Some(Message::Refused { reason }) => {
            Err(format!("refused by the scheduler: {}", printable(&reason)))
        }
        _ => Err("unexpected answer to the handshake".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MAX_FRAME;

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

    #[test]
    fn peer_text_is_escaped_and_cut_for_logs() {
        assert_eq!(printable("node1"), "\"node1\"");
        let forged = printable("a\njoined: forged\r\n");
        assert!(!forged.contains('\n') && !forged.contains('\r'), "{forged}");
        let long = printable(&"x".repeat(100_000));
        assert!(long.chars().count() < LOGGED_TEXT_LIMIT + 40, "{long}");
        assert!(long.ends_with("(100000 bytes)"), "{long}");
    }

    #[tokio::test]
    async fn the_handshake_gate_pushes_out_the_oldest() {
        let gate = HandshakeGate::new();
        let mut first = gate.admit();
        let mut tickets: Vec<HandshakeTicket> = (1..MAX_HANDSHAKES).map(|_| gate.admit()).collect();
        assert_eq!(gate.len(), MAX_HANDSHAKES);
        assert!(first.evicted.try_recv().is_err(), "not yet pushed out");
        let newest = gate.admit();
        assert_eq!(gate.len(), MAX_HANDSHAKES);
        assert!(first.evicted.try_recv().is_ok(), "the oldest is pushed out");
        assert!(tickets[0].evicted.try_recv().is_err());
        drop(newest);
        tickets.clear();
        drop(first);
        assert!(gate.is_empty());
    }

    /// Both ends of a fresh loopback connection.
    async fn loopback_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (near, listener.accept().await.unwrap().0)
    }

    #[tokio::test]
    async fn a_silent_peer_is_reported_dead_after_the_timeout() {
        let (_peer, stream) = loopback_pair().await;
        let (mut reader, _writer) = split(stream);
        let error = read_batch_within(&mut reader, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(error.contains("not even a heartbeat"), "{error}");
    }

    #[tokio::test]
    async fn an_idle_writer_sends_heartbeats() {
        let (peer, stream) = loopback_pair().await;
        let (_reader, writer) = split(stream);
        let (_queue, outgoing) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_writer(writer, outgoing));
        let (mut reader, _) = split(peer);
        let batch = read_batch_within(&mut reader, HEARTBEAT_INTERVAL * 10)
            .await
            .unwrap();
        assert_eq!(batch, Some(vec![Message::Heartbeat]));
    }
}
