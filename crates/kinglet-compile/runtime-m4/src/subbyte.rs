//! Packed 4- and 2-bit weights (w4a8, w2a8 and mixed models) as they stay in flash: the point
//! of sub-byte weights on a microcontroller is flash, so the kernels unpack them where int8
//! weights would be sign-extended — a block of output channels at a time into the stack
//! scratch for convolutions ([`crate::Conv1d`]), one channel's taps into registers for the
//! depthwise kernel, and word by word in registers for fully-connected layers — and reuse
//! the `SMLAD` loops of the widened layout. As with CMSIS-NN's s4 kernels, this saves flash,
//! not time.
//!
//! The on-device layout is kinglet's own (the `.tflite` keeps TFLite's nibble order): the
//! value sequence of the widened layout ([`crate::pack_weights`] order) is cut into words of
//! `32 / bits` values; value `u` of a word lies in byte `[0, 2, 1, 3][u % 4]`, bits
//! `bits·(u / 4) ..`. Masking one field group out of every byte then gives four bytes that
//! `SXTB16` and `SXTB16 …, ROR #8` turn into two `i16` pairs in order — the int8 (narrow)
//! layout is the 8-bit case of the same rule.

use crate::dsp::{smlad, ssub8, sxtb16};
use crate::{ShapeError, channel_block};

/// Values one 32-bit word of `bits`-bit weights holds.
pub const fn values_per_word(bits: u32) -> usize {
    (32 / bits) as usize
}

/// Bytes of `values` weights of `bits` bits packed into whole words.
pub const fn packed_bytes(bits: u32, values: usize) -> usize {
    4 * values.div_ceil(values_per_word(bits))
}

/// Bytes of one block of [`pack_weights_bits`] output (`block · row` values).
pub const fn packed_block_bytes(bits: u32, block: usize, row: usize) -> usize {
    packed_bytes(bits, block * row)
}

/// Stack words a convolution needs to unpack one block of `bits`-bit weights (`out_ch`
/// filters, rows of `row` values): every packed word becomes `16 / bits` words of pairs.
pub const fn packed_scratch_words(bits: u32, out_ch: usize, row: usize) -> usize {
    packed_block_bytes(bits, channel_block(out_ch), row) / 4 * (16 / bits) as usize
}

/// Largest fully-connected row [`dot_block_packed`] takes: its accumulators hold the dot
/// product scaled by 2^(8−bits), which must not overflow (|x·w| ≤ 2^7·2^7 per pair value).
pub const PACKED_FC_MAX_ROW: usize = 1 << 16;

/// Puts `values` (the widened layout's value sequence) into `out` as described in the
/// module documentation; `out` is cleared first and must hold [`packed_bytes`] bytes.
/// `ShapeError` if a value does not fit in `bits` signed bits or `out` has the wrong length.
pub fn pack_values(
    values: impl ExactSizeIterator<Item = i8>,
    bits: u32,
    out: &mut [u8],
) -> Result<(), ShapeError> {
    if !matches!(bits, 2 | 4 | 8) || out.len() != packed_bytes(bits, values.len()) {
        return Err(ShapeError);
    }
    let per_word = values_per_word(bits);
    let (lo, hi) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
    let mask = ((1u32 << bits) - 1) as u8;
    out.fill(0);
    for (t, v) in values.enumerate() {
        if !(lo..=hi).contains(&i32::from(v)) {
            return Err(ShapeError);
        }
        let u = t % per_word;
        let byte = 4 * (t / per_word) + [0, 2, 1, 3][u % 4];
        out[byte] |= ((v as u8) & mask) << (bits * (u / 4) as u32);
    }
    Ok(())
}

/// Packs weights `[out_ch][row_in]` like [`crate::pack_weights`] (rows rounded up to whole
/// pairs, blocks of [`channel_block`] channels interleaved pair by pair) with `bits` (8, 4 or
/// 2) bits a value; every block starts a new word. `packed` must hold
/// `(out_ch / block) · packed_block_bytes(bits, block, row)` bytes.
pub fn pack_weights_bits(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    bits: u32,
    packed: &mut [u8],
) -> Result<(), ShapeError> {
    pack_weights_bits_blocked(weights, out_ch, row_in, channel_block(out_ch), bits, packed)
}

/// [`pack_weights_bits`] in blocks of `block` channels (1, 2 or 4, dividing `out_ch`), which a
/// nested-width blob fixes for all its widths ([`crate::nested`]).
pub(crate) fn pack_weights_bits_blocked(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    block: usize,
    bits: u32,
    packed: &mut [u8],
) -> Result<(), ShapeError> {
    if !matches!(bits, 2 | 4 | 8) {
        return Err(ShapeError);
    }
    let row = (row_in + 1) & !1;
    let block_bytes = packed_block_bytes(bits, block, row);
    if !crate::nested::block_divides(block, out_ch)
        || weights.len() != out_ch * row_in
        || packed.len() != out_ch / block * block_bytes
    {
        return Err(ShapeError);
    }
    if block_bytes == 0 {
        // Empty rows: nothing to pack (and no chunks to cut).
        return Ok(());
    }
    for (bi, dst) in packed.chunks_exact_mut(block_bytes).enumerate() {
        pack_values(block_values(weights, row_in, block, bi * block), bits, dst)?;
    }
    Ok(())
}

/// The value sequence of the widened layout for the block of `block` channels from channel
/// `b` of weights `[out_ch][row_in]`: pair by pair, the block's channels side by side, rows
/// rounded up to whole pairs with zeros. Every packer of 1D filters lays out this sequence.
/// The caller has checked that the block's rows lie in `weights`.
pub(crate) fn block_values(
    weights: &[i8],
    row_in: usize,
    block: usize,
    b: usize,
) -> impl ExactSizeIterator<Item = i8> + '_ {
    let row = (row_in + 1) & !1;
    (0..block * row).map(move |t| {
        // Value t of the block: pair k, channel j, element e of the pair.
        let (k, j, e) = (t / (2 * block), (t / 2) % block, t % 2);
        let v = 2 * k + e;
        if v < row_in {
            weights[(b + j) * row_in + v]
        } else {
            0
        }
    })
}

/// Bytes of one depthwise channel's packed taps (`2 · depthwise_pairs(kernel)` values).
pub const fn depthwise_packed_channel_bytes(bits: u32, kernel: usize) -> usize {
    packed_bytes(bits, 2 * crate::depthwise_pairs(kernel))
}

/// Packs depthwise weights `[1, 1, kernel, channels]` as [`crate::pack_depthwise_weights`]
/// orders them (per channel, its taps and a zero to a whole pair), each channel in whole
/// words of `bits`-bit values; `packed` must hold `channels ·`
/// [`depthwise_packed_channel_bytes`] bytes.
pub fn pack_depthwise_weights_bits(
    weights: &[i8],
    channels: usize,
    kernel: usize,
    bits: u32,
    packed: &mut [u8],
) -> Result<(), ShapeError> {
    let per_channel = depthwise_packed_channel_bytes(bits, kernel);
    if weights.len() != channels * kernel || packed.len() != channels * per_channel {
        return Err(ShapeError);
    }
    for (c, dst) in packed.chunks_exact_mut(per_channel).enumerate() {
        let taps = (0..2 * crate::depthwise_pairs(kernel)).map(|t| {
            if t < kernel {
                weights[t * channels + c]
            } else {
                0
            }
        });
        pack_values(taps, bits, dst)?;
    }
    Ok(())
}

/// Unpacks `words` words of `BITS`-bit weights into `words · 16 / BITS` words of `i16` pairs
/// (the widened layout). Per word of 4-bit values: `EOR` (two's complement → offset binary),
/// two `AND` (one with a shifted operand), two `SSUB8` (back to signed bytes) and four
/// `SXTB16`; 2-bit values take four of each of the middle steps.
///
/// # Safety
/// `src` must have `words` readable, 4-byte aligned words, `dst` `words · 16 / BITS`
/// writable, 4-byte aligned words.
#[inline(always)]
pub unsafe fn unpack_words<const BITS: u32>(src: *const u32, words: usize, dst: *mut u32) {
    // SAFETY (all arms): within the ranges the caller guarantees.
    unsafe {
        match BITS {
            4 => {
                for i in 0..words {
                    let t = *src.add(i) ^ 0x8888_8888;
                    let lo = ssub8(t & 0x0f0f_0f0f, 0x0808_0808);
                    let hi = ssub8((t >> 4) & 0x0f0f_0f0f, 0x0808_0808);
                    let d = dst.add(4 * i);
                    *d = sxtb16(lo);
                    *d.add(1) = sxtb16(lo.rotate_right(8));
                    *d.add(2) = sxtb16(hi);
                    *d.add(3) = sxtb16(hi.rotate_right(8));
                }
            }
            2 => {
                for i in 0..words {
                    let t = *src.add(i) ^ 0xaaaa_aaaa;
                    let d = dst.add(8 * i);
                    for s in 0..4 {
                        let g = ssub8((t >> (2 * s)) & 0x0303_0303, 0x0202_0202);
                        *d.add(2 * s) = sxtb16(g);
                        *d.add(2 * s + 1) = sxtb16(g.rotate_right(8));
                    }
                }
            }
            _ => crate::dsp::widen_words(src, words, dst),
        }
    }
}

/// The `16 / BITS` weight pairs of one packed word (sub-byte only), each value scaled by
/// `2^(8 − BITS)`: masking a field group into the top bits of every byte makes a signed byte
/// of `value · 2^(8−BITS)`, so `SXTB16` needs no sign fix-up — two instructions fewer per
/// word than [`unpack_words`], which matters where every weight is used once (fully
/// connected). The caller divides the accumulated dot product by the scale, exactly.
#[inline(always)]
fn scaled_pairs<const BITS: u32>(w: u32) -> [u32; 8] {
    let mut p = [0u32; 8];
    let groups = (8 / BITS) as usize;
    let mask = match BITS {
        4 => 0xf0f0_f0f0u32,
        _ => 0xc0c0_c0c0,
    };
    for s in 0..groups {
        let g = (w << (8 - BITS * (s as u32 + 1))) & mask;
        p[2 * s] = sxtb16(g);
        p[2 * s + 1] = sxtb16(g.rotate_right(8));
    }
    p
}

/// `acc[j] += 2^(8−BITS) · Σ_k pair(window, k) · pair(weights, k, j)` over `pairs` pairs, on
/// one block of [`pack_weights_bits`] output (4- or 2-bit), unpacked in registers word by
/// word (see `scaled_pairs`); a word holds whole pairs of every channel of the block, since
/// `16 / BITS` is a multiple of `BLOCK`.
///
/// # Safety
/// `window` must have `2·pairs` readable `i16`; `weights` [`packed_block_bytes`]`(BITS,
/// BLOCK, 2·pairs) / 4` readable, 4-byte aligned words.
#[inline(always)]
pub unsafe fn dot_block_packed<const BLOCK: usize, const BITS: u32>(
    window: *const i16,
    weights: *const u32,
    pairs: usize,
    acc: &mut [i32; BLOCK],
) {
    let pairs_per_word = (16 / BITS) as usize;
    let k_per_word = pairs_per_word / BLOCK;
    let words = (pairs * BLOCK).div_ceil(pairs_per_word);
    for m in 0..words {
        // SAFETY: m < words readable words; k < pairs keeps the window read in range.
        unsafe {
            let p = scaled_pairs::<BITS>(*weights.add(m));
            for kk in 0..k_per_word {
                let k = m * k_per_word + kk;
                if k >= pairs {
                    break;
                }
                let a = crate::dsp::read_pair(window.add(2 * k));
                for (j, c) in acc.iter_mut().enumerate() {
                    *c = smlad(a, p[kk * BLOCK + j], *c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Unpacking (exact and scaled) gives back the widened layout of what was packed, for
    /// every value of every width.
    #[test]
    fn unpacking_inverts_packing() {
        for bits in [2u32, 4, 8] {
            let lo = -(1i32 << (bits - 1));
            let values: Vec<i8> = (0..64)
                .map(|i| (lo + (i * 7 + 3) % (1 << bits)) as i8)
                .collect();
            let mut packed = [0u8; 64];
            let packed = &mut packed[..packed_bytes(bits, values.len())];
            pack_values(values.iter().copied(), bits, packed).unwrap();
            let words: Vec<u32> = packed
                .chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let mut out = [0u32; 32];
            // SAFETY: `words` readable words, 32 writable words (64 values).
            unsafe {
                match bits {
                    2 => unpack_words::<2>(words.as_ptr(), words.len(), out.as_mut_ptr()),
                    4 => unpack_words::<4>(words.as_ptr(), words.len(), out.as_mut_ptr()),
                    _ => unpack_words::<8>(words.as_ptr(), words.len(), out.as_mut_ptr()),
                }
            }
            let halves: Vec<i8> = out
                .iter()
                .flat_map(|w| [*w as i16 as i8, (*w >> 16) as i16 as i8])
                .collect();
            assert_eq!(halves, values, "{bits} bits");
            if bits < 8 {
                let scale = 1i16 << (8 - bits);
                let scaled: Vec<i8> = words
                    .iter()
                    .flat_map(|&w| {
                        match bits {
                            2 => scaled_pairs::<2>(w),
                            _ => scaled_pairs::<4>(w),
                        }
                        .into_iter()
                        .take(16 / bits as usize)
                    })
                    .flat_map(|w| [w as i16 / scale, (w >> 16) as i16 / scale])
                    .map(|v| v as i8)
                    .collect();
                assert_eq!(scaled, values, "{bits} bits, scaled");
            }
        }
    }

    #[test]
    fn packing_refuses_values_out_of_range() {
        let mut out = [0u8; 4];
        assert!(pack_values([7i8, -8].into_iter(), 4, &mut out).is_ok());
        assert!(pack_values([8i8].into_iter(), 4, &mut out).is_err());
        assert!(pack_values([-3i8].into_iter(), 2, &mut out).is_err());
        assert!(pack_values([1i8].into_iter(), 3, &mut out).is_err());
    }
}
