//! Kernels of TFLite's 16×8 scheme (`a16w8`): int16 activations (symmetric, zero point 0,
//! per tensor), int8 weights (symmetric, per output channel), int64 biases. The arithmetic
//! is that of TFLite's reference int16 kernels, so outputs match the interpreter bit for bit
//! (checked against `ai-edge-litert` in `tests/a16w8_goldens.rs`).
//!
//! Conv, depthwise conv and fully connected accumulate in int64 and requantise with the
//! 64-bit `MultiplyByQuantizedMultiplier` ([`multiply_by_quantized_multiplier_i64`]), which
//! rounds the Q31 multiplier to Q15 first. Pools, concatenation, reshape, quantize and
//! dequantize are the width-independent 8-bit kernels instantiated for `i16`; add, mean and
//! softmax have their own int16 arithmetic.

pub mod add;
pub mod average_pool2d;
pub mod concatenation;
pub mod conv2d;
pub mod depthwise_conv2d;
pub mod dequantize;
pub mod fully_connected;
pub mod max_pool2d;
pub mod mean;
pub mod quantize;
pub mod softmax;

use crate::error::{KernelError, ensure_param};

/// TFLite's `MultiplyByQuantizedMultiplier(int64_t x, int32_t multiplier, int shift)`: the
/// Q31 multiplier is reduced to Q15 (rounded), then `x · m15` is shifted right by
/// `15 − shift` rounding half up. `shift` must be in `-31..=7` ([`check_shift_i64`]); the
/// arithmetic wraps where TFLite's would overflow (only for accumulators beyond ±2^47, which
/// TFLite excludes).
#[inline(always)]
pub fn multiply_by_quantized_multiplier_i64(x: i64, multiplier: i32, shift: i32) -> i32 {
    let reduced = if multiplier < 0x7FFF_0000 {
        (multiplier + (1 << 15)) >> 16
    } else {
        0x7FFF
    };
    let total_shift = 15 - shift;
    let rounded = x
        .wrapping_mul(i64::from(reduced))
        .wrapping_add(1i64 << (total_shift - 1));
    (rounded >> total_shift) as i32
}

/// Validates a shift for [`multiply_by_quantized_multiplier_i64`].
pub fn check_shift_i64(shift: i32) -> Result<(), KernelError> {
    ensure_param(
        (-31..=7).contains(&shift),
        "int16 requantisation shift outside -31..=7",
    )
}

/// Requantisation of a 16×8 conv, depthwise conv or fully connected op: one multiplier and
/// shift per output channel (or one in total), and the clamp of the fused activation. Input
/// and output zero points are 0 in this scheme, so there are no offsets.
#[derive(Clone, Copy, Debug)]
pub struct Quant16<'a> {
    /// Q31 multipliers from [`crate::quant::conv_output_multipliers`].
    pub multipliers: &'a [i32],
    /// Shifts (positive = left).
    pub shifts: &'a [i32],
    /// Lower clamp in output units.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

impl Quant16<'_> {
    pub(crate) fn check(&self, channels: usize) -> Result<(), KernelError> {
        ensure_param(
            self.multipliers.len() == self.shifts.len()
                && (self.multipliers.len() == 1 || self.multipliers.len() == channels),
            "int16 requantisation needs 1 or out_channels multipliers (and as many shifts)",
        )?;
        ensure_param(
            self.act_min <= self.act_max
                && self.act_min >= i32::from(i16::MIN)
                && self.act_max <= i32::from(i16::MAX),
            "activation range must satisfy -32768 <= act_min <= act_max <= 32767",
        )?;
        self.shifts.iter().try_for_each(|&s| check_shift_i64(s))
    }

    /// Adds the bias, requantises and clamps one accumulator of channel `ch`.
    #[inline(always)]
    pub(crate) fn finish(&self, acc: i64, bias: Option<&[i64]>, ch: usize) -> i16 {
        let acc = bias.map_or(acc, |b| acc.wrapping_add(b[ch]));
        let i = if self.multipliers.len() == 1 { 0 } else { ch };
        multiply_by_quantized_multiplier_i64(acc, self.multipliers[i], self.shifts[i])
            .clamp(self.act_min, self.act_max) as i16
    }
}

/// `acc + f · x`, the multiply-accumulate of every 16×8 kernel.
#[inline(always)]
pub(crate) fn mac(acc: i64, f: i8, x: i16) -> i64 {
    acc.wrapping_add(i64::from(i32::from(f) * i32::from(x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_is_reduced_to_q15_and_rounds_half_up() {
        // 0.5 = 2^30 · 2^-31: reduced to 2^14, so x · 0.5 rounded half up.
        assert_eq!(multiply_by_quantized_multiplier_i64(3, 1 << 30, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier_i64(-3, 1 << 30, 0), -1);
        // A multiplier at the top saturates to 0x7FFF instead of overflowing to 2^15.
        assert_eq!(
            multiply_by_quantized_multiplier_i64(1 << 20, i32::MAX, 0),
            (((1i64 << 20) * 0x7FFF + (1 << 14)) >> 15) as i32
        );
        // Left shifts up to 7 widen the range: 1000 · 0.5 · 2^3.
        assert_eq!(multiply_by_quantized_multiplier_i64(1000, 1 << 30, 3), 4000);
        assert!(check_shift_i64(8).is_err() && check_shift_i64(-31).is_ok());
    }
}
