//! Dataset readers (UCI-HAR, HAPT raw recordings, IDX), filtering, windowing and
//! normalisation. Everything downstream sees one type, [`Dataset`]: samples stored
//! channels-last so that HAR windows (`[128, 9]`) and images (`[28, 28, 1]`) share it.

/// A labelled set of fixed-shape samples, in the order they were recorded.
///
/// Order matters: the UCI-HAR test windows are in subject-and-time order, which the
/// adaptive stream evaluation relies on.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Shape of one sample, channels last: `[time, channels]` for HAR, `[h, w, c]` for images.
    pub sample_shape: Vec<usize>,
    /// Channel names, e.g. `body_acc_x` … `total_acc_z`; length = last dim of `sample_shape`.
    pub channel_names: Vec<String>,
    /// All samples back to back, `len() == n * sample_shape.iter().product()`.
    pub data: Vec<f32>,
    /// Class index per sample, 0-based (UCI-HAR label 1 = WALKING becomes 0).
    pub labels: Vec<u32>,
    /// Subject (or other group) id per sample, when the source has one.
    pub subjects: Option<Vec<u32>>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of values in one sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The values of sample `i`, channels last.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// A new dataset holding the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let n = self.sample_len();
        let mut data = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            data.extend_from_slice(self.sample(i));
        }
        Dataset {
            sample_shape: self.sample_shape.clone(),
            channel_names: self.channel_names.clone(),
            data,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            subjects: self
                .subjects
                .as_ref()
                .map(|s| indices.iter().map(|&i| s[i]).collect()),
            class_names: self.class_names.clone(),
        }
    }

    /// Samples per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Number of channels (last dimension of a sample).
    pub fn channels(&self) -> usize {
        self.sample_shape.last().copied().unwrap_or(1)
    }
}

mod error;
pub mod fetch;
pub mod filter;
pub mod hapt;
pub mod idx;
pub mod metrics;
pub mod normalise;
pub mod official;
pub mod spec;
mod text;
pub mod uci_har;

pub use error::DataError;
pub use normalise::{Normalisation, seed_uint8_scaling};
pub use spec::{Activities, DataSpec, LoadOptions, Source, Split, load};
