//! How close HAPT-rebuilt windows come to the official UCI-HAR windows.
//!
//! The official test windows come in runs cut from one continuous stretch of recording
//! (window i+1 starts 64 samples after window i). Each run's first window is located in
//! the processed recordings of its subject by searching every sample offset for the least
//! mean absolute `total_acc` difference; the rest of the run follows at +64 samples. A run
//! counts as located when that mean is below [`LOCATE_THRESHOLD_G`].

use std::collections::HashSet;
use std::path::Path;

use crate::hapt::{self, HaptData, Processing};
use crate::uci_har::{self, HAR_CHANNELS, WINDOW};
use crate::{DataError, Dataset};

/// Largest mean |Δ total_acc| (g) at which an official window counts as found.
pub const LOCATE_THRESHOLD_G: f64 = 0.05;

/// Differences of one channel over all located windows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelDiff {
    pub channel: String,
    pub max_abs: f64,
    pub mean_abs: f64,
    /// Mean |Δ| over windows of walking activities (official labels 1–3) and of postures (4–6).
    pub mean_abs_dynamic: f64,
    pub mean_abs_static: f64,
    /// Max |Δ| in the first official test window.
    pub first_window_max_abs: f64,
    /// 99th percentile over windows of each window's max |Δ|.
    pub p99_window_max: f64,
}

/// Result of [`compare`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub official_windows: usize,
    /// Official windows found in the raw recordings.
    pub located: usize,
    /// Located windows that are exactly windows kinglet cuts from `labels.txt`.
    pub same_position_as_rebuilt: usize,
    /// Windows kinglet cuts for the test subjects (six basic activities).
    pub rebuilt_windows: usize,
    /// Located windows whose rebuilt window at the same position has the same label.
    pub label_agreement: usize,
    pub channels: Vec<ChannelDiff>,
}

fn runs(official: &Dataset) -> Vec<(usize, usize)> {
    let c = official.channels();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=official.len() {
        let continues = i < official.len() && {
            let prev = &official.sample(i - 1)[(WINDOW / 2) * c..];
            let next = &official.sample(i)[..(WINDOW / 2) * c];
            prev.iter().zip(next).all(|(a, b)| (a - b).abs() < 1e-3)
        };
        if !continues {
            out.push((start, i));
            start = i;
        }
    }
    out
}

/// Best (mean |Δ total_acc|, experiment, offset) for one official window.
fn locate(window: &[f32], data: &HaptData, user: u32) -> Option<(f64, u32, usize)> {
    let c = HAR_CHANNELS.len();
    let budget = LOCATE_THRESHOLD_G * (WINDOW * 3) as f64;
    let mut best: Option<(f64, u32, usize)> = None;
    for rec in data.recordings.values().filter(|r| r.user == user) {
        if rec.len < WINDOW {
            continue;
        }
        for off in 0..=rec.len - WINDOW {
            let limit = best.map_or(budget, |b| b.0.min(budget));
            let mut sum = 0f64;
            for t in 0..WINDOW {
                let r = &rec.signals[(off + t) * c + 6..(off + t) * c + 9];
                let w = &window[t * c + 6..t * c + 9];
                sum += (r[0] - w[0]).abs() as f64
                    + (r[1] - w[1]).abs() as f64
                    + (r[2] - w[2]).abs() as f64;
                if sum >= limit {
                    break;
                }
            }
            if sum < limit {
                best = Some((sum, rec.experiment, off));
            }
        }
    }
    best.map(|(s, e, o)| (s / (WINDOW * 3) as f64, e, o))
}

fn mean(sum: f64, windows: usize) -> f64 {
    if windows > 0 {
        sum / (windows * WINDOW) as f64
    } else {
        0.0
    }
}

/// Rebuilds the test subjects' recordings from HAPT and compares them with the official
/// test windows in `uci_dir`.
pub fn compare(
    uci_dir: &Path,
    hapt_path: &Path,
    processing: &Processing,
) -> Result<Comparison, DataError> {
    let official = uci_har::load_official_split(&uci_har::dataset_root(uci_dir), "test")?;
    let users: HashSet<u32> = official.subjects.iter().flatten().copied().collect();
    let data = hapt::read(hapt_path, |u| users.contains(&u), processing)?;
    let rebuilt_positions: std::collections::HashMap<(u32, usize), u32> = data
        .segments
        .iter()
        .filter(|s| users.contains(&s.user) && s.activity <= 6)
        .filter_map(|s| data.recordings.get(&s.experiment).map(|r| (s, r.len)))
        .flat_map(|(s, len)| {
            hapt::window_starts(s, len).map(move |st| ((s.experiment, st), s.activity - 1))
        })
        .collect();

    let c = HAR_CHANNELS.len();
    let subjects = official.subjects.clone().unwrap_or_default();
    let mut max_abs = vec![0f64; c];
    let mut sum_abs = vec![0f64; c];
    // [dynamic, static] sums and window counts.
    let mut sum_by_kind = vec![[0f64; 2]; c];
    let mut windows_by_kind = [0usize; 2];
    let mut first_window = vec![0f64; c];
    let mut window_max: Vec<Vec<f64>> = vec![Vec::new(); c];
    let (mut located, mut same_position, mut label_agreement) = (0, 0, 0);
    for (first, end) in runs(&official) {
        let Some((_, exp, off)) = locate(official.sample(first), &data, subjects[first]) else {
            continue;
        };
        let Some(rec) = data.recordings.get(&exp) else {
            continue;
        };
        for (k, i) in (first..end).enumerate() {
            let start = off + k * hapt::HOP;
            if start + WINDOW > rec.len {
                break;
            }
            located += 1;
            if let Some(&label) = rebuilt_positions.get(&(exp, start)) {
                same_position += 1;
                if label == official.labels[i] {
                    label_agreement += 1;
                }
            }
            let kind = usize::from(official.labels[i] >= 3);
            windows_by_kind[kind] += 1;
            let w = official.sample(i);
            let r = &rec.signals[start * c..(start + WINDOW) * c];
            let mut wmax = vec![0f64; c];
            for (j, (a, b)) in w.iter().zip(r).enumerate() {
                let d = (a - b).abs() as f64;
                let ch = j % c;
                sum_abs[ch] += d;
                sum_by_kind[ch][kind] += d;
                wmax[ch] = wmax[ch].max(d);
            }
            if i == 0 {
                first_window.clone_from(&wmax);
            }
            for ch in 0..c {
                max_abs[ch] = max_abs[ch].max(wmax[ch]);
                window_max[ch].push(wmax[ch]);
            }
        }
    }
    let channels = (0..c)
        .map(|ch| {
            let mut v = std::mem::take(&mut window_max[ch]);
            v.sort_by(f64::total_cmp);
            let p99 = if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * 0.99).round() as usize]
            };
            ChannelDiff {
                channel: HAR_CHANNELS[ch].to_string(),
                max_abs: max_abs[ch],
                mean_abs: mean(sum_abs[ch], located),
                mean_abs_dynamic: mean(sum_by_kind[ch][0], windows_by_kind[0]),
                mean_abs_static: mean(sum_by_kind[ch][1], windows_by_kind[1]),
                first_window_max_abs: first_window[ch],
                p99_window_max: p99,
            }
        })
        .collect();
    Ok(Comparison {
        official_windows: official.len(),
        located,
        same_position_as_rebuilt: same_position,
        rebuilt_windows: rebuilt_positions.len(),
        label_agreement,
        channels,
    })
}
