//! Who may connect: the per-cluster secret, the challenge-response proof of knowing
//! it, and the build check that keeps workers on the same executable as clients.

use crate::connection::printable;
use crate::protocol::BuildInfo;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod build_id;

/// The environment variable holding the secret itself, hex-encoded. A worker
/// reads it once and removes it from its environment, so tasks' child processes
/// never see it; prefer [`SECRET_FILE_VARIABLE`] or [`SECRET_STDIN_VARIABLE`].
pub const SECRET_VARIABLE: &str = "WHEREVER_SECRET";
/// The environment variable telling a worker to read the secret (hex, one line)
/// from its standard input: how `processes:N` hands it to the workers it starts.
pub const SECRET_STDIN_VARIABLE: &str = "WHEREVER_SECRET_STDIN";
/// The environment variable naming a file that holds the secret (hex).
pub const SECRET_FILE_VARIABLE: &str = "WHEREVER_SECRET_FILE";

/// A per-cluster secret: 32 random bytes. Every connection proves it knows the
/// secret by answering a fresh challenge, so the secret itself never crosses the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read or written.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The text is not 64 hex digits.
    #[error("{origin}: a secret is 64 hex digits")]
    Malformed {
        /// Where the text came from.
        origin: String,
    },
    /// The file is readable by others or owned by another user.
    #[error(
        "secret file {path}: {problem}; a secret must be private to its owner like an SSH \
         key: run `chmod 600 {path}` as its owner (or make a new one)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// No secret is configured.
    #[error("no cluster secret: set {SECRET_FILE_VARIABLE} to the scheduler's secret file (or create {0})")]
    Missing(PathBuf),
}

impl Secret {
    /// A fresh random secret (from the operating system's random source).
    pub fn generate() -> Self {
        Secret(random_bytes())
    }

    /// The secret as 64 hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let malformed = || SecretError::Malformed {
            origin: origin.to_string(),
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(malformed());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
        }
        Ok(Secret(bytes))
    }

    /// Reads the secret from `path`, which must be private to this user (see
    /// [`check_private`]).
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Secret::from_hex(&text, &path.display().to_string())
    }

    /// Writes the secret to a new file at `path`, readable by its owner only (mode
    /// 0600), for a launcher whose workers cannot read it on standard input: they
    /// get `WHEREVER_SECRET_FILE=path` ([`SECRET_FILE_VARIABLE`]). An existing file
    /// (or symbolic link) at `path` is an error, never overwritten or followed.
    pub fn write_new_file(&self, path: &Path) -> Result<(), SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut file, format!("{}\n", self.to_hex()).as_bytes()).map_err(io)
    }

    /// Reads the secret from `path`, or creates the file (mode 0600) with a fresh one.
    pub fn read_or_create_file(path: &Path) -> Result<Self, SecretError> {
        if path.exists() {
            return Secret::read_file(path);
        }
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let secret = Secret::generate();
        secret.write_new_file(path)?;
        Ok(secret)
    }

    /// The secret this worker process was started with ([`Secret::take_for_worker`]),
    /// else the one in `WHEREVER_SECRET`, else the file named by
    /// `WHEREVER_SECRET_FILE`, else the default file [`default_secret_path`].
    pub fn from_env() -> Result<Self, SecretError> {
        if let Some(secret) = WORKER_SECRET.get() {
            return Ok(secret.clone());
        }
        if let Ok(text) = std::env::var(SECRET_VARIABLE) {
            return Secret::from_hex(&text, SECRET_VARIABLE);
        }
        let path = std::env::var_os(SECRET_FILE_VARIABLE)
            .map(PathBuf::from)
            .unwrap_or_else(default_secret_path);
        if !path.exists() {
            return Err(SecretError::Missing(path));
        }
        Secret::read_file(&path)
    }

    /// For a worker process, before it starts any thread: the secret from its
    /// standard input (when [`SECRET_STDIN_VARIABLE`] is set) or else from
    /// [`Secret::from_env`]; then removes both variables and [`SECRET_VARIABLE`]
    /// from the environment, so no task's child process inherits the secret, and
    /// keeps it for later [`Secret::from_env`] calls in this process.
    pub fn take_for_worker() -> Result<Self, SecretError> {
        let secret = if std::env::var_os(SECRET_STDIN_VARIABLE).is_some() {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|source| SecretError::Io {
                    path: PathBuf::from("standard input"),
                    source,
                })?;
            Secret::from_hex(&line, "the secret on standard input")
        } else {
            Secret::from_env()
        };
        std::env::remove_var(SECRET_VARIABLE);
        std::env::remove_var(SECRET_STDIN_VARIABLE);
        let secret = secret?;
        Ok(WORKER_SECRET.get_or_init(|| secret).clone())
    }

    /// The proof for `nonce`: HMAC-SHA256 under the secret.
    pub fn prove(&self, nonce: &[u8; 32]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` answers `nonce` (compared in constant time).
    pub fn verify(&self, nonce: &[u8; 32], proof: &[u8; 32]) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(nonce);
        mac.verify_slice(proof).is_ok()
    }
}

/// The secret a worker process took at start ([`Secret::take_for_worker`]).
static WORKER_SECRET: OnceLock<Secret> = OnceLock::new();

/// Checks that the secret file at `path` is owned by this user and neither
/// readable nor writable by group or others (as `ssh` checks private keys).
pub fn check_private(path: &Path) -> Result<(), SecretError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).map_err(|source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let exposed = |problem: String| SecretError::Exposed {
            path: path.to_path_buf(),
            problem,
        };
        // `/proc/self` belongs to this process's effective user.
        let me = std::fs::metadata("/proc/self").ok().map(|own| own.uid());
        if let Some(me) = me.filter(|&me| metadata.uid() != me) {
            return Err(exposed(format!(
                "owned by user {}, not by this user ({me})",
                metadata.uid()
            )));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(exposed(format!(
                "its mode {mode:03o} lets group or others read or change it"
            )));
        }
    }
    Ok(())
}

/// `~/.wherever/secret`: where `wherever scheduler`, clients and workers look for the
/// secret when nothing else names it (shared home directories make it cluster-wide).
pub fn default_secret_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".wherever").join("secret")
}

/// 32 bytes from `/dev/urandom`.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the operating system's random source is readable");
    bytes
}

/// This executable's build: its build id (the linker's ELF build-id note, read
/// from the file's first pages, else the whole file's SHA-256 cached by file
/// identity: see [`build_id`]), its path and its task registry's fingerprint.
/// Computed once per process, outside any handshake's timeout when called early
/// (the worker runtime and [`crate::launcher::start_cluster`] call it at start).
pub fn this_build() -> &'static BuildInfo {
    static BUILD: OnceLock<BuildInfo> = OnceLock::new();
    BUILD.get_or_init(|| {
        let path = std::env::current_exe().unwrap_or_default();
        BuildInfo {
            hash: build_id::build_hash_of(&path).unwrap_or(0),
            executable: path.display().to_string(),
            registry: wherever_core::registry::fingerprint(),
        }
    })
}

/// Why `peer` may not join a cluster whose programs run `expected`, or `None`.
pub fn build_mismatch(expected: &BuildInfo, peer: &BuildInfo) -> Option<String> {
    if expected.hash != peer.hash {
        return Some(format!(
            "the executable differs: {} (build {:016x}) is not the cluster's {} (build {:016x}); \
             start workers from the same binary as the client",
            printable(&peer.executable),
            peer.hash,
            printable(&expected.executable),
            expected.hash
        ));
    }
    if expected.registry != peer.registry {
        return Some(format!(
            "the registered tasks differ between {} and {}",
            printable(&peer.executable),
            printable(&expected.executable)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_secret_and_nonce() {
        let secret = Secret::generate();
        let nonce = random_bytes();
        let proof = secret.prove(&nonce);
        assert!(secret.verify(&nonce, &proof));
        assert!(!Secret::generate().verify(&nonce, &proof));
        assert!(!secret.verify(&random_bytes(), &proof));
    }

    #[test]
    fn hex_round_trips_and_rejects_malformed_text() {
        let secret = Secret::generate();
        assert_eq!(Secret::from_hex(&secret.to_hex(), "t").unwrap(), secret);
        for bad in ["", "abc", &"zz".repeat(32), &"é".repeat(32)] {
            assert!(Secret::from_hex(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_files_readable_by_others_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("wherever-secret-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let secret = Secret::read_or_create_file(&path).unwrap();
        assert_eq!(Secret::read_file(&path).unwrap(), secret);
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = Secret::read_file(&path).unwrap_err().to_string();
            assert!(
                error.contains(&format!("chmod 600 {}", path.display())),
                "{mode:o}: {error}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_written_secret_file_is_private_read_back_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("wherever-new-secret-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let secret = Secret::generate();
        secret.write_new_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secret::read_file(&path).unwrap(), secret);
        let again = Secret::generate().write_new_file(&path).unwrap_err();
        assert!(
            again.to_string().contains(&path.display().to_string()),
            "{again}"
        );
        assert_eq!(Secret::read_file(&path).unwrap(), secret);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn build_mismatch_names_both_executables() {
        let a = BuildInfo {
            hash: 1,
            executable: "/a/study".into(),
            registry: 9,
        };
        let b = BuildInfo {
            hash: 2,
            executable: "/b/study".into(),
            registry: 9,
        };
        assert!(build_mismatch(&a, &a).is_none());
        let message = build_mismatch(&a, &b).unwrap();
        assert!(
            message.contains("/a/study") && message.contains("/b/study"),
            "{message}"
        );
    }
}
