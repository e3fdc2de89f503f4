//! Stand-ins that speak the wire protocol in raw messages, to put a real worker
//! process in situations a real cluster reaches only by chance: a scheduler that
//! sends exactly the messages a test wants, and data ports that refuse, forget or
//! die in the middle of a fetch.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpListener;
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::connection::{accept, read_batch, split, write_batch, Reader, Writer};
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::protocol::{Message, Role};
use wherever_cluster::{ClusterRuntime, Secret};

/// How a fake data port answers a `GetData`.
#[derive(Clone, Copy, Debug)]
pub enum Holder {
    /// Closes the connection after reading the request: it died mid-fetch.
    DiesMidFetch,
    /// Answers that it does not hold the result.
    Forgot,
    /// Answers with these encoded bytes.
    Serves(&'static [u8]),
}

/// A scheduler stand-in with one worker process of this executable connected.
pub struct FakeScheduler {
    pub runtime: ClusterRuntime,
    pub secret: Secret,
    pub reader: Reader,
    pub writer: Writer,
    /// Where the worker serves its results.
    pub data_address: SocketAddr,
    pub worker: Child,
    /// Messages read but not yet taken by [`FakeScheduler::next`].
    pending: VecDeque<Message>,
}

impl FakeScheduler {
    /// Starts a worker process and welcomes it.
    pub fn start() -> Self {
        let runtime = ClusterRuntime::start().unwrap();
        let secret = Secret::generate();
        let listener = runtime
            .handle()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let worker = Command::new(std::env::current_exe().unwrap())
            .env(WORKER_VARIABLE, format!("tcp://{address}"))
            .env(SECRET_VARIABLE, secret.to_hex())
            .spawn()
            .unwrap();
        let handshake_secret = secret.clone();
        let (reader, writer, data_address) = runtime.handle().block_on(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut reader, mut writer) = split(stream);
            let hello = accept(
                &mut reader,
                &mut writer,
                &handshake_secret,
                &Mutex::new(None),
            )
            .await
            .unwrap();
            let Role::Worker { data_address, .. } = hello.role else {
                panic!("not a worker: {:?}", hello.role);
            };
            write_batch(&mut writer, &[Message::Welcome { id: 1 }])
                .await
                .unwrap();
            (reader, writer, data_address)
        });
        FakeScheduler {
            runtime,
            secret,
            reader,
            writer,
            data_address,
            worker,
            pending: VecDeque::new(),
        }
    }

    /// Sends `messages` to the worker in one frame.
    pub fn send(&mut self, messages: &[Message]) {
        let writer = &mut self.writer;
        self.runtime
            .handle()
            .block_on(write_batch(writer, messages))
            .unwrap();
    }

    /// The next message from the worker that is not a heartbeat; panics after
    /// `guard` (a hang guard).
    pub fn next(&mut self, guard: Duration) -> Message {
        if let Some(message) = self.pending.pop_front() {
            return message;
        }
        let reader = &mut self.reader;
        let batch = self.runtime.handle().block_on(async move {
            tokio::time::timeout(guard, async {
                loop {
                    let batch = read_batch(reader).await.unwrap().expect("the worker left");
                    let batch: Vec<Message> = batch
                        .into_iter()
                        .filter(|m| *m != Message::Heartbeat)
                        .collect();
                    if !batch.is_empty() {
                        return batch;
                    }
                }
            })
            .await
            .expect("the worker said nothing")
        });
        self.pending.extend(batch);
        self.pending.pop_front().expect("not empty")
    }

    /// A data port that answers every fetch as `holder` says.
    pub fn fake_holder(&self, holder: Holder) -> SocketAddr {
        let listener = self
            .runtime
            .handle()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let secret = self.secret.clone();
        self.runtime.handle().spawn(async move {
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
                    let Some(Message::GetData { task }) = batch.into_iter().last() else {
                        continue;
                    };
                    let result = match holder {
                        Holder::DiesMidFetch => break,
                        Holder::Forgot => None,
                        Holder::Serves(bytes) => Some(bytes.to_vec()),
                    };
                    let answer = [Message::Data { task, result }];
                    if write_batch(&mut writer, &answer).await.is_err() {
                        break;
                    }
                }
            }
        });
        address
    }
}

impl Drop for FakeScheduler {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

/// An address where nothing listens (a holder that died).
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
