//! Float kernels whose weights are IEEE half floats (`u16` bits), for float16 models on a
//! target without heap: the weights stay half-size in flash and each one is widened as it is
//! read. Accumulation order equals the f32 kernels', so results are bit-identical to running
//! those kernels on the widened weights (which is what TFLite does after its DEQUANTIZE).

use crate::conv2d::{ActivationF32, check_conv_shapes};
use crate::depthwise_conv2d::{DepthwiseParams, check_shapes};
use crate::error::KernelError;
use crate::fully_connected::FcShape;
use crate::tensor::{TensorMut, TensorRef};
use crate::window::{ConvParams, tap_range};

/// IEEE half-precision bits to f32 (exact: every half value is an f32 value).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let mant = u32::from(bits & 0x3ff);
    let out = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal m·2^-24: move the top set bit to the implicit position.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((m << shift) & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(out)
}

/// [`crate::conv2d::conv2d_f32`] with OHWI half-float filter bits.
pub fn conv2d_f16w(
    p: &ConvParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, u16>,
    bias: Option<&[f32]>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_conv_shapes(p, &input, &filter, bias, &output)?;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let filter_len = kh * kw * ic;
    if oc == 0 || output.data.is_empty() {
        return Ok(());
    }
    let mut out_pixels = output.data.chunks_exact_mut(oc);
    for b in 0..input.shape.n {
        let image = &input.data[b * ih * iw * ic..(b + 1) * ih * iw * ic];
        for oy in 0..oh {
            let y0 = (oy * p.stride_h) as isize - p.pad_top as isize;
            let (ky_lo, ky_hi) = tap_range(y0, kh, p.dilation_h, ih);
            for ox in 0..ow {
                let x0 = (ox * p.stride_w) as isize - p.pad_left as isize;
                let (kx_lo, kx_hi) = tap_range(x0, kw, p.dilation_w, iw);
                let Some(out_px) = out_pixels.next() else {
                    return Ok(());
                };
                let filters = filter.data.chunks_exact(filter_len.max(1));
                for (o, (out_v, f_o)) in out_px.iter_mut().zip(filters).enumerate() {
                    let mut acc = 0.0f32;
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                        let row = &image[iy * iw * ic..(iy + 1) * iw * ic];
                        let f_row = &f_o[ky * kw * ic..(ky + 1) * kw * ic];
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                            let taps = f_row[kx * ic..(kx + 1) * ic].iter();
                            for (&f, &x) in taps.zip(&row[ix * ic..(ix + 1) * ic]) {
                                acc += f16_to_f32(f) * x;
                            }
                        }
                    }
                    if let Some(b) = bias {
                        acc += b[o];
                    }
                    *out_v = act.apply(acc);
                }
            }
        }
    }
    Ok(())
}

/// [`crate::depthwise_conv2d::depthwise_conv2d_f32`] with `[1, h, w, out]` half-float
/// filter bits.
pub fn depthwise_conv2d_f16w(
    p: &DepthwiseParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, u16>,
    bias: Option<&[f32]>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_shapes(p, &input, &filter, bias, &output)?;
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
                    let mut acc = 0.0f32;
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * c.dilation_h) as isize) as usize;
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + (kx * c.dilation_w) as isize) as usize;
                            acc += image[(iy * iw + ix) * ic + ch]
                                * f16_to_f32(filter.data[(ky * kw + kx) * oc + o]);
                        }
                    }
                    if let Some(b) = bias {
                        acc += b[o];
                    }
                    *out_v = act.apply(acc);
                }
            }
        }
    }
    Ok(())
}

/// [`crate::fully_connected::fully_connected_f32`] with `[out, in]` half-float weight bits.
pub fn fully_connected_f16w(
    s: FcShape,
    act: ActivationF32,
    input: &[f32],
    weights: &[u16],
    bias: Option<&[f32]>,
    output: &mut [f32],
) -> Result<(), KernelError> {
    s.check(input, weights, bias, output)?;
    if s.out_features == 0 {
        return Ok(());
    }
    for (b_idx, out_row) in output.chunks_exact_mut(s.out_features).enumerate() {
        let x = &input[b_idx * s.in_features..(b_idx + 1) * s.in_features];
        for (o, out_v) in out_row.iter_mut().enumerate() {
            let w = &weights[o * s.in_features..(o + 1) * s.in_features];
            let mut acc = 0.0f32;
            for (&wi, &xi) in w.iter().zip(x) {
                acc += f16_to_f32(wi) * xi;
            }
            if let Some(b) = bias {
                acc += b[o];
            }
            *out_v = act.apply(acc);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    /// Deterministic half-float bits of moderate magnitude (|v| < 2), and their f32 values.
    fn halves(n: usize, seed: u32) -> ([u16; 64], [f32; 64]) {
        let (mut bits, mut vals) = ([0u16; 64], [0f32; 64]);
        let mut s = seed;
        for i in 0..n {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Sign, exponent 0..15 (up to 2^0), random mantissa; includes subnormals.
            let b =
                (((s >> 31) as u16) << 15) | (((s >> 16) as u16 & 0xf) << 10) | (s as u16 & 0x3ff);
            bits[i] = b;
            vals[i] = f16_to_f32(b);
        }
        (bits, vals)
    }

    #[test]
    fn widening_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc100), -2.5);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn kernels_equal_the_f32_kernels_on_widened_weights() {
        let (_, x) = halves(18, 1);
        let (wb, wv) = halves(36, 7);
        let bias = [0.25f32, -0.5, 0.125, 1.0];
        let p = ConvParams {
            stride_h: 1,
            stride_w: 2,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        let act = ActivationF32::NONE;
        let is = Shape4::new(1, 3, 3, 2);
        // Conv2D: 4 filters of 2×2×2 taps (32 weights).
        let fs = Shape4::new(4, 2, 2, 2);
        let os = Shape4::new(1, 3, 2, 4);
        let (mut a, mut b) = ([0f32; 24], [0f32; 24]);
        conv2d_f16w(
            &p,
            act,
            TensorRef::new(&x[..18], is),
            TensorRef::new(&wb[..32], fs),
            Some(&bias),
            TensorMut::new(&mut a, os),
        )
        .unwrap();
        crate::conv2d::conv2d_f32(
            &p,
            act,
            TensorRef::new(&x[..18], is),
            TensorRef::new(&wv[..32], fs),
            Some(&bias),
            TensorMut::new(&mut b, os),
        )
        .unwrap();
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        // Depthwise, multiplier 2: filter [1, 2, 2, 4].
        let dp = DepthwiseParams {
            conv: p,
            depth_multiplier: 2,
        };
        let dfs = Shape4::new(1, 2, 2, 4);
        depthwise_conv2d_f16w(
            &dp,
            act,
            TensorRef::new(&x[..18], is),
            TensorRef::new(&wb[..16], dfs),
            Some(&bias),
            TensorMut::new(&mut a, os),
        )
        .unwrap();
        crate::depthwise_conv2d::depthwise_conv2d_f32(
            &dp,
            act,
            TensorRef::new(&x[..18], is),
            TensorRef::new(&wv[..16], dfs),
            Some(&bias),
            TensorMut::new(&mut b, os),
        )
        .unwrap();
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        // Fully connected: 2 batches × 9 inputs → 4 outputs.
        let s = FcShape {
            batches: 2,
            in_features: 9,
            out_features: 4,
        };
        let (mut fa, mut fb) = ([0f32; 8], [0f32; 8]);
        fully_connected_f16w(s, act, &x[..18], &wb[..36], Some(&bias), &mut fa).unwrap();
        crate::fully_connected::fully_connected_f32(
            s,
            act,
            &x[..18],
            &wv[..36],
            Some(&bias),
            &mut fb,
        )
        .unwrap();
        assert_eq!(fa.map(f32::to_bits), fb.map(f32::to_bits));
        // Shape errors are reported, not panics.
        assert!(fully_connected_f16w(s, act, &x[..17], &wb[..36], None, &mut fa).is_err());
    }
}
