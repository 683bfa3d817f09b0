//! One error type for every reader, so that the CLI can print where bad input is.

use std::path::PathBuf;

/// What went wrong while reading or preparing a dataset. Variants about a file name the
/// file (a path, or `archive.zip!member` for a zip member) and, where there is one, the
/// 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("bad data spec `{spec}`: {reason}")]
    BadSpec { spec: String, reason: String },

    #[error("missing file {path}")]
    MissingFile { path: String },

    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}:{line}: expected {expected} values, found {found}")]
    ShortRow {
        path: String,
        line: usize,
        expected: usize,
        found: usize,
    },

    #[error("{path}:{line}: value {column} `{text}` is not a number")]
    NotANumber {
        path: String,
        line: usize,
        column: usize,
        text: String,
    },

    #[error("{path}:{line}: value {column} is {value} (NaN or infinite)")]
    NonFinite {
        path: String,
        line: usize,
        column: usize,
        value: f64,
    },

    #[error("{path}: {found} rows, but {reference} has {expected}")]
    RowCountMismatch {
        path: String,
        found: usize,
        reference: String,
        expected: usize,
    },

    #[error("{path}:{line}: {reason}")]
    BadValue {
        path: String,
        line: usize,
        reason: String,
    },

    #[error("split `{split}` has no inertial signals in {dir} (expected {expected})")]
    NoSignals {
        split: String,
        dir: PathBuf,
        expected: String,
    },

    #[error("{path}: {reason}")]
    BadFormat { path: String, reason: String },

    #[error("zip archive {path}: {source}")]
    Zip {
        path: String,
        #[source]
        source: zip::result::ZipError,
    },

    #[error("the selection is empty: {0}")]
    Empty(String),

    #[error("cannot join the splits: they differ in {0}")]
    Incompatible(String),

    #[error("checksum mismatch for {path}: expected SHA-256 {expected}, got {actual}")]
    ChecksumMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
}

impl DataError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                path: path.to_string(),
            }
        } else {
            DataError::Io {
                path: path.to_string(),
                source,
            }
        }
    }
}
