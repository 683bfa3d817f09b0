//! 2D convolution, NHWC input, OHWI filter (`[out_c, kh, kw, in_c]`). A 1D convolution over a
//! `[n, 1, len, c]` signal is the `kh = 1` case.
//!
//! Quantised arithmetic (TFLite `reference_integer_ops::ConvPerChannel` for int8 and
//! `reference_ops::Conv` for legacy uint8): `acc = Σ (f + filter_offset)(x + input_offset)`
//! over in-bounds taps, `+ bias`, requantise with the channel's multiplier, `+ output_offset`,
//! clamp to `[act_min, act_max]`.

use crate::error::{KernelError, ensure_param, ensure_shape};
use crate::quant::{Requant, multiply_by_quantized_multiplier};
use crate::tensor::{Quant8, TensorMut, TensorRef};
use crate::window::{ConvParams, check_offset, tap_range};

/// Quantisation of a conv / depthwise conv / fully-connected op.
#[derive(Clone, Copy, Debug)]
pub struct QuantParams<'a> {
    /// `-input_zero_point`.
    pub input_offset: i32,
    /// `-filter_zero_point` (0 for int8's symmetric weights; legacy uint8 weights have one).
    pub filter_offset: i32,
    /// `output_zero_point`.
    pub output_offset: i32,
    /// Output requantisation, per tensor or per output channel.
    pub requant: Requant<'a>,
    /// Lower clamp (fused activation and storage range), in output quantised units.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

impl QuantParams<'_> {
    pub(crate) fn check<T: Quant8>(&self, out_channels: usize) -> Result<(), KernelError> {
        check_offset(self.input_offset, "input_offset outside -256..=256")?;
        check_offset(self.filter_offset, "filter_offset outside -256..=256")?;
        check_offset(self.output_offset, "output_offset outside -256..=256")?;
        ensure_param(
            self.act_min <= self.act_max && self.act_min >= T::MIN && self.act_max <= T::MAX,
            "activation range must satisfy type_min <= act_min <= act_max <= type_max",
        )?;
        self.requant.check(out_channels)
    }

    /// Requantises one accumulator of output channel `ch` and clamps it.
    #[inline(always)]
    pub(crate) fn finish<T: Quant8>(&self, acc: i32, ch: usize) -> T {
        let v = self
            .requant
            .apply(acc, ch)
            .saturating_add(self.output_offset);
        T::from_i32_saturating(v.clamp(self.act_min, self.act_max))
    }
}

/// Float clamp range (fused activation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationF32 {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl ActivationF32 {
    /// No clamping.
    pub const NONE: ActivationF32 = ActivationF32 {
        min: f32::MIN,
        max: f32::MAX,
    };

    /// Clamp range of a fused activation.
    pub fn from_fused(act: crate::quant::FusedActivation) -> Self {
        let (min, max) = crate::quant::activation_range_f32(act);
        ActivationF32 { min, max }
    }

    /// `std::min(std::max(v, min), max)` as C++ evaluates it: NaN propagates, and NaN
    /// bounds never panic (unlike `f32::clamp`).
    #[inline(always)]
    pub(crate) fn apply(&self, v: f32) -> f32 {
        let v = if v < self.min { self.min } else { v };
        if self.max < v { self.max } else { v }
    }
}

/// `Σ (f + f_off)(x + x_off)` with wrapping accumulation (as TFLite's int32 accumulator).
#[inline(always)]
pub(crate) fn dot_q8<T: Quant8>(f: &[T], x: &[T], f_off: i32, x_off: i32) -> i32 {
    f.iter().zip(x).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add((a.to_i32() + f_off) * (b.to_i32() + x_off))
    })
}

/// Int8 conv: int8 activations (asymmetric), int8 weights (symmetric, per channel), int32 bias.
/// Symmetric weights with unit horizontal dilation take a faster path (same results).
pub fn conv2d_i8(
    params: &ConvParams,
    quant: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    if quant.filter_offset == 0 && params.dilation_w == 1 {
        conv2d_i8_symmetric(params, quant, input, filter, bias, output)
    } else {
        conv2d_q8(params, quant, input, filter, bias, output)
    }
}

/// `Σ a·b` over two int8 slices (products fit `i16`, which lets the compiler use
/// multiply-add vector instructions).
#[inline(always)]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    // Fixed 8-lane blocks keep the vector body short enough for the 12..96-element dot
    // products of small 1D convs (a wider auto-vectorised loop left most work to its
    // scalar remainder).
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ab, ar) = a.as_chunks::<8>();
    let (bb, br) = b.as_chunks::<8>();
    let mut lanes = [0i32; 8];
    for (x, y) in ab.iter().zip(bb) {
        for j in 0..8 {
            lanes[j] = lanes[j].wrapping_add(i32::from(x[j] as i16 * y[j] as i16));
        }
    }
    let mut acc = lanes.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    for (&x, &y) in ar.iter().zip(br) {
        acc = acc.wrapping_add(i32::from(x as i16 * y as i16));
    }
    acc
}

/// Int8 conv for symmetric weights and unit horizontal dilation: the input offset is factored
/// out, `Σ f·(x + off) = Σ f·x + off·Σ f`, so the inner loop is a plain int8 dot product over
/// the contiguous taps of one filter row; `bias + off·Σ f` is computed once per output row
/// and channel block, and windows clipped by padding take a separate, slower branch.
fn conv2d_i8_symmetric(
    p: &ConvParams,
    q: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    check_conv_shapes(p, &input, &filter, bias, &output)?;
    q.check::<i8>(filter.shape.n)?;
    let filter_len = filter.shape.h * filter.shape.w * filter.shape.c;
    if output.shape.c == 0 || output.data.is_empty() || filter_len == 0 {
        return conv2d_q8(p, q, input, filter, bias, output);
    }
    #[cfg(target_arch = "x86_64")]
    {
        let row_len = filter.shape.w * filter.shape.c;
        if crate::conv2d_x86::packed_len(filter.shape.h, row_len) <= crate::conv2d_x86::MAX_PACKED {
            match q.requant {
                Requant::FixedPoint {
                    multipliers,
                    shifts,
                } => {
                    let per_channel = multipliers.len() != 1;
                    symmetric_body_x86(p, q, input, filter, bias, output, |acc, o| {
                        let i = if per_channel { o } else { 0 };
                        multiply_by_quantized_multiplier(acc, multipliers[i], shifts[i])
                    });
                }
                other => symmetric_body_x86(p, q, input, filter, bias, output, |acc, o| {
                    other.apply(acc, o)
                }),
            }
            return Ok(());
        }
    }
    // Resolve the requantisation variant once, outside the loops.
    match q.requant {
        Requant::FixedPoint {
            multipliers,
            shifts,
        } => {
            let per_channel = multipliers.len() != 1;
            symmetric_body(p, q, input, filter, bias, output, |acc, o| {
                let i = if per_channel { o } else { 0 };
                multiply_by_quantized_multiplier(acc, multipliers[i], shifts[i])
            });
        }
        other => symmetric_body(p, q, input, filter, bias, output, |acc, o| {
            other.apply(acc, o)
        }),
    }
    Ok(())
}

/// Output channels handled per block (their `bias + off·Σ f` live on the stack).
const CHANNEL_BLOCK: usize = 64;

#[inline(always)]
fn symmetric_body(
    p: &ConvParams,
    q: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
    requant: impl Fn(i32, usize) -> i32,
) {
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let row_len = kw * ic;
    let filter_len = kh * row_len;
    let image_len = ih * iw * ic;
    let out_image_len = oh * ow * oc;
    let off = q.input_offset;
    let finish = |acc: i32, o: usize| -> i8 {
        requant(acc, o)
            .saturating_add(q.output_offset)
            .clamp(q.act_min, q.act_max) as i8
    };
    for b in 0..input.shape.n {
        let image = &input.data[b * image_len..(b + 1) * image_len];
        let out_image = &mut output.data[b * out_image_len..(b + 1) * out_image_len];
        for oy in 0..oh {
            let y0 = (oy * p.stride_h) as isize - p.pad_top as isize;
            let (ky_lo, ky_hi) = tap_range(y0, kh, p.dilation_h, ih);
            let out_row = &mut out_image[oy * ow * oc..(oy + 1) * ow * oc];
            let mut block_start = 0;
            while block_start < oc {
                let block = (oc - block_start).min(CHANNEL_BLOCK);
                let mut base = [0i32; CHANNEL_BLOCK];
                for (j, base_j) in base[..block].iter_mut().enumerate() {
                    let o = block_start + j;
                    let f_o = &filter.data[o * filter_len..(o + 1) * filter_len];
                    let mut fsum = 0i32;
                    for &f in &f_o[ky_lo * row_len..ky_hi * row_len] {
                        fsum += i32::from(f);
                    }
                    *base_j = bias
                        .map_or(0, |b| b[o])
                        .wrapping_add(fsum.wrapping_mul(off));
                }
                for ox in 0..ow {
                    let x0 = (ox * p.stride_w) as isize - p.pad_left as isize;
                    let (kx_lo, kx_hi) = tap_range(x0, kw, 1, iw);
                    let px = &mut out_row[ox * oc + block_start..ox * oc + block_start + block];
                    if kx_lo == 0 && kx_hi == kw {
                        let x_start = x0 as usize * ic;
                        for (j, out_v) in px.iter_mut().enumerate() {
                            let o = block_start + j;
                            let f_o = &filter.data[o * filter_len..(o + 1) * filter_len];
                            let mut acc = base[j];
                            for ky in ky_lo..ky_hi {
                                let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                let start = iy * iw * ic + x_start;
                                acc = acc.wrapping_add(dot_i8(
                                    &f_o[ky * row_len..(ky + 1) * row_len],
                                    &image[start..start + row_len],
                                ));
                            }
                            *out_v = finish(acc, o);
                        }
                    } else {
                        // Window clipped by padding: only the valid taps count.
                        let n = (kx_hi - kx_lo) * ic;
                        for (j, out_v) in px.iter_mut().enumerate() {
                            let o = block_start + j;
                            let f_o = &filter.data[o * filter_len..(o + 1) * filter_len];
                            let mut acc = bias.map_or(0, |b| b[o]);
                            if n > 0 {
                                let ix_lo = (x0 + kx_lo as isize) as usize;
                                for ky in ky_lo..ky_hi {
                                    let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                    let start = (iy * iw + ix_lo) * ic;
                                    let f_start = ky * row_len + kx_lo * ic;
                                    let f = &f_o[f_start..f_start + n];
                                    let mut fsum = 0i32;
                                    for &v in f {
                                        fsum += i32::from(v);
                                    }
                                    acc = acc
                                        .wrapping_add(dot_i8(f, &image[start..start + n]))
                                        .wrapping_add(fsum.wrapping_mul(off));
                                }
                            }
                            *out_v = finish(acc, o);
                        }
                    }
                }
                block_start += block;
            }
        }
    }
}

/// [`symmetric_body`] with the interior windows computed eight channels at a time by
/// [`crate::conv2d_x86`]; border windows take the portable path.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn symmetric_body_x86(
    p: &ConvParams,
    q: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
    requant: impl Fn(i32, usize) -> i32,
) {
    use crate::conv2d_x86::{Acc8, MAX_PACKED, pack_block};
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let row_len = kw * ic;
    let kp_row = row_len.div_ceil(2) * 16;
    let filter_len = kh * row_len;
    let image_len = ih * iw * ic;
    let out_image_len = oh * ow * oc;
    let off = q.input_offset;
    let finish = |acc: i32, o: usize| -> i8 {
        requant(acc, o)
            .saturating_add(q.output_offset)
            .clamp(q.act_min, q.act_max) as i8
    };
    let mut packed = [0i16; MAX_PACKED];
    let mut block_start = 0;
    while block_start < oc {
        let block = (oc - block_start).min(8);
        pack_block(
            filter.data,
            filter_len,
            kh,
            row_len,
            block_start,
            oc,
            &mut packed,
        );
        for b in 0..input.shape.n {
            let image = &input.data[b * image_len..(b + 1) * image_len];
            let out_image = &mut output.data[b * out_image_len..(b + 1) * out_image_len];
            for oy in 0..oh {
                let y0 = (oy * p.stride_h) as isize - p.pad_top as isize;
                let (ky_lo, ky_hi) = tap_range(y0, kh, p.dilation_h, ih);
                let mut base = [0i32; 8];
                for (j, base_j) in base[..block].iter_mut().enumerate() {
                    let o = block_start + j;
                    let f_o = &filter.data[o * filter_len..(o + 1) * filter_len];
                    let mut fsum = 0i32;
                    for &f in &f_o[ky_lo * row_len..ky_hi * row_len] {
                        fsum += i32::from(f);
                    }
                    *base_j = bias
                        .map_or(0, |b| b[o])
                        .wrapping_add(fsum.wrapping_mul(off));
                }
                let out_row = &mut out_image[oy * ow * oc..(oy + 1) * ow * oc];
                for ox in 0..ow {
                    let x0 = (ox * p.stride_w) as isize - p.pad_left as isize;
                    let (kx_lo, kx_hi) = tap_range(x0, kw, 1, iw);
                    let px = &mut out_row[ox * oc + block_start..ox * oc + block_start + block];
                    if kx_lo == 0 && kx_hi == kw {
                        let x_start = x0 as usize * ic;
                        let mut acc = Acc8::zero();
                        for ky in ky_lo..ky_hi {
                            let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                            let start = iy * iw * ic + x_start;
                            acc.madd_row(
                                &packed[ky * kp_row..(ky + 1) * kp_row],
                                &image[start..start + row_len],
                            );
                        }
                        let sums = acc.to_array();
                        for (j, out_v) in px.iter_mut().enumerate() {
                            *out_v = finish(base[j].wrapping_add(sums[j]), block_start + j);
                        }
                    } else {
                        let n = (kx_hi - kx_lo) * ic;
                        for (j, out_v) in px.iter_mut().enumerate() {
                            let o = block_start + j;
                            let f_o = &filter.data[o * filter_len..(o + 1) * filter_len];
                            let mut acc = bias.map_or(0, |b| b[o]);
                            if n > 0 {
                                let ix_lo = (x0 + kx_lo as isize) as usize;
                                for ky in ky_lo..ky_hi {
                                    let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                    let start = (iy * iw + ix_lo) * ic;
                                    let f_start = ky * row_len + kx_lo * ic;
                                    let f = &f_o[f_start..f_start + n];
                                    let mut fsum = 0i32;
                                    for &v in f {
                                        fsum += i32::from(v);
                                    }
                                    acc = acc
                                        .wrapping_add(dot_i8(f, &image[start..start + n]))
                                        .wrapping_add(fsum.wrapping_mul(off));
                                }
                            }
                            *out_v = finish(acc, o);
                        }
                    }
                }
            }
        }
        block_start += block;
    }
}

/// Legacy uint8 conv: uint8 activations and weights, both asymmetric, per-tensor requant.
pub fn conv2d_u8(
    params: &ConvParams,
    quant: &QuantParams<'_>,
    input: TensorRef<'_, u8>,
    filter: TensorRef<'_, u8>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, u8>,
) -> Result<(), KernelError> {
    conv2d_q8(params, quant, input, filter, bias, output)
}

pub(crate) fn check_conv_shapes<A, B, C, D>(
    params: &ConvParams,
    input: &TensorRef<'_, A>,
    filter: &TensorRef<'_, B>,
    bias: Option<&[D]>,
    output: &TensorMut<'_, C>,
) -> Result<(), KernelError> {
    params.check()?;
    input.check("conv2d input")?;
    filter.check("conv2d filter")?;
    output.check("conv2d output")?;
    ensure_shape(
        filter.shape.c == input.shape.c,
        "conv2d: filter in_channels != input channels",
    )?;
    ensure_shape(
        output.shape.n == input.shape.n,
        "conv2d: output batch != input batch",
    )?;
    ensure_shape(
        output.shape.c == filter.shape.n,
        "conv2d: output channels != filter out_channels",
    )?;
    if let Some(b) = bias {
        crate::error::check_len("conv2d bias", b.len(), filter.shape.n)?;
    }
    Ok(())
}

/// Shared body of the int8 and uint8 convs.
fn conv2d_q8<T: Quant8>(
    p: &ConvParams,
    q: &QuantParams<'_>,
    input: TensorRef<'_, T>,
    filter: TensorRef<'_, T>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    check_conv_shapes(p, &input, &filter, bias, &output)?;
    q.check::<T>(filter.shape.n)?;
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
                    let mut acc = bias.map_or(0, |b| b[o]);
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                        let row = &image[iy * iw * ic..(iy + 1) * iw * ic];
                        let f_row = &f_o[ky * kw * ic..(ky + 1) * kw * ic];
                        if p.dilation_w == 1 {
                            // Taps of one filter row are contiguous in NHWC: one dot product.
                            let n = (kx_hi - kx_lo) * ic;
                            if n == 0 {
                                continue;
                            }
                            let ix_lo = (x0 + kx_lo as isize) as usize;
                            acc = acc.wrapping_add(dot_q8(
                                &f_row[kx_lo * ic..kx_lo * ic + n],
                                &row[ix_lo * ic..ix_lo * ic + n],
                                q.filter_offset,
                                q.input_offset,
                            ));
                        } else {
                            for kx in kx_lo..kx_hi {
                                let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                                acc = acc.wrapping_add(dot_q8(
                                    &f_row[kx * ic..(kx + 1) * ic],
                                    &row[ix * ic..(ix + 1) * ic],
                                    q.filter_offset,
                                    q.input_offset,
                                ));
                            }
                        }
                    }
                    *out_v = q.finish(acc, o);
                }
            }
        }
    }
    Ok(())
}

/// Float conv with optional bias and fused clamp. Summation order per output: filter rows
/// top to bottom, each row's taps and channels in memory order, then bias.
pub fn conv2d_f32(
    p: &ConvParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    filter: TensorRef<'_, f32>,
    bias: Option<&[f32]>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    check_conv_shapes(p, &input, &filter, bias, &output)?;
    conv_fold(
        p,
        &input,
        &filter,
        output,
        0.0f32,
        |acc, f, x| acc + f * x,
        |acc, o| act.apply(bias.map_or(acc, |b| acc + b[o])),
    );
    Ok(())
}

/// The reference convolution loop, shared by kernels whose accumulators differ (f32, and the
/// int64 of the 16×8 scheme): per output value, `mac` folds every in-bounds tap `(filter,
/// input)` into `zero` in filter order, then `finish(acc, out_channel)` gives the output.
/// Shapes must have passed [`check_conv_shapes`].
#[inline(always)]
pub(crate) fn conv_fold<X: Copy, F: Copy, O, A: Copy>(
    p: &ConvParams,
    input: &TensorRef<'_, X>,
    filter: &TensorRef<'_, F>,
    output: TensorMut<'_, O>,
    zero: A,
    mac: impl Fn(A, F, X) -> A,
    finish: impl Fn(A, usize) -> O,
) {
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.shape.h, filter.shape.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    let filter_len = kh * kw * ic;
    if oc == 0 || output.data.is_empty() {
        return;
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
                    return;
                };
                let filters = filter.data.chunks_exact(filter_len.max(1));
                for (o, (out_v, f_o)) in out_px.iter_mut().zip(filters).enumerate() {
                    let mut acc = zero;
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                        let row = &image[iy * iw * ic..(iy + 1) * iw * ic];
                        let f_row = &f_o[ky * kw * ic..(ky + 1) * kw * ic];
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                            let taps = f_row[kx * ic..(kx + 1) * ic].iter();
                            for (&f, &x) in taps.zip(&row[ix * ic..(ix + 1) * ic]) {
                                acc = mac(acc, f, x);
                            }
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
    use crate::padding::{PaddingKind, axis_geometry};
    use crate::quant::{conv_output_multipliers, quantize_multiplier};
    use crate::tensor::Shape4;

    struct Lcg(u32);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            self.0 >> 8
        }
        fn range(&mut self, lo: i32, hi: i32) -> i32 {
            lo + (self.next() % (hi - lo + 1) as u32) as i32
        }
    }

    #[test]
    fn hand_checked_1d_conv_same_padding() {
        // Input [1,1,4,1] = 1 2 3 4 (zero point 0), filter [1,1,3,1] = 1 1 1, no bias,
        // multiplier 1.0: SAME padding sums the neighbours: 3 6 9 7.
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
        let p = ConvParams {
            pad_left: 1,
            ..ConvParams::unit()
        };
        let mut out = [0i8; 4];
        conv2d_i8(
            &p,
            &q,
            TensorRef::new(&[1, 2, 3, 4], Shape4::new(1, 1, 4, 1)),
            TensorRef::new(&[1, 1, 1], Shape4::new(1, 1, 3, 1)),
            None,
            TensorMut::new(&mut out, Shape4::new(1, 1, 4, 1)),
        )
        .unwrap();
        assert_eq!(out, [3, 6, 9, 7]);
        // A non-zero input zero point pads with the zero point (padding contributes nothing
        // to the offset-corrected sum): zp = 1 → inputs 0 1 2 3 → 1 3 6 5.
        let q = QuantParams {
            input_offset: -1,
            ..q
        };
        conv2d_i8(
            &p,
            &q,
            TensorRef::new(&[1, 2, 3, 4], Shape4::new(1, 1, 4, 1)),
            TensorRef::new(&[1, 1, 1], Shape4::new(1, 1, 3, 1)),
            None,
            TensorMut::new(&mut out, Shape4::new(1, 1, 4, 1)),
        )
        .unwrap();
        assert_eq!(out, [1, 3, 6, 5]);
    }

    #[test]
    fn rejects_inconsistent_shapes_and_params() {
        let (ms, ss) = ([1 << 30], [0]);
        let q = QuantParams {
            input_offset: 0,
            filter_offset: 0,
            output_offset: 0,
            requant: Requant::new(&ms, &ss),
            act_min: -128,
            act_max: 127,
        };
        let p = ConvParams::unit();
        let x = [0i8; 4];
        let f = [0i8; 3];
        let mut out = [0i8; 2];
        let run = |p: &ConvParams, q: &QuantParams<'_>, fs: Shape4, os: Shape4, out: &mut [i8]| {
            conv2d_i8(
                p,
                q,
                TensorRef::new(&x, Shape4::new(1, 1, 4, 1)),
                TensorRef::new(&f, fs),
                None,
                TensorMut::new(out, os),
            )
        };
        assert!(
            run(
                &p,
                &q,
                Shape4::new(1, 1, 3, 1),
                Shape4::new(1, 1, 2, 1),
                &mut out
            )
            .is_ok()
        );
        // Filter channels differ from input channels.
        assert!(
            run(
                &p,
                &q,
                Shape4::new(1, 1, 1, 3),
                Shape4::new(1, 1, 2, 1),
                &mut out
            )
            .is_err()
        );
        // Output buffer does not match its shape.
        assert!(
            run(
                &p,
                &q,
                Shape4::new(1, 1, 3, 1),
                Shape4::new(1, 1, 3, 1),
                &mut out
            )
            .is_err()
        );
        // Zero stride.
        let bad = ConvParams {
            stride_w: 0,
            ..ConvParams::unit()
        };
        assert!(
            run(
                &bad,
                &q,
                Shape4::new(1, 1, 3, 1),
                Shape4::new(1, 1, 2, 1),
                &mut out
            )
            .is_err()
        );
        // Activation range outside int8.
        let q2 = QuantParams { act_max: 300, ..q };
        assert!(
            run(
                &p,
                &q2,
                Shape4::new(1, 1, 3, 1),
                Shape4::new(1, 1, 2, 1),
                &mut out
            )
            .is_err()
        );
        // Shift out of range.
        let bad_shift = [40];
        let q3 = QuantParams {
            requant: Requant::new(&ms, &bad_shift),
            ..q
        };
        assert!(
            run(
                &p,
                &q3,
                Shape4::new(1, 1, 3, 1),
                Shape4::new(1, 1, 2, 1),
                &mut out
            )
            .is_err()
        );
    }

    /// The symmetric fast path and the generic 8-bit body agree bit for bit.
    #[test]
    fn fast_path_equals_generic_path() {
        let mut rng = Lcg(99);
        for _ in 0..100 {
            let (ih, iw, ic) = (
                rng.range(1, 3) as usize,
                rng.range(1, 12) as usize,
                rng.range(1, 9) as usize,
            );
            let (kh, kw, oc) = (
                rng.range(1, 3) as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 9) as usize,
            );
            let p = ConvParams {
                stride_h: rng.range(1, 2) as usize,
                stride_w: rng.range(1, 3) as usize,
                dilation_h: rng.range(1, 2) as usize,
                dilation_w: 1,
                pad_top: rng.range(0, 1) as usize,
                pad_left: rng.range(0, 2) as usize,
            };
            let oh = (ih + 2 * p.pad_top).saturating_sub(1) / p.stride_h + 1;
            let ow = (iw + 2 * p.pad_left).saturating_sub(1) / p.stride_w + 1;
            let x: Vec<i8> = (0..ih * iw * ic)
                .map(|_| rng.range(-128, 127) as i8)
                .collect();
            let f: Vec<i8> = (0..oc * kh * kw * ic)
                .map(|_| rng.range(-127, 127) as i8)
                .collect();
            let bias: Vec<i32> = (0..oc).map(|_| rng.range(-999, 999)).collect();
            let m: Vec<i32> = (0..oc).map(|_| rng.range(1 << 30, i32::MAX)).collect();
            let sh: Vec<i32> = (0..oc).map(|_| rng.range(-12, -4)).collect();
            let q = QuantParams {
                input_offset: rng.range(-128, 127),
                filter_offset: 0,
                output_offset: rng.range(-128, 127),
                requant: Requant::new(&m, &sh),
                act_min: -128,
                act_max: 127,
            };
            let os = Shape4::new(1, oh, ow, oc);
            let mut fast = vec![0i8; oh * ow * oc];
            let mut generic = vec![0i8; oh * ow * oc];
            let xi = TensorRef::new(&x[..], Shape4::new(1, ih, iw, ic));
            let fi = TensorRef::new(&f[..], Shape4::new(oc, kh, kw, ic));
            conv2d_i8_symmetric(&p, &q, xi, fi, Some(&bias), TensorMut::new(&mut fast, os))
                .unwrap();
            conv2d_q8(
                &p,
                &q,
                xi,
                fi,
                Some(&bias),
                TensorMut::new(&mut generic, os),
            )
            .unwrap();
            assert_eq!(fast, generic);
            // The portable body (what non-x86 targets run) must agree too.
            let mut portable = vec![0i8; oh * ow * oc];
            symmetric_body(
                &p,
                &q,
                xi,
                fi,
                Some(&bias),
                TensorMut::new(&mut portable, os),
                |a, o| q.requant.apply(a, o),
            );
            assert_eq!(portable, generic);
        }
    }

    /// Property: int8 conv equals the dequantised real-valued computation within 1 LSB (the
    /// fixed-point multiplier is accurate to 2^-31, so only rounding can differ).
    #[test]
    fn int8_conv_matches_real_arithmetic_within_one_lsb() {
        let mut rng = Lcg(7);
        for case in 0..200 {
            let (ih, iw, ic) = (
                rng.range(1, 4) as usize,
                rng.range(1, 10) as usize,
                rng.range(1, 5) as usize,
            );
            let (kh, kw, oc) = (
                rng.range(1, 3) as usize,
                rng.range(1, 4) as usize,
                rng.range(1, 5) as usize,
            );
            let (sh, sw) = (rng.range(1, 2) as usize, rng.range(1, 2) as usize);
            let (dh, dw) = (rng.range(1, 2) as usize, rng.range(1, 2) as usize);
            let gh = axis_geometry(PaddingKind::Same, ih, kh, sh, dh).unwrap();
            let gw = axis_geometry(PaddingKind::Same, iw, kw, sw, dw).unwrap();
            let in_s = 0.01 + rng.range(0, 100) as f32 * 0.001;
            let in_zp = rng.range(-20, 20);
            let out_s = 0.05 + rng.range(0, 100) as f32 * 0.01;
            let out_zp = rng.range(-20, 20);
            let f_s: Vec<f32> = (0..oc)
                .map(|_| 0.001 + rng.range(0, 50) as f32 * 0.001)
                .collect();
            let x: Vec<i8> = (0..ih * iw * ic)
                .map(|_| rng.range(-128, 127) as i8)
                .collect();
            let f: Vec<i8> = (0..oc * kh * kw * ic)
                .map(|_| rng.range(-127, 127) as i8)
                .collect();
            let bias: Vec<i32> = (0..oc).map(|_| rng.range(-500, 500)).collect();
            let (mut m, mut s) = (vec![0; oc], vec![0; oc]);
            conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut s).unwrap();
            let q = QuantParams {
                input_offset: -in_zp,
                filter_offset: 0,
                output_offset: out_zp,
                requant: Requant::new(&m, &s),
                act_min: -128,
                act_max: 127,
            };
            let p = ConvParams {
                stride_h: sh,
                stride_w: sw,
                dilation_h: dh,
                dilation_w: dw,
                pad_top: gh.pad_before,
                pad_left: gw.pad_before,
            };
            let os = Shape4::new(1, gh.out, gw.out, oc);
            let mut out = vec![0i8; os.checked_len().unwrap()];
            conv2d_i8(
                &p,
                &q,
                TensorRef::new(&x, Shape4::new(1, ih, iw, ic)),
                TensorRef::new(&f, Shape4::new(oc, kh, kw, ic)),
                Some(&bias),
                TensorMut::new(&mut out, os),
            )
            .unwrap();
            for oy in 0..gh.out {
                for ox in 0..gw.out {
                    for o in 0..oc {
                        let mut real = bias[o] as f64 * in_s as f64 * f_s[o] as f64;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky * dh) as isize - gh.pad_before as isize;
                                let ix = (ox * sw + kx * dw) as isize - gw.pad_before as isize;
                                if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                    continue;
                                }
                                for c in 0..ic {
                                    let xv = x[(iy as usize * iw + ix as usize) * ic + c] as f64;
                                    let fv = f[((o * kh + ky) * kw + kx) * ic + c] as f64;
                                    real += (xv - in_zp as f64) * in_s as f64 * fv * f_s[o] as f64;
                                }
                            }
                        }
                        let want = (real / out_s as f64 + out_zp as f64)
                            .round()
                            .clamp(-128.0, 127.0);
                        let got = out[(oy * gw.out + ox) * oc + o] as f64;
                        assert!(
                            (got - want).abs() <= 1.0,
                            "case {case}: ({oy},{ox},{o}) got {got}, real math {want}"
                        );
                    }
                }
            }
        }
    }
}
