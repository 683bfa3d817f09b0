//! HAPT raw recordings (`RawData/acc_expNN_userNN.txt`, `gyro_…`, `labels.txt`) turned
//! into UCI-HAR-style windows.
//!
//! Processing, per recording and per axis, pinned down by matching the official UCI-HAR
//! test windows (see `kinglet data compare-official` and BENCHMARKS.md):
//! 1. median filter over 3 samples (zero-padded ends);
//! 2. 3rd-order Butterworth low-pass at 20 Hz, causal, zero initial state at the start of
//!    the recording → `total_acc` (in g) and the gyroscope signal (rad/s);
//! 3. gravity = 3rd-order Butterworth low-pass at 0.3 Hz of `total_acc`, causal over the
//!    whole recording; `body_acc = total_acc − gravity`;
//! 4. `body_gyro` = gyroscope − its 2nd-order 0.1 Hz Butterworth low-pass (causal). UCI-HAR
//!    does not document this step, but the official `body_gyro` windows carry no slow
//!    rotation (e.g. turning on stair landings) that the raw gyroscope has; this drift
//!    removal was found by fitting against the official windows and cuts the mean gyro
//!    difference two- to sevenfold. [`Processing::gyro_drift_removal`] turns it off.
//!
//! Posture windows then match the official ones to about 0.001 g mean |Δ|. Walking windows
//! differ by about 0.013–0.024 g: the official signals relate to the raw ones by the same
//! gain but a slightly different phase (up to 0.2 rad around 9 Hz), most likely from how the
//! phone's irregular samples were resampled to 50 Hz for each release; no documented step
//! reproduces it.
//!
//! Windows: 128 samples, hop 64, the first starting at a labelled segment's start, as many
//! as fit inside the segment. `labels.txt` counts samples from 1; the official windows start
//! one sample earlier still, so window 0 of a segment starting at `s` covers 0-based
//! samples `s − 2 ..= s + 125` ([`LABEL_START_OFFSET`]).
//!
//! Classes: the six basic activities (`classes=6`, UCI-HAR's task) or all twelve
//! (`classes=12`: the six postural transitions STAND_TO_SIT … LIE_TO_STAND become labels
//! 6–11). A transition window is cut by the same rule as an activity window: it lies wholly
//! inside the transition's labelled segment, so a transition shorter than 128 samples
//! (2.56 s) yields no window and a longer one yields one window per 64 samples. In a
//! continuous stream ([`load_recordings`] with `stream`), each window on the fixed grid takes
//! the majority label of its samples instead, transitions included (with `classes=6` their
//! samples count as unlabelled).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::filter::{Iir, median_filter};
use crate::recording::{Grid, Recording};
use crate::text::{parse_float_table, parse_int_table, parse_label_names};
use crate::uci_har::{HAR_CHANNELS, WINDOW};
use crate::{Activities, DataError, Dataset, Split};

/// UCI-HAR's test subjects.
pub const TEST_SUBJECTS: [u32; 9] = [2, 4, 9, 10, 12, 13, 18, 20, 24];
/// Training subjects held out for validation (three of the 21, spread over the ids).
pub const VAL_SUBJECTS: [u32; 3] = [6, 16, 26];
/// Window hop (50 % overlap).
pub const HOP: usize = 64;
/// Sampling rate of the raw recordings.
pub const SAMPLE_RATE_HZ: f64 = 50.0;
/// 0-based index of a segment's first window = `labels.txt` start + this.
pub const LABEL_START_OFFSET: i64 = -2;

/// Whether a subject belongs to a split.
pub fn subject_in_split(subject: u32, split: Split) -> bool {
    subject_in(subject, split, &VAL_SUBJECTS)
}

/// Whether a subject belongs to a split when `val` lists the validation subjects: test is
/// UCI-HAR's test subjects whatever `val` says, training everyone else.
pub fn subject_in(subject: u32, split: Split, val: &[u32]) -> bool {
    let test = TEST_SUBJECTS.contains(&subject);
    let val = !test && val.contains(&subject);
    match split {
        Split::Test => test,
        Split::Val => val,
        Split::Train => !test && !val,
    }
}

/// Signal processing choices (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processing {
    pub gyro_drift_removal: bool,
}

impl Default for Processing {
    fn default() -> Self {
        Processing {
            gyro_drift_removal: true,
        }
    }
}

/// One row of `labels.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub experiment: u32,
    pub user: u32,
    /// 1-based activity id (1 WALKING … 12 LIE_TO_STAND).
    pub activity: u32,
    /// First and last sample, as written (1-based, inclusive).
    pub start: i64,
    pub end: i64,
    /// Line in `labels.txt`.
    pub line: usize,
}

/// A recording after filtering: `len` samples × the nine [`HAR_CHANNELS`].
#[derive(Debug, Clone)]
pub struct ProcessedRecording {
    pub experiment: u32,
    pub user: u32,
    pub len: usize,
    pub signals: Vec<f32>,
}

/// The parsed archive: activity names, label segments and processed recordings.
#[derive(Debug, Clone)]
pub struct HaptData {
    /// All twelve activity names from `activity_labels.txt`.
    pub activity_names: Vec<String>,
    pub segments: Vec<Segment>,
    /// Processed recordings keyed by experiment number.
    pub recordings: BTreeMap<u32, ProcessedRecording>,
}

/// A zip archive's bytes: a file, or bytes already in memory.
trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

/// The published archive or a folder unpacked from it.
enum RawSource {
    Zip {
        path: PathBuf,
        archive: zip::ZipArchive<Box<dyn ReadSeek>>,
        names: BTreeMap<String, usize>,
    },
    Dir {
        raw: PathBuf,
        root: PathBuf,
    },
}

impl RawSource {
    fn open(path: &Path) -> Result<RawSource, DataError> {
        if path.is_dir() {
            if path.join("RawData").join("labels.txt").is_file() {
                return Ok(RawSource::Dir {
                    raw: path.join("RawData"),
                    root: path.to_path_buf(),
                });
            }
            // One level down, for a folder holding the unpacked archive's own folder.
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    let root = entry.path();
                    if root.join("RawData").join("labels.txt").is_file() {
                        return Ok(RawSource::Dir {
                            raw: root.join("RawData"),
                            root,
                        });
                    }
                }
            }
            return Err(DataError::MissingFile {
                path: path
                    .join("RawData")
                    .join("labels.txt")
                    .display()
                    .to_string(),
            });
        }
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path.display(), e))?;
        RawSource::zip(path, Box::new(file))
    }

    /// The archive read from `reader`; `path` only names it in errors.
    fn zip(path: &Path, reader: Box<dyn ReadSeek>) -> Result<RawSource, DataError> {
        let archive = zip::ZipArchive::new(reader).map_err(|source| DataError::Zip {
            path: path.display().to_string(),
            source,
        })?;
        let all_names: Vec<(usize, String)> = (0..archive.len())
            .filter_map(|i| archive.name_for_index(i)?.ok().map(|n| (i, n.to_string())))
            .collect();
        let labels_name = all_names
            .iter()
            .map(|(_, n)| n)
            .find(|n| n.ends_with("RawData/labels.txt"))
            .cloned()
            .ok_or_else(|| DataError::MissingFile {
                path: format!("{}!RawData/labels.txt", path.display()),
            })?;
        let prefix = labels_name.trim_end_matches("labels.txt").to_string();
        let mut names = BTreeMap::new();
        for (i, name) in &all_names {
            if let Some(rest) = name.strip_prefix(&prefix) {
                names.insert(rest.to_string(), *i);
            }
        }
        let root_prefix = prefix.trim_end_matches("RawData/").to_string();
        if let Some(i) = archive.index_for_name(&format!("{root_prefix}activity_labels.txt")) {
            names.insert("../activity_labels.txt".to_string(), i);
        }
        Ok(RawSource::Zip {
            path: path.to_path_buf(),
            archive,
            names,
        })
    }

    /// Display name of a file under `RawData/` (`../x` = next to `RawData/`).
    fn display(&self, name: &str) -> String {
        match self {
            RawSource::Zip { path, .. } => {
                format!(
                    "{}!{}",
                    path.display(),
                    name.strip_prefix("../")
                        .map_or(format!("RawData/{name}"), str::to_string)
                )
            }
            RawSource::Dir { raw, root } => match name.strip_prefix("../") {
                Some(n) => root.join(n).display().to_string(),
                None => raw.join(name).display().to_string(),
            },
        }
    }

    fn read(&mut self, name: &str) -> Result<String, DataError> {
        let shown = self.display(name);
        match self {
            RawSource::Zip {
                path,
                archive,
                names,
            } => {
                let index = *names.get(name).ok_or(DataError::MissingFile {
                    path: shown.clone(),
                })?;
                let mut entry = archive.by_index(index).map_err(|source| DataError::Zip {
                    path: path.display().to_string(),
                    source,
                })?;
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| DataError::io(&shown, e))?;
                String::from_utf8(bytes).map_err(|_| DataError::BadFormat {
                    path: shown,
                    reason: "not UTF-8 text".into(),
                })
            }
            RawSource::Dir { raw, root } => {
                let full = match name.strip_prefix("../") {
                    Some(n) => root.join(n),
                    None => raw.join(name),
                };
                std::fs::read_to_string(&full).map_err(|e| DataError::io(full.display(), e))
            }
        }
    }
}

fn parse_segments(text: &str, path: &str) -> Result<Vec<Segment>, DataError> {
    let rows = parse_int_table(text, path, 5)?;
    let mut segments = Vec::with_capacity(rows.len());
    for (line, r) in rows {
        let bad = |reason: String| DataError::BadValue {
            path: path.to_string(),
            line,
            reason,
        };
        if r[0] < 1 || r[1] < 1 || r[2] < 1 {
            return Err(bad(
                "experiment, user and activity ids must be positive".into()
            ));
        }
        if r[3] < 1 || r[4] < r[3] {
            return Err(bad(format!(
                "segment {}..{} is empty or starts before sample 1",
                r[3], r[4]
            )));
        }
        segments.push(Segment {
            experiment: r[0] as u32,
            user: r[1] as u32,
            activity: r[2] as u32,
            start: r[3],
            end: r[4],
            line,
        });
    }
    Ok(segments)
}

/// Filters one recording (`acc`, `gyro`: `len × 3`, row-major) into the nine channels.
pub fn process_recording(acc: &[f64], gyro: &[f64], processing: &Processing) -> Vec<f32> {
    let len = acc.len() / 3;
    let noise = Iir::butterworth_lowpass(3, 20.0, SAMPLE_RATE_HZ);
    let gravity = Iir::butterworth_lowpass(3, 0.3, SAMPLE_RATE_HZ);
    let drift = Iir::butterworth_lowpass(2, 0.1, SAMPLE_RATE_HZ);
    let axis = |x: &[f64], a: usize| -> Vec<f64> { (0..len).map(|i| x[i * 3 + a]).collect() };
    let mut out = vec![0f32; len * 9];
    for a in 0..3 {
        let total = noise.filter(&median_filter(&axis(acc, a), 3));
        let grav = gravity.filter(&total);
        let mut gyr = noise.filter(&median_filter(&axis(gyro, a), 3));
        if processing.gyro_drift_removal {
            let slow = drift.filter(&gyr);
            for (g, s) in gyr.iter_mut().zip(slow) {
                *g -= s;
            }
        }
        for i in 0..len {
            out[i * 9 + a] = (total[i] - grav[i]) as f32;
            out[i * 9 + 3 + a] = gyr[i] as f32;
            out[i * 9 + 6 + a] = total[i] as f32;
        }
    }
    out
}

/// Reads `labels.txt` and the recordings of the users `keep_user` accepts, and filters them.
pub fn read(
    path: &Path,
    keep_user: impl Fn(u32) -> bool,
    processing: &Processing,
) -> Result<HaptData, DataError> {
    read_source(RawSource::open(path)?, keep_user, processing)
}

/// [`read`] on the published archive's bytes already in memory (an upload, a fuzzer's
/// input); errors name the archive `<memory>`.
pub fn read_zip_bytes(
    bytes: &[u8],
    keep_user: impl Fn(u32) -> bool,
    processing: &Processing,
) -> Result<HaptData, DataError> {
    let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let source = RawSource::zip(Path::new("<memory>"), reader)?;
    read_source(source, keep_user, processing)
}

fn read_source(
    mut source: RawSource,
    keep_user: impl Fn(u32) -> bool,
    processing: &Processing,
) -> Result<HaptData, DataError> {
    let labels_text = source.read("labels.txt")?;
    let segments = parse_segments(&labels_text, &source.display("labels.txt"))?;
    let activity_names = match source.read("../activity_labels.txt") {
        Ok(text) => parse_label_names(&text, &source.display("../activity_labels.txt"))?,
        Err(DataError::MissingFile { .. }) => DEFAULT_ACTIVITY_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Err(e) => return Err(e),
    };

    // Experiments to read, with their user; raw text first (zip access is sequential),
    // then parse and filter on all cores.
    let mut wanted: BTreeMap<u32, u32> = BTreeMap::new();
    for s in &segments {
        if keep_user(s.user) {
            if let Some(&u) = wanted.get(&s.experiment)
                && u != s.user
            {
                return Err(DataError::BadValue {
                    path: source.display("labels.txt"),
                    line: s.line,
                    reason: format!(
                        "experiment {} listed with users {u} and {}",
                        s.experiment, s.user
                    ),
                });
            }
            wanted.insert(s.experiment, s.user);
        }
    }
    let mut texts = Vec::with_capacity(wanted.len());
    for (&exp, &user) in &wanted {
        let acc_name = format!("acc_exp{exp:02}_user{user:02}.txt");
        let gyro_name = format!("gyro_exp{exp:02}_user{user:02}.txt");
        let acc = source.read(&acc_name)?;
        let gyro = source.read(&gyro_name)?;
        texts.push((
            exp,
            user,
            source.display(&acc_name),
            acc,
            source.display(&gyro_name),
            gyro,
        ));
    }

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(texts.len().max(1));
    let results: Vec<Result<ProcessedRecording, DataError>> = std::thread::scope(|scope| {
        let chunks: Vec<_> = texts.chunks(texts.len().div_ceil(threads).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(exp, user, acc_name, acc, gyro_name, gyro)| {
                            let (acc_v, acc_rows) = parse_float_table(acc, acc_name, 3)?;
                            let (gyro_v, gyro_rows) = parse_float_table(gyro, gyro_name, 3)?;
                            if acc_rows != gyro_rows {
                                return Err(DataError::RowCountMismatch {
                                    path: gyro_name.clone(),
                                    found: gyro_rows,
                                    reference: acc_name.clone(),
                                    expected: acc_rows,
                                });
                            }
                            Ok(ProcessedRecording {
                                experiment: *exp,
                                user: *user,
                                len: acc_rows,
                                signals: process_recording(&acc_v, &gyro_v, processing),
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut recordings = BTreeMap::new();
    for r in results {
        let r = r?;
        recordings.insert(r.experiment, r);
    }
    // A segment past the end of its recording means labels and data do not belong together.
    for s in segments.iter().filter(|s| keep_user(s.user)) {
        if let Some(r) = recordings.get(&s.experiment)
            && s.end as usize > r.len
        {
            return Err(DataError::BadValue {
                path: source.display("labels.txt"),
                line: s.line,
                reason: format!(
                    "segment ends at sample {} but experiment {} has {} samples",
                    s.end, s.experiment, r.len
                ),
            });
        }
    }
    Ok(HaptData {
        activity_names,
        segments,
        recordings,
    })
}

/// Activity names used when the archive lacks `activity_labels.txt`.
pub const DEFAULT_ACTIVITY_NAMES: [&str; 12] = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
    "STAND_TO_SIT",
    "SIT_TO_STAND",
    "SIT_TO_LIE",
    "LIE_TO_SIT",
    "STAND_TO_LIE",
    "LIE_TO_STAND",
];

/// 0-based start indices of the windows cut from a segment of a recording `len` long.
pub fn window_starts(segment: &Segment, len: usize) -> impl Iterator<Item = usize> {
    let seg_len = (segment.end - segment.start + 1).max(0) as usize;
    let count = if seg_len >= WINDOW {
        (seg_len - WINDOW) / HOP + 1
    } else {
        0
    };
    let first = segment.start + LABEL_START_OFFSET;
    (0..count).filter_map(move |k| {
        let s = first + (k * HOP) as i64;
        (s >= 0 && s as usize + WINDOW <= len).then_some(s as usize)
    })
}

/// Cuts windows from the segments of users `keep_user` accepts, in `labels.txt` order.
pub fn windows(
    data: &HaptData,
    activities: Activities,
    keep_user: impl Fn(u32) -> bool,
) -> Dataset {
    let classes = class_count(activities);
    let class_names: Vec<String> = data.activity_names.iter().take(classes).cloned().collect();
    let channels = HAR_CHANNELS.len();
    let mut out = Dataset {
        sample_shape: vec![WINDOW, channels],
        channel_names: HAR_CHANNELS.iter().map(|s| s.to_string()).collect(),
        data: Vec::new(),
        labels: Vec::new(),
        subjects: Some(Vec::new()),
        class_names,
        sample_rate_hz: Some(SAMPLE_RATE_HZ as f32),
        stream: None,
    };
    for s in &data.segments {
        if !keep_user(s.user) || s.activity as usize > classes {
            continue;
        }
        let Some(rec) = data.recordings.get(&s.experiment) else {
            continue;
        };
        for start in window_starts(s, rec.len) {
            out.data
                .extend_from_slice(&rec.signals[start * channels..(start + WINDOW) * channels]);
            out.labels.push(s.activity - 1);
            if let Some(subjects) = out.subjects.as_mut() {
                subjects.push(s.user);
            }
        }
    }
    out
}

/// The recordings of users `keep_user` accepts with a label per sample: the segment's
/// activity for samples inside a labelled segment (`labels.txt`'s 1-based bounds, inclusive),
/// `None` elsewhere and for the postural transitions when `activities` is the basic six.
pub fn recordings(
    data: HaptData,
    activities: Activities,
    keep_user: impl Fn(u32) -> bool,
) -> Vec<Recording> {
    let classes = class_count(activities);
    let channel_names: Vec<String> = HAR_CHANNELS.iter().map(|s| s.to_string()).collect();
    let segments = data.segments;
    data.recordings
        .into_values()
        .filter(|r| keep_user(r.user))
        .map(|r| {
            let mut labels = vec![None; r.len];
            for s in segments.iter().filter(|s| s.experiment == r.experiment) {
                if s.activity as usize > classes {
                    continue;
                }
                let first = (s.start - 1).max(0) as usize;
                let last = (s.end as usize).min(r.len);
                for l in labels.iter_mut().take(last).skip(first) {
                    *l = Some(s.activity - 1);
                }
            }
            Recording {
                subject: r.user,
                id: r.experiment,
                sample_rate_hz: SAMPLE_RATE_HZ as f32,
                channel_names: channel_names.clone(),
                signals: r.signals,
                labels,
            }
        })
        .collect()
}

/// One split of HAPT cut on another grid than UCI-HAR's: windows inside labelled segments
/// (`stream == false`; for a window or step other than 128/64) or a continuous stream over
/// each whole recording (see [`recording::stream_windows`](crate::recording::stream_windows)).
pub fn load_recordings(
    path: &Path,
    split: Split,
    val_subjects: &[u32],
    activities: Activities,
    grid: Grid,
    stream: bool,
) -> Result<Dataset, DataError> {
    let keep = |u: u32| subject_in(u, split, val_subjects);
    let data = read(path, keep, &Processing::default())?;
    let class_names: Vec<String> = data
        .activity_names
        .iter()
        .take(class_count(activities))
        .cloned()
        .collect();
    let recs = recordings(data, activities, keep);
    crate::recording::cut(
        &recs,
        grid,
        &class_names,
        stream,
        &format!("split `{}` of {}", split.name(), path.display()),
    )
}

fn class_count(activities: Activities) -> usize {
    match activities {
        Activities::BasicSix => 6,
        Activities::AllTwelve => 12,
    }
}

/// Loads one split of HAPT as UCI-HAR-style windows.
pub fn load(path: &Path, split: Split, activities: Activities) -> Result<Dataset, DataError> {
    load_with(
        path,
        split,
        &VAL_SUBJECTS,
        activities,
        &Processing::default(),
    )
}

/// [`load`] with other validation subjects and explicit processing choices.
pub fn load_with(
    path: &Path,
    split: Split,
    val_subjects: &[u32],
    activities: Activities,
    processing: &Processing,
) -> Result<Dataset, DataError> {
    let keep = |u: u32| subject_in(u, split, val_subjects);
    let data = read(path, keep, processing)?;
    let dataset = windows(&data, activities, keep);
    if dataset.is_empty() {
        return Err(DataError::Empty(format!(
            "no {} windows of split `{}` in {}",
            classes_word(activities),
            split.name(),
            path.display()
        )));
    }
    Ok(dataset)
}

fn classes_word(a: Activities) -> &'static str {
    match a {
        Activities::BasicSix => "basic-activity",
        Activities::AllTwelve => "labelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fit_inside_segment() {
        let s = Segment {
            experiment: 1,
            user: 1,
            activity: 5,
            start: 298,
            end: 1398,
            line: 1,
        };
        let starts: Vec<usize> = window_starts(&s, 20_000).collect();
        assert_eq!(starts.len(), 16);
        assert_eq!(starts[0], 296);
        assert_eq!(starts[15], 296 + 15 * 64);
        // Too close to the end of the recording: windows that would run past it are dropped.
        assert_eq!(window_starts(&s, 296 + 128).count(), 1);
    }

    #[test]
    fn splits_are_disjoint_and_cover_30_subjects() {
        for u in 1..=30 {
            let n = [Split::Train, Split::Val, Split::Test]
                .iter()
                .filter(|&&s| subject_in_split(u, s))
                .count();
            assert_eq!(n, 1, "subject {u}");
        }
        assert!(VAL_SUBJECTS.iter().all(|u| !TEST_SUBJECTS.contains(u)));
    }

    #[test]
    fn other_validation_subjects_move_out_of_training_only() {
        let val = [1, 3, 5, 2];
        assert!(subject_in(1, Split::Val, &val) && !subject_in(1, Split::Train, &val));
        // 2 is a test subject: it stays in test whatever the list says.
        assert!(subject_in(2, Split::Test, &val) && !subject_in(2, Split::Val, &val));
        assert!(
            subject_in(6, Split::Train, &val),
            "the default's subject 6 trains"
        );
    }
}
