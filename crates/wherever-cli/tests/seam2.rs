//! What every launcher needs from the scheduler and its workers (issue 11's seam),
//! against real `wherever scheduler` processes and real worker processes: this
//! test binary is its own worker executable (`harness = false`, see Cargo.toml).
//!
//! - the inner levels of a nested plan travel in the client's handshake, also for
//!   `tcp://HOST:PORT/threads:3` with workers started by hand, and no longer in
//!   an environment variable;
//! - a scheduler that stops normally says goodbye: workers with a death timeout
//!   exit at once with status 0 instead of reconnecting;
//! - a worker with `WHEREVER_EXIT_ON_STDIN_EOF=1` exits when its standard input
//!   closes (its ssh session or `srun` step ended).
//!
//! Every check waits until no worker process of this executable is left.

mod common;
#[path = "../../wherever/tests/common/harness.rs"]
mod harness;

use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use wherever::prelude::*;
use wherever_cluster::launcher::{
    start_cluster, BindScope, ClusterOptions, LaunchStatus, LaunchedWorkers, Launcher, WorkerLaunch,
};

#[wherever::task]
fn inner(i: u64, rng: &mut TaskRng) -> u64 {
    i ^ rng.random::<u64>()
}

/// The plan of the nested client this task gets, whether the old environment
/// variable is absent, and `width` nested results.
#[wherever::task]
fn report_nested(width: u64) -> Result<(String, bool, Vec<u64>), wherever::Error> {
    let client = wherever::client()?;
    let plan = client.plan().to_string();
    let futures: Vec<_> = (0..width).map(|i| client.submit(inner, i)).collect();
    let values = client.gather(futures)?;
    let no_variable = std::env::var_os("WHEREVER_INNER_PLAN").is_none();
    Ok((plan, no_variable, values))
}

/// The directory holding the secret file every scheduler of this process uses.
fn secret_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wherever-seam2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn this_executable() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// Live processes, other than this one, running this test executable.
fn workers_of_this_executable() -> Vec<u32> {
    let me = std::process::id();
    let exe = this_executable();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| pid != me && alive(pid))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok() == Some(exe.clone()))
        .collect()
}

fn nothing_left_behind() {
    wait_until("no worker process of this executable is left", || {
        workers_of_this_executable().is_empty()
    });
}

/// A worker of this executable for `scheduler`, with `env` on top.
fn spawn_worker(scheduler: &Scheduler, env: &[(&str, &str)]) -> Child {
    Command::new(this_executable())
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the scheduler's log has `count` "joined:" lines (workers and clients).
fn wait_for_joins(scheduler: &Scheduler, count: usize) {
    wait_until(&format!("{count} peers joined the scheduler"), || {
        scheduler.log().matches("joined: ").count() >= count
    });
}

/// Stops the scheduler with SIGTERM and waits for it; its exit code.
fn stop_scheduler(scheduler: &mut Scheduler) -> Option<i32> {
    signal(scheduler.child.id(), "-TERM");
    wait_for_exit(&mut scheduler.child, "the scheduler exits after SIGTERM");
    scheduler.child.wait().unwrap().code()
}

fn exit_code(child: &mut Child, what: &str) -> Option<i32> {
    wait_for_exit(child, what);
    child.wait().unwrap().code()
}

fn sequential_values(width: u64, count: u64) -> Vec<Vec<u64>> {
    let client = Plan::parse("sequential")
        .unwrap()
        .start()
        .unwrap()
        .with_seed(11);
    let futures: Vec<_> = (0..count)
        .map(|_| client.submit(report_nested, width))
        .collect();
    client
        .gather(futures)
        .unwrap()
        .into_iter()
        .map(|(_, _, values)| values)
        .collect()
}

fn tcp_inner_level_reaches_workers_of_a_wherever_scheduler() {
    let mut scheduler = Scheduler::start(secret_dir());
    let address = scheduler.address.clone();
    let death = [("WHEREVER_DEATH_TIMEOUT", "60")];
    let mut early = spawn_worker(&scheduler, &death);
    wait_for_joins(&scheduler, 1);
    let plan = Plan::parse(&format!("tcp://{address}/threads:3")).unwrap();
    let client = plan.start().unwrap().with_seed(11);
    // A worker joining after the client hears the inner plan at its welcome.
    let mut late = spawn_worker(&scheduler, &death);
    wait_for_joins(&scheduler, 3);
    let futures: Vec<_> = (0..8).map(|_| client.submit(report_nested, 5)).collect();
    let reports = client.gather(futures).unwrap();
    for (plan, no_variable, _) in &reports {
        assert_eq!(plan, "threads:3", "the nested client's plan");
        assert!(no_variable, "WHEREVER_INNER_PLAN is set in a worker");
    }
    let values: Vec<Vec<u64>> = reports.into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(values, sequential_values(5, 8));

    // While that client is connected, one with another inner plan is refused.
    let other = Plan::parse(&format!("tcp://{address}/threads:2")).unwrap();
    let error = match other.start() {
        Ok(_) => panic!("a client with another inner plan was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("`threads:3`") && error.contains("`threads:2`"),
        "{error}"
    );
    drop(client);
    assert_eq!(stop_scheduler(&mut scheduler), Some(0));
    assert_eq!(exit_code(&mut early, "the early worker exits"), Some(0));
    assert_eq!(exit_code(&mut late, "the late worker exits"), Some(0));
    nothing_left_behind();
}

fn processes_with_threads_inside_tell_their_workers_in_the_handshake() {
    let client = Plan::parse("processes:2/threads:2")
        .unwrap()
        .start()
        .unwrap()
        .with_seed(11);
    let futures: Vec<_> = (0..6).map(|_| client.submit(report_nested, 4)).collect();
    let reports = client.gather(futures).unwrap();
    for (plan, no_variable, _) in &reports {
        assert_eq!(plan, "threads:2");
        assert!(no_variable, "WHEREVER_INNER_PLAN is set in a worker");
    }
    let values: Vec<Vec<u64>> = reports.into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(values, sequential_values(4, 6));
    drop(client);
    nothing_left_behind();
}

fn workers_with_a_death_timeout_exit_0_when_their_scheduler_stops() {
    let mut scheduler = Scheduler::start(secret_dir());
    let death = [("WHEREVER_DEATH_TIMEOUT", "60")];
    let mut workers: Vec<Child> = (0..2).map(|_| spawn_worker(&scheduler, &death)).collect();
    wait_for_joins(&scheduler, 2);
    assert_eq!(stop_scheduler(&mut scheduler), Some(0));
    for worker in &mut workers {
        assert_eq!(
            exit_code(worker, "a worker exits after the goodbye"),
            Some(0),
            "scheduler log:\n{}",
            scheduler.log()
        );
    }
    nothing_left_behind();
}

fn a_worker_exits_when_its_standard_input_closes() {
    let scheduler = Scheduler::start(secret_dir());
    let secret = std::fs::read_to_string(&scheduler.secret_file).unwrap();
    let mut worker = Command::new(this_executable())
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env_remove("WHEREVER_SECRET_FILE")
        .env("WHEREVER_SECRET_STDIN", "1")
        .env("WHEREVER_EXIT_ON_STDIN_EOF", "1")
        .env("WHEREVER_DEATH_TIMEOUT", "60")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = worker.stdin.take().unwrap();
    writeln!(stdin, "{}", secret.trim()).unwrap();
    wait_for_joins(&scheduler, 1);
    assert!(
        alive(worker.id()),
        "the worker runs while its stdin is open"
    );
    drop(stdin);
    assert_eq!(exit_code(&mut worker, "the worker exits at EOF"), Some(0));
    drop(scheduler);
    nothing_left_behind();
}

/// A launcher of local workers with a 60 s death timeout that never kills them:
/// only the scheduler's goodbye makes them exit.
struct PatientLauncher {
    children: Arc<Mutex<Vec<Child>>>,
}

struct PatientWorkers;

impl LaunchedWorkers for PatientWorkers {
    fn poll(&mut self) -> LaunchStatus {
        LaunchStatus::Running
    }
    fn stop(&mut self) {}
}

impl Launcher for PatientLauncher {
    fn describe(&self) -> String {
        "patient:2".to_string()
    }
    fn bind_scope(&self) -> BindScope {
        BindScope::Loopback
    }
    fn workers(&self) -> usize {
        2
    }
    fn launch(
        &self,
        launch: &WorkerLaunch,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<Box<dyn LaunchedWorkers>, String> {
        for _ in 0..2 {
            let mut child = Command::new(&launch.executable)
                .env("WHEREVER_WORKER", format!("tcp://{}", launch.scheduler))
                .env("WHEREVER_SECRET_STDIN", "1")
                .env("WHEREVER_DEATH_TIMEOUT", "60")
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{}", launch.secret_hex).map_err(|e| e.to_string())?;
            self.children.lock().unwrap().push(child);
        }
        Ok(Box::new(PatientWorkers))
    }
}

fn a_launched_cluster_says_goodbye_to_its_workers_when_dropped() {
    let children = Arc::new(Mutex::new(Vec::new()));
    let launcher = PatientLauncher {
        children: children.clone(),
    };
    let (cluster, client) = start_cluster(&launcher, ClusterOptions::default()).unwrap();
    assert_eq!(client.workers().0, 2);
    drop(client);
    drop(cluster);
    for child in children.lock().unwrap().iter_mut() {
        assert_eq!(exit_code(child, "a launched worker exits"), Some(0));
    }
    nothing_left_behind();
}

fn the_scheduler_listens_on_the_interface_it_is_given_and_refuses_unknown_ones() {
    let scheduler = Scheduler::start_with(secret_dir(), &["--interface", "lo"]);
    assert!(
        scheduler.address.starts_with("127.0.0.1:"),
        "{}",
        scheduler.address
    );
    drop(scheduler);
    let secret = secret_dir().join("secret");
    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(wherever_binary())
            .args(["scheduler", "--port", "0", "--secret-file"])
            .arg(&secret)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} {env:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for bad in ["no-such-nic0", "", "10.1.2", "lo;true"] {
        let error = refused(&["--interface", bad], &[]);
        assert!(
            error.contains(&format!(
                "`{bad}` is neither an IP address nor a network interface"
            )) && error.contains("lo"),
            "{error}"
        );
    }
    let both = refused(&["--interface", "lo", "--host", "127.0.0.1"], &[]);
    assert!(both.contains("cannot be used with"), "{both}");
    let variable = refused(&[], &[("WHEREVER_INTERFACE", "no-such-nic0")]);
    assert!(
        variable.contains("WHEREVER_INTERFACE=`no-such-nic0` is neither"),
        "{variable}"
    );
}

fn a_scheduler_whose_stderr_is_gone_still_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    /// Killed if the check fails before it exits.
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut scheduler = Killed(
        Command::new(wherever_binary())
            .args(["scheduler", "--port", "0", "--secret-file"])
            .arg(secret_dir().join("secret"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(scheduler.0.stderr.take().unwrap());
    // Its first lines: the dashboard's address (on by default) and where it listens.
    let mut lines = String::new();
    while !lines.contains("listening on") {
        let before = lines.len();
        stderr.read_line(&mut lines).unwrap();
        assert!(lines.len() > before, "stderr ended first: {lines}");
    }
    // The terminal or pipe that started it goes away (an orphaned scheduler).
    drop(stderr);
    signal(scheduler.0.id(), "-TERM");
    assert_eq!(exit_code(&mut scheduler.0, "the scheduler exits"), Some(0));
}

#[wherever::main]
fn main() {
    // Before any thread: clients of this process find the schedulers' secret.
    std::env::set_var("WHEREVER_SECRET_FILE", secret_dir().join("secret"));
    let checks: [(&str, fn()); 7] = [
        (
            "a_scheduler_whose_stderr_is_gone_still_stops_on_sigterm",
            a_scheduler_whose_stderr_is_gone_still_stops_on_sigterm,
        ),
        (
            "the_scheduler_listens_on_the_interface_it_is_given_and_refuses_unknown_ones",
            the_scheduler_listens_on_the_interface_it_is_given_and_refuses_unknown_ones,
        ),
        (
            "tcp_inner_level_reaches_workers_of_a_wherever_scheduler",
            tcp_inner_level_reaches_workers_of_a_wherever_scheduler,
        ),
        (
            "processes_with_threads_inside_tell_their_workers_in_the_handshake",
            processes_with_threads_inside_tell_their_workers_in_the_handshake,
        ),
        (
            "workers_with_a_death_timeout_exit_0_when_their_scheduler_stops",
            workers_with_a_death_timeout_exit_0_when_their_scheduler_stops,
        ),
        (
            "a_worker_exits_when_its_standard_input_closes",
            a_worker_exits_when_its_standard_input_closes,
        ),
        (
            "a_launched_cluster_says_goodbye_to_its_workers_when_dropped",
            a_launched_cluster_says_goodbye_to_its_workers_when_dropped,
        ),
    ];
    harness::run_checks(&checks)
}
