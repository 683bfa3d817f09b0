//! Quantisation parameters derived the way the TensorFlow Lite converter derives them, so a
//! model kinglet quantises gets the same scales and zero points as one the converter makes
//! from the same float model and calibration data.

/// Smallest and largest int8 values; activations use the full range, weights the narrow
/// range `[-127, 127]` so that symmetric scales need no zero point.
pub const INT8_MIN: i32 = -128;
pub const INT8_MAX: i32 = 127;
const WEIGHT_MAX: f32 = 127.0;

/// Ranges narrower than this are widened to it around 0 (the converter's
/// `kNearZeroTolerance`), which keeps scales and requantisation multipliers sane.
pub const NEAR_ZERO_RANGE: f64 = 1.0e-6;

/// The bias bound the converter keeps quantised biases under (`INT32_MAX / 2`), leaving
/// headroom in the accumulator; a weight scale too small for its bias is raised to fit.
pub const BIAS_MAX: f64 = (i32::MAX / 2) as f64;

/// `[min, max]` widened to contain 0 and to at least [`NEAR_ZERO_RANGE`].
fn effective_range(min: f64, max: f64) -> (f64, f64) {
    let (min, max) = (min.min(0.0), max.max(0.0));
    if max - min > NEAR_ZERO_RANGE {
        (min, max)
    } else {
        (
            min.min(-NEAR_ZERO_RANGE / 2.0),
            max.max(NEAR_ZERO_RANGE / 2.0),
        )
    }
}

/// Scale and zero point of an int8 activation whose calibrated values span `[min, max]`.
///
/// Mirrors the converter's legacy-float-scale path (`DownCastScale`): the range is widened
/// to contain 0, so that zero is exactly representable (padding and ReLU rely on it), the
/// scale is `(max − min) / 255` in single precision, and the zero point is solved from the
/// lower end, rounded half away from zero and clamped to `[-128, 127]`. Non-finite bounds
/// count as 0.
pub fn activation_params(min: f32, max: f32) -> (f32, i32) {
    let finite = |v: f32| if v.is_finite() { f64::from(v) } else { 0.0 };
    let (rmin, rmax) = effective_range(finite(min), finite(max));
    let scale = ((rmax as f32) - (rmin as f32)) / (INT8_MAX - INT8_MIN) as f32;
    let zero_point_from_min = (f64::from(INT8_MIN) - rmin / f64::from(scale)) as f32;
    let zero_point = if zero_point_from_min < INT8_MIN as f32 {
        INT8_MIN
    } else if zero_point_from_min > INT8_MAX as f32 {
        INT8_MAX
    } else {
        zero_point_from_min.round() as i32
    };
    (scale, zero_point)
}

/// Largest int16 activation magnitude: the 16×8 scheme's activations are symmetric.
pub const INT16_MAX: i32 = 32767;

/// Scale and zero point of an int16 activation whose calibrated values span `[min, max]`
/// (the converter's `GetSymmetricQuantizationParams` with half range 32767): zero point 0,
/// scale `max(|min|, |max|) / 32767` in single precision, the range first widened to contain
/// 0 and to at least [`NEAR_ZERO_RANGE`] so that the scale is never 0.
pub fn activation_params_int16(min: f32, max: f32) -> (f32, i32) {
    let finite = |v: f32| if v.is_finite() { f64::from(v) } else { 0.0 };
    let (rmin, rmax) = effective_range(finite(min), finite(max));
    let half_range = (rmin as f32).abs().max(rmax as f32);
    (half_range / INT16_MAX as f32, 0)
}

/// int64 bias of the 16×8 scheme (the converter's `SymmetricPerChannelBiasQuantize<int64_t>`):
/// scales `input_scale · weight_scale[c]` (one scale in total with one weight scale), values
/// `round(bias · (1/scale))` in single precision. int64 has room for any bias, so weight
/// scales are never raised as for int32.
pub fn quantize_bias_i64(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> (Vec<i64>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales
        .iter()
        .map(|w| (f64::from(input_scale) * f64::from(*w)) as f32)
        .collect();
    let values = bias
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let s = scales[if scales.len() == 1 { 0 } else { i }];
            let q = f64::from((b * inverse(s)).round());
            q.clamp(-(i64::MAX as f64), i64::MAX as f64) as i64
        })
        .collect();
    (values, scales)
}

/// Symmetric int8 scale for weights whose largest magnitude is `max_abs`: `2·max_abs / 254`
/// in single precision (equal to `max_abs / 127`); an all-zero channel gets the scale of
/// the minimal range, `1e-6 / 254`.
pub fn weight_scale(max_abs: f32) -> f32 {
    let m = if max_abs.is_finite() {
        f64::from(max_abs.abs())
    } else {
        0.0
    };
    let (lo, hi) = effective_range(-m, m);
    ((hi as f32) - (lo as f32)) / (2.0 * WEIGHT_MAX)
}

/// The reciprocal the converter multiplies by: `1 / scale` in double, stored as float.
fn inverse(scale: f32) -> f32 {
    if scale == 0.0 {
        0.0
    } else {
        (1.0 / f64::from(scale)) as f32
    }
}

/// `round(value · (1/scale))` in single precision, clamped to the narrow int8 range.
pub fn quantize_weight(value: f32, scale: f32) -> i8 {
    (value * inverse(scale))
        .round()
        .clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8
}

/// Largest magnitude per channel along `axis`.
pub(crate) fn channel_max_abs(values: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = shape.iter().skip(axis + 1).product::<usize>().max(1);
    let mut max_abs = vec![0.0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = (i / inner) % channels;
        max_abs[c] = max_abs[c].max(v.abs());
    }
    max_abs
}

/// Per-channel symmetric int8 scales of a constant along `axis` (the output-channel axis:
/// 0 for Conv2D `[out, kh, kw, in]` and FullyConnected `[out, in]`, 3 for DepthwiseConv2D
/// `[1, kh, kw, out]`).
pub fn per_channel_scales(values: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    channel_max_abs(values, shape, axis)
        .into_iter()
        .map(weight_scale)
        .collect()
}

/// Quantises a constant with one scale per channel along `axis` (one scale in total when
/// `scales` has a single entry).
pub fn quantize_with_scales(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    scales: &[f32],
) -> Vec<i8> {
    let channels = scales.len().max(1);
    let inner: usize = shape.iter().skip(axis + 1).product::<usize>().max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = if scales.len() == 1 {
                0
            } else {
                (i / inner) % channels
            };
            quantize_weight(*v, scales[c])
        })
        .collect()
}

/// Per-channel symmetric int8 quantisation: values and one scale per channel.
pub fn quantize_per_channel(values: &[f32], shape: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let scales = per_channel_scales(values, shape, axis);
    (quantize_with_scales(values, shape, axis, &scales), scales)
}

/// Per-tensor symmetric int8 quantisation (one scale for the whole constant).
pub fn quantize_per_tensor(values: &[f32]) -> (Vec<i8>, f32) {
    let max_abs = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = weight_scale(max_abs);
    (
        values.iter().map(|v| quantize_weight(*v, scale)).collect(),
        scale,
    )
}

/// int32 bias scales `input_scale · weight_scale[c]` (computed in double, stored as float),
/// raising a weight scale where the bias would not fit under [`BIAS_MAX`]. Returns the bias
/// scales and the (possibly adjusted) weight scales. With one weight scale, the bias shares
/// one scale too.
pub fn bias_scales(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let input = f64::from(input_scale);
    if weight_scales.len() == 1 {
        let scale = (input * f64::from(weight_scales[0])) as f32;
        let half_range = bias.iter().fold(0.0f64, |m, b| m.max(f64::from(b.abs())));
        if half_range / f64::from(scale) < BIAS_MAX {
            return (vec![scale], weight_scales.to_vec());
        }
        let adjusted = half_range / BIAS_MAX;
        return (vec![adjusted as f32], vec![(adjusted / input) as f32]);
    }
    let mut weights = weight_scales.to_vec();
    let scales = weight_scales
        .iter()
        .zip(bias)
        .zip(weights.iter_mut())
        .map(|((w, b), adjusted_weight)| {
            let scale = input * f64::from(*w);
            let scale32 = scale as f32;
            let abs = f64::from(b.abs());
            if abs / f64::from(scale32) > BIAS_MAX {
                let adjusted = abs / BIAS_MAX;
                *adjusted_weight = (adjusted / input) as f32;
                adjusted as f32
            } else {
                scale32
            }
        })
        .collect();
    (scales, weights)
}

/// int32 bias values: `round(bias · (1/scale))` in single precision, clamped to ±`i32::MAX`.
pub fn quantize_bias_values(bias: &[f32], scales: &[f32]) -> Vec<i32> {
    bias.iter()
        .enumerate()
        .map(|(i, b)| {
            let s = if scales.len() == 1 {
                scales[0]
            } else {
                scales[i]
            };
            let q = f64::from((b * inverse(s)).round());
            q.clamp(-f64::from(i32::MAX), f64::from(i32::MAX)) as i32
        })
        .collect()
}

/// int32 bias quantised for an op with the given input and weight scales; returns values,
/// bias scales and the weight scales to use (raised where the bias needed it).
pub fn quantize_bias(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> (Vec<i32>, Vec<f32>, Vec<f32>) {
    let (scales, weights) = bias_scales(bias, input_scale, weight_scales);
    (quantize_bias_values(bias, &scales), scales, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_range_is_widened_to_contain_zero() {
        // Post-ReLU data: [0.5, 2.55] widens to [0, 2.55], scale 0.01, zp at the bottom.
        let (s, zp) = activation_params(0.5, 2.55);
        assert!((s - 0.01).abs() < 1e-7);
        assert_eq!(zp, -128);
        // All-negative data puts the zero point at the top.
        let (s, zp) = activation_params(-2.55, -1.0);
        assert!((s - 0.01).abs() < 1e-7);
        assert_eq!(zp, 127);
    }

    #[test]
    fn symmetric_range_gets_mid_zero_point() {
        let (s, zp) = activation_params(-1.0, 1.0);
        assert!((s - 2.0 / 255.0).abs() < 1e-9);
        // -128 + 1/s ≈ -0.5, a near-tie: either neighbour is a valid nudge.
        assert!(zp == -1 || zp == 0);
    }

    #[test]
    fn degenerate_range_is_widened() {
        let (s, zp) = activation_params(0.0, 0.0);
        assert!((f64::from(s) - NEAR_ZERO_RANGE / 255.0).abs() < 1e-15);
        assert!(zp == 0 || zp == -1);
        let (s, zp) = activation_params(f32::NAN, 1.0);
        assert!(s.is_finite() && (INT8_MIN..=INT8_MAX).contains(&zp));
    }

    #[test]
    fn per_channel_weights_use_the_requested_axis() {
        // Conv filter [out=2, kh=1, kw=1, in=2]: channel 0 max 1.27, channel 1 max 0.254.
        let w = [1.27, -0.635, 0.254, 0.1];
        let (q, s) = quantize_per_channel(&w, &[2, 1, 1, 2], 0);
        assert_eq!(s.len(), 2);
        assert!((s[0] - 0.01).abs() < 1e-8 && (s[1] - 0.002).abs() < 1e-8);
        assert_eq!(q, vec![127, -64, 127, 50]);
        // Depthwise [1, 1, 2, out=2]: channels interleave on the last axis.
        let (q, s) = quantize_per_channel(&w, &[1, 1, 2, 2], 3);
        assert!((s[0] - 0.01).abs() < 1e-8 && (s[1] - 0.005).abs() < 1e-8);
        assert_eq!(q, vec![127, -127, 25, 20]);
    }

    #[test]
    fn zero_channel_keeps_finite_scale() {
        let (q, s) = quantize_per_channel(&[0.0, 0.0, 1.0, -1.0], &[2, 2], 0);
        assert!(s[0] > 0.0 && s[0] < 1e-8);
        assert_eq!(q, vec![0, 0, 127, -127]);
    }

    #[test]
    fn bias_scale_is_product_of_input_and_weight_scales() {
        let (q, s, w) = quantize_bias(&[0.5, -0.25], 0.1, &[0.01, 0.02]);
        assert!((s[0] - 0.001).abs() < 1e-9 && (s[1] - 0.002).abs() < 1e-9);
        assert_eq!(q, vec![500, -125]);
        assert_eq!(w, vec![0.01, 0.02]);
    }

    #[test]
    fn int16_activations_are_symmetric() {
        let (s, zp) = activation_params_int16(-0.5, 3.2767);
        assert_eq!(zp, 0);
        assert!((s - 1e-4).abs() < 1e-10, "{s}");
        // An all-negative range is as wide on the positive side.
        assert_eq!(activation_params_int16(-2.0, -1.0), (2.0 / 32767.0, 0));
        let (s, _) = activation_params_int16(0.0, 0.0);
        assert!(s > 0.0 && s < 1e-10);
    }

    #[test]
    fn int64_bias_is_never_clamped_to_int32() {
        // A bias of 1 over a tiny input · weight scale far exceeds int32.
        let (q, s) = quantize_bias_i64(&[1.0, -0.5], 1e-5, &[1e-6, 0.5]);
        assert!((f64::from(s[0]) - 1e-11).abs() < 1e-17);
        assert!(q[0] > i64::from(i32::MAX), "{}", q[0]);
        assert_eq!(q[1], -100_000);
    }

    #[test]
    fn bias_too_large_for_weight_scale_raises_it() {
        // A zero weight channel has the minimal scale; a bias of 1 would overflow.
        let w0 = weight_scale(0.0);
        assert!((w0 - 1e-6 / 254.0).abs() < 1e-12);
        let (q, s, w) = quantize_bias(&[1.0, 0.1], 0.01, &[w0, 0.01]);
        assert!(w[0] > w0 && w[1] == 0.01);
        assert!((f64::from(q[0]) - BIAS_MAX).abs() < 2.0, "{}", q[0]);
        assert!((s[0] as f64 - 1.0 / BIAS_MAX).abs() < 1e-15);
    }
}
