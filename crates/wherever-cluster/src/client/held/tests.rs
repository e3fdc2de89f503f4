//! A held result against a fake scheduler and a fake holder: the client fetches
//! nothing when the task ends, fetches on `fetch_blocking`, then says `Fetched`.

use super::*;
use crate::auth::Secret;
use crate::client::{ClusterClient, ClusterRuntime, RemoteCall};
use crate::connection::{read_batch, split, write_batch};
use crate::fetch::batched::tests::holder;
use crate::protocol::CLIENT_TASK_BITS;
use std::collections::HashMap;
use std::time::Duration;
use wherever_core::StreamKey;

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn call() -> RemoteCall {
    RemoteCall {
        name: "large",
        args: Vec::new(),
        key: StreamKey::from_seed(0),
        seeded: false,
        position: 0,
        chunk: false,
        retries: 0,
        priority: 0,
        deps: Vec::new(),
        holes: Vec::new(),
        chain: Vec::new(),
        resources: Default::default(),
        timeout: None,
        wanted: true,
    }
}

#[test]
fn a_held_result_is_fetched_when_asked_and_then_reported_fetched() {
    let runtime = Arc::new(ClusterRuntime::start().expect("runtime"));
    let secret = Secret::generate();
    let listener = runtime
        .handle()
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let result = vec![7u8; 3 << 20];
    let (data, mut asked) = {
        let _inside = runtime.handle().enter();
        let held = HashMap::from([((1 << CLIENT_TASK_BITS) + 1, result.clone())]);
        runtime.handle().block_on(holder(secret.clone(), held, 9))
    };
    let (heard, hearing) = std::sync::mpsc::channel::<Message>();
    let server_secret = secret.clone();
    runtime.handle().spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (mut reader, mut writer) = split(stream);
        let build = std::sync::Mutex::new(None);
        crate::connection::accept(&mut reader, &mut writer, &server_secret, &build)
            .await
            .expect("handshake");
        let hello = [
            Message::Welcome { id: 1 },
            Message::Workers { count: 1, slots: 1 },
        ];
        write_batch(&mut writer, &hello).await.expect("welcome");
        while let Ok(Some(batch)) = read_batch(&mut reader).await {
            for message in batch {
                if let Message::Submit { tasks } = &message {
                    let done: Vec<Message> = tasks
                        .iter()
                        .map(|task| Message::Done {
                            task: task.id,
                            result: None,
                            holders: vec![data],
                        })
                        .collect();
                    write_batch(&mut writer, &done).await.expect("done");
                }
                let _ = heard.send(message);
            }
        }
    });
    let client = ClusterClient::connect(runtime.clone(), &address, secret).expect("connect");
    let (arrived, arrival) = std::sync::mpsc::channel();
    let task = client.submit(
        call(),
        Box::new(move |outcome| arrived.send(outcome).unwrap()),
    );
    assert_eq!(
        task,
        (1 << CLIENT_TASK_BITS) + 1,
        "the holder serves the first task id of client 1"
    );
    let held = match arrival.recv_timeout(HANG_GUARD).expect("the task's end") {
        Ok(Arrival::Held(held)) => held,
        other => panic!("not held: {other:?}"),
    };
    // The end of the task fetched nothing.
    assert!(asked.try_recv().is_err(), "fetched before it was asked for");
    assert_eq!(held.task(), task);
    assert_eq!(held.fetch_blocking().expect("fetched"), result);
    assert_eq!(
        runtime.handle().block_on(asked.recv()),
        Some(vec![task]),
        "one request for the task"
    );
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match hearing.recv_timeout(left).expect("Fetched after the fetch") {
            Message::Fetched { task: fetched } => break assert_eq!(fetched, task),
            _ => continue,
        }
    }
}

/// A data port that answers its first request with `reply` (the tasks asked
/// for in, its answers out) and closes the connection; later requests it reads
/// and closes unanswered (as if its worker had died). It reports the tasks of
/// each request it read.
async fn holder_replying(
    secret: Secret,
    reply: fn(&[TaskId]) -> Vec<Message>,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<TaskId>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (requests, asked) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((stream, _)) = listener.accept().await {
            let (mut reader, mut writer) = split(stream);
            let build = std::sync::Mutex::new(None);
            if crate::connection::accept(&mut reader, &mut writer, &secret, &build)
                .await
                .is_err()
            {
                continue;
            }
            let Ok(Some(batch)) = read_batch(&mut reader).await else {
                continue;
            };
            let tasks: Vec<TaskId> = batch
                .iter()
                .filter_map(|message| match message {
                    Message::GetData { task } => Some(*task),
                    _ => None,
                })
                .collect();
            let _ = requests.send(tasks.clone());
            if std::mem::replace(&mut first, false) {
                let _ = write_batch(&mut writer, &reply(&tasks)).await;
            }
        }
    });
    (address, asked)
}

/// A scheduler that ends every submitted task as held by `data`, and fails a
/// task reported missing; it tells `heard` what it received.
async fn scheduler_failing_missing(
    listener: tokio::net::TcpListener,
    secret: Secret,
    data: std::net::SocketAddr,
    heard: std::sync::mpsc::Sender<Message>,
) {
    let (stream, _) = listener.accept().await.expect("accept");
    let (mut reader, mut writer) = split(stream);
    let build = std::sync::Mutex::new(None);
    crate::connection::accept(&mut reader, &mut writer, &secret, &build)
        .await
        .expect("handshake");
    let hello = [
        Message::Welcome { id: 1 },
        Message::Workers { count: 1, slots: 1 },
    ];
    write_batch(&mut writer, &hello).await.expect("welcome");
    while let Ok(Some(batch)) = read_batch(&mut reader).await {
        for message in batch {
            let answer: Vec<Message> = match &message {
                Message::Submit { tasks } => tasks
                    .iter()
                    .map(|task| Message::Done {
                        task: task.id,
                        result: None,
                        holders: vec![data],
                    })
                    .collect(),
                Message::MissingData { task, .. } => vec![Message::Failed {
                    task: *task,
                    error: Box::new(TaskError::new(
                        "large",
                        0,
                        TaskErrorKind::Failed,
                        "lost with its worker",
                    )),
                }],
                _ => Vec::new(),
            };
            if !answer.is_empty() {
                write_batch(&mut writer, &answer).await.expect("answer");
            }
            let _ = heard.send(message);
        }
    }
}

/// What [`fetch_three_all_then`] saw.
struct ThreeFetched {
    /// Each task's outcome, in the order submitted.
    outcomes: Vec<Result<Vec<u8>, TaskError>>,
    /// The tasks of each request the holder read.
    requests: Vec<Vec<TaskId>>,
    /// What the scheduler received.
    heard: Vec<Message>,
}

/// Submits three tasks against a holder answering with `reply`, fetches their
/// held results with [`HeldResult::fetch_all_then`], and says what came.
fn fetch_three_all_then(reply: fn(&[TaskId]) -> Vec<Message>) -> ThreeFetched {
    let runtime = Arc::new(ClusterRuntime::start().expect("runtime"));
    let secret = Secret::generate();
    let listener = runtime
        .handle()
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (data, mut asked) = {
        let _inside = runtime.handle().enter();
        runtime
            .handle()
            .block_on(holder_replying(secret.clone(), reply))
    };
    let (heard, hearing) = std::sync::mpsc::channel::<Message>();
    runtime.handle().spawn(scheduler_failing_missing(
        listener,
        secret.clone(),
        data,
        heard,
    ));
    let client = ClusterClient::connect(runtime.clone(), &address, secret).expect("connect");
    let (arrived, arrival) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let arrived = arrived.clone();
        client.submit(
            call(),
            Box::new(move |outcome| arrived.send(outcome).unwrap()),
        );
    }
    let held: Vec<HeldResult> = (0..3)
        .map(
            |_| match arrival.recv_timeout(HANG_GUARD).expect("the task's end") {
                Ok(Arrival::Held(held)) => held,
                other => panic!("not held: {other:?}"),
            },
        )
        .collect();
    let tasks: Vec<TaskId> = held.iter().map(HeldResult::task).collect();
    let (fetched, outcomes) = std::sync::mpsc::channel();
    let (batched, batch_ended) = std::sync::mpsc::channel();
    let each: Vec<(HeldResult, BytesThen)> = held
        .into_iter()
        .map(|held| {
            let (fetched, task) = (fetched.clone(), held.task());
            let then: BytesThen = Box::new(move |outcome| fetched.send((task, outcome)).unwrap());
            (held, then)
        })
        .collect();
    HeldResult::fetch_all_then(each, move || batched.send(()).unwrap());
    batch_ended
        .recv_timeout(HANG_GUARD)
        .expect("the batch ended");
    let mut by_task: HashMap<TaskId, Result<Vec<u8>, TaskError>> = HashMap::new();
    while by_task.len() < 3 {
        let (task, outcome) = outcomes.recv_timeout(HANG_GUARD).expect("every outcome");
        assert!(by_task.insert(task, outcome).is_none(), "task {task} twice");
    }
    let requests = std::iter::from_fn(|| asked.try_recv().ok()).collect();
    let heard = std::iter::from_fn(|| hearing.try_recv().ok()).collect();
    let outcomes = tasks
        .iter()
        .map(|task| by_task.remove(task).unwrap())
        .collect();
    ThreeFetched {
        outcomes,
        requests,
        heard,
    }
}

/// Answers only the first task asked for.
fn first_only(tasks: &[TaskId]) -> Vec<Message> {
    vec![Message::Data {
        task: tasks[0],
        result: Some(vec![1, 2, 3]),
    }]
}

/// Answers the first task asked for, then a task nobody asked for.
fn first_then_a_stranger(tasks: &[TaskId]) -> Vec<Message> {
    vec![
        Message::Data {
            task: tasks[0],
            result: Some(vec![1, 2, 3]),
        },
        Message::Data {
            task: 999,
            result: Some(vec![9]),
        },
    ]
}

/// The checks of a batched fetch whose answer broke off after the first result.
fn check_one_answered_two_failed(reply: fn(&[TaskId]) -> Vec<Message>) {
    let ThreeFetched {
        outcomes,
        requests,
        heard,
    } = fetch_three_all_then(reply);
    assert_eq!(outcomes[0].as_ref().expect("answered"), &vec![1, 2, 3]);
    for outcome in &outcomes[1..] {
        let error = outcome.as_ref().expect_err("not answered");
        assert!(
            error.message.contains("lost with its worker"),
            "the error of a read alone: {error}"
        );
    }
    assert_eq!(
        requests[0].len(),
        3,
        "one request for the three: {requests:?}"
    );
    let missing = heard
        .iter()
        .filter(|message| matches!(message, Message::MissingData { .. }))
        .count();
    assert_eq!(missing, 2, "each unanswered result reported missing once");
}

#[test]
fn a_batched_fetch_answered_short_gives_the_rest_the_error_of_a_read_alone() {
    check_one_answered_two_failed(first_only);
}

#[test]
fn a_batched_fetch_answered_with_a_stranger_gives_the_rest_the_error_of_a_read_alone() {
    check_one_answered_two_failed(first_then_a_stranger);
}
