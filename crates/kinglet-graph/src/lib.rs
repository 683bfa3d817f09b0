//! kinglet-graph: the model graph IR, shape inference, `.tflite` reading and writing,
//! the static memory planner, and a host executor running kinglet-micro kernels.
//!
//! - Build or read: [`Graph`] builder methods (`add_input`, `add_constant_*`,
//!   `add_op_inferred`, `mark_output`), [`Graph::from_tflite_bytes`],
//!   [`tflite::read_tflite_file`].
//! - Check and measure: [`Graph::validate`], [`Graph::total_macs`], [`Graph::weight_bytes`],
//!   [`ModelSummary`] (what `kinglet inspect` prints).
//! - Write: [`Graph::to_tflite_bytes`], [`tflite::write_tflite_file`] (atomic).
//! - Run: [`ArenaPlan::new`] (peak arena before anything runs), [`Interpreter`]
//!   (`set_input` / `invoke` / `output`, `invoke_batch` over many windows and threads),
//!   [`Interpreter::with_kernels`] to reproduce one of the TFLite interpreter's kernel
//!   configurations ([`TfliteKernels`]) bit for bit, [`eval::evaluate`] over prepared windows.

pub mod error;
pub mod eval;
pub mod files;
pub mod graph;
pub mod interp;
pub mod passes;
pub mod plan;
pub mod shape;
pub mod summary;
pub mod tflite;

pub use error::GraphError;
pub use graph::{
    Activation, DType, Graph, Hw, MAX_TENSOR_BYTES, Op, OpKind, Padding, QuantParams, Tensor,
    TensorId, leading_block_indices, meta, pack_signed, unpack_signed,
};
pub use interp::{Element, Interpreter, TfliteKernels};
pub use plan::{ARENA_ALIGN, ArenaPlan, Placement};
pub use summary::ModelSummary;
