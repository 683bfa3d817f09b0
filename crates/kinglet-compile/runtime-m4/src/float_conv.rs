//! Float 2D convolution for cores with a single-precision FPU (Cortex-M4F): the filter is
//! transposed to `[kh][kw][in_ch][out_ch]` at compile time, so each input value is loaded once
//! per tap and multiplied into up to sixteen output channels held in registers. Every output still
//! sums its products in kinglet-micro `conv2d_f32`'s order (filter rows top to bottom, taps
//! and input channels in memory order, then the bias), so results are bit-identical to it.

use kinglet_micro::ConvParams;

use crate::ShapeError;

/// A float convolution's shapes and constants.
pub struct ConvF32<'a> {
    pub geometry: ConvParams,
    /// Input N, H, W, C.
    pub input: [usize; 4],
    /// Output N, H, W, C.
    pub output: [usize; 4],
    /// Filter height and width.
    pub kernel: [usize; 2],
    /// Filter in `[kh][kw][in_ch][out_ch]` order ([`transpose_filter`]).
    pub filter: &'a [f32],
    pub bias: Option<&'a [f32]>,
    /// Fused activation clamp (min, max).
    pub act: [f32; 2],
}

/// `[out_ch][taps]` (TFLite OHWI, taps = kh·kw·in_ch) → `[taps][out_ch]`.
pub fn transpose_filter<T: Copy>(
    filter: &[T],
    out_ch: usize,
    dst: &mut [T],
) -> Result<(), ShapeError> {
    if out_ch == 0 || !filter.len().is_multiple_of(out_ch) || dst.len() != filter.len() {
        return Err(ShapeError);
    }
    let taps = filter.len() / out_ch;
    for (o, row) in filter.chunks_exact(taps).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            dst[t * out_ch + o] = v;
        }
    }
    Ok(())
}

/// Taps `[lo, hi)` of a window of `k` taps at `origin` with `dilation` inside `0..size`
/// (kinglet-micro's rule).
fn tap_range(origin: isize, k: usize, dilation: usize, size: usize) -> (usize, usize) {
    let d = dilation as isize;
    let lo = if origin >= 0 {
        0
    } else {
        ((-origin + d - 1) / d) as usize
    };
    let rem = size as isize - origin;
    let hi = if rem <= 0 {
        0
    } else {
        (((rem + d - 1) / d) as usize).min(k)
    };
    (lo.min(hi), hi)
}

/// `std::min(std::max(v, min), max)` as kinglet-micro's `ActivationF32::apply`.
#[inline(always)]
fn clamp(v: f32, act: [f32; 2]) -> f32 {
    let v = if v < act[0] { act[0] } else { v };
    if act[1] < v { act[1] } else { v }
}

/// The convolution of `input` into `output` (NHWC, f32). Horizontal dilation must be 1
/// (each filter row then reads one contiguous run of the image); other shapes take
/// kinglet-micro's kernel.
pub fn conv2d_f32(c: &ConvF32, input: &[f32], output: &mut [f32]) -> Result<(), ShapeError> {
    let [n, ih, iw, ic] = c.input;
    let [on, oh, ow, oc] = c.output;
    let [kh, kw] = c.kernel;
    let g = &c.geometry;
    let taps = kh * kw * ic;
    if on != n
        || input.len() != n * ih * iw * ic
        || output.len() != n * oh * ow * oc
        || c.filter.len() != taps * oc
        || c.bias.is_some_and(|b| b.len() != oc)
        || g.dilation_h == 0
        || g.dilation_w != 1
    {
        return Err(ShapeError);
    }
    if oc == 0 {
        return Ok(());
    }
    for b in 0..n {
        let image = &input[b * ih * iw * ic..(b + 1) * ih * iw * ic];
        for oy in 0..oh {
            let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
            let (ky_lo, ky_hi) = tap_range(y0, kh, g.dilation_h, ih);
            for ox in 0..ow {
                let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
                let (kx_lo, kx_hi) = tap_range(x0, kw, g.dilation_w, iw);
                let start = ((b * oh + oy) * ow + ox) * oc;
                let out_px = &mut output[start..start + oc];
                let window = Window {
                    image,
                    y0,
                    x0,
                    rows: (ky_lo, ky_hi),
                    cols: (kx_lo, kx_hi),
                };
                // Widest blocks first: fewer passes over the window's inputs.
                let mut o = 0;
                window.blocks::<16>(c, out_px, &mut o);
                window.blocks::<8>(c, out_px, &mut o);
                window.blocks::<4>(c, out_px, &mut o);
                window.blocks::<1>(c, out_px, &mut o);
            }
        }
    }
    Ok(())
}

/// The valid taps of one output position.
struct Window<'a> {
    image: &'a [f32],
    y0: isize,
    x0: isize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Window<'_> {
    /// Output channels `*o..` in blocks of `B` while whole blocks remain.
    #[inline(always)]
    fn blocks<const B: usize>(&self, c: &ConvF32, out_px: &mut [f32], o: &mut usize) {
        while *o + B <= out_px.len() {
            let acc = self.block::<B>(c, *o);
            for (j, a) in acc.into_iter().enumerate() {
                let v = match c.bias {
                    Some(bias) => a + bias[*o + j],
                    None => a,
                };
                out_px[*o + j] = clamp(v, c.act);
            }
            *o += B;
        }
    }

    /// Sums of output channels `o..o + B` over the window, each in the reference order.
    #[inline(always)]
    fn block<const B: usize>(&self, c: &ConvF32, o: usize) -> [f32; B] {
        let [_, _, iw, ic] = c.input;
        let [_, _, _, oc] = c.output;
        let kw = c.kernel[1];
        let g = &c.geometry;
        let mut acc = [0f32; B];
        for ky in self.rows.0..self.rows.1 {
            let iy = (self.y0 + (ky * g.dilation_h) as isize) as usize;
            // The row's valid taps and their channels are one contiguous run of the image
            // and of the filter (same order: taps, then channels).
            let (kx_lo, kx_hi) = self.cols;
            let ix = (self.x0 + kx_lo as isize) as usize;
            let span = (kx_hi - kx_lo) * ic;
            let pixels = &self.image[(iy * iw + ix) * ic..][..span];
            let tap0 = (ky * kw + kx_lo) * ic;
            let rows = c.filter[tap0 * oc..(tap0 + span) * oc].chunks_exact(oc);
            for (&x, row) in pixels.iter().zip(rows) {
                let w: &[f32; B] = match row[o..].first_chunk() {
                    Some(w) => w,
                    None => continue,
                };
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += w * x;
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;
    use kinglet_micro::conv2d::{ActivationF32, conv2d_f32 as reference};
    use kinglet_micro::{Shape4, TensorMut, TensorRef};

    struct Lcg(u32);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (self.0 >> 8) as f32 / 16_777_216.0 - 0.5
        }
    }

    #[test]
    fn matches_kinglet_micro_bit_for_bit() {
        let mut rng = Lcg(1);
        // (input h, w, c), (out channels, kh, kw), stride, dilation, padding, bias, relu.
        let cases = [
            ((7, 9, 1), (12, 3, 3), (1, 1), (1, 1), (0, 0), true, true),
            ((6, 6, 3), (5, 3, 3), (1, 1), (1, 1), (1, 1), false, false),
            ((5, 4, 2), (13, 3, 2), (1, 1), (1, 1), (1, 0), true, false),
            ((1, 20, 4), (8, 1, 5), (1, 2), (1, 1), (0, 2), true, false),
            ((8, 8, 2), (6, 3, 3), (2, 2), (2, 1), (2, 1), true, true),
            ((3, 30, 2), (20, 1, 3), (1, 1), (1, 1), (0, 1), true, true),
            ((5, 5, 3), (3, 1, 1), (1, 1), (1, 1), (0, 0), false, true),
        ];
        for ((ih, iw, ic), (oc, kh, kw), (sh, sw), (dh, dw), (pt, pl), with_bias, relu) in cases {
            let oh = (ih + 2 * pt - dh * (kh - 1) - 1) / sh + 1;
            let ow = (iw + 2 * pl - dw * (kw - 1) - 1) / sw + 1;
            let input: Vec<f32> = (0..ih * iw * ic).map(|_| rng.next()).collect();
            let filter: Vec<f32> = (0..oc * kh * kw * ic).map(|_| rng.next()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| rng.next()).collect();
            let bias = with_bias.then_some(&bias[..]);
            let geometry = ConvParams {
                stride_h: sh,
                stride_w: sw,
                dilation_h: dh,
                dilation_w: dw,
                pad_top: pt,
                pad_left: pl,
            };
            let act = if relu {
                ActivationF32 {
                    min: 0.0,
                    max: f32::MAX,
                }
            } else {
                ActivationF32::NONE
            };
            let mut expected = vec![0f32; oh * ow * oc];
            reference(
                &geometry,
                act,
                TensorRef::new(&input, Shape4::new(1, ih, iw, ic)),
                TensorRef::new(&filter, Shape4::new(oc, kh, kw, ic)),
                bias,
                TensorMut::new(&mut expected, Shape4::new(1, oh, ow, oc)),
            )
            .unwrap();
            let mut transposed = vec![0f32; filter.len()];
            transpose_filter(&filter, oc, &mut transposed).unwrap();
            let mut got = vec![0f32; expected.len()];
            let conv = ConvF32 {
                geometry,
                input: [1, ih, iw, ic],
                output: [1, oh, ow, oc],
                kernel: [kh, kw],
                filter: &transposed,
                bias,
                act: [act.min, act.max],
            };
            conv2d_f32(&conv, &input, &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "{ih}x{iw}x{ic} → {oc}");
            assert!(conv2d_f32(&conv, &input[1..], &mut got).is_err());
        }
    }
}
