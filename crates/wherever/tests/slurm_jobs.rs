//! `slurm:jobs=N,...` against the real Slurm of `shared/ci/start-slurm.sh`: this
//! test binary is its own worker program (`harness = false`; `#[wherever::main]`
//! makes a process started with `WHEREVER_WORKER` a worker), submitted in batch
//! jobs. Every test names its jobs with a prefix of its own, synchronises on
//! files its tasks write and on `squeue`, and ends with none of its jobs queued.
//! The tests skip with a message when `sinfo` fails.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/slurm.rs"]
mod slurm;

use slurm::checks_need_slurm;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wherever::prelude::*;
use wherever::SlurmPlan;
use wherever_cluster::launcher::{
    Launcher, SlurmJobsLauncher, SlurmJobsSpec, WorkerLaunch, SLURM_DIR_VARIABLE,
};
use wherever_cluster::server::{self, ServerOptions};
use wherever_cluster::{ClusterClient, ClusterRuntime, Secret};

/// How long any wait may take before the test counts as hung (never a timing
/// assertion: every wait polls a condition).
const HANG_GUARD: Duration = Duration::from_secs(150);

/// The signal number of SIGTERM.
const SIGTERM: i32 = 15;

/// Set in the client processes the signal tests start (their directory).
const CLIENT_DIR_VARIABLE: &str = "SJOBS_TEST_CLIENT_DIR";

/// Set with [`CLIENT_DIR_VARIABLE`]: the client's plan.
const CLIENT_PLAN_VARIABLE: &str = "SJOBS_TEST_CLIENT_PLAN";

/// Writes `DIR/started-PID-N` (N counts this process's starts), waits until
/// `DIR/go` exists, and returns `i * i` with the worker's name, group, deadline and
/// memory limit.
#[wherever::task]
fn square_after_go(i: u64, dir: String) -> (u64, String, String, String, String) {
    let dir = PathBuf::from(dir);
    let mark = dir.join(format!("started-{}-{i}", std::process::id()));
    std::fs::write(&mark, b"").unwrap();
    wait_for(|| dir.join("go").exists(), "the go file");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    (
        i * i,
        var("WHEREVER_WORKER_NAME"),
        var("WHEREVER_WORKER_GROUP"),
        var("WHEREVER_WORKER_DEADLINE"),
        var("WHEREVER_WORKER_MEMORY_LIMIT"),
    )
}

/// Records that it ran (`DIR/ran-I-PID-NANOS`), takes a second, returns `i * i`.
#[wherever::task]
fn square_in_a_second(i: u64, dir: String) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mark = PathBuf::from(dir).join(format!("ran-{i}-{}-{nanos}", std::process::id()));
    std::fs::write(mark, b"").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    i * i
}

/// `i * i`.
#[wherever::task]
fn square(i: u64) -> u64 {
    i * i
}

/// Like [`square_after_go`], but returns the Slurm node the worker runs on.
#[wherever::task]
fn node_after_go(i: u64, dir: String) -> String {
    let _ = square_after_go(i, dir);
    std::env::var("SLURMD_NODENAME").unwrap_or_default()
}

fn wait_for(condition: impl FnMut() -> bool, what: &str) {
    slurm::wait_for(condition, what, HANG_GUARD)
}

/// A test's own directory (the jobs' run directories go there) and job name;
/// dropping it cancels whatever job of that name is left and removes the directory.
struct Scene {
    dir: PathBuf,
    name: String,
}

impl Scene {
    fn new(tag: &str) -> Self {
        let name = format!("sjt-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scene { dir, name }
    }

    fn dir_text(&self) -> String {
        self.dir.display().to_string()
    }

    /// `(job id, state)` of this scene's jobs that `squeue` lists as queued or running.
    fn queued(&self) -> Vec<(String, String)> {
        self.jobs(false)
    }

    /// `(job id, state)` of every job of this scene Slurm still knows, ended or not.
    fn jobs(&self, all: bool) -> Vec<(String, String)> {
        let mut command = Command::new("squeue");
        command.args(["-h", "-n", &self.name, "-o", "%i %T"]);
        if all {
            command.args(["-t", "all"]);
        }
        let output = command.output().unwrap();
        let mut jobs: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| {
                let (id, state) = l.trim().split_once(' ')?;
                Some((id.to_string(), state.to_string()))
            })
            .collect();
        jobs.sort();
        jobs
    }

    fn started(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
            .count()
    }

    fn wait_until_none_queued(&self) {
        wait_for(
            || self.queued().is_empty(),
            &format!("no job named {} in squeue", self.name),
        );
    }

    /// No run directory of the launcher is left (secret removed, logs empty).
    fn assert_no_run_dir_left(&self) {
        let left: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".wherever-jobs-"))
            .collect();
        let mut texts = String::new();
        for dir in &left {
            for entry in std::fs::read_dir(self.dir.join(dir)).unwrap().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                texts.push_str(&format!("{}: {text}\n", entry.path().display()));
            }
        }
        assert!(left.is_empty(), "left behind: {left:?}\n{texts}");
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if !self.queued().is_empty() {
            let _ = Command::new("scancel").args(["-n", &self.name]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The jobs' run directories go into the scene's directory.
fn use_dir(scene: &Scene) {
    std::env::set_var(SLURM_DIR_VARIABLE, &scene.dir);
}

/// Two jobs of two workers each: every worker is named `JOBID.PROCID`, its group is
/// its job, it knows its job's end; the script Slurm holds is `job_script()`'s.
fn workers_get_names_groups_deadlines_and_the_script_is_the_one_shown() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("names");
    use_dir(&scene);
    let plan = SlurmPlan::new()
        .jobs(2)
        .workers_per_job(2)
        .time("00:05:00")
        .mem("2G")
        .job_name(&scene.name);
    let shown = plan.job_script().unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    {
        let client = plan.start().unwrap();
        let futures: Vec<_> = (0..4)
            .map(|i| client.submit(square_after_go, (i, scene.dir_text())))
            .collect();
        // One task on each of the four one-thread workers.
        wait_for(|| scene.started() == 4, "four tasks running");
        std::fs::write(scene.dir.join("go"), b"").unwrap();
        let results: Vec<(u64, String, String, String, String)> = client.gather(futures).unwrap();
        let jobs: Vec<String> = scene.queued().into_iter().map(|(id, _)| id).collect();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        let mut names: Vec<String> = results.iter().map(|r| r.1.clone()).collect();
        names.sort();
        let mut expected: Vec<String> = jobs
            .iter()
            .flat_map(|id| [format!("{id}.0"), format!("{id}.1")])
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        for (square, name, group, deadline, memory_limit) in &results {
            assert!([0, 1, 4, 9].contains(square));
            // The job's 2 GB (`mem`, per node) shared by its two workers.
            assert_eq!(memory_limit, &(1u64 << 30).to_string());
            assert_eq!(name.split('.').next().unwrap(), group);
            let deadline: u64 = deadline.parse().unwrap();
            assert!(
                deadline >= before + 300
                    && deadline
                        <= SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs()
                            + 300,
                "deadline {deadline}, submitted at {before}"
            );
        }
        for id in &jobs {
            let held = Command::new("scontrol")
                .args(["write", "batch_script", id, "-"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&held.stdout), shown, "job {id}");
        }
    }
    scene.wait_until_none_queued();
    for (id, state) in scene.jobs(true) {
        assert_eq!(
            state, "COMPLETED",
            "job {id} ended by itself after the goodbye"
        );
    }
    scene.assert_no_run_dir_left();
}

/// `add`, `starting` and `left` of the scaling seam, called directly on a launch
/// whose workers join a scheduler served here.
fn add_submits_a_job_whose_workers_join_and_left_cancels_it() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("add");
    use_dir(&scene);
    let runtime = Arc::new(ClusterRuntime::start().unwrap());
    let secret = Secret::generate();
    let address = server::start(
        &runtime,
        "127.0.0.1:0",
        secret.clone(),
        ServerOptions::default(),
    )
    .unwrap()
    .to_string();
    let client = ClusterClient::connect(runtime.clone(), &address, secret.clone()).unwrap();
    let options = [
        ("jobs".to_string(), "1".to_string()),
        ("job-name".to_string(), scene.name.clone()),
    ];
    let launcher = SlurmJobsLauncher::new(SlurmJobsSpec::from_options(&options).unwrap());
    let launch = WorkerLaunch {
        scheduler: address,
        secret_hex: secret.to_hex(),
        executable: std::env::current_exe().unwrap(),
        threads: 1,
        env: Vec::new(),
    };
    let mut workers = {
        let _context = runtime.handle().enter();
        launcher.launch(&launch, runtime.handle()).unwrap()
    };
    assert!(workers.can_scale());
    assert_eq!(workers.workers_per_unit(), 1);
    wait_for(|| client.workers().0 == 1, "the first job's worker");
    wait_for(|| workers.starting() == 0, "nothing starting");
    let first = scene.queued();
    assert_eq!(first.len(), 1, "{first:?}");
    workers.connected(&[first[0].0.clone()]);
    workers.add(1, &launch).unwrap();
    let both = scene.queued();
    assert_eq!(both.len(), 2, "{both:?}");
    let added = both
        .iter()
        .find(|job| job.0 != first[0].0)
        .unwrap()
        .0
        .clone();
    wait_for(|| client.workers().0 == 2, "the added job's worker");
    // Running, but not yet reported connected: still starting.
    assert_eq!(workers.starting(), 1);
    workers.connected(&[first[0].0.clone(), added.clone()]);
    assert_eq!(workers.starting(), 0, "both jobs reported connected");
    workers.left(std::slice::from_ref(&added));
    wait_for(
        || !scene.queued().iter().any(|(id, _)| *id == added),
        "the added job cancelled",
    );
    wait_for(|| client.workers().0 == 1, "its worker gone");
    workers.stop();
    scene.wait_until_none_queued();
    scene.assert_no_run_dir_left();
}

/// `Client::scale` on a jobs plan: up submits jobs whose workers join, down
/// retires whole jobs, which end; nothing is left queued.
fn scale_up_and_down_submits_and_ends_jobs() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("scale");
    use_dir(&scene);
    let plan = format!("slurm:jobs=1,time=00:05:00,job-name={}", scene.name);
    {
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        assert_eq!(client.connected_workers(), 1);
        client.scale(3).unwrap();
        wait_for(|| client.connected_workers() == 3, "three workers");
        assert_eq!(scene.queued().len(), 3);
        let squares: Vec<u64> = client
            .gather((0..6u64).map(|i| client.submit(square, i)))
            .unwrap();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25]);
        client.scale(1).unwrap();
        wait_for(|| scene.queued().len() == 1, "two jobs retired and ended");
        wait_for(|| client.connected_workers() == 1, "one worker left");
    }
    scene.wait_until_none_queued();
    scene.assert_no_run_dir_left();
}

/// `Client::adapt` on a jobs plan: a burst of waiting tasks submits jobs up to
/// the maximum; once the work is done and the grace period over, the extra jobs
/// are retired and end; the results are right.
fn adapt_grows_with_a_burst_and_shrinks_when_idle() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("adapt");
    use_dir(&scene);
    let plan = format!("slurm:jobs=1,time=00:05:00,job-name={}", scene.name);
    {
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        let mut options = wherever::AdaptOptions::new(1, 3);
        options.interval = Duration::from_millis(200);
        options.idle_grace = Duration::from_secs(1);
        client.adapt_with(options).unwrap();
        let futures: Vec<_> = (0..6)
            .map(|i| client.submit(square_after_go, (i, scene.dir_text())))
            .collect();
        wait_for(
            || client.connected_workers() == 3,
            "adapt to grow to 3 workers",
        );
        wait_for(|| scene.started() >= 3, "a task on each of the 3 workers");
        assert!(scene.queued().len() <= 3, "never more than the maximum");
        std::fs::write(scene.dir.join("go"), b"").unwrap();
        let results: Vec<(u64, String, String, String, String)> = client.gather(futures).unwrap();
        let squares: Vec<u64> = results.iter().map(|r| r.0).collect();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25]);
        wait_for(|| scene.queued().len() == 1, "idle jobs retired and ended");
        wait_for(|| client.connected_workers() == 1, "back to the minimum");
    }
    scene.wait_until_none_queued();
    scene.assert_no_run_dir_left();
}

/// A one-minute walltime and about 80 s of work through adapt: workers leave
/// before their jobs end, adapt replaces them with new jobs, every task runs once
/// and the results are right.
fn work_longer_than_the_walltime_finishes_through_adapt() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("walltime");
    use_dir(&scene);
    let plan = format!("slurm:jobs=1,time=00:01:00,job-name={}", scene.name);
    // 80 one-second tasks; SJOBS_WALLTIME_TASKS=180 gives the 3 minutes.
    let tasks: u64 = std::env::var("SJOBS_WALLTIME_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(80);
    {
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        let mut options = wherever::AdaptOptions::new(1, 1);
        options.interval = Duration::from_millis(200);
        client.adapt_with(options).unwrap();
        let futures: Vec<_> = (0..tasks)
            .map(|i| client.submit(square_in_a_second, (i, scene.dir_text())))
            .collect();
        let squares: Vec<u64> = client.gather(futures).unwrap();
        assert_eq!(squares, (0..tasks).map(|i| i * i).collect::<Vec<_>>());
    }
    scene.wait_until_none_queued();
    let mut runs = vec![0usize; tasks as usize];
    for entry in std::fs::read_dir(&scene.dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix("ran-") {
            runs[rest.split('-').next().unwrap().parse::<usize>().unwrap()] += 1;
        }
    }
    assert!(runs.iter().all(|&n| n == 1), "runs per task: {runs:?}");
    let jobs = scene.jobs(true);
    assert!(jobs.len() >= 2, "the first job was replaced: {jobs:?}");
    assert!(
        jobs.iter().all(|(_, state)| state == "COMPLETED"),
        "every job ended by itself before its walltime: {jobs:?}"
    );
}

/// A job Slurm holds is `starting()` until it runs and its worker joins.
fn a_held_job_counts_as_starting_until_its_worker_joins() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("held");
    use_dir(&scene);
    let runtime = Arc::new(ClusterRuntime::start().unwrap());
    let secret = Secret::generate();
    let address = server::start(
        &runtime,
        "127.0.0.1:0",
        secret.clone(),
        ServerOptions::default(),
    )
    .unwrap()
    .to_string();
    let client = ClusterClient::connect(runtime.clone(), &address, secret.clone()).unwrap();
    let options = [
        ("jobs".to_string(), "1".to_string()),
        ("workers-per-job".to_string(), "2".to_string()),
        ("job-name".to_string(), scene.name.clone()),
    ];
    let mut spec = SlurmJobsSpec::from_options(&options).unwrap();
    spec.add_sbatch_line("--hold").unwrap();
    let launch = WorkerLaunch {
        scheduler: address,
        secret_hex: secret.to_hex(),
        executable: std::env::current_exe().unwrap(),
        threads: 1,
        env: Vec::new(),
    };
    let mut workers = {
        let _context = runtime.handle().enter();
        SlurmJobsLauncher::new(spec)
            .launch(&launch, runtime.handle())
            .unwrap()
    };
    let held = scene.queued();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].1, "PENDING");
    assert_eq!(
        workers.starting(),
        2,
        "both workers of the held job are to come"
    );
    assert_eq!(
        workers.poll(),
        wherever_cluster::launcher::LaunchStatus::Running
    );
    assert!(Command::new("scontrol")
        .args(["release", &held[0].0])
        .status()
        .unwrap()
        .success());
    wait_for(|| client.workers().0 == 2, "the released job's workers");
    wait_for(
        || workers.starting() == 0,
        "nothing starting once they joined",
    );
    // One more held job, still queued when the cluster stops: cancelled.
    workers.add(1, &launch).unwrap();
    assert_eq!(workers.starting(), 2);
    workers.stop();
    scene.wait_until_none_queued();
    scene.assert_no_run_dir_left();
}

/// sbatch refusing the job: the start error quotes it.
fn a_bad_partition_is_sbatchs_own_message() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("partition");
    use_dir(&scene);
    let plan = format!(
        "slurm:jobs=1,partition=nosuchpartition,job-name={}",
        scene.name
    );
    let error = match Plan::parse(&plan).unwrap().start() {
        Ok(_) => panic!("started on a partition that does not exist"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("sbatch refused the job") && error.contains("Invalid partition"),
        "{error}"
    );
    assert!(scene.queued().is_empty());
    scene.assert_no_run_dir_left();
}

/// A job that ends before its workers connect (here its program is missing):
/// the start error carries the end of the job's output.
fn a_job_that_ends_before_its_workers_connect_is_an_error_with_its_output() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("ends");
    use_dir(&scene);
    let plan = SlurmPlan::new()
        .job_name(&scene.name)
        .prologue("exec /no/such/program");
    let error = match plan.start() {
        Ok(_) => panic!("started although the job cannot run its program"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("before its workers connected")
            && error.contains("/no/such/program")
            && error.contains("No such file or directory"),
        "{error}"
    );
    scene.wait_until_none_queued();
}

/// `scancel` of one of two jobs mid-run: its task reruns on the other job's worker
/// and the results are right.
fn a_job_cancelled_mid_run_has_its_tasks_rerun_elsewhere() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("scancel");
    use_dir(&scene);
    let plan = format!("slurm:jobs=2,time=00:05:00,job-name={}", scene.name);
    let victim = {
        let client = Plan::parse(&plan).unwrap().start().unwrap();
        let futures: Vec<_> = (0..6)
            .map(|i| client.submit(square_after_go, (i, scene.dir_text())))
            .collect();
        wait_for(|| scene.started() == 2, "a task running in each job");
        let victim = scene.queued()[0].0.clone();
        assert!(Command::new("scancel")
            .arg(&victim)
            .status()
            .unwrap()
            .success());
        wait_for(
            || !scene.queued().iter().any(|(id, _)| *id == victim),
            "the cancelled job gone",
        );
        std::fs::write(scene.dir.join("go"), b"").unwrap();
        let results: Vec<(u64, String, String, String, String)> = client.gather(futures).unwrap();
        let squares: Vec<u64> = results.iter().map(|r| r.0).collect();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25]);
        assert!(results.iter().all(|r| r.2 != victim));
        victim
    };
    scene.wait_until_none_queued();
    // The job cancelled from outside keeps its output (Slurm's notice) for the
    // user; nothing else is left, and never the secret.
    let kept: Vec<String> = std::fs::read_dir(&scene.dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".wherever-jobs-")
        })
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(kept, [format!("{victim}.out")]);
}

/// One job on two nodes of the namespace partition `multi`: a worker on each
/// node, both reaching the scheduler across the namespaces' bridge.
fn a_job_on_two_nodes_has_a_worker_on_each() {
    if !checks_need_slurm() {
        return;
    }
    let partition = Command::new("sinfo")
        .args(["-h", "-p", "multi", "-o", "%D"])
        .output()
        .unwrap();
    let nodes: usize = String::from_utf8_lossy(&partition.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if nodes < 2 {
        eprintln!(
            "SKIPPED: no Slurm partition `multi` with 2 nodes (start Slurm with \
             CI_SLURM_NETNS_NODES=3)"
        );
        return;
    }
    let scene = Scene::new("nodes");
    use_dir(&scene);
    let plan = SlurmPlan::new()
        .partition("multi")
        .nodes(2)
        .time("00:05:00")
        .job_name(&scene.name);
    {
        let client = plan.start().unwrap();
        let futures: Vec<_> = (0..2)
            .map(|i| client.submit(node_after_go, (i, scene.dir_text())))
            .collect();
        wait_for(|| scene.started() == 2, "a task on each node");
        std::fs::write(scene.dir.join("go"), b"").unwrap();
        let mut nodes: Vec<String> = client.gather(futures).unwrap();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        assert!(nodes.iter().all(|n| n.starts_with("cih")), "{nodes:?}");
    }
    scene.wait_until_none_queued();
    scene.assert_no_run_dir_left();
}

/// A client process running `plan` with tasks that wait for a go file never written.
fn start_client(scene: &Scene, plan: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CLIENT_DIR_VARIABLE, &scene.dir)
        .env(CLIENT_PLAN_VARIABLE, plan)
        .env(SLURM_DIR_VARIABLE, &scene.dir)
        .spawn()
        .unwrap()
}

/// The client of [`start_client`]: never returns normally.
fn run_client(dir: &str, plan: &str) -> ! {
    let client = Plan::parse(plan).unwrap().start().unwrap();
    let futures: Vec<_> = (0..4)
        .map(|i| client.submit(square_after_go, (i, dir.to_string())))
        .collect();
    let _ = client.gather(futures);
    std::process::exit(3);
}

fn wait_for_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_for(
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
        "the client to exit",
    );
    status.unwrap()
}

/// SIGTERM to the client: it cancels its jobs, then dies of the signal.
fn sigterm_to_the_client_leaves_no_job() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("sigterm");
    let plan = format!("slurm:jobs=2,death-timeout=600,job-name={}", scene.name);
    let mut client = start_client(&scene, &plan);
    wait_for(|| scene.started() == 2, "a task running in each job");
    let sent = Command::new("kill")
        .args(["-TERM", &client.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_for_exit(&mut client);
    assert_eq!(status.signal(), Some(SIGTERM), "{status:?}");
    // The workers would wait 600 s for their scheduler: only scancel ends them.
    scene.wait_until_none_queued();
    for (id, state) in scene.jobs(true) {
        assert_eq!(state, "CANCELLED", "job {id}");
    }
}

/// SIGKILL to the client: nothing cancels the jobs, but their workers give up
/// after the death timeout and the jobs end.
fn sigkill_to_the_client_leaves_workers_that_exit_by_themselves() {
    if !checks_need_slurm() {
        return;
    }
    let scene = Scene::new("sigkill");
    let plan = format!("slurm:jobs=2,death-timeout=3,job-name={}", scene.name);
    let mut client = start_client(&scene, &plan);
    wait_for(|| scene.started() == 2, "a task running in each job");
    client.kill().unwrap();
    let _ = client.wait();
    scene.wait_until_none_queued();
    let states: Vec<String> = scene.jobs(true).into_iter().map(|(_, s)| s).collect();
    assert!(
        states.iter().all(|s| s != "CANCELLED"),
        "the workers ended their jobs by themselves: {states:?}"
    );
}

#[wherever::main]
fn main() {
    if let (Ok(dir), Ok(plan)) = (
        std::env::var(CLIENT_DIR_VARIABLE),
        std::env::var(CLIENT_PLAN_VARIABLE),
    ) {
        run_client(&dir, &plan);
    }
    std::env::set_var("WHEREVER_DASHBOARD", "off");
    harness::run_checks(&[
        (
            "workers_get_names_groups_deadlines_and_the_script_is_the_one_shown",
            workers_get_names_groups_deadlines_and_the_script_is_the_one_shown,
        ),
        (
            "add_submits_a_job_whose_workers_join_and_left_cancels_it",
            add_submits_a_job_whose_workers_join_and_left_cancels_it,
        ),
        (
            "scale_up_and_down_submits_and_ends_jobs",
            scale_up_and_down_submits_and_ends_jobs,
        ),
        (
            "adapt_grows_with_a_burst_and_shrinks_when_idle",
            adapt_grows_with_a_burst_and_shrinks_when_idle,
        ),
        (
            "work_longer_than_the_walltime_finishes_through_adapt",
            work_longer_than_the_walltime_finishes_through_adapt,
        ),
        (
            "a_held_job_counts_as_starting_until_its_worker_joins",
            a_held_job_counts_as_starting_until_its_worker_joins,
        ),
        (
            "a_bad_partition_is_sbatchs_own_message",
            a_bad_partition_is_sbatchs_own_message,
        ),
        (
            "a_job_that_ends_before_its_workers_connect_is_an_error_with_its_output",
            a_job_that_ends_before_its_workers_connect_is_an_error_with_its_output,
        ),
        (
            "a_job_cancelled_mid_run_has_its_tasks_rerun_elsewhere",
            a_job_cancelled_mid_run_has_its_tasks_rerun_elsewhere,
        ),
        (
            "a_job_on_two_nodes_has_a_worker_on_each",
            a_job_on_two_nodes_has_a_worker_on_each,
        ),
        (
            "sigterm_to_the_client_leaves_no_job",
            sigterm_to_the_client_leaves_no_job,
        ),
        (
            "sigkill_to_the_client_leaves_workers_that_exit_by_themselves",
            sigkill_to_the_client_leaves_workers_that_exit_by_themselves,
        ),
    ]);
}
