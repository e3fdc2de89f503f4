//! A task that waits for a gate file, for the self-hosting test binaries: the test
//! creates the file to let the task end, in whichever worker process it runs.

/// Waits until the file `path` exists (the test creates it to let the task end),
/// then returns `path`.
#[wherever::task]
pub fn wait_for_file(path: String) -> String {
    while !std::path::Path::new(&path).exists() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    path
}
