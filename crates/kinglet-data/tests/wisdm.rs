//! WISDM 2019 reader against the committed fixtures (see scripts/make_wisdm_fixture.py).

use std::path::{Path, PathBuf};

use kinglet_data::recording::{Grid, segment_windows, stream_windows};
use kinglet_data::wisdm::{self, Sensors, WisdmActivities, WisdmOptions};
use kinglet_data::{DataError, Split};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const GRID: Grid = Grid {
    window: 40,
    step: 20,
};

#[test]
fn locomotion_with_gyroscope_skips_1607_with_a_note() {
    let d = wisdm::read(&fixture("wisdm"), |_| true, &WisdmOptions::default()).unwrap();
    assert_eq!(
        d.class_names,
        ["walking", "jogging", "stairs", "sitting", "standing"]
    );
    let ids: Vec<u32> = d.recordings.iter().map(|r| r.id).collect();
    assert_eq!(ids, [1600, 1606, 1609]);
    for r in &d.recordings {
        assert_eq!(r.subject, r.id);
        assert_eq!(r.sample_rate_hz, 20.0);
        assert_eq!(
            r.channel_names,
            ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
        );
        assert_eq!(r.signals.len(), r.len() * 6);
    }
    // 1600: six blocks of 240 lines, in file order A…F; typing (F) is not a class here.
    let r = &d.recordings[0];
    assert_eq!(r.len(), 6 * 240);
    assert_eq!(r.labels[0], Some(0));
    assert_eq!(r.labels[240], Some(1));
    assert!(r.labels[5 * 240..].iter().all(Option::is_none));
    let labelled = r.labels.iter().filter(|l| l.is_some()).count();
    assert!(labelled >= 5 * 240 - 10, "{labelled} labelled");
    // First line of the fixture: 1600,A,…, then x y z, then the paired gyroscope sample.
    assert!(r.signals[3..6].iter().any(|&g| g != 0.0));
    // 1609 has no jogging: no label 1.
    assert!(d.recordings[2].labels.iter().all(|&l| l != Some(1)));

    let note = d
        .notes
        .iter()
        .find(|n| n.contains("1607"))
        .expect("a note about 1607");
    assert!(note.contains("gyroscope"), "{note}");
    assert!(note.contains("sensors=accel"), "{note}");

    let seg = segment_windows(&d.recordings, GRID, &d.class_names).unwrap();
    assert!(!seg.is_empty());
    assert_eq!(seg.sample_shape, vec![40, 6]);
    assert_eq!(seg.sample_rate_hz, Some(20.0));
    let counts = seg.class_counts();
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[4] > 0,
        "{counts:?}"
    );
    let stream = stream_windows(&d.recordings, GRID, &d.class_names).unwrap();
    assert!(stream.len() > seg.len());
    let info = stream.stream.as_ref().unwrap();
    assert!(info.known.iter().any(|k| !k)); // the typing windows
    assert!(info.straddles.iter().any(|&s| s));
}

#[test]
fn accel_only_includes_1607_resampled_from_25_hz() {
    let options = WisdmOptions {
        activities: WisdmActivities::All,
        sensors: Sensors::Accel,
    };
    // The dataset folder itself and its raw/phone folder are accepted too.
    for dir in ["wisdm/wisdm-dataset", "wisdm/wisdm-dataset/raw/phone"] {
        let d = wisdm::read(&fixture(dir), |_| true, &options).unwrap();
        assert_eq!(d.class_names.len(), 18);
        assert_eq!(d.class_names[13], "catch"); // the key has no N
        let ids: Vec<u32> = d.recordings.iter().map(|r| r.id).collect();
        assert_eq!(ids, [1600, 1606, 1607, 1609]);
        assert!(d.recordings.iter().all(|r| r.channels() == 3));
        // 1607's phone ran at 25 Hz: 240 lines (9.6 s) per block become 192 samples at 20 Hz.
        let r = &d.recordings[2];
        assert!((6 * 191..=6 * 193).contains(&r.len()), "{}", r.len());
        assert!(r.labels.iter().all(Option::is_some));
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("1607") && n.contains("resampled")),
            "{:?}",
            d.notes
        );
        assert!(!d.notes.iter().any(|n| n.contains("gyroscope file")));
        let seg = segment_windows(&d.recordings, GRID, &d.class_names).unwrap();
        // Typing: 11 windows in each 12 s block (240 samples), 8 in 1607's 192.
        assert_eq!(seg.class_counts()[5], 3 * 11 + 8);
    }
}

#[test]
fn letters_choose_classes_and_splits_choose_subjects() {
    let options = WisdmOptions {
        activities: WisdmActivities::parse("FA").unwrap(),
        sensors: Sensors::AccelGyro,
    };
    let test = wisdm::read(
        &fixture("wisdm"),
        |s| wisdm::subject_in_split(s, Split::Test),
        &options,
    )
    .unwrap();
    assert_eq!(test.class_names, ["typing", "walking"]);
    assert_eq!(test.recordings.len(), 1);
    assert_eq!(test.recordings[0].subject, 1600);
    assert_eq!(test.recordings[0].labels[0], Some(1));
    assert_eq!(test.recordings[0].labels[5 * 240 + 10], Some(0));
    let val = wisdm::read(
        &fixture("wisdm"),
        |s| wisdm::subject_in_split(s, Split::Val),
        &options,
    )
    .unwrap();
    assert_eq!(val.recordings[0].subject, 1609);
    // Train with the gyroscope: 1606 only (1607 skipped, with the note in the error-free result).
    let train = wisdm::read(
        &fixture("wisdm"),
        |s| wisdm::subject_in_split(s, Split::Train),
        &options,
    )
    .unwrap();
    assert_eq!(train.recordings.len(), 1);
    assert!(train.notes.iter().any(|n| n.contains("1607")));
    // Nothing selected: a clear error, not an empty result.
    let err = wisdm::read(&fixture("wisdm"), |s| s == 1607, &options).unwrap_err();
    assert!(matches!(err, DataError::Empty(_)), "{err}");
    assert!(err.to_string().contains("no gyroscope file"), "{err}");
    let err = wisdm::read(
        &fixture("wisdm"),
        |_| true,
        &WisdmOptions {
            activities: WisdmActivities::Letters(vec!['N']),
            sensors: Sensors::Accel,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("activity_key.txt"), "{err}");
}

#[test]
fn malformed_files_are_named_with_their_line() {
    let cases = [
        (
            "short-line",
            "data_1600_accel_phone.txt",
            17,
            "expected 6 values",
        ),
        (
            "wrong-subject",
            "data_1600_gyro_phone.txt",
            23,
            "subject 1601",
        ),
        (
            "backwards-timestamp",
            "data_1600_accel_phone.txt",
            30,
            "goes back",
        ),
        (
            "unknown-letter",
            "data_1600_accel_phone.txt",
            12,
            "activity `N`",
        ),
        ("nan", "data_1600_accel_phone.txt", 8, "NaN"),
    ];
    for (case, file, line, what) in cases {
        let dir = fixture("wisdm-malformed").join(case);
        let err = wisdm::read(&dir, |_| true, &WisdmOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(file), "{case}: {err}");
        assert!(err.contains(&format!(":{line}:")), "{case}: {err}");
        assert!(err.contains(what), "{case}: {err}");
    }
}

#[test]
fn missing_accelerometer_and_missing_data_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("wisdm-dataset");
    let phone = root.join("raw/phone");
    std::fs::create_dir_all(phone.join("accel")).unwrap();
    std::fs::create_dir_all(phone.join("gyro")).unwrap();
    std::fs::write(root.join("activity_key.txt"), "walking = A\n").unwrap();
    let options = WisdmOptions {
        activities: WisdmActivities::Letters(vec!['A']),
        sensors: Sensors::AccelGyro,
    };
    let err = wisdm::read(tmp.path(), |_| true, &options).unwrap_err();
    assert!(matches!(err, DataError::Empty(_)), "{err}");
    assert!(err.to_string().contains("no subject files"), "{err}");

    std::fs::write(
        phone.join("gyro/data_1600_gyro_phone.txt"),
        "1600,A,0,1,2,3;\n",
    )
    .unwrap();
    let err = wisdm::read(tmp.path(), |_| true, &options).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("data_1600_accel_phone"), "{err}");

    let err = wisdm::read(&tmp.path().join("nowhere"), |_| true, &options).unwrap_err();
    assert!(
        err.to_string().contains("wisdm-dataset/raw/phone/accel"),
        "{err}"
    );
}
