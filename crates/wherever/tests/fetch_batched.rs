//! Fetching a task's inputs in one request per holder, with a real worker process
//! (this test binary, `harness = false`: `#[wherever::main]` turns copies of it into
//! workers) driven by a stand-in scheduler: the worker's data port answers a
//! request for several keys in one frame, a worker asks a holder for all the
//! inputs it holds at once, and an input the holder lacks is still reported.

#[allow(dead_code)]
mod fake_peers;
#[path = "common/harness.rs"]
mod harness;

use fake_peers::FakeScheduler;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use wherever::IntoTask;
use wherever_cluster::connection::{accept, join, read_batch, split, write_batch};
use wherever_cluster::protocol::{Input, Message, Role, TaskId, TaskMessage};

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[wherever::task]
fn sum3(a: Vec<u8>, b: Vec<u8>, c: Vec<u8>) -> u64 {
    a.iter().chain(&b).chain(&c).map(|&v| u64::from(v)).sum()
}

/// The `Compute` of `sum3` (task `id`) on the results of tasks 1, 2 and 3, held
/// at `holder`.
fn compute_sum3(id: TaskId, holder: SocketAddr) -> Message {
    let holes = (0..3)
        .map(|dep| wherever_core::holes::Hole { offset: 0, dep })
        .collect();
    Message::Compute {
        task: Box::new(TaskMessage {
            deps: vec![1, 2, 3],
            holes,
            ..TaskMessage::new(
                id,
                IntoTask::<(Vec<u8>, Vec<u8>, Vec<u8>), u64>::task_name(&sum3),
                Vec::new(),
            )
        }),
        inputs: (1..=3)
            .map(|task| Input {
                task,
                holders: vec![holder],
            })
            .collect(),
    }
}

/// A data port serving `held` (encoded results by task) that reports, for each
/// request frame, the tasks asked for in it.
fn recording_holder(
    scheduler: &FakeScheduler,
    held: HashMap<TaskId, Vec<u8>>,
) -> (SocketAddr, mpsc::Receiver<Vec<TaskId>>) {
    let listener = scheduler
        .runtime
        .handle()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let secret = scheduler.secret.clone();
    let (requests, asked) = mpsc::channel();
    scheduler.runtime.handle().spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (mut reader, mut writer) = split(stream);
            if accept(&mut reader, &mut writer, &secret, &Mutex::new(None))
                .await
                .is_err()
            {
                continue;
            }
            while let Ok(Some(batch)) = read_batch(&mut reader).await {
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

/// `bytes` encoded as a task's result.
fn encoded(bytes: &[u8]) -> Vec<u8> {
    wherever_core::codec::encode(&bytes.to_vec()).unwrap()
}

fn the_data_port_answers_a_request_for_several_keys_in_one_frame_in_order() {
    let mut scheduler = FakeScheduler::start();
    scheduler.send(&[
        Message::Store {
            task: 9,
            data: vec![9],
        },
        Message::Store {
            task: 10,
            data: vec![10, 10],
        },
    ]);
    let address = scheduler.data_address;
    let secret = scheduler.secret.clone();
    let answer = scheduler.runtime.handle().block_on(async move {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut reader, mut writer) = split(stream);
        let build = wherever_cluster::auth::this_build();
        join(
            &mut reader,
            &mut writer,
            &secret,
            Role::DataFetch,
            build,
            false,
        )
        .await
        .unwrap();
        let request = [9, 11, 10].map(|task| Message::GetData { task });
        write_batch(&mut writer, &request).await.unwrap();
        tokio::time::timeout(HANG_GUARD, read_batch(&mut reader)).await
    });
    let batch = answer.expect("no answer").unwrap().expect("closed");
    assert_eq!(
        batch,
        vec![
            Message::Data {
                task: 9,
                result: Some(vec![9]),
            },
            Message::Data {
                task: 11,
                result: None,
            },
            Message::Data {
                task: 10,
                result: Some(vec![10, 10]),
            },
        ]
    );
}

fn a_worker_asks_one_holder_for_all_the_inputs_it_holds_in_one_request() {
    let mut scheduler = FakeScheduler::start();
    let held = HashMap::from([
        (1, encoded(&[1])),
        (2, encoded(&[2, 2])),
        (3, encoded(&[3, 3, 3])),
    ]);
    let (holder, asked) = recording_holder(&scheduler, held);
    scheduler.send(&[compute_sum3(4, holder)]);
    let mut replicated = Vec::new();
    for _ in 0..3 {
        match scheduler.next(HANG_GUARD) {
            Message::Replicated { task } => replicated.push(task),
            other => panic!("expected Replicated, got {other:?}"),
        }
    }
    assert_eq!(replicated, vec![1, 2, 3]);
    let expected = wherever_core::codec::encode(&(1u64 + 4 + 9)).unwrap();
    assert_eq!(
        scheduler.next(HANG_GUARD),
        Message::Finished {
            task: 4,
            nbytes: expected.len() as u64,
            result: Some(expected),
            ran_for: None,
        }
    );
    assert_eq!(asked.recv_timeout(HANG_GUARD).unwrap(), vec![1, 2, 3]);
    assert!(asked.try_recv().is_err(), "more than one request");
}

fn an_input_the_holder_lacks_is_still_reported_missing() {
    let mut scheduler = FakeScheduler::start();
    let held = HashMap::from([(1, encoded(&[1])), (3, encoded(&[3]))]);
    let (holder, _asked) = recording_holder(&scheduler, held);
    scheduler.send(&[compute_sum3(4, holder)]);
    assert_eq!(scheduler.next(HANG_GUARD), Message::Replicated { task: 1 });
    assert_eq!(
        scheduler.next(HANG_GUARD),
        Message::MissingData {
            task: 2,
            holders: vec![holder],
            requester: Some(4),
        }
    );
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "the_data_port_answers_a_request_for_several_keys_in_one_frame_in_order",
            the_data_port_answers_a_request_for_several_keys_in_one_frame_in_order,
        ),
        (
            "a_worker_asks_one_holder_for_all_the_inputs_it_holds_in_one_request",
            a_worker_asks_one_holder_for_all_the_inputs_it_holds_in_one_request,
        ),
        (
            "an_input_the_holder_lacks_is_still_reported_missing",
            an_input_the_holder_lacks_is_still_reported_missing,
        ),
    ]);
}
