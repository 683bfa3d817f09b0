//! The datasets beyond UCI-HAR through the CLI, on committed fixtures: WISDM 2019 (20 Hz phone
//! data), HAPT's continuous streams; the sampling rate travelling with a trained model; errors
//! on malformed WISDM files naming file and line.

use std::path::{Path, PathBuf};

mod common;
use common::{kinglet, text};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-data/tests/fixtures")
        .join(name)
}

fn wisdm(split_and_options: &str) -> String {
    format!("wisdm:{}:{split_and_options}", fixture("wisdm").display())
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = kinglet(args);
    assert!(o.status.success(), "kinglet {args:?} failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn data_info_reads_wisdm_and_says_which_subject_lacks_the_gyroscope() {
    let o = kinglet(&["data", "info", &wisdm("train:window=40:step=20")]);
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("1607") && stderr.contains("gyroscope"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("sample rate: 20 Hz"), "{stdout}");
    assert!(stdout.contains("walking") && stdout.contains("per subject: 1606:"));

    // Accelerometer only: 1607 is in, with three channels.
    let v = json(&[
        "data",
        "info",
        &wisdm("train:sensors=accel:window=40:step=20"),
        "--json",
    ]);
    assert_eq!(v["channels"].as_array().unwrap().len(), 3);
    assert!(v["subjects"]["1607"].as_u64().unwrap() > 0, "{v}");

    // A stream over whole recordings: windows straddle activity changes.
    let v = json(&[
        "data",
        "info",
        &wisdm("test:stream:window=40:step=20"),
        "--json",
    ]);
    assert!(v["stream"]["straddling"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["sample_rate_hz"], 20.0);
}

#[test]
fn a_wisdm_model_trains_evaluates_and_refuses_data_at_another_rate() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("tiny-wisdm.toml");
    std::fs::write(
        &arch,
        r#"
name = "tiny-wisdm"
window = 40
[task]
kind = "activity"
[[branch]]
name = "accel"
channels = ["acc_x", "acc_y", "acc_z"]
[[block]]
filters = 4
pool = 4
batch_norm = true
[head]
global_average_pool = true
[training]
learning_rate = 0.01
batch_size = 8
epochs = 2
"#,
    )
    .unwrap();
    let model = dir.path().join("m.kgl");
    // Six activities, as many as HAPT's classes below, so that the rate is what differs.
    let data = wisdm("train:activities=ABCDEF:sensors=accel:window=40:step=20");
    let o = kinglet(&[
        "train",
        "--arch",
        &arch.display().to_string(),
        "--data",
        &data,
        "--seed",
        "1",
        "--quiet",
        "--out",
        &model.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&[
        "eval",
        "--model",
        &model.display().to_string(),
        "--data",
        &wisdm("test:activities=ABCDEF:sensors=accel:window=40:step=20"),
        "--json",
    ]);
    assert!(v["n"].as_u64().unwrap() > 0, "{v}");

    // Its int8 .tflite finds its three channels by name among WISDM's, on the host and in a
    // cascade over a WISDM stream (priced over 20 samples at 20 Hz: a window every second).
    let int8 = dir.path().join("m.int8.tflite");
    let o = kinglet(&[
        "quantize",
        "--model",
        &model.display().to_string(),
        "--data",
        &data,
        "--out",
        &int8.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let q = json(&[
        "eval",
        "--model",
        &int8.display().to_string(),
        "--data",
        &wisdm("test:activities=ABCDEF:sensors=accel:window=40:step=20"),
        "--json",
    ]);
    assert_eq!(q["n"], v["n"]);
    let c = json(&[
        "cascade",
        "--strategy",
        "signature",
        "--threshold",
        "500",
        "--big",
        &int8.display().to_string(),
        "--data",
        &wisdm("test:activities=ABCDEF:sensors=accel:window=40:step=20:stream"),
        "--cost",
        "big=50000",
        "--json",
    ]);
    assert!(c["stream"]["scored"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["energy"][0]["window_period_s"], 1.0);

    // The model remembers 20 Hz: 40-sample windows of 50 Hz HAPT data are refused.
    let hapt = format!(
        "hapt:{}:test:window=40:step=20",
        fixture("hapt.zip").display()
    );
    for args in [
        vec!["eval", "--model", model.to_str().unwrap(), "--data", &hapt],
        vec![
            "cascade",
            "--strategy",
            "big-only",
            "--big",
            int8.to_str().unwrap(),
            "--data",
            &hapt,
        ],
    ] {
        let o = kinglet(&args);
        assert!(!o.status.success(), "{args:?}");
        let message = text(&o);
        assert!(
            message.contains("20 Hz") && message.contains("50 Hz"),
            "{args:?}: {message}"
        );
    }
}

#[test]
fn malformed_wisdm_files_are_named_with_their_line() {
    for case in [
        "short-line",
        "wrong-subject",
        "backwards-timestamp",
        "unknown-letter",
    ] {
        let spec = format!(
            "wisdm:{}:test",
            fixture("wisdm-malformed").join(case).display()
        );
        let o = kinglet(&["data", "info", &spec]);
        assert!(!o.status.success(), "{case}: {}", text(&o));
        let message = String::from_utf8_lossy(&o.stderr);
        assert!(
            message.contains("_phone.txt:") && o.stdout.is_empty(),
            "{case}: {message}"
        );
    }
}
