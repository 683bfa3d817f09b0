//! Depthwise 2D convolution, NHWC input, filter `[1, kh, kw, in_c · depth_multiplier]`.
//! Output channel `ic · depth_multiplier + m` sees only input channel `ic`.
//! Quantised arithmetic as TFLite `reference_integer_ops::DepthwiseConvPerChannel` (int8) and
//! `reference_ops::DepthwiseConv` (legacy uint8); see [`crate::conv2d`].

use crate::conv2d::{ActivationF32, QuantParams};
use crate::error::{KernelError, check_len, ensure_param, ensure_shape};
use crate::tensor::{Quant8, TensorMut, TensorRef};
use crate::window::{ConvParams, tap_range};

/// Window geometry plus channel multiplier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DepthwiseParams {
    /// Stride, dilation, padding.
    pub conv: ConvParams,
    /// Output channels per input channel (>= 1).
    pub depth_multiplier: usize,
}

pub(crate) fn check_shapes<A, B, C, D>(
    p: &DepthwiseParams,
    input: &TensorRef<'_, A>,
    filter: &TensorRef<'_, B>,
    bias: Option<&[D]>,
    output: &TensorMut<'_, C>,
) -> Result<(), KernelError> {
    p.conv.check()?;
    ensure_param(p.depth_multiplier >= 1, "depth_multiplier must be >= 1")?;
    input.check("depthwise_conv2d input")?;
    filter.check("depthwise_conv2d filter")?;
    output.check("depthwise_conv2d output")?;
    ensure_shape(
        filter.shape.n == 1,
        "depthwise_conv2d: filter batch must be 1",
    )?;
    ensure_shape(
        input.shape.c.checked_mul(p.depth_multiplier) == Some(output.shape.c),
        "depthwise_conv2d: output channels != input channels * depth_multiplier",
    )?;
    ensure_shape(
        filter.shape.c == output.shape.c,
        "depthwise_conv2d: filter channels != output channels",
    )?;
    ensure_shape(
        output.shape.n == input.shape.n,
        "depthwise_conv2d: output batch != input batch",
    )?;
    if let Some(b) = bias {
        check_len("depthwise_conv2d bias", b.len(), output.shape.c)?;
    }
    Ok(())
}

/// Int8 depthwise conv (per-channel symmetric weights).
pub fn depthwise_conv2d_i8(
    params: &DepthwiseParams,
    quant: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    depthwise_q8(params, quant, input, filter, bias, output)
}

/// Legacy uint8 depthwise conv.
pub fn depthwise_conv2d_u8(
    params: &DepthwiseParams,
    quant: &QuantParams<'_>,
    input: TensorRef<'_, u8>,
    filter: TensorRef<'_, u8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, u8>,
) -> Result<(), KernelError> {
    depthwise_q8(params, quant, input, filter, bias, output)
}

fn depthwise_q8<T: Quant8>(
    p: &DepthwiseParams,
    q: &QuantParams<'_>,
    input: TensorRef<'_, T>,
    filter: TensorRef<'_, T>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    check_shapes(p, &input, &filter, bias, &output)?;
    q.check::<T>(output.shape.c)?;
    let c = &p.conv;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let dm = p.depth_multiplier;
    if oc == 0 || output.data.is_empty() {
        return Ok(());
    }
    let mut out_pixels = output.data.chunks_exact_mut(oc);
    for b in 0..input.shape.n {
        let image = &input.data[b * ih * iw * ic..(b + 1) * ih * iw * ic];
        for oy in 0..oh {
            let y0 = (oy * c.stride_h) as isize - c.pad_top as isize;
            let (ky_lo, ky_hi) = tap_range(y0, kh, c.dilation_h, ih);
            for ox in 0..ow {
                let x0 = (ox * c.stride_w) as isize - c.pad_left as isize;
                let (kx_lo, kx_hi) = tap_range(x0, kw, c.dilation_w, iw);
                let Some(out_px) = out_pixels.next() else {
                    return Ok(());
                };
                for (o, out_v) in out_px.iter_mut().enumerate() {
                    let ch = o / dm;
                    let mut acc = bias.map_or(0, |b| b[o]);
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * c.dilation_h) as isize) as usize;
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + (kx * c.dilation_w) as isize) as usize;
                            let x = image[(iy * iw + ix) * ic + ch].to_i32() + q.input_offset;
                            let f = filter.data[(ky * kw + kx) * oc + o].to_i32() + q.filter_offset;
                            acc = acc.wrapping_add(f * x);
                        }
                    }
                    *out_v = q.finish(acc, o);
                }
            }
        }
    }
    Ok(())
}

/// Float depthwise conv.
pub fn depthwise_conv2d_f32(
    p: &DepthwiseParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, f32>,
    bias: Option<&[f32]>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_shapes(p, &input, &filter, bias, &output)?;
    depthwise_fold(
        p,
        &input,
        &filter,
        output,
        0.0f32,
        |acc, f, x| acc + x * f,
        |acc, o| act.apply(bias.map_or(acc, |b| acc + b[o])),
    );
    Ok(())
}

/// The reference depthwise loop, shared by kernels whose accumulators differ (f32, and the
/// int64 of the 16×8 scheme): `mac` folds every in-bounds tap `(filter, input)` into `zero`,
/// then `finish(acc, out_channel)` gives the output. Shapes must have passed `check_shapes`.
#[inline(always)]
pub(crate) fn depthwise_fold<X: Copy, F: Copy, O, A: Copy>(
    p: &DepthwiseParams,
    input: &TensorRef<'_, X>,
    filter: &TensorRef<'_, F>,
    output: TensorMut<'_, O>,
    zero: A,
    mac: impl Fn(A, F, X) -> A,
    finish: impl Fn(A, usize) -> O,
) {
    let c = &p.conv;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let dm = p.depth_multiplier;
    if oc == 0 || output.data.is_empty() {
        return;
    }
    let mut out_pixels = output.data.chunks_exact_mut(oc);
    for b in 0..input.shape.n {
        let image = &input.data[b * ih * iw * ic..(b + 1) * ih * iw * ic];
        for oy in 0..oh {
            let y0 = (oy * c.stride_h) as isize - c.pad_top as isize;
            let (ky_lo, ky_hi) = tap_range(y0, kh, c.dilation_h, ih);
            for ox in 0..ow {
                let x0 = (ox * c.stride_w) as isize - c.pad_left as isize;
                let (kx_lo, kx_hi) = tap_range(x0, kw, c.dilation_w, iw);
                let Some(out_px) = out_pixels.next() else {
                    return;
                };
                for (o, out_v) in out_px.iter_mut().enumerate() {
                    let ch = o / dm;
                    let mut acc = zero;
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * c.dilation_h) as isize) as usize;
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + (kx * c.dilation_w) as isize) as usize;
                            acc = mac(
                                acc,
                                filter.data[(ky * kw + kx) * oc + o],
                                image[(iy * iw + ix) * ic + ch],
                            );
                        }
                    }
                    *out_v = finish(acc, o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Requant, quantize_multiplier};
    use crate::tensor::Shape4;

    #[test]
    fn depth_multiplier_two_hand_checked() {
        // Input [1,1,2,2]: pixels (1,10) and (2,20); 1x2 filter with dm=2 → 4 output
        // channels; VALID → one output pixel. Channel o uses input channel o/2.
        let x = [1i8, 10, 2, 20];
        // filter [1,1,2,4]: tap 0 weights then tap 1 weights.
        let f = [1i8, 2, 3, 4, 1, 1, 1, 1];
        let (m, s) = quantize_multiplier(1.0).unwrap();
        let (ms, ss) = ([m], [s]);
        let q = QuantParams {
            input_offset: 0,
            filter_offset: 0,
            output_offset: 0,
            requant: Requant::new(&ms, &ss),
            act_min: -128,
            act_max: 127,
        };
        let p = DepthwiseParams {
            conv: ConvParams::unit(),
            depth_multiplier: 2,
        };
        let mut out = [0i8; 4];
        depthwise_conv2d_i8(
            &p,
            &q,
            TensorRef::new(&x, Shape4::new(1, 1, 2, 2)),
            TensorRef::new(&f, Shape4::new(1, 1, 2, 4)),
            Some(&[0, 0, 0, 100]),
            TensorMut::new(&mut out, Shape4::new(1, 1, 1, 4)),
        )
        .unwrap();
        // o0: 1*1 + 2*1 = 3; o1: 1*2 + 2*1 = 4; o2: 10*3 + 20*1 = 50; o3: 10*4 + 20 + 100 → 127.
        assert_eq!(out, [3, 4, 50, 127]);
        let bad = DepthwiseParams {
            depth_multiplier: 3,
            ..p
        };
        assert!(
            depthwise_conv2d_i8(
                &bad,
                &q,
                TensorRef::new(&x, Shape4::new(1, 1, 2, 2)),
                TensorRef::new(&f, Shape4::new(1, 1, 2, 4)),
                None,
                TensorMut::new(&mut out, Shape4::new(1, 1, 1, 4)),
            )
            .is_err()
        );
    }
}
