//! A scheduler rejects peers without the secret and malformed frames with a logged
//! reason, and goes on serving everyone else.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;

fn connect(scheduler: &Scheduler) -> TcpStream {
    let stream = TcpStream::connect(&scheduler.address).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Reads the challenge frame the scheduler sends first.
fn read_challenge(stream: &mut TcpStream) -> Vec<u8> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

/// Whether the scheduler closed the connection (reads end without data, or the
/// connection was reset). A read that times out means it is still open.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn a_real_client_still_works(scheduler: &Scheduler) {
    let secret = scheduler.secret_file.display().to_string();
    let address = format!("tcp://{}", scheduler.address);
    let mut worker = std::process::Command::new(example("calc_mean"))
        .env("WHEREVER_WORKER", &address)
        .env("WHEREVER_SECRET_FILE", &secret)
        .spawn()
        .unwrap();
    let output = run_ok(
        &example("calc_mean"),
        &[
            "--plan", &address, "--seed", "1", "--tasks", "2", "--n", "1000",
        ],
        &[("WHEREVER_SECRET_FILE", &secret)],
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 2);
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn garbage_oversize_truncated_and_unauthenticated_peers_are_disconnected() {
    let dir = TempDir::new("security");
    let scheduler = Scheduler::start(&dir.0);

    // Garbage instead of a frame: the length prefix says 1 GiB (over the limit).
    let mut stream = connect(&scheduler);
    read_challenge(&mut stream);
    stream.write_all(&[0x40, 0, 0, 0, 1, 2, 3]).unwrap();
    assert!(closed_by_peer(&mut stream));
    scheduler.wait_for_log("oversize frame");

    // A well-sized frame that is not a hello.
    let mut stream = connect(&scheduler);
    read_challenge(&mut stream);
    stream
        .write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(closed_by_peer(&mut stream));
    scheduler.wait_for_log("undecodable frame");

    // A truncated frame: 100 bytes announced, 10 sent, then the peer hangs up.
    let mut stream = connect(&scheduler);
    read_challenge(&mut stream);
    stream.write_all(&[0, 0, 0, 100]).unwrap();
    stream.write_all(&[7; 10]).unwrap();
    drop(stream);
    scheduler.wait_for_log("truncated frame");

    a_real_client_still_works(&scheduler);
}

#[test]
fn a_worker_with_the_wrong_secret_gets_nothing_and_runs_nothing() {
    let dir = TempDir::new("secret");
    let scheduler = Scheduler::start(&dir.0);
    let wrong = dir.0.join("wrong-secret");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    let address = format!("tcp://{}", scheduler.address);
    let worker = std::process::Command::new(example("calc_mean"))
        .env("WHEREVER_WORKER", &address)
        .env("WHEREVER_SECRET_FILE", &wrong)
        .output()
        .unwrap();
    assert!(!worker.status.success());
    scheduler.wait_for_log("authentication failed");
    let client = std::process::Command::new(example("calc_mean"))
        .args(["--plan", &address, "--tasks", "1", "--n", "10"])
        .env("WHEREVER_SECRET_FILE", &wrong)
        .output()
        .unwrap();
    assert!(!client.status.success());
    assert!(client.stdout.is_empty());
    a_real_client_still_works(&scheduler);
}

#[test]
fn a_peer_speaking_another_protocol_version_is_refused_with_the_reason() {
    use wherever_cluster::protocol::{decode_batch, encode_batch, BuildInfo, Hello, Message, Role};
    let dir = TempDir::new("protocol");
    let scheduler = Scheduler::start(&dir.0);
    let secret = wherever_cluster::Secret::read_file(&scheduler.secret_file).unwrap();
    let mut stream = connect(&scheduler);
    let nonce = match decode_batch(&read_challenge(&mut stream))
        .unwrap()
        .as_slice()
    {
        [Message::Challenge { nonce, .. }] => *nonce,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let hello = Hello {
        protocol: 999,
        proof: secret.prove(&nonce),
        role: Role::Client,
        build: BuildInfo {
            hash: 1,
            executable: "elsewhere".into(),
            registry: 0,
        },
        host: "test".into(),
        pid: 1,
    };
    let body = encode_batch(&[Message::Hello(hello)]).unwrap();
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    let answer = decode_batch(&read_challenge(&mut stream)).unwrap();
    match answer.as_slice() {
        [Message::Refused { reason }] => {
            assert!(reason.contains("protocol version 999"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(closed_by_peer(&mut stream));
    a_real_client_still_works(&scheduler);
}

#[test]
fn bad_scheduler_flags_and_secret_files_give_clear_errors() {
    let dir = TempDir::new("flags");
    let bad = std::process::Command::new(wherever_binary())
        .args(["scheduler", "--port", "99999"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--port"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let malformed = dir.0.join("malformed");
    std::fs::write(&malformed, "not hex").unwrap();
    let bad = std::process::Command::new(wherever_binary())
        .args(["scheduler", "--port", "0", "--secret-file"])
        .arg(&malformed)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a secret is 64 hex digits"));
}
