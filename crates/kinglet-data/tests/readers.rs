//! Readers against the committed fixtures (see scripts/make_data_fixtures.py).

use std::path::{Path, PathBuf};

use kinglet_data::hapt::{self, Processing};
use kinglet_data::uci_har::HAR_CHANNELS;
use kinglet_data::{
    Activities, DataError, DataSpec, LoadOptions, Normalisation, Split, load, official,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn spec(kind: &str, path: &Path, split: &str) -> DataSpec {
    DataSpec::parse(&format!("{kind}:{}:{split}", path.display())).unwrap()
}

#[test]
fn official_layout_test_split_reads_gzipped_whitespace_txt() {
    let d = load(
        &spec("uci-har", &fixture("uci-har"), "test"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(d.len(), 300);
    assert_eq!(d.sample_shape, vec![128, 9]);
    assert_eq!(d.channel_names, HAR_CHANNELS.to_vec());
    assert_eq!(d.class_names[0], "WALKING");
    assert_eq!(d.class_counts(), vec![53, 48, 43, 49, 52, 55]);
    let subjects = d.subjects.as_ref().unwrap();
    assert!(subjects[..24].iter().all(|&s| s == 2));
    assert!(subjects[24..].iter().all(|s| [4, 9, 10, 12].contains(s)));
    // First official test window: total_acc_x starts 1.0412, 1.0418 (channel 6, steps of 9),
    // 1.041 and 1.042 at the fixture's 4 significant digits.
    let w = d.sample(0);
    assert_eq!((w[6], w[9 + 6]), (1.041, 1.042));
    // Labels are 0-based: the first windows are STANDING (official label 5).
    assert_eq!(d.labels[0], 4);
}

#[test]
fn official_layout_train_and_val_split_by_subject_from_comma_csv() {
    // The folder holding `UCI HAR Dataset/` and that folder itself are both accepted.
    let inner = fixture("uci-har").join("UCI HAR Dataset");
    let train = load(&spec("uci-har", &inner, "train"), &LoadOptions::default()).unwrap();
    let val = load(
        &spec("uci-har", &fixture("uci-har"), "val"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!((train.len(), val.len()), (32, 16));
    assert!(train.subjects.unwrap().iter().all(|&s| s == 1));
    assert!(
        val.subjects
            .unwrap()
            .iter()
            .all(|&s| hapt::VAL_SUBJECTS.contains(&s))
    );
}

fn malformed(name: &str) -> DataError {
    load(
        &spec("uci-har", &fixture("malformed").join(name), "test"),
        &LoadOptions::default(),
    )
    .unwrap_err()
}

#[test]
fn malformed_official_files_name_file_and_line() {
    let e = malformed("short-row");
    assert!(
        matches!(&e, DataError::ShortRow { line: 2, expected: 128, found: 127, path } if path.ends_with("body_gyro_y_test.txt")),
        "{e}"
    );
    let e = malformed("non-numeric");
    assert!(
        matches!(&e, DataError::NotANumber { line: 2, column: 5, path, .. } if path.ends_with("total_acc_x_test.txt")),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("total_acc_x_test.txt:2: value 5 `abc`"),
        "{e}"
    );
    let e = malformed("nan");
    assert!(
        matches!(&e, DataError::NonFinite { line: 1, column: 3, path, .. } if path.ends_with("body_acc_z_test.txt")),
        "{e}"
    );
    let e = malformed("mismatched-counts");
    assert!(
        matches!(&e, DataError::RowCountMismatch { found: 1, expected: 2, path, .. } if path.ends_with("total_acc_z_test.txt")),
        "{e}"
    );
    let e = malformed("missing-signals");
    assert!(matches!(&e, DataError::NoSignals { .. }), "{e}");
    assert!(e.to_string().contains("no inertial signals"), "{e}");
}

#[test]
fn missing_dataset_is_a_missing_file_error() {
    let e = load(
        &spec("uci-har", &fixture("does-not-exist"), "test"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
    let e = load(
        &spec("hapt", &fixture("does-not-exist.zip"), "test"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
}

#[test]
fn malformed_hapt_raw_files_name_file_and_line() {
    let e = load(
        &spec("hapt", &fixture("malformed/hapt-short-row"), "train"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, DataError::ShortRow { line: 57, expected: 3, found: 2, path } if path.ends_with("acc_exp01_user01.txt")),
        "{e}"
    );
    let e = load(
        &spec(
            "hapt",
            &fixture("malformed/hapt-mismatched-counts"),
            "train",
        ),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            DataError::RowCountMismatch {
                found: 299,
                expected: 300,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn hapt_zip_splits_by_subject() {
    let zip = fixture("hapt.zip");
    let opts = LoadOptions::default();
    let train = load(&spec("hapt", &zip, "train"), &opts).unwrap();
    let val = load(&spec("hapt", &zip, "val"), &opts).unwrap();
    let test = load(&spec("hapt", &zip, "test"), &opts).unwrap();
    assert_eq!(
        train
            .subjects
            .as_ref()
            .unwrap()
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [1].into()
    );
    assert!(val.subjects.as_ref().unwrap().iter().all(|&s| s == 6));
    assert!(test.subjects.as_ref().unwrap().iter().all(|&s| s == 2));
    // Segment lengths in the fixture's labels.txt give these window counts
    // (floor((len − 128) / 64) + 1 per segment): walking 583 → 8, 895 → 12; …
    assert_eq!(train.class_counts(), vec![20, 9, 7, 0, 0, 0]);
    assert_eq!(test.class_counts(), vec![0, 0, 0, 13, 16, 0]);
    assert_eq!(test.class_names.len(), 6);
    let all = load(
        &spec("hapt", &zip, "test"),
        &LoadOptions {
            activities: Activities::AllTwelve,
        },
    )
    .unwrap();
    assert_eq!(all.class_names.len(), 12);
    assert_eq!(all.class_counts()[6..].to_vec(), vec![1, 1, 0, 0, 0, 0]);
}

#[test]
fn hapt_validation_subjects_can_be_named() {
    let zip = fixture("hapt.zip");
    let subjects = |split: &str| -> std::collections::BTreeSet<u32> {
        let spec = DataSpec::parse(&format!("hapt:{}:{split}:val=1", zip.display())).unwrap();
        let data = load(&spec, &LoadOptions::default()).unwrap();
        data.subjects.unwrap().into_iter().collect()
    };
    // The default's validation subject 6 trains; subject 1 validates; test stays subject 2.
    assert_eq!(subjects("train"), [6].into());
    assert_eq!(subjects("val"), [1].into());
    assert_eq!(subjects("test"), [2].into());
    // Subject 2 is a test subject: refused, with the reason.
    let err = DataSpec::parse(&format!("hapt:{}:val:val=1,2", zip.display())).unwrap_err();
    assert!(err.to_string().contains("test subjects"), "{err}");
}

#[test]
fn hapt_classes_option_and_continuous_streams() {
    let zip = fixture("hapt.zip");
    let parse = |s: &str| DataSpec::parse(&format!("hapt:{}:{s}", zip.display())).unwrap();
    // `classes=12` in the spec does what LoadOptions' AllTwelve does.
    let twelve = load(&parse("test:classes=12"), &LoadOptions::default()).unwrap();
    assert_eq!(twelve.class_names.len(), 12);
    assert_eq!(twelve.class_counts()[6..].to_vec(), vec![1, 1, 0, 0, 0, 0]);

    // A stream covers every recording on the fixed grid, the windows of the segment cut
    // among them; transitions are unlabelled with six classes, labelled with twelve.
    let six = load(&parse("test:stream"), &LoadOptions::default()).unwrap();
    let s = six.stream.as_ref().unwrap();
    assert_eq!((s.window, s.step), (128, 64));
    assert!(s.known.iter().any(|k| !k) && s.straddles.iter().any(|k| *k));
    assert!(six.len() > load(&parse("test"), &LoadOptions::default()).unwrap().len());
    let twelve = load(&parse("test:classes=12:stream"), &LoadOptions::default()).unwrap();
    let unknown = |d: &kinglet_data::Dataset| {
        d.stream
            .as_ref()
            .unwrap()
            .known
            .iter()
            .filter(|k| !**k)
            .count()
    };
    assert_eq!(twelve.len(), six.len());
    assert!(unknown(&twelve) < unknown(&six));
    assert!(twelve.class_counts()[6..].iter().sum::<usize>() > 0);
    // Training sees only labelled windows of a stream.
    let labelled =
        kinglet_data::load_labelled(&parse("test:stream"), &LoadOptions::default()).unwrap();
    assert_eq!(labelled.len(), six.len() - unknown(&six));
    assert!(labelled.stream.is_none());
    // Another grid: windows of 100 samples every 50.
    let other = load(&parse("test:window=100:step=50"), &LoadOptions::default()).unwrap();
    assert_eq!(other.sample_shape, vec![100, 9]);
    assert_eq!(other.sample_rate_hz, Some(50.0));
}

#[test]
fn hapt_folder_reads_like_the_zip() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::open(fixture("hapt.zip")).unwrap();
    zip::ZipArchive::new(file)
        .unwrap()
        .extract(dir.path())
        .unwrap();
    let from_zip = load(
        &spec("hapt", &fixture("hapt.zip"), "val"),
        &LoadOptions::default(),
    )
    .unwrap();
    let from_dir = load(&spec("hapt", dir.path(), "val"), &LoadOptions::default()).unwrap();
    assert_eq!(from_zip, from_dir);
}

#[test]
fn rebuilt_window_matches_the_official_one() {
    // Fixture experiment 3 (subject 2) starts at sample 1 of the recording, so its first
    // STANDING window is official test window 0 (first row of the fixture's test split).
    let official = load(
        &spec("uci-har", &fixture("uci-har"), "test"),
        &LoadOptions::default(),
    )
    .unwrap();
    let rebuilt = load(
        &spec("hapt", &fixture("hapt.zip"), "test"),
        &LoadOptions::default(),
    )
    .unwrap();
    let first_standing = rebuilt.labels.iter().position(|&l| l == 4).unwrap();
    let (o, r) = (official.sample(0), rebuilt.sample(first_standing));
    let max_diff = |c: usize| {
        (0..128)
            .map(|t| (o[t * 9 + c] - r[t * 9 + c]).abs())
            .fold(0f32, f32::max)
    };
    for c in [0, 1, 2, 6, 7, 8] {
        assert!(
            max_diff(c) < 0.02,
            "{} differs by {}",
            HAR_CHANNELS[c],
            max_diff(c)
        );
    }
    // Off by one window (64 samples) the same window differs far more.
    let next = rebuilt.sample(first_standing + 1);
    let shifted = (0..128)
        .map(|t| (o[t * 9 + 6] - next[t * 9 + 6]).abs())
        .fold(0f32, f32::max);
    assert!(shifted > 0.05, "{shifted}");
}

#[test]
fn compare_official_locates_the_windows_in_the_slice() {
    let c = official::compare(
        &fixture("uci-har"),
        &fixture("hapt.zip"),
        &Processing::default(),
    )
    .unwrap();
    assert_eq!(c.official_windows, 300);
    // Only the STANDING and SITTING runs of subject 2 (8 windows) lie in the fixture's slice of
    // experiment 3; the other test windows are of subjects the HAPT fixture does not hold.
    assert_eq!(c.located, 8);
    assert_eq!(c.same_position_as_rebuilt, 8);
    assert_eq!(c.label_agreement, 8);
    let total_acc_x = &c.channels[6];
    assert!(
        total_acc_x.mean_abs < 0.005 && total_acc_x.max_abs < 0.03,
        "{total_acc_x:?}"
    );
}

#[test]
fn normalisation_fitted_on_train_applies_to_test() {
    let zip = fixture("hapt.zip");
    let train = load(&spec("hapt", &zip, "train"), &LoadOptions::default()).unwrap();
    let mut test = load(&spec("hapt", &zip, "test"), &LoadOptions::default()).unwrap();
    let norm = Normalisation::fit(&train).unwrap();
    let before = test.sample(0)[6];
    norm.apply(&mut test).unwrap();
    assert!((test.sample(0)[6] - (before - norm.mean[6]) / norm.std[6]).abs() < 1e-6);
}

#[test]
fn default_split_is_test_and_can_be_overridden() {
    let s = DataSpec::parse(&format!("hapt:{}", fixture("hapt.zip").display())).unwrap();
    assert_eq!(s.split, Split::Test);
    assert!(!s.split_given);
    let d = load(&s.with_split(Split::Val), &LoadOptions::default()).unwrap();
    assert!(d.subjects.unwrap().iter().all(|&u| u == 6));
}
