//! One error type for the crate; every message names the file, window or model concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AdaptError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("model `{model}` on window {window}: {message}")]
    Model {
        model: String,
        window: usize,
        message: String,
    },
    #[error("window {window}: controller refused the step: {message}")]
    Control { window: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl AdaptError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
