//! Progress of `examples/calc_mean` under `processes:2`: a bar on a terminal (a
//! pseudo-terminal made by `script`), nothing extra when piped, plain lines when
//! asked for with `WHEREVER_PROGRESS=1`, nothing with `WHEREVER_PROGRESS=0`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The example's binary, which `cargo test` builds with the package's tests.
fn calc_mean() -> PathBuf {
    let deps = std::env::current_exe().expect("the test binary's path");
    let path = deps
        .parent()
        .and_then(|dir| dir.parent())
        .expect("target/PROFILE")
        .join("examples")
        .join("calc_mean");
    assert!(path.exists(), "{} is built by `cargo test`", path.display());
    path
}

const ARGS: [&str; 8] = [
    "--plan",
    "processes:2",
    "--tasks",
    "200",
    "--n",
    "2000",
    "--seed",
    "1",
];

fn piped(progress: Option<&str>) -> (String, String) {
    let mut command = Command::new(calc_mean());
    command
        .args(ARGS)
        .env_remove("WHEREVER_PLAN")
        .env_remove("WHEREVER_SEED")
        .env_remove("WHEREVER_PROGRESS");
    if let Some(value) = progress {
        command.env("WHEREVER_PROGRESS", value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("calc_mean runs");
    let stderr = String::from_utf8(stderr).unwrap();
    assert!(status.success(), "{stderr}");
    (String::from_utf8(stdout).unwrap(), stderr)
}

#[test]
fn piped_output_has_no_progress_and_is_unchanged() {
    let (stdout, stderr) = piped(None);
    assert_eq!(stdout.lines().count(), 201, "{stdout}");
    // Exactly the timing summary, as before progress existed, besides the
    // dashboard's address (printed once: processes plans start one).
    let dashboard = "wherever: dashboard at http://127.0.0.1:";
    assert_eq!(stderr.matches(dashboard).count(), 1, "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with(dashboard))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("calc_mean: 200 tasks x 2000 normals on processes:2 (2 workers) in "),
        "{stderr}"
    );
    let (off_stdout, off_stderr) = piped(Some("0"));
    assert_eq!(off_stdout, stdout);
    let off_lines = off_stderr.lines().filter(|l| !l.starts_with(dashboard));
    assert_eq!(off_lines.count(), 1, "{off_stderr}");
}

#[test]
fn progress_on_request_prints_plain_lines_when_piped() {
    let (stdout, stderr) = piped(Some("1"));
    assert_eq!(
        stdout.lines().count(),
        201,
        "stdout is the user's: {stdout}"
    );
    assert!(
        stderr.contains("wherever: gather 200/200 done"),
        "a final progress line: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes: {stderr:?}"
    );
}

#[test]
fn a_malformed_progress_variable_is_named_and_ignored() {
    let (stdout, stderr) = piped(Some("maybe"));
    assert_eq!(stdout.lines().count(), 201);
    assert!(
        stderr.contains("WHEREVER_PROGRESS=\"maybe\" is not understood (use 1 or 0)"),
        "{stderr}"
    );
}

#[test]
fn a_terminal_shows_a_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let command = format!("{} {}", calc_mean().display(), ARGS.join(" "));
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("WHEREVER_PLAN")
        .env_remove("WHEREVER_PROGRESS")
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("gather ["), "the bar's label: {text:?}");
    assert!(text.contains("200/200"), "done/total at the end: {text:?}");
    assert!(text.contains("####"), "the bar's characters: {text:?}");
}
