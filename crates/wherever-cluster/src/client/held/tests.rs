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
