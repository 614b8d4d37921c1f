//! The one error type of seft's library: every failure on user input names the file (and the
//! key, tensor or line inside it) and the cause, on one line, so the CLI can print it and exit
//! non-zero instead of panicking.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SeftError {
    /// Something is wrong with a file's contents.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// A file could not be opened, read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Invalid arguments or configuration that is not tied to a file.
    #[error("{0}")]
    Invalid(String),
}

impl SeftError {
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        SeftError::File {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        SeftError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

pub type Result<T, E = SeftError> = std::result::Result<T, E>;
