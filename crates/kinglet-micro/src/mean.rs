//! Mean over the spatial axes (H and W) of an NHWC tensor: global average pooling, TFLite
//! `MEAN` with axes `[1, 2]`. Output holds `n · c` elements (shape `[n,1,1,c]` or `[n,c]`).

use crate::error::{KernelError, check_len, ensure_param};
use crate::fmath::round_half_even_f32;
use crate::quant::{check_shift, multiply_by_quantized_multiplier, quantize_multiplier};
use crate::tensor::{Quant8, TensorRef};

/// Quantisation of input and output of an 8-bit mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanQuant {
    /// Input scale.
    pub input_scale: f32,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output scale.
    pub output_scale: f32,
    /// Output zero point.
    pub output_zero_point: i32,
}

fn check(input: &TensorRef<'_, impl Copy>, out_len: usize) -> Result<(), KernelError> {
    input.check("mean input")?;
    check_len("mean output", out_len, input.shape.n * input.shape.c)?;
    ensure_param(
        input.shape.h * input.shape.w > 0,
        "mean: spatial size must be non-zero",
    )
}

/// 8-bit spatial mean as the TFLite interpreter's `QuantizedMeanOrSum`: integer sum per
/// channel; the requantisation `s_in / s_out` ([`quantize_multiplier`]) absorbs `1/count`
/// by scaling the multiplier by `2^k / count` (`k = floor(log2 count)`, capped so the shift
/// stays valid) and shifting `k` further right; then
/// `multiply_by_quantized_multiplier(sum − zp_in · count) + zp_out`, clamped.
/// This matches both reference and optimized kernels for `keep_dims = false` and the
/// reference kernels for `keep_dims = true`.
pub(crate) fn mean_q8<T: Quant8>(
    q: &MeanQuant,
    input: TensorRef<'_, T>,
    output: &mut [T],
) -> Result<(), KernelError> {
    check(&input, output.len())?;
    ensure_param(
        q.input_scale > 0.0 && q.output_scale > 0.0,
        "mean: scales must be positive",
    )?;
    let (hw, c) = (input.shape.h * input.shape.w, input.shape.c);
    if c == 0 {
        return Ok(());
    }
    let (multiplier, shift) = quantize_multiplier(q.input_scale as f64 / q.output_scale as f64)?;
    check_shift(shift)?;
    let count = hw as i64;
    let log2 = 63 - (count as u64).leading_zeros() as i32;
    let k = log2.min(32).min(31 + shift);
    let multiplier = (((multiplier as i64) << k) / count) as i32;
    let shift = shift - k;
    let zp_sum = (q.input_zero_point as i64 * count) as i32;
    for (image, out_row) in input
        .data
        .chunks_exact(hw * c)
        .zip(output.chunks_exact_mut(c))
    {
        for (ch, o) in out_row.iter_mut().enumerate() {
            let sum: i32 = image
                .chunks_exact(c)
                .fold(0i32, |acc, px| acc.wrapping_add(px[ch].to_i32()));
            let v = multiply_by_quantized_multiplier(sum.wrapping_sub(zp_sum), multiplier, shift)
                .saturating_add(q.output_zero_point);
            *o = T::from_i32_saturating(v);
        }
    }
    Ok(())
}

/// Which TFLite configuration an 8-bit mean imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MeanVariant {
    /// `QuantizedMeanOrSum` (see [`mean_hw_i8`]): reference kernels, and optimized kernels for
    /// `keep_dims = false`.
    #[default]
    Reference,
    /// XNNPACK (the interpreter's default delegate): `rint(Σx · s + b)` in single precision
    /// with `s = s_in / (s_out · count)` and `b = zp_out − (zp_in · count) · s`.
    Xnnpack,
}

/// 8-bit spatial mean in the given variant.
pub fn mean_hw_with<T: Quant8>(
    variant: MeanVariant,
    q: &MeanQuant,
    input: TensorRef<'_, T>,
    output: &mut [T],
) -> Result<(), KernelError> {
    match variant {
        MeanVariant::Reference => mean_q8(q, input, output),
        MeanVariant::Xnnpack => mean_xnnpack(q, input, output),
    }
}

fn mean_xnnpack<T: Quant8>(
    q: &MeanQuant,
    input: TensorRef<'_, T>,
    output: &mut [T],
) -> Result<(), KernelError> {
    check(&input, output.len())?;
    ensure_param(
        q.input_scale > 0.0 && q.output_scale > 0.0,
        "mean: scales must be positive",
    )?;
    let (hw, c) = (input.shape.h * input.shape.w, input.shape.c);
    if c == 0 {
        return Ok(());
    }
    let count = hw as f32;
    let scale = q.input_scale / (q.output_scale * count);
    let bias = q.output_zero_point as f32 - (q.input_zero_point as f32 * count) * scale;
    for (image, out_row) in input
        .data
        .chunks_exact(hw * c)
        .zip(output.chunks_exact_mut(c))
    {
        for (ch, o) in out_row.iter_mut().enumerate() {
            let sum: i32 = image
                .chunks_exact(c)
                .fold(0i32, |acc, px| acc.wrapping_add(px[ch].to_i32()));
            let v = round_half_even_f32(sum as f32 * scale + bias);
            *o = T::from_i32_saturating(v as i32);
        }
    }
    Ok(())
}

/// Int8 spatial mean.
pub fn mean_hw_i8(
    q: &MeanQuant,
    input: TensorRef<'_, i8>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    mean_q8(q, input, output)
}

/// Uint8 spatial mean.
pub fn mean_hw_u8(
    q: &MeanQuant,
    input: TensorRef<'_, u8>,
    output: &mut [u8],
) -> Result<(), KernelError> {
    mean_q8(q, input, output)
}

/// Float spatial mean (sum in order, divided by the count).
pub fn mean_hw_f32(input: TensorRef<'_, f32>, output: &mut [f32]) -> Result<(), KernelError> {
    check(&input, output.len())?;
    let (hw, c) = (input.shape.h * input.shape.w, input.shape.c);
    if c == 0 {
        return Ok(());
    }
    for (image, out_row) in input
        .data
        .chunks_exact(hw * c)
        .zip(output.chunks_exact_mut(c))
    {
        for (ch, o) in out_row.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for px in image.chunks_exact(c) {
                sum += px[ch];
            }
            *o = sum / hw as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn spatial_mean_rounding_and_rescale() {
        let same = MeanQuant {
            input_scale: 0.1,
            input_zero_point: 0,
            output_scale: 0.1,
            output_zero_point: 0,
        };
        let mut out = [0i8; 2];
        // Channel 0: 1 2 3 4 → 2.5 → 3; channel 1: -1 -2 -3 -4 → -2.5 → -3 (ties away).
        mean_hw_i8(
            &same,
            TensorRef::new(&[1, -1, 2, -2, 3, -3, 4, -4], Shape4::new(1, 2, 2, 2)),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [3, -3]);
        // Halving the output scale doubles the values; zero points shift them.
        let rescale = MeanQuant {
            input_scale: 0.1,
            input_zero_point: 1,
            output_scale: 0.05,
            output_zero_point: -5,
        };
        mean_hw_i8(
            &rescale,
            TensorRef::new(&[1, -1, 2, -2, 3, -3, 4, -4], Shape4::new(1, 2, 2, 2)),
            &mut out,
        )
        .unwrap();
        // (2.5 - 1) * 2 - 5 = -2; (-2.5 - 1) * 2 - 5 = -12.
        assert_eq!(out, [-2, -12]);
        let mut f = [0.0f32; 1];
        mean_hw_f32(
            TensorRef::new(&[1.0, 2.0, 4.0], Shape4::new(1, 1, 3, 1)),
            &mut f,
        )
        .unwrap();
        assert!((f[0] - 7.0 / 3.0).abs() < 1e-6);
        assert!(
            mean_hw_i8(
                &same,
                TensorRef::new(&[1, 2], Shape4::new(1, 1, 2, 1)),
                &mut out
            )
            .is_err()
        );
    }
}
