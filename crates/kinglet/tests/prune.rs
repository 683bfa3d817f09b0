//! `kinglet prune` end to end on the committed fixtures: unstructured pruning of the seed CNN
//! keeps exact zeros through int8 quantisation; structured pruning of the three-branch Big and
//! of the CNN gives smaller ordinary models that export, quantise and evaluate.

use std::path::Path;

mod common;
use common::{har, kinglet, mnist, run_ok, text, train};

use kinglet_graph::DType;
use kinglet_graph::tflite::read_tflite_file;
use kinglet_train::TrainedModel;
use kinglet_train::prune::sparsity_report;

/// `kinglet prune` of `model` on `data` into `out`, then `extra`.
fn prune_args<'a>(model: &'a str, data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["prune", "--model", model, "--data", data, "--out", out];
    args.extend_from_slice(extra);
    args
}

/// Zero weights among the int8 constants of a `.tflite` file.
fn int8_zeros(path: &str) -> usize {
    let graph = read_tflite_file(Path::new(path)).unwrap();
    graph
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::I8)
        .filter_map(|t| t.data.as_ref())
        .map(|d| d.iter().filter(|b| **b == 0).count())
        .sum()
}

#[test]
fn unstructured_pruning_keeps_exact_zeros_through_int8() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (float, pruned, int8) = (p("f.kgl"), p("p.kgl"), p("p.tflite"));
    let train_data = mnist("train");
    train("mnist-cnn", &train_data, &float);
    let out = run_ok(&prune_args(
        &float,
        &train_data,
        &pruned,
        &[
            "--sparsity",
            "0.7",
            "--min-weights",
            "0",
            "--epochs",
            "1",
            "--quiet",
        ],
    ));
    assert!(out.contains("output.weight"), "{out}");
    let model = TrainedModel::load(Path::new(&pruned)).unwrap();
    let layers = sparsity_report(&model);
    assert_eq!(layers.len(), 2);
    for l in &layers {
        // round(0.7 · n) weights exactly zero, no fewer (masks held through every step).
        assert!(
            l.zeros >= (0.7 * l.weights as f64).round() as usize,
            "{l:?}"
        );
    }
    let zeros: usize = layers.iter().map(|l| l.zeros).sum();
    assert!(
        out.contains(&format!("{zeros} of 20388 weights zero")),
        "{out}"
    );
    run_ok(&[
        "quantize",
        "--model",
        &pruned,
        "--data",
        &train_data,
        "--scheme",
        "int8",
        // Centring the logits would subtract each column's mean from the output weights.
        "--logit-clip",
        "off",
        "--out",
        &int8,
    ]);
    assert!(int8_zeros(&int8) >= zeros);
    let eval = run_ok(&["eval", "--model", &int8, "--data", &mnist("test"), "--json"]);
    assert!(eval.contains("\"accuracy\""), "{eval}");
    // Bad input: a sparsity of 1 or more is refused with a clear message.
    let o = kinglet(&prune_args(
        &float,
        &train_data,
        &pruned,
        &["--sparsity", "1.2"],
    ));
    assert!(!o.status.success() && text(&o).contains("sparsity must be in [0, 1)"));
}

#[test]
fn structured_pruning_shrinks_big3_and_the_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for (arch, data, test) in [
        (
            "big3",
            format!("{}:train", har()),
            format!("{}:test", har()),
        ),
        ("mnist-cnn", mnist("train"), mnist("test")),
    ] {
        let (float, pruned, tflite) = (p("f.kgl"), p("s.kgl"), p("s.tflite"));
        train(arch, &data, &float);
        let out = run_ok(&prune_args(
            &float,
            &data,
            &pruned,
            &["--structured", "0.5", "--epochs", "1", "--quiet"],
        ));
        assert!(out.contains("filters"), "{out}");
        let before = TrainedModel::load(Path::new(&float)).unwrap();
        let after = TrainedModel::load(Path::new(&pruned)).unwrap();
        for (a, b) in before
            .architecture
            .blocks
            .iter()
            .zip(&after.architecture.blocks)
        {
            assert_eq!(b.filters, a.filters - a.filters / 2, "{arch}");
        }
        assert!(
            after.parameter_count() < before.parameter_count() / 2 + 200,
            "{arch}"
        );
        run_ok(&[
            "quantize", "--model", &pruned, "--data", &data, "--scheme", "int8", "--out", &tflite,
        ]);
        let eval = run_ok(&["eval", "--model", &tflite, "--data", &test, "--json"]);
        assert!(eval.contains("\"accuracy\""), "{arch}: {eval}");
    }
}
