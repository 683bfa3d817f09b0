//! `.tflite` (TFLite flatbuffer, schema version 3) reading and writing.

mod read;
pub mod schema;
mod sparse;
mod write;

pub(crate) use read::check_tensor_size;

use crate::error::GraphError;
use crate::graph::Graph;

impl Graph {
    /// Reads a `.tflite` model. Errors name the op/tensor index for unsupported content and
    /// never panic on truncated or corrupt bytes.
    pub fn from_tflite_bytes(bytes: &[u8]) -> Result<Graph, GraphError> {
        read::read(bytes)
    }

    /// Serialises the graph as a `.tflite` model the TFLite interpreter runs unchanged, with
    /// the default [`WriteOptions`] (pruned weights stored sparse when that is smaller).
    pub fn to_tflite_bytes(&self) -> Result<Vec<u8>, GraphError> {
        write::write(self, &WriteOptions::default())
    }

    /// [`Graph::to_tflite_bytes`] with explicit options.
    pub fn to_tflite_bytes_with(&self, options: &WriteOptions) -> Result<Vec<u8>, GraphError> {
        write::write(self, options)
    }
}

/// How the `.tflite` writer stores constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Store a convolution's or fully-connected layer's int8/float32 weights in TFLite's
    /// sparse format (SPARSE_CSR over the last dimension, uint8 indices via blocks when
    /// rows are long) behind a DENSIFY op, as TF's converter does, whenever that makes the
    /// file smaller — i.e. for pruned weights. `false` keeps every constant dense.
    pub sparse_weights: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            sparse_weights: true,
        }
    }
}

/// Writes `graph` as `.tflite` to `path` atomically (temporary file, then rename). This is the
/// export hook for every producer of graphs (`.tflite` re-export, lowered `.kgl` models, PTQ).
pub fn write_tflite_file(graph: &Graph, path: &std::path::Path) -> Result<(), GraphError> {
    write_tflite_file_with(graph, path, &WriteOptions::default())
}

/// [`write_tflite_file`] with explicit options.
pub fn write_tflite_file_with(
    graph: &Graph,
    path: &std::path::Path,
    options: &WriteOptions,
) -> Result<(), GraphError> {
    let bytes = graph.to_tflite_bytes_with(options)?;
    let io = |error: std::io::Error| GraphError::Io {
        path: path.display().to_string(),
        error,
    };
    crate::files::write_atomic(path, &bytes).map_err(io)
}

/// Reads a `.tflite` file; errors name the file.
pub fn read_tflite_file(path: &std::path::Path) -> Result<Graph, GraphError> {
    let name = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| GraphError::Io {
        path: name(),
        error,
    })?;
    Graph::from_tflite_bytes(&bytes).map_err(|e| GraphError::File {
        path: name(),
        error: Box::new(e),
    })
}
