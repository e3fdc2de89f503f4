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

/// How long a peer has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The reading half of a connection.
pub type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
/// The writing half of a connection.
pub type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Splits a TCP stream into framed halves.
pub fn split(stream: TcpStream) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, codec()),
        FramedWrite::new(write, codec()),
    )
}

/// Reads the next batch; `Ok(None)` when the peer closed the connection cleanly.
/// Oversize, truncated or undecodable frames are errors that say which.
pub async fn read_batch(reader: &mut Reader) -> Result<Option<Vec<Message>>, String> {
    match reader.next().await {
        None => Ok(None),
        Some(Err(error)) => Err(match error.to_string() {
            text if text.contains("frame size too big") => {
                format!("oversize frame (the limit is {MAX_FRAME} bytes)")
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

/// Writes one batch as one frame.
pub async fn write_batch(writer: &mut Writer, batch: &[Message]) -> Result<(), String> {
    let body = encode_batch(batch).map_err(|e| format!("cannot encode: {e}"))?;
    writer
        .send(Bytes::from(body))
        .await
        .map_err(|e| format!("cannot send: {e}"))
}

/// Sends every message that arrives on `queue`, batching all that are already
/// waiting into one frame. Ends when the queue closes or the peer goes away.
pub async fn run_writer(mut writer: Writer, mut queue: UnboundedReceiver<Message>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 4096).await > 0 {
        if write_batch(&mut writer, &batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = SinkExt::<Bytes>::close(&mut writer).await;
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
            hello.pid, hello.host
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
        return Ok((0, Vec::new()));
    }
    let batch = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_batch(reader))
        .await
        .map_err(|_| "no answer to the handshake within 10 s".to_string())??
        .ok_or("the scheduler closed the connection during the handshake (wrong secret?)")?;
    let mut messages = batch.into_iter();
    match messages.next() {
        Some(Message::Welcome { id }) => Ok((id, messages.collect())),
        Some(Message::Refused { reason }) => Err(format!("refused by the scheduler: {reason}")),
        _ => Err("unexpected answer to the handshake".to_string()),
    }
}
