//! Data specs (`uci-har:DIR:test`, `hapt:ZIP:train`, …): one string names a dataset and a
//! split everywhere on the command line.

use std::path::PathBuf;

use crate::recording::{self, Grid};
use crate::{DataError, Dataset, hapt, idx, uci_har, wisdm};

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Official UCI-HAR windows: the folder holding `UCI HAR Dataset/`, or that folder.
    UciHar(PathBuf),
    /// HAPT raw recordings (the published zip or a folder unpacked from it), windowed
    /// the UCI-HAR way.
    Hapt(PathBuf),
    /// WISDM 2019 raw phone recordings (the folder holding `wisdm-dataset/`, or that folder).
    Wisdm(PathBuf),
    /// MNIST IDX files (optionally `.gz`) in a folder.
    Mnist(PathBuf),
    /// Fashion-MNIST IDX files in a folder.
    FashionMnist(PathBuf),
}

/// Which part of a dataset.
///
/// HAR sources split by subject: `test` = the UCI-HAR test subjects
/// [`TEST_SUBJECTS`](crate::hapt::TEST_SUBJECTS), `val` = the training subjects
/// [`VAL_SUBJECTS`](crate::hapt::VAL_SUBJECTS), `train` = the other training subjects;
/// WISDM by [`crate::wisdm::subject_in_split`].
/// MNIST-style sources: `test` = the t10k files, `val` = the last 5,000 training images,
/// `train` = the first 55,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Options written after the split, `:key=value` each (or `:stream` alone):
/// `classes=6|12` (HAPT), `activities=5|18|LETTERS` and `sensors=accel|accel+gyro` (WISDM),
/// `stream` (windows on a fixed grid over whole recordings), `window=N`, `step=N` (samples),
/// `val=S,S,…` (HAPT: these training subjects make the `val` split instead of
/// [`VAL_SUBJECTS`](crate::hapt::VAL_SUBJECTS); three subjects rank networks poorly, so an
/// architecture search may hold out more).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecOptions {
    /// HAPT class set; `None` = the caller's [`LoadOptions`] (six by default).
    pub classes: Option<Activities>,
    /// WISDM activity selection as written (`5`, `18`, `ABCDE`, …).
    pub activities: Option<String>,
    /// WISDM sensors as written.
    pub sensors: Option<String>,
    /// Cut a continuous stream instead of windows inside labelled segments.
    pub stream: bool,
    pub window: Option<usize>,
    pub step: Option<usize>,
    /// HAPT validation subjects, sorted; `None` = the default three.
    pub val_subjects: Option<Vec<u32>>,
}

impl SpecOptions {
    fn is_default(&self) -> bool {
        *self == SpecOptions::default()
    }
}

/// A dataset and split. When the spec names no split it is `test`, the natural choice for
/// evaluation; training code overrides it with [`DataSpec::with_split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpec {
    pub source: Source,
    pub split: Split,
    /// Whether the split was written in the spec (so callers may pick their own default).
    pub split_given: bool,
    pub options: SpecOptions,
}

const KINDS: &str = "uci-har, hapt, wisdm, mnist, fashion-mnist";

impl DataSpec {
    /// Parses `KIND:PATH[:SPLIT][:OPTION…]`, KIND one of `uci-har`, `hapt`, `wisdm`, `mnist`,
    /// `fashion-mnist`, SPLIT one of `train`, `val`, `test`, options as in [`SpecOptions`].
    pub fn parse(spec: &str) -> Result<DataSpec, DataError> {
        let bad = |reason: &str| DataError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (kind, mut rest) = spec
            .split_once(':')
            .ok_or_else(|| bad(&format!("expected KIND:PATH[:SPLIT], KIND one of {KINDS}")))?;
        // Options come last; peel them off the end so that a path may still hold colons.
        let mut written: Vec<&str> = Vec::new();
        while let Some((head, last)) = rest.rsplit_once(':') {
            if last == "stream" || last.contains('=') {
                written.push(last);
                rest = head;
            } else {
                break;
            }
        }
        let mut options = SpecOptions::default();
        for option in written.into_iter().rev() {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            let number = |v: &str| -> Result<usize, DataError> {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(&format!("{key}={v}: expected a positive whole number")))
            };
            match key {
                "stream" if value.is_empty() || value == "1" || value == "true" => {
                    options.stream = true
                }
                "classes" => {
                    options.classes = Some(match value {
                        "6" => Activities::BasicSix,
                        "12" => Activities::AllTwelve,
                        other => return Err(bad(&format!("classes={other}: expected 6 or 12"))),
                    })
                }
                "activities" => options.activities = Some(value.to_string()),
                "sensors" => options.sensors = Some(value.to_string()),
                "window" => options.window = Some(number(value)?),
                "step" => options.step = Some(number(value)?),
                "val" => {
                    options.val_subjects = Some(validation_subjects(value).map_err(|r| bad(&r))?)
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown option `{option}` (stream, classes=, activities=, sensors=, window=, step=, val=)"
                    )));
                }
            }
        }
        let (path, split, split_given) = match rest.rsplit_once(':') {
            Some((p, "train")) => (p, Split::Train, true),
            Some((p, "val")) => (p, Split::Val, true),
            Some((p, "test")) => (p, Split::Test, true),
            _ => (rest, Split::Test, false),
        };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        let path = PathBuf::from(path);
        let source = match kind {
            "uci-har" => Source::UciHar(path),
            "hapt" => Source::Hapt(path),
            "wisdm" => Source::Wisdm(path),
            "mnist" => Source::Mnist(path),
            "fashion-mnist" => Source::FashionMnist(path),
            other => return Err(bad(&format!("unknown kind `{other}` ({KINDS})"))),
        };
        let recordings = matches!(source, Source::Hapt(_) | Source::Wisdm(_));
        if !recordings && (options.stream || options.window.is_some() || options.step.is_some()) {
            return Err(bad(
                "stream, window= and step= need whole recordings (hapt or wisdm)",
            ));
        }
        if options.val_subjects.is_some() && !matches!(source, Source::Hapt(_)) {
            return Err(bad("val= is a hapt option"));
        }
        if options.classes.is_some() && !matches!(source, Source::Hapt(_)) {
            return Err(bad("classes= is a hapt option (wisdm: activities=)"));
        }
        if (options.activities.is_some() || options.sensors.is_some())
            && !matches!(source, Source::Wisdm(_))
        {
            return Err(bad("activities= and sensors= are wisdm options"));
        }
        Ok(DataSpec {
            source,
            split,
            split_given,
            options,
        })
    }

    /// The same source and options with another split.
    pub fn with_split(&self, split: Split) -> DataSpec {
        DataSpec {
            source: self.source.clone(),
            split,
            split_given: true,
            options: self.options.clone(),
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path) = match &self.source {
            Source::UciHar(p) => ("uci-har", p),
            Source::Hapt(p) => ("hapt", p),
            Source::Wisdm(p) => ("wisdm", p),
            Source::Mnist(p) => ("mnist", p),
            Source::FashionMnist(p) => ("fashion-mnist", p),
        };
        write!(f, "{kind}:{}:{}", path.display(), self.split.name())?;
        let o = &self.options;
        if o.is_default() {
            return Ok(());
        }
        if let Some(c) = o.classes {
            let n = match c {
                Activities::BasicSix => 6,
                Activities::AllTwelve => 12,
            };
            write!(f, ":classes={n}")?;
        }
        if let Some(a) = &o.activities {
            write!(f, ":activities={a}")?;
        }
        if let Some(s) = &o.sensors {
            write!(f, ":sensors={s}")?;
        }
        if o.stream {
            write!(f, ":stream")?;
        }
        if let Some(w) = o.window {
            write!(f, ":window={w}")?;
        }
        if let Some(s) = o.step {
            write!(f, ":step={s}")?;
        }
        if let Some(v) = &o.val_subjects {
            let list: Vec<String> = v.iter().map(u32::to_string).collect();
            write!(f, ":val={}", list.join(","))?;
        }
        Ok(())
    }
}

/// Parses `val=`'s list: distinct training subjects (1–30, none of UCI-HAR's test subjects),
/// at least one, and not all of them (training needs some).
fn validation_subjects(list: &str) -> Result<Vec<u32>, String> {
    let mut subjects = Vec::new();
    for item in list.split(',') {
        let s: u32 = item
            .trim()
            .parse()
            .ok()
            .filter(|s| (1..=30).contains(s))
            .ok_or_else(|| format!("val={list}: `{item}` is not a subject number 1–30"))?;
        if hapt::TEST_SUBJECTS.contains(&s) {
            return Err(format!(
                "val={list}: subject {s} is one of UCI-HAR's test subjects"
            ));
        }
        if subjects.contains(&s) {
            return Err(format!("val={list}: subject {s} is listed twice"));
        }
        subjects.push(s);
    }
    if subjects.len() + hapt::TEST_SUBJECTS.len() >= 30 {
        return Err(format!("val={list}: leaves no training subject"));
    }
    subjects.sort_unstable();
    Ok(subjects)
}

/// Which HAPT activities become classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activities {
    /// WALKING … LAYING (labels 0–5), as UCI-HAR; transition segments are skipped (in a
    /// stream, their samples are unlabelled).
    #[default]
    BasicSix,
    /// The six basic activities and the six postural transitions (labels 0–11).
    AllTwelve,
}

/// Options for [`load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Only used by HAPT, and only when the spec has no `classes=`; UCI-HAR windows hold the
    /// six basic activities only.
    pub activities: Activities,
}

/// Reads the dataset a spec names.
pub fn load(spec: &DataSpec, options: &LoadOptions) -> Result<Dataset, DataError> {
    let o = &spec.options;
    match &spec.source {
        Source::UciHar(dir) => uci_har::load(dir, spec.split),
        Source::Hapt(path) => {
            let activities = o.classes.unwrap_or(options.activities);
            let val = o.val_subjects.as_deref().unwrap_or(&hapt::VAL_SUBJECTS);
            if !o.stream && o.window.is_none() && o.step.is_none() {
                // The UCI-HAR construction, aligned with the official windows.
                return hapt::load_with(
                    path,
                    spec.split,
                    val,
                    activities,
                    &hapt::Processing::default(),
                );
            }
            let grid = Grid::new(
                o.window.unwrap_or(crate::uci_har::WINDOW),
                o.step.unwrap_or(hapt::HOP),
            )?;
            hapt::load_recordings(path, spec.split, val, activities, grid, o.stream)
        }
        Source::Wisdm(dir) => {
            let options = wisdm::WisdmOptions {
                activities: match &o.activities {
                    Some(a) => wisdm::WisdmActivities::parse(a)?,
                    None => wisdm::WisdmActivities::Locomotion,
                },
                sensors: match o.sensors.as_deref() {
                    None | Some("accel+gyro") | Some("accel,gyro") => wisdm::Sensors::AccelGyro,
                    Some("accel") => wisdm::Sensors::Accel,
                    Some(other) => {
                        return Err(DataError::BadSpec {
                            spec: spec.to_string(),
                            reason: format!("sensors={other}: expected accel or accel+gyro"),
                        });
                    }
                },
            };
            let grid = Grid::new(
                o.window.unwrap_or(WISDM_WINDOW),
                o.step.unwrap_or(WISDM_WINDOW / 2),
            )?;
            let data = wisdm::read(dir, |s| wisdm::subject_in_split(s, spec.split), &options)?;
            for note in &data.notes {
                eprintln!("note: {note}");
            }
            recording::cut(
                &data.recordings,
                grid,
                &data.class_names,
                o.stream,
                &format!("split `{}` of {}", spec.split.name(), dir.display()),
            )
        }
        Source::Mnist(dir) => idx::load(dir, spec.split, idx::Flavour::Mnist),
        Source::FashionMnist(dir) => idx::load(dir, spec.split, idx::Flavour::FashionMnist),
    }
}

/// [`load`], keeping only the windows with a label: what training, quantisation and plain
/// evaluation take from a stream (the same as [`load`] for anything else).
pub fn load_labelled(spec: &DataSpec, options: &LoadOptions) -> Result<Dataset, DataError> {
    let data = load(spec, options)?;
    Ok(if data.stream.is_some() {
        data.labelled_only()
    } else {
        data
    })
}

/// Seconds between the starts of two consecutive windows of `data` read through `spec`, as a
/// device cutting them would wake: the step over the sampling rate. `None` for images.
pub fn window_period_s(spec: &DataSpec, data: &Dataset) -> Option<f64> {
    let rate = f64::from(data.sample_rate_hz?);
    let step = match (&data.stream, spec.options.step, &spec.source) {
        (Some(s), _, _) => s.step,
        (None, Some(step), _) => step,
        (None, None, Source::Wisdm(_)) => WISDM_WINDOW / 2,
        (None, None, _) => hapt::HOP,
    };
    (rate > 0.0).then(|| step as f64 / rate)
}

/// WISDM's default window: 10 s at 20 Hz, the length most WISDM studies use; step half of it.
pub const WISDM_WINDOW: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_splits() {
        let s = DataSpec::parse("uci-har:../shared/data/uci-har:test").unwrap();
        assert_eq!(s.source, Source::UciHar("../shared/data/uci-har".into()));
        assert_eq!(s.split, Split::Test);
        let s = DataSpec::parse("hapt:/x/hapt.zip").unwrap();
        assert_eq!((s.split, s.split_given), (Split::Test, false));
        let s = DataSpec::parse("mnist:d:val").unwrap();
        assert_eq!((s.source, s.split), (Source::Mnist("d".into()), Split::Val));
        assert_eq!(
            DataSpec::parse("fashion-mnist:d:train")
                .unwrap()
                .to_string(),
            "fashion-mnist:d:train"
        );
    }

    #[test]
    fn parses_options_after_the_split() {
        let s =
            DataSpec::parse("hapt:/x/hapt.zip:val:classes=12:stream:window=100:step=50").unwrap();
        assert_eq!(s.split, Split::Val);
        assert_eq!(s.source, Source::Hapt("/x/hapt.zip".into()));
        assert_eq!(s.options.classes, Some(Activities::AllTwelve));
        assert!(s.options.stream);
        assert_eq!((s.options.window, s.options.step), (Some(100), Some(50)));
        assert_eq!(
            s.to_string(),
            "hapt:/x/hapt.zip:val:classes=12:stream:window=100:step=50"
        );
        let v = DataSpec::parse("hapt:z:train:val=26,3,14").unwrap();
        assert_eq!(v.options.val_subjects, Some(vec![3, 14, 26]));
        assert_eq!(
            v.with_split(Split::Val).to_string(),
            "hapt:z:val:val=3,14,26"
        );
        let w = DataSpec::parse("wisdm:d:stream").unwrap();
        assert!(w.options.stream && !w.split_given);
        let w = DataSpec::parse("wisdm:d:train:activities=18:sensors=accel").unwrap();
        assert_eq!(w.options.activities.as_deref(), Some("18"));
        assert_eq!(w.with_split(Split::Test).options, w.options);
    }

    #[test]
    fn window_period_is_the_step_over_the_rate() {
        let data = |rate: Option<f32>| Dataset {
            sample_shape: vec![4, 1],
            channel_names: vec!["a".into()],
            data: vec![0.0; 4],
            labels: vec![0],
            subjects: None,
            class_names: vec!["x".into()],
            sample_rate_hz: rate,
            stream: None,
        };
        let p = |spec: &str, rate| window_period_s(&DataSpec::parse(spec).unwrap(), &data(rate));
        assert_eq!(p("uci-har:d:test", Some(50.0)), Some(1.28));
        assert_eq!(p("wisdm:d:test", Some(20.0)), Some(5.0));
        assert_eq!(p("wisdm:d:test:step=40", Some(20.0)), Some(2.0));
        assert_eq!(p("mnist:d", None), None);
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            "hapt:x:test:classes=7",
            "hapt:x:test:window=0",
            "hapt:x:test:step=abc",
            "hapt:x:test:colour=red",
            "uci-har:x:test:stream",
            "mnist:x:window=10",
            "uci-har:x:classes=12",
            "hapt:x:activities=18",
            "hapt:x:val=2",
            "hapt:x:val=3,3",
            "hapt:x:val=0",
            "hapt:x:val=",
            "uci-har:x:val=3",
        ] {
            assert!(DataSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(DataSpec::parse("uci-har").is_err());
        assert!(DataSpec::parse("uci-har:").is_err());
        assert!(DataSpec::parse("cifar:dir").is_err());
    }
}
