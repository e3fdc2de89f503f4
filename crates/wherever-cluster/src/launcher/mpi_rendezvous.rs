//! The rendezvous file of an `mpi` plan: rank 0 writes the scheduler's address,
//! the secret and the workers' settings to `.wherever-mpi-<job>` in the working
//! directory (shared on a cluster; [`RENDEZVOUS_DIR_VARIABLE`] names another
//! directory), private to its owner (mode 0600) and written atomically (a temporary
//! file renamed into place); the other ranks wait for it and read it. Rank 0
//! removes it when its cluster stops.
//!
//! ```text
//! wherever-mpi 1
//! scheduler 10.1.2.3:40123
//! secret 0f3a...             (64 hex digits)
//! env WHEREVER_WORKER_THREADS=1
//! ```

use crate::auth::check_private;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable naming the directory of the rendezvous file
/// (default: the working directory), e.g. when that is not shared by all ranks.
pub const RENDEZVOUS_DIR_VARIABLE: &str = "WHEREVER_MPI_RENDEZVOUS";

/// The first line of a rendezvous file.
const HEADER: &str = "wherever-mpi 1";

/// What rank 0 tells the worker ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// The scheduler's address, `HOST:PORT`.
    pub scheduler: String,
    /// The cluster's secret as hex.
    pub secret_hex: String,
    /// Settings for the workers' environment.
    pub env: Vec<(String, String)>,
}

/// The rendezvous file of the run named `job`: `.wherever-mpi-<job>` in
/// [`RENDEZVOUS_DIR_VARIABLE`]'s directory or else the working directory. Without
/// a job name the directory must be given (and fresh for each run).
pub fn path(job: Option<&str>) -> Result<PathBuf, String> {
    let chosen = std::env::var_os(RENDEZVOUS_DIR_VARIABLE).map(PathBuf::from);
    let name = match (job, &chosen) {
        (Some(job), _) => format!(
            ".wherever-mpi-{}",
            job.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                })
                .collect::<String>()
        ),
        (None, Some(_)) => ".wherever-mpi".to_string(),
        (None, None) => {
            return Err(format!(
                "no variable names this MPI run (PMIX_NAMESPACE, OMPI_MCA_ess_base_jobid, \
                 SLURM_JOB_ID with SLURM_STEP_ID), so the ranks cannot agree on a \
                 rendezvous file: set {RENDEZVOUS_DIR_VARIABLE} to a directory that all \
                 ranks see, fresh for this run"
            ))
        }
    };
    let directory = match chosen {
        Some(directory) => directory,
        None => std::env::current_dir()
            .map_err(|e| format!("cannot find the working directory: {e}"))?,
    };
    Ok(directory.join(name))
}

impl Rendezvous {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{HEADER}\nscheduler {}\nsecret {}\n",
            self.scheduler, self.secret_hex
        );
        for (key, value) in &self.env {
            text.push_str(&format!("env {key}={value}\n"));
        }
        text
    }

    /// Parses a rendezvous file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rendezvous, String> {
        let bad = |why: String| format!("the rendezvous file {origin} is malformed: {why}");
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("its first line is not `{HEADER}`")));
        }
        let (mut scheduler, mut secret_hex, mut env) = (None, None, Vec::new());
        for line in lines {
            match line.split_once(' ') {
                Some(("scheduler", address)) => scheduler = Some(address.to_string()),
                Some(("secret", hex)) => secret_hex = Some(hex.to_string()),
                Some(("env", setting)) => match setting.split_once('=') {
                    Some((key, value)) if !key.is_empty() => {
                        env.push((key.to_string(), value.to_string()))
                    }
                    _ => return Err(bad(format!("expected `env NAME=VALUE`, got `{line}`"))),
                },
                _ => return Err(bad(format!("unexpected line `{line}`"))),
            }
        }
        let scheduler = scheduler.ok_or_else(|| bad("no `scheduler` line".to_string()))?;
        crate::worker::parse_address(&scheduler).map_err(bad)?;
        let secret_hex = secret_hex.ok_or_else(|| bad("no `secret` line".to_string()))?;
        crate::auth::Secret::from_hex(&secret_hex, "its secret").map_err(|e| bad(e.to_string()))?;
        Ok(Rendezvous {
            scheduler,
            secret_hex,
            env,
        })
    }

    /// Writes the file at `path` atomically, readable only by its owner.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let temporary = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
        let failed = |e: std::io::Error| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write the rendezvous file {}: {e}", path.display())
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(failed)?;
        file.write_all(self.to_text().as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(failed)
    }

    /// Waits up to `wait` for the file at `path` to appear, then reads it (it must
    /// be private to this user, as a secret file).
    pub fn wait_for(path: &Path, wait: Duration) -> Result<Rendezvous, String> {
        let deadline = Instant::now() + wait;
        while !path.exists() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "rank 0 wrote no rendezvous file {} within {} s: is rank 0 running with \
                     the `mpi` plan too, and do all ranks see this directory (else set \
                     {RENDEZVOUS_DIR_VARIABLE} to one they all see)?",
                    path.display(),
                    wait.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        check_private(path).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the rendezvous file {}: {e}", path.display()))?;
        Rendezvous::parse(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rendezvous {
        Rendezvous {
            scheduler: "10.0.0.1:4000".into(),
            secret_hex: "ab".repeat(32),
            env: vec![("WHEREVER_WORKER_THREADS".into(), "2".into())],
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wherever-rendezvous-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_file_is_private_and_reads_back() {
        let dir = scratch("roundtrip");
        let path = dir.join(".wherever-mpi-7");
        sample().write(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let read = Rendezvous::wait_for(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(read, sample());
        // Written again (a rerun with the same name) it is replaced, not appended.
        sample().write(&path).unwrap();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_a_clear_error_after_the_wait() {
        let dir = scratch("missing");
        let error = Rendezvous::wait_for(&dir.join("none"), Duration::ZERO).unwrap_err();
        assert!(
            error.contains("rank 0 wrote no rendezvous file")
                && error.contains(RENDEZVOUS_DIR_VARIABLE),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = scratch("exposed");
        let path = dir.join(".wherever-mpi-8");
        std::fs::write(&path, sample().to_text()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = Rendezvous::wait_for(&path, Duration::ZERO).unwrap_err();
            assert!(error.contains("644"), "{error}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let secret = "ab".repeat(32);
        let cases = [
            (String::new(), "first line is not"),
            (
                format!("{HEADER}\nsecret {secret}\n"),
                "no `scheduler` line",
            ),
            (format!("{HEADER}\nscheduler h:1\n"), "no `secret` line"),
            (
                format!("{HEADER}\nscheduler h:0\nsecret {secret}\n"),
                "expected tcp://HOST:PORT",
            ),
            (
                format!("{HEADER}\nscheduler h:1\nsecret zz\n"),
                "its secret",
            ),
            (
                format!("{HEADER}\nscheduler h:1\nsecret {secret}\nenv =x\n"),
                "expected `env NAME=VALUE`",
            ),
            (format!("{HEADER}\nwhat\n"), "unexpected line `what`"),
        ];
        for (text, expected) in cases {
            let error = Rendezvous::parse(&text, "F").unwrap_err();
            assert!(
                error.contains("the rendezvous file F is malformed"),
                "{error}"
            );
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn job_names_make_safe_file_names() {
        let path = path(Some("17.2/../x y")).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(name, ".wherever-mpi-17.2_.._x_y");
    }
}
