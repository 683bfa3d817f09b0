//! Fixed-point requantisation exactly as the TFLite interpreter does it (the default
//! double-rounding path of `tensorflow/lite/kernels/internal/common.h`, not
//! `TFLITE_SINGLE_ROUNDING`). Shift convention throughout: positive = left shift,
//! negative = right shift, as returned by [`quantize_multiplier`].

use crate::error::KernelError;
use crate::fmath::{round_f32, round_f64, round_half_even_f32};

/// Splits a real multiplier into a Q31 fixed-point value and a power-of-two exponent so that
/// `real ≈ multiplier · 2^(shift − 31)` (TFLite `QuantizeMultiplier`: `frexp`, then round half
/// away from zero; a mantissa that rounds up to 2^31 is halved; multipliers below ~2^-31
/// flush to zero). Errors on NaN or infinity.
pub fn quantize_multiplier(real: f64) -> Result<(i32, i32), KernelError> {
    if !real.is_finite() {
        return Err(KernelError::InvalidParam {
            what: "quantize_multiplier: multiplier is not finite",
        });
    }
    if real == 0.0 {
        return Ok((0, 0));
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = round_f64(q * 2_147_483_648.0) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    Ok((q_fixed as i32, shift))
}

/// `frexp`: `x = m · 2^e` with `0.5 <= |m| < 1`. `x` must be finite and non-zero.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * 18_014_398_509_481_984.0); // 2^54
        return (m, e - 54);
    }
    let e = exp_bits - 1022;
    let m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (m, e)
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a·b / 2^31)` with ties away from zero,
/// saturating the single overflow case `i32::MIN · i32::MIN`.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Integer division truncates toward zero, as in C.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: arithmetic right shift rounding to nearest, ties away from
/// zero. `exponent` must be in `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// TFLite `MultiplyByQuantizedMultiplier` (double rounding). `shift` must be in `-31..=30`
/// (kernels check this up front via [`check_shift`]). The left shift wraps as TFLite's `int32`
/// multiply does on every platform it runs on.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left), multiplier),
        right,
    )
}

/// [`multiply_by_quantized_multiplier`] with the final right shift rounding ties toward +∞
/// (ruy's x86 kernels). Same preconditions.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_ties_up(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    let high = saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left), multiplier);
    if right == 0 {
        high
    } else {
        ((high as i64 + (1i64 << (right - 1))) >> right) as i32
    }
}

/// Validates a shift for [`multiply_by_quantized_multiplier`].
pub fn check_shift(shift: i32) -> Result<(), KernelError> {
    if (-31..=30).contains(&shift) {
        Ok(())
    } else {
        Err(KernelError::InvalidParam {
            what: "requantisation shift outside -31..=30",
        })
    }
}

/// Output requantisation of an accumulator, per tensor (slices of length 1) or per output
/// channel.
#[derive(Clone, Copy, Debug)]
pub enum Requant<'a> {
    /// Fixed point: [`multiply_by_quantized_multiplier`] with (multiplier, shift) pairs from
    /// [`quantize_multiplier`]. What TFLite's conv/depthwise kernels (reference and optimized),
    /// its optimized fully-connected kernels and TFLite Micro compute.
    FixedPoint {
        /// Q31 multipliers.
        multipliers: &'a [i32],
        /// Shifts (positive = left).
        shifts: &'a [i32],
    },
    /// Like [`Requant::FixedPoint`] (same multipliers and shifts), but the final right shift
    /// rounds ties toward +∞ (`(x + 2^(r−1)) >> r`), as ruy's x86 kernels do: what the
    /// interpreter's optimized builtin kernels (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`) compute
    /// for int8 per-channel fully-connected layers on x86-64.
    FixedPointTiesUp {
        /// Q31 multipliers.
        multipliers: &'a [i32],
        /// Shifts (positive = left).
        shifts: &'a [i32],
    },
    /// `round(acc · scale)` in double precision, ties away from zero. What the TFLite
    /// interpreter's *reference* fully-connected kernel (`BUILTIN_REF`) computes since it
    /// switched to float requantisation; scales from [`fc_reference_scales`].
    Double {
        /// Effective output scales `s_in · s_w / s_out`.
        scales: &'a [f64],
    },
    /// `round_half_even((float)acc · scale)` in single precision: XNNPACK's "fp32"
    /// requantisation, which the interpreter's default configuration (XNNPACK delegate)
    /// runs for conv, depthwise conv and fully connected; scales from [`xnnpack_scales`].
    Float32 {
        /// Effective output scales `(s_in · s_w) / s_out` in single precision.
        scales: &'a [f32],
    },
}

impl<'a> Requant<'a> {
    /// Fixed-point requantisation from slices of equal length (1 or out_channels).
    pub const fn new(multipliers: &'a [i32], shifts: &'a [i32]) -> Self {
        Requant::FixedPoint {
            multipliers,
            shifts,
        }
    }

    /// Fixed-point requantisation whose final shift rounds ties up (see
    /// [`Requant::FixedPointTiesUp`]).
    pub const fn fixed_point_ties_up(multipliers: &'a [i32], shifts: &'a [i32]) -> Self {
        Requant::FixedPointTiesUp {
            multipliers,
            shifts,
        }
    }

    /// Double-precision requantisation (TFLite reference fully-connected semantics).
    pub const fn double(scales: &'a [f64]) -> Self {
        Requant::Double { scales }
    }

    /// Single-precision, round-half-even requantisation (XNNPACK semantics).
    pub const fn float32(scales: &'a [f32]) -> Self {
        Requant::Float32 { scales }
    }

    /// Checks lengths (1 or `channels`) and shift ranges / finiteness.
    pub fn check(&self, channels: usize) -> Result<(), KernelError> {
        let bad_len = KernelError::InvalidParam {
            what: "requantisation needs 1 or out_channels parameters (and as many shifts)",
        };
        match self {
            Requant::FixedPoint {
                multipliers,
                shifts,
            }
            | Requant::FixedPointTiesUp {
                multipliers,
                shifts,
            } => {
                if multipliers.len() != shifts.len()
                    || (multipliers.len() != 1 && multipliers.len() != channels)
                {
                    return Err(bad_len);
                }
                shifts.iter().try_for_each(|&s| check_shift(s))
            }
            Requant::Double { scales } => {
                if scales.len() != 1 && scales.len() != channels {
                    return Err(bad_len);
                }
                if scales.iter().all(|s| s.is_finite()) {
                    Ok(())
                } else {
                    Err(KernelError::InvalidParam {
                        what: "requantisation scale is not finite",
                    })
                }
            }
            Requant::Float32 { scales } => {
                if scales.len() != 1 && scales.len() != channels {
                    return Err(bad_len);
                }
                if scales.iter().all(|s| s.is_finite()) {
                    Ok(())
                } else {
                    Err(KernelError::InvalidParam {
                        what: "requantisation scale is not finite",
                    })
                }
            }
        }
    }

    /// Requantises accumulator `acc` of channel `ch`; valid after [`Requant::check`].
    #[inline(always)]
    pub fn apply(&self, acc: i32, ch: usize) -> i32 {
        match self {
            Requant::FixedPoint {
                multipliers,
                shifts,
            } => {
                let i = if multipliers.len() == 1 { 0 } else { ch };
                multiply_by_quantized_multiplier(acc, multipliers[i], shifts[i])
            }
            Requant::FixedPointTiesUp {
                multipliers,
                shifts,
            } => {
                let i = if multipliers.len() == 1 { 0 } else { ch };
                multiply_by_quantized_multiplier_ties_up(acc, multipliers[i], shifts[i])
            }
            Requant::Double { scales } => {
                let i = if scales.len() == 1 { 0 } else { ch };
                round_f64(acc as f64 * scales[i]) as i32
            }
            Requant::Float32 { scales } => {
                let i = if scales.len() == 1 { 0 } else { ch };
                round_half_even_f32(acc as f32 * scales[i]) as i32
            }
        }
    }
}

/// Effective scales for [`Requant::Float32`]: `(s_in · s_w_c) / s_out` in single precision, as
/// XNNPACK computes them when the TFLite delegate creates its operators.
pub fn xnnpack_scales(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    scales: &mut [f32],
) -> Result<(), KernelError> {
    if filter_scales.len() != 1 && filter_scales.len() != scales.len() {
        return Err(KernelError::InvalidParam {
            what: "xnnpack_scales: slice lengths disagree",
        });
    }
    for (i, s) in scales.iter_mut().enumerate() {
        let fs = if filter_scales.len() == 1 {
            filter_scales[0]
        } else {
            filter_scales[i]
        };
        *s = input_scale * fs / output_scale;
    }
    Ok(())
}

/// Effective scales for [`Requant::Double`]: `(double)s_in · (double)s_w_c / (double)s_out`.
pub fn fc_reference_scales(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    scales: &mut [f64],
) -> Result<(), KernelError> {
    if filter_scales.len() != 1 && filter_scales.len() != scales.len() {
        return Err(KernelError::InvalidParam {
            what: "fc_reference_scales: slice lengths disagree",
        });
    }
    for (i, s) in scales.iter_mut().enumerate() {
        let fs = if filter_scales.len() == 1 {
            filter_scales[0]
        } else {
            filter_scales[i]
        };
        *s = input_scale as f64 * fs as f64 / output_scale as f64;
    }
    Ok(())
}

/// Activation fused into an op's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FusedActivation {
    /// No clamp beyond the type's range.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `min(max(x, -1), 1)`.
    ReluN1To1,
}

/// Quantised clamp range of a fused activation for an output with `scale`/`zero_point` and
/// storage range `[qmin, qmax]` (TFLite `CalculateActivationRangeQuantized`: bounds quantised
/// in single precision, rounded half away from zero).
pub fn activation_range_quantized(
    act: FusedActivation,
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
) -> (i32, i32) {
    let q = |f: f32| zero_point.saturating_add(round_f32(f / scale) as i32);
    match act {
        FusedActivation::None => (qmin, qmax),
        FusedActivation::Relu => (qmin.max(q(0.0)), qmax),
        FusedActivation::Relu6 => (qmin.max(q(0.0)), qmax.min(q(6.0))),
        FusedActivation::ReluN1To1 => (qmin.max(q(-1.0)), qmax.min(q(1.0))),
    }
}

/// Float clamp range of a fused activation.
pub fn activation_range_f32(act: FusedActivation) -> (f32, f32) {
    match act {
        FusedActivation::None => (f32::MIN, f32::MAX),
        FusedActivation::Relu => (0.0, f32::MAX),
        FusedActivation::Relu6 => (0.0, 6.0),
        FusedActivation::ReluN1To1 => (-1.0, 1.0),
    }
}

/// Per-output-channel requantisation of an int8 conv / depthwise conv / per-channel
/// fully-connected layer, as the TFLite interpreter derives it
/// (`PopulateConvolutionQuantizationParams`): `real_c = (double)input_scale ·
/// (double)filter_scale_c / (double)output_scale`, then [`quantize_multiplier`].
/// `filter_scales` has length 1 (per-tensor) or `multipliers.len()`.
pub fn conv_output_multipliers(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    multipliers: &mut [i32],
    shifts: &mut [i32],
) -> Result<(), KernelError> {
    if multipliers.len() != shifts.len()
        || (filter_scales.len() != 1 && filter_scales.len() != multipliers.len())
    {
        return Err(KernelError::InvalidParam {
            what: "conv_output_multipliers: slice lengths disagree",
        });
    }
    for (i, (m, s)) in multipliers.iter_mut().zip(shifts.iter_mut()).enumerate() {
        let fs = if filter_scales.len() == 1 {
            filter_scales[0]
        } else {
            filter_scales[i]
        };
        let real = input_scale as f64 * fs as f64 / output_scale as f64;
        let (qm, qs) = quantize_multiplier(real)?;
        *m = qm;
        *s = qs;
    }
    Ok(())
}

/// Per-tensor requantisation as TFLite's `GetQuantizedConvolutionMultipler`, used for legacy
/// uint8 conv / depthwise conv and for every per-tensor fully-connected layer (int8 and
/// uint8): the scale product is rounded to single precision *before* the division in double
/// (`(double)(input_scale * filter_scale) / (double)output_scale`).
pub fn legacy_output_multiplier(
    input_scale: f32,
    filter_scale: f32,
    output_scale: f32,
) -> Result<(i32, i32), KernelError> {
    quantize_multiplier((input_scale * filter_scale) as f64 / output_scale as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_srdhm(a: i32, b: i32) -> i32 {
        // Independent formulation on i128 with explicit round-half-away-from-zero.
        if a == i32::MIN && b == i32::MIN {
            return i32::MAX;
        }
        let p = a as i128 * b as i128 * 2;
        let d = 1i128 << 32;
        let q = if p >= 0 {
            (p + d / 2) / d
        } else {
            -((-p + d / 2 - 1) / d)
        };
        q as i32
    }

    #[test]
    fn srdhm_edge_cases() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(saturating_rounding_doubling_high_mul(0, 12345), 0);
        // +0.5 rounds up; gemmlowp's negative nudge (1 - 2^30) sends -0.5 toward zero.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        let mut s = 0x1234_5678u32;
        for _ in 0..10_000 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let a = s as i32;
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let b = s as i32;
            let expect = reference_srdhm(a, b);
            // gemmlowp rounds negative ties toward zero (nudge 1 - 2^30); the i128 reference
            // above rounds them away from zero, so they may differ exactly on ties only.
            let got = saturating_rounding_doubling_high_mul(a, b);
            let p = a as i128 * b as i128;
            let is_tie = p % (1i128 << 31) == -(1i128 << 30);
            if !is_tie {
                assert_eq!(got, expect, "a={a} b={b}");
            }
        }
    }

    #[test]
    fn rounding_divide_by_pot_ties_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 → 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 → -3
        assert_eq!(rounding_divide_by_pot(3, 1), 2); // 1.5 → 2
        assert_eq!(rounding_divide_by_pot(-3, 1), -2); // -1.5 → -2
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 → -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1); // -0.5 → -1
        assert_eq!(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
    }

    #[test]
    fn quantize_multiplier_cases() {
        assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
        assert_eq!(quantize_multiplier(0.5).unwrap(), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0).unwrap(), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.25).unwrap(), (1 << 30, -1));
        assert_eq!(quantize_multiplier(-0.5).unwrap(), (-(1 << 30), 0));
        // Mantissa rounding up to 2^31 is renormalised.
        let just_below_one = 1.0 - 1e-12;
        assert_eq!(quantize_multiplier(just_below_one).unwrap(), (1 << 30, 1));
        // Tiny multipliers flush to zero.
        assert_eq!(quantize_multiplier(1e-12).unwrap(), (0, 0));
        assert_eq!(
            quantize_multiplier(f64::MIN_POSITIVE / 4.0).unwrap(),
            (0, 0)
        );
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(f64::INFINITY).is_err());
        // 0.0012345 = 0.632064 * 2^-9
        let (m, s) = quantize_multiplier(0.0012345).unwrap();
        assert_eq!(s, -9);
        assert_eq!(m, (0.0012345f64 * 512.0 * 2_147_483_648.0).round() as i32);
        // Round trip is accurate to the Q31 resolution.
        for &r in &[1e-6, 0.003, 0.3, 0.7, 1.7, 123.25] {
            let (m, s) = quantize_multiplier(r).unwrap();
            let back = m as f64 * 2f64.powi(s - 31);
            assert!((back - r).abs() <= r * 1e-9, "{r} -> {back}");
        }
    }

    #[test]
    fn multiply_by_quantized_multiplier_matches_real_math() {
        // With multiplier 0.5 exactly (2^30, shift 0): x/2 rounded half away from zero,
        // through two rounding steps.
        assert_eq!(multiply_by_quantized_multiplier(3, 1 << 30, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier(-3, 1 << 30, 0), -1); // SRDHM tie toward 0
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, 1), 100);
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, -2), 13); // 12.5 → 13
        assert_eq!(multiply_by_quantized_multiplier(-100, 1 << 30, -2), -13);
        // Left shifts wrap like int32 arithmetic.
        assert_eq!(
            multiply_by_quantized_multiplier(1 << 19, 1 << 30, 12),
            saturating_rounding_doubling_high_mul(i32::MIN, 1 << 30)
        );
        // Against f64 math within 1 LSB over many values.
        let mut s = 99u32;
        for _ in 0..5_000 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let x = (s >> 8) as i32 - (1 << 23);
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let real = (s >> 8) as f64 / (1u64 << 24) as f64 * 0.01 + 1e-6;
            let (m, sh) = quantize_multiplier(real).unwrap();
            let got = multiply_by_quantized_multiplier(x, m, sh);
            let exact = x as f64 * real;
            assert!((got as f64 - exact).abs() <= 1.0, "x={x} real={real}");
        }
    }

    #[test]
    fn activation_ranges() {
        assert_eq!(
            activation_range_quantized(FusedActivation::None, 0.1, -3, -128, 127),
            (-128, 127)
        );
        assert_eq!(
            activation_range_quantized(FusedActivation::Relu, 0.1, -3, -128, 127),
            (-3, 127)
        );
        assert_eq!(
            activation_range_quantized(FusedActivation::Relu6, 0.1, -3, -128, 127),
            (-3, 57)
        );
        assert_eq!(
            activation_range_quantized(FusedActivation::Relu6, 0.01, 0, 0, 255),
            (0, 255)
        );
        assert_eq!(
            activation_range_quantized(FusedActivation::ReluN1To1, 0.5, 10, 0, 255),
            (8, 12)
        );
    }

    #[test]
    fn ties_up_differs_from_gemmlowp_only_on_negative_ties() {
        // 0.5 exactly (2^30, shift 0) then a right shift by 2: -10 → high-mul -5 → -1.25 → -1
        // either way; -12 → -6 → -1.5: gemmlowp gives -2, ties up gives -1.
        assert_eq!(multiply_by_quantized_multiplier(-12, 1 << 30, -2), -2);
        assert_eq!(
            multiply_by_quantized_multiplier_ties_up(-12, 1 << 30, -2),
            -1
        );
        assert_eq!(multiply_by_quantized_multiplier_ties_up(12, 1 << 30, -2), 2);
        assert_eq!(
            multiply_by_quantized_multiplier_ties_up(-10, 1 << 30, -2),
            -1
        );
        assert_eq!(multiply_by_quantized_multiplier_ties_up(7, 1 << 30, 1), 7);
        let (m, s) = ([1 << 30], [-2]);
        assert_eq!(Requant::fixed_point_ties_up(&m, &s).apply(-12, 0), -1);
    }

    #[test]
    fn requant_checks() {
        let m = [1 << 30, 1 << 30];
        let s = [0, -3];
        assert!(Requant::new(&m, &s).check(2).is_ok());
        assert!(Requant::new(&m[..1], &s[..1]).check(7).is_ok());
        assert!(Requant::new(&m, &s).check(3).is_err());
        assert!(Requant::new(&m, &[0, 31]).check(2).is_err());
        assert!(Requant::new(&m, &[0, -32]).check(2).is_err());
    }
}
