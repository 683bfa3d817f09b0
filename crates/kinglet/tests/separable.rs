//! `kinglet separable` end to end on the committed fixtures: the seed CNN and the three-branch
//! Big are converted to depthwise-separable networks, fine-tuned for one epoch, and the
//! results load, quantise to int8 with DEPTHWISE_CONV_2D ops, and evaluate.

use std::path::Path;

mod common;
use common::{har, kinglet, mnist, run_ok, text, train};

use kinglet_graph::OpKind;
use kinglet_graph::tflite::read_tflite_file;
use kinglet_train::TrainedModel;

/// `kinglet separable --no-val` of `model` on `data` into `out`, then `extra`.
fn separable_args<'a>(
    model: &'a str,
    data: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "separable",
        "--model",
        model,
        "--data",
        data,
        "--no-val",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// Number of DEPTHWISE_CONV_2D and CONV_2D ops in a `.tflite` file.
fn conv_ops(path: &str) -> (usize, usize) {
    let graph = read_tflite_file(Path::new(path)).unwrap();
    let count = |f: fn(&OpKind) -> bool| graph.ops.iter().filter(|o| f(&o.kind)).count();
    (
        count(|k| matches!(k, OpKind::DepthwiseConv2D { .. })),
        count(|k| matches!(k, OpKind::Conv2D { .. })),
    )
}

/// Accuracy and sample count of `kinglet eval --json`.
fn eval(model: &str, data: &str) -> (f64, u64) {
    let o = kinglet(&["eval", "--model", model, "--data", data, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["accuracy"].as_f64().unwrap(), v["n"].as_u64().unwrap())
}

#[test]
fn seed_cnn_converts_fine_tunes_and_quantises() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (float, sep, report, int8) = (p("f.kgl"), p("s.kgl"), p("s.json"), p("s.tflite"));
    train("mnist-cnn", &mnist("train"), &float);
    let out = run_ok(&separable_args(
        &float,
        &mnist("train"),
        &sep,
        &[
            "--epochs", "1", "--seed", "1", "--report", &report, "--quiet",
        ],
    ));
    // The per-layer table comes before fine-tuning.
    let table = out.find("branch0.block0").expect("layer table");
    assert!(table < out.find("epoch   1").expect("epoch line"), "{out}");
    assert!(out.contains("20410 → 20324 parameters"), "{out}");

    let model = TrainedModel::load(Path::new(&sep)).unwrap();
    assert_eq!(model.architecture.name, "mnist-cnn-separable");
    assert!(model.architecture.blocks[0].separable);
    assert_eq!(model.parameter_count(), 20_324);
    assert_eq!(
        model.provenance.epochs_trained, 3,
        "2 trained + 1 fine-tuned"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let error = json["layers"][0]["relative_error"].as_f64().unwrap();
    assert!(error > 0.0 && error < 1.0, "{json}");
    assert_eq!(json["fine_tuning"].as_array().unwrap().len(), 1);

    run_ok(&[
        "quantize",
        "--model",
        &sep,
        "--data",
        &mnist("train"),
        "--scheme",
        "int8",
        "--windows",
        "50",
        "--out",
        &int8,
    ]);
    assert_eq!(conv_ops(&int8), (1, 1), "depthwise 3×3 then pointwise 1×1");
    let (accuracy, n) = eval(&int8, &mnist("test"));
    assert_eq!(n, 40);
    assert!(accuracy > 0.1, "int8 accuracy {accuracy}");

    // Nothing is left to convert in a separable model.
    let o = kinglet(&separable_args(&sep, &mnist("train"), &p("x.kgl"), &[]));
    assert!(!o.status.success());
    assert!(text(&o).contains("no full convolution"), "{}", text(&o));
    assert!(!Path::new(&p("x.kgl")).exists());
}

#[test]
fn three_branch_big_converts_every_branch() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (float, sep, int8) = (p("b.kgl"), p("s.kgl"), p("s.tflite"));
    train("big3", &har(), &float);
    let out = run_ok(&separable_args(
        &float,
        &har(),
        &sep,
        &["--epochs", "1", "--quiet"],
    ));
    for b in 0..3 {
        for i in 0..5 {
            assert!(out.contains(&format!("branch{b}.block{i}")), "{out}");
        }
    }
    let model = TrainedModel::load(Path::new(&sep)).unwrap();
    assert!(model.architecture.blocks.iter().all(|b| b.separable));
    // `--epochs 0` writes the converted model as it is; `--blocks` picks the blocks.
    let converted = p("c.kgl");
    run_ok(&separable_args(
        &float,
        &har(),
        &converted,
        &["--blocks", "3,4", "--epochs", "0", "--quiet"],
    ));
    let c = TrainedModel::load(Path::new(&converted)).unwrap();
    let separable: Vec<bool> = c.architecture.blocks.iter().map(|b| b.separable).collect();
    assert_eq!(separable, [false, false, false, true, true]);
    let o = kinglet(&separable_args(
        &float,
        &har(),
        &p("x.kgl"),
        &["--blocks", "5"],
    ));
    assert!(!o.status.success());
    assert!(text(&o).contains("block 5 does not exist"), "{}", text(&o));
    run_ok(&[
        "quantize",
        "--model",
        &sep,
        "--data",
        &har(),
        "--scheme",
        "int8",
        "--windows",
        "20",
        "--out",
        &int8,
    ]);
    assert_eq!(conv_ops(&int8), (15, 15));
    let (_, n) = eval(&int8, &har());
    assert!(n > 0);
}

#[test]
fn bad_input_is_a_clear_error() {
    let o = kinglet(&[
        "separable",
        "--model",
        "no-such-model.kgl",
        "--data",
        &mnist("train"),
        "--out",
        "never.kgl",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no-such-model.kgl"), "{}", text(&o));
}
