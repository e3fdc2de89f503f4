//! The `ssh:` plan against the real sshd on 127.0.0.2/.3 and the namespace hosts
//! cih1..cih3 (`shared/ci/start-sshd.sh`, `CI_NETNS_SSHD=1 netns-hosts.sh up`):
//! `calc_mean` prints sequential's bytes (host list, hostfile, `ship`, `partial`),
//! a host that cannot be reached is an error naming it, a host crashed mid-run
//! loses nothing, and after every run no worker, remote shell or ssh client of the
//! run is left. A test whose service is not up says so and passes (a laptop).
//!
//! The tests run one at a time: "nothing left behind" looks at every process of
//! the example's executable.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// One test at a time (see the module documentation).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `shared/ci/netns-hosts.sh`: beside the workspace in CI, else /work/shared/ci.
fn netns_script() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        workspace.join("../shared/ci/netns-hosts.sh"),
        PathBuf::from("/work/shared/ci/netns-hosts.sh"),
    ]
    .into_iter()
    .find(|path| path.exists())
}

/// Runs `netns-hosts.sh ARGS` (with the namespaces' sshd); its output.
fn netns(script: &Path, args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .env("CI_NETNS_SSHD", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "netns-hosts.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Repairs the namespace hosts when dropped (`heal`, `up`), also after a failure.
struct Repair<'a> {
    script: &'a Path,
    args: Vec<&'a str>,
}

impl Drop for Repair<'_> {
    fn drop(&mut self) {
        netns(self.script, &self.args);
    }
}

fn calc_mean_args<'a>(plan: &'a str, tasks: &'a str, n: &'a str) -> Vec<&'a str> {
    vec!["--plan", plan, "--seed", "3", "--tasks", tasks, "--n", n]
}

/// Runs `calc_mean` under `plan` to the end.
fn calc_mean(plan: &str, tasks: &str, n: &str) -> Output {
    Command::new(example("calc_mean"))
        .args(calc_mean_args(plan, tasks, n))
        .env_remove("WHEREVER_PLAN")
        .stdin(Stdio::null())
        .output()
        .expect("calc_mean runs")
}

/// `calc_mean`'s stdout under `plan`, which must succeed.
fn calc_mean_ok(plan: &str, tasks: &str, n: &str) -> String {
    let output = calc_mean(plan, tasks, n);
    assert!(
        output.status.success(),
        "calc_mean --plan {plan} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The acceptance's study, sequentially.
fn sequential() -> String {
    calc_mean_ok("sequential", "16", "1000000")
}

/// Live processes (not this one) whose command line mentions `needle`: the
/// workers (their executable), the remote shells and the ssh clients (their
/// command lines hold the path). The namespace hosts share this machine's pids.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Waits (with the hang guard) until no process mentions `needle`.
fn nothing_left_behind(needle: &str) {
    let guard = std::time::Instant::now() + HANG_GUARD;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < guard,
            "left behind after the run: {left:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn calc_mean_path() -> String {
    example("calc_mean").display().to_string()
}

#[test]
fn three_workers_on_two_hosts_print_sequentials_bytes_and_leave_nothing_behind() {
    let _serial = serial();
    let test = "three_workers_on_two_hosts";
    let Some(()) = hosts_up(test, &["127.0.0.2", "127.0.0.3"]) else {
        return;
    };
    let expected = sequential();
    let output = calc_mean("ssh:127.0.0.2*2,127.0.0.3*1", "16", "1000000");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
    assert!(stderr.contains("(3 workers)"), "{stderr}");
    nothing_left_behind(&calc_mean_path());
}

#[test]
fn a_hostfile_gives_the_same_bytes() {
    let _serial = serial();
    let Some(()) = hosts_up("a_hostfile", &["127.0.0.2", "127.0.0.3"]) else {
        return;
    };
    let dir = TempDir::new("hostfile");
    let hostfile = dir.0.join("hosts.txt");
    std::fs::write(
        &hostfile,
        "# two hosts\n127.0.0.2 slots=2   # two workers\n\n127.0.0.3\n",
    )
    .unwrap();
    let plan = format!("ssh:@{}", hostfile.display());
    let output = calc_mean(&plan, "16", "1000000");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), sequential());
    assert!(stderr.contains("(3 workers)"), "{stderr}");
    nothing_left_behind(&calc_mean_path());
}

/// The copies of `executable` in `~/.cache/wherever/bin/*/`.
fn shipped_copies(executable: &Path) -> Vec<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let name = executable.file_name().unwrap();
    let original = std::fs::read(executable).unwrap();
    std::fs::read_dir(home.join(".cache/wherever/bin"))
        .map(|builds| {
            builds
                .flatten()
                .map(|build| build.path().join(name))
                .filter(|copy| std::fs::read(copy).is_ok_and(|bytes| bytes == original))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ship_copies_the_executable_into_the_hosts_cache_and_runs_it_from_there() {
    let _serial = serial();
    let Some(()) = hosts_up("ship", &["127.0.0.2"]) else {
        return;
    };
    let executable = example("calc_mean");
    for copy in shipped_copies(&executable) {
        std::fs::remove_dir_all(copy.parent().unwrap()).unwrap();
    }
    let expected = sequential();
    assert_eq!(
        calc_mean_ok("ssh:127.0.0.2*2;ship", "16", "1000000"),
        expected
    );
    let copies = shipped_copies(&executable);
    assert_eq!(copies.len(), 1, "one copy of this build: {copies:?}");
    let copy = copies[0].display().to_string();
    nothing_left_behind(&copy);
    // Shipped once: a second run finds it there (and still gives the same bytes).
    let modified = std::fs::metadata(&copies[0]).unwrap().modified().unwrap();
    assert_eq!(
        calc_mean_ok("ssh:127.0.0.2;ship", "16", "1000000"),
        expected
    );
    assert_eq!(
        std::fs::metadata(&copies[0]).unwrap().modified().unwrap(),
        modified
    );
    nothing_left_behind(&copy);
}

#[test]
fn a_host_that_does_not_resolve_is_an_error_naming_it_and_quoting_ssh() {
    let _serial = serial();
    let Some(()) = hosts_up("unresolvable", &["127.0.0.2"]) else {
        return;
    };
    let output = calc_mean("ssh:127.0.0.2,no-such-host.invalid*2", "4", "1000");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot start workers on ssh host `no-such-host.invalid`")
            && stderr.contains("Could not resolve hostname"),
        "{stderr}"
    );
    nothing_left_behind(&calc_mean_path());
}

#[test]
fn with_partial_the_reachable_hosts_go_on() {
    let _serial = serial();
    let Some(()) = hosts_up("partial", &["127.0.0.2"]) else {
        return;
    };
    let output = calc_mean(
        "ssh:127.0.0.2*2,no-such-host.invalid*2;partial",
        "16",
        "1000000",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), sequential());
    assert!(
        stderr.contains("cannot start workers on ssh host `no-such-host.invalid`")
            && stderr.contains("going on without its workers (partial)")
            && stderr.contains("(2 workers)"),
        "{stderr}"
    );
    nothing_left_behind(&calc_mean_path());
}

#[test]
fn a_host_cut_off_before_the_start_is_an_error_naming_it() {
    let _serial = serial();
    let (Some(script), Some(())) = (netns_script(), hosts_up("cut_host", &["cih3"])) else {
        eprintln!("SKIPPED a_host_cut_off_before_the_start: no namespace hosts");
        return;
    };
    netns(&script, &["cut", "3"]);
    let _heal = Repair {
        script: &script,
        args: vec!["heal", "3"],
    };
    let output = calc_mean("ssh:cih3;connect-timeout=3", "4", "1000");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot start workers on ssh host `cih3`")
            && (stderr.contains("timed out") || stderr.contains("no answer within 3 s")),
        "{stderr}"
    );
    nothing_left_behind(&calc_mean_path());
}

/// The pid of a worker of `executable` on namespace host `k`, once there is one.
fn worker_on(script: &Path, k: &str, executable: &Path) -> u32 {
    let mut worker = None;
    wait_until(&format!("a worker runs on cih{k}"), || {
        worker = netns(script, &["pids", k])
            .lines()
            .filter_map(|line| line.trim().parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == executable)
            });
        worker.is_some()
    });
    worker.unwrap()
}

#[test]
fn a_host_crashed_mid_run_loses_nothing() {
    let _serial = serial();
    let (Some(script), Some(())) = (
        netns_script(),
        hosts_up("crashed_host", &["cih1", "cih2", "cih3"]),
    ) else {
        eprintln!("SKIPPED a_host_crashed_mid_run: no namespace hosts");
        return;
    };
    let (tasks, n) = ("48", "4000000");
    let expected = calc_mean_ok("sequential", tasks, n);
    let executable = example("calc_mean");
    let mut client = Command::new(&executable)
        .args(calc_mean_args("ssh:cih1,cih2,cih3", tasks, n))
        .env_remove("WHEREVER_PLAN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _repair = Repair {
        script: &script,
        args: vec!["up"],
    };
    let worker = worker_on(&script, "2", &executable);
    // 10 ticks (0.1 s) of CPU: the worker on cih2 runs tasks; the run takes ~30 times that.
    wait_for_cpu_work(worker, 10);
    netns(&script, &["crash", "2"]);
    assert!(
        client.try_wait().unwrap().is_none(),
        "the run should still be going when cih2 crashes"
    );
    let output = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
    assert!(
        stderr.contains("(2 workers)"),
        "cih2's worker is gone: {stderr}"
    );
    nothing_left_behind(&executable.display().to_string());
}

#[test]
fn a_client_killed_mid_run_leaves_no_remote_worker_or_ssh_session() {
    let _serial = serial();
    let Some(()) = hosts_up("client_killed", &["127.0.0.2"]) else {
        return;
    };
    let executable = example("calc_mean");
    let mut client = Command::new(&executable)
        .args(calc_mean_args("ssh:127.0.0.2*2", "200", "4000000"))
        .env_remove("WHEREVER_PLAN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = None;
    wait_until("a remote worker runs", || {
        worker = processes_mentioning(&executable.display().to_string())
            .into_iter()
            .map(|(pid, _)| pid)
            .find(|&pid| {
                pid != client.id()
                    && std::fs::read_link(format!("/proc/{pid}/exe"))
                        .is_ok_and(|exe| exe == executable)
            });
        worker.is_some()
    });
    wait_for_cpu_work(worker.unwrap(), 10);
    kill9(client.id());
    let _ = client.wait();
    // The ssh clients' input ends with their parent: the remote script stops the
    // workers and the sessions end.
    nothing_left_behind(&executable.display().to_string());
}

/// The stderr of a running child, collected line by line on a thread of its own.
struct CollectedStderr(std::sync::Arc<Mutex<String>>);

impl CollectedStderr {
    fn start(child: &mut std::process::Child) -> Self {
        use std::io::BufRead;
        let text = std::sync::Arc::new(Mutex::new(String::new()));
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let collected = text.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        CollectedStderr(text)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, needles: &[&str]) {
        wait_until(what, || {
            let text = self.text();
            needles.iter().all(|needle| text.contains(needle))
        });
    }
}

#[test]
fn a_host_cut_off_mid_run_is_dropped_by_heartbeat_and_rejoins_when_healed() {
    let _serial = serial();
    let (Some(script), Some(())) = (netns_script(), hosts_up("cut_mid_run", &["cih1", "cih2"]))
    else {
        eprintln!("SKIPPED a_host_cut_off_mid_run: no namespace hosts");
        return;
    };
    let executable = example("calc_mean");
    // Long enough that cih1 alone is still busy when cih2 comes back (~30 s of
    // heartbeat silence and 15 s more first): about 90 s of one worker's time in a
    // debug build.
    let tasks = "180";
    let mut client = Command::new(&executable)
        .args(calc_mean_args("ssh:cih1,cih2", tasks, "10000000"))
        .env_remove("WHEREVER_PLAN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = CollectedStderr::start(&mut client);
    let worker = worker_on(&script, "2", &executable);
    wait_for_cpu_work(worker, 10);
    netns(&script, &["cut", "2"]);
    let _heal = Repair {
        script: &script,
        args: vec!["heal", "2"],
    };
    stderr.wait_for(
        "the scheduler drops cih2's silent worker",
        &["disconnected worker", "10.77.0.12", "no heartbeat"],
    );
    // Keep the cut past ssh's own give-up times (e.g. ServerAliveInterval 10 s x 3):
    // until cih1's worker has done 15 s more of CPU work alone.
    let survivor = worker_on(&script, "1", &executable);
    wait_for_cpu_work(survivor, cpu_ticks(survivor) + 1500);
    netns(&script, &["heal", "2"]);
    // The ssh session outlived the cut: the worker's own words about losing the
    // scheduler (and trying again) reach us through it.
    stderr.wait_for(
        "cih2's worker, still alive, says it lost the scheduler",
        &["[cih2] wherever worker", "lost the scheduler"],
    );
    let output = client.wait_with_output().unwrap();
    let text = stderr.text();
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1 + 180, "{stdout}");
    assert!(
        text.contains("(2 workers)"),
        "cih2's worker rejoined: {text}"
    );
    nothing_left_behind(&executable.display().to_string());
}
