//! Concatenation along any axis. A tensor concatenated along axis `a` is viewed as
//! `[outer, axis_len · inner]` where `outer` is the product of the dimensions before `a` and
//! `inner` of those after it; each input contributes one row segment per outer index.
//!
//! Quantised inputs whose scale/zero point differ from the output's are requantised as TFLite
//! `ConcatenationWithScaling` does (single-precision float:
//! `round(q · (s_in / s_out) − zp_in · (s_in / s_out)) + zp_out`, clamped); equal ones are
//! copied.

use crate::error::{KernelError, check_len, ensure_param};
use crate::fmath::round_f32;
use crate::tensor::Quant8;

/// One input: its data and the length of its row segment (`axis_len · inner`).
#[derive(Clone, Copy, Debug)]
pub struct ConcatInput<'a, T> {
    /// Elements of the input tensor.
    pub data: &'a [T],
    /// Elements per outer index (`axis_len · inner`).
    pub row_len: usize,
}

/// One quantised input with its quantisation.
#[derive(Clone, Copy, Debug)]
pub struct ConcatInputQuant<'a, T> {
    /// Data and row length.
    pub input: ConcatInput<'a, T>,
    /// Input scale.
    pub scale: f32,
    /// Input zero point.
    pub zero_point: i32,
}

fn check_parts<'a, T: 'a>(
    outer: usize,
    parts: impl Iterator<Item = ConcatInput<'a, T>>,
    out_len: usize,
) -> Result<usize, KernelError> {
    let mut out_row = 0usize;
    for p in parts {
        let len = outer
            .checked_mul(p.row_len)
            .ok_or(KernelError::InvalidParam {
                what: "concatenation: size overflows",
            })?;
        check_len("concatenation input", p.data.len(), len)?;
        out_row = out_row
            .checked_add(p.row_len)
            .ok_or(KernelError::InvalidParam {
                what: "concatenation: size overflows",
            })?;
    }
    check_len(
        "concatenation output",
        out_len,
        outer
            .checked_mul(out_row)
            .ok_or(KernelError::InvalidParam {
                what: "concatenation: size overflows",
            })?,
    )?;
    Ok(out_row)
}

/// Concatenates without requantisation (f32, or 8-bit inputs sharing the output's quantisation).
pub fn concatenation<T: Copy>(
    outer: usize,
    inputs: &[ConcatInput<'_, T>],
    output: &mut [T],
) -> Result<(), KernelError> {
    let out_row = check_parts(outer, inputs.iter().copied(), output.len())?;
    if out_row == 0 {
        return Ok(());
    }
    for (o, row) in output.chunks_exact_mut(out_row).enumerate() {
        let mut at = 0;
        for p in inputs {
            row[at..at + p.row_len].copy_from_slice(&p.data[o * p.row_len..(o + 1) * p.row_len]);
            at += p.row_len;
        }
    }
    Ok(())
}

/// Concatenates 8-bit inputs into an output with `output_scale`/`output_zero_point`,
/// requantising inputs whose quantisation differs.
pub fn concatenation_requant<T: Quant8>(
    outer: usize,
    inputs: &[ConcatInputQuant<'_, T>],
    output_scale: f32,
    output_zero_point: i32,
    output: &mut [T],
) -> Result<(), KernelError> {
    ensure_param(
        output_scale > 0.0 && output_scale.is_finite(),
        "concatenation: output scale must be positive",
    )?;
    let out_row = check_parts(outer, inputs.iter().map(|p| p.input), output.len())?;
    if out_row == 0 {
        return Ok(());
    }
    let inverse_output_scale = 1.0f32 / output_scale;
    for (o, row) in output.chunks_exact_mut(out_row).enumerate() {
        let mut at = 0;
        for p in inputs {
            let len = p.input.row_len;
            let src = &p.input.data[o * len..(o + 1) * len];
            let dst = &mut row[at..at + len];
            if p.zero_point == output_zero_point && p.scale == output_scale {
                dst.copy_from_slice(src);
            } else {
                let scale = p.scale * inverse_output_scale;
                let bias = -(p.zero_point as f32) * scale;
                for (d, &s) in dst.iter_mut().zip(src) {
                    let v = (round_f32(s.to_i32() as f32 * scale + bias) as i32)
                        .saturating_add(output_zero_point);
                    *d = T::from_i32_saturating(v);
                }
            }
            at += len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_inner_axis() {
        // Two [2, 1, 1, 2] and [2, 1, 1, 1] tensors along C → [2, 1, 1, 3].
        let a = [1i8, 2, 3, 4];
        let b = [9i8, 8];
        let mut out = [0i8; 6];
        concatenation(
            2,
            &[
                ConcatInput {
                    data: &a,
                    row_len: 2,
                },
                ConcatInput {
                    data: &b,
                    row_len: 1,
                },
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1, 2, 9, 3, 4, 8]);
        assert!(
            concatenation(
                3,
                &[ConcatInput {
                    data: &a,
                    row_len: 2
                }],
                &mut out
            )
            .is_err()
        );
    }

    #[test]
    fn concat_requantises_differing_inputs() {
        let a = [0u8, 128, 255];
        let b = [10u8, 20, 30];
        let mut out = [0u8; 6];
        concatenation_requant(
            1,
            &[
                ConcatInputQuant {
                    input: ConcatInput {
                        data: &a,
                        row_len: 3,
                    },
                    scale: 0.5,
                    zero_point: 128,
                },
                ConcatInputQuant {
                    input: ConcatInput {
                        data: &b,
                        row_len: 3,
                    },
                    scale: 1.0,
                    zero_point: 128,
                },
            ],
            1.0,
            128,
            &mut out,
        )
        .unwrap();
        // (0-128)*0.5 = -64 → 64; 0 → 128; 127*0.5 = 63.5 → 64 + 128 = 192.
        assert_eq!(out, [64, 128, 192, 10, 20, 30]);
    }
}
