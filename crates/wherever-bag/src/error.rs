//! What can go wrong building or computing a bag.

use wherever::TaskError;

/// An error building or computing a bag.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// `read_text`'s pattern matched no file.
    #[error("no file matches `{pattern}`")]
    NoFiles {
        /// The pattern, as given.
        pattern: String,
    },
    /// `read_text`'s pattern is not a valid glob.
    #[error("`{pattern}` is not a valid file pattern: {reason}")]
    BadPattern {
        /// The pattern, as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read (or listed).
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A function passed to a bag operation is not usable there.
    #[error("{0}")]
    Function(String),
    /// A task of the computation failed (a corrupt file's error names the file).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A computed result could not be read as the bag's element type.
    #[error("cannot read a result: {0}")]
    Decode(String),
}
