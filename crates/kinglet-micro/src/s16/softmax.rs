//! 16×8 Softmax (TFLite `reference_ops::SoftmaxInt16`): the row's differences to its maximum
//! are rescaled so that `[-65535, 0]` spans `[-10, 0]`, looked up in an interpolated 513-entry
//! `exp` table, summed in Q16.15, inverted with a `1 / (1 + x)` table and multiplied back.
//! Output scale 1/32768, zero point 0 (what TFLite requires).

use crate::error::{KernelError, check_len, ensure_param};
use crate::fmath::round_f64;
use crate::quant::{check_shift, multiply_by_quantized_multiplier, quantize_multiplier};

/// Entries of an int16 lookup table: 512 intervals and the end point for the last slope.
pub const LUT_LEN: usize = 513;

/// The tables and input rescaling of an int16 softmax (2 KiB; build once per op).
#[derive(Clone, Debug)]
pub struct SoftmaxS16 {
    /// `exp(x)` on `[-10, 0]`, Q0.15.
    pub exp_lut: [i16; LUT_LEN],
    /// `1 / (1 + x)` on `[0, 1]`, Q0.15.
    pub one_over_one_plus_x_lut: [i16; LUT_LEN],
    /// Q31 multiplier of `input_scale · beta / (10 / 65535)`.
    pub input_multiplier: i32,
    /// Its shift (positive = left).
    pub input_left_shift: i32,
}

impl SoftmaxS16 {
    /// Builds the tables with a caller-supplied double `exp` (the host's `f64::exp`, as
    /// TFLite calls `std::exp`) and the input rescaling for `input_scale` and `beta`.
    pub fn with_exp(
        input_scale: f32,
        beta: f32,
        exp: impl Fn(f64) -> f64,
    ) -> Result<Self, KernelError> {
        let mut exp_lut = [0i16; LUT_LEN];
        let mut one_over_one_plus_x_lut = [0i16; LUT_LEN];
        gen_lut(&exp, -10.0, 0.0, &mut exp_lut);
        gen_lut(&|x| 1.0 / (1.0 + x), 0.0, 1.0, &mut one_over_one_plus_x_lut);
        let rescale = f64::from(input_scale) * f64::from(beta) / (10.0 / 65535.0);
        let (input_multiplier, input_left_shift) = quantize_multiplier(rescale)?;
        check_shift(input_left_shift)?;
        Ok(SoftmaxS16 {
            exp_lut,
            one_over_one_plus_x_lut,
            input_multiplier,
            input_left_shift,
        })
    }
}

/// TFLite's `gen_lut<double, int16_t, int16_t>` with output range `[-1, 1]`: each of the 512
/// samples is biased by half the error that linear interpolation would make at the interval's
/// midpoint; entry 512 holds `func(max)` for the last slope.
fn gen_lut(func: &impl Fn(f64) -> f64, min: f64, max: f64, lut: &mut [i16; LUT_LEN]) {
    let steps = LUT_LEN - 1;
    let step = (max - min) / steps as f64;
    let half_step = step / 2.0;
    let scaling = 65536.0 / 2.0;
    let clamp = |v: f64| v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    for (i, slot) in lut.iter_mut().take(steps).enumerate() {
        let x = min + i as f64 * step;
        let val = func(x);
        let val_midpoint = func(x + half_step);
        let val_next = func(min + (i + 1) as f64 * step);
        let sample = round_f64(val * scaling);
        let midpoint_interp = round_f64((val_next * scaling + round_f64(val * scaling)) / 2.0);
        let midpoint = round_f64(val_midpoint * scaling);
        let bias = round_f64((midpoint_interp - midpoint) / 2.0);
        *slot = clamp(sample - bias);
    }
    lut[steps] = clamp(round_f64(func(max) * scaling));
}

/// TFLite's `lut_lookup_with_interpolation` for int16 input: entry `256 + (v >> 7)` plus the
/// slope times the low 7 bits.
#[inline(always)]
fn lut_lookup(value: i16, lut: &[i16; LUT_LEN]) -> i16 {
    let index = (256 + (i32::from(value) >> 7)) as usize;
    let offset = i32::from(value) & 0x7f;
    let base = i32::from(lut[index]);
    let slope = i32::from(lut[index + 1]) - base;
    let delta = (slope * offset + 64) >> 7;
    (base + delta) as i16
}

/// int16 softmax over rows of `depth` elements.
pub fn softmax_s16(
    p: &SoftmaxS16,
    input: &[i16],
    output: &mut [i16],
    depth: usize,
) -> Result<(), KernelError> {
    check_len("softmax output", output.len(), input.len())?;
    ensure_param(
        depth > 0 && input.len().is_multiple_of(depth),
        "softmax: depth must divide the element count",
    )?;
    check_shift(p.input_left_shift)?;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().fold(i16::MIN, i16::max);
        // The exp values go to the output first; the sum is complete only after the row.
        let mut sum: i32 = 0;
        for (o, &v) in y.iter_mut().zip(x) {
            let diff = i32::from(v) - i32::from(max);
            let scaled =
                multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
            let sym = scaled.saturating_add(32767).clamp(-32768, 32767) as i16;
            *o = lut_lookup(sym, &p.exp_lut);
            sum = sum.wrapping_add(i32::from(*o));
        }
        // exp(0) is in every row, so the sum is at least 32767 and has headroom below 32.
        let headroom_plus_one = (sum as u32).leading_zeros() as i32;
        if !(1..=31).contains(&headroom_plus_one) {
            return Err(KernelError::InvalidParam {
                what: "softmax: int16 sum of exponentials out of range",
            });
        }
        let shifted = (((i64::from(sum)) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
        let sym_shifted = (shifted as i32).wrapping_add(-((1 << 15) + (1 << 16)));
        let reciprocal = i64::from(lut_lookup(
            sym_shifted.clamp(-32768, 32767) as i16,
            &p.one_over_one_plus_x_lut,
        ));
        let right_shift = 31 - headroom_plus_one;
        let round = if right_shift > 0 {
            1i64 << (right_shift - 1)
        } else {
            0
        };
        for o in y.iter_mut() {
            let r = ((i64::from(*o) * reciprocal + round) >> right_shift) as i32;
            *o = r.clamp(0, 32767) as i16;
        }
    }
    Ok(())
}
