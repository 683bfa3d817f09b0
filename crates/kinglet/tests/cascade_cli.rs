//! `kinglet cascade` with the signature strategy on the committed UCI-HAR fixture windows:
//! host simulation with energy, per-activity calibration, and the same cascade in QEMU next to
//! the host simulator.

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::kinglet;

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

fn data() -> String {
    format!(
        "uci-har:{}:test",
        repo("crates/kinglet-data/tests/fixtures/uci-har")
    )
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "kinglet failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

fn common<'a>(big: &'a str, data: &'a str, boards: &'a str) -> Vec<&'a str> {
    vec![
        "cascade",
        "--strategy",
        "signature",
        "--big",
        big,
        "--data",
        data,
        "--input-scaling",
        "seed",
        "--boards-dir",
        boards,
        "--json",
    ]
}

#[test]
fn signature_cascade_runs_calibrates_and_prices_the_check() {
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_3IN_91.tflite");
    let (data, boards) = (data(), repo("boards"));
    let mut args = common(&big, &data, &boards);
    args.extend(["--threshold", "600", "--cost", "signature=3400"]);
    let v = json(&kinglet(&args));
    let n = v["n"].as_u64().unwrap();
    let big_runs = v["big_runs"].as_u64().unwrap();
    assert!(n >= 100, "fixture has {n} windows");
    assert!((1..n).contains(&big_runs), "Big ran {big_runs} of {n}");
    // Every window but the first is checked.
    assert_eq!(v["little_runs"].as_u64(), Some(n - 1));
    assert!(
        !v["unmeasured"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "signature")
    );
    let accuracy = v["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));

    // Calibration picks one threshold per activity.
    args.extend(["--budget", "0.5pp", "--validation", &data]);
    let c = json(&kinglet(&args));
    let thresholds = c["spec"]["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 6, "{}", c["spec"]);
    assert!(
        c["calibration"]["chosen"]
            .as_str()
            .unwrap()
            .starts_with("signature(d>")
    );
    assert!(c["calibration"]["within_budget"].as_bool().unwrap());
}

#[test]
fn battery_life_counts_the_device_and_boards_take_their_own_cores_counts() {
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_3IN_91.tflite");
    let (data, boards) = (data(), repo("boards"));
    let mut args = common(&big, &data, &boards);
    args.extend(["--threshold", "600", "--cost", "signature=3400"]);
    let device = json(&kinglet(&args));
    let board = |v: &serde_json::Value, id: &str| {
        v["energy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["board"] == id)
            .unwrap()
            .clone()
    };
    // The default device reads a BMI160 through its FIFO: its current dominates, and the
    // shares of the parts add up to one.
    let parts = device["device_parts"].as_array().unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "inference",
            "mcu sleep",
            "wake-ups",
            "sample reads",
            "sensor",
            "self-discharge"
        ]
    );
    let shares: f64 = parts.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    assert!(parts[4]["share"].as_f64().unwrap() > 0.9);
    let days = device["battery_life_days"].as_f64().unwrap();
    let mcu_only = device["mcu_only_battery_life_days"].as_f64().unwrap();
    assert!(days < mcu_only / 100.0, "{days} vs {mcu_only}");
    assert_eq!(
        board(&device, "ecm3532")["missing_figures"],
        serde_json::json!(["instructions on Cortex-M3"])
    );

    // The MCU alone still loses the cell's self-discharge; Cortex-M3 counts price the ECM3532
    // (as far as its profile has figures: no run current).
    args.extend([
        "--sensor",
        "none",
        "--cost",
        "big@cortex-m3=400000",
        "--cost",
        "signature@cortex-m3=5000",
    ]);
    let alone = json(&kinglet(&args));
    let alone_days = alone["battery_life_days"].as_f64().unwrap();
    assert!(days < alone_days && alone_days < mcu_only, "{alone_days}");
    let ecm = board(&alone, "ecm3532");
    assert_eq!(ecm["counts_core"], "cortex-m3");
    assert!(ecm["instructions_per_window"].as_f64().unwrap() >= 5000.0);
    assert_eq!(ecm["inference_uj_per_window"], serde_json::Value::Null);
    assert!(
        ecm["missing_figures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "active_ua_per_mhz")
    );

    // A sensor that does not exist is refused by name.
    let mut bad = common(&big, &data, &boards);
    bad.extend(["--threshold", "600", "--sensor", "bmx999"]);
    let o = kinglet(&bad);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sensor `bmx999`"));
}

/// Both firmware cascades in one test: they share the firmware build directory.
#[test]
fn cascades_on_the_cortex_m4_match_the_host() {
    signature_cascade_on_the_cortex_m4_matches_the_host();
    dual_cascade_on_the_cortex_m4_matches_the_host();
    settling_signature_cascade_on_a_stream_matches_the_host();
}

/// The settle guard on the device: on a continuous stream (windows that straddle changes),
/// Big also runs on the window after each noticed change, as in the host simulator.
fn settling_signature_cascade_on_a_stream_matches_the_host() {
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite");
    let data = hapt_fixture("train");
    let v = json(&kinglet(&[
        "cascade",
        "--target",
        "cortex-m4",
        "--strategy",
        "signature",
        "--threshold",
        "400",
        "--settle",
        "1",
        "--big",
        &big,
        "--data",
        &data,
        "--firmware-windows",
        "50",
        "--json",
    ]));
    assert_eq!(v["decisions_match_host"], true, "{v}");
    assert_eq!(v["n"], 50);
    let big_runs = v["big_runs"].as_u64().unwrap();
    assert!((2..50).contains(&big_runs), "Big ran {big_runs} of 50");
}

fn signature_cascade_on_the_cortex_m4_matches_the_host() {
    // An int8 model fed float windows: the device quantises them exactly as the host does.
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite");
    let data = data();
    let v = json(&kinglet(&[
        "cascade",
        "--target",
        "cortex-m4",
        "--strategy",
        "signature",
        "--threshold",
        "400",
        "--big",
        &big,
        "--data",
        &data,
        "--firmware-windows",
        "40",
        "--json",
    ]));
    assert_eq!(v["decisions_match_host"], true, "{v}");
    assert_eq!(v["n"], 40);
    let big_runs = v["big_runs"].as_u64().unwrap();
    assert!((1..40).contains(&big_runs), "Big ran {big_runs} of 40");
    // Windows without Big cost the check only: far less than those with it.
    let (with, without) = (
        v["instructions_per_big_window"].as_f64().unwrap(),
        v["instructions_per_other_window"].as_f64().unwrap(),
    );
    assert!(without * 5.0 < with, "{without} vs {with}");
}

fn dual_cascade_on_the_cortex_m4_matches_the_host() {
    // kinglet's own int8 Dual model (trained with `kinglet train --arch dual --merge-val
    // --seed 1`, then `kinglet quantize --scheme int8`): previous and current total_acc windows,
    // normalised and quantised on the device.
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite");
    let dual = repo("crates/kinglet/tests/fixtures/dual.int8.tflite");
    let data = data();
    let v = json(&kinglet(&[
        "cascade",
        "--target",
        "cortex-m4",
        "--strategy",
        "1b1d",
        "--threshold",
        "0.9",
        "--big",
        &big,
        "--dual",
        &dual,
        "--data",
        &data,
        "--firmware-windows",
        "40",
        "--json",
    ]));
    assert_eq!(v["decisions_match_host"], true, "{v}");
    assert_eq!(v["little_runs"], 39);
    let big_runs = v["big_runs"].as_u64().unwrap();
    assert!((1..40).contains(&big_runs), "Big ran {big_runs} of 40");
}

fn hapt_fixture(split: &str) -> String {
    format!(
        "hapt:{}:{split}:stream",
        repo("crates/kinglet-data/tests/fixtures/hapt.zip")
    )
}

/// A continuous stream (fixed 128/64 grid over whole recordings): unlabelled windows are
/// processed but not scored, straddling windows are counted, calibration runs on the
/// validation subjects' stream, and the settle guard travels through the calibration.
#[test]
fn signature_cascade_calibrates_and_scores_on_a_continuous_stream() {
    let big = repo("crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite");
    let (data, val, boards) = (hapt_fixture("test"), hapt_fixture("val"), repo("boards"));
    let v = json(&kinglet(&[
        "cascade",
        "--strategy",
        "signature",
        "--settle",
        "1",
        "--big",
        &big,
        "--data",
        &data,
        "--validation",
        &val,
        "--budget",
        "1pp",
        "--boards-dir",
        &boards,
        "--cost",
        "big=84041",
        "--cost",
        "signature=3175",
        "--json",
    ]));
    let n = v["n"].as_u64().unwrap();
    let stream = &v["stream"];
    let scored = stream["scored"].as_u64().unwrap();
    assert!(scored > 0 && scored < n, "{scored} of {n} windows scored");
    assert!(stream["straddling"].as_u64().unwrap() > 0, "{stream}");
    assert_eq!(
        (stream["window"].as_u64(), stream["step"].as_u64()),
        (Some(128), Some(64))
    );
    // Every window costs energy, scored or not: each is checked or runs Big (Big without a
    // check on the first window and on each settle window).
    let (big_runs, checks) = (
        v["big_runs"].as_u64().unwrap(),
        v["little_runs"].as_u64().unwrap(),
    );
    assert!(
        checks < n && checks + big_runs >= n,
        "{checks} checks, {big_runs} Big, {n}"
    );
    assert!(
        v["calibration"]["chosen"]
            .as_str()
            .unwrap()
            .ends_with("+settle 1"),
        "{}",
        v["calibration"]["chosen"]
    );
    // 64 samples at 50 Hz between windows.
    let period = v["energy"][0]["window_period_s"].as_f64().unwrap();
    assert!((period - 1.28).abs() < 1e-9, "{period}");
}
