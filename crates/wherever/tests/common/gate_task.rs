//! A task that waits for a gate file, for the self-hosting test binaries: the test
//! creates the file to let the task end, in whichever worker process it runs.

#[path = "poll.rs"]
mod poll;

/// Waits until the file `path` exists (the test creates it to let the task end),
/// then returns `path`. Fails the task if the file never comes (hang guard).
#[wherever::task]
pub fn wait_for_file(path: String) -> String {
    poll::wait_for_path(std::path::Path::new(&path), poll::HANG_GUARD);
    path
}
