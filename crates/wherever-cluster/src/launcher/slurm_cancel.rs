//! Never leaving jobs behind: a process-wide registry of the Slurm jobs this
//! process submitted and has not yet seen end, and `scancel` of all of them when
//! the process gets SIGINT, SIGTERM or SIGHUP.
//!
//! The handlers are installed the first time a job is registered (so a program
//! that never submits a job keeps its own signal behaviour). A handler only
//! writes the signal's number to a pipe, which is safe in a signal handler; a
//! thread reading that pipe runs `scancel` on every registered job, then puts
//! back the signal's default action and raises it again, so the process ends as
//! it would have without us (killed by that signal). A SIGKILLed client cannot
//! do this: its workers exit after their death timeout, and their jobs with them.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The signals after which every registered job is cancelled.
const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The jobs this process submitted that may still be queued or running.
fn live_jobs() -> &'static Mutex<BTreeSet<String>> {
    static JOBS: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    JOBS.get_or_init(Mutex::default)
}

/// Where the signal handlers write the signal's number.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// Adds a submitted job to the registry (and installs the handlers once).
pub fn register(job_id: &str) {
    install_handlers();
    lock().insert(job_id.to_string());
}

/// Removes a job that ended or was cancelled.
pub fn unregister(job_id: &str) {
    lock().remove(job_id);
}

/// The registered jobs, in order.
pub fn registered() -> Vec<String> {
    lock().iter().cloned().collect()
}

fn lock() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    live_jobs()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `scancel`s these jobs in one command; the error quotes scancel's own.
pub fn scancel(jobs: &[String]) -> Result<(), String> {
    if jobs.is_empty() {
        return Ok(());
    }
    let output = Command::new("scancel")
        .args(jobs)
        .output()
        .map_err(|e| format!("cannot run `scancel`: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scancel {} failed: {}",
            jobs.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Installs the handlers and starts the thread that acts on them, once.
fn install_handlers() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let Ok((mut reader, writer)) = UnixStream::pair() else {
            tracing::warn!("cannot make a pipe: Slurm jobs are not cancelled on SIGINT/SIGTERM");
            return;
        };
        PIPE.store(writer.into_raw_fd(), Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("wherever-scancel-on-signal".into())
            .spawn(move || {
                let mut byte = [0u8; 1];
                while reader.read_exact(&mut byte).is_ok() {
                    let signal = i32::from(byte[0]);
                    let jobs = registered();
                    if let Err(error) = scancel(&jobs) {
                        eprintln!("wherever: {error}");
                    }
                    reraise(signal);
                }
            });
        if spawned.is_err() {
            return;
        }
        for signal in SIGNALS {
            // SAFETY: the action only loads an atomic and calls write(2), both
            // async-signal-safe; it allocates nothing and takes no lock.
            let registered = unsafe {
                signal_hook_registry::register(signal, move || {
                    let fd = PIPE.load(Ordering::Relaxed);
                    if fd >= 0 {
                        let byte = signal as u8;
                        libc::write(fd, (&byte as *const u8).cast(), 1);
                    }
                })
            };
            if let Err(error) = registered {
                tracing::warn!("cannot handle signal {signal}: {error}");
            }
        }
    });
}

/// Puts back `signal`'s default action and raises it: the process ends as the
/// signal meant.
fn reraise(signal: i32) {
    // SAFETY: plain libc calls with a valid signal number; SIG_DFL is a valid
    // disposition.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_jobs_until_they_are_unregistered() {
        register("sjobs-test-1");
        register("sjobs-test-2");
        unregister("sjobs-test-1");
        let jobs = registered();
        assert!(jobs.contains(&"sjobs-test-2".to_string()));
        assert!(!jobs.contains(&"sjobs-test-1".to_string()));
        unregister("sjobs-test-2");
    }
}
