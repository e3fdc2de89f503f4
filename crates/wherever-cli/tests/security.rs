//! A scheduler rejects peers without the secret and malformed frames with a logged
//! reason, and goes on serving everyone else.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;

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
    write_private(&wrong, &"11".repeat(32));
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
    use wherever_cluster::protocol::{decode_batch, Message};
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
    send_frame(
        &mut stream,
        &[test_hello(999, secret.prove(&nonce), "test".into())],
    );
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
    write_private(&malformed, "not hex");
    let bad = std::process::Command::new(wherever_binary())
        .args(["scheduler", "--port", "0", "--secret-file"])
        .arg(&malformed)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a secret is 64 hex digits"));
}

#[test]
fn a_secret_file_readable_by_others_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("exposed");
    let exposed = dir.0.join("secret");
    std::fs::write(&exposed, "22".repeat(32)).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", exposed.display());
    let mut scheduler = std::process::Command::new(wherever_binary())
        .args(["scheduler", "--port", "0", "--secret-file"])
        .arg(&exposed)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A scheduler that accepted the file would serve forever.
    wait_for_exit(
        &mut scheduler,
        "the scheduler refuses the exposed secret file",
    );
    let scheduler = scheduler.wait_with_output().unwrap();
    assert!(!scheduler.status.success());
    let stderr = String::from_utf8_lossy(&scheduler.stderr);
    assert!(stderr.contains(&fix), "{stderr}");

    // A client given the same file refuses it too, before connecting anywhere.
    let client = std::process::Command::new(example("calc_mean"))
        .args(["--plan", "tcp://127.0.0.1:9", "--tasks", "1", "--n", "10"])
        .env("WHEREVER_SECRET_FILE", &exposed)
        .output()
        .unwrap();
    assert!(!client.status.success());
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(stderr.contains(&fix), "{stderr}");
}
