//! 16×8 DepthwiseConv2D (TFLite `reference_integer_ops::DepthwiseConvPerChannel` for int16
//! input, int8 filter, int64 bias): int64 accumulation, per-channel requantisation.

use super::{Quant16, mac};
use crate::depthwise_conv2d::{DepthwiseParams, check_shapes, depthwise_fold};
use crate::error::KernelError;
use crate::tensor::{TensorMut, TensorRef};

/// int16 × int8 depthwise convolution, filter `[1, kh, kw, in_c · depth_multiplier]`.
pub fn depthwise_conv2d_s16(
    params: &DepthwiseParams,
    quant: &Quant16<'_>,
    input: TensorRef<'_, i16>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i64]>,
    output: TensorMut<'_, i16>,
) -> Result<(), KernelError> {
    check_shapes(params, &input, &filter, bias, &output)?;
    quant.check(output.shape.c)?;
    depthwise_fold(params, &input, &filter, output, 0i64, mac, |acc, o| {
        quant.finish(acc, bias, o)
    });
    Ok(())
}
