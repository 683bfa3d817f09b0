//! Compilation and firmware-run errors; each names the op, file or tool it is about.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CompileError {
    #[error("op {index} ({op}): {message}")]
    Op {
        index: usize,
        op: &'static str,
        message: String,
    },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    #[error("firmware run: {0}")]
    Run(String),
}

impl CompileError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        CompileError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
