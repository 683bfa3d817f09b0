//! Dequantize: `real = scale · (q − zero_point)`. The product of an `f32` scale and a
//! small integer is exact in `f64`, so one rounding to `f32` matches TFLite's reference
//! (double) and optimized (float) paths alike.

use crate::error::{KernelError, check_len};
use crate::tensor::Quant8;

pub(crate) fn dequantize_q8<T: Quant8>(
    input: &[T],
    scale: f32,
    zero_point: i32,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("dequantize output", output.len(), input.len())?;
    let s = scale as f64;
    for (o, &q) in output.iter_mut().zip(input) {
        *o = (s * (q.to_i32() as f64 - zero_point as f64)) as f32;
    }
    Ok(())
}

/// Int8 → f32.
pub fn dequantize_i8(
    input: &[i8],
    scale: f32,
    zero_point: i32,
    output: &mut [f32],
) -> Result<(), KernelError> {
    dequantize_q8(input, scale, zero_point, output)
}

/// Uint8 → f32.
pub fn dequantize_u8(
    input: &[u8],
    scale: f32,
    zero_point: i32,
    output: &mut [f32],
) -> Result<(), KernelError> {
    dequantize_q8(input, scale, zero_point, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantizes() {
        let mut out = [0.0f32; 3];
        dequantize_i8(&[-128, 0, 127], 0.5, -128, &mut out).unwrap();
        assert_eq!(out, [0.0, 64.0, 127.5]);
        dequantize_u8(&[0, 128, 255], 0.1, 128, &mut out).unwrap();
        assert_eq!(
            out,
            [
                (0.1f32 as f64 * -128.0) as f32,
                0.0,
                (0.1f32 as f64 * 127.0) as f32
            ]
        );
        assert!(dequantize_u8(&[0, 1], 0.1, 0, &mut out).is_err());
    }
}
