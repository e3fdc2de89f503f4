//! Fetching many results at once: one request per holder for all the keys it is
//! asked for (in windows of [`REQUEST_WINDOW`] keys), holders asked concurrently.
//! Every read waits at most [`answer_timeout`](super::answer_timeout); whatever
//! does not come this way is left to the one-key [`fetch`](super::fetch), which
//! tries every holder and says why a key cannot be had.

use super::{answer_timeout, open, put_back, take_idle, DataConnection};
use crate::auth::Secret;
use crate::connection::{read_batch, write_batch};
use crate::protocol::{Input, Message, TaskId};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The most keys asked for in one request frame; the answers to one window are
/// read before the next is sent, so neither side waits on a full socket buffer.
pub const REQUEST_WINDOW: usize = 4096;

/// Fetches each of `inputs` from its first holder: one request per holder for all
/// the keys it is asked for, the holders asked concurrently. The answer has one
/// entry per input, in order: its result, or `None` if it did not come this way
/// (no holder, not held there, the holder unreachable or too slow, the result too
/// large for this process). Fetch those with [`fetch`](super::fetch), which says
/// why.
pub async fn fetch_batched(inputs: &[Input], secret: &Secret) -> Vec<Option<Vec<u8>>> {
    let mut by_holder: HashMap<SocketAddr, Vec<usize>> = HashMap::new();
    for (index, input) in inputs.iter().enumerate() {
        if let Some(holder) = input.holders.first() {
            by_holder.entry(*holder).or_default().push(index);
        }
    }
    let requests = by_holder.into_iter().map(|(holder, indices)| async move {
        let tasks: Vec<TaskId> = indices.iter().map(|&index| inputs[index].task).collect();
        (indices, fetch_many_from(holder, &tasks, secret).await)
    });
    let mut fetched: Vec<Option<Vec<u8>>> = vec![None; inputs.len()];
    for (indices, answers) in futures_util::future::join_all(requests).await {
        let Ok(answers) = answers else { continue };
        for (index, answer) in indices.into_iter().zip(answers) {
            fetched[index] = answer;
        }
    }
    fetched
}

/// Asks `holder` for all of `tasks`, on a pooled connection if one is idle (a
/// stale one is replaced by a new one once). On `Ok`, one entry per task, in
/// order: its result, or `None` if the holder does not hold it. `Err` says why
/// the exchange failed (the connection is then dropped).
pub async fn fetch_many_from(
    holder: SocketAddr,
    tasks: &[TaskId],
    secret: &Secret,
) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut pooled = take_idle(holder);
    loop {
        let reused = pooled.is_some();
        let mut connection = match pooled.take() {
            Some(connection) => connection,
            None => open(holder, secret).await?,
        };
        match ask_many(&mut connection, tasks).await {
            Ok(answers) => {
                put_back(holder, connection);
                return Ok(answers);
            }
            // A stale pooled connection (the holder closed it) fails before any
            // answer: try a new one.
            Err(Unanswered::Nothing(_)) if reused => continue,
            Err(Unanswered::Nothing(error) | Unanswered::Partly(error)) => return Err(error),
        }
    }
}

/// Why `ask_many` stopped: before any answer, or after some.
enum Unanswered {
    Nothing(String),
    Partly(String),
}

/// Asks `connection` for `tasks`, a window at a time, waiting at most
/// [`answer_timeout`] for each frame of the answers; the connection is fit for
/// reuse only on `Ok`.
async fn ask_many(
    connection: &mut DataConnection,
    tasks: &[TaskId],
) -> Result<Vec<Option<Vec<u8>>>, Unanswered> {
    let (reader, writer) = connection;
    let timeout = answer_timeout();
    let mut answers = Vec::with_capacity(tasks.len());
    let failed = |answered: usize, error: String| match answered {
        0 => Unanswered::Nothing(error),
        _ => Unanswered::Partly(error),
    };
    for window in tasks.chunks(REQUEST_WINDOW) {
        let request: Vec<Message> = window
            .iter()
            .map(|&task| Message::GetData { task })
            .collect();
        write_batch(writer, &request)
            .await
            .map_err(|error| failed(answers.len(), error))?;
        // Answers come in the order asked, in as many frames as the holder likes
        // (a large result in chunks, each chunk a frame).
        let mut expected = window.iter();
        let mut next = expected.next();
        while next.is_some() {
            let batch = match tokio::time::timeout(timeout, read_batch(reader)).await {
                Err(_) => Err(format!("no answer within {:.0} s", timeout.as_secs_f64())),
                Ok(Err(error)) => Err(error),
                Ok(Ok(None)) => Err("the data port closed the connection".to_string()),
                Ok(Ok(Some(batch))) => Ok(batch),
            }
            .map_err(|error| failed(answers.len(), error))?;
            for message in batch {
                match (message, next) {
                    (Message::Heartbeat, _) => {}
                    (Message::Data { task: got, result }, Some(&task)) if got == task => {
                        answers.push(result);
                        next = expected.next();
                    }
                    _ => {
                        let error = "unexpected answer from the data port".to_string();
                        return Err(failed(answers.len(), error));
                    }
                }
            }
        }
    }
    Ok(answers)
}
