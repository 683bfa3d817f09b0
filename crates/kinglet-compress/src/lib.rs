//! kinglet-compress: turns float graphs into smaller integer graphs.
//!
//! This issue provides full-integer int8 post-training quantisation ([`quantize_int8`]) that
//! follows the TFLite int8 specification and reproduces the TFLite converter's parameters,
//! so models kinglet quantises run unchanged, with identical outputs, in the TFLite
//! interpreter. [`quantize_float16`] stores weights as half floats (no calibration).
//! Calibration chooses activation ranges by min/max (the converter's choice),
//! percentile or an MSE-optimal clipping search ([`Calibration`]). [`quantize_a16w8`] is
//! TFLite's 16×8 scheme (int16 activations, int8 weights) on the same machinery.

pub mod a16w8;
pub mod bitwidth;
pub mod calibrate;
pub mod dynamic;
pub mod error;
pub mod float16;
pub mod nested;
pub mod params;
pub mod ptq;
pub mod recorded;
pub mod subbyte;

pub use a16w8::quantize_a16w8;
pub use calibrate::Calibration;
pub use dynamic::{DynamicConfig, quantize_dynamic};
pub use error::CompressError;
pub use float16::{f32_to_f16, quantize_float16};
pub use ptq::{
    CalibrationSample, DEFAULT_LOGIT_CLIP, PTQ_METADATA, PtqConfig, PtqResult, centre_logits,
    observe, quantize_int8,
};
pub use recorded::{quantize_int8_with_recorded_ranges, recorded_ranges};
