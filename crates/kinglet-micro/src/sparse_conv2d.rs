//! Int8 Conv2D (and Conv1D as 1×N) over pruned filters stored compressed: each output
//! channel's `kh·kw·in_c` filter taps are one row of a [`SparseWeights`] matrix. Every output
//! pixel gathers its input window into a caller-provided patch (positions outside the image
//! hold the input zero point, so they add nothing — as TFLite's reference kernel skipping
//! them) and runs the sparse fully-connected row kernel over it, writing the pixel's channels
//! in place. Integer sums do not depend on order, so the results equal
//! [`crate::conv2d::conv2d_i8`] bit for bit.

use crate::conv2d::QuantParams;
use crate::error::{KernelError, check_len, ensure_param, ensure_shape};
use crate::fully_connected::FcShape;
use crate::sparse_fully_connected::{SparseWeights, sparse_fully_connected_i8_with};
use crate::tensor::{Shape4, TensorMut, TensorRef};
use crate::window::ConvParams;

/// Patch length [`sparse_conv2d_i8`] needs for a filter of shape `[out_c, kh, kw, in_c]`.
pub fn sparse_conv2d_patch_len(filter: Shape4) -> usize {
    filter.h * filter.w * filter.c
}

/// Int8 convolution with compressed filters (symmetric weights: `filter_offset` 0); `filter`
/// is the dense filter shape `[out_c, kh, kw, in_c]`, `patch` a scratch of
/// [`sparse_conv2d_patch_len`] values.
#[allow(clippy::too_many_arguments)]
pub fn sparse_conv2d_i8(
    params: &ConvParams,
    quant: &QuantParams<'_>,
    input: TensorRef<'_, i8>,
    filter: Shape4,
    weights: &SparseWeights<'_>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
    patch: &mut [i8],
) -> Result<(), KernelError> {
    quant.check::<i8>(filter.n)?;
    ensure_param(
        quant.filter_offset == 0,
        "sparse_conv2d: weights must be symmetric (filter_offset 0)",
    )?;
    sparse_conv2d_i8_with(
        params,
        quant.input_offset,
        input,
        filter,
        weights,
        bias,
        output,
        patch,
        |acc, o| quant.finish(acc, o),
    )
}

/// [`sparse_conv2d_i8`] with the caller's output stage (see
/// [`sparse_fully_connected_i8_with`]).
#[allow(clippy::too_many_arguments)]
pub fn sparse_conv2d_i8_with(
    params: &ConvParams,
    input_offset: i32,
    input: TensorRef<'_, i8>,
    filter: Shape4,
    weights: &SparseWeights<'_>,
    bias: Option<&[i32]>,
    output: TensorMut<'_, i8>,
    patch: &mut [i8],
    mut finish: impl FnMut(i32, usize) -> i8,
) -> Result<(), KernelError> {
    params.check()?;
    input.check("sparse_conv2d input")?;
    output.check("sparse_conv2d output")?;
    ensure_shape(
        filter.c == input.shape.c,
        "sparse_conv2d: filter in_channels != input channels",
    )?;
    ensure_shape(
        output.shape.n == input.shape.n,
        "sparse_conv2d: output batch != input batch",
    )?;
    ensure_shape(
        output.shape.c == filter.n,
        "sparse_conv2d: output channels != filter out_channels",
    )?;
    let patch_len = filter
        .h
        .checked_mul(filter.w)
        .and_then(|v| v.checked_mul(filter.c))
        .ok_or(KernelError::InvalidParam {
            what: "sparse_conv2d: filter dimensions overflow usize",
        })?;
    check_len("sparse_conv2d patch", patch.len(), patch_len)?;
    // Padding value: the input zero point, whose offset-corrected value is 0.
    let pad = i8::try_from(-input_offset).map_err(|_| KernelError::InvalidParam {
        what: "sparse_conv2d: input zero point outside int8",
    })?;
    let (ih, iw, ic) = (input.shape.h, input.shape.w, input.shape.c);
    let (kh, kw) = (filter.h, filter.w);
    let (oh, ow, oc) = (output.shape.h, output.shape.w, output.shape.c);
    if oc == 0 {
        return Ok(());
    }
    let shape = FcShape {
        batches: 1,
        in_features: patch_len,
        out_features: oc,
    };
    let image_len = ih * iw * ic;
    let mut pixels = output.data.chunks_exact_mut(oc);
    for b in 0..input.shape.n {
        let image = &input.data[b * image_len..(b + 1) * image_len];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut taps = patch.chunks_exact_mut(ic.max(1));
                for ky in 0..kh {
                    let iy = (oy * params.stride_h + ky * params.dilation_h)
                        .checked_sub(params.pad_top)
                        .filter(|y| *y < ih);
                    for kx in 0..kw {
                        let ix = (ox * params.stride_w + kx * params.dilation_w)
                            .checked_sub(params.pad_left)
                            .filter(|x| *x < iw);
                        let Some(tap) = taps.next() else { continue };
                        match (iy, ix) {
                            (Some(y), Some(x)) => {
                                let at = (y * iw + x) * ic;
                                tap.copy_from_slice(&image[at..at + ic]);
                            }
                            _ => tap.fill(pad),
                        }
                    }
                }
                let Some(pixel) = pixels.next() else {
                    return Ok(());
                };
                sparse_fully_connected_i8_with(
                    shape,
                    input_offset,
                    patch,
                    weights,
                    bias,
                    pixel,
                    &mut finish,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv2d::conv2d_i8;
    use crate::quant::Requant;
    use crate::sparse_fully_connected::{SparseFormat, encode_bitmask, encode_deltas};

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize
        }
    }

    #[test]
    fn equals_the_dense_conv_on_random_pruned_filters() {
        let mut rng = Lcg(5);
        for case in 0..80 {
            let input = Shape4::new(
                1 + rng.next() % 2,
                1 + rng.next() % 7,
                1 + rng.next() % 9,
                1 + rng.next() % 5,
            );
            let filter = Shape4::new(
                1 + rng.next() % 6,
                1 + rng.next() % 3,
                1 + rng.next() % 4,
                input.c,
            );
            let params = ConvParams {
                stride_h: 1 + rng.next() % 2,
                stride_w: 1 + rng.next() % 2,
                dilation_h: 1 + rng.next() % 2,
                dilation_w: 1 + rng.next() % 2,
                pad_top: rng.next() % 2,
                pad_left: rng.next() % 3,
            };
            let out_dim = |i: usize, k: usize, s: usize, d: usize, p: usize| {
                (i + 2 * p).saturating_sub(d * (k - 1) + 1) / s + 1
            };
            let output = Shape4::new(
                input.n,
                out_dim(
                    input.h,
                    filter.h,
                    params.stride_h,
                    params.dilation_h,
                    params.pad_top,
                ),
                out_dim(
                    input.w,
                    filter.w,
                    params.stride_w,
                    params.dilation_w,
                    params.pad_left,
                ),
                filter.n,
            );
            let x: Vec<i8> = (0..input.checked_len().unwrap())
                .map(|_| (rng.next() % 256) as u8 as i8)
                .collect();
            let zero_percent = [0, 60, 80, 95][case % 4];
            let w: Vec<i8> = (0..filter.checked_len().unwrap())
                .map(|_| {
                    if rng.next() % 100 < zero_percent {
                        0
                    } else {
                        (rng.next() % 255) as i32 as i8
                    }
                })
                .collect();
            let bias: Vec<i32> = (0..filter.n)
                .map(|_| rng.next() as i32 % 5000 - 2500)
                .collect();
            let (mult, shift): (Vec<i32>, Vec<i32>) = (0..filter.n)
                .map(|o| crate::quant::quantize_multiplier(0.003 + 0.001 * o as f64).unwrap())
                .unzip();
            let q = QuantParams {
                // −zero point, with the zero point in int8's range.
                input_offset: 128 - (rng.next() % 256) as i32,
                filter_offset: 0,
                output_offset: (rng.next() % 256) as i32 - 128,
                requant: Requant::new(&mult, &shift),
                act_min: -128,
                act_max: 127,
            };
            let n_out = output.checked_len().unwrap();
            let mut dense = vec![0i8; n_out];
            conv2d_i8(
                &params,
                &q,
                TensorRef::new(&x, input),
                TensorRef::new(&w, filter),
                Some(&bias),
                TensorMut::new(&mut dense, output),
            )
            .unwrap();
            let fc = FcShape {
                batches: 1,
                in_features: sparse_conv2d_patch_len(filter),
                out_features: filter.n,
            };
            let mut patch = vec![0i8; sparse_conv2d_patch_len(filter)];
            for format in [SparseFormat::Bitmask, SparseFormat::Deltas] {
                let sizes = format.sizes(fc, &w).unwrap();
                let mut values = vec![0i8; sizes.values_len];
                let mut index = vec![0u8; sizes.index_len.max(sizes.deltas_len)];
                let mut lens = vec![0u16; sizes.index_len];
                let weights = match format {
                    SparseFormat::Bitmask => {
                        index.truncate(sizes.index_len);
                        encode_bitmask(fc, &w, &mut index, &mut values).unwrap();
                        SparseWeights::Bitmask {
                            masks: &index,
                            values: &values,
                        }
                    }
                    SparseFormat::Deltas => {
                        index.truncate(sizes.deltas_len);
                        encode_deltas(fc, &w, &mut lens, &mut index, &mut values).unwrap();
                        SparseWeights::Deltas {
                            row_lens: &lens,
                            deltas: &index,
                            values: &values,
                        }
                    }
                };
                let mut out = vec![0i8; n_out];
                sparse_conv2d_i8(
                    &params,
                    &q,
                    TensorRef::new(&x, input),
                    filter,
                    &weights,
                    Some(&bias),
                    TensorMut::new(&mut out, output),
                    &mut patch,
                )
                .unwrap();
                assert_eq!(
                    out, dense,
                    "case {case} {format:?} {input:?} {filter:?} {params:?}"
                );
            }
        }
    }
}
