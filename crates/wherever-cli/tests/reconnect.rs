//! Workers that come back: against real `wherever scheduler` processes, a worker
//! started before its scheduler, or that loses it, connects again (for its death
//! timeout) and serves the next scheduler; one that gives up or is removed exits
//! with status 1 and says why; a client whose scheduler has no workers is told so
//! and, with a timeout set, gets an error instead of waiting forever.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A process whose stderr is collected as it comes.
struct Watched {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Watched {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Watched { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr says `text` or the process exits; `true` if it said it.
    fn says_before_exit(&mut self, text: &str) -> bool {
        let mut said = false;
        wait_until(
            &format!("stderr says `{text}` or the process exits"),
            || {
                said = self.stderr().contains(text);
                said || self.child.try_wait().unwrap().is_some()
            },
        );
        said
    }

    /// Waits for the exit; its status code.
    fn exit_code(&mut self) -> Option<i32> {
        wait_for_exit(&mut self.child, "the process exits");
        // The collecting thread may still be reading the last lines.
        self.child.wait().unwrap().code()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `calc_mean` worker of the scheduler at `address` with `death_timeout` seconds.
fn worker(address: &str, secret_file: &std::path::Path, death_timeout: &str) -> Watched {
    let mut command = Command::new(example("calc_mean"));
    command
        .env("WHEREVER_WORKER", format!("tcp://{address}"))
        .env("WHEREVER_SECRET_FILE", secret_file)
        .env("WHEREVER_DEATH_TIMEOUT", death_timeout);
    Watched::spawn(command)
}

/// Runs a two-task study against `address`; panics unless it prints its lines.
fn study_succeeds(address: &str, secret_file: &std::path::Path) {
    let output = run_ok(
        &example("calc_mean"),
        &[
            "--plan",
            &format!("tcp://{address}"),
            "--seed",
            "1",
            "--tasks",
            "2",
            "--n",
            "1000",
        ],
        &[("WHEREVER_SECRET_FILE", &secret_file.display().to_string())],
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 3);
}

/// The port of `HOST:PORT`.
fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A scheduler's address and secret file, the scheduler itself stopped: a port
/// nothing listens on (for now).
fn stopped_scheduler(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let scheduler = Scheduler::start(dir);
    (scheduler.address.clone(), scheduler.secret_file.clone())
}

#[test]
fn a_worker_that_loses_its_scheduler_serves_the_restarted_one() {
    let dir = TempDir::new("reconnect-lost");
    let first = Scheduler::start(&dir.0);
    let (address, secret_file) = (first.address.clone(), first.secret_file.clone());
    let mut worker = worker(&address, &secret_file, "120");
    first.wait_for_log("joined:");
    // "joined:" is logged before the welcome goes out: a study that runs on the
    // worker shows it finished its handshake (killed in between, the worker would
    // see a connection closed during its handshake, as with a wrong secret).
    study_succeeds(&address, &secret_file);
    drop(first);
    assert!(
        worker.says_before_exit("connecting again"),
        "the worker exited when its scheduler went away: {}",
        worker.stderr()
    );
    let second = Scheduler::start_on(&dir.0, port_of(&address), &[]);
    study_succeeds(&second.address, &secret_file);
    assert!(worker.child.try_wait().unwrap().is_none());
}

#[test]
fn a_worker_started_before_its_scheduler_joins_it() {
    let dir = TempDir::new("reconnect-early");
    let (address, secret_file) = stopped_scheduler(&dir.0);
    let mut worker = worker(&address, &secret_file, "120");
    assert!(
        worker.says_before_exit("trying again"),
        "the worker gave up at once: {}",
        worker.stderr()
    );
    let scheduler = Scheduler::start_on(&dir.0, port_of(&address), &[]);
    study_succeeds(&scheduler.address, &secret_file);
}

#[test]
fn a_worker_that_gives_up_exits_with_status_1_and_says_why() {
    let dir = TempDir::new("reconnect-give-up");
    let (address, secret_file) = stopped_scheduler(&dir.0);
    let mut worker = worker(&address, &secret_file, "0.5");
    assert_eq!(worker.exit_code(), Some(1));
    wait_until("the worker's message is read", || {
        worker.stderr().contains("gave up after 0.5 s")
    });
}

#[test]
fn a_removed_worker_exits_with_status_1_and_says_why() {
    let dir = TempDir::new("reconnect-removed");
    let scheduler = Scheduler::start_with(&dir.0, &["--heartbeat-timeout", "3"]);
    let mut worker = worker(&scheduler.address, &scheduler.secret_file, "120");
    scheduler.wait_for_log("joined:");
    signal(worker.child.id(), "-STOP");
    scheduler.wait_for_log("no heartbeat");
    signal(worker.child.id(), "-CONT");
    assert_eq!(worker.exit_code(), Some(1), "{}", worker.stderr());
    wait_until("the worker's message is read", || {
        worker.stderr().contains("removed this worker")
    });
}

#[test]
fn a_client_without_workers_is_told_and_fails_after_its_timeout() {
    let dir = TempDir::new("no-workers");
    let scheduler = Scheduler::start(&dir.0);
    let mut command = Command::new(example("calc_mean"));
    command
        .args(["--plan", &format!("tcp://{}", scheduler.address)])
        .args(["--tasks", "2", "--n", "10"])
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .env("WHEREVER_NO_WORKERS_NOTICE", "0.2")
        .env("WHEREVER_NO_WORKERS_TIMEOUT", "1")
        .stdout(Stdio::null());
    let mut client = Watched::spawn(command);
    assert_ne!(client.exit_code(), Some(0));
    wait_until("the client's messages are read", || {
        let stderr = client.stderr();
        stderr.contains("has no workers") && stderr.contains("had no workers")
    });
}
