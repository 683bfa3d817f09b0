//! 16×8 Conv2D (TFLite `reference_integer_ops::ConvPerChannel` for int16 input, int8 filter,
//! int64 bias): `acc = Σ f · x` over in-bounds taps in int64, `+ bias`, requantised per output
//! channel, clamped. No offsets: int16 activations are symmetric.

use super::{Quant16, mac};
use crate::conv2d::{check_conv_shapes, conv_fold};
use crate::error::KernelError;
use crate::tensor::{TensorMut, TensorRef};
use crate::window::ConvParams;

/// int16 × int8 convolution, NHWC input, OHWI filter.
pub fn conv2d_s16(
    params: &ConvParams,
    quant: &Quant16<'_>,
    input: TensorRef<'_, i16>,
    filter: TensorRef<'_, i8>,
    bias: Option<&[i64]>,
    output: TensorMut<'_, i16>,
) -> Result<(), KernelError> {
    check_conv_shapes(params, &input, &filter, bias, &output)?;
    quant.check(filter.shape.n)?;
    conv_fold(params, &input, &filter, output, 0i64, mac, |acc, o| {
        quant.finish(acc, bias, o)
    });
    Ok(())
}
