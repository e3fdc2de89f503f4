//! Framed connections: socket settings, reading and writing batches of messages,
//! silence timeouts, and both sides of the handshake. The writer task that packs
//! queued messages into frames is in `connection/frames.rs`, the admission of
//! connections to a listening port in `connection/gate.rs`.

use crate::auth::{random_bytes, Secret};
use crate::protocol::{encode_batch, BuildInfo, Hello, Message, Role, MAX_FRAME, PROTOCOL_VERSION};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

mod chunks;
mod codec;
mod frames;
mod gate;

pub use chunks::{
    adopt_announced_limit, configured_max_value, max_value_size, max_value_size_given,
    over_the_limit, parse_size, Payload, CHUNK_SIZE, DEFAULT_MAX_VALUE, MAX_VALUE_VARIABLE,
    OVER_THE_LIMIT,
};
pub use codec::MessageCodec;
pub use frames::{
    encoded_size, fits_a_frame, pack_frames, run_writer, run_writer_with, send_streamed,
    FRAME_BUDGET, HEARTBEAT_INTERVAL,
};
pub use gate::{accept_gated, HandshakeGate, HandshakeTicket, MAX_HANDSHAKES};

/// How long a peer has to complete the handshake, from its connection on.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame a peer may send before it has authenticated: enough for a
/// hello (host name, executable path), far too little to cost memory.
pub const HANDSHAKE_FRAME_LIMIT: usize = 16 << 10;

/// How long a reader of a long-lived connection waits for anything (a heartbeat
/// at least) before it takes the peer for dead, unless [`SILENCE_TIMEOUT_VARIABLE`]
/// says otherwise.
pub const DEFAULT_SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable overriding [`DEFAULT_SILENCE_TIMEOUT`], in seconds.
pub const SILENCE_TIMEOUT_VARIABLE: &str = "WHEREVER_SILENCE_TIMEOUT";

/// The longest peer-supplied text written to a log, in characters.
pub const LOGGED_TEXT_LIMIT: usize = 200;

/// The reading half of a connection.
pub type Reader = FramedRead<OwnedReadHalf, MessageCodec>;
/// The writing half of a connection.
pub type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Opens a TCP connection to `target`, giving up after `timeout`: a host that drops
/// the connection attempt (a firewall, a node that is gone) would otherwise keep the
/// caller waiting for the kernel's retries, about two minutes.
pub async fn connect_tcp(target: &str, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(connected) => connected.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no connection within {:.0} s",
            timeout.as_secs_f64()
        )),
    }
}

/// Splits a TCP stream into framed halves, with keepalive and a user timeout set
/// (see [`configure_socket`]). The reader takes only [`HANDSHAKE_FRAME_LIMIT`]-byte
/// frames until [`accept`] or [`join`] raises the limit after the handshake.
pub fn split(stream: TcpStream) -> (Reader, Writer) {
    configure_socket(&stream);
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, MessageCodec::new(HANDSHAKE_FRAME_LIMIT)),
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
            text if text.starts_with("undecodable") || text.starts_with("bad large") => text,
            text => format!("bad frame: {text}"),
        }),
        Some(Ok(batch)) => Ok(Some(batch)),
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
        [Message::Hello(hello)] => hello.as_ref().clone(),
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
    reader.decoder_mut().authenticate();
    Ok(hello)
}

/// How [`join`]'s error begins when the connection failed before the scheduler's
/// challenge arrived (reset, closed, timed out): nothing was refused, so a worker
/// may try again (a scheduler being killed can accept a connection and reset it).
pub const NO_CHALLENGE: &str = "the scheduler sent no challenge";

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
    let batch = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader)).await {
        Err(_) => return Err(format!("{NO_CHALLENGE} within 10 s")),
        Ok(Err(error)) => return Err(format!("{NO_CHALLENGE}: {error}")),
        Ok(Ok(None)) => return Err(format!("{NO_CHALLENGE}: it closed the connection")),
        Ok(Ok(Some(batch))) => batch,
    };
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
    write_batch(writer, &[Message::Hello(Box::new(hello))]).await?;
    if !expect_welcome {
        reader.decoder_mut().authenticate();
        return Ok((0, Vec::new()));
    }
    let batch = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader))
        .await
        .map_err(|_| "no answer to the handshake within 10 s".to_string())??
        .ok_or("the scheduler closed the connection during the handshake (wrong secret?)")?;
    let mut messages = batch.into_iter();
    match messages.next() {
        Some(Message::Welcome { id }) => {
            reader.decoder_mut().authenticate();
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

    #[test]
    fn peer_text_is_escaped_and_cut_for_logs() {
        assert_eq!(printable("node1"), "\"node1\"");
        let forged = printable("a\njoined: forged\r\n");
        assert!(!forged.contains('\n') && !forged.contains('\r'), "{forged}");
        let long = printable(&"x".repeat(100_000));
        assert!(long.chars().count() < LOGGED_TEXT_LIMIT + 40, "{long}");
        assert!(long.ends_with("(100000 bytes)"), "{long}");
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

    /// The queue of a running writer and the reader of its peer, on loopback.
    async fn writer_and_peer() -> (tokio::sync::mpsc::UnboundedSender<Message>, Reader) {
        let (peer, stream) = loopback_pair().await;
        let (_reader, writer) = split(stream);
        let (queue, outgoing) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_writer(writer, outgoing));
        (queue, split(peer).0)
    }

    #[tokio::test]
    async fn a_connection_attempt_the_peer_never_answers_times_out() {
        // A listener whose accept queue is full drops further connection attempts
        // (the kernel ignores their SYN), as a firewall or a vanished host does.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let listener = socket.listen(0).expect("listen");
        let target = listener.local_addr().expect("address").to_string();
        let mut kept = Vec::new();
        let mut outcome = None;
        for _ in 0..16 {
            match connect_tcp(&target, Duration::from_millis(300)).await {
                Ok(stream) => kept.push(stream),
                Err(error) => {
                    outcome = Some(error);
                    break;
                }
            }
        }
        let error = outcome.expect("the full accept queue never dropped an attempt");
        assert!(error.contains("no connection within"), "{error}");
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
    async fn a_value_larger_than_a_chunk_crosses_a_connection_in_order() {
        let (queue, mut reader) = writer_and_peer().await;
        let large = Message::Store {
            task: 2,
            data: (0..2 * CHUNK_SIZE + 3).map(|i| i as u8).collect(),
        };
        for message in [Message::Free { tasks: vec![1] }, large.clone()] {
            queue.send(message).unwrap();
        }
        queue.send(Message::Free { tasks: vec![3] }).unwrap();
        reader.decoder_mut().authenticate();
        let (mut received, mut batches) = (Vec::new(), 0);
        while received.len() < 3 {
            let batch = read_batch_within(&mut reader, DEFAULT_SILENCE_TIMEOUT)
                .await
                .unwrap()
                .expect("open");
            batches += 1;
            received.extend(batch.into_iter().filter(|m| *m != Message::Heartbeat));
        }
        assert_eq!(
            received,
            vec![
                Message::Free { tasks: vec![1] },
                large,
                Message::Free { tasks: vec![3] }
            ]
        );
        assert!(batches >= 4, "a frame per chunk: {batches} batches");
    }

    #[tokio::test]
    async fn an_unauthenticated_reader_refuses_a_large_value() {
        let (queue, mut reader) = writer_and_peer().await;
        let data = vec![0; CHUNK_SIZE + 1];
        queue.send(Message::Store { task: 2, data }).unwrap();
        let error = read_batch_within(&mut reader, DEFAULT_SILENCE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(error.contains("before authentication"), "{error}");
    }

    #[tokio::test]
    async fn an_idle_writer_sends_heartbeats() {
        let (_queue, mut reader) = writer_and_peer().await;
        let batch = read_batch_within(&mut reader, HEARTBEAT_INTERVAL * 10)
            .await
            .unwrap();
        assert_eq!(batch, Some(vec![Message::Heartbeat]));
    }
}
