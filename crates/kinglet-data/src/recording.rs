//! Whole recordings with a label per sample, and the two ways of cutting them into windows:
//! inside labelled segments (how benchmark windows are made) and on a fixed grid over the
//! whole recording (how a device cuts its input, see [`stream_windows`]).

use crate::{DataError, Dataset, StreamInfo};

/// One continuous recording: `len` samples × `channel_names.len()` channels, row-major,
/// and per sample the class it belongs to (`None` where the source labels nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Subject who wore the sensor.
    pub subject: u32,
    /// Identifies the recording within its dataset (HAPT's experiment number, WISDM's
    /// subject id); stream windows never cross from one recording into the next.
    pub id: u32,
    /// Samples per second.
    pub sample_rate_hz: f32,
    pub channel_names: Vec<String>,
    /// `len × channels`, row-major.
    pub signals: Vec<f32>,
    /// Class index per sample; `None` = unlabelled (or a class the selection leaves out).
    pub labels: Vec<Option<u32>>,
}

impl Recording {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn channels(&self) -> usize {
        self.channel_names.len()
    }
}

/// Window length and step, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub window: usize,
    pub step: usize,
}

impl Grid {
    pub fn new(window: usize, step: usize) -> Result<Grid, DataError> {
        if window == 0 || step == 0 {
            return Err(DataError::BadSpec {
                spec: format!("window={window}:step={step}"),
                reason: "window and step must be at least one sample".into(),
            });
        }
        Ok(Grid { window, step })
    }
}

fn empty_like(recordings: &[Recording], grid: Grid, class_names: &[String]) -> Dataset {
    let first = recordings.first();
    let channel_names = first.map(|r| r.channel_names.clone()).unwrap_or_default();
    Dataset {
        sample_shape: vec![grid.window, channel_names.len()],
        channel_names,
        data: Vec::new(),
        labels: Vec::new(),
        subjects: Some(Vec::new()),
        class_names: class_names.to_vec(),
        sample_rate_hz: first.map(|r| r.sample_rate_hz),
        stream: None,
    }
}

fn check_compatible(recordings: &[Recording]) -> Result<(), DataError> {
    let Some(first) = recordings.first() else {
        return Ok(());
    };
    for r in recordings {
        if r.channel_names != first.channel_names || r.sample_rate_hz != first.sample_rate_hz {
            return Err(DataError::BadFormat {
                path: format!("recording {}", r.id),
                reason: format!(
                    "channels {:?} at {} Hz differ from recording {}'s {:?} at {} Hz",
                    r.channel_names,
                    r.sample_rate_hz,
                    first.id,
                    first.channel_names,
                    first.sample_rate_hz
                ),
            });
        }
        if r.signals.len() != r.len() * r.channels() {
            return Err(DataError::BadFormat {
                path: format!("recording {}", r.id),
                reason: format!(
                    "{} values for {} samples × {} channels",
                    r.signals.len(),
                    r.len(),
                    r.channels()
                ),
            });
        }
    }
    Ok(())
}

/// Appends samples `start..start + window` of `r` to `out` as one window labelled `label`.
fn push_window(out: &mut Dataset, r: &Recording, start: usize, window: usize, label: u32) {
    let c = r.channels();
    out.data
        .extend_from_slice(&r.signals[start * c..(start + window) * c]);
    out.labels.push(label);
    if let Some(subjects) = out.subjects.as_mut() {
        subjects.push(r.subject);
    }
}

/// The windows of `recordings` on `grid`: a continuous stream ([`stream_windows`]) or windows
/// inside labelled runs ([`segment_windows`]). None at all is an error naming `what`, the
/// dataset and split asked for.
pub fn cut(
    recordings: &[Recording],
    grid: Grid,
    class_names: &[String],
    stream: bool,
    what: &str,
) -> Result<Dataset, DataError> {
    let dataset = if stream {
        stream_windows(recordings, grid, class_names)?
    } else {
        segment_windows(recordings, grid, class_names)?
    };
    if dataset.is_empty() {
        return Err(DataError::Empty(format!(
            "no windows of {} samples in {what}",
            grid.window
        )));
    }
    Ok(dataset)
}

/// Windows that lie wholly inside one run of equally labelled samples, the first at the
/// run's start, then every `grid.step` samples, as many as fit: the curated kind of window
/// benchmark datasets publish. Unlabelled samples yield no window.
pub fn segment_windows(
    recordings: &[Recording],
    grid: Grid,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    check_compatible(recordings)?;
    let mut out = empty_like(recordings, grid, class_names);
    for r in recordings {
        let mut run_start = 0;
        while run_start < r.len() {
            let label = r.labels[run_start];
            let mut run_end = run_start + 1;
            while run_end < r.len() && r.labels[run_end] == label {
                run_end += 1;
            }
            if let Some(label) = label {
                let mut s = run_start;
                while s + grid.window <= run_end {
                    push_window(&mut out, r, s, grid.window, label);
                    s += grid.step;
                }
            }
            run_start = run_end;
        }
    }
    Ok(out)
}

/// Every window on a fixed grid over each recording (starts 0, step, 2·step, …), as a
/// device cuts its input: a window is labelled by the majority of its samples (ties go to
/// the later class, the one the device is moving into); a window whose majority is
/// unlabelled is kept, marked unknown in [`StreamInfo::known`], so that it still costs
/// energy but is not scored. [`StreamInfo::straddles`] marks windows whose samples carry
/// more than one label (unlabelled counts as one).
pub fn stream_windows(
    recordings: &[Recording],
    grid: Grid,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    check_compatible(recordings)?;
    let mut out = empty_like(recordings, grid, class_names);
    let classes = class_names.len();
    let mut info = StreamInfo {
        window: grid.window,
        step: grid.step,
        known: Vec::new(),
        straddles: Vec::new(),
        recording: Vec::new(),
    };
    // Per class (and unlabelled, last): samples in the window, and where it was last seen.
    let mut votes = vec![0usize; classes + 1];
    let mut last_seen = vec![0usize; classes + 1];
    for r in recordings {
        let mut s = 0;
        while s + grid.window <= r.len() {
            votes.fill(0);
            last_seen.fill(0);
            for (k, l) in r.labels[s..s + grid.window].iter().enumerate() {
                let slot = l.map_or(classes, |l| (l as usize).min(classes));
                votes[slot] += 1;
                last_seen[slot] = k;
            }
            let kinds = votes.iter().filter(|&&v| v > 0).count();
            let best = (0..=classes)
                .max_by_key(|&k| (votes[k], last_seen[k]))
                .unwrap_or(classes);
            let label = if best < classes { best as u32 } else { 0 };
            push_window(&mut out, r, s, grid.window, label);
            info.known.push(best < classes);
            info.straddles.push(kinds > 1);
            info.recording.push(r.id);
            s += grid.step;
        }
    }
    out.stream = Some(info);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(labels: Vec<Option<u32>>) -> Recording {
        let n = labels.len();
        Recording {
            subject: 7,
            id: 3,
            sample_rate_hz: 20.0,
            channel_names: vec!["a".into()],
            signals: (0..n).map(|i| i as f32).collect(),
            labels,
        }
    }

    fn names() -> Vec<String> {
        vec!["x".into(), "y".into()]
    }

    #[test]
    fn segment_windows_stay_inside_runs() {
        // 10 samples of class 0, 3 unlabelled, 8 of class 1.
        let mut labels = vec![Some(0); 10];
        labels.extend([None; 3]);
        labels.extend([Some(1); 8]);
        let d = segment_windows(&[rec(labels)], Grid::new(4, 2).unwrap(), &names()).unwrap();
        // Run of 10 → starts 0,2,4,6; run of 8 (from 13) → 13,15,17.
        assert_eq!(d.labels, vec![0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(d.sample(4), &[13.0, 14.0, 15.0, 16.0]);
        assert!(d.stream.is_none());
        assert_eq!(d.sample_rate_hz, Some(20.0));
    }

    #[test]
    fn stream_windows_cover_the_grid_with_majority_labels() {
        let mut labels = vec![Some(0); 5];
        labels.extend([None; 3]);
        labels.extend([Some(1); 4]);
        let d = stream_windows(&[rec(labels)], Grid::new(4, 2).unwrap(), &names()).unwrap();
        let s = d.stream.as_ref().unwrap();
        // Starts 0,2,4,6,8: [0000] [000∅] [0∅∅∅] [∅∅11] [1111].
        assert_eq!(d.len(), 5);
        assert_eq!(s.known, vec![true, true, false, true, true]);
        assert_eq!(s.straddles, vec![false, true, true, true, false]);
        // [∅∅11]: a tie between unlabelled and class 1 goes to the later, class 1.
        assert_eq!(d.labels[3], 1);
        assert_eq!(d.labels[4], 1);
        assert_eq!(s.recording, vec![3; 5]);
    }

    #[test]
    fn a_short_recording_gives_no_window_and_mismatched_channels_are_refused() {
        let d =
            stream_windows(&[rec(vec![Some(0); 3])], Grid::new(4, 2).unwrap(), &names()).unwrap();
        assert!(d.is_empty());
        let mut other = rec(vec![Some(0); 8]);
        other.channel_names = vec!["b".into()];
        let err = stream_windows(
            &[rec(vec![Some(0); 8]), other],
            Grid::new(4, 2).unwrap(),
            &names(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
        assert!(Grid::new(0, 1).is_err());
    }
}
