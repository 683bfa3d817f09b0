//! Softmax over the innermost dimension.
//!
//! The 8-bit kernels reproduce what the TFLite interpreter runs on x86/ARM32 for int8→int8
//! and uint8→uint8 (`optimized_ops::Softmax` with a 256-entry float table, built at prepare
//! time as `table[255 − v] = expf(−input_scale · beta · v)`): per row, `max` of the raw
//! values, `sum = Σ table[255 − max + x]` in float, `inv = 1 / (sum · output_scale)`, then
//! `q = round(table[...] · inv) + output_zero_point` (int8: ties away from zero; uint8:
//! `(int)(p + 0.5)`), clamped.

use crate::error::{KernelError, check_len, ensure_param};
use crate::fmath::{expf, round_f32};
use crate::tensor::Quant8;

/// Exponential table of the quantised softmax (1 KiB; build once per op).
#[derive(Clone, Debug)]
pub struct SoftmaxLut {
    table: [f32; 256],
}

impl SoftmaxLut {
    /// Builds the table with this crate's `expf` (correctly rounded except on rare near-ties).
    pub fn new(input_scale: f32, beta: f32) -> Self {
        Self::with_exp(input_scale, beta, expf)
    }

    /// Builds the table with a caller-supplied `expf`. Host code matching the TFLite
    /// interpreter bit for bit passes `f32::exp` (the platform libm `expf` TFLite also calls).
    pub fn with_exp(input_scale: f32, beta: f32, exp: impl Fn(f32) -> f32) -> Self {
        let scale = -input_scale * beta;
        let mut table = [0.0f32; 256];
        for (v, slot) in table.iter_mut().rev().enumerate() {
            *slot = exp(scale * v as f32);
        }
        SoftmaxLut { table }
    }

    /// Builds from a precomputed table (e.g. emitted by code generation).
    pub const fn from_table(table: [f32; 256]) -> Self {
        SoftmaxLut { table }
    }

    /// The table: `table[255 − v] = exp(−input_scale · beta · v)`.
    pub const fn table(&self) -> &[f32; 256] {
        &self.table
    }
}

/// Output quantisation of an 8-bit softmax (TFLite fixes int8 to scale 1/256, zero point −128
/// and uint8 to 1/256, 0, but any values work).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxQuant {
    /// Output scale.
    pub output_scale: f32,
    /// Output zero point.
    pub output_zero_point: i32,
}

fn check_rows(len_in: usize, len_out: usize, depth: usize) -> Result<(), KernelError> {
    check_len("softmax output", len_out, len_in)?;
    ensure_param(
        depth > 0 && len_in.is_multiple_of(depth),
        "softmax: depth must divide the element count",
    )
}

fn softmax_q8<T: Quant8>(
    lut: &SoftmaxLut,
    q: &SoftmaxQuant,
    input: &[T],
    output: &mut [T],
    depth: usize,
    quantize: impl Fn(f32) -> i32,
) -> Result<(), KernelError> {
    check_rows(input.len(), output.len(), depth)?;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().map(|v| v.to_i32()).fold(T::MIN, i32::max);
        // Index of table entry for value v: 255 - max + v, always within 0..=255 because
        // v ∈ [max − 255, max] for 8-bit values.
        let idx = |v: T| (255 - max + v.to_i32()) as usize & 0xff;
        let mut sum = 0.0f32;
        for &v in x {
            sum += lut.table[idx(v)];
        }
        let inv = 1.0f32 / (sum * q.output_scale);
        for (o, &v) in y.iter_mut().zip(x) {
            let p = lut.table[idx(v)] * inv;
            *o = T::from_i32_saturating(quantize(p).saturating_add(q.output_zero_point));
        }
    }
    Ok(())
}

/// Int8 softmax over rows of `depth` elements.
pub fn softmax_i8(
    lut: &SoftmaxLut,
    q: &SoftmaxQuant,
    input: &[i8],
    output: &mut [i8],
    depth: usize,
) -> Result<(), KernelError> {
    softmax_q8(lut, q, input, output, depth, |p| round_f32(p) as i32)
}

/// Uint8 softmax over rows of `depth` elements.
pub fn softmax_u8(
    lut: &SoftmaxLut,
    q: &SoftmaxQuant,
    input: &[u8],
    output: &mut [u8],
    depth: usize,
) -> Result<(), KernelError> {
    softmax_q8(lut, q, input, output, depth, |p| (p + 0.5) as i32)
}

/// Float softmax over rows of `depth` elements: `exp(beta·(x − max)) / Σ`.
pub fn softmax_f32(
    beta: f32,
    input: &[f32],
    output: &mut [f32],
    depth: usize,
) -> Result<(), KernelError> {
    check_rows(input.len(), output.len(), depth)?;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = expf((v - max) * beta);
            sum += *o;
        }
        let inv = 1.0 / sum;
        for o in y.iter_mut() {
            *o *= inv;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_softmax_uniform_and_peaked() {
        let lut = SoftmaxLut::with_exp(0.1, 1.0, f32::exp);
        let q = SoftmaxQuant {
            output_scale: 1.0 / 256.0,
            output_zero_point: -128,
        };
        let mut out = [0i8; 4];
        softmax_i8(&lut, &q, &[5, 5, 5, 5], &mut out, 4).unwrap();
        assert_eq!(out, [-64; 4]); // 0.25 · 256 − 128
        softmax_i8(&lut, &q, &[127, -128, -128, -128], &mut out, 4).unwrap();
        // exp(-25.5) is ~8e-12: the winner takes 1.0 → 256 − 128 = 128, clamped to 127.
        assert_eq!(out, [127, -128, -128, -128]);
        assert!(softmax_i8(&lut, &q, &[0; 4], &mut out, 3).is_err());
    }

    #[test]
    fn uint8_softmax_matches_float_within_one() {
        let scale = 0.05f32;
        let lut = SoftmaxLut::new(scale, 1.0);
        let q = SoftmaxQuant {
            output_scale: 1.0 / 256.0,
            output_zero_point: 0,
        };
        let input: [u8; 6] = [10, 200, 37, 255, 0, 128];
        let mut out = [0u8; 6];
        softmax_u8(&lut, &q, &input, &mut out, 6).unwrap();
        let real: [f32; 6] = input.map(|v| v as f32 * scale);
        let mut probs = [0.0f32; 6];
        softmax_f32(1.0, &real, &mut probs, 6).unwrap();
        for (o, p) in out.iter().zip(probs) {
            assert!((*o as f32 - (p * 256.0).min(255.0)).abs() <= 1.0);
        }
    }

    #[test]
    fn float_softmax_sums_to_one() {
        let mut out = [0.0f32; 3];
        softmax_f32(1.0, &[1.0, 2.0, 3.0], &mut out, 3).unwrap();
        let s: f32 = out.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!((out[2] - 0.665_240_9).abs() < 1e-6);
    }
}
