//! WISDM 2019 phone recordings (Weiss 2019, "WISDM Smartphone and Smartwatch Activity and
//! Biometrics Dataset"): `wisdm-dataset/raw/phone/{accel,gyro}/data_<subject>_<sensor>_phone.txt`
//! (or `.txt.gz`) and `wisdm-dataset/activity_key.txt`, turned into one [`Recording`] per
//! subject for [`segment_windows`](crate::recording::segment_windows) and
//! [`stream_windows`](crate::recording::stream_windows).
//!
//! Lines read `subject,activity,timestamp,x,y,z;` (timestamp in ns, numbers sometimes in Java
//! exponent form such as `2.89917E-4`; the trailing `;` is optional here). What the published
//! files look like, and what this reader therefore does:
//!
//! - **Blocks.** Each file holds every activity as one contiguous block of lines, sorted by
//!   activity letter, not by time: between blocks the device clock jumps backwards and
//!   forwards by minutes to a day (the three-minute sessions were recorded apart, in another
//!   order). There is no continuous recording to reconstruct, so a subject's blocks are joined
//!   in file order, as a device worn across activities would see successive activities; a
//!   stream window straddling a join sees an abrupt change without the movement between.
//!   Within a block (a run of lines with the same letter) time must not go backwards: that is
//!   an error; the published files never do it.
//! - **Time base.** The accelerometer samples are the recording's samples, as recorded. An
//!   accelerometer block whose mean interval is more than [`RATE_TOLERANCE`] away from 50 ms is
//!   resampled onto a 50 ms grid from its first sample by linear interpolation (no
//!   anti-alias filter) and a note says so: subject 1607's phone ran at 25 Hz throughout, and
//!   one block of 1609 (kicking) holds a 50 Hz burst of about 19 s. Shorter irregularities
//!   (1639's stalls of up to 256 ms followed by 40 ms catch-up) stay as recorded.
//! - **Gyroscope.** Each accelerometer sample takes the gyroscope sample of the same activity
//!   nearest in time, if one lies within [`GYRO_TOLERANCE_NS`] (1.5 sample periods); the raw
//!   values are taken, not interpolated, so that no smoothing is added. Samples without a
//!   partner (a few at block ends, where one sensor started or stopped earlier) get
//!   gyroscope 0 and no label, so that no labelled window holds invented values; one note
//!   counts them. A subject without a gyroscope file is skipped (with a note) unless only the
//!   accelerometer is asked for.
//!
//! Splits are by subject ([`subject_in_split`]), never by random windows: windows of one
//! subject's three-minute blocks overlap and are nearly alike, so a random split would put
//! near-copies of test windows into training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::recording::Recording;
use crate::text::read_text;
use crate::{DataError, Split};

/// The rate the dataset states; also the grid of resampled blocks.
pub const SAMPLE_RATE_HZ: f32 = 20.0;
/// One sample period at [`SAMPLE_RATE_HZ`].
pub const PERIOD_NS: i64 = 50_000_000;
/// Farthest a gyroscope sample may lie from the accelerometer sample it is paired with
/// (1.5 periods: the nearest sample of a sensor at the same rate is never farther than half a
/// period, so this allows for jitter but never pairs across a dropout).
pub const GYRO_TOLERANCE_NS: i64 = 75_000_000;
/// Relative deviation of a block's mean accelerometer interval from 50 ms beyond which the
/// block is resampled (the regular phones run at 50.0–50.4 ms, 0.8 % off).
pub const RATE_TOLERANCE: f64 = 0.05;
/// The locomotion letters: walking, jogging, stairs, sitting, standing.
pub const LOCOMOTION: [char; 5] = ['A', 'B', 'C', 'D', 'E'];

/// Which activities become classes, in this order; the others stay in the recordings,
/// unlabelled, so that a stream still sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WisdmActivities {
    /// A walking, B jogging, C stairs, D sitting, E standing: the classic WISDM task.
    #[default]
    Locomotion,
    /// All 18 activities in `activity_key.txt` order.
    All,
    /// The given letters, in the given order.
    Letters(Vec<char>),
}

impl WisdmActivities {
    /// `5` or `locomotion`, `18` or `all` (case-insensitive), or letters such as `ABCDE`.
    pub fn parse(s: &str) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::BadSpec {
            spec: s.to_string(),
            reason,
        };
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "5" | "locomotion" => return Ok(WisdmActivities::Locomotion),
            "18" | "all" => return Ok(WisdmActivities::All),
            "" => {
                return Err(bad(
                    "expected 5|locomotion, 18|all or activity letters such as ABCDE".into(),
                ));
            }
            _ => {}
        }
        let mut letters = Vec::new();
        for c in t.chars() {
            if !c.is_ascii_alphabetic() {
                return Err(bad(format!(
                    "`{c}` is not an activity letter (expected 5|locomotion, 18|all or \
                     letters such as ABCDE)"
                )));
            }
            let c = c.to_ascii_uppercase();
            if letters.contains(&c) {
                return Err(bad(format!("activity `{c}` given twice")));
            }
            letters.push(c);
        }
        Ok(WisdmActivities::Letters(letters))
    }

    /// The selected letters, checked against the activity key.
    fn letters(&self, key: &[(char, String)], key_path: &str) -> Result<Vec<char>, DataError> {
        let letters = match self {
            WisdmActivities::Locomotion => LOCOMOTION.to_vec(),
            WisdmActivities::All => key.iter().map(|(c, _)| *c).collect(),
            WisdmActivities::Letters(l) => l.clone(),
        };
        for c in &letters {
            if !key.iter().any(|(k, _)| k == c) {
                return Err(DataError::BadSpec {
                    spec: self.to_string(),
                    reason: format!(
                        "activity `{c}` is not in {key_path} (which lists {})",
                        key.iter().map(|(k, _)| *k).collect::<String>()
                    ),
                });
            }
        }
        Ok(letters)
    }
}

impl std::fmt::Display for WisdmActivities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WisdmActivities::Locomotion => f.write_str("locomotion"),
            WisdmActivities::All => f.write_str("all"),
            WisdmActivities::Letters(l) => f.write_str(&l.iter().collect::<String>()),
        }
    }
}

/// Which phone sensors become channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensors {
    /// `acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z`.
    #[default]
    AccelGyro,
    /// `acc_x, acc_y, acc_z`; also reads subjects without a gyroscope file.
    Accel,
}

impl Sensors {
    pub fn channel_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            Sensors::AccelGyro => &["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
            Sensors::Accel => &["acc_x", "acc_y", "acc_z"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// Options for [`read`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WisdmOptions {
    pub activities: WisdmActivities,
    pub sensors: Sensors,
}

/// Subject-wise split (ids run 1600–1650): `test` = id % 4 == 0, `val` = id % 4 == 1,
/// `train` = the rest. Never random windows: see the module documentation.
pub fn subject_in_split(subject: u32, split: Split) -> bool {
    match split {
        Split::Test => subject.is_multiple_of(4),
        Split::Val => subject % 4 == 1,
        Split::Train => subject % 4 >= 2,
    }
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct WisdmData {
    /// Activity names from `activity_key.txt`, indexed by label.
    pub class_names: Vec<String>,
    /// One per subject, in subject order.
    pub recordings: Vec<Recording>,
    /// What the reader skipped or changed (subjects without gyroscope, resampled blocks,
    /// unpaired samples), for the user to see.
    pub notes: Vec<String>,
}

/// The dataset's folders: `root` holds `activity_key.txt`, `phone` holds `accel/`, `gyro/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
    pub phone: PathBuf,
}

fn up(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => p.join(".."),
    }
}

/// Finds the layout from the folder holding `wisdm-dataset/`, that folder, its `raw/`
/// folder or its `raw/phone/` folder, so that any of them can be named on the command line.
pub fn layout(dir: &Path) -> Result<Layout, DataError> {
    let nested = dir.join("wisdm-dataset");
    for root in [nested, dir.to_path_buf()] {
        let phone = root.join("raw").join("phone");
        if phone.join("accel").is_dir() {
            return Ok(Layout { root, phone });
        }
    }
    if dir.join("phone").join("accel").is_dir() {
        return Ok(Layout {
            root: up(dir),
            phone: dir.join("phone"),
        });
    }
    if dir.join("accel").is_dir() {
        return Ok(Layout {
            root: up(&up(dir)),
            phone: dir.to_path_buf(),
        });
    }
    Err(DataError::BadFormat {
        path: dir.display().to_string(),
        reason: "no WISDM phone data: expected wisdm-dataset/raw/phone/accel/ in it, or \
                 raw/phone/accel/, or accel/"
            .into(),
    })
}

/// Parses `activity_key.txt` (`walking = A` lines) into (letter, name) in file order.
pub fn parse_activity_key(text: &str, path: &str) -> Result<Vec<(char, String)>, DataError> {
    let mut key: Vec<(char, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |reason: String| DataError::BadValue {
            path: path.to_string(),
            line: index + 1,
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, letter)) = line.split_once('=') else {
            return Err(bad("expected `name = letter`".into()));
        };
        let (name, letter) = (name.trim(), letter.trim());
        let mut chars = letter.chars();
        let c = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() && !name.is_empty() => c,
            _ => return Err(bad(format!("expected `name = letter`, found `{line}`"))),
        };
        if key.iter().any(|(k, _)| *k == c) {
            return Err(bad(format!("letter `{c}` listed twice")));
        }
        key.push((c, name.to_string()));
    }
    if key.is_empty() {
        return Err(DataError::BadFormat {
            path: path.to_string(),
            reason: "lists no activities".into(),
        });
    }
    Ok(key)
}

/// Subject id of `data_<subject>_<sensor>_phone.txt[.gz]`.
fn subject_of_file(name: &str, sensor: &str) -> Option<u32> {
    let rest = name.strip_prefix("data_")?;
    let rest = rest
        .strip_suffix(".txt.gz")
        .or_else(|| rest.strip_suffix(".txt"))?;
    let id = rest.strip_suffix(&format!("_{sensor}_phone"))?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// Subject → file in `dir` (plain `.txt` preferred when both exist; none if `dir` is absent).
fn list_files(dir: &Path, sensor: &str) -> Result<BTreeMap<u32, PathBuf>, DataError> {
    let mut files = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(DataError::io(dir.display(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir.display(), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(subject) = subject_of_file(name, sensor) {
            let path = entry.path();
            let plain = !name.ends_with(".gz");
            files
                .entry(subject)
                .and_modify(|p: &mut PathBuf| {
                    if plain {
                        *p = path.clone();
                    }
                })
                .or_insert(path);
        }
    }
    Ok(files)
}

/// One parsed data line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line {
    subject: u32,
    activity: char,
    t: i64,
    v: [f32; 3],
}

/// Parses one line; `None` for a blank one.
fn parse_line(line: &str, path: &str, line_no: usize) -> Result<Option<Line>, DataError> {
    let body = line.trim();
    if body.is_empty() {
        return Ok(None);
    }
    let body = body.strip_suffix(';').unwrap_or(body);
    let mut fields = [""; 6];
    let mut found = 0;
    for f in body.split(',') {
        if let Some(slot) = fields.get_mut(found) {
            *slot = f.trim();
        }
        found += 1;
    }
    if found != 6 {
        return Err(DataError::ShortRow {
            path: path.to_string(),
            line: line_no,
            expected: 6,
            found,
        });
    }
    let not_a_number = |column: usize| DataError::NotANumber {
        path: path.to_string(),
        line: line_no,
        column,
        text: fields[column - 1].chars().take(40).collect(),
    };
    let subject: u32 = fields[0].parse().map_err(|_| not_a_number(1))?;
    let mut chars = fields[1].chars();
    let activity = match (chars.next(), chars.next()) {
        (Some(c), None) => c,
        _ => {
            return Err(DataError::BadValue {
                path: path.to_string(),
                line: line_no,
                reason: format!("activity `{}` is not a single letter", fields[1]),
            });
        }
    };
    let t: i64 = fields[2].parse().map_err(|_| not_a_number(3))?;
    let mut v = [0f32; 3];
    for (k, slot) in v.iter_mut().enumerate() {
        let column = k + 4;
        let value: f64 = fields[column - 1]
            .parse()
            .map_err(|_| not_a_number(column))?;
        if !value.is_finite() {
            return Err(DataError::NonFinite {
                path: path.to_string(),
                line: line_no,
                column,
                value,
            });
        }
        *slot = value as f32;
        if !slot.is_finite() {
            return Err(DataError::BadValue {
                path: path.to_string(),
                line: line_no,
                reason: format!("value {column} ({value}) is out of f32 range"),
            });
        }
    }
    Ok(Some(Line {
        subject,
        activity,
        t,
        v,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    t: i64,
    v: [f32; 3],
}

/// A run of lines with one activity: `activity` indexes the activity key.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    activity: usize,
    samples: Vec<Sample>,
}

/// Maps an activity letter to its index in the activity key.
struct KeyIndex([Option<u8>; 128]);

impl KeyIndex {
    fn new(key: &[(char, String)]) -> KeyIndex {
        let mut index = [None; 128];
        for (i, (c, _)) in key.iter().enumerate() {
            if let Some(slot) = index.get_mut(*c as usize) {
                *slot = Some(i as u8);
            }
        }
        KeyIndex(index)
    }

    fn get(&self, c: char) -> Option<usize> {
        self.0.get(c as usize).copied().flatten().map(usize::from)
    }
}

/// Parses a subject's file into activity blocks, checking each line against the file's
/// subject, the activity key and the previous line's time.
fn parse_file(
    text: &str,
    path: &str,
    subject: u32,
    key: &KeyIndex,
    key_path: &str,
) -> Result<Vec<Block>, DataError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut prev: Option<(char, i64, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let Some(line) = parse_line(raw, path, line_no)? else {
            continue;
        };
        let bad = |reason: String| DataError::BadValue {
            path: path.to_string(),
            line: line_no,
            reason,
        };
        if line.subject != subject {
            return Err(bad(format!(
                "subject {} in the file of subject {subject}",
                line.subject
            )));
        }
        let Some(activity) = key.get(line.activity) else {
            return Err(bad(format!(
                "activity `{}` is not in {key_path}",
                line.activity
            )));
        };
        let sample = Sample {
            t: line.t,
            v: line.v,
        };
        match (prev, blocks.last_mut()) {
            (Some((letter, t, prev_line)), Some(block)) if letter == line.activity => {
                if line.t < t {
                    return Err(bad(format!(
                        "timestamp {} goes back {:.1} ms from line {prev_line} within activity `{letter}`",
                        line.t,
                        (t - line.t) as f64 / 1e6
                    )));
                }
                block.samples.push(sample);
            }
            _ => blocks.push(Block {
                activity,
                samples: vec![sample],
            }),
        }
        prev = Some((line.activity, line.t, line_no));
    }
    if blocks.is_empty() {
        return Err(DataError::BadFormat {
            path: path.to_string(),
            reason: "holds no samples".into(),
        });
    }
    Ok(blocks)
}

/// How many times more samples resampling to 20 Hz may make of a block than it holds: a
/// block recorded at 1.25 Hz or faster. Beyond it the timestamps, not the sampling rate, are
/// wrong (found by fuzzing: two samples 10^18 ns apart asked for 2·10^10 resampled ones).
const MAX_RESAMPLING_GROWTH: usize = 16;

/// Refuses a block whose time span would resample to far more samples than it has.
fn check_resampled_length(samples: &[Sample], path: &str, letter: char) -> Result<(), DataError> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Ok(());
    };
    let span = last.t.saturating_sub(first.t);
    let implied = span / PERIOD_NS + 1;
    let limit = MAX_RESAMPLING_GROWTH.saturating_mul(samples.len()) as i64;
    if implied > limit {
        return Err(DataError::BadFormat {
            path: path.to_string(),
            reason: format!(
                "activity `{letter}`: {} samples span {:.1} s, which at 20 Hz would be {implied} \
                 samples (more than {MAX_RESAMPLING_GROWTH}× as many): are the timestamps in \
                 nanoseconds?",
                samples.len(),
                span as f64 / 1e9
            ),
        });
    }
    Ok(())
}

/// Mean interval of a block in ns, when it has two samples or more.
fn mean_interval(samples: &[Sample]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    (samples.len() >= 2).then(|| (last.t - first.t) as f64 / (samples.len() - 1) as f64)
}

/// Linear interpolation onto `first.t + k·period`, k = 0, 1, … while inside the block.
fn resample(samples: &[Sample], period: i64) -> Vec<Sample> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Vec::new();
    };
    let n = ((last.t - first.t) / period + 1).max(1) as usize;
    let mut out = Vec::with_capacity(n);
    let mut j = 0;
    for k in 0..n {
        let t = first.t + k as i64 * period;
        while j + 1 < samples.len() && samples[j + 1].t <= t {
            j += 1;
        }
        let a = samples[j];
        let v = match samples.get(j + 1) {
            Some(b) if b.t > a.t => {
                let f = (t - a.t) as f64 / (b.t - a.t) as f64;
                std::array::from_fn(|c| (a.v[c] as f64 + f * (b.v[c] - a.v[c]) as f64) as f32)
            }
            _ => a.v,
        };
        out.push(Sample { t, v });
    }
    out
}

/// Index of the sample of `sorted` nearest to `t`, if within `tolerance` ns.
fn nearest(sorted: &[Sample], t: i64, tolerance: i64) -> Option<usize> {
    let i = sorted.partition_point(|s| s.t < t);
    let after = sorted.get(i).map(|s| (s.t - t, i));
    let before = i
        .checked_sub(1)
        .and_then(|j| sorted.get(j))
        .map(|s| (t - s.t, i - 1));
    let best = match (before, after) {
        (Some(b), Some(a)) => Some(if a.0 < b.0 { a } else { b }),
        (b, a) => b.or(a),
    };
    best.filter(|(d, _)| *d <= tolerance).map(|(_, i)| i)
}

struct Job {
    subject: u32,
    accel: PathBuf,
    gyro: Option<PathBuf>,
}

/// A subject's recording and what happened to it on the way.
struct SubjectResult {
    recording: Recording,
    /// (letter, rate in Hz) of the accelerometer blocks that were resampled.
    resampled: Vec<(char, f64)>,
    unpaired: usize,
}

struct Context<'a> {
    key: &'a [(char, String)],
    key_index: &'a KeyIndex,
    key_path: &'a str,
    /// Class per activity-key index.
    class_of: &'a [Option<u32>],
    sensors: Sensors,
}

fn read_subject(job: &Job, cx: &Context) -> Result<SubjectResult, DataError> {
    let accel_name = job.accel.display().to_string();
    let accel_text = read_text(&job.accel)?;
    let gyro = match (&job.gyro, cx.sensors) {
        (Some(path), Sensors::AccelGyro) => Some((path.display().to_string(), read_text(path)?)),
        _ => None,
    };
    subject_from_text(
        job.subject,
        (&accel_name, &accel_text),
        gyro.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        cx,
    )
}

/// [`read`] for one subject whose files are already in memory (`activity_key.txt`, the
/// accelerometer file and, for [`Sensors::AccelGyro`], the gyroscope file): the same checks
/// and resampling without a dataset folder, e.g. for a fuzzer.
pub fn parse_subject(
    key_text: &str,
    accel_text: &str,
    gyro_text: Option<&str>,
    subject: u32,
    options: &WisdmOptions,
) -> Result<Recording, DataError> {
    let key_path = "activity_key.txt";
    let key = parse_activity_key(key_text, key_path)?;
    let letters = options.activities.letters(&key, key_path)?;
    if gyro_text.is_none() && options.sensors == Sensors::AccelGyro {
        return Err(DataError::MissingFile {
            path: format!("data_{subject}_gyro_phone.txt"),
        });
    }
    let cx = Context {
        key: &key,
        key_index: &KeyIndex::new(&key),
        key_path,
        class_of: &class_of(&key, &letters),
        sensors: options.sensors,
    };
    let accel = (format!("data_{subject}_accel_phone.txt"), accel_text);
    let gyro = gyro_text.map(|t| (format!("data_{subject}_gyro_phone.txt"), t));
    subject_from_text(
        subject,
        (&accel.0, accel.1),
        gyro.as_ref().map(|(n, t)| (n.as_str(), *t)),
        &cx,
    )
    .map(|r| r.recording)
}

/// Class per activity-key entry: its position among the selected `letters`.
fn class_of(key: &[(char, String)], letters: &[char]) -> Vec<Option<u32>> {
    key.iter()
        .map(|(k, _)| letters.iter().position(|c| c == k).map(|i| i as u32))
        .collect()
}

/// [`read_subject`] after the files are read: `accel` and `gyro` are `(name, text)`.
fn subject_from_text(
    subject: u32,
    accel: (&str, &str),
    gyro: Option<(&str, &str)>,
    cx: &Context,
) -> Result<SubjectResult, DataError> {
    let accel_name = accel.0;
    let accel = parse_file(accel.1, accel.0, subject, cx.key_index, cx.key_path)?;
    // Gyroscope samples grouped by activity, each group in time order.
    let gyro: Option<Vec<Vec<Sample>>> = match (gyro, cx.sensors) {
        (Some((name, text)), Sensors::AccelGyro) => {
            let blocks = parse_file(text, name, subject, cx.key_index, cx.key_path)?;
            let mut groups = vec![Vec::new(); cx.key.len()];
            for b in blocks {
                groups[b.activity].extend(b.samples);
            }
            for g in &mut groups {
                if !g.is_sorted_by_key(|s| s.t) {
                    g.sort_by_key(|s| s.t);
                }
            }
            Some(groups)
        }
        _ => None,
    };
    let channels = cx.sensors.channel_names();
    let c = channels.len();
    let total: usize = accel.iter().map(|b| b.samples.len()).sum();
    let mut signals = Vec::with_capacity(total * c);
    let mut labels = Vec::with_capacity(total);
    let mut resampled = Vec::new();
    let mut unpaired = 0;
    for block in &accel {
        let letter = cx.key[block.activity].0;
        let off_rate = mean_interval(&block.samples)
            .filter(|m| (m / PERIOD_NS as f64 - 1.0).abs() > RATE_TOLERANCE);
        let regular;
        let samples = match off_rate {
            Some(m) => {
                check_resampled_length(&block.samples, accel_name, letter)?;
                resampled.push((letter, 1e9 / m));
                regular = resample(&block.samples, PERIOD_NS);
                &regular
            }
            None => &block.samples,
        };
        let class = cx.class_of[block.activity];
        for s in samples {
            signals.extend_from_slice(&s.v);
            match &gyro {
                None => labels.push(class),
                Some(groups) => {
                    let group = &groups[block.activity];
                    match nearest(group, s.t, GYRO_TOLERANCE_NS) {
                        Some(i) => {
                            signals.extend_from_slice(&group[i].v);
                            labels.push(class);
                        }
                        None => {
                            signals.extend_from_slice(&[0.0; 3]);
                            labels.push(None);
                            unpaired += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(SubjectResult {
        recording: Recording {
            subject,
            id: subject,
            sample_rate_hz: SAMPLE_RATE_HZ,
            channel_names: channels,
            signals,
            labels,
        },
        resampled,
        unpaired,
    })
}

/// Reads the subjects `keep` accepts. `dir` is the folder holding `wisdm-dataset/`, or that
/// folder, or its `raw/` or `raw/phone/` folder (see [`layout`]).
pub fn read(
    dir: &Path,
    keep: impl Fn(u32) -> bool,
    options: &WisdmOptions,
) -> Result<WisdmData, DataError> {
    let layout = layout(dir)?;
    let key_path = layout.root.join("activity_key.txt");
    let key_name = key_path.display().to_string();
    let key = parse_activity_key(&read_text(&key_path)?, &key_name)?;
    let letters = options.activities.letters(&key, &key_name)?;
    let class_names: Vec<String> = letters
        .iter()
        .filter_map(|c| key.iter().find(|(k, _)| k == c).map(|(_, n)| n.clone()))
        .collect();
    let class_of = class_of(&key, &letters);

    let accel_dir = layout.phone.join("accel");
    let gyro_dir = layout.phone.join("gyro");
    let accel_files = list_files(&accel_dir, "accel")?;
    let gyro_files = list_files(&gyro_dir, "gyro")?;
    let mut all: Vec<u32> = accel_files
        .keys()
        .chain(gyro_files.keys())
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    if all.is_empty() {
        return Err(DataError::Empty(format!(
            "no subject files (data_<subject>_accel_phone.txt or .txt.gz) in {}",
            accel_dir.display()
        )));
    }
    let mut notes = Vec::new();
    let mut jobs = Vec::new();
    for &subject in all.iter().filter(|&&s| keep(s)) {
        let accel = accel_files
            .get(&subject)
            .cloned()
            .ok_or_else(|| DataError::MissingFile {
                path: accel_dir
                    .join(format!("data_{subject}_accel_phone.txt.gz"))
                    .display()
                    .to_string(),
            })?;
        let gyro = gyro_files.get(&subject).cloned();
        if gyro.is_none() && options.sensors == Sensors::AccelGyro {
            notes.push(format!(
                "subject {subject}: no gyroscope file ({}), skipped; use sensors=accel to \
                 include it",
                gyro_dir
                    .join(format!("data_{subject}_gyro_phone.txt[.gz]"))
                    .display()
            ));
            continue;
        }
        jobs.push(Job {
            subject,
            accel,
            gyro,
        });
    }
    if jobs.is_empty() {
        let found = all
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let mut reason = format!(
            "no subject of {} in the selection (found {found})",
            layout.phone.display()
        );
        for n in &notes {
            reason.push_str("; ");
            reason.push_str(n);
        }
        return Err(DataError::Empty(reason));
    }

    let cx = Context {
        key: &key,
        key_index: &KeyIndex::new(&key),
        key_path: &key_name,
        class_of: &class_of,
        sensors: options.sensors,
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<SubjectResult, DataError>>> =
        (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        done.push((i, read_subject(job, &cx)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                results[i] = Some(r);
            }
        }
    });

    let mut recordings = Vec::with_capacity(jobs.len());
    let mut unpaired = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        let Some(result) = result else {
            return Err(DataError::Empty(format!(
                "subject {} was not read",
                job.subject
            )));
        };
        let r = result?;
        if !r.resampled.is_empty() {
            let blocks = r.resampled.iter().map(|(c, _)| *c).collect::<String>();
            let lo = r
                .resampled
                .iter()
                .map(|(_, hz)| *hz)
                .fold(f64::MAX, f64::min);
            let hi = r.resampled.iter().map(|(_, hz)| *hz).fold(0.0, f64::max);
            let rate = if hi - lo < 0.05 {
                format!("{lo:.1} Hz")
            } else {
                format!("{lo:.1}–{hi:.1} Hz")
            };
            notes.push(format!(
                "subject {}: accelerometer at {rate} (mean) in activity block(s) {blocks}, \
                 resampled to 20 Hz by linear interpolation",
                job.subject
            ));
        }
        if r.unpaired > 0 {
            unpaired.push(format!(
                "{} {}/{}",
                job.subject,
                r.unpaired,
                r.recording.len()
            ));
        }
        recordings.push(r.recording);
    }
    if !unpaired.is_empty() {
        notes.push(format!(
            "accelerometer samples without a gyroscope sample within {} ms, left unlabelled \
             with gyroscope 0 (subject unpaired/samples): {}",
            GYRO_TOLERANCE_NS / 1_000_000,
            unpaired.join(", ")
        ));
    }
    Ok(WisdmData {
        class_names,
        recordings,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, x: f32) -> Sample {
        Sample {
            t,
            v: [x, 0.0, 0.0],
        }
    }

    #[test]
    fn a_line_parses_with_java_exponents_and_without_the_semicolon() {
        let l = parse_line(
            "1600,A,252245381977116,-2.3770905,2.6572723,2.89917E-4;",
            "f",
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!((l.subject, l.activity, l.t), (1600, 'A', 252245381977116));
        assert_eq!(l.v, [-2.3770905, 2.6572723, 2.89917e-4]);
        let l = parse_line(" 1600, B, 5, 1, -6.1035156E-5, 3 ", "f", 1)
            .unwrap()
            .unwrap();
        assert_eq!((l.activity, l.v[1]), ('B', -6.1035156e-5));
        assert_eq!(parse_line("  \r", "f", 1).unwrap(), None);
    }

    #[test]
    fn bad_lines_name_file_line_and_column() {
        let err = parse_line("1600,A,5,1.0,2.0;", "f.txt", 7).unwrap_err();
        assert_eq!(err.to_string(), "f.txt:7: expected 6 values, found 5");
        let err = parse_line("1600,A,5,1.0,x,3;", "f.txt", 2).unwrap_err();
        assert!(
            matches!(err, DataError::NotANumber { column: 5, .. }),
            "{err}"
        );
        let err = parse_line("1600,A,5,1.0,NaN,3;", "f.txt", 2).unwrap_err();
        assert!(
            matches!(err, DataError::NonFinite { column: 5, .. }),
            "{err}"
        );
        let err = parse_line("1600,AB,5,1,2,3;", "f.txt", 3).unwrap_err();
        assert!(err.to_string().starts_with("f.txt:3: activity"), "{err}");
    }

    #[test]
    fn parse_file_checks_subject_letter_and_time_within_a_block() {
        let key = parse_activity_key("walking = A\njogging = B\n\n", "key").unwrap();
        let ki = KeyIndex::new(&key);
        // Time may jump anywhere between blocks, never back within one.
        let text = "7,A,100,1,1,1;\n7,A,200,1,1,1;\n7,B,50,1,1,1;\n7,B,60,1,1,1;\n";
        let blocks = parse_file(text, "d", 7, &ki, "key").unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[1].activity, blocks[1].samples.len()), (1, 2));
        let err = parse_file("7,A,100,1,1,1;\n7,A,99,1,1,1;\n", "d", 7, &ki, "key").unwrap_err();
        assert!(
            err.to_string().starts_with("d:2: timestamp 99 goes back"),
            "{err}"
        );
        let err = parse_file("7,A,100,1,1,1;\n8,A,101,1,1,1;\n", "d", 7, &ki, "key").unwrap_err();
        assert!(err.to_string().starts_with("d:2: subject 8"), "{err}");
        let err = parse_file("7,N,100,1,1,1;\n", "d", 7, &ki, "key").unwrap_err();
        assert_eq!(err.to_string(), "d:1: activity `N` is not in key");
    }

    #[test]
    fn nearest_pairs_within_tolerance_only() {
        let g = [s(0, 0.0), s(50, 1.0), s(100, 2.0), s(300, 3.0)];
        assert_eq!(nearest(&g, 0, 75), Some(0));
        assert_eq!(nearest(&g, 24, 75), Some(0));
        assert_eq!(nearest(&g, 26, 75), Some(1));
        assert_eq!(nearest(&g, 25, 75), Some(0)); // a tie goes to the earlier sample
        assert_eq!(nearest(&g, 200, 75), None); // 100 ms from both neighbours
        assert_eq!(nearest(&g, 370, 75), Some(3));
        assert_eq!(nearest(&g, 376, 75), None);
        assert_eq!(nearest(&g, -75, 75), Some(0));
        assert_eq!(nearest(&[], 0, 75), None);
    }

    #[test]
    fn off_rate_blocks_resample_onto_the_grid() {
        // 25 Hz: 40 ms apart, a ramp x = t / 40.
        let block: Vec<Sample> = (0..11).map(|k| s(k * 40, k as f32)).collect();
        let mean = mean_interval(&block).unwrap();
        assert_eq!(mean, 40.0);
        let r = resample(&block, 50);
        assert_eq!(
            r.iter().map(|x| x.t).collect::<Vec<_>>(),
            vec![0, 50, 100, 150, 200, 250, 300, 350, 400]
        );
        for x in &r {
            assert!((x.v[0] - x.t as f32 / 40.0).abs() < 1e-6, "{x:?}");
        }
        assert_eq!(resample(&[s(5, 2.0)], 50), vec![s(5, 2.0)]);
    }

    #[test]
    fn blocks_whose_span_their_samples_cannot_cover_are_refused() {
        const MS: i64 = 1_000_000;
        // 1.25 Hz (the slowest accepted) and 25 Hz resample; 0.5 Hz and a 10^18 ns jump do not.
        let at = |interval: i64| -> Vec<Sample> { (0..10).map(|k| s(k * interval, 0.0)).collect() };
        assert!(check_resampled_length(&at(800 * MS), "f", 'A').is_ok());
        assert!(check_resampled_length(&at(40 * MS), "f", 'A').is_ok());
        let e = check_resampled_length(&at(2000 * MS), "f.txt", 'B').unwrap_err();
        assert!(
            e.to_string().contains("f.txt") && e.to_string().contains("`B`"),
            "{e}"
        );
        let jump = [s(0, 0.0), s(1_000_000_000_000_000_000, 1.0)];
        assert!(check_resampled_length(&jump, "f", 'A').is_err());
    }

    #[test]
    fn activities_parse() {
        use WisdmActivities::*;
        assert_eq!(WisdmActivities::parse("5").unwrap(), Locomotion);
        assert_eq!(WisdmActivities::parse("Locomotion").unwrap(), Locomotion);
        assert_eq!(WisdmActivities::parse("18").unwrap(), All);
        assert_eq!(WisdmActivities::parse("all").unwrap(), All);
        assert_eq!(
            WisdmActivities::parse("AbD").unwrap(),
            Letters(vec!['A', 'B', 'D'])
        );
        assert!(WisdmActivities::parse("").is_err());
        assert!(WisdmActivities::parse("AA").is_err());
        assert!(WisdmActivities::parse("A,B").is_err());
        let key = parse_activity_key("walking = A\njogging = B\n", "key").unwrap();
        assert_eq!(Letters(vec!['B']).letters(&key, "key").unwrap(), vec!['B']);
        let err = Letters(vec!['N']).letters(&key, "key").unwrap_err();
        assert!(err.to_string().contains("`N` is not in key"), "{err}");
        assert_eq!(Letters(vec!['Q', 'A']).to_string(), "QA");
    }

    #[test]
    fn activity_key_errors_name_the_line() {
        let err = parse_activity_key("walking = A\njogging B\n", "key").unwrap_err();
        assert!(err.to_string().starts_with("key:2:"), "{err}");
        let err = parse_activity_key("walking = A\nrunning = A\n", "key").unwrap_err();
        assert!(err.to_string().starts_with("key:2:"), "{err}");
    }

    #[test]
    fn split_rule_is_subject_modulo_four() {
        assert!(subject_in_split(1600, Split::Test));
        assert!(subject_in_split(1609, Split::Val));
        assert!(subject_in_split(1606, Split::Train));
        assert!(subject_in_split(1607, Split::Train));
        for id in 1600..=1650 {
            let n = [Split::Train, Split::Val, Split::Test]
                .iter()
                .filter(|&&sp| subject_in_split(id, sp))
                .count();
            assert_eq!(n, 1, "subject {id}");
        }
    }

    #[test]
    fn file_names_give_subjects() {
        assert_eq!(
            subject_of_file("data_1600_accel_phone.txt.gz", "accel"),
            Some(1600)
        );
        assert_eq!(
            subject_of_file("data_1600_accel_phone.txt", "accel"),
            Some(1600)
        );
        assert_eq!(subject_of_file("data_1600_gyro_phone.txt", "accel"), None);
        assert_eq!(subject_of_file("data_x_accel_phone.txt", "accel"), None);
        assert_eq!(subject_of_file("data_1600_accel_watch.txt", "accel"), None);
    }
}
