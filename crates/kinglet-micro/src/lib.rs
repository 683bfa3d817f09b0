//! # kinglet-micro
//!
//! Allocation-free, dependency-free reference kernels for quantised (int8, legacy uint8) and
//! float neural networks, bit-exact with the TFLite interpreter. `#![no_std]`; builds for the
//! host, `thumbv7em-none-eabihf`, `thumbv7m-none-eabi` and `riscv32imc-unknown-none-elf`.
//!
//! ## How callers use it
//! * The host executor (kinglet-graph) and generated firmware (kinglet-compile) own one arena
//!   and hand each kernel slices of it: inputs as [`TensorRef`], the output as [`TensorMut`]
//!   (or plain slices for element-wise ops). [`tensor::bytes_as_i8`] /
//!   [`tensor::bytes_as_f32`] view arena bytes as typed slices.
//! * Every kernel validates shapes and parameters first and returns [`KernelError`] instead
//!   of panicking; after validation the loops cannot index out of bounds.
//! * Requantisation parameters are computed once, off the hot path, with
//!   [`quant::quantize_multiplier`] / [`quant::conv_output_multipliers`] (int8 conv and
//!   depthwise, per-channel FC) / [`quant::legacy_output_multiplier`] (uint8 conv/depthwise,
//!   per-tensor FC: TFLite rounds the scale product to f32 there),
//!   [`add::AddParams::new`], [`quantize::requantize_multiplier`], [`softmax::SoftmaxLut`].
//! * Shifts use TFLite's convention: positive = left. Offsets: `input_offset =
//!   −input_zero_point`, `filter_offset = −filter_zero_point` (0 for int8 weights),
//!   `output_offset = output_zero_point`.
//! * Fused ReLU/ReLU6 are the clamp range: [`quant::activation_range_quantized`] gives
//!   `act_min`/`act_max`, [`conv2d::ActivationF32::from_fused`] the float range.
//! * Padding: [`padding::axis_geometry`] turns SAME/VALID into output size and top/left pad.
//! * No kernel needs scratch memory (every `*_scratch_bytes` would be 0, so none exist);
//!   Reshape may be aliased by the planner (then it is a no-op). The x86-64 conv variant
//!   keeps ≤ 2 KiB of packed weights on the stack.
//! * Optimised variants sit beside the portable code and are held to the same tests:
//!   `conv2d_i8` takes a symmetric-weights path (input offset factored out) and, on x86-64,
//!   packs eight output channels for SSE2 `pmaddwd` (`conv2d_x86.rs`). Cortex-M DSP variants
//!   are the firmware's.
//!
//! ## Matching the TFLite interpreter
//! The interpreter has three configurations that differ only in how some ops requantise;
//! each is reproduced bit for bit by choosing the [`Requant`] variant (tested against
//! `ai-edge-litert` 2.3.0 in `tests/tflite_goldens.rs` (701 single-op cases, float ones
//! within 1e-5 relative) and
//! `tests/seed_models.rs` (all seed models end to end)):
//!
//! | op | `BUILTIN_REF` (reference; TFLite Micro) | `BUILTIN_WITHOUT_DEFAULT_DELEGATES` (optimized) | `AUTO` (default: XNNPACK delegate) |
//! |---|---|---|---|
//! | conv, depthwise, int8 | `Requant::new` + [`quant::conv_output_multipliers`] | same | `Requant::float32` + [`quant::xnnpack_scales`] |
//! | conv, depthwise, uint8 | `Requant::new` + [`quant::legacy_output_multiplier`] | same | `Requant::float32` (*) |
//! | fully connected, per-tensor | `Requant::double` + [`quant::fc_reference_scales`] | `Requant::new` + `legacy_output_multiplier` | `Requant::float32` |
//! | fully connected, per-channel | `Requant::double` | `Requant::fixed_point_ties_up` + `conv_output_multipliers` (ruy's x86 kernels round the final shift's ties up) | `Requant::float32` |
//! | mean over H,W | [`mean::mean_hw_i8`] | same when `keep_dims = false`; not matched for 4D keep-dims | [`mean::mean_hw_with`] `Xnnpack` |
//! | quantize f32→8-bit | [`quantize::quantize_f32_to_i8`] | [`quantize::quantize_f32_with`] `ReciprocalTiesEven` | same as optimized |
//! | requantize 8→8 | [`quantize::requantize`] | same except uint8→int8 (not matched) | int8→int8: [`quantize::requantize_xnnpack`]; int8→uint8: `requantize`; uint8→int8 not matched |
//! | dequantize | [`dequantize::dequantize_i8`] | not matched | same as reference |
//! | add, pools, concat, pad, softmax, reshape | one kernel | same | same |
//!
//! (*) XNNPACK declines some uint8 depthwise convs (dilated ones, and a few others); those
//! run the builtin kernels, i.e. `Requant::new`. Softmax tables must be built with the host
//! `expf` ([`softmax::SoftmaxLut::with_exp`] with `f32::exp`) to match the interpreter.
//!
//! ## Kernels (one op per module)
//! | op | int8 | uint8 | f32 |
//! |---|---|---|---|
//! | Conv2D / Conv1D (1×N) | [`conv2d::conv2d_i8`] | [`conv2d::conv2d_u8`] | [`conv2d::conv2d_f32`] |
//! | DepthwiseConv2D | [`depthwise_conv2d::depthwise_conv2d_i8`] | `_u8` | `_f32` |
//! | FullyConnected | [`fully_connected::fully_connected_i8`] | `_u8` | `_f32` |
//! | FullyConnected, pruned weights (bitmask / delta compressed) | [`sparse_fully_connected::sparse_fully_connected_i8`] | | |
//! | Conv2D, pruned filters (same compression) | [`sparse_conv2d::sparse_conv2d_i8`] | | |
//! | MaxPool2D | [`max_pool2d::max_pool2d_i8`] | `_u8` | `_f32` |
//! | AveragePool2D | [`average_pool2d::average_pool2d_i8`] | `_u8` | `_f32` |
//! | Mean over H,W | [`mean::mean_hw_i8`] | `_u8` | `_f32` |
//! | Concatenation | [`concatenation::concatenation_requant`] | same | [`concatenation::concatenation`] |
//! | Add (broadcast) | [`add::add_i8`] | `_u8` | `_f32` |
//! | Reshape | [`reshape::reshape`] (generic) | | |
//! | Pad | [`pad::pad`] (generic) | | |
//! | Softmax | [`softmax::softmax_i8`] | `_u8` | `_f32` |
//! | Quantize | [`quantize::quantize_f32_to_i8`], [`quantize::requantize`] | `_u8` | |
//! | Dequantize | [`dequantize::dequantize_i8`] | `_u8` | |
//!
//! The 16×8 scheme (int16 activations, int8 weights, int64 biases) has its own module,
//! [`s16`], one op per file: `conv2d_s16`, `depthwise_conv2d_s16`, `fully_connected_s16`,
//! `max_pool2d_s16`, `average_pool2d_s16`, `mean_hw_s16`, `add_s16`, `softmax_s16`,
//! `concatenation_s16`, `quantize_f32_to_s16`, `requantize_s16`, `dequantize_s16`
//! (reshape is the generic [`reshape::reshape`]).
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod add;
pub mod average_pool2d;
pub mod concatenation;
pub mod conv2d;
#[cfg(target_arch = "x86_64")]
mod conv2d_x86;
pub mod depthwise_conv2d;
pub mod dequantize;
pub mod error;
pub mod fmath;
pub mod fully_connected;
pub mod half;
pub mod hybrid;
pub mod max_pool2d;
pub mod mean;
pub mod pad;
pub mod padding;
pub mod pool;
pub mod quant;
pub mod quantize;
pub mod reshape;
pub mod s16;
pub mod softmax;
pub mod sparse_conv2d;
pub mod sparse_fully_connected;
pub mod tensor;
pub mod window;

pub use conv2d::{ActivationF32, QuantParams};
pub use error::KernelError;
pub use padding::{AxisGeometry, PaddingKind, axis_geometry};
pub use pool::PoolParams;
pub use quant::{FusedActivation, Requant};
pub use tensor::{DType, Quant8, Shape4, TensorMut, TensorRef};
pub use window::ConvParams;
