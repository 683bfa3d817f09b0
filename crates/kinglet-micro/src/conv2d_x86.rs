//! x86-64 variant of the int8 conv interior loop (SSE2, part of the x86-64 baseline, so no
//! runtime detection is needed). Weights of eight output channels are packed as `i16` pairs
//! so one `pmaddwd` multiplies two taps for four channels; every result is bit-identical to
//! [`crate::conv2d`]'s portable body (tested against it and the TFLite goldens).

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_epi32, _mm_setzero_si128,
    _mm_storeu_si128,
};

/// Capacity (in `i16`) of the packed weights of one 8-channel block: filter rows of up to
/// 128 taps (e.g. 3 × 42 channels). The buffer is zeroed per call, so it is kept small.
pub(crate) const MAX_PACKED: usize = 1024;

/// Packed length for a filter with `kh` rows of `row_len` taps.
pub(crate) fn packed_len(kh: usize, row_len: usize) -> usize {
    kh * row_len.div_ceil(2) * 16
}

/// Packs channels `o0..o0 + 8` (absent channels and the odd tail become zeros) as
/// `[ky][pair][channel][2]`.
pub(crate) fn pack_block(
    filter: &[i8],
    filter_len: usize,
    kh: usize,
    row_len: usize,
    o0: usize,
    oc: usize,
    packed: &mut [i16],
) {
    let kp = row_len.div_ceil(2);
    let used = &mut packed[..kh * kp * 16];
    used.fill(0);
    for j in 0..8usize.min(oc.saturating_sub(o0)) {
        let f_o = &filter[(o0 + j) * filter_len..(o0 + j + 1) * filter_len];
        for (ky, row) in f_o.chunks_exact(row_len).enumerate() {
            let dst = &mut used[ky * kp * 16..(ky + 1) * kp * 16];
            for (pair, slot) in row.chunks(2).zip(dst.chunks_exact_mut(16)) {
                if let Some(lane) = slot.get_mut(2 * j..2 * j + 2) {
                    lane[0] = i16::from(pair[0]);
                    lane[1] = pair.get(1).map_or(0, |&w| i16::from(w));
                }
            }
        }
    }
}

/// Eight accumulators (channels `o0..o0 + 8`) of an int8 dot product.
#[derive(Clone, Copy)]
pub(crate) struct Acc8 {
    lo: __m128i,
    hi: __m128i,
}

impl Acc8 {
    #[inline(always)]
    pub(crate) fn zero() -> Self {
        // SAFETY (all intrinsic calls in this file): SSE2 is part of the x86-64 baseline, so
        // the instructions exist on every CPU this module is compiled for.
        unsafe {
            Acc8 {
                lo: _mm_setzero_si128(),
                hi: _mm_setzero_si128(),
            }
        }
    }

    /// Adds `Σ_k x[k] · w[k][j]` for one filter row: `x` holds the row's `row_len` inputs,
    /// `packed_row` its `ceil(row_len / 2) · 16` packed weights.
    #[inline(always)]
    pub(crate) fn madd_row(&mut self, packed_row: &[i16], x: &[i8]) {
        let (pairs, rest) = x.as_chunks::<2>();
        let mut weights = packed_row.chunks_exact(16);
        for (p, w) in pairs.iter().zip(&mut weights) {
            let pair = u32::from(p[0] as i16 as u16) | (u32::from(p[1] as i16 as u16) << 16);
            self.madd(pair, w);
        }
        if let ([last], Some(w)) = (rest, weights.next()) {
            // Odd tail: the packed partner weight is zero, so pair it with 0.
            self.madd(u32::from(*last as i16 as u16), w);
        }
    }

    #[inline(always)]
    fn madd(&mut self, pair: u32, w: &[i16]) {
        debug_assert!(w.len() == 16);
        // SAFETY: SSE2 is baseline (see `zero`); `w` is a 16-element chunk (32 bytes) and the
        // two unaligned 16-byte loads read exactly its first and second halves.
        unsafe {
            let xv = _mm_set1_epi32(pair as i32);
            let w0 = _mm_loadu_si128(w.as_ptr().cast::<__m128i>());
            let w1 = _mm_loadu_si128(w.as_ptr().add(8).cast::<__m128i>());
            self.lo = _mm_add_epi32(self.lo, _mm_madd_epi16(xv, w0));
            self.hi = _mm_add_epi32(self.hi, _mm_madd_epi16(xv, w1));
        }
    }

    #[inline(always)]
    pub(crate) fn to_array(self) -> [i32; 8] {
        let mut out = [0i32; 8];
        // SAFETY: SSE2 is baseline; `out` is 32 bytes and each unaligned store writes one
        // 16-byte half.
        unsafe {
            _mm_storeu_si128(out.as_mut_ptr().cast::<__m128i>(), self.lo);
            _mm_storeu_si128(out.as_mut_ptr().add(4).cast::<__m128i>(), self.hi);
        }
        out
    }
}
