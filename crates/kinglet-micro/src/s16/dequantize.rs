//! 16×8 Dequantize: int16 → f32 as `scale · (q − zero_point)` in double, rounded once.

use crate::dequantize::dequantize_q8;
use crate::error::KernelError;

/// int16 → f32.
pub fn dequantize_s16(
    input: &[i16],
    scale: f32,
    zero_point: i32,
    output: &mut [f32],
) -> Result<(), KernelError> {
    dequantize_q8(input, scale, zero_point, output)
}
