//! Fetching results from workers' data ports, for clients (large results) and
//! workers (inputs of their tasks). Every step has a timeout, and open
//! connections are pooled per holder without holding a lock across an await: a
//! fetch takes a connection out of the pool and puts it back once it is done.

use crate::auth::{this_build, Secret};
use crate::connection::{join, read_batch, split, write_batch, Reader, Writer, OVER_THE_LIMIT};
use crate::protocol::{Message, Role, TaskId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

pub(crate) mod batched;

pub use batched::{
    fetch_batched, fetch_batched_each, fetch_many_from, fetch_many_from_each, REQUEST_WINDOW,
};

/// The environment variable giving the seconds a fetch may wait for a data
/// port's answer (default [`DEFAULT_ANSWER_TIMEOUT`]).
pub const ANSWER_TIMEOUT_VARIABLE: &str = "WHEREVER_FETCH_TIMEOUT";

/// How long a fetch waits for the answer by default (a large result takes a while).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long connecting to a data port and its handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a fetch waits for a data port's answer: [`ANSWER_TIMEOUT_VARIABLE`]
/// if set to a positive number of seconds, else [`DEFAULT_ANSWER_TIMEOUT`].
pub fn answer_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var(ANSWER_TIMEOUT_VARIABLE)
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|seconds| *seconds > 0.0 && seconds.is_finite())
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_ANSWER_TIMEOUT)
    })
}

/// Why a fetch from one holder failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The holder answered that it does not hold the result.
    NotHeld,
    /// The holder could not be reached or did not answer in time.
    Unreachable(String),
    /// The result is larger than this process takes ([`max_value_size`]); the
    /// text gives its size and the limit.
    ///
    /// [`max_value_size`]: crate::connection::max_value_size
    TooLarge(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotHeld => f.write_str("the holder no longer holds it"),
            FetchError::Unreachable(reason) | FetchError::TooLarge(reason) => f.write_str(reason),
        }
    }
}

/// Fetches the result of `task` from the first of `holders` that has it; the
/// error says why the last one failed ([`FetchError::Unreachable`]), or that the
/// result is too large for this process ([`FetchError::TooLarge`]: no holder
/// would do better).
pub async fn fetch(
    holders: &[SocketAddr],
    task: TaskId,
    secret: &Secret,
) -> Result<Vec<u8>, FetchError> {
    let mut last_error = format!("no worker holds the result of task {task}");
    for holder in holders {
        match fetch_from(*holder, task, secret).await {
            Ok(result) => return Ok(result),
            Err(too_large @ FetchError::TooLarge(_)) => return Err(too_large),
            Err(FetchError::NotHeld) => {
                last_error = format!("{holder} no longer holds task {task}")
            }
            Err(FetchError::Unreachable(error)) => {
                last_error = format!("cannot fetch from {holder}: {error}")
            }
        }
    }
    Err(FetchError::Unreachable(last_error))
}

/// Requests this process sent to data ports (one per key fetched alone, one per
/// window of a batched fetch).
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many requests this process has sent to workers' data ports so far: one
/// per result fetched alone, one per window of keys of a batched fetch (for tests
/// and diagnostics: a gather of results held by two workers is about two).
pub fn requests_sent() -> u64 {
    REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one request sent to a data port.
pub(crate) fn count_request() {
    REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

type DataConnection = (Reader, Writer);

/// Idle authenticated connections to data ports, by holder (a handshake per
/// fetch would cost more than most results).
fn pool() -> &'static Mutex<HashMap<SocketAddr, Vec<DataConnection>>> {
    static POOL: OnceLock<Mutex<HashMap<SocketAddr, Vec<DataConnection>>>> = OnceLock::new();
    POOL.get_or_init(Mutex::default)
}

fn take_idle(holder: SocketAddr) -> Option<DataConnection> {
    pool()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&holder)
        .and_then(Vec::pop)
}

fn put_back(holder: SocketAddr, connection: DataConnection) {
    pool()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(holder)
        .or_default()
        .push(connection);
}

async fn open(holder: SocketAddr, secret: &Secret) -> Result<DataConnection, String> {
    let handshake = async {
        let stream = TcpStream::connect(holder)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = split(stream);
        join(
            &mut reader,
            &mut writer,
            secret,
            Role::DataFetch,
            this_build(),
            false,
        )
        .await?;
        Ok((reader, writer))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))?
}

/// Asks `connection` for `task`, waiting at most [`answer_timeout`] for each
/// frame of the answer; the connection is fit for reuse only on `Ok`.
async fn ask(connection: &mut DataConnection, task: TaskId) -> Result<Option<Vec<u8>>, String> {
    let (reader, writer) = connection;
    let timeout = answer_timeout();
    let no_answer = || format!("no answer within {:.0} s", timeout.as_secs_f64());
    count_request();
    write_batch(writer, &[Message::GetData { task }]).await?;
    // Each frame (a whole answer, or one chunk of a large one) within the timeout.
    loop {
        let batch = tokio::time::timeout(timeout, read_batch(reader))
            .await
            .map_err(|_| no_answer())??
            .ok_or("the data port closed the connection")?;
        let mut answer = None;
        for message in batch {
            match message {
                Message::Heartbeat => {}
                Message::Data { task: got, result } if got == task && answer.is_none() => {
                    answer = Some(result)
                }
                _ => return Err("unexpected answer from the data port".to_string()),
            }
        }
        if let Some(answer) = answer {
            return Ok(answer);
        }
    }
}

/// Fetches `task` from one holder, on a pooled connection if one is idle (a
/// stale one is replaced by a new one once).
pub async fn fetch_from(
    holder: SocketAddr,
    task: TaskId,
    secret: &Secret,
) -> Result<Vec<u8>, FetchError> {
    let mut pooled = take_idle(holder);
    loop {
        let reused = pooled.is_some();
        let mut connection = match pooled.take() {
            Some(connection) => connection,
            None => open(holder, secret)
                .await
                .map_err(FetchError::Unreachable)?,
        };
        match ask(&mut connection, task).await {
            Ok(answer) => {
                put_back(holder, connection);
                return answer.ok_or(FetchError::NotHeld);
            }
            // The reader refused the announced size before allocating it.
            Err(error) if error.contains(OVER_THE_LIMIT) => {
                return Err(FetchError::TooLarge(error))
            }
            // A stale pooled connection (the holder closed it): try a new one.
            Err(_) if reused => continue,
            Err(error) => return Err(FetchError::Unreachable(error)),
        }
    }
}
