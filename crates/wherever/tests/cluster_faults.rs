//! Faults and edge cases of the cluster with real worker processes: a scheduler
//! served in this process (with a short heartbeat timeout), workers started as
//! copies of this test binary (`harness = false`: `#[wherever::main]` turns them
//! into workers), and clients through the `tcp://` plan. Tests wait on events
//! (files the tasks write, worker counts the scheduler announces), never on sleeps.

mod fake_peers;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/poll.rs"]
mod poll;

use fake_peers::{dead_address, FakeScheduler, Holder};
use wherever_cluster::protocol::{Input, Message, TaskMessage};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use wherever::prelude::*;
use wherever::{IntoTask, StreamKey, Value};
use wherever_cluster::auth::SECRET_VARIABLE;
use wherever_cluster::launcher::WORKER_VARIABLE;
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::{ClusterClient, ClusterRuntime, RemoteCall, Secret};

/// How long any wait may take before the test is considered hung.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The heartbeat timeout of the test schedulers.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

#[wherever::task]
fn big(bytes: u64, fill: u8) -> Vec<u8> {
    vec![fill; bytes as usize]
}

#[wherever::task]
fn total(values: Vec<u8>) -> u64 {
    values.iter().map(|&v| u64::from(v)).sum()
}

#[wherever::task]
fn scaled_sum(values: Vec<i64>, factor: i64) -> i64 {
    values.iter().sum::<i64>() * factor
}

/// Writes `DIR/started-PID`, waits until `DIR/go` exists, returns the process id.
#[wherever::task]
fn pid_after_go(dir: String) -> u32 {
    let dir = PathBuf::from(dir);
    let pid = std::process::id();
    std::fs::write(dir.join(format!("started-{pid}")), b"").unwrap();
    wait_until(|| dir.join("go").exists(), "the go file");
    pid
}

/// Writes `DIR/started-PID`, waits until `count` workers started, returns the sum
/// of `values` times `factor` and the process id.
#[wherever::task]
fn sum_when_all_started(values: Vec<i64>, factor: i64, dir: String, count: u64) -> (i64, u32) {
    let dir = PathBuf::from(dir);
    let pid = std::process::id();
    std::fs::write(dir.join(format!("started-{pid}")), b"").unwrap();
    wait_until(|| started(&dir).len() as u64 >= count, "all workers");
    (values.iter().sum::<i64>() * factor, pid)
}

/// Writes `DIR/started-PID`, waits until `DIR/go` exists, returns `bytes` sevens.
#[wherever::task]
fn sevens_after_go(dir: String, bytes: u64) -> Vec<u8> {
    let dir = PathBuf::from(dir);
    std::fs::write(dir.join(format!("started-{}", std::process::id())), b"").unwrap();
    wait_until(|| dir.join("go").exists(), "the go file");
    vec![7; bytes as usize]
}

/// The first call aborts its worker process (leaving `DIR/aborted`); later calls
/// return 1.
#[wherever::task]
fn abort_first_time(dir: String) -> u64 {
    let marker = PathBuf::from(dir).join("aborted");
    if !marker.exists() {
        std::fs::write(&marker, b"").unwrap();
        std::process::abort();
    }
    1
}

/// Polls `condition` (a hang guard, not a timing assertion).
fn wait_until(condition: impl FnMut() -> bool, what: &str) {
    poll::wait_until(what, HANG_GUARD, condition);
}

/// The process ids that wrote `started-PID` files in `dir`.
fn started(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("started-")?
                .parse()
                .ok()
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// A scheduler served on this process's runtime, and the workers started for it.
struct TestCluster {
    address: String,
    secret: Secret,
    workers: Vec<Child>,
    _runtime: ClusterRuntime,
}

impl TestCluster {
    fn start(workers: usize) -> Self {
        let runtime = ClusterRuntime::start().unwrap();
        let secret = Secret::generate();
        let options = ServerOptions {
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
            ..ServerOptions::default()
        };
        let address = server::start(&runtime, "127.0.0.1:0", secret.clone(), options)
            .unwrap()
            .to_string();
        let mut cluster = TestCluster {
            address,
            secret,
            workers: Vec::new(),
            _runtime: runtime,
        };
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster
    }

    fn add_worker(&mut self) -> u32 {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(WORKER_VARIABLE, format!("tcp://{}", self.address))
            .env(SECRET_VARIABLE, self.secret.to_hex())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.workers.push(child);
        pid
    }

    /// A client connected through the `tcp://` plan.
    fn client(&self) -> Client {
        // The tcp plan reads the secret from the environment.
        std::env::set_var(SECRET_VARIABLE, self.secret.to_hex());
        Plan::parse(&format!("tcp://{}", self.address))
            .unwrap()
            .start()
            .unwrap()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

/// Waits until `client` was told of `slots` worker slots.
fn wait_for_slots(client: &Client, slots: usize) {
    wait_until(
        || client.workers() == slots,
        &format!("{slots} worker slots"),
    );
}

/// The value of `future`, failing the test instead of hanging.
fn value_within_guard<R: Value + Clone>(future: TaskFuture<R>) -> R {
    future.value_timeout(HANG_GUARD).unwrap().clone()
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wherever-faults-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn a_result_over_one_mebibyte_is_fetched_by_the_client() {
    let cluster = TestCluster::start(2);
    let client = cluster.client();
    wait_for_slots(&client, 2);
    let bytes = 3 << 20;
    let value = value_within_guard(client.submit(big, (bytes, 7u8)));
    assert_eq!(value.len() as u64, bytes);
    assert!(value.iter().all(|&v| v == 7));
    // And a worker fetches it as an input.
    let first = client.submit(big, (bytes, 1u8));
    let sum = value_within_guard(client.submit(total, &first));
    assert_eq!(sum, bytes);
}

fn two_clients_on_one_scheduler_at_once() {
    let cluster = TestCluster::start(2);
    let (one, two) = (cluster.client(), cluster.client());
    wait_for_slots(&one, 2);
    let data: Vec<i64> = (1..=100).collect();
    let firsts: Vec<_> = (1..=20)
        .map(|f| one.submit(scaled_sum, (data.clone(), f)))
        .collect();
    let seconds: Vec<_> = (1..=20)
        .map(|f| two.submit(scaled_sum, (data.clone(), -f)))
        .collect();
    let expected: Vec<i64> = (1..=20).map(|f| 5050 * f).collect();
    wait_until(
        || firsts.iter().chain(&seconds).all(|f| f.is_resolved()),
        "both clients' results",
    );
    assert_eq!(one.gather(firsts).unwrap(), expected);
    let negated: Vec<i64> = expected.iter().map(|v| -v).collect();
    assert_eq!(two.gather(seconds).unwrap(), negated);
    // One client leaving does not disturb the other.
    drop(one);
    assert_eq!(
        value_within_guard(two.submit(scaled_sum, (data, 2))),
        10_100
    );
}

fn a_worker_joining_after_a_scatter_gets_the_scattered_value() {
    let mut cluster = TestCluster::start(1);
    let client = cluster.client();
    wait_for_slots(&client, 1);
    let data = client.scatter(&(1..=1000).collect::<Vec<i64>>()).unwrap();
    let late = cluster.add_worker();
    wait_for_slots(&client, 2);
    let dir = temp_dir("scatter");
    let dir_text = dir.display().to_string();
    // Each task waits until both workers run one: the late worker must use the value.
    let futures: Vec<_> = (1..=2)
        .map(|factor| {
            client.submit(
                sum_when_all_started,
                (&data, factor, dir_text.clone(), 2u64),
            )
        })
        .collect();
    wait_until(|| futures.iter().all(|f| f.is_resolved()), "the results");
    let results = client.gather(futures).unwrap();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![500_500, 1_001_000]
    );
    assert!(
        results.iter().any(|r| r.1 == late),
        "the late worker ran nothing"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn a_stopped_worker_is_removed_after_the_heartbeat_timeout_and_its_task_moves() {
    let cluster = TestCluster::start(2);
    let client = cluster.client();
    wait_for_slots(&client, 2);
    let dir = temp_dir("sigstop");
    let dir_text = dir.display().to_string();
    let futures: Vec<_> = (0..2)
        .map(|_| client.submit(pid_after_go, dir_text.clone()))
        .collect();
    wait_until(|| started(&dir).len() == 2, "both tasks to start");
    let stopped = started(&dir)[0];
    signal(stopped, "-STOP");
    std::fs::write(dir.join("go"), b"").unwrap();
    // The scheduler hears nothing from the stopped worker and removes it.
    wait_for_slots(&client, 1);
    wait_until(|| futures.iter().all(|f| f.is_resolved()), "the results");
    let pids = client.gather(futures).unwrap();
    assert!(
        !pids.contains(&stopped),
        "a stopped worker answered: {pids:?}"
    );
    signal(stopped, "-CONT");
    let _ = std::fs::remove_dir_all(dir);
}

/// A call of `task` on encoded `args` for the raw cluster client.
fn raw_call<A: Value, R: 'static, M>(
    task: impl IntoTask<A, R, M>,
    args: &A,
    deps: Vec<u64>,
) -> RemoteCall {
    RemoteCall {
        name: task.task_name(),
        args: wherever_core::codec::encode(args).unwrap(),
        key: StreamKey::from_seed(0),
        seeded: false,
        position: 0,
        chunk: false,
        retries: 3,
        priority: 0,
        deps,
        holes: Vec::new(),
        chain: Vec::new(),
        resources: Default::default(),
        timeout: None,
        wanted: true,
    }
}

/// Waits until the worker process `child` exited.
fn wait_for_exit(child: &mut Child) {
    wait_until(|| child.try_wait().unwrap().is_some(), "the worker to exit");
}

fn a_large_result_whose_holder_died_before_the_fetch_is_recomputed() {
    let mut cluster = TestCluster::start(1);
    let runtime = Arc::new(ClusterRuntime::start().unwrap());
    let client =
        ClusterClient::connect(runtime.clone(), &cluster.address, cluster.secret.clone()).unwrap();
    wait_until(|| client.workers().0 == 1, "the worker");
    let dir = temp_dir("holder");
    let dir_text = dir.display().to_string();
    let bytes: u64 = 3 << 20;
    let (result_tx, result_rx) = mpsc::channel();
    let large = client.submit(
        raw_call(sevens_after_go, &(dir_text.clone(), bytes), Vec::new()),
        Box::new(move |result| result_tx.send(result).unwrap()),
    );
    // Runs on the holder once the large result is there, and kills it.
    client.submit(
        raw_call(abort_first_time, &(dir_text,), vec![large]),
        Box::new(|_| {}),
    );
    wait_until(|| started(&dir).len() == 1, "the large task to start");
    // Hold the client's connection thread: the `Done` for the large result waits
    // unread until its holder is dead.
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    runtime.handle().spawn(async move {
        blocked_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    blocked_rx.recv_timeout(HANG_GUARD).unwrap();
    std::fs::write(dir.join("go"), b"").unwrap();
    wait_for_exit(&mut cluster.workers[0]);
    assert!(dir.join("aborted").exists());
    cluster.add_worker();
    release_tx.send(()).unwrap();
    let result = result_rx.recv_timeout(HANG_GUARD).unwrap();
    // The result stays on its (new) holder until fetched.
    let encoded = match result.unwrap() {
        wherever_cluster::Arrival::Bytes(bytes) => bytes,
        wherever_cluster::Arrival::Held(held) => held.fetch_blocking().unwrap(),
    };
    let value: Vec<u8> = wherever_core::codec::decode(&encoded).unwrap();
    assert_eq!(value.len() as u64, bytes);
    assert!(value.iter().all(|&v| v == 7));
    let _ = std::fs::remove_dir_all(dir);
}

/// The `Compute` of `total` (task `id`) on the result of task 1, held at `holders`.
fn compute_total(id: u64, holders: Vec<std::net::SocketAddr>) -> Message {
    Message::Compute {
        task: Box::new(TaskMessage {
            deps: vec![1],
            holes: vec![wherever_core::holes::Hole { offset: 0, dep: 0 }],
            ..TaskMessage::new(
                id,
                IntoTask::<(Vec<u8>,), u64>::task_name(&total),
                Vec::new(),
            )
        }),
        inputs: vec![Input { task: 1, holders }],
    }
}

fn a_worker_reports_an_input_it_cannot_fetch_and_computes_once_given_a_holder() {
    let mut scheduler = FakeScheduler::start();
    // A heartbeat from the scheduler is not a protocol violation.
    scheduler.send(&[Message::Heartbeat]);
    let holders = [
        (2, dead_address()),
        (3, scheduler.fake_holder(Holder::DiesMidFetch)),
        (4, scheduler.fake_holder(Holder::Forgot)),
    ];
    for (task, holder) in holders {
        scheduler.send(&[compute_total(task, vec![holder])]);
        assert_eq!(
            scheduler.next(HANG_GUARD),
            Message::MissingData {
                task: 1,
                holders: vec![holder],
                requester: Some(task),
            },
            "holder {holder}"
        );
    }
    // Sent again with a holder that has it, the task runs on the fetched input.
    static INPUT: [u8; 4] = [3, 1, 2, 3];
    let holder = scheduler.fake_holder(Holder::Serves(&INPUT));
    scheduler.send(&[compute_total(2, vec![holder])]);
    assert_eq!(scheduler.next(HANG_GUARD), Message::Replicated { task: 1 });
    let expected = wherever_core::codec::encode(&6u64).unwrap();
    assert_eq!(
        scheduler.next(HANG_GUARD),
        Message::Finished {
            task: 2,
            nbytes: expected.len() as u64,
            result: Some(expected),
            ran_for: None,
        }
    );
}

fn the_data_port_ignores_a_fetchers_heartbeat() {
    let mut scheduler = FakeScheduler::start();
    scheduler.send(&[Message::Store {
        task: 9,
        data: vec![1, 2, 3],
    }]);
    let address = scheduler.data_address;
    let secret = scheduler.secret.clone();
    let answer = scheduler.runtime.handle().block_on(async move {
        use wherever_cluster::connection::{join, read_batch, split, write_batch};
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut reader, mut writer) = split(stream);
        let build = wherever_cluster::auth::this_build();
        let role = wherever_cluster::protocol::Role::DataFetch;
        join(&mut reader, &mut writer, &secret, role, build, false)
            .await
            .unwrap();
        write_batch(&mut writer, &[Message::Heartbeat])
            .await
            .unwrap();
        write_batch(&mut writer, &[Message::GetData { task: 9 }])
            .await
            .unwrap();
        tokio::time::timeout(HANG_GUARD, read_batch(&mut reader)).await
    });
    let batch = answer.expect("no answer").unwrap().expect("closed");
    assert_eq!(
        batch,
        vec![Message::Data {
            task: 9,
            result: Some(vec![1, 2, 3]),
        }]
    );
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_worker_reports_an_input_it_cannot_fetch_and_computes_once_given_a_holder",
            a_worker_reports_an_input_it_cannot_fetch_and_computes_once_given_a_holder,
        ),
        (
            "the_data_port_ignores_a_fetchers_heartbeat",
            the_data_port_ignores_a_fetchers_heartbeat,
        ),
        (
            "a_large_result_whose_holder_died_before_the_fetch_is_recomputed",
            a_large_result_whose_holder_died_before_the_fetch_is_recomputed,
        ),
        (
            "a_result_over_one_mebibyte_is_fetched_by_the_client",
            a_result_over_one_mebibyte_is_fetched_by_the_client,
        ),
        (
            "two_clients_on_one_scheduler_at_once",
            two_clients_on_one_scheduler_at_once,
        ),
        (
            "a_worker_joining_after_a_scatter_gets_the_scattered_value",
            a_worker_joining_after_a_scatter_gets_the_scattered_value,
        ),
        (
            "a_stopped_worker_is_removed_after_the_heartbeat_timeout_and_its_task_moves",
            a_stopped_worker_is_removed_after_the_heartbeat_timeout_and_its_task_moves,
        ),
    ]);
}
