//! 2D average pooling (TFLite `AveragePool`): the mean over in-bounds window positions only
//! (padding is not counted). Quantised: integer sum, divided with rounding half away from zero
//! (`(acc ± count/2) / count`), then the fused clamp; no requantisation (input and output
//! share scale and zero point).

use crate::conv2d::ActivationF32;
use crate::error::{KernelError, ensure_param};
use crate::pool::PoolParams;
use crate::tensor::{Quant8, TensorMut, TensorRef};

/// Int8 average pooling.
pub fn average_pool2d_i8(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, i8>,
    output: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    avg_pool_q8(p, act_min, act_max, input, output)
}

/// Legacy uint8 average pooling.
pub fn average_pool2d_u8(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, u8>,
    output: TensorMut<'_, u8>,
) -> Result<(), KernelError> {
    avg_pool_q8(p, act_min, act_max, input, output)
}

pub(crate) fn avg_pool_q8<T: Quant8>(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, T>,
    output: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    p.check(&input, &output, "average_pool2d")?;
    ensure_param(act_min <= act_max, "average_pool2d: act_min > act_max")?;
    let c = input.shape.c;
    let data = input.data;
    let out = output.data;
    let mut empty_window = false;
    p.for_each_window(input.shape, output.shape, |base, window| {
        let count = window.count() as i32;
        if count == 0 {
            empty_window = true;
            return;
        }
        for (ch, o) in out[base..base + c].iter_mut().enumerate() {
            let acc = window
                .taps()
                .fold(0i32, |acc, t| acc.wrapping_add(data[t + ch].to_i32()));
            let avg = if acc > 0 {
                (acc + count / 2) / count
            } else {
                (acc - count / 2) / count
            };
            *o = T::from_i32_saturating(avg.clamp(act_min, act_max));
        }
    });
    ensure_param(
        !empty_window,
        "average_pool2d: a window lies entirely in padding",
    )
}

/// Float average pooling.
pub fn average_pool2d_f32(
    p: &PoolParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    p.check(&input, &output, "average_pool2d")?;
    let c = input.shape.c;
    let data = input.data;
    let out = output.data;
    let mut empty_window = false;
    p.for_each_window(input.shape, output.shape, |base, window| {
        let count = window.count();
        if count == 0 {
            empty_window = true;
            return;
        }
        for (ch, o) in out[base..base + c].iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for t in window.taps() {
                acc += data[t + ch];
            }
            *o = act.apply(acc / count as f32);
        }
    });
    ensure_param(
        !empty_window,
        "average_pool2d: a window lies entirely in padding",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn rounds_half_away_from_zero_and_skips_padding() {
        let p = PoolParams {
            filter_h: 1,
            filter_w: 2,
            stride_h: 1,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        let mut out = [0i8; 3];
        average_pool2d_i8(
            &p,
            -128,
            127,
            TensorRef::new(&[1, 2, -1, -2, 5, 5], Shape4::new(1, 1, 6, 1)),
            TensorMut::new(&mut out, Shape4::new(1, 1, 3, 1)),
        )
        .unwrap();
        assert_eq!(out, [2, -2, 5]);
        // SAME padding of a 3-wide window at the border averages only the valid values.
        let p = PoolParams {
            filter_w: 3,
            stride_w: 1,
            pad_left: 1,
            ..p
        };
        let mut out = [0.0f32; 2];
        average_pool2d_f32(
            &p,
            ActivationF32::NONE,
            TensorRef::new(&[2.0, 4.0], Shape4::new(1, 1, 2, 1)),
            TensorMut::new(&mut out, Shape4::new(1, 1, 2, 1)),
        )
        .unwrap();
        assert_eq!(out, [3.0, 3.0]);
    }
}
