//! 16×8 Quantize: f32 → int16 (TFLite `AffineQuantize`, the rounding of the chosen kernel set)
//! and int16 → int16 requantisation (TFLite `Requantize`: the 32-bit
//! `MultiplyByQuantizedMultiplier` of `in_scale / out_scale`).

use crate::error::KernelError;
use crate::quantize::{QuantizeRounding, RequantizeParams, quantize_q8, requantize};

/// f32 → int16.
pub fn quantize_f32_to_s16(
    rounding: QuantizeRounding,
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [i16],
) -> Result<(), KernelError> {
    quantize_q8(rounding, input, scale, zero_point, output)
}

/// int16 → int16 with new parameters (e.g. a softmax result joining a concatenation).
pub fn requantize_s16(
    p: &RequantizeParams,
    input: &[i16],
    output: &mut [i16],
) -> Result<(), KernelError> {
    requantize(p, input, output)
}
