//! The seed CNN (`mnist-cnn`) through the CLI on the committed 96 + 40-image MNIST fixture:
//! train, evaluate the `.kgl`, export, quantise with every scheme, evaluate each `.tflite`.

use std::path::Path;

mod common;
use common::{kinglet, text};

fn fixture(split: &str) -> String {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-train/tests/fixtures/mnist-tiny");
    format!("mnist:{}:{split}", dir.display())
}

/// Accuracy and number of images of `kinglet eval --json`.
fn eval(model: &Path) -> (f64, u64) {
    let o = kinglet(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &fixture("test"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["accuracy"].as_f64().unwrap(), v["n"].as_u64().unwrap())
}

#[test]
fn mnist_cnn_trains_exports_quantises_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cnn.kgl");
    let o = kinglet(&[
        "train",
        "--arch",
        "mnist-cnn",
        "--data",
        &fixture("train"),
        "--epochs",
        "12",
        "--seed",
        "1",
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("20410 parameters"), "{}", text(&o));
    let (float_acc, n) = eval(&model);
    assert_eq!(n, 40);
    assert!(
        float_acc > 0.3,
        "accuracy {float_acc} after 4 epochs on 88 images"
    );

    let tflite = dir.path().join("cnn.tflite");
    let o = kinglet(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--out",
        tflite.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The interpreter runs the lowered graph: the same predictions as burn.
    assert_eq!(eval(&tflite), (float_acc, 40));

    // Each scheme stays within the seed's published file size (TFLite converter output).
    let budgets = [
        ("int8", 23_208u64),
        ("dynamic", 22_480),
        ("float16", 42_972),
    ];
    assert!(std::fs::metadata(&tflite).unwrap().len() <= 83_280);
    for (scheme, budget) in budgets {
        let out = dir.path().join(format!("cnn.{scheme}.tflite"));
        let o = kinglet(&[
            "quantize",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &fixture("train"),
            "--scheme",
            scheme,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{scheme}: {}", text(&o));
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size <= budget, "{scheme}: {size} bytes > {budget}");
        let (acc, n) = eval(&out);
        assert_eq!(n, 40);
        // 40 images: one flipped prediction is 2.5 pp.
        assert!(
            (acc - float_acc).abs() <= 0.076,
            "{scheme}: {acc} vs float {float_acc}"
        );
    }
}

#[test]
fn image_model_on_windows_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cnn.kgl");
    let o = kinglet(&[
        "train",
        "--arch",
        "mnist-cnn",
        "--data",
        &fixture("train"),
        "--epochs",
        "1",
        "--no-val",
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let har = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-data/tests/fixtures/uci-har");
    let o = kinglet(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &format!("uci-har:{}:test", har.display()),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("trained on 10 classes"), "{}", text(&o));
}
