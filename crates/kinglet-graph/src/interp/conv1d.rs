//! Host fast path for the 8-bit 1D convolutions of HAR models (`[n, 1, w, c]` inputs, `1×k`
//! filters, unit dilation), prepared once in [`Conv1dPlan::new`]:
//!
//! * weights are widened to `i16` with the filter offset applied and packed as
//!   `[tap pair][out channel][2]`, out channels padded to a multiple of 8, so one `pmaddwd`
//!   multiplies two taps for four (SSE2) or eight (AVX2) channels;
//! * each invoke writes the input row, offset applied, into a zero-padded `i16` scratch row, so
//!   padding taps contribute exactly 0 and every window is a plain dot product;
//! * `bias` is added and the accumulator requantised with the op's [`km::Requant`] variant,
//!   whichever TFLite configuration it reproduces.
//!
//! The accumulators are the reference kernels' `Σ (w + filter_offset)(x + input_offset) + bias`
//! in wrapping `i32` (products of two 9-bit values and their pairwise sums fit `i32`), so
//! results are bit-identical to kinglet-micro's conv kernels (the golden tests guard it).
//! A following MAX_POOL_2D can be fused: requantisation and the clamp are monotone
//! non-decreasing in the accumulator (all scales are positive), so pooling accumulators and
//! requantising the maximum equals pooling the requantised outputs.

use std::cell::RefCell;

use kinglet_micro as km;

/// Lanes per output-channel block in the packed weights.
const BLOCK: usize = 8;

/// Most output channels the fast path takes (its per-pixel buffers live on the stack).
const MAX_CHANNELS: usize = 256;

/// A max pool over the conv's width axis, fused into the conv's output loop.
#[derive(Clone, Debug)]
pub(super) struct FusedPool {
    pub filter: usize,
    pub stride: usize,
    /// Output width after pooling.
    pub out_w: usize,
    /// Clamp of the pool's own fused activation, in output units.
    pub act_min: i32,
    pub act_max: i32,
}

#[derive(Clone, Debug)]
pub(super) struct Conv1dPlan {
    batches: usize,
    in_w: usize,
    in_c: usize,
    taps: usize,
    stride: usize,
    pad_left: usize,
    out_w: usize,
    out_c: usize,
    /// `out_c` rounded up to [`BLOCK`].
    out_c_padded: usize,
    /// `ceil(taps · in_c / 2)` pairs × `out_c_padded` × 2.
    packed: Vec<i16>,
    /// For `out_c ≤ 4` with AVX2: the weights as `[tap quad][half][channel 0..4][2]`, so one
    /// 256-bit `pmaddwd` covers four taps of four channels (lanes 4..8 take the second pair).
    packed_narrow: Vec<i16>,
    bias: Vec<i32>,
    /// `bias` padded with zeros to `out_c_padded`.
    bias_padded: Vec<i32>,
    input_offset: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    pub(super) pool: Option<FusedPool>,
    avx2: bool,
    /// Requantisation tables for the AVX2 epilogue (set by [`Conv1dPlan::prepare_simd`]).
    simd: Option<SimdRequant>,
}

/// Per-lane requantisation parameters, padded to `out_c_padded` lanes.
#[derive(Clone, Debug)]
enum SimdRequant {
    /// gemmlowp fixed point: multiplier, left shift, right shift per lane.
    FixedPoint {
        multipliers: Vec<i32>,
        left: Vec<i32>,
        right: Vec<i32>,
    },
    /// XNNPACK single precision, ties to even.
    Float32 { scales: Vec<f32> },
}

thread_local! {
    /// Per-thread scratch row (reused across invokes; grows once).
    static SCRATCH: RefCell<(Vec<i16>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Weights of one conv as the plan needs them.
pub(super) struct Conv1dWeights<'a, T> {
    /// OHWI filter `[out_c, 1, taps, in_c]`.
    pub filter: &'a [T],
    pub bias: Option<&'a [i32]>,
    pub filter_offset: i32,
}

#[allow(clippy::too_many_arguments)]
impl Conv1dPlan {
    /// `None` when the shapes are not the 1D case this path covers.
    pub(super) fn new<T: km::tensor::Quant8>(
        input: km::Shape4,
        filter_shape: km::Shape4,
        output: km::Shape4,
        params: &km::ConvParams,
        w: Conv1dWeights<'_, T>,
        input_offset: i32,
        output_offset: i32,
        act_min: i32,
        act_max: i32,
    ) -> Option<Conv1dPlan> {
        let ok = input.h == 1
            && filter_shape.h == 1
            && output.h == 1
            && params.dilation_w == 1
            && params.stride_w >= 1
            && filter_shape.c == input.c
            && output.c == filter_shape.n
            && output.n == input.n
            && input.c > 0
            && filter_shape.w > 0
            && output.w > 0
            && output.c > 0
            && output.c <= MAX_CHANNELS
            && (-256..=256).contains(&input_offset)
            && (-256..=256).contains(&w.filter_offset)
            && w.filter.len() == filter_shape.n * filter_shape.w * filter_shape.c
            && w.bias.is_none_or(|b| b.len() == output.c)
            && act_min <= act_max
            // The last window must lie inside the padded row.
            && (output.w - 1) * params.stride_w + filter_shape.w
                <= params.pad_left + input.w + filter_shape.w;
        if !ok {
            return None;
        }
        let (taps, in_c, out_c) = (filter_shape.w, input.c, output.c);
        let row = taps * in_c;
        let pairs = row.div_ceil(2);
        let out_c_padded = out_c.div_ceil(BLOCK) * BLOCK;
        let mut packed = vec![0i16; pairs * out_c_padded * 2];
        for o in 0..out_c {
            for k in 0..row {
                let v = w.filter[o * row + k].to_i32() + w.filter_offset;
                packed[((k / 2) * out_c_padded + o) * 2 + k % 2] = v as i16;
            }
        }
        let quads = row.div_ceil(4);
        let mut packed_narrow = vec![0i16; quads * 16];
        if out_c <= 4 {
            for o in 0..out_c {
                for k in 0..row {
                    let v = w.filter[o * row + k].to_i32() + w.filter_offset;
                    let (q, r) = (k / 4, k % 4);
                    packed_narrow[q * 16 + (r / 2) * 8 + o * 2 + r % 2] = v as i16;
                }
            }
        }
        Some(Conv1dPlan {
            batches: input.n,
            in_w: input.w,
            in_c,
            taps,
            stride: params.stride_w,
            pad_left: params.pad_left,
            out_w: output.w,
            out_c,
            out_c_padded,
            packed,
            packed_narrow,
            bias: w.bias.map_or_else(|| vec![0; out_c], <[i32]>::to_vec),
            bias_padded: {
                let mut b = vec![0; out_c_padded];
                if let Some(src) = w.bias {
                    b[..out_c].copy_from_slice(src);
                }
                b
            },
            input_offset,
            output_offset,
            act_min,
            act_max,
            pool: None,
            avx2: detect_avx2(),
            simd: None,
        })
    }

    /// Builds the AVX2 epilogue's tables when the CPU has AVX2 and the requantisation is one
    /// it reproduces exactly (gemmlowp fixed point with non-negative multipliers, or XNNPACK's
    /// single precision); other variants keep the scalar epilogue.
    pub(super) fn prepare_simd(&mut self, requant: &km::Requant<'_>) {
        if !self.avx2 {
            return;
        }
        let n = self.out_c_padded;
        let lane = |v: &[i32], o: usize| if v.len() == 1 { v[0] } else { v[o] };
        self.simd = match *requant {
            km::Requant::FixedPoint {
                multipliers,
                shifts,
            } if multipliers.iter().all(|m| *m >= 0)
                && (multipliers.len() == 1 || multipliers.len() == self.out_c) =>
            {
                let (mut m, mut l, mut r) = (vec![0; n], vec![0; n], vec![0; n]);
                for o in 0..self.out_c {
                    let sh = lane(shifts, o);
                    m[o] = lane(multipliers, o);
                    l[o] = sh.max(0);
                    r[o] = (-sh).max(0);
                }
                Some(SimdRequant::FixedPoint {
                    multipliers: m,
                    left: l,
                    right: r,
                })
            }
            km::Requant::Float32 { scales } if scales.len() == 1 || scales.len() == self.out_c => {
                let mut v = vec![0f32; n];
                for (o, d) in v.iter_mut().enumerate().take(self.out_c) {
                    *d = if scales.len() == 1 {
                        scales[0]
                    } else {
                        scales[o]
                    };
                }
                Some(SimdRequant::Float32 { scales: v })
            }
            _ => None,
        };
    }

    /// Output elements written: conv output, or the pooled output when a pool is fused.
    pub(super) fn output_len(&self) -> usize {
        let w = self.pool.as_ref().map_or(self.out_w, |p| p.out_w);
        self.batches * w * self.out_c
    }

    /// Runs the conv (and fused pool) reading `arena[input]` and writing `arena[output]`
    /// (8-bit values; `signed` selects int8 over uint8). The ranges may overlap (a fused pool's
    /// output can reuse the conv input's space): each batch's input row is copied to scratch
    /// before its outputs are written, and fused plans have one batch.
    pub(super) fn run(
        &self,
        requant: &km::Requant<'_>,
        signed: bool,
        arena: &mut [u8],
        input: std::ops::Range<usize>,
        output: std::ops::Range<usize>,
    ) -> Result<(), String> {
        let per_in = self.in_w * self.in_c;
        let per_out = self.output_len() / self.batches.max(1);
        if input.len() != self.batches * per_in
            || output.len() != self.output_len()
            || input.end > arena.len()
            || output.end > arena.len()
            || (self.batches > 1 && input.start < output.end && output.start < input.end)
        {
            return Err("conv1d: buffers disagree with the plan".into());
        }
        // Padded row: pad_left zeros, the input, then zeros up to the last window (+1 for an
        // odd tap count's zero-weighted partner).
        let row_len = (self.pad_left + self.in_w + self.taps + 1) * self.in_c + 4;
        let pool_w = self.pool.as_ref().map_or(1, |p| p.filter);
        SCRATCH.with(|s| {
            let mut guard = s.borrow_mut();
            let (xp, acc) = &mut *guard;
            if xp.len() < row_len {
                xp.resize(row_len, 0);
            }
            if acc.len() < self.out_c_padded * pool_w {
                acc.resize(self.out_c_padded * pool_w, 0);
            }
            for b in 0..self.batches {
                let x = &arena[input.start + b * per_in..input.start + (b + 1) * per_in];
                let xp = &mut xp[..row_len];
                let (head, rest) = xp.split_at_mut(self.pad_left * self.in_c);
                head.fill(0);
                let (body, tail) = rest.split_at_mut(per_in);
                let off = self.input_offset;
                if signed {
                    for (d, s) in body.iter_mut().zip(x) {
                        *d = (i32::from(*s as i8) + off) as i16;
                    }
                } else {
                    for (d, s) in body.iter_mut().zip(x) {
                        *d = (i32::from(*s) + off) as i16;
                    }
                }
                tail.fill(0);
                let out = &mut arena[output.start + b * per_out..output.start + (b + 1) * per_out];
                #[cfg(target_arch = "x86_64")]
                if let Some(simd) = &self.simd {
                    // SAFETY: `simd` is only set when AVX2 was detected.
                    unsafe { self.row_avx2(simd, signed, xp, acc, out) };
                    continue;
                }
                // Resolve the requantisation variant once per row, not per value.
                match *requant {
                    km::Requant::FixedPoint {
                        multipliers,
                        shifts,
                    } if multipliers.len() == 1 => {
                        let (m, sh) = (multipliers[0], shifts[0]);
                        let rq = |a: i32, _o: usize| {
                            km::quant::multiply_by_quantized_multiplier(a, m, sh)
                        };
                        self.row_typed(signed, rq, xp, acc, out);
                    }
                    km::Requant::FixedPoint {
                        multipliers,
                        shifts,
                    } => {
                        let rq = |a: i32, o: usize| {
                            km::quant::multiply_by_quantized_multiplier(
                                a,
                                multipliers[o],
                                shifts[o],
                            )
                        };
                        self.row_typed(signed, rq, xp, acc, out);
                    }
                    km::Requant::Float32 { scales } if scales.len() == 1 => {
                        let sc = scales[0];
                        // `round_ties_even` equals kinglet-micro's `round_half_even_f32` on
                        // every finite value.
                        let rq = |a: i32, _o: usize| (a as f32 * sc).round_ties_even() as i32;
                        self.row_typed(signed, rq, xp, acc, out);
                    }
                    km::Requant::Float32 { scales } => {
                        let rq = |a: i32, o: usize| (a as f32 * scales[o]).round_ties_even() as i32;
                        self.row_typed(signed, rq, xp, acc, out);
                    }
                    other => {
                        let rq = |a: i32, o: usize| other.apply(a, o);
                        self.row_typed(signed, rq, xp, acc, out);
                    }
                }
            }
        });
        Ok(())
    }

    #[inline(always)]
    fn row_typed(
        &self,
        signed: bool,
        rq: impl Fn(i32, usize) -> i32,
        xp: &[i16],
        acc: &mut [i32],
        out: &mut [u8],
    ) {
        if signed {
            self.run_row::<i8>(rq, xp, acc, km::tensor::bytes_as_i8_mut(out));
        } else {
            self.run_row::<u8>(rq, xp, acc, out);
        }
    }

    #[inline(always)]
    fn run_row<T: km::tensor::Quant8>(
        &self,
        requant: impl Fn(i32, usize) -> i32,
        xp: &[i16],
        acc: &mut [i32],
        out: &mut [T],
    ) {
        let ocp = self.out_c_padded;
        let finish = |a: i32, o: usize, lo: i32, hi: i32| -> T {
            T::from_i32_saturating(
                requant(a.wrapping_add(self.bias[o]), o)
                    .saturating_add(self.output_offset)
                    .clamp(lo, hi),
            )
        };
        match &self.pool {
            None => {
                for (ox, px) in out.chunks_exact_mut(self.out_c).enumerate() {
                    let a = &mut acc[..ocp];
                    self.window(xp, ox * self.stride * self.in_c, a);
                    for (o, v) in px.iter_mut().enumerate() {
                        *v = finish(a[o], o, self.act_min, self.act_max);
                    }
                }
            }
            Some(pool) => {
                let mut best = [i32::MIN; MAX_CHANNELS];
                for (px_i, px) in out.chunks_exact_mut(self.out_c).enumerate() {
                    let best = &mut best[..self.out_c];
                    best.fill(i32::MIN);
                    for k in 0..pool.filter {
                        let ox = px_i * pool.stride + k;
                        let a = &mut acc[..ocp];
                        self.window(xp, ox * self.stride * self.in_c, a);
                        for (bst, (&v, &bias)) in best.iter_mut().zip(a.iter().zip(&self.bias)) {
                            let v = v.wrapping_add(bias);
                            if v > *bst {
                                *bst = v;
                            }
                        }
                    }
                    for (o, v) in px.iter_mut().enumerate() {
                        let r = requant(best[o], o).saturating_add(self.output_offset);
                        // The conv's clamp, then the pool's (both ranges are ordered).
                        let r = r
                            .clamp(self.act_min, self.act_max)
                            .max(pool.act_min)
                            .min(pool.act_max);
                        *v = T::from_i32_saturating(r);
                    }
                }
            }
        }
    }

    /// Accumulators (without bias) of the window starting at `start` in the padded row.
    #[inline(always)]
    fn window(&self, xp: &[i16], start: usize, acc: &mut [i32]) {
        let pairs = (self.taps * self.in_c).div_ceil(2);
        let x = &xp[start..start + 2 * pairs];
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx2 && self.out_c <= 4 {
                let quads = (self.taps * self.in_c).div_ceil(4);
                // SAFETY: AVX2 was detected at prepare time.
                unsafe {
                    window_avx2_narrow(&xp[start..start + 4 * quads], &self.packed_narrow, acc)
                };
            } else if self.avx2 {
                // SAFETY: AVX2 was detected at prepare time.
                unsafe { window_avx2(x, &self.packed, self.out_c_padded, acc) };
            } else {
                window_sse2(x, &self.packed, self.out_c_padded, acc);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        window_portable(x, &self.packed, self.out_c_padded, acc);
    }

    /// Whether a pool over this conv's output (`filter`, `stride` along W, VALID, inside the
    /// row) can be fused.
    pub(super) fn can_fuse_pool(&self, filter: usize, stride: usize, out_w: usize) -> bool {
        filter >= 1 && stride >= 1 && out_w >= 1 && (out_w - 1) * stride + filter <= self.out_w
    }
}

fn detect_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn window_portable(x: &[i16], packed: &[i16], ocp: usize, acc: &mut [i32]) {
    acc.fill(0);
    for (p, pair) in x.chunks_exact(2).enumerate() {
        let w = &packed[p * ocp * 2..(p + 1) * ocp * 2];
        for (a, wp) in acc.iter_mut().zip(w.chunks_exact(2)) {
            *a = a
                .wrapping_add(i32::from(pair[0]) * i32::from(wp[0]))
                .wrapping_add(i32::from(pair[1]) * i32::from(wp[1]));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn window_sse2(x: &[i16], packed: &[i16], ocp: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    debug_assert!(packed.len() >= x.len() / 2 * ocp * 2 && acc.len() >= ocp);
    let blocks = ocp / 4;
    // SAFETY: SSE2 is part of the x86-64 baseline. Loads read `packed[(p·ocp + 4j)·2 ..+8]`
    // and stores write `acc[4j..4j+4]`, in bounds since p < x.len()/2, j < ocp/4 and
    // `packed` holds `pairs · ocp · 2` values.
    unsafe {
        let mut j = 0;
        while j < blocks {
            // Two 4-channel blocks at a time when possible.
            let mut a0 = _mm_setzero_si128();
            let mut a1 = _mm_setzero_si128();
            let two = j + 1 < blocks;
            for (p, pair) in x.chunks_exact(2).enumerate() {
                let xv = _mm_set1_epi32(
                    (u32::from(pair[0] as u16) | (u32::from(pair[1] as u16) << 16)) as i32,
                );
                let base = packed.as_ptr().add((p * ocp + 4 * j) * 2);
                a0 = _mm_add_epi32(a0, _mm_madd_epi16(xv, _mm_loadu_si128(base.cast())));
                if two {
                    a1 = _mm_add_epi32(a1, _mm_madd_epi16(xv, _mm_loadu_si128(base.add(8).cast())));
                }
            }
            _mm_storeu_si128(acc.as_mut_ptr().add(4 * j).cast(), a0);
            if two {
                _mm_storeu_si128(acc.as_mut_ptr().add(4 * j + 4).cast(), a1);
                j += 2;
            } else {
                j += 1;
            }
        }
    }
}

/// Four output channels: each `pmaddwd` takes taps `4q, 4q+1` in lanes 0..4 and `4q+2, 4q+3`
/// in lanes 4..8; the halves are summed at the end into `acc[0..4]` (`acc[4..8]` = 0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn window_avx2_narrow(x: &[i16], packed: &[i16], acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let quads = x.len() / 4;
    debug_assert!(packed.len() >= quads * 16 && acc.len() >= 8);
    // SAFETY: the caller checked AVX2; `x` holds `4 · quads` values (8-byte reads at 4q),
    // `packed` `16 · quads` (32-byte reads at 16q), `acc` at least 8 lanes.
    unsafe {
        let pick = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        let mut a = _mm256_setzero_si256();
        for q in 0..quads {
            let two_pairs = x.as_ptr().add(4 * q).cast::<i64>().read_unaligned();
            let xv = _mm256_permutevar8x32_epi32(_mm256_set1_epi64x(two_pairs), pick);
            let w = _mm256_loadu_si256(packed.as_ptr().add(16 * q).cast());
            a = _mm256_add_epi32(a, _mm256_madd_epi16(xv, w));
        }
        let sum = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
        _mm_storeu_si128(acc.as_mut_ptr().cast(), sum);
        _mm_storeu_si128(acc.as_mut_ptr().add(4).cast(), _mm_setzero_si128());
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn window_avx2(x: &[i16], packed: &[i16], ocp: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let blocks = ocp / 8;
    let pairs = x.len() / 2;
    let xs = x.as_ptr();
    let ws = packed.as_ptr();
    let out = acc.as_mut_ptr();
    // SAFETY: the caller checked AVX2; loads read `packed[(p·ocp + 8j)·2 ..+16 or +32]` with
    // p < pairs, 8j + 16 ≤ ocp (pairs of blocks) or 8j + 8 ≤ ocp, in bounds of the
    // `pairs · ocp · 2` packed weights; `x` holds `2 · pairs` values; stores write
    // `acc[8j..8j + 8]` (or 16) below `ocp ≤ acc.len()`.
    unsafe {
        let mut j = 0;
        while j + 1 < blocks {
            let mut a0 = _mm256_setzero_si256();
            let mut a1 = _mm256_setzero_si256();
            let mut w = ws.add(8 * j * 2);
            for p in 0..pairs {
                // The tap pair as one little-endian i32 (x[2p] low, x[2p + 1] high).
                let xv = _mm256_set1_epi32(xs.add(2 * p).cast::<i32>().read_unaligned());
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_loadu_si256(w.cast())));
                a1 = _mm256_add_epi32(
                    a1,
                    _mm256_madd_epi16(xv, _mm256_loadu_si256(w.add(16).cast())),
                );
                w = w.add(ocp * 2);
            }
            _mm256_storeu_si256(out.add(8 * j).cast(), a0);
            _mm256_storeu_si256(out.add(8 * j + 8).cast(), a1);
            j += 2;
        }
        if j < blocks {
            let mut a0 = _mm256_setzero_si256();
            let mut w = ws.add(8 * j * 2);
            for p in 0..pairs {
                let xv = _mm256_set1_epi32(xs.add(2 * p).cast::<i32>().read_unaligned());
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_loadu_si256(w.cast())));
                w = w.add(ocp * 2);
            }
            _mm256_storeu_si256(out.add(8 * j).cast(), a0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Conv1dPlan {
    /// [`Conv1dPlan::run_row`] with the bias, pooling, requantisation and clamps done eight
    /// channels at a time.
    #[target_feature(enable = "avx2")]
    unsafe fn row_avx2(
        &self,
        simd: &SimdRequant,
        signed: bool,
        xp: &[i16],
        acc: &mut [i32],
        out: &mut [u8],
    ) {
        use std::arch::x86_64::*;
        let ocp = self.out_c_padded;
        let bias = &self.bias_padded;
        // Clamp before adding the zero point: equal to clamping after a saturating add.
        let (lo, hi) = match &self.pool {
            None => (self.act_min, self.act_max),
            Some(p) => (
                self.act_min.max(p.act_min).min(p.act_max),
                self.act_max.min(p.act_max).max(p.act_min),
            ),
        };
        let zp = self.output_offset;
        let (filter, stride, out_w) = match &self.pool {
            None => (1, 1, self.out_w),
            Some(p) => (p.filter, p.stride, p.out_w),
        };
        let mut best = [0i32; MAX_CHANNELS];
        let mut lanes = [0i32; 8];
        // SAFETY: AVX2 is enabled for this function; every load/store below addresses
        // `ocp`-long buffers at multiples of 8 below `ocp`, or the 8-lane `lanes` array.
        unsafe {
            let lo_v = _mm256_set1_epi32(lo.saturating_sub(zp));
            let hi_v = _mm256_set1_epi32(hi.saturating_sub(zp));
            let zp_v = _mm256_set1_epi32(zp);
            for px in 0..out_w {
                for k in 0..filter {
                    let ox = px * stride + k;
                    self.window(xp, ox * self.stride * self.in_c, &mut acc[..ocp]);
                    for j in (0..ocp).step_by(8) {
                        let a = _mm256_add_epi32(
                            _mm256_loadu_si256(acc.as_ptr().add(j).cast()),
                            _mm256_loadu_si256(bias.as_ptr().add(j).cast()),
                        );
                        let b = if k == 0 {
                            a
                        } else {
                            _mm256_max_epi32(a, _mm256_loadu_si256(best.as_ptr().add(j).cast()))
                        };
                        _mm256_storeu_si256(best.as_mut_ptr().add(j).cast(), b);
                    }
                }
                let dst = &mut out[px * self.out_c..(px + 1) * self.out_c];
                for j in (0..ocp).step_by(8) {
                    let a = _mm256_loadu_si256(best.as_ptr().add(j).cast());
                    let r = match simd {
                        SimdRequant::FixedPoint {
                            multipliers,
                            left,
                            right,
                        } => fixed_point_avx2(
                            a,
                            _mm256_loadu_si256(multipliers.as_ptr().add(j).cast()),
                            _mm256_loadu_si256(left.as_ptr().add(j).cast()),
                            _mm256_loadu_si256(right.as_ptr().add(j).cast()),
                        ),
                        SimdRequant::Float32 { scales } => {
                            let f = _mm256_mul_ps(
                                _mm256_cvtepi32_ps(a),
                                _mm256_loadu_ps(scales.as_ptr().add(j)),
                            );
                            // Round to nearest, ties to even, then convert exactly. Products
                            // beyond i32 would saturate differently, but are clamped below the
                            // conversion's range first.
                            let f = _mm256_max_ps(f, _mm256_set1_ps(-2_147_483_520.0));
                            let f = _mm256_min_ps(f, _mm256_set1_ps(2_147_483_520.0));
                            _mm256_cvtps_epi32(_mm256_round_ps::<
                                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                            >(f))
                        }
                    };
                    let r =
                        _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(r, lo_v), hi_v), zp_v);
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), r);
                    let n = (self.out_c - j).min(8);
                    for (d, v) in dst[j..j + n].iter_mut().zip(&lanes[..n]) {
                        // In range after the clamp: the cast keeps the 8-bit value.
                        *d = if signed { *v as i8 as u8 } else { *v as u8 };
                    }
                }
            }
        }
    }
}

/// gemmlowp `MultiplyByQuantizedMultiplier` on eight lanes (multipliers ≥ 0, so the
/// `i32::MIN · i32::MIN` saturation cannot occur).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fixed_point_avx2(
    x: std::arch::x86_64::__m256i,
    m: std::arch::x86_64::__m256i,
    left: std::arch::x86_64::__m256i,
    right: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let x = _mm256_sllv_epi32(x, left);
    // High half of the doubled product, rounded (SaturatingRoundingDoublingHighMul) on the even
    // lanes, then the odd ones.
    let srdhm_even = |a: __m256i, b: __m256i| -> __m256i {
        let ab = _mm256_mul_epi32(a, b);
        let zero = _mm256_setzero_si256();
        let neg = _mm256_cmpgt_epi64(zero, ab);
        let nudge = _mm256_blendv_epi8(
            _mm256_set1_epi64x(1 << 30),
            _mm256_set1_epi64x(1 - (1 << 30)),
            neg,
        );
        let v = _mm256_add_epi64(ab, nudge);
        // Division by 2^31 truncating toward zero: add 2^31 − 1 to negatives, shift.
        let vneg = _mm256_cmpgt_epi64(zero, v);
        let v = _mm256_add_epi64(v, _mm256_and_si256(vneg, _mm256_set1_epi64x((1 << 31) - 1)));
        // Bits 31..62 (the low 32 bits of the arithmetic shift).
        _mm256_srli_epi64::<31>(v)
    };
    let even = srdhm_even(x, m);
    let odd = srdhm_even(_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(m));
    let high = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
    // RoundingDivideByPOT.
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let remainder = _mm256_and_si256(high, mask);
    let is_neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), high);
    let threshold = _mm256_sub_epi32(_mm256_srai_epi32::<1>(mask), is_neg);
    let shifted = _mm256_srav_epi32(high, right);
    _mm256_sub_epi32(shifted, _mm256_cmpgt_epi32(remainder, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The fast path (scalar and AVX2 epilogues, with and without a fused pool) equals
    /// kinglet-micro's conv (+ max pool) bit for bit on random 1D shapes, int8 and uint8,
    /// fixed-point and single-precision requantisation.
    #[test]
    fn fast_path_equals_the_reference_kernels() {
        let mut rng = Lcg(4242);
        for case in 0..400 {
            let signed = case % 2 == 0;
            let (iw, ic, taps, oc) = (
                rng.range(1, 40) as usize,
                rng.range(1, 12) as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 40) as usize,
            );
            let stride = rng.range(1, 3) as usize;
            let same = rng.range(0, 1) == 1;
            let kind = if same {
                km::PaddingKind::Same
            } else {
                km::PaddingKind::Valid
            };
            let Ok(g) = km::axis_geometry(kind, iw, taps, stride, 1) else {
                continue;
            };
            let params = km::ConvParams {
                stride_h: 1,
                stride_w: stride,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 0,
                pad_left: g.pad_before,
            };
            let (lo_t, hi_t) = if signed { (-128, 127) } else { (0, 255) };
            let x: Vec<u8> = (0..iw * ic).map(|_| rng.range(0, 255) as u8).collect();
            let f: Vec<u8> = (0..oc * taps * ic)
                .map(|_| rng.range(0, 255) as u8)
                .collect();
            let bias: Vec<i32> = (0..oc).map(|_| rng.range(-3000, 3000)).collect();
            let input_offset = if signed {
                rng.range(-127, 128)
            } else {
                -rng.range(0, 255)
            };
            let filter_offset = if signed { 0 } else { -rng.range(0, 255) };
            let output_offset = if signed {
                rng.range(-128, 127)
            } else {
                rng.range(0, 255)
            };
            let act_min = rng.range(lo_t, lo_t + 40);
            let act_max = rng.range(hi_t - 40, hi_t);
            let per_channel = rng.range(0, 1) == 1;
            let n_q = if per_channel { oc } else { 1 };
            let mults: Vec<i32> = (0..n_q).map(|_| rng.range(1 << 30, i32::MAX)).collect();
            let shifts: Vec<i32> = (0..n_q).map(|_| rng.range(-14, 1)).collect();
            let scales: Vec<f32> = (0..n_q).map(|_| rng.range(1, 5000) as f32 * 1e-5).collect();
            let requants = [
                km::Requant::new(&mults, &shifts),
                km::Requant::float32(&scales),
                km::Requant::fixed_point_ties_up(&mults, &shifts),
            ];
            let ins = km::Shape4::new(1, 1, iw, ic);
            let fs = km::Shape4::new(oc, 1, taps, ic);
            let os = km::Shape4::new(1, 1, g.out, oc);
            for requant in requants {
                let q = km::QuantParams {
                    input_offset,
                    filter_offset,
                    output_offset,
                    requant,
                    act_min,
                    act_max,
                };
                let mut want = vec![0u8; g.out * oc];
                if signed {
                    km::conv2d::conv2d_i8(
                        &params,
                        &q,
                        km::TensorRef::new(km::tensor::bytes_as_i8(&x), ins),
                        km::TensorRef::new(km::tensor::bytes_as_i8(&f), fs),
                        Some(&bias),
                        km::TensorMut::new(km::tensor::bytes_as_i8_mut(&mut want), os),
                    )
                    .unwrap();
                } else {
                    km::conv2d::conv2d_u8(
                        &params,
                        &q,
                        km::TensorRef::new(&x, ins),
                        km::TensorRef::new(&f, fs),
                        Some(&bias),
                        km::TensorMut::new(&mut want, os),
                    )
                    .unwrap();
                }
                let build = || {
                    let plan = if signed {
                        Conv1dPlan::new(
                            ins,
                            fs,
                            os,
                            &params,
                            Conv1dWeights {
                                filter: km::tensor::bytes_as_i8(&f),
                                bias: Some(&bias),
                                filter_offset,
                            },
                            input_offset,
                            output_offset,
                            act_min,
                            act_max,
                        )
                    } else {
                        Conv1dPlan::new(
                            ins,
                            fs,
                            os,
                            &params,
                            Conv1dWeights {
                                filter: &f,
                                bias: Some(&bias),
                                filter_offset,
                            },
                            input_offset,
                            output_offset,
                            act_min,
                            act_max,
                        )
                    };
                    plan.expect("1D shapes take the fast path")
                };
                let run = |plan: &Conv1dPlan, out_len: usize| -> Vec<u8> {
                    let mut arena = x.clone();
                    arena.resize(x.len() + out_len, 0);
                    plan.run(
                        &requant,
                        signed,
                        &mut arena,
                        0..x.len(),
                        x.len()..x.len() + out_len,
                    )
                    .unwrap();
                    arena[x.len()..].to_vec()
                };
                for simd in [false, true] {
                    let mut plan = build();
                    if simd {
                        plan.prepare_simd(&requant);
                    }
                    assert_eq!(run(&plan, want.len()), want, "case {case} simd {simd}");
                    // Fused 1×2 (or 1×3) max pool against micro's pool of `want`.
                    let (pf, ps) = (rng.range(1, 3) as usize, rng.range(1, 2) as usize);
                    if g.out < pf {
                        continue;
                    }
                    let pw = (g.out - pf) / ps + 1;
                    let (pmin, pmax) = (rng.range(lo_t, lo_t + 60), rng.range(hi_t - 60, hi_t));
                    let pp = km::PoolParams {
                        filter_h: 1,
                        filter_w: pf,
                        stride_h: 1,
                        stride_w: ps,
                        pad_top: 0,
                        pad_left: 0,
                    };
                    let pos = km::Shape4::new(1, 1, pw, oc);
                    let mut pooled = vec![0u8; pw * oc];
                    if signed {
                        km::max_pool2d::max_pool2d_i8(
                            &pp,
                            pmin,
                            pmax,
                            km::TensorRef::new(km::tensor::bytes_as_i8(&want), os),
                            km::TensorMut::new(km::tensor::bytes_as_i8_mut(&mut pooled), pos),
                        )
                        .unwrap();
                    } else {
                        km::max_pool2d::max_pool2d_u8(
                            &pp,
                            pmin,
                            pmax,
                            km::TensorRef::new(&want, os),
                            km::TensorMut::new(&mut pooled, pos),
                        )
                        .unwrap();
                    }
                    assert!(plan.can_fuse_pool(pf, ps, pw));
                    plan.pool = Some(FusedPool {
                        filter: pf,
                        stride: ps,
                        out_w: pw,
                        act_min: pmin,
                        act_max: pmax,
                    });
                    assert_eq!(
                        run(&plan, pooled.len()),
                        pooled,
                        "case {case} pooled simd {simd}"
                    );
                }
            }
        }
    }
}
