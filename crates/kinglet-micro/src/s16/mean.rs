//! 16×8 Mean over H and W: TFLite's `QuantizedMeanOrSum` for int16, the int32 sum per channel
//! requantised with `s_in / s_out` absorbing `1 / count`, as for int8
//! ([`crate::mean::mean_hw_i8`]).

use crate::error::KernelError;
use crate::mean::{MeanQuant, mean_q8};
use crate::tensor::TensorRef;

/// int16 spatial mean.
pub fn mean_hw_s16(
    q: &MeanQuant,
    input: TensorRef<'_, i16>,
    output: &mut [i16],
) -> Result<(), KernelError> {
    mean_q8(q, input, output)
}
