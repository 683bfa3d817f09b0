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
    /// Samples per second along the first axis, for time series whose source says so
    /// (UCI-HAR and HAPT 50 Hz, WISDM 20 Hz); `None` for images.
    pub sample_rate_hz: Option<f32>,
    /// Set when the windows were cut on a fixed grid over whole recordings
    /// ([`recording::stream_windows`]) rather than inside labelled segments.
    pub stream: Option<StreamInfo>,
}

/// What a continuous stream knows about each of its windows beyond the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Window length and step, in samples.
    pub window: usize,
    pub step: usize,
    /// False where most of the window is unlabelled: its label is a placeholder (0) and it
    /// is not scored, but a device would still process it.
    pub known: Vec<bool>,
    /// True where the window's samples carry more than one label (an activity change, or
    /// labelled and unlabelled samples).
    pub straddles: Vec<bool>,
    /// The recording each window was cut from; consecutive windows of one recording overlap.
    pub recording: Vec<u32>,
}

impl StreamInfo {
    /// The same per-window facts for the windows at `indices`.
    pub fn select(&self, indices: &[usize]) -> StreamInfo {
        StreamInfo {
            window: self.window,
            step: self.step,
            known: indices.iter().map(|&i| self.known[i]).collect(),
            straddles: indices.iter().map(|&i| self.straddles[i]).collect(),
            recording: indices.iter().map(|&i| self.recording[i]).collect(),
        }
    }
}

impl Dataset {
    /// Appends `other`'s windows (e.g. the validation split to the training split, to refit a
    /// model chosen on validation on all the data it may learn from). The two must agree in
    /// sample shape, channels and classes; subjects are kept only when both have them.
    pub fn append(&mut self, other: Dataset) -> Result<(), DataError> {
        let differs = [
            (other.sample_shape != self.sample_shape, "sample shape"),
            (other.channel_names != self.channel_names, "channels"),
            (other.class_names != self.class_names, "classes"),
        ];
        if let Some((_, what)) = differs.iter().find(|(d, _)| *d) {
            return Err(DataError::Incompatible((*what).to_string()));
        }
        self.data.extend_from_slice(&other.data);
        self.labels.extend_from_slice(&other.labels);
        self.subjects = match (self.subjects.take(), other.subjects) {
            (Some(mut a), Some(b)) => {
                a.extend_from_slice(&b);
                Some(a)
            }
            _ => None,
        };
        // Two splits back to back are not one continuous recording.
        self.stream = None;
        Ok(())
    }

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
            sample_rate_hz: self.sample_rate_hz,
            stream: self.stream.as_ref().map(|s| s.select(indices)),
        }
    }

    /// Whether window `i` has a label to score (always, outside streams).
    pub fn is_known(&self, i: usize) -> bool {
        self.stream.as_ref().is_none_or(|s| s.known[i])
    }

    /// The windows that have a label: all of them, outside streams.
    pub fn known_indices(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_known(i)).collect()
    }

    /// The labelled windows only, as an ordinary (non-stream) dataset: what training and
    /// plain accuracy see of a stream.
    pub fn labelled_only(&self) -> Dataset {
        let mut out = self.select(&self.known_indices());
        out.stream = None;
        out
    }

    /// Labelled samples per class, indexed by label (a stream's unknown windows excluded).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            if !self.is_known(i) {
                continue;
            }
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
pub mod recording;
pub mod spec;
pub mod text;
pub mod uci_har;
pub mod wisdm;

pub use error::DataError;
pub use normalise::{Normalisation, seed_uint8_scaling};
pub use spec::{Activities, DataSpec, LoadOptions, Source, Split, load, load_labelled};
