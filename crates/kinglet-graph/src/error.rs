//! Errors of the graph crate. Every message names the op (index and TFLite name) or the
//! tensor it is about, so a user can find the problem in their model.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("op {index} ({op}): {message}")]
    Op {
        index: usize,
        op: &'static str,
        message: String,
    },
    #[error("tensor {index} ('{name}'): {message}")]
    Tensor {
        index: usize,
        name: String,
        message: String,
    },
    #[error("invalid graph: {0}")]
    Invalid(String),
    #[error("malformed .tflite: {0}")]
    Malformed(String),
    #[error("unsupported in .tflite: {0}")]
    Unsupported(String),
    #[error("runtime: {0}")]
    Runtime(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// An error in a model file, with the file's path.
    #[error("{path}: {error}")]
    File {
        path: String,
        error: Box<GraphError>,
    },
}

impl GraphError {
    pub(crate) fn op(index: usize, op: &'static str, message: impl Into<String>) -> Self {
        GraphError::Op {
            index,
            op,
            message: message.into(),
        }
    }
}
