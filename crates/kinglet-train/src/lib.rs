//! Training of the seed networks and kinglet's own 1D CNN family on burn's `flex` CPU
//! backend, the `.kgl` model file, and lowering of trained models to the kinglet-graph IR.
//!
//! burn lives only here (and in the CLI); everything downstream works on the graph.

use std::path::PathBuf;

pub mod arch;
pub mod distill;
pub mod image;
pub mod inputs;
pub mod lower;
pub mod model_file;
pub mod network;
pub mod prune;
pub mod qat;
pub mod separable;
pub mod slim;
pub mod train;

pub use arch::{Architecture, Task};
pub use inputs::{ChannelNormalisation, GraphInput, graph_inputs};
pub use lower::lower;
pub use model_file::{InputGroup, ModelKind, TrainedModel};
pub use train::{EpochReport, Progress, Silent, TrainOptions, TrainOutcome, evaluate, train};

/// Everything that can go wrong while training, saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("architecture: {0}")]
    Architecture(String),
    #[error("data: {0}")]
    Data(String),
    #[error("model: {0}")]
    Model(String),
    #[error("{}: {reason}", path.display())]
    ModelFile { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
