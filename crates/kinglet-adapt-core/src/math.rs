//! Small numeric helpers, written out here (no libm) so host and target compute bit-identical
//! confidences: every operation is a plain IEEE-754 single-precision add, multiply or divide.

use crate::ConfidenceMeasure;

/// Index of the largest value; the first one on ties (NumPy's convention). `None` when empty
/// or when every value is NaN.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Sum of absolute differences between two equally long byte windows (1BDD's distance).
/// Extra bytes of the longer slice are ignored.
pub fn l1_distance_u8(previous: &[u8], current: &[u8]) -> u32 {
    previous
        .iter()
        .zip(current)
        .map(|(&a, &b)| u32::from(a.abs_diff(b)))
        .sum()
}

/// A window's summary for the signature check: per axis of a 3-axis sensor the sum of the
/// samples (mean × length) and the sum of absolute deviations from the rounded mean (spread
/// × length). Integer-only, so host and firmware agree exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signature {
    pub sum: [i32; 3],
    pub spread: [i32; 3],
}

impl Signature {
    /// Of `samples`, time-major int8 values of `stride` interleaved channels, taking the three
    /// consecutive channels from `first_axis` on (e.g. total_acc x, y, z). A trailing partial
    /// step is ignored; axes past the stride give the empty signature.
    pub fn of(samples: &[i8], stride: usize, first_axis: usize) -> Signature {
        Self::of_values(samples, stride, first_axis, i32::from)
    }

    /// As [`of`](Self::of), for int8 samples held in a byte buffer (firmware windows).
    pub fn of_int8_bytes(samples: &[u8], stride: usize, first_axis: usize) -> Signature {
        Self::of_values(samples, stride, first_axis, |b| i32::from(b as i8))
    }

    // Two passes (sum, then spread around the rounded mean) over one 3-axis slice per step:
    // one bounds check per step, so the device spends a handful of instructions per sample.
    fn of_values<T: Copy>(
        samples: &[T],
        stride: usize,
        first_axis: usize,
        value: impl Fn(T) -> i32,
    ) -> Signature {
        let mut sig = Signature::default();
        let axes = first_axis..first_axis + 3;
        if stride == 0 || axes.end > stride {
            return sig;
        }
        let steps = samples.len() / stride;
        if steps == 0 {
            return sig;
        }
        let triples = || {
            samples
                .chunks_exact(stride)
                .filter_map(|step| step.get(axes.clone()))
        };
        let [mut sx, mut sy, mut sz] = [0i32; 3];
        for t in triples() {
            if let [x, y, z] = *t {
                sx += value(x);
                sy += value(y);
                sz += value(z);
            }
        }
        sig.sum = [sx, sy, sz];
        let n = steps as i32;
        // Round half up: floor((2·sum + n) / (2·n)).
        let [mx, my, mz] = sig.sum.map(|sum| (2 * sum + n).div_euclid(2 * n));
        let [mut dx, mut dy, mut dz] = [0i32; 3];
        for t in triples() {
            if let [x, y, z] = *t {
                dx += (value(x) - mx).abs();
                dy += (value(y) - my).abs();
                dz += (value(z) - mz).abs();
            }
        }
        sig.spread = [dx, dy, dz];
        sig
    }

    /// L1 distance between two signatures (sums and spreads alike).
    pub fn distance(&self, other: &Signature) -> u32 {
        let sums = self.sum.iter().zip(&other.sum);
        let spreads = self.spread.iter().zip(&other.spread);
        sums.chain(spreads).map(|(&a, &b)| a.abs_diff(b)).sum()
    }
}

/// Turns logits into probabilities in place (max-subtracted, so it cannot overflow).
pub fn softmax_in_place(values: &mut [f32]) {
    let Some(top) = argmax(values).map(|i| values[i]) else {
        return;
    };
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = exp(*v - top);
        sum += *v;
    }
    if sum > 0.0 {
        for v in values.iter_mut() {
            *v /= sum;
        }
    }
}

/// Confidence in [0, 1] (1 = certain) of a probability vector.
pub fn confidence(measure: ConfidenceMeasure, probabilities: &[f32]) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &p in probabilities {
        if p > first {
            second = first;
            first = p;
        } else if p > second {
            second = p;
        }
    }
    match measure {
        ConfidenceMeasure::MaxProbability => first.max(0.0),
        ConfidenceMeasure::Margin => {
            if second == f32::NEG_INFINITY {
                first.max(0.0)
            } else {
                (first - second).max(0.0)
            }
        }
        ConfidenceMeasure::Entropy => {
            let k = probabilities.len();
            if k < 2 {
                return 1.0;
            }
            let total: f32 = probabilities.iter().map(|p| p.max(0.0)).sum();
            if total <= 0.0 {
                return 0.0;
            }
            let mut entropy = 0.0f32;
            for &p in probabilities {
                let q = p.max(0.0) / total;
                if q > 0.0 {
                    entropy -= q * ln(q);
                }
            }
            (1.0 - entropy / ln(k as f32)).clamp(0.0, 1.0)
        }
    }
}

const LN2: f32 = core::f32::consts::LN_2;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x to about 1e-7 relative error over the f32 range: x = k·ln2 + r, |r| ≤ ln2/2, a
/// degree-7 Taylor polynomial for e^r, then 2^k through the exponent bits.
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.0 {
        return f32::INFINITY;
    }
    if x < -87.0 {
        return 0.0;
    }
    let k = round_half_away(x / LN2);
    // Cody–Waite: ln2 split in a short high part (k·HI is exact) and a correction.
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0f32;
    let mut sum = 1.0f32;
    for n in 1..=7 {
        term = term * r / n as f32;
        sum += term;
    }
    sum * pow2(k as i32)
}

/// Natural logarithm for x > 0 (NaN otherwise): x = m·2^e with m in [1, 2), then
/// ln m = 2·atanh((m−1)/(m+1)) by its odd series.
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32;
    if e == 0 {
        // Subnormal: scale up by 2^23 first.
        bits = (x * 8_388_608.0).to_bits();
        e = ((bits >> 23) & 0xff) as i32 - 23;
    }
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0f32;
    let mut n = 1.0f32;
    for _ in 0..7 {
        sum += term / n;
        term *= s2;
        n += 2.0;
    }
    (e - 127) as f32 * LN2 + 2.0 * sum
}

fn round_half_away(x: f32) -> f32 {
    let t = x as i32 as f32; // truncation toward zero; |x| < 2^31 here
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

fn pow2(k: i32) -> f32 {
    // k in [-126, 127] for the clamped inputs above; split to stay in the normal range.
    if k < -126 {
        f32::from_bits(((k + 127 + 64) as u32) << 23) * f32::from_bits(((127 - 64) as u32) << 23)
    } else {
        f32::from_bits(((k + 127) as u32) << 23)
    }
}
