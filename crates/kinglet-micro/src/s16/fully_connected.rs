//! 16×8 FullyConnected (TFLite `reference_integer_ops::FullyConnected` /
//! `FullyConnectedPerChannel` for int16 input, int8 weights, int64 bias): int64 dot product
//! per output feature, `+ bias`, requantised, clamped.
//!
//! The interpreter's reference kernels (`BUILTIN_REF`) requantise fully-connected layers in
//! double precision, `round(acc · s_in·s_w/s_out)` with ties away from zero (as for int8,
//! [`crate::quant::Requant::Double`]): [`fully_connected_s16_double`]. Its optimized
//! kernels use the 64-bit fixed-point multiplier: [`fully_connected_s16`].

use super::{Quant16, mac};
use crate::error::{KernelError, ensure_param};
use crate::fmath::round_f64;
use crate::fully_connected::FcShape;

/// int16 × int8 fully connected with fixed-point requantisation; weights
/// `[out_features, in_features]`.
pub fn fully_connected_s16(
    shape: FcShape,
    quant: &Quant16<'_>,
    input: &[i16],
    weights: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
) -> Result<(), KernelError> {
    quant.check(shape.out_features)?;
    fc_s16(shape, input, weights, bias, output, |acc, o| {
        quant.finish(acc, bias, o)
    })
}

/// int16 × int8 fully connected with double-precision requantisation: `scales` are
/// `s_in · s_w[c] / s_out` ([`crate::quant::fc_reference_scales`]), one or one per output.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s16_double(
    shape: FcShape,
    scales: &[f64],
    act_min: i32,
    act_max: i32,
    input: &[i16],
    weights: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
) -> Result<(), KernelError> {
    ensure_param(
        (scales.len() == 1 || scales.len() == shape.out_features)
            && scales.iter().all(|s| s.is_finite()),
        "int16 fully_connected: need 1 or out_features finite scales",
    )?;
    ensure_param(
        act_min <= act_max && act_min >= i32::from(i16::MIN) && act_max <= i32::from(i16::MAX),
        "activation range must satisfy -32768 <= act_min <= act_max <= 32767",
    )?;
    fc_s16(shape, input, weights, bias, output, |acc, o| {
        let acc = bias.map_or(acc, |b| acc.wrapping_add(b[o]));
        let s = scales[if scales.len() == 1 { 0 } else { o }];
        // `as` saturates, as the clamp that follows would.
        (round_f64(acc as f64 * s) as i32).clamp(act_min, act_max) as i16
    })
}

fn fc_s16(
    shape: FcShape,
    input: &[i16],
    weights: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
    finish: impl Fn(i64, usize) -> i16,
) -> Result<(), KernelError> {
    shape.check(input, weights, bias, output)?;
    let (n_in, n_out) = (shape.in_features, shape.out_features);
    if n_out == 0 {
        return Ok(());
    }
    for (b, out_row) in output.chunks_exact_mut(n_out).enumerate() {
        let x = &input[b * n_in..(b + 1) * n_in];
        for (o, out_v) in out_row.iter_mut().enumerate() {
            let w = &weights[o * n_in..(o + 1) * n_in];
            let acc = w.iter().zip(x).fold(0i64, |acc, (&f, &v)| mac(acc, f, v));
            *out_v = finish(acc, o);
        }
    }
    Ok(())
}
