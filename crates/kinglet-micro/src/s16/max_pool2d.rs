//! 16×8 MaxPool2D: TFLite's int16 max pool is its int8 one on wider values.

use crate::error::KernelError;
use crate::max_pool2d::max_pool_q8;
use crate::pool::PoolParams;
use crate::tensor::{TensorMut, TensorRef};

/// int16 max pooling; `act_min`/`act_max` are the fused clamp in quantised units.
pub fn max_pool2d_s16(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, i16>,
    output: TensorMut<'_, i16>,
) -> Result<(), KernelError> {
    max_pool_q8(p, act_min, act_max, input, output)
}
