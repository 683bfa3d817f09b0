//! Input scaling. [`Normalisation`] is fitted on training data only and stored with the
//! model; [`seed_uint8_scaling`] reproduces the Big–Little seed's protocol, needed only to
//! evaluate its published `.tflite` models as their authors did.

use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset};

/// Per-channel standardisation `(x − mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Mean and (population) standard deviation of each channel over all samples and
    /// positions. A constant channel gets std 1 so that applying never divides by zero.
    pub fn fit(data: &Dataset) -> Result<Normalisation, DataError> {
        if data.is_empty() {
            return Err(DataError::Empty(
                "cannot fit a normalisation on an empty dataset".into(),
            ));
        }
        let c = data.channels();
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for (i, &v) in data.data.iter().enumerate() {
            sum[i % c] += v as f64;
        }
        let count = (data.data.len() / c) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        for (i, &v) in data.data.iter().enumerate() {
            let d = v as f64 - mean[i % c];
            sq[i % c] += d * d;
        }
        let std = sq
            .iter()
            .map(|s| (s / count).sqrt())
            .map(|s| if s > 1e-12 { s as f32 } else { 1.0 })
            .collect();
        Ok(Normalisation {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        })
    }

    /// Normalises every sample in place.
    pub fn apply(&self, data: &mut Dataset) -> Result<(), DataError> {
        if data.channels() != self.mean.len() {
            return Err(DataError::BadFormat {
                path: "normalisation".into(),
                reason: format!(
                    "fitted on {} channels, data has {}",
                    self.mean.len(),
                    data.channels()
                ),
            });
        }
        self.apply_sample(&mut data.data);
        Ok(())
    }

    /// Normalises values laid out channels-last (one sample or many); the length must be
    /// a multiple of the channel count.
    pub fn apply_sample(&self, values: &mut [f32]) {
        let c = self.mean.len();
        for (i, v) in values.iter_mut().enumerate() {
            *v = (*v - self.mean[i % c]) / self.std[i % c];
        }
    }
}

/// The seed's input scaling: per channel, `x01 = (x − min) / (max − min)` with min and max
/// over the whole dataset, then `trunc(255 · x01)` as numpy's `astype(uint8)` does. Same
/// layout as `data.data`. A constant channel maps to 0.
///
/// The seed computed in float64 from the decimal text files. Each `f32` is widened via its
/// shortest decimal form (which recovers the file's value when it had at most 7
/// significant digits) so that values on a truncation boundary land where numpy put them.
pub fn seed_uint8_scaling(data: &Dataset) -> Vec<u8> {
    let c = data.channels();
    let values: Vec<f64> = data.data.iter().map(|&v| decimal_f64(v)).collect();
    let mut min = vec![f64::INFINITY; c];
    let mut max = vec![f64::NEG_INFINITY; c];
    for (i, &v) in values.iter().enumerate() {
        min[i % c] = min[i % c].min(v);
        max[i % c] = max[i % c].max(v);
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let range = max[i % c] - min[i % c];
            if range > 0.0 {
                ((v - min[i % c]) / range * 255.0).trunc().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

/// The `f64` of the shortest decimal that round-trips to `v`.
fn decimal_f64(v: f32) -> f64 {
    use std::fmt::Write;
    let mut buf = String::with_capacity(16);
    let _ = write!(buf, "{v}");
    buf.parse().unwrap_or(v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_channel(values: Vec<f32>) -> Dataset {
        let n = values.len() / 4;
        Dataset {
            sample_shape: vec![2, 2],
            channel_names: vec!["a".into(), "b".into()],
            data: values,
            labels: vec![0; n],
            subjects: None,
            class_names: vec!["x".into()],
            sample_rate_hz: None,
            stream: None,
        }
    }

    #[test]
    fn fit_then_apply_gives_zero_mean_unit_std() {
        let mut d = two_channel(vec![1.0, 10.0, 3.0, 10.0, 5.0, 10.0, 7.0, 10.0]);
        let n = Normalisation::fit(&d).unwrap();
        assert_eq!(n.mean, vec![4.0, 10.0]);
        assert!((n.std[0] - 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(n.std[1], 1.0);
        n.apply(&mut d).unwrap();
        let a: Vec<f32> = d.data.iter().step_by(2).copied().collect();
        assert!(a.iter().sum::<f32>().abs() < 1e-6);
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Normalisation>(&json).unwrap(), n);
    }

    #[test]
    fn seed_scaling_truncates_like_numpy() {
        // channel a: min 0, max 3 → 0, 85, 170, 255; channel b constant → 0.
        let d = two_channel(vec![0.0, 2.0, 1.0, 2.0, 2.0, 2.0, 3.0, 2.0]);
        assert_eq!(seed_uint8_scaling(&d), vec![0, 0, 85, 0, 170, 0, 255, 0]);
        // 255 * 0.999 = 254.745 truncates to 254, not rounds to 255.
        let d = two_channel(vec![0.0, 0.0, 0.999, 0.0, 1.0, 0.0, 0.5, 0.0]);
        assert_eq!(seed_uint8_scaling(&d)[2], 254);
    }

    #[test]
    fn seed_scaling_works_on_the_file_decimals() {
        // Official test set, body_gyro_x: min −3.4317, max 3.2931. numpy (float64 from the
        // text) gives 136.00000000000003 → 136 for 0.15486; widening the f32 directly gives
        // 135.99999… → 135.
        let d = two_channel(vec![-3.4317, 0.0, 0.15486, 0.0, 3.2931, 0.0, 0.0, 0.0]);
        assert_eq!(seed_uint8_scaling(&d)[2], 136);
    }
}
