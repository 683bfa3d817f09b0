//! 16×8 AveragePool2D: TFLite's int16 average pool sums in int32 and divides with rounding
//! half away from zero, as its int8 one does.

use crate::average_pool2d::avg_pool_q8;
use crate::error::KernelError;
use crate::pool::PoolParams;
use crate::tensor::{TensorMut, TensorRef};

/// int16 average pooling (input and output share their scale).
pub fn average_pool2d_s16(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, i16>,
    output: TensorMut<'_, i16>,
) -> Result<(), KernelError> {
    avg_pool_q8(p, act_min, act_max, input, output)
}
