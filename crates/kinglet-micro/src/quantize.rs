//! Quantize (TFLite `QUANTIZE`): f32 → int8/uint8 as `round(x / scale) + zero_point` (single
//! precision division, ties away from zero, clamped); int8 ↔ uint8 (or same-type) requantise
//! with `multiply_by_quantized_multiplier(q − in_zp) + out_zp` where the multiplier comes from
//! `in_scale / out_scale` ([`requantize_multiplier`]).

use crate::error::{KernelError, check_len, ensure_param};
use crate::fmath::{round_f32, round_half_even_f32};
use crate::quant::{check_shift, multiply_by_quantized_multiplier, quantize_multiplier};
use crate::tensor::Quant8;

/// How float→8-bit quantisation rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum QuantizeRounding {
    /// `round(x / scale)`, ties away from zero: TFLite reference kernels and TFLite Micro.
    #[default]
    DivideTiesAway,
    /// `rint(x · (1 / scale))`, ties to even: the interpreter's optimized kernels and XNNPACK.
    ReciprocalTiesEven,
}

pub(crate) fn quantize_q8<T: Quant8>(
    rounding: QuantizeRounding,
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [T],
) -> Result<(), KernelError> {
    check_len("quantize output", output.len(), input.len())?;
    ensure_param(
        scale > 0.0 && scale.is_finite(),
        "quantize: scale must be positive",
    )?;
    let inverse = 1.0f32 / scale;
    for (o, &x) in output.iter_mut().zip(input) {
        let r = match rounding {
            QuantizeRounding::DivideTiesAway => round_f32(x / scale),
            QuantizeRounding::ReciprocalTiesEven => round_half_even_f32(x * inverse),
        };
        *o = T::from_i32_saturating((r as i32).saturating_add(zero_point));
    }
    Ok(())
}

/// f32 → int8 or uint8 with an explicit rounding convention.
pub fn quantize_f32_with<T: Quant8>(
    rounding: QuantizeRounding,
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [T],
) -> Result<(), KernelError> {
    quantize_q8(rounding, input, scale, zero_point, output)
}

/// f32 → int8 (reference rounding).
pub fn quantize_f32_to_i8(
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [i8],
) -> Result<(), KernelError> {
    quantize_q8(
        QuantizeRounding::DivideTiesAway,
        input,
        scale,
        zero_point,
        output,
    )
}

/// f32 → uint8 (reference rounding).
pub fn quantize_f32_to_u8(
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [u8],
) -> Result<(), KernelError> {
    quantize_q8(
        QuantizeRounding::DivideTiesAway,
        input,
        scale,
        zero_point,
        output,
    )
}

/// Multiplier and shift for requantising from `in_scale` to `out_scale` (TFLite computes the
/// ratio in double precision from the single-precision scales).
pub fn requantize_multiplier(in_scale: f32, out_scale: f32) -> Result<(i32, i32), KernelError> {
    quantize_multiplier(in_scale as f64 / out_scale as f64)
}

/// Parameters of an 8-bit → 8-bit requantisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequantizeParams {
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// From [`requantize_multiplier`].
    pub multiplier: i32,
    /// From [`requantize_multiplier`].
    pub shift: i32,
}

/// Requantises between any two 8-bit types (int8 → uint8, uint8 → int8, or same type).
pub fn requantize<A: Quant8, B: Quant8>(
    p: &RequantizeParams,
    input: &[A],
    output: &mut [B],
) -> Result<(), KernelError> {
    check_len("requantize output", output.len(), input.len())?;
    check_shift(p.shift)?;
    for (o, &q) in output.iter_mut().zip(input) {
        let v = multiply_by_quantized_multiplier(
            q.to_i32() - p.input_zero_point,
            p.multiplier,
            p.shift,
        )
        .saturating_add(p.output_zero_point);
        *o = B::from_i32_saturating(v);
    }
    Ok(())
}

/// XNNPACK's 8-bit → same-type requantisation (what the interpreter's default configuration
/// runs for int8→int8 `QUANTIZE`): a Q8 multiplier `rint(256 · (s_in / s_out))` and
/// `((q − zp_in) · m + 256·zp_out + 128) >> 8` (rounding half up), clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XnnpackRequantize {
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q8 multiplier from [`XnnpackRequantize::new`].
    pub multiplier: i32,
}

impl XnnpackRequantize {
    /// Derives the Q8 multiplier; XNNPACK accepts scale ratios in `[1/256, 128]`.
    pub fn new(
        in_scale: f32,
        in_zero_point: i32,
        out_scale: f32,
        out_zero_point: i32,
    ) -> Result<Self, KernelError> {
        let ratio = in_scale / out_scale;
        ensure_param(
            (1.0 / 256.0..=128.0).contains(&ratio),
            "requantize: XNNPACK needs in_scale/out_scale within [1/256, 128]",
        )?;
        ensure_param(
            (-256..=256).contains(&in_zero_point) && (-256..=256).contains(&out_zero_point),
            "requantize: zero points outside -256..=256",
        )?;
        Ok(XnnpackRequantize {
            input_zero_point: in_zero_point,
            output_zero_point: out_zero_point,
            multiplier: round_half_even_f32(ratio * 256.0) as i32,
        })
    }
}

/// Requantises with [`XnnpackRequantize`] semantics (same or different 8-bit types).
pub fn requantize_xnnpack<A: Quant8, B: Quant8>(
    p: &XnnpackRequantize,
    input: &[A],
    output: &mut [B],
) -> Result<(), KernelError> {
    check_len("requantize output", output.len(), input.len())?;
    ensure_param(
        (0..=32768).contains(&p.multiplier),
        "requantize: Q8 multiplier outside 0..=32768",
    )?;
    let bias = (p.output_zero_point << 8) + 128;
    for (o, &q) in output.iter_mut().zip(input) {
        let v = ((q.to_i32() - p.input_zero_point) * p.multiplier + bias) >> 8;
        *o = B::from_i32_saturating(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizes_with_ties_away_from_zero() {
        let mut out = [0i8; 6];
        quantize_f32_to_i8(&[0.25, -0.25, 0.75, 100.0, -100.0, 0.0], 0.5, 1, &mut out).unwrap();
        assert_eq!(out, [2, 0, 3, 127, -128, 1]);
        let mut out = [0u8; 3];
        quantize_f32_to_u8(&[-1.0, 0.5, 1000.0], 1.0, 128, &mut out).unwrap();
        assert_eq!(out, [127, 129, 255]);
        assert!(quantize_f32_to_u8(&[0.0; 3], 0.0, 0, &mut out).is_err());
    }

    #[test]
    fn int8_uint8_roundtrip_same_scale() {
        let (m, s) = requantize_multiplier(0.05, 0.05).unwrap();
        let p = RequantizeParams {
            input_zero_point: -3,
            output_zero_point: 125,
            multiplier: m,
            shift: s,
        };
        let input: [i8; 4] = [-128, -3, 0, 127];
        let mut out = [0u8; 4];
        requantize(&p, &input, &mut out).unwrap();
        assert_eq!(out, [0, 125, 128, 255]);
        let (m, s) = requantize_multiplier(0.1, 0.2).unwrap();
        let p = RequantizeParams {
            input_zero_point: 0,
            output_zero_point: 0,
            multiplier: m,
            shift: s,
        };
        let mut out = [0i8; 4];
        requantize(&p, &[-3i8, -1, 1, 3], &mut out).unwrap();
        // x/2 through MultiplyByQuantizedMultiplier: multiplier 0.5 is exact (2^30, shift 0),
        // so only the high-mul rounds, and it sends negative ties toward zero.
        assert_eq!(out, [-1, 0, 1, 2]);
    }
}
