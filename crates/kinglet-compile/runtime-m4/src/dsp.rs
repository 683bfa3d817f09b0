//! The few DSP-extension instructions the kernels use, as inline assembly on Cortex-M4/M7
//! (`thumbv7em` targets, see build.rs) and as portable Rust with identical results everywhere
//! else.

/// Two adjacent `i16` values as one word (first value in the low half), from any 2-byte
/// aligned address; Cortex-M4 loads it with one unaligned `LDR`.
///
/// # Safety
/// `p` and `p + 1` must be readable.
#[inline(always)]
pub unsafe fn read_pair(p: *const i16) -> u32 {
    // SAFETY: the caller guarantees two readable halfwords at p.
    unsafe { core::ptr::read_unaligned(p.cast::<u32>()) }
}

/// `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` on signed halfwords, wrapping.
#[cfg(kinglet_dsp)]
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: register-only arithmetic.
    unsafe {
        core::arch::asm!(
            "smlad {out}, {a}, {b}, {acc}",
            out = lateout(reg) out,
            a = in(reg) a,
            b = in(reg) b,
            acc = in(reg) acc,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` on signed halfwords, wrapping.
#[cfg(not(kinglet_dsp))]
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let lo = i32::from(a as i16) * i32::from(b as i16);
    let hi = i32::from((a >> 16) as i16) * i32::from((b >> 16) as i16);
    acc.wrapping_add(lo).wrapping_add(hi)
}

/// Sign-extends int8 values into `i16`, four at a time with `SXTB16` where available.
/// `out` must be at least as long as `input`.
#[inline(always)]
pub fn widen(input: &[i8], out: &mut [i16]) {
    let n = input.len().min(out.len());
    let (input, out) = (&input[..n], &mut out[..n]);
    #[cfg(kinglet_dsp)]
    {
        let quads = n / 4;
        let src = input.as_ptr();
        let dst = out.as_mut_ptr();
        for q in 0..quads {
            // SAFETY: q·4 + 3 < n for both buffers.
            unsafe {
                let word = core::ptr::read_unaligned(src.add(4 * q).cast::<u32>());
                let (lo, hi): (u32, u32);
                core::arch::asm!(
                    "sxtb16 {even}, {w}",
                    "sxtb16 {odd}, {w}, ror #8",
                    "pkhbt {lo}, {even}, {odd}, lsl #16",
                    "pkhtb {hi}, {odd}, {even}, asr #16",
                    w = in(reg) word,
                    even = out(reg) _,
                    odd = out(reg) _,
                    lo = lateout(reg) lo,
                    hi = lateout(reg) hi,
                    options(pure, nomem, nostack, preserves_flags),
                );
                core::ptr::write_unaligned(dst.add(4 * q).cast::<u32>(), lo);
                core::ptr::write_unaligned(dst.add(4 * q + 2).cast::<u32>(), hi);
            }
        }
        for i in 4 * quads..n {
            out[i] = i16::from(input[i]);
        }
    }
    #[cfg(not(kinglet_dsp))]
    for (o, i) in out.iter_mut().zip(input) {
        *o = i16::from(*i);
    }
}

/// Widens `words` words of int8 values packed `v0 v2 v1 v3` (see
/// [`crate::pack_weights_narrow`]) into `2·words` words of `i16` pairs `(v0, v1), (v2, v3)`:
/// `SXTB16` and `SXTB16 …, ROR #8` per word.
///
/// # Safety
/// `src` must have `words` readable, 4-byte aligned words, `dst` `2·words` writable words.
#[inline(always)]
pub unsafe fn widen_words(src: *const u32, words: usize, dst: *mut u32) {
    #[cfg(kinglet_dsp)]
    // SAFETY: forwarded from the caller.
    unsafe {
        asm_widen_words(src, words, dst);
    }
    #[cfg(not(kinglet_dsp))]
    for i in 0..words {
        // SAFETY: within the ranges the caller guarantees.
        unsafe {
            let w = *src.add(i);
            *dst.add(2 * i) = sxtb16(w);
            *dst.add(2 * i + 1) = sxtb16(w.rotate_right(8));
        }
    }
}

/// [`widen_words`] two words per iteration: one `LDRD`, four `SXTB16`, one `STM`.
#[cfg(kinglet_dsp)]
#[inline(always)]
unsafe fn asm_widen_words(src: *const u32, words: usize, dst: *mut u32) {
    // SAFETY: src has `words` readable aligned words and dst `2·words` writable words.
    unsafe {
        let mut s = src;
        let mut d = dst;
        let n = words >> 1;
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldrd {a}, {b}, [{s}], #8",
                "sxtb16 r0, {a}",
                "sxtb16 r1, {a}, ror #8",
                "sxtb16 r2, {b}",
                "sxtb16 r3, {b}, ror #8",
                "stm {d}!, {{r0, r1, r2, r3}}",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                s = inout(reg) s,
                d = inout(reg) d,
                a = out(reg) _,
                b = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack),
            );
        }
        if words & 1 != 0 {
            let w = *s;
            *d = sxtb16(w);
            *d.add(1) = sxtb16(w.rotate_right(8));
        }
    }
}

/// `SXTB16`: bytes 0 and 2 of `w`, sign-extended into the low and high halfwords.
#[cfg(kinglet_dsp)]
#[inline(always)]
pub fn sxtb16(w: u32) -> u32 {
    let out: u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        core::arch::asm!(
            "sxtb16 {out}, {w}",
            out = lateout(reg) out,
            w = in(reg) w,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// `SXTB16`: bytes 0 and 2 of `w`, sign-extended into the low and high halfwords.
#[cfg(not(kinglet_dsp))]
#[inline(always)]
pub fn sxtb16(w: u32) -> u32 {
    let lo = i32::from(w as u8 as i8) as u32 & 0xffff;
    let hi = i32::from((w >> 16) as u8 as i8) as u32;
    lo | (hi << 16)
}

/// `SSUB8`: byte-wise signed `a − b` (wrapping; the GE flags it sets are not used).
#[cfg(kinglet_dsp)]
#[inline(always)]
pub fn ssub8(a: u32, b: u32) -> u32 {
    let out: u32;
    // SAFETY: register-only arithmetic (it writes the APSR.GE bits, hence no preserves_flags).
    unsafe {
        core::arch::asm!(
            "ssub8 {out}, {a}, {b}",
            out = lateout(reg) out,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack),
        );
    }
    out
}

/// `SSUB8`: byte-wise signed `a − b` (wrapping; the GE flags it sets are not used).
#[cfg(not(kinglet_dsp))]
#[inline(always)]
pub fn ssub8(a: u32, b: u32) -> u32 {
    let x = a.to_le_bytes();
    let y = b.to_le_bytes();
    u32::from_le_bytes(core::array::from_fn(|i| {
        (x[i] as i8).wrapping_sub(y[i] as i8) as u8
    }))
}

/// `acc[j] += Σ_k pair(window, k) · pair(weights, k, j)` over `pairs` pairs, with
/// `weights` packed by [`crate::pack_weights`] for a block of `BLOCK` channels (pair `k` of
/// channel `j` at word `k·BLOCK + j`).
///
/// # Safety
/// `window` must have `2·pairs` readable `i16`; `weights` `pairs·BLOCK` readable words, and
/// on DSP targets be 4-byte aligned.
#[inline(always)]
pub unsafe fn dot_block<const BLOCK: usize>(
    window: *const i16,
    weights: *const u32,
    pairs: usize,
    acc: &mut [i32; BLOCK],
) {
    #[cfg(kinglet_dsp)]
    // SAFETY: forwarded from the caller.
    unsafe {
        match BLOCK {
            4 => return asm_dot4(window, weights, pairs, acc.as_mut_ptr()),
            2 => return asm_dot2(window, weights, pairs, acc.as_mut_ptr()),
            _ => {}
        }
    }
    #[cfg(kinglet_armv7m)]
    // SAFETY: forwarded from the caller.
    unsafe {
        match BLOCK {
            4 => return m3::dot4(window, weights.cast(), pairs, acc.as_mut_ptr()),
            2 => return m3::dot2(window, weights.cast(), pairs, acc.as_mut_ptr()),
            _ => {}
        }
    }
    #[cfg(target_arch = "riscv32")]
    // SAFETY: forwarded from the caller.
    unsafe {
        if pairs > 0 {
            match BLOCK {
                4 => return rv32::dot4(window, weights.cast(), pairs, acc.as_mut_ptr()),
                2 => return rv32::dot2(window, weights.cast(), pairs, acc.as_mut_ptr()),
                _ => {}
            }
        }
    }
    for k in 0..pairs {
        // SAFETY: within the ranges the caller guarantees.
        unsafe {
            let a = read_pair(window.add(2 * k));
            for (j, c) in acc.iter_mut().enumerate() {
                *c = smlad(a, core::ptr::read_unaligned(weights.add(k * BLOCK + j)), *c);
            }
        }
    }
}

/// [`dot_block`] at two positions (`window0`, `window1`) with the same weights, as a pooled
/// convolution needs: on the Arm cores two `dot_block` calls (their register files hold one
/// position's accumulators and operands, no more); on RISC-V, whose 31 registers hold both,
/// each weight is loaded once for the two positions (per pair of 4 channels: 4 activation and
/// 8 weight `LH`, 16 `MUL` and 16 `ADD`, where two single-position calls load 16 weights).
///
/// # Safety
/// As [`dot_block`], for both windows.
#[inline(always)]
pub unsafe fn dot_block_pair<const BLOCK: usize>(
    window0: *const i16,
    window1: *const i16,
    weights: *const u32,
    pairs: usize,
    acc0: &mut [i32; BLOCK],
    acc1: &mut [i32; BLOCK],
) {
    #[cfg(not(target_arch = "riscv32"))]
    // SAFETY: forwarded from the caller.
    unsafe {
        dot_block::<BLOCK>(window0, weights, pairs, acc0);
        dot_block::<BLOCK>(window1, weights, pairs, acc1);
    }
    #[cfg(target_arch = "riscv32")]
    // SAFETY: forwarded from the caller.
    unsafe {
        if pairs > 0 {
            match BLOCK {
                4 => {
                    return rv32::dot4_pair(
                        window0,
                        window1,
                        weights.cast(),
                        pairs,
                        acc0.as_mut_ptr(),
                        acc1.as_mut_ptr(),
                    );
                }
                2 => {
                    return rv32::dot2_pair(
                        window0,
                        window1,
                        weights.cast(),
                        pairs,
                        acc0.as_mut_ptr(),
                        acc1.as_mut_ptr(),
                    );
                }
                _ => {}
            }
        }
        dot_block_pair_portable::<BLOCK>(window0, window1, weights, pairs, acc0, acc1);
    }
}

/// RISC-V inner loops of [`dot_block_pair`]: the compiler unrolls the portable loop fully
/// (the pair count is a constant) and then spills the accumulators; written out, all of them
/// stay in registers and each pair costs 4 activation loads, `2·BLOCK` weight loads, `4·BLOCK`
/// `MUL` and `ADD`, three pointer steps and a branch.
#[cfg(target_arch = "riscv32")]
mod rv32 {
    /// [`super::dot_block`] for four channels at one position (convolutions without pooling):
    /// per pair 2 activation and 8 weight `LH`, 8 `MUL` and 8 `ADD`, two pointer steps and a
    /// branch, where the portable loop's halfword-pair splitting costs half again as much.
    ///
    /// # Safety
    /// `pairs > 0`; `window` has `2·pairs` readable `i16`, `weights` `8·pairs`; `acc` four `i32`.
    #[inline(always)]
    pub(super) unsafe fn dot4(
        window: *const i16,
        weights: *const i16,
        pairs: usize,
        acc: *mut i32,
    ) {
        // SAFETY: four accumulators (BLOCK = 4).
        let [mut c0, mut c1, mut c2, mut c3] = unsafe { *acc.cast::<[i32; 4]>() };
        // SAFETY: memory ranges from the caller.
        unsafe {
            core::arch::asm!(
                "2:",
                "lh {xa}, 0({p})",
                "lh {xb}, 2({p})",
                "lh {wa}, 0({w})",
                "lh {wb}, 2({w})",
                "mul {wa}, {wa}, {xa}", "add {c0}, {c0}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c0}, {c0}, {wb}",
                "lh {wa}, 4({w})",
                "lh {wb}, 6({w})",
                "mul {wa}, {wa}, {xa}", "add {c1}, {c1}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c1}, {c1}, {wb}",
                "lh {wa}, 8({w})",
                "lh {wb}, 10({w})",
                "mul {wa}, {wa}, {xa}", "add {c2}, {c2}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c2}, {c2}, {wb}",
                "lh {wa}, 12({w})",
                "lh {wb}, 14({w})",
                "mul {wa}, {wa}, {xa}", "add {c3}, {c3}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c3}, {c3}, {wb}",
                "addi {p}, {p}, 4",
                "addi {w}, {w}, 16",
                "bne {w}, {end}, 2b",
                p = inout(reg) window => _,
                w = inout(reg) weights => _,
                end = in(reg) weights.add(8 * pairs),
                xa = out(reg) _,
                xb = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                c2 = inout(reg) c2,
                c3 = inout(reg) c3,
                options(nostack, readonly),
            );
            *acc.cast::<[i32; 4]>() = [c0, c1, c2, c3];
        }
    }

    /// [`dot4`] for two channels.
    ///
    /// # Safety
    /// `pairs > 0`; `window` has `2·pairs` readable `i16`, `weights` `4·pairs`; `acc` two `i32`.
    #[inline(always)]
    pub(super) unsafe fn dot2(
        window: *const i16,
        weights: *const i16,
        pairs: usize,
        acc: *mut i32,
    ) {
        // SAFETY: two accumulators (BLOCK = 2).
        let [mut c0, mut c1] = unsafe { *acc.cast::<[i32; 2]>() };
        // SAFETY: memory ranges from the caller.
        unsafe {
            core::arch::asm!(
                "2:",
                "lh {xa}, 0({p})",
                "lh {xb}, 2({p})",
                "lh {wa}, 0({w})",
                "lh {wb}, 2({w})",
                "mul {wa}, {wa}, {xa}", "add {c0}, {c0}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c0}, {c0}, {wb}",
                "lh {wa}, 4({w})",
                "lh {wb}, 6({w})",
                "mul {wa}, {wa}, {xa}", "add {c1}, {c1}, {wa}",
                "mul {wb}, {wb}, {xb}", "add {c1}, {c1}, {wb}",
                "addi {p}, {p}, 4",
                "addi {w}, {w}, 8",
                "bne {w}, {end}, 2b",
                p = inout(reg) window => _,
                w = inout(reg) weights => _,
                end = in(reg) weights.add(4 * pairs),
                xa = out(reg) _,
                xb = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                options(nostack, readonly),
            );
            *acc.cast::<[i32; 2]>() = [c0, c1];
        }
    }

    /// Four channels at two positions.
    ///
    /// # Safety
    /// `pairs > 0`; each window has `2·pairs` readable `i16`, `weights` `8·pairs`; `acc0` and
    /// `acc1` four `i32` each.
    #[inline(always)]
    pub(super) unsafe fn dot4_pair(
        window0: *const i16,
        window1: *const i16,
        weights: *const i16,
        pairs: usize,
        acc0: *mut i32,
        acc1: *mut i32,
    ) {
        // SAFETY: four accumulators each (BLOCK = 4).
        let [mut c00, mut c01, mut c02, mut c03] = unsafe { *acc0.cast::<[i32; 4]>() };
        // SAFETY: as above.
        let [mut c10, mut c11, mut c12, mut c13] = unsafe { *acc1.cast::<[i32; 4]>() };
        // SAFETY: memory ranges from the caller; the loop reads 2·pairs values of each window
        // and 8·pairs weights.
        unsafe {
            core::arch::asm!(
                "2:",
                "lh {xa}, 0({p0})",
                "lh {xb}, 2({p0})",
                "lh {ya}, 0({p1})",
                "lh {yb}, 2({p1})",
                "lh {wa}, 0({w})",
                "lh {wb}, 2({w})",
                "mul {t}, {xa}, {wa}", "add {c00}, {c00}, {t}",
                "mul {t}, {xb}, {wb}", "add {c00}, {c00}, {t}",
                "mul {t}, {ya}, {wa}", "add {c10}, {c10}, {t}",
                "mul {t}, {yb}, {wb}", "add {c10}, {c10}, {t}",
                "lh {wa}, 4({w})",
                "lh {wb}, 6({w})",
                "mul {t}, {xa}, {wa}", "add {c01}, {c01}, {t}",
                "mul {t}, {xb}, {wb}", "add {c01}, {c01}, {t}",
                "mul {t}, {ya}, {wa}", "add {c11}, {c11}, {t}",
                "mul {t}, {yb}, {wb}", "add {c11}, {c11}, {t}",
                "lh {wa}, 8({w})",
                "lh {wb}, 10({w})",
                "mul {t}, {xa}, {wa}", "add {c02}, {c02}, {t}",
                "mul {t}, {xb}, {wb}", "add {c02}, {c02}, {t}",
                "mul {t}, {ya}, {wa}", "add {c12}, {c12}, {t}",
                "mul {t}, {yb}, {wb}", "add {c12}, {c12}, {t}",
                "lh {wa}, 12({w})",
                "lh {wb}, 14({w})",
                "mul {t}, {xa}, {wa}", "add {c03}, {c03}, {t}",
                "mul {t}, {xb}, {wb}", "add {c03}, {c03}, {t}",
                "mul {t}, {ya}, {wa}", "add {c13}, {c13}, {t}",
                "mul {t}, {yb}, {wb}", "add {c13}, {c13}, {t}",
                "addi {p0}, {p0}, 4",
                "addi {p1}, {p1}, 4",
                "addi {w}, {w}, 16",
                "bne {w}, {end}, 2b",
                p0 = inout(reg) window0 => _,
                p1 = inout(reg) window1 => _,
                w = inout(reg) weights => _,
                end = in(reg) weights.add(8 * pairs),
                xa = out(reg) _,
                xb = out(reg) _,
                ya = out(reg) _,
                yb = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                c00 = inout(reg) c00,
                c01 = inout(reg) c01,
                c02 = inout(reg) c02,
                c03 = inout(reg) c03,
                c10 = inout(reg) c10,
                c11 = inout(reg) c11,
                c12 = inout(reg) c12,
                c13 = inout(reg) c13,
                options(nostack, readonly),
            );
        }
        // SAFETY: as on entry.
        unsafe {
            *acc0.cast::<[i32; 4]>() = [c00, c01, c02, c03];
            *acc1.cast::<[i32; 4]>() = [c10, c11, c12, c13];
        }
    }

    /// Two channels at two positions.
    ///
    /// # Safety
    /// `pairs > 0`; each window has `2·pairs` readable `i16`, `weights` `4·pairs`; `acc0` and
    /// `acc1` two `i32` each.
    #[inline(always)]
    pub(super) unsafe fn dot2_pair(
        window0: *const i16,
        window1: *const i16,
        weights: *const i16,
        pairs: usize,
        acc0: *mut i32,
        acc1: *mut i32,
    ) {
        // SAFETY: two accumulators each (BLOCK = 2).
        let [mut c00, mut c01] = unsafe { *acc0.cast::<[i32; 2]>() };
        // SAFETY: as above.
        let [mut c10, mut c11] = unsafe { *acc1.cast::<[i32; 2]>() };
        // SAFETY: memory ranges from the caller; the loop reads 2·pairs values of each window
        // and 4·pairs weights.
        unsafe {
            core::arch::asm!(
                "2:",
                "lh {xa}, 0({p0})",
                "lh {xb}, 2({p0})",
                "lh {ya}, 0({p1})",
                "lh {yb}, 2({p1})",
                "lh {wa}, 0({w})",
                "lh {wb}, 2({w})",
                "mul {t}, {xa}, {wa}", "add {c00}, {c00}, {t}",
                "mul {t}, {xb}, {wb}", "add {c00}, {c00}, {t}",
                "mul {t}, {ya}, {wa}", "add {c10}, {c10}, {t}",
                "mul {t}, {yb}, {wb}", "add {c10}, {c10}, {t}",
                "lh {wa}, 4({w})",
                "lh {wb}, 6({w})",
                "mul {t}, {xa}, {wa}", "add {c01}, {c01}, {t}",
                "mul {t}, {xb}, {wb}", "add {c01}, {c01}, {t}",
                "mul {t}, {ya}, {wa}", "add {c11}, {c11}, {t}",
                "mul {t}, {yb}, {wb}", "add {c11}, {c11}, {t}",
                "addi {p0}, {p0}, 4",
                "addi {p1}, {p1}, 4",
                "addi {w}, {w}, 8",
                "bne {w}, {end}, 2b",
                p0 = inout(reg) window0 => _,
                p1 = inout(reg) window1 => _,
                w = inout(reg) weights => _,
                end = in(reg) weights.add(4 * pairs),
                xa = out(reg) _,
                xb = out(reg) _,
                ya = out(reg) _,
                yb = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                c00 = inout(reg) c00,
                c01 = inout(reg) c01,
                c10 = inout(reg) c10,
                c11 = inout(reg) c11,
                options(nostack, readonly),
            );
        }
        // SAFETY: as on entry.
        unsafe {
            *acc0.cast::<[i32; 2]>() = [c00, c01];
            *acc1.cast::<[i32; 2]>() = [c10, c11];
        }
    }
}

/// [`dot_block_pair`] with each weight loaded once: the RISC-V inner loop, and on the host the
/// same code under test.
///
/// # Safety
/// As [`dot_block`], for both windows.
#[inline(always)]
pub unsafe fn dot_block_pair_portable<const BLOCK: usize>(
    window0: *const i16,
    window1: *const i16,
    weights: *const u32,
    pairs: usize,
    acc0: &mut [i32; BLOCK],
    acc1: &mut [i32; BLOCK],
) {
    let w = weights.cast::<i16>();
    for k in 0..pairs {
        // SAFETY: within the ranges the caller guarantees (2·pairs values per window,
        // 2·BLOCK·pairs weight halfwords).
        unsafe {
            let x0a = i32::from(*window0.add(2 * k));
            let x0b = i32::from(*window0.add(2 * k + 1));
            let x1a = i32::from(*window1.add(2 * k));
            let x1b = i32::from(*window1.add(2 * k + 1));
            let row = w.add(2 * k * BLOCK);
            for j in 0..BLOCK {
                let wa = i32::from(*row.add(2 * j));
                let wb = i32::from(*row.add(2 * j + 1));
                acc0[j] = acc0[j]
                    .wrapping_add(x0a.wrapping_mul(wa))
                    .wrapping_add(x0b.wrapping_mul(wb));
                acc1[j] = acc1[j]
                    .wrapping_add(x1a.wrapping_mul(wa))
                    .wrapping_add(x1b.wrapping_mul(wb));
            }
        }
    }
}

/// [`dot_block`] on weights kept int8 by [`crate::pack_weights_narrow`]: pair `i = k·BLOCK + j`
/// is `SXTB16` of word `i / 2`, rotated right by 8 first when `i` is odd. Each weight pair is
/// read straight from flash and widened in a register (one `SXTB16` per `SMLAD`), so a layer
/// whose weights are used once per inference (fully connected) pays no scratch copy.
///
/// # Safety
/// `window` must have `2·pairs` readable `i16`; `weights` `⌈pairs·BLOCK / 2⌉` readable
/// 4-byte aligned words.
#[inline(always)]
pub unsafe fn dot_block_narrow<const BLOCK: usize>(
    window: *const i16,
    weights: *const u32,
    pairs: usize,
    acc: &mut [i32; BLOCK],
) {
    #[cfg(kinglet_dsp)]
    // SAFETY: forwarded from the caller.
    unsafe {
        match BLOCK {
            4 => return asm_dot4_narrow(window, weights, pairs, acc.as_mut_ptr()),
            2 => return asm_dot2_narrow(window, weights, pairs, acc.as_mut_ptr()),
            _ => {}
        }
    }
    for k in 0..pairs {
        // SAFETY: within the ranges the caller guarantees.
        unsafe {
            let a = read_pair(window.add(2 * k));
            for (j, c) in acc.iter_mut().enumerate() {
                let i = k * BLOCK + j;
                let word = *weights.add(i / 2);
                let w = sxtb16(if i.is_multiple_of(2) {
                    word
                } else {
                    word.rotate_right(8)
                });
                *c = smlad(a, w, *c);
            }
        }
    }
}

/// Four narrow channels: per pair one `LDR` of activations, one `LDRD` of two words (four
/// int8 weight pairs), four `SXTB16` and four `SMLAD`; two pairs per loop iteration.
#[cfg(kinglet_dsp)]
#[inline(always)]
unsafe fn asm_dot4_narrow(window: *const i16, weights: *const u32, pairs: usize, acc: *mut i32) {
    // SAFETY: acc points at four accumulators (BLOCK = 4); memory ranges from the caller.
    unsafe {
        let (mut c0, mut c1, mut c2, mut c3) = (*acc, *acc.add(1), *acc.add(2), *acc.add(3));
        let mut win = window;
        let mut w = weights;
        if pairs & 1 != 0 {
            core::arch::asm!(
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                "sxtb16 {t}, {w1}",
                "smlad {c2}, {a}, {t}, {c2}",
                "sxtb16 {t}, {w1}, ror #8",
                "smlad {c3}, {a}, {t}, {c3}",
                win = inout(reg) win,
                w = inout(reg) w,
                a = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                t = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                c2 = inout(reg) c2,
                c3 = inout(reg) c3,
                options(nostack, readonly, preserves_flags),
            );
        }
        let n = pairs >> 1;
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                "sxtb16 {t}, {w1}",
                "smlad {c2}, {a}, {t}, {c2}",
                "sxtb16 {t}, {w1}, ror #8",
                "smlad {c3}, {a}, {t}, {c3}",
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                "sxtb16 {t}, {w1}",
                "smlad {c2}, {a}, {t}, {c2}",
                "sxtb16 {t}, {w1}, ror #8",
                "smlad {c3}, {a}, {t}, {c3}",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                win = inout(reg) win => _,
                w = inout(reg) w => _,
                a = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                t = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                c2 = inout(reg) c2,
                c3 = inout(reg) c3,
                options(nostack, readonly),
            );
        }
        *acc = c0;
        *acc.add(1) = c1;
        *acc.add(2) = c2;
        *acc.add(3) = c3;
    }
}

/// Two narrow channels: per pair one `LDR` of activations, one `LDR` of a word (two int8
/// weight pairs), two `SXTB16` and two `SMLAD`; two pairs per loop iteration.
#[cfg(kinglet_dsp)]
#[inline(always)]
unsafe fn asm_dot2_narrow(window: *const i16, weights: *const u32, pairs: usize, acc: *mut i32) {
    // SAFETY: acc points at two accumulators (BLOCK = 2); memory ranges from the caller.
    unsafe {
        let (mut c0, mut c1) = (*acc, *acc.add(1));
        let mut win = window;
        let mut w = weights;
        if pairs & 1 != 0 {
            core::arch::asm!(
                "ldr {a}, [{win}], #4",
                "ldr {w0}, [{w}], #4",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                win = inout(reg) win,
                w = inout(reg) w,
                a = out(reg) _,
                w0 = out(reg) _,
                t = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                options(nostack, readonly, preserves_flags),
            );
        }
        let n = pairs >> 1;
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {a}, [{win}], #4",
                "ldr {w0}, [{w}], #4",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                "ldr {a}, [{win}], #4",
                "ldr {w0}, [{w}], #4",
                "sxtb16 {t}, {w0}",
                "smlad {c0}, {a}, {t}, {c0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {c1}, {a}, {t}, {c1}",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                win = inout(reg) win => _,
                w = inout(reg) w => _,
                a = out(reg) _,
                w0 = out(reg) _,
                t = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                options(nostack, readonly),
            );
        }
        *acc = c0;
        *acc.add(1) = c1;
    }
}

/// Four channels: per pair one `LDR` of activations, one `LDM` of four weight pairs, four
/// `SMLAD`; two pairs per loop iteration.
#[cfg(kinglet_dsp)]
#[inline(always)]
unsafe fn asm_dot4(window: *const i16, weights: *const u32, pairs: usize, acc: *mut i32) {
    // SAFETY: acc points at four accumulators (BLOCK = 4); memory ranges from the caller.
    unsafe {
        let (mut c0, mut c1, mut c2, mut c3) = (*acc, *acc.add(1), *acc.add(2), *acc.add(3));
        let mut win = window;
        let mut w = weights;
        if pairs & 1 != 0 {
            core::arch::asm!(
                "ldr {a}, [{win}], #4",
                "ldm {w}!, {{r0, r1, r2, r3}}",
                "smlad {c0}, {a}, r0, {c0}",
                "smlad {c1}, {a}, r1, {c1}",
                "smlad {c2}, {a}, r2, {c2}",
                "smlad {c3}, {a}, r3, {c3}",
                win = inout(reg) win,
                w = inout(reg) w,
                a = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                c2 = inout(reg) c2,
                c3 = inout(reg) c3,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack, readonly, preserves_flags),
            );
        }
        let n = pairs >> 1;
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {a}, [{win}], #4",
                "ldm {w}!, {{r0, r1, r2, r3}}",
                "smlad {c0}, {a}, r0, {c0}",
                "smlad {c1}, {a}, r1, {c1}",
                "smlad {c2}, {a}, r2, {c2}",
                "smlad {c3}, {a}, r3, {c3}",
                "ldr {a}, [{win}], #4",
                "ldm {w}!, {{r0, r1, r2, r3}}",
                "smlad {c0}, {a}, r0, {c0}",
                "smlad {c1}, {a}, r1, {c1}",
                "smlad {c2}, {a}, r2, {c2}",
                "smlad {c3}, {a}, r3, {c3}",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                win = inout(reg) win => _,
                w = inout(reg) w => _,
                a = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                c2 = inout(reg) c2,
                c3 = inout(reg) c3,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack, readonly),
            );
        }
        *acc = c0;
        *acc.add(1) = c1;
        *acc.add(2) = c2;
        *acc.add(3) = c3;
    }
}

/// Two channels: per pair one `LDR` of activations, one `LDRD` of two weight pairs, two
/// `SMLAD`; two pairs per loop iteration.
#[cfg(kinglet_dsp)]
#[inline(always)]
unsafe fn asm_dot2(window: *const i16, weights: *const u32, pairs: usize, acc: *mut i32) {
    // SAFETY: acc points at two accumulators (BLOCK = 2); memory ranges from the caller.
    unsafe {
        let (mut c0, mut c1) = (*acc, *acc.add(1));
        let mut win = window;
        let mut w = weights;
        if pairs & 1 != 0 {
            core::arch::asm!(
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "smlad {c0}, {a}, {w0}, {c0}",
                "smlad {c1}, {a}, {w1}, {c1}",
                win = inout(reg) win,
                w = inout(reg) w,
                a = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                options(nostack, readonly, preserves_flags),
            );
        }
        let n = pairs >> 1;
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "smlad {c0}, {a}, {w0}, {c0}",
                "smlad {c1}, {a}, {w1}, {c1}",
                "ldr {a}, [{win}], #4",
                "ldrd {w0}, {w1}, [{w}], #8",
                "smlad {c0}, {a}, {w0}, {c0}",
                "smlad {c1}, {a}, {w1}, {c1}",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                win = inout(reg) win => _,
                w = inout(reg) w => _,
                a = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                c0 = inout(reg) c0,
                c1 = inout(reg) c1,
                options(nostack, readonly),
            );
        }
        *acc = c0;
        *acc.add(1) = c1;
    }
}

/// Cortex-M3 inner loops. Without `SMLAD` every product is one `MLA` of sign-extended
/// halfwords; `LDRSH` with post-increment sign-extends for free while loading, so each weight
/// and activation costs one load and each MAC one `MLA` (what measured best: splitting a
/// loaded pair with `SXTH`/`ASR` costs the same instruction per value and a register more).
/// The packed layout of [`crate::pack_weights`] is read in order: pair `k` of channel `j` is
/// halfwords `2(k·BLOCK + j)` and `+1`.
#[cfg(kinglet_armv7m)]
mod m3 {
    /// Four channels, two pairs per loop iteration: 4 `LDRSH` of activations, 16 of weights,
    /// 16 `MLA`.
    ///
    /// # Safety
    /// `window` must have `2·pairs` readable `i16`, `weights` `8·pairs`, `acc` four `i32`.
    #[inline(always)]
    pub(super) unsafe fn dot4(
        window: *const i16,
        weights: *const i16,
        pairs: usize,
        acc: *mut i32,
    ) {
        // SAFETY: memory ranges from the caller.
        unsafe {
            let (mut c0, mut c1, mut c2, mut c3) = (*acc, *acc.add(1), *acc.add(2), *acc.add(3));
            let mut win = window;
            let mut w = weights;
            if pairs & 1 != 0 {
                core::arch::asm!(
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a0}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a1}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a0}, {t}, {c3}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a1}, {t}, {c3}",
                    win = inout(reg) win,
                    w = inout(reg) w,
                    a0 = out(reg) _,
                    a1 = out(reg) _,
                    t = out(reg) _,
                    c0 = inout(reg) c0,
                    c1 = inout(reg) c1,
                    c2 = inout(reg) c2,
                    c3 = inout(reg) c3,
                    options(nostack, readonly, preserves_flags),
                );
            }
            let n = pairs >> 1;
            if n > 0 {
                core::arch::asm!(
                    "2:",
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a0}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a1}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a0}, {t}, {c3}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a1}, {t}, {c3}",
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a0}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c2}, {a1}, {t}, {c2}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a0}, {t}, {c3}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c3}, {a1}, {t}, {c3}",
                    "subs {n}, #1",
                    "bne 2b",
                    n = inout(reg) n => _,
                    win = inout(reg) win => _,
                    w = inout(reg) w => _,
                    a0 = out(reg) _,
                    a1 = out(reg) _,
                    t = out(reg) _,
                    c0 = inout(reg) c0,
                    c1 = inout(reg) c1,
                    c2 = inout(reg) c2,
                    c3 = inout(reg) c3,
                    options(nostack, readonly),
                );
            }
            *acc = c0;
            *acc.add(1) = c1;
            *acc.add(2) = c2;
            *acc.add(3) = c3;
        }
    }

    /// Two channels, two pairs per loop iteration: 4 `LDRSH` of activations, 8 of weights,
    /// 8 `MLA`.
    ///
    /// # Safety
    /// `window` must have `2·pairs` readable `i16`, `weights` `4·pairs`, `acc` two `i32`.
    #[inline(always)]
    pub(super) unsafe fn dot2(
        window: *const i16,
        weights: *const i16,
        pairs: usize,
        acc: *mut i32,
    ) {
        // SAFETY: memory ranges from the caller.
        unsafe {
            let (mut c0, mut c1) = (*acc, *acc.add(1));
            let mut win = window;
            let mut w = weights;
            if pairs & 1 != 0 {
                core::arch::asm!(
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    win = inout(reg) win,
                    w = inout(reg) w,
                    a0 = out(reg) _,
                    a1 = out(reg) _,
                    t = out(reg) _,
                    c0 = inout(reg) c0,
                    c1 = inout(reg) c1,
                    options(nostack, readonly, preserves_flags),
                );
            }
            let n = pairs >> 1;
            if n > 0 {
                core::arch::asm!(
                    "2:",
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    "ldrsh {a0}, [{win}], #2",
                    "ldrsh {a1}, [{win}], #2",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a0}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c0}, {a1}, {t}, {c0}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a0}, {t}, {c1}",
                    "ldrsh {t}, [{w}], #2",
                    "mla {c1}, {a1}, {t}, {c1}",
                    "subs {n}, #1",
                    "bne 2b",
                    n = inout(reg) n => _,
                    win = inout(reg) win => _,
                    w = inout(reg) w => _,
                    a0 = out(reg) _,
                    a1 = out(reg) _,
                    t = out(reg) _,
                    c0 = inout(reg) c0,
                    c1 = inout(reg) c1,
                    options(nostack, readonly),
                );
            }
            *acc = c0;
            *acc.add(1) = c1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smlad_matches_definition() {
        let a = (0x8001u32 << 16) | 0x7fff;
        let b = (0x7fffu32 << 16) | 0x8000;
        let expected = 5i32
            .wrapping_add(0x7fff * -0x8000)
            .wrapping_add(-0x7fff * 0x7fff);
        assert_eq!(smlad(a, b, 5), expected);
    }

    #[test]
    fn dot_block_pair_matches_two_dot_blocks() {
        let mut x = 7u32;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((x >> 16) as u8 as i8) as i16
        };
        for pairs in [1, 2, 3, 7] {
            let window: [i16; 22] = core::array::from_fn(|_| next());
            let weights: [u32; 28] =
                core::array::from_fn(|_| (next() as u16 as u32) | ((next() as u16 as u32) << 16));
            let (mut a0, mut a1) = ([1, -2, 3, -4], [5, 6, -7, 8]);
            let (mut b0, mut b1) = (a0, a1);
            let w1 = window[3..].as_ptr();
            // SAFETY: the windows hold at least 2·pairs values past their starts (pairs ≤ 7), the
            // weights at least 4·pairs words.
            unsafe {
                dot_block::<4>(window.as_ptr(), weights.as_ptr(), pairs, &mut a0);
                dot_block::<4>(w1, weights.as_ptr(), pairs, &mut a1);
                dot_block_pair_portable::<4>(
                    window.as_ptr(),
                    w1,
                    weights.as_ptr(),
                    pairs,
                    &mut b0,
                    &mut b1,
                );
            }
            assert_eq!((a0, a1), (b0, b1), "{pairs} pairs");
        }
    }

    #[test]
    fn sxtb16_takes_bytes_0_and_2() {
        assert_eq!(sxtb16(0x7f80_ff01), 0xff80_0001);
        assert_eq!(sxtb16(0x7f80_ff01u32.rotate_right(8)), 0x007f_ffff);
    }

    #[test]
    fn ssub8_subtracts_bytes_without_borrow() {
        assert_eq!(ssub8(0x0f00_0807, 0x0808_0808), 0x07f8_00ff);
        assert_eq!(ssub8(0x8000_7f01, 0x0101_ff02), 0x7fff_80ff);
    }

    #[test]
    fn widen_sign_extends_in_order() {
        let input: [i8; 7] = [-128, -1, 0, 1, 127, -5, 6];
        let mut out = [0i16; 8];
        widen(&input, &mut out);
        assert_eq!(out, [-128, -1, 0, 1, 127, -5, 6, 0]);
    }
}
