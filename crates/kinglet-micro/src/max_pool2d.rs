//! 2D max pooling (TFLite `MaxPool`): maximum over the in-bounds window, then the fused clamp.

use crate::conv2d::ActivationF32;
use crate::error::{KernelError, ensure_param};
use crate::pool::PoolParams;
use crate::tensor::{Quant8, TensorMut, TensorRef};

/// Int8 max pooling; `act_min`/`act_max` are the fused clamp in quantised units.
pub fn max_pool2d_i8(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, i8>,
    output: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    max_pool_q8(p, act_min, act_max, input, output)
}

/// Legacy uint8 max pooling.
pub fn max_pool2d_u8(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, u8>,
    output: TensorMut<'_, u8>,
) -> Result<(), KernelError> {
    max_pool_q8(p, act_min, act_max, input, output)
}

pub(crate) fn max_pool_q8<T: Quant8>(
    p: &PoolParams,
    act_min: i32,
    act_max: i32,
    input: TensorRef<'_, T>,
    output: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    p.check(&input, &output, "max_pool2d")?;
    ensure_param(act_min <= act_max, "max_pool2d: act_min > act_max")?;
    let c = input.shape.c;
    let data = input.data;
    let out = output.data;
    let lo = T::from_i32_saturating(act_min);
    let hi = T::from_i32_saturating(act_max);
    if let Some((ih, iw)) = p.all_windows_inside(input.shape, output.shape) {
        // Fast path (e.g. the 1×2 pools of 1D CNNs): no clipping, plain slices.
        let (oh, ow) = (output.shape.h, output.shape.w);
        let mut px_out = out.chunks_exact_mut(c.max(1));
        for b in 0..output.shape.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let Some(o) = px_out.next() else {
                        return Ok(());
                    };
                    let (y0, x0) = (oy * p.stride_h, ox * p.stride_w);
                    let first = ((b * ih + y0) * iw + x0) * c;
                    o.copy_from_slice(&data[first..first + c]);
                    for ky in 0..p.filter_h {
                        let row = ((b * ih + y0 + ky) * iw + x0) * c;
                        for src in data[row..row + p.filter_w * c].chunks_exact(c) {
                            for (v, &x) in o.iter_mut().zip(src) {
                                if x > *v {
                                    *v = x;
                                }
                            }
                        }
                    }
                    for v in o.iter_mut() {
                        if *v < lo {
                            *v = lo;
                        }
                        if *v > hi {
                            *v = hi;
                        }
                    }
                }
            }
        }
        return Ok(());
    }
    p.for_each_window(input.shape, output.shape, |base, window| {
        let out_px = &mut out[base..base + c];
        let mut first = true;
        for t in window.taps() {
            let src = &data[t..t + c];
            if first {
                out_px.copy_from_slice(src);
                first = false;
            } else {
                for (o, &x) in out_px.iter_mut().zip(src) {
                    if x > *o {
                        *o = x;
                    }
                }
            }
        }
        if first {
            // Window entirely in padding: TFLite's running max stays at the type minimum.
            out_px.fill(T::from_i32_saturating(T::MIN));
        }
        for v in out_px.iter_mut() {
            if *v < lo {
                *v = lo;
            }
            if *v > hi {
                *v = hi;
            }
        }
    });
    Ok(())
}

/// Float max pooling.
pub fn max_pool2d_f32(
    p: &PoolParams,
    act: ActivationF32,
    input: TensorRef<'_, f32>,
    output: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    p.check(&input, &output, "max_pool2d")?;
    let c = input.shape.c;
    let data = input.data;
    let out = output.data;
    p.for_each_window(input.shape, output.shape, |base, window| {
        let out_px = &mut out[base..base + c];
        for v in out_px.iter_mut() {
            *v = f32::MIN;
        }
        for t in window.taps() {
            for (o, &x) in out_px.iter_mut().zip(&data[t..t + c]) {
                if x > *o {
                    *o = x;
                }
            }
        }
        for v in out_px.iter_mut() {
            *v = act.apply(*v);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn max_then_clamp() {
        let p = PoolParams {
            filter_h: 1,
            filter_w: 2,
            stride_h: 1,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        let mut out = [0u8; 4];
        // Two channels; fused clamp [10, 200].
        max_pool2d_u8(
            &p,
            10,
            200,
            TensorRef::new(&[1, 250, 5, 7, 90, 0, 30, 3], Shape4::new(1, 1, 4, 2)),
            TensorMut::new(&mut out, Shape4::new(1, 1, 2, 2)),
        )
        .unwrap();
        assert_eq!(out, [10, 200, 90, 10]);
        assert!(
            max_pool2d_u8(
                &p,
                10,
                200,
                TensorRef::new(&[1, 2, 3], Shape4::new(1, 1, 4, 2)),
                TensorMut::new(&mut out, Shape4::new(1, 1, 2, 2)),
            )
            .is_err()
        );
    }
}

#[cfg(test)]
mod padding_tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn windows_entirely_in_padding_do_not_panic() {
        // Padding wider than the window: TFLite geometry never produces it, but the kernel
        // must stay total. Such windows yield the clamped type minimum.
        let p = PoolParams {
            filter_h: 1,
            filter_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 2,
            pad_left: 3,
        };
        let mut out = [0i8; 4];
        max_pool2d_i8(
            &p,
            -100,
            127,
            TensorRef::new(&[5], Shape4::new(1, 1, 1, 1)),
            TensorMut::new(&mut out, Shape4::new(1, 1, 4, 1)),
        )
        .unwrap();
        assert_eq!(out, [-100, -100, -100, -100]);
    }
}
