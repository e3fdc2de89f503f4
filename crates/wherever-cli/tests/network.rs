//! The network against real `wherever scheduler` processes: unauthenticated peers
//! cost no memory and cannot forge log lines, a client notices a scheduler that
//! went silent, and both sides notice a cut network link (where the simulated
//! hosts of `shared/ci/netns-hosts.sh` are up).

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often `text` occurs in the scheduler's log.
fn log_count(scheduler: &Scheduler, text: &str) -> usize {
    scheduler.log().matches(text).count()
}

/// Starts `study` (a `calc_mean` command) as a client of `scheduler` with a 4 s
/// silence timeout and tasks that stay pending (there is no worker); returns once
/// the scheduler has welcomed it.
fn start_pending_client(mut study: Command, scheduler: &Scheduler) -> std::process::Child {
    let plan = format!("tcp://{}", scheduler.address);
    let client = study
        .args(["--plan", &plan, "--tasks", "2", "--n", "10"])
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .env("WHEREVER_SILENCE_TIMEOUT", "4")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scheduler.wait_for_log("joined:");
    client
}

#[test]
fn unauthenticated_connections_cost_no_memory_and_a_client_still_works() {
    let dir = TempDir::new("memory");
    let scheduler = Scheduler::start(&dir.0);
    let pid = scheduler.child.id();
    reset_peak(pid);
    let start = peak_resident_kib(pid);

    // Five hundred connections that never say anything.
    let idle: Vec<_> = (0..500).map(|_| connect(&scheduler)).collect();
    // Eight that announce 250 MiB frames and start sending them.
    let attackers = large_frame_attackers(&scheduler.address);
    wait_closed(attackers);
    let during = peak_resident_kib(pid);
    assert!(
        during < start + 16 * 1024,
        "the scheduler grew from {start} KiB to {during} KiB"
    );
    a_real_client_still_works(&scheduler);
    let after = peak_resident_kib(pid);
    assert!(
        after < start + 32 * 1024,
        "the scheduler grew from {start} KiB to {after} KiB"
    );
    eprintln!("scheduler peak VmHWM: {start} KiB at start, {during} KiB under attack, {after} KiB after a client");
    assert!(log_count(&scheduler, "oversize frame") >= 8);
    drop(idle);
}

/// Connects eight peers that announce 250 MiB frames to `address` and start
/// sending them (the peer may close at once: write errors end the sending).
fn large_frame_attackers(address: &str) -> Vec<std::net::TcpStream> {
    let chunk = vec![0x55u8; 1 << 20];
    (0..8)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            let _ = stream.write_all(&(250u32 << 20).to_be_bytes());
            for _ in 0..8 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
            stream
        })
        .collect()
}

/// Waits until the other end has closed each of `streams` (reading whatever it
/// sent first), or 10 s of silence on one (a hang guard).
fn wait_closed(streams: Vec<std::net::TcpStream>) {
    for mut stream in streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 4096];
        while matches!(std::io::Read::read(&mut stream, &mut buffer), Ok(n) if n > 0) {}
    }
}

#[test]
fn a_worker_data_port_spends_no_memory_on_unauthenticated_peers() {
    let dir = TempDir::new("data-port");
    let scheduler = Scheduler::start(&dir.0);
    let mut worker = Command::new(example("calc_mean"))
        .env("WHEREVER_WORKER", format!("tcp://{}", scheduler.address))
        .env("WHEREVER_SECRET_FILE", &scheduler.secret_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scheduler.wait_for_log("joined:");
    let pid = worker.id();
    let ports = listening_ports(pid);
    assert_eq!(ports.len(), 1, "the worker listens on its data port only");
    let address = format!("127.0.0.1:{}", ports[0]);
    reset_peak(pid);
    let start = peak_resident_kib(pid);
    let idle: Vec<_> = (0..200)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    wait_closed(large_frame_attackers(&address));
    let during = peak_resident_kib(pid);
    assert!(
        during < start + 16 * 1024,
        "the worker grew from {start} KiB to {during} KiB"
    );
    eprintln!("worker peak VmHWM: {start} KiB at start, {during} KiB under attack");
    drop(idle);
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn a_peer_supplied_host_name_cannot_forge_log_lines() {
    let dir = TempDir::new("forge");
    let scheduler = Scheduler::start(&dir.0);
    let mut stream = connect(&scheduler);
    read_challenge(&mut stream);
    send_frame(
        &mut stream,
        &[test_hello(
            1,
            [0; 32],
            "\njoined: forged by a peer".repeat(100),
        )],
    );
    scheduler.wait_for_log("authentication failed");
    let log = scheduler.log();
    assert!(
        !log.lines().any(|line| line.starts_with("joined: forged")),
        "a peer wrote lines into the log:\n{log}"
    );
    let line = log
        .lines()
        .find(|line| line.contains("authentication failed"))
        .unwrap();
    assert!(line.len() < 600, "the logged host name is cut: {line}");
    a_real_client_still_works(&scheduler);
}

#[test]
fn a_client_whose_scheduler_stops_fails_its_futures_with_the_reason() {
    let dir = TempDir::new("silent");
    let scheduler = Scheduler::start(&dir.0);
    let mut client = start_pending_client(Command::new(example("calc_mean")), &scheduler);
    let pid = scheduler.child.id();
    signal(pid, "-STOP");
    wait_for_exit(&mut client, "the client gives up on the stopped scheduler");
    signal(pid, "-CONT");
    let output = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not even a heartbeat"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// The script that simulates hosts in network namespaces, if it is there.
fn netns_script() -> Option<std::path::PathBuf> {
    let script = std::env::var_os("WHEREVER_NETNS_SCRIPT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/ci/netns-hosts.sh")
        });
    script.exists().then_some(script)
}

/// The simulated host the cut test uses (one the other tests leave alone).
const CUT_HOST: &str = "7";

/// Runs `netns-hosts.sh ARGS` with this test's host count; whether it succeeded.
fn netns(script: &std::path::Path, args: &[&str]) -> bool {
    Command::new("bash")
        .arg(script)
        .args(args)
        .env("CI_NETNS_HOSTS", CUT_HOST)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Heals the cut link when dropped, also when the test fails.
struct Heal<'a>(&'a std::path::Path);

impl Drop for Heal<'_> {
    fn drop(&mut self) {
        netns(self.0, &["heal", CUT_HOST]);
    }
}

#[test]
fn a_cut_link_fails_the_client_and_frees_the_scheduler() {
    let Some(script) = netns_script().filter(|script| netns(script, &["status"])) else {
        eprintln!(
            "SKIPPED a_cut_link_fails_the_client_and_frees_the_scheduler: no simulated hosts \
             (as root: CI_NETNS_HOSTS={CUT_HOST} bash shared/ci/netns-hosts.sh up)"
        );
        return;
    };
    let dir = TempDir::new("cut");
    let scheduler =
        Scheduler::start_with(&dir.0, &["--host", "10.77.0.1", "--heartbeat-timeout", "4"]);
    // A client on simulated host 7 whose tasks stay pending (no worker).
    let mut on_host = Command::new("bash");
    on_host
        .arg(&script)
        .args(["exec", CUT_HOST])
        .arg(example("calc_mean"))
        .env("CI_NETNS_HOSTS", CUT_HOST);
    let mut client = start_pending_client(on_host, &scheduler);
    let _heal = Heal(&script);
    assert!(netns(&script, &["cut", CUT_HOST]), "cannot cut the link");
    wait_for_exit(&mut client, "the client gives up on the cut link");
    let output = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not even a heartbeat"), "{stderr}");
    scheduler.wait_for_log("disconnected client");
}
