//! Errors of the compression crate; each names the op, tensor or sample it is about.

use kinglet_graph::GraphError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CompressError {
    /// The model handed to float-only passes already holds integer tensors or quantise ops.
    #[error("not a float model: {0}")]
    NotFloat(String),
    /// A graph construct PTQ does not handle.
    #[error("cannot quantise: {0}")]
    Unsupported(String),
    /// Calibration data that does not fit the model, or values that break calibration.
    #[error("calibration: {0}")]
    Calibration(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
}
