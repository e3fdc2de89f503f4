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
    let mut fetched: Vec<Option<Vec<u8>>> = vec![None; inputs.len()];
    fetch_batched_each(inputs, secret, |index, answer| fetched[index] = answer).await;
    fetched
}

/// [`fetch_batched`], handing each input's answer to `each` (with the input's
/// index) as soon as it is read, so that the caller can use one result while the
/// next arrive. Every input gets exactly one call; `None` as in
/// [`fetch_batched`].
pub async fn fetch_batched_each(
    inputs: &[Input],
    secret: &Secret,
    mut each: impl FnMut(usize, Option<Vec<u8>>),
) {
    let mut by_holder: HashMap<SocketAddr, Vec<usize>> = HashMap::new();
    let mut answered = vec![false; inputs.len()];
    for (index, input) in inputs.iter().enumerate() {
        if let Some(holder) = input.holders.first() {
            by_holder.entry(*holder).or_default().push(index);
        }
    }
    // Each holder's answers come through this channel as they are read.
    let (sender, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let requests: Vec<_> = by_holder
        .into_iter()
        .map(|(holder, indices)| {
            let sender = sender.clone();
            async move {
                let tasks: Vec<TaskId> = indices.iter().map(|&index| inputs[index].task).collect();
                let _ = fetch_many_from_each(holder, &tasks, secret, |at, answer| {
                    let _ = sender.send((indices[at], answer));
                })
                .await;
            }
        })
        .collect();
    drop(sender);
    let all = futures_util::future::join_all(requests);
    let drain = async {
        while let Some((index, answer)) = arrived.recv().await {
            answered[index] = true;
            each(index, answer);
        }
    };
    futures_util::future::join(all, drain).await;
    for (index, answered) in answered.into_iter().enumerate() {
        if !answered {
            each(index, None);
        }
    }
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
    let mut answers = Vec::with_capacity(tasks.len());
    fetch_many_from_each(holder, tasks, secret, |_, answer| answers.push(answer)).await?;
    Ok(answers)
}

/// [`fetch_many_from`], handing each answer to `each` (with its index in
/// `tasks`) as soon as it is read, in order. On `Err`, the tasks not handed over
/// got no answer.
pub async fn fetch_many_from_each(
    holder: SocketAddr,
    tasks: &[TaskId],
    secret: &Secret,
    mut each: impl FnMut(usize, Option<Vec<u8>>),
) -> Result<(), String> {
    let mut pooled = take_idle(holder);
    loop {
        let reused = pooled.is_some();
        let mut connection = match pooled.take() {
            Some(connection) => connection,
            None => open(holder, secret).await?,
        };
        match ask_many(&mut connection, tasks, &mut each).await {
            Ok(()) => {
                put_back(holder, connection);
                return Ok(());
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

/// Asks `connection` for `tasks`, a window at a time, handing each answer to
/// `each` in order, waiting at most [`answer_timeout`] for sending each request
/// and for each frame of the answers; the connection is fit for reuse only on
/// `Ok`.
async fn ask_many(
    connection: &mut DataConnection,
    tasks: &[TaskId],
    each: &mut impl FnMut(usize, Option<Vec<u8>>),
) -> Result<(), Unanswered> {
    let (reader, writer) = connection;
    let timeout = answer_timeout();
    let mut answered = 0;
    let failed = |answered: usize, error: String| match answered {
        0 => Unanswered::Nothing(error),
        _ => Unanswered::Partly(error),
    };
    for window in tasks.chunks(REQUEST_WINDOW) {
        let request: Vec<Message> = window
            .iter()
            .map(|&task| Message::GetData { task })
            .collect();
        super::count_request();
        let sent = match tokio::time::timeout(timeout, write_batch(writer, &request)).await {
            Ok(sent) => sent,
            Err(_) => Err(format!(
                "could not send the request within {:.0} s",
                timeout.as_secs_f64()
            )),
        };
        sent.map_err(|error| failed(answered, error))?;
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
            .map_err(|error| failed(answered, error))?;
            for message in batch {
                match (message, next) {
                    (Message::Heartbeat, _) => {}
                    (Message::Data { task: got, result }, Some(&task)) if got == task => {
                        each(answered, result);
                        answered += 1;
                        next = expected.next();
                    }
                    _ => {
                        let error = "unexpected answer from the data port".to_string();
                        return Err(failed(answered, error));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::connection::{accept, split};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    /// A data port serving `held` that reports the tasks of each request frame and
    /// closes every connection after `answers_per_connection` requests.
    pub(crate) async fn holder(
        secret: Secret,
        held: HashMap<TaskId, Vec<u8>>,
        answers_per_connection: usize,
    ) -> (SocketAddr, UnboundedReceiver<Vec<TaskId>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (requests, asked) = unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mut reader, mut writer) = split(stream);
                if accept(&mut reader, &mut writer, &secret, &Mutex::new(None))
                    .await
                    .is_err()
                {
                    continue;
                }
                for _ in 0..answers_per_connection {
                    let Ok(Some(batch)) = read_batch(&mut reader).await else {
                        break;
                    };
                    let tasks: Vec<TaskId> = batch
                        .iter()
                        .filter_map(|message| match message {
                            Message::GetData { task } => Some(*task),
                            _ => None,
                        })
                        .collect();
                    let answers: Vec<Message> = tasks
                        .iter()
                        .map(|task| Message::Data {
                            task: *task,
                            result: held.get(task).cloned(),
                        })
                        .collect();
                    let _ = requests.send(tasks);
                    if write_batch(&mut writer, &answers).await.is_err() {
                        break;
                    }
                }
            }
        });
        (address, asked)
    }

    fn input(task: TaskId, holders: &[SocketAddr]) -> Input {
        Input {
            task,
            holders: holders.to_vec(),
        }
    }

    #[tokio::test]
    async fn each_holder_is_asked_once_for_all_its_keys_and_a_lacking_one_is_none() {
        let secret = Secret::generate();
        let (a, mut asked_a) = holder(
            secret.clone(),
            HashMap::from([(1, vec![1]), (3, vec![3])]),
            9,
        )
        .await;
        let (b, mut asked_b) = holder(secret.clone(), HashMap::from([(2, vec![2])]), 9).await;
        let inputs = [
            input(1, &[a]),
            input(2, &[b]),
            input(3, &[a, b]),
            input(4, &[a]),
            input(5, &[]),
        ];
        let fetched = fetch_batched(&inputs, &secret).await;
        assert_eq!(
            fetched,
            vec![Some(vec![1]), Some(vec![2]), Some(vec![3]), None, None]
        );
        assert_eq!(asked_a.recv().await.unwrap(), vec![1, 3, 4]);
        assert_eq!(asked_b.recv().await.unwrap(), vec![2]);
        assert!(asked_a.try_recv().is_err() && asked_b.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_pooled_connection_the_holder_closed_is_replaced() {
        let secret = Secret::generate();
        // Each connection answers one request, then the holder closes it.
        let (address, mut asked) = holder(secret.clone(), HashMap::from([(7, vec![7])]), 1).await;
        for _ in 0..2 {
            let answers = fetch_many_from(address, &[7, 8], &secret).await;
            assert_eq!(answers, Ok(vec![Some(vec![7]), None]));
            assert_eq!(asked.recv().await.unwrap(), vec![7, 8]);
        }
    }

    #[tokio::test]
    async fn more_keys_than_a_window_go_in_several_requests_in_order() {
        let secret = Secret::generate();
        let count = REQUEST_WINDOW as TaskId + 3;
        let held: HashMap<TaskId, Vec<u8>> = (0..count).map(|t| (t, vec![t as u8])).collect();
        let (address, mut asked) = holder(secret.clone(), held, 9).await;
        let tasks: Vec<TaskId> = (0..count).collect();
        let answers = fetch_many_from(address, &tasks, &secret).await.unwrap();
        let expected: Vec<Option<Vec<u8>>> = tasks.iter().map(|&t| Some(vec![t as u8])).collect();
        assert_eq!(answers, expected);
        assert_eq!(asked.recv().await.unwrap().len(), REQUEST_WINDOW);
        assert_eq!(
            asked.recv().await.unwrap(),
            vec![count - 3, count - 2, count - 1]
        );
    }

    #[tokio::test]
    async fn an_unreachable_holder_is_an_error() {
        let secret = Secret::generate();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        assert!(fetch_many_from(address, &[1], &secret).await.is_err());
        assert_eq!(
            fetch_batched(&[input(1, &[address])], &secret).await,
            vec![None]
        );
    }
}
