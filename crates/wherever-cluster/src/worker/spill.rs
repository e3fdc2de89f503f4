//! The worker's spill directory: one temporary directory per worker process
//! (made by `tempfile` at the first spill, only its owner may read it), holding
//! spilled values as files of their bytes as they are. It is removed when the
//! worker exits, by [`remove_directory`] on every exit path and by a drop guard
//! ([`RemoveOnDrop`]) when the worker's thread unwinds from a panic.

use crate::protocol::TaskId;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tempfile::TempDir;

/// The process's spill directory, once made.
static DIRECTORY: Mutex<Option<TempDir>> = Mutex::new(None);

/// The prefix of the spill directories of worker process `pid`.
fn prefix(pid: u32) -> String {
    format!("wherever-spill-{pid}-")
}

/// Removes the spill directories that worker process `pid` (started with this
/// process's temporary directory) left: its launcher calls it once the worker has
/// exited or been killed, which no exit path of the worker itself survives.
pub fn remove_directories_of(pid: u32) {
    let prefix = prefix(pid);
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Where the process's spill directory is, made now if it was not yet.
fn directory() -> io::Result<PathBuf> {
    let mut directory = DIRECTORY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(made) = directory.as_ref() {
        return Ok(made.path().to_path_buf());
    }
    let made = tempfile::Builder::new()
        .prefix(&prefix(std::process::id()))
        .tempdir()?;
    let path = made.path().to_path_buf();
    *directory = Some(made);
    Ok(path)
}

/// Removes the process's spill directory and what it holds, if it was made
/// (before the worker process exits: `std::process::exit` runs no destructors).
pub fn remove_directory() {
    let made = DIRECTORY.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(made) = made {
        let path = made.path().to_path_buf();
        // (Its launcher may have removed it already.)
        if let Err(error) = made.close().or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }) {
            eprintln!(
                "wherever worker: cannot remove the spill directory {}: {error}",
                path.display()
            );
        }
    }
}

/// Removes the process's spill directory when dropped: held by the worker's
/// main function, so that a panic unwinding it removes the directory too.
pub struct RemoveOnDrop;

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        remove_directory();
    }
}

/// The files of one store's spilled values: `STORE-TASK` in the spill directory
/// (each connection to the scheduler has a store of its own).
pub struct SpillFiles {
    store: u64,
    /// A directory of its own instead of the process's (tests).
    own: Option<TempDir>,
}

impl SpillFiles {
    /// Files of a new store in the process's spill directory.
    pub fn new() -> Self {
        static STORES: AtomicU64 = AtomicU64::new(0);
        SpillFiles {
            store: STORES.fetch_add(1, Ordering::Relaxed),
            own: None,
        }
    }

    /// Files in a temporary directory of their own, removed when they are dropped.
    #[cfg(test)]
    pub fn in_new_directory() -> io::Result<Self> {
        Ok(SpillFiles {
            store: 0,
            own: Some(tempfile::tempdir()?),
        })
    }

    fn path(&self, task: TaskId) -> io::Result<PathBuf> {
        let directory = match &self.own {
            Some(own) => own.path().to_path_buf(),
            None => directory()?,
        };
        Ok(directory.join(format!("{}-{task}", self.store)))
    }

    /// Writes the bytes of the value of `task`.
    pub fn write(&self, task: TaskId, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(self.path(task)?, bytes)
    }

    /// Reads the bytes of the value of `task` back.
    pub fn read(&self, task: TaskId) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(task)?)
    }

    /// Removes the file of `task`, if there is one.
    pub fn remove(&self, task: TaskId) {
        if let Ok(path) = self.path(task) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Whether a file is there for `task` (tests).
    #[cfg(test)]
    pub fn holds(&self, task: TaskId) -> bool {
        self.path(task).is_ok_and(|path| path.exists())
    }
}

impl Default for SpillFiles {
    fn default() -> Self {
        SpillFiles::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_directory_is_made_at_the_first_write_and_removed_also_by_a_panic() {
        // The only test in this crate using the process's directory.
        let files = SpillFiles::new();
        files.write(7, b"seven").unwrap();
        let path = files.path(7).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"seven");
        let directory = path.parent().unwrap().to_path_buf();
        remove_directory();
        assert!(!directory.exists(), "the spill directory is still there");
        // Made again on demand; a panic unwinding past the guard removes it.
        files.write(8, b"eight").unwrap();
        assert_eq!(files.read(8).unwrap(), b"eight");
        let directory = files.path(8).unwrap().parent().unwrap().to_path_buf();
        let outcome = std::panic::catch_unwind(|| {
            let _guard = RemoveOnDrop;
            panic!("a worker's main thread panics");
        });
        assert!(outcome.is_err());
        assert!(!directory.exists(), "a panic left the spill directory");
        // What a killed worker leaves, its launcher removes.
        files.write(9, b"nine").unwrap();
        let directory = files.path(9).unwrap().parent().unwrap().to_path_buf();
        remove_directories_of(std::process::id());
        assert!(!directory.exists(), "the launcher's clean-up left it");
        remove_directory();
    }
}
