//! Turns a [`Dataset`] (channels-last windows, class labels) into what a network consumes:
//! one channels-first array per branch, normalised, and the task's targets.
//!
//! Pairs for the `change` task (the seed's Dual network) are built from consecutive windows of
//! the same subject, in dataset order: sample `i` is (window `i-1`, window `i`), target 1 when
//! both windows carry the same class, 0 when the activity changed. Each window's channels are
//! laid end to end in time (x then y then z, 3 × 128 = 384 samples), and the two windows are the
//! two input channels (previous, current), matching `dual_motions.tflite`'s `[1, 384, 2]` input.

use kinglet_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::arch::{Architecture, Task};

/// Per-channel affine normalisation `(x - mean) / std`, fitted on training windows only and
/// stored in the model file so evaluation and firmware apply exactly the same transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelNormalisation {
    pub channels: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Samples per second of the training windows: the input description travels with the
    /// normalisation (into `.kgl` and `.tflite` metadata), so that data at another rate is
    /// refused instead of silently misread. `None` for images and older model files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate_hz: Option<f32>,
}

impl ChannelNormalisation {
    /// Fits mean and standard deviation of every channel of `data` (kinglet-data's
    /// [`Normalisation`](kinglet_data::normalise::Normalisation)), keeping the channel names.
    pub fn fit(data: &Dataset) -> Result<Self, Error> {
        channel_count(data)?;
        let n = kinglet_data::normalise::Normalisation::fit(data)
            .map_err(|e| Error::Data(e.to_string()))?;
        Ok(Self {
            channels: data.channel_names.clone(),
            mean: n.mean,
            std: n.std,
            sample_rate_hz: data.sample_rate_hz,
        })
    }

    /// The identity transform (used when an architecture disables normalisation).
    pub fn identity(channels: &[String]) -> Self {
        Self {
            channels: channels.to_vec(),
            mean: vec![0.0; channels.len()],
            std: vec![1.0; channels.len()],
            sample_rate_hz: None,
        }
    }

    /// Refuses windows recorded at another rate than the training windows (when both know
    /// theirs).
    pub fn check_rate(&self, data: &Dataset) -> Result<(), Error> {
        match (self.sample_rate_hz, data.sample_rate_hz) {
            (Some(model), Some(d)) if (model - d).abs() > 1e-3 * model.abs().max(1.0) => {
                Err(Error::Data(format!(
                    "the model was trained on windows sampled at {model} Hz, the data is sampled at {d} Hz"
                )))
            }
            _ => Ok(()),
        }
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c == name)
    }
}

/// One sample as a graph's inputs: a channels-last `Vec<f32>` per input, in graph order (the
/// same shape as kinglet-compress's calibration samples).
pub type GraphInput = Vec<Vec<f32>>;

/// Each sample of `data` as the inputs of the model's lowered graph ([`crate::lower()`]): one
/// channels-last `Vec<f32>` per branch, normalised as the model was trained; with the
/// expected output index of each sample. What post-training quantisation calibrates on and
/// what a host interpreter is fed.
pub fn graph_inputs(
    model: &crate::TrainedModel,
    data: &Dataset,
) -> Result<(Vec<GraphInput>, Vec<usize>), Error> {
    let prepared = prepare(&model.architecture, data, &model.normalisation)?;
    let samples = (0..prepared.len())
        .map(|i| {
            prepared
                .branches
                .iter()
                .map(|b| channels_last(b.sample(i), b.channels, b.length))
                .collect()
        })
        .collect();
    let targets = prepared.targets.iter().map(|&t| t as usize).collect();
    Ok((samples, targets))
}

/// `[channels, length]` (how branches hold a sample) to `[length, channels]` (graph order).
fn channels_last(values: &[f32], channels: usize, length: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for c in 0..channels {
        for t in 0..length {
            out[t * channels + c] = values[c * length + t];
        }
    }
    out
}

fn channel_count(data: &Dataset) -> Result<usize, Error> {
    match data.sample_shape.as_slice() {
        [_, c] | [_, _, c] if *c > 0 => Ok(*c),
        other => Err(Error::Data(format!(
            "expected windows shaped [time, channels] or images [height, width, channels], got {other:?}"
        ))),
    }
}

/// One branch's input for every sample: `[n, channels, length]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchInput {
    pub channels: usize,
    pub length: usize,
    pub data: Vec<f32>,
}

impl BranchInput {
    /// Values of sample `i`, channels-first.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.channels * self.length;
        &self.data[i * n..(i + 1) * n]
    }
}

/// Network-ready samples and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub branches: Vec<BranchInput>,
    pub targets: Vec<u32>,
    /// Names of the network's outputs.
    pub class_names: Vec<String>,
}

impl Prepared {
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Output class names for `arch` on a dataset with `dataset_classes`.
pub fn output_class_names(
    arch: &Architecture,
    dataset_classes: &[String],
) -> Result<Vec<String>, Error> {
    Ok(match arch.task {
        Task::Activity | Task::Image { .. } => dataset_classes.to_vec(),
        Task::OneVsRest { class } => {
            let name = dataset_classes.get(class as usize).ok_or_else(|| {
                Error::Data(format!(
                    "one-vs-rest class {class} does not exist: the dataset has {} classes",
                    dataset_classes.len()
                ))
            })?;
            vec![format!("not {name}"), name.clone()]
        }
        Task::Change => vec!["changed".into(), "same".into()],
    })
}

/// Builds branch inputs and targets for `arch` from `data`, normalised with `norm`.
pub fn prepare(
    arch: &Architecture,
    data: &Dataset,
    norm: &ChannelNormalisation,
) -> Result<Prepared, Error> {
    let c_all = channel_count(data)?;
    norm.check_rate(data)?;
    if let Task::Image { height, width } = arch.task {
        // Images are windows of height·width pixels (row-major, channels last).
        if data.sample_shape[..] != [height, width, c_all] {
            return Err(Error::Data(format!(
                "architecture `{}` expects {height}×{width} images, the dataset's samples are {:?}",
                arch.name, data.sample_shape
            )));
        }
    } else if data.sample_shape[0] != arch.window {
        return Err(Error::Data(format!(
            "architecture `{}` expects {}-sample windows, the dataset has {}",
            arch.name, arch.window, data.sample_shape[0]
        )));
    }
    let class_names = output_class_names(arch, &data.class_names)?;
    // For every branch channel: index in the dataset and its normalisation.
    let mut maps = Vec::new();
    for b in &arch.branches {
        let mut m = Vec::new();
        for name in &b.channels {
            let di = data
                .channel_names
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| {
                    Error::Data(format!(
                        "branch `{}` needs channel `{name}`, the dataset has {}",
                        b.name,
                        data.channel_names.join(", ")
                    ))
                })?;
            let ni = norm
                .index_of(name)
                .ok_or_else(|| Error::Data(format!("normalisation has no channel `{name}`")))?;
            m.push((di, norm.mean[ni], norm.std[ni]));
        }
        maps.push(m);
    }
    let t = match arch.task {
        Task::Image { height, width } => height * width,
        _ => arch.window,
    };
    let n = data.len();
    // Channels-first, normalised copy of one window for one branch.
    let branch_window = |i: usize, map: &[(usize, f32, f32)], out: &mut Vec<f32>| {
        let s = data.sample(i);
        for &(di, mean, std) in map {
            out.extend((0..t).map(|k| (s[k * c_all + di] - mean) / std));
        }
    };
    match arch.task {
        Task::Activity | Task::OneVsRest { .. } | Task::Image { .. } => {
            let mut branches = Vec::new();
            for m in &maps {
                let mut buf = Vec::with_capacity(n * m.len() * t);
                for i in 0..n {
                    branch_window(i, m, &mut buf);
                }
                branches.push(BranchInput {
                    channels: m.len(),
                    length: t,
                    data: buf,
                });
            }
            let targets = match arch.task {
                Task::OneVsRest { class } => {
                    data.labels.iter().map(|&l| u32::from(l == class)).collect()
                }
                _ => data.labels.clone(),
            };
            Ok(Prepared {
                branches,
                targets,
                class_names,
            })
        }
        Task::Change => {
            let m = &maps[0];
            let len = t * m.len();
            let mut buf = Vec::new();
            let mut targets = Vec::new();
            let (mut prev, mut cur) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for i in 1..n {
                if let Some(s) = &data.subjects
                    && s[i] != s[i - 1]
                {
                    continue;
                }
                prev.clear();
                cur.clear();
                branch_window(i - 1, m, &mut prev);
                branch_window(i, m, &mut cur);
                buf.extend_from_slice(&prev);
                buf.extend_from_slice(&cur);
                targets.push(u32::from(data.labels[i] == data.labels[i - 1]));
            }
            Ok(Prepared {
                branches: vec![BranchInput {
                    channels: 2,
                    length: len,
                    data: buf,
                }],
                targets,
                class_names,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_transposes() {
        // 2 channels × 3 steps: [a0 a1 a2 | b0 b1 b2] → [a0 b0 a1 b1 a2 b2]
        assert_eq!(
            channels_last(&[1.0, 2.0, 3.0, 10.0, 20.0, 30.0], 2, 3),
            vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]
        );
    }

    #[test]
    fn data_at_another_rate_is_refused() {
        let mut d = tiny();
        d.sample_rate_hz = Some(50.0);
        let mut n = ChannelNormalisation::fit(&d).unwrap();
        assert_eq!(n.sample_rate_hz, Some(50.0));
        assert!(n.check_rate(&d).is_ok());
        d.sample_rate_hz = Some(20.0);
        let err = n.check_rate(&d).unwrap_err().to_string();
        assert!(err.contains("50 Hz") && err.contains("20 Hz"), "{err}");
        // Older model files know no rate and accept any.
        n.sample_rate_hz = None;
        assert!(n.check_rate(&d).is_ok());
    }

    fn tiny() -> Dataset {
        // 3 windows of 2 samples × 2 channels.
        Dataset {
            sample_shape: vec![2, 2],
            channel_names: vec!["a".into(), "b".into()],
            data: vec![1., 10., 2., 20., 3., 30., 4., 40., 5., 50., 6., 60.],
            labels: vec![0, 0, 1],
            subjects: Some(vec![1, 1, 1]),
            class_names: vec!["x".into(), "y".into()],
            sample_rate_hz: None,
            stream: None,
        }
    }

    #[test]
    fn normalisation_fits_mean_and_std_per_channel() {
        let n = ChannelNormalisation::fit(&tiny()).unwrap();
        assert_eq!(n.mean, vec![3.5, 35.0]);
        assert!((n.std[0] - (35.0f32 / 12.0).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn change_pairs_stack_previous_and_current_windows() {
        let mut arch = Architecture::preset("dual").unwrap();
        arch.window = 2;
        arch.branches[0].channels = vec!["b".into(), "a".into()];
        let p = prepare(
            &arch,
            &tiny(),
            &ChannelNormalisation::identity(&["a".into(), "b".into()]),
        )
        .unwrap();
        assert_eq!(p.targets, vec![1, 0]);
        // Pair 0: previous window 0 (b: 10 20, a: 1 2), current window 1 (b: 30 40, a: 3 4).
        assert_eq!(
            p.branches[0].sample(0),
            &[10., 20., 1., 2., 30., 40., 3., 4.]
        );
    }

    #[test]
    fn missing_channel_is_named() {
        let mut arch = Architecture::preset("little0").unwrap();
        arch.window = 2;
        let err = prepare(&arch, &tiny(), &ChannelNormalisation::identity(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("total_acc_x"), "{err}");
    }
}
