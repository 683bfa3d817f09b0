//! Hybrid ("dynamic range") kernels: int8 per-channel weights, float activations. Each call
//! quantises the float input per batch to int8, accumulates integer dot products and rescales
//! the sums to float, as TFLite's hybrid CONV_2D, DEPTHWISE_CONV_2D (asymmetric input) and
//! FULLY_CONNECTED (symmetric input, per-tensor weights) reference kernels do, in the same
//! float operation order so results match them bit for bit. The caller supplies the int8
//! scratch buffer (one input's worth), so nothing allocates.

use crate::conv2d::{ActivationF32, check_conv_shapes};
use crate::depthwise_conv2d::{DepthwiseParams, check_shapes};
use crate::error::{KernelError, check_len};
use crate::fmath::{round_f32, round_f64};
use crate::tensor::{TensorMut, TensorRef};
use crate::window::ConvParams;

/// TFLite's `SymmetricQuantizeFloats`: scale `max|x| / 127`, values rounded half away from
/// zero into [-127, 127]; an all-zero row gives zeros and scale 1. Returns the scale.
pub fn quantize_symmetric(values: &[f32], out: &mut [i8]) -> Result<f32, KernelError> {
    check_len("symmetric quantize output", out.len(), values.len())?;
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for &v in values {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    let range = if values.is_empty() {
        0.0
    } else {
        lo.abs().max(hi.abs())
    };
    if range == 0.0 {
        out.fill(0);
        return Ok(1.0);
    }
    let inv = 127.0 / range;
    for (o, &v) in out.iter_mut().zip(values) {
        *o = (round_f32(v * inv) as i32).clamp(-127, 127) as i8;
    }
    Ok(range / 127.0)
}

/// TFLite's `AsymmetricQuantizeFloats`: the range [min(0, lo), max(0, hi)] mapped onto
/// [-128, 127] with a nudged zero point chosen in double precision; values rounded half away
/// from zero. Returns `(scale, zero_point)`; an all-zero row gives zeros, scale 1, offset 0.
pub fn quantize_asymmetric(values: &[f32], out: &mut [i8]) -> Result<(f32, i32), KernelError> {
    check_len("asymmetric quantize output", out.len(), values.len())?;
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in values {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    let (rmin, rmax) = (f64::from(lo), f64::from(hi));
    if rmin == rmax {
        out.fill(0);
        return Ok((1.0, 0));
    }
    let (qmin, qmax) = (-128.0f64, 127.0f64);
    let scale = (rmax - rmin) / (qmax - qmin);
    let from_min = qmin - rmin / scale;
    let from_max = qmax - rmax / scale;
    let from_min_error = qmin.abs() + (rmin / scale).abs();
    let from_max_error = qmax.abs() + (rmax / scale).abs();
    let zero = if from_min_error < from_max_error {
        from_min
    } else {
        from_max
    };
    let zero_point = if zero <= qmin {
        -128
    } else if zero >= qmax {
        127
    } else {
        round_f64(zero) as i32
    };
    let scale = scale as f32;
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(values) {
        *o = (round_f32(zero_point as f32 + v * inv) as i32).clamp(-128, 127) as i8;
    }
    Ok((scale, zero_point))
}

#[allow(clippy::too_many_arguments)]
/// Hybrid Conv2D with per-channel weight scales (`filter_scales.len()` = output channels).
/// `scratch` holds one batch of quantised input (`h·w·c` values).
pub fn conv2d_hybrid(
    p: &ConvParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, i8>,
    filter_scales: &[f32],
    bias: Option<&[f32]>,
    scratch: &mut [i8],
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_conv_shapes(p, &input, &filter, bias, &output)?;
    check_len(
        "hybrid conv2d filter scales",
        filter_scales.len(),
        filter.shape.n,
    )?;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let batch_len = ih * iw * ic;
    check_len("hybrid conv2d scratch", scratch.len(), batch_len)?;
    for b in 0..input.shape.n {
        let (scale, offset) =
            quantize_asymmetric(&input.data[b * batch_len..(b + 1) * batch_len], scratch)?;
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let mut acc = 0i32;
                    for fy in 0..kh {
                        let Some(iy) = (oy * p.stride_h + fy * p.dilation_h).checked_sub(p.pad_top)
                        else {
                            continue;
                        };
                        if iy >= ih {
                            continue;
                        }
                        for fx in 0..kw {
                            let Some(ix) =
                                (ox * p.stride_w + fx * p.dilation_w).checked_sub(p.pad_left)
                            else {
                                continue;
                            };
                            if ix >= iw {
                                continue;
                            }
                            let x = &scratch[(iy * iw + ix) * ic..][..ic];
                            let f = &filter.data[((o * kh + fy) * kw + fx) * ic..][..ic];
                            for (&fv, &xv) in f.iter().zip(x) {
                                acc = acc.wrapping_add(
                                    i32::from(fv).wrapping_mul(i32::from(xv) - offset),
                                );
                            }
                        }
                    }
                    let mut v = acc as f32 * filter_scales[o] * scale;
                    if let Some(bias) = bias {
                        v += bias[o];
                    }
                    output.data[((b * oh + oy) * ow + ox) * oc + o] = act.apply(v);
                }
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// Hybrid DepthwiseConv2D with per-channel weight scales (one per output channel).
pub fn depthwise_conv2d_hybrid(
    p: &DepthwiseParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, i8>,
    filter_scales: &[f32],
    bias: Option<&[f32]>,
    scratch: &mut [i8],
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_shapes(p, &input, &filter, bias, &output)?;
    let c = &p.conv;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    check_len("hybrid depthwise filter scales", filter_scales.len(), oc)?;
    let batch_len = ih * iw * ic;
    check_len("hybrid depthwise scratch", scratch.len(), batch_len)?;
    let m = p.depth_multiplier;
    for b in 0..input.shape.n {
        let (scale, offset) =
            quantize_asymmetric(&input.data[b * batch_len..(b + 1) * batch_len], scratch)?;
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let ch = o / m;
                    let mut acc = 0i32;
                    for fy in 0..kh {
                        let Some(iy) = (oy * c.stride_h + fy * c.dilation_h).checked_sub(c.pad_top)
                        else {
                            continue;
                        };
                        if iy >= ih {
                            continue;
                        }
                        for fx in 0..kw {
                            let Some(ix) =
                                (ox * c.stride_w + fx * c.dilation_w).checked_sub(c.pad_left)
                            else {
                                continue;
                            };
                            if ix >= iw {
                                continue;
                            }
                            let xv = i32::from(scratch[(iy * iw + ix) * ic + ch]);
                            let fv = i32::from(filter.data[(fy * kw + fx) * oc + o]);
                            acc = acc.wrapping_add(fv.wrapping_mul(xv - offset));
                        }
                    }
                    let mut v = acc as f32;
                    v *= filter_scales[o] * scale;
                    if let Some(bias) = bias {
                        v += bias[o];
                    }
                    output.data[((b * oh + oy) * ow + ox) * oc + o] = act.apply(v);
                }
            }
        }
    }
    Ok(())
}

/// Hybrid FullyConnected with one weight scale: `out = bias + dot · (input_scale ·
/// weight_scale)` per batch row, inputs quantised symmetrically. `weights` is `[out, in]`.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_hybrid(
    batches: usize,
    in_features: usize,
    out_features: usize,
    act: ActivationF32,
    input: &[f32],
    weights: &[i8],
    weight_scale: f32,
    bias: Option<&[f32]>,
    scratch: &mut [i8],
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len(
        "hybrid fully connected input",
        input.len(),
        batches * in_features,
    )?;
    check_len(
        "hybrid fully connected weights",
        weights.len(),
        out_features * in_features,
    )?;
    check_len(
        "hybrid fully connected output",
        output.len(),
        batches * out_features,
    )?;
    check_len("hybrid fully connected scratch", scratch.len(), in_features)?;
    if let Some(b) = bias {
        check_len("hybrid fully connected bias", b.len(), out_features)?;
    }
    for b in 0..batches {
        let scale =
            quantize_symmetric(&input[b * in_features..][..in_features], scratch)? * weight_scale;
        for o in 0..out_features {
            let row = &weights[o * in_features..][..in_features];
            let dot = row.iter().zip(scratch.iter()).fold(0i32, |acc, (&w, &x)| {
                acc.wrapping_add(i32::from(w) * i32::from(x))
            });
            let mut v = bias.map_or(0.0, |bias| bias[o]);
            v += dot as f32 * scale;
            output[b * out_features + o] = act.apply(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn symmetric_scales_by_the_largest_magnitude() {
        let mut q = [0i8; 4];
        let s = quantize_symmetric(&[0.5, -2.0, 1.0, 0.0079], &mut q).unwrap();
        assert_eq!(s, 2.0 / 127.0);
        assert_eq!(q, [32, -127, 64, 1]); // 31.75 → 32, 0.50165 → 1
        assert_eq!(quantize_symmetric(&[0.0, 0.0], &mut q[..2]).unwrap(), 1.0);
        assert_eq!(q[..2], [0, 0]);
    }

    #[test]
    fn asymmetric_includes_zero_and_nudges_the_zero_point() {
        let mut q = [0i8; 3];
        // Range [0, 2.55]: scale 0.01, zero point -128.
        let (s, z) = quantize_asymmetric(&[0.0, 1.0, 2.55], &mut q).unwrap();
        assert_eq!((s, z), ((2.55f64 / 255.0) as f32, -128));
        assert_eq!(q, [-128, -28, 127]);
        // Range [-1, 1]: zero point -0.5 rounds away from zero to -1... from the max side
        // 127 - 127.5 = -0.5 as well; either way -1 (C round).
        let (_, z) = quantize_asymmetric(&[-1.0, 1.0, 0.25], &mut q).unwrap();
        assert_eq!(z, -1);
    }

    #[test]
    fn fully_connected_matches_float_closely() {
        let x = [0.3f32, -0.7, 0.1, 0.9];
        let w = [10i8, -20, 30, 127, -127, 5, 0, 64];
        let ws = 0.01;
        let bias = [0.5f32, -0.25];
        let mut scratch = [0i8; 4];
        let mut out = [0f32; 2];
        fully_connected_hybrid(
            1,
            4,
            2,
            ActivationF32::NONE,
            &x,
            &w,
            ws,
            Some(&bias),
            &mut scratch,
            &mut out,
        )
        .unwrap();
        for o in 0..2 {
            let exact: f32 = bias[o]
                + (0..4)
                    .map(|i| x[i] * f32::from(w[o * 4 + i]) * ws)
                    .sum::<f32>();
            assert!((out[o] - exact).abs() < 0.01, "{o}: {} vs {exact}", out[o]);
        }
        // Exactly: the integer dot of the quantised row, rescaled.
        let q = [42i32, -99, 14, 127]; // round(x · 127 / 0.9)
        let dot: i32 = (0..4).map(|i| q[i] * i32::from(w[i])).sum();
        assert_eq!(out[0], 0.5 + dot as f32 * ((0.9f32 / 127.0) * ws));
    }

    #[test]
    fn conv_and_depthwise_agree_with_float_on_a_1x1_filter() {
        // A 1x1 conv with one input channel is a depthwise conv with multiplier = outputs.
        let x = [0.5f32, -1.0, 2.0, 0.0];
        let shape = Shape4::new(1, 2, 2, 1);
        let wc = [64i8, -127, 3];
        let scales = [0.02f32, 0.01, 0.5];
        let bias = [0.1f32, 0.2, 0.3];
        let p = ConvParams {
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let mut scratch = [0i8; 4];
        let mut conv = [0f32; 12];
        conv2d_hybrid(
            &p,
            ActivationF32::NONE,
            TensorRef::new(&x, shape),
            TensorRef::new(&wc, Shape4::new(3, 1, 1, 1)),
            &scales,
            Some(&bias),
            &mut scratch,
            TensorMut::new(&mut conv, Shape4::new(1, 2, 2, 3)),
        )
        .unwrap();
        let mut dw = [0f32; 12];
        depthwise_conv2d_hybrid(
            &DepthwiseParams {
                conv: p,
                depth_multiplier: 3,
            },
            ActivationF32::NONE,
            TensorRef::new(&x, shape),
            TensorRef::new(&wc, Shape4::new(1, 1, 1, 3)),
            &scales,
            Some(&bias),
            &mut scratch,
            TensorMut::new(&mut dw, Shape4::new(1, 2, 2, 3)),
        )
        .unwrap();
        for i in 0..12 {
            let exact = x[i / 3] * f32::from(wc[i % 3]) * scales[i % 3] + bias[i % 3];
            assert!(
                (conv[i] - exact).abs() < 0.02,
                "{i}: {} vs {exact}",
                conv[i]
            );
            assert!((dw[i] - conv[i]).abs() <= 1e-6 * conv[i].abs().max(1.0));
        }
        // Wrong scale count is an error, not a panic.
        assert!(
            conv2d_hybrid(
                &p,
                ActivationF32::NONE,
                TensorRef::new(&x, shape),
                TensorRef::new(&wc, Shape4::new(3, 1, 1, 1)),
                &scales[..2],
                None,
                &mut scratch,
                TensorMut::new(&mut conv, Shape4::new(1, 2, 2, 3)),
            )
            .is_err()
        );
    }
}
