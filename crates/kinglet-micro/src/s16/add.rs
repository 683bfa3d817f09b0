//! 16×8 Add (TFLite's general int16 path): inputs shifted left by 15 (not 20 as for 8 bits),
//! rescaled to twice the larger input scale, summed, rescaled to the output, clamped.
//! TFLite takes another path when all three scales are powers of two
//! ([`is_power_of_two_scale`]); kinglet refuses those.

use crate::add::{AddParams, QuantScale, add_q8};
use crate::error::{KernelError, ensure_param};
use crate::tensor::{TensorMut, TensorRef};

/// Parameters of an int16 add, derived as TFLite's prepare does for int16 with general scales.
pub fn add_params_s16(
    in1: f32,
    in2: f32,
    out: f32,
    act_min: i32,
    act_max: i32,
) -> Result<AddParams, KernelError> {
    ensure_param(
        !(is_power_of_two_scale(in1) && is_power_of_two_scale(in2) && is_power_of_two_scale(out)),
        "add: int16 scales that are all powers of two take TFLite's other path",
    )?;
    let q = |scale| QuantScale {
        scale,
        zero_point: 0,
    };
    AddParams::with_left_shift(q(in1), q(in2), q(out), act_min, act_max, 15)
}

/// TFLite's `CheckedLog2`: is `log2(scale)` within 1e-3 of an integer? Decided on the
/// mantissa `m ∈ [1, 2)`: `log2(m) < 1e-3` or `> 1 − 1e-3`.
pub fn is_power_of_two_scale(scale: f32) -> bool {
    if !(scale.is_finite() && scale > 0.0) {
        return false;
    }
    let mantissa = f32::from_bits((scale.to_bits() & 0x007F_FFFF) | 0x3F80_0000);
    // 2^0.001 and 2^0.999.
    !(1.000_693_4..=1.998_614_5).contains(&mantissa)
}

/// int16 add with 4D broadcasting.
pub fn add_s16(
    p: &AddParams,
    a: TensorRef<'_, i16>,
    b: TensorRef<'_, i16>,
    out: TensorMut<'_, i16>,
) -> Result<(), KernelError> {
    add_q8(p, a, b, out)
}
