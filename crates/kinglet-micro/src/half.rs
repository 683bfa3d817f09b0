//! IEEE half-precision (binary16) constants widened to f32: float16 models keep their weights
//! as half floats in flash and widen them when a layer runs. The conversion is exact (every
//! half value is an f32 value), so a kernel fed widened weights computes exactly what it
//! computes on weights widened ahead of time.

use crate::error::{KernelError, check_len};

/// The f32 with the value of the half float `bits`. On bare-metal Arm cores with a hardware
/// FPU (`*-none-eabihf`: Cortex-M4F, M7, M33, …, whose FPUs all convert half floats) one
/// `VCVTB.F32.F16` instruction, which gives the same value for every input except
/// signalling NaNs (quietened there); elsewhere [`f16_to_f32_soft`].
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
    {
        let out: u32;
        // Rust does not expose the FPU registers on this target (`sreg` needs `vfp2`), so the
        // conversion borrows s15 and puts its value back: five instructions, no memory.
        // SAFETY: s15 is restored before the block ends; no memory, stack or flags touched.
        unsafe {
            core::arch::asm!(
                "vmov {saved}, s15",
                "vmov s15, {half}",
                "vcvtb.f32.f16 s15, s15",
                "vmov {out}, s15",
                "vmov s15, {saved}",
                half = in(reg) u32::from(bits),
                saved = out(reg) _,
                out = lateout(reg) out,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        f32::from_bits(out)
    }
    #[cfg(not(all(target_arch = "arm", target_abi = "eabihf", target_os = "none")))]
    {
        f16_to_f32_soft(bits)
    }
}

/// [`f16_to_f32`] in integer arithmetic (NaN payloads kept).
#[inline]
pub fn f16_to_f32_soft(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let mant = u32::from(bits & 0x3ff);
    let out = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal m·2^-24: shift the top set bit into the implicit-one position.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((m << shift) & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(out)
}

/// Widens `src` into `dst` (same length). Out of line: one copy serves every layer.
#[inline(never)]
pub fn dequantize_f16(src: &[u16], dst: &mut [f32]) -> Result<(), KernelError> {
    check_len("float16 dequantize output", dst.len(), src.len())?;
    let done = widen_pairs(src, dst);
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = f16_to_f32(s);
    }
    Ok(())
}

/// Widens whole pairs with `VCVTB`/`VCVTT` (3.5 instructions per value); returns how many
/// values it wrote. `dst` holds at least `src.len()` values.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
fn widen_pairs(src: &[u16], dst: &mut [f32]) -> usize {
    let pairs = src.len().min(dst.len()) / 2;
    if pairs == 0 {
        return 0;
    }
    // SAFETY: reads `2·pairs` halves from `src` (one unaligned word per pair, which the
    // Cortex-M4 supports for LDR) and writes `2·pairs` aligned f32 values to `dst`, both in
    // bounds; s14/s15 are saved in core registers and restored.
    unsafe {
        core::arch::asm!(
            "vmov {s14}, {s15}, s14, s15",
            "2:",
            "ldr {word}, [{src}], #4",
            "vmov s15, {word}",
            "vcvtb.f32.f16 s14, s15",
            "vcvtt.f32.f16 s15, s15",
            "vstmia {dst}!, {{s14, s15}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vmov s14, s15, {s14}, {s15}",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) pairs => _,
            word = out(reg) _,
            s14 = out(reg) _,
            s15 = out(reg) _,
            options(nostack),
        );
    }
    2 * pairs
}

#[cfg(not(all(target_arch = "arm", target_abi = "eabihf", target_os = "none")))]
fn widen_pairs(_src: &[u16], _dst: &mut [f32]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        // Every finite half is its sign · mantissa · 2^exponent.
        for bits in 0u16..0x7c00 {
            let (e, m) = (i32::from(bits >> 10), f64::from(bits & 0x3ff));
            let value = if e == 0 {
                m * 2f64.powi(-24)
            } else {
                (1024.0 + m) * 2f64.powi(e - 25)
            };
            assert_eq!(f64::from(f16_to_f32(bits)), value, "{bits:#06x}");
            assert_eq!(f16_to_f32(bits | 0x8000), -f16_to_f32(bits));
        }
        let mut out = [0f32; 2];
        dequantize_f16(&[0x3c00, 0xc000], &mut out).unwrap();
        assert_eq!(out, [1.0, -2.0]);
        assert!(dequantize_f16(&[0x3c00], &mut out).is_err());
    }
}
