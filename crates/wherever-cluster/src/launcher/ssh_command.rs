//! The command lines of the `ssh:` launcher: the `ssh` options, the remote shell
//! script that starts one host's workers in one session, and the one that ships the
//! executable into a per-build cache on the host.
//!
//! One session per host, not per worker: logins cost 0.3-0.9 s of CPU each on the
//! host (measured on the CI machine: 3 parallel logins 0.8-1.1 s, 6 logins 1.3-1.7 s,
//! 12 logins 2.1-3.1 s), so a host's N workers share one.

use std::time::Duration;

/// The line the remote script prints on standard error once it started its workers.
pub(super) const READY_MARKER: &str = "wherever-ssh: workers started";

/// The exit status of the remote script when the executable is missing there.
pub(super) const MISSING_EXECUTABLE_STATUS: i32 = 127;

/// The `ssh` options every session uses: never ask for a password (`BatchMode`),
/// give up connecting after `connect_timeout`, and no terminal. The user's
/// `~/.ssh/config` still applies to everything else.
///
/// No `ServerAliveInterval`: a session that ssh ended during a network cut would
/// end its workers too (the remote script stops them when its input ends), and
/// those workers are exactly the ones that rejoin when the host comes back. The
/// scheduler's heartbeat, not the session, decides when a host is lost.
pub(super) fn ssh_options(connect_timeout: Duration) -> Vec<String> {
    let seconds = connect_timeout.as_secs().max(1);
    vec![
        "-T".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("ConnectTimeout={seconds}"),
    ]
}

/// Where the executable is on a host: at the same absolute path as here, or in
/// the host's cache of shipped builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RemoteExecutable {
    /// The same absolute path as on this machine (a shared or identical file system).
    SamePath(String),
    /// `~/.cache/wherever/bin/<build>/<name>` on the host, put there by shipping.
    Shipped {
        /// The build id (hex).
        build: String,
        /// The executable's file name.
        name: String,
    },
}

impl RemoteExecutable {
    /// A shell expression for the path (`$HOME` expanded by the remote shell).
    fn shell_path(&self) -> Result<String, String> {
        match self {
            RemoteExecutable::SamePath(path) => quote(path),
            RemoteExecutable::Shipped { build, name } => Ok(format!(
                "\"$HOME\"/.cache/wherever/bin/{}/{}",
                quote(build)?,
                quote(name)?
            )),
        }
    }
}

/// `text` quoted for a POSIX shell.
pub(super) fn quote(text: &str) -> Result<String, String> {
    shlex::try_quote(text)
        .map(|quoted| quoted.into_owned())
        .map_err(|_| format!("`{}` cannot be passed through a shell", text.escape_debug()))
}

/// The remote command that starts `workers` workers of `executable` with the
/// environment `env` (each `NAME=VALUE`), run by the host's login shell as
/// `sh -c SCRIPT`. The script reads the secret as the first line of its standard
/// input, hands it to every worker through a pipe (never an argument or an
/// environment variable), prints [`READY_MARKER`] on standard error, and then
/// waits for its standard input to end: when the ssh session or the client goes
/// away, it stops its workers and waits for them. Each worker's standard input
/// stays open until then too (for `WHEREVER_EXIT_ON_STDIN_EOF`).
pub(super) fn start_workers_command(
    executable: &RemoteExecutable,
    workers: usize,
    env: &[(String, String)],
) -> Result<String, String> {
    let assignments = env
        .iter()
        .map(|(name, value)| quote(&format!("{name}={value}")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let script = format!(
        r#"exe={exe}
if [ ! -x "$exe" ]; then
  echo "wherever: no executable $exe on $(hostname); build it there at the same path or add ;ship to the plan" >&2
  exit {missing}
fi
IFS= read -r secret || {{ echo "wherever: no secret on standard input" >&2; exit 1; }}
exec 3<&0
pids=
i=0
while [ "$i" -lt {workers} ]; do
  {{ printf '%s\n' "$secret"; exec cat <&3; }} | env {assignments} "$exe" 3<&- &
  pids="$pids $!"
  i=$((i + 1))
done
secret=
echo {marker} >&2
cat >/dev/null
kill $pids 2>/dev/null
wait
"#,
        exe = executable.shell_path()?,
        missing = MISSING_EXECUTABLE_STATUS,
        marker = quote(READY_MARKER)?,
    );
    Ok(format!("sh -c {}", quote(&script)?))
}

/// The remote command that installs the executable (sent as its standard input,
/// `size` bytes) into the host's cache, unless that build is already there. A
/// transfer cut short is never installed: the size is checked before the rename.
pub(super) fn ship_command(build: &str, name: &str, size: u64) -> Result<String, String> {
    let script = format!(
        r#"dir="$HOME"/.cache/wherever/bin/{build}
file="$dir"/{name}
[ -x "$file" ] && exit 0
mkdir -p "$dir" || exit 1
part="$file.part.$$"
cat >"$part" || {{ rm -f "$part"; exit 1; }}
size=$(wc -c <"$part")
if [ "$size" -ne {size} ]; then
  echo "wherever: received $size of {size} bytes of the executable" >&2
  rm -f "$part"
  exit 1
fi
chmod 755 "$part" && mv -f "$part" "$file"
"#,
        build = quote(build)?,
        name = quote(name)?,
    );
    Ok(format!("sh -c {}", quote(&script)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs `command` (as an ssh server would, through a shell) with `input`.
    fn run_as_remote(command: &str, input: &[u8], env: &[(&str, &str)]) -> std::process::Output {
        let mut child = Command::new("sh")
            .args(["-c", command])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wherever-ssh-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_worker_gets_the_secret_on_stdin_and_is_stopped_when_the_input_ends() {
        let dir = temp_dir("start");
        // A stand-in worker: writes its stdin's first line and its settings to a
        // file, then waits to be stopped.
        let worker = dir.join("worker");
        std::fs::write(
            &worker,
            "#!/bin/sh\nIFS= read -r s\necho \"$s $ONE $TWO\" > \"$OUT.$$\"\nexec sleep 1000\n",
        )
        .unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&worker)
            .status()
            .unwrap();
        let env = vec![
            ("ONE".to_string(), "a b".to_string()),
            ("TWO".to_string(), "it's $HOME".to_string()),
        ];
        let command = start_workers_command(
            &RemoteExecutable::SamePath(worker.display().to_string()),
            3,
            &env,
        )
        .unwrap();
        assert!(!command.contains("c0ffee"), "no secret on the command line");
        let out = dir.join("out").display().to_string();
        let mut child = Command::new("sh")
            .args(["-c", &command])
            .env("OUT", &out)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"c0ffee\n").unwrap();
        let written = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("out."))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|text| text.ends_with('\n'))
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while written().len() < 3 {
            assert!(std::time::Instant::now() < deadline, "{:?}", written());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "runs while its input is open"
        );
        // The end of the input stops the workers; the script returns after them.
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains(READY_MARKER), "{stderr}");
        let written = written();
        assert_eq!(written.len(), 3, "{written:?}");
        for line in written {
            assert_eq!(line, "c0ffee a b it's $HOME\n");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_executable_is_reported_with_the_hint_to_ship() {
        let command = start_workers_command(
            &RemoteExecutable::SamePath("/no/such/wherever-program".into()),
            1,
            &[],
        )
        .unwrap();
        let output = run_as_remote(&command, b"c0ffee\n", &[]);
        assert_eq!(output.status.code(), Some(MISSING_EXECUTABLE_STATUS));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no executable /no/such/wherever-program on ")
                && stderr.contains(";ship"),
            "{stderr}"
        );
    }

    #[test]
    fn shipping_installs_a_complete_file_once_and_never_a_truncated_one() {
        let home = temp_dir("ship");
        let home_text = home.display().to_string();
        let body = b"#!/bin/sh\necho shipped\n";
        let command = ship_command("00ab", "prog", body.len() as u64).unwrap();
        let output = run_as_remote(&command, body, &[("HOME", &home_text)]);
        assert!(output.status.success(), "{output:?}");
        let installed = home.join(".cache/wherever/bin/00ab/prog");
        assert_eq!(std::fs::read(&installed).unwrap(), body);
        // Already there: nothing is read or changed.
        let output = run_as_remote(&command, b"other", &[("HOME", &home_text)]);
        assert!(output.status.success());
        assert_eq!(std::fs::read(&installed).unwrap(), body);
        // A transfer cut short is refused.
        let command = ship_command("00cd", "prog", 1000).unwrap();
        let output = run_as_remote(&command, body, &[("HOME", &home_text)]);
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("of 1000 bytes"));
        assert!(!home.join(".cache/wherever/bin/00cd/prog").exists());
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn shipped_executables_are_found_under_the_remote_home() {
        let path = RemoteExecutable::Shipped {
            build: "0123abcd".into(),
            name: "calc mean".into(),
        }
        .shell_path()
        .unwrap();
        assert_eq!(path, "\"$HOME\"/.cache/wherever/bin/0123abcd/'calc mean'");
    }
}
