//! Quantisation-aware training across crates: kinglet-train's fake quantisation uses the
//! same activation parameters kinglet-compress gives the int8 graph, and the int8 model built
//! from a QAT model's recorded ranges predicts what the fake-quantised network predicts.
//! Then the CLI path: `train --qat` and `quantize --scheme int8` with recorded ranges.

use std::path::Path;

mod common;
use common::{kinglet, text};

use kinglet_compress::{PtqConfig, quantize_int8_with_recorded_ranges};
use kinglet_data::Dataset;
use kinglet_data::spec::{DataSpec, LoadOptions, load};
use kinglet_graph::{Interpreter, meta};
use kinglet_train::arch::Architecture;
use kinglet_train::qat::{QatOptions, QatState, train_qat};
use kinglet_train::{Silent, TrainOptions, lower, train};

fn fixture(split: &str) -> String {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-train/tests/fixtures/mnist-tiny");
    format!("mnist:{}:{split}", dir.display())
}

fn mnist(split: &str) -> Dataset {
    load(
        &DataSpec::parse(&fixture(split)).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn fake_quant_parameters_equal_the_quantiser_s() {
    let mut ranges = vec![(0.0f32, 0.0f32), (0.0, 1.0), (-1.0, 2.0), (0.5, 2.55)];
    ranges.extend((0..500).map(|i| {
        let a = ((i * 7919) % 1000) as f32 / 37.0 - 13.0;
        let b = a + ((i * 104_729) % 997) as f32 / 53.0;
        (a, b)
    }));
    for (lo, hi) in ranges {
        assert_eq!(
            kinglet_train::qat::activation_params(lo, hi),
            kinglet_compress::params::activation_params(lo, hi),
            "[{lo}, {hi}]"
        );
    }
}

#[test]
fn int8_model_from_recorded_ranges_predicts_what_qat_simulated() {
    let ema = int8_model_predicts_what_qat_simulated(false);
    // Learned ranges (from the second epoch) move away from the moving averages, and the
    // int8 model built from them still predicts what the fake-quantised network did.
    let learned = int8_model_predicts_what_qat_simulated(true);
    assert_eq!(ema.len(), learned.len());
    assert!(
        ema.iter()
            .zip(&learned)
            .any(|(a, b)| a.0 == b.0 && a.1 != b.1),
        "{ema:?} {learned:?}"
    );
}

/// Trains mnist-cnn, fine-tunes it with QAT for three epochs and checks the int8 model from
/// its recorded ranges against the fake-quantised predictions; returns the ranges.
fn int8_model_predicts_what_qat_simulated(learn_ranges: bool) -> Vec<(String, (f32, f32))> {
    let (tr, te) = (mnist("train"), mnist("test"));
    let arch = Architecture::preset("mnist-cnn").unwrap();
    let options = TrainOptions {
        seed: 2,
        epochs: Some(4),
        ..Default::default()
    };
    let float = train(&arch, &tr, None, &options, &mut Silent)
        .unwrap()
        .model;
    let qat = QatOptions {
        seed: 2,
        epochs: 3,
        learn_ranges,
        ..Default::default()
    };
    let model = train_qat(&arch, Some(&float), &tr, None, &qat, &mut Silent)
        .unwrap()
        .model;
    let graph = lower(&model).unwrap();
    assert!(graph.metadata.contains_key(meta::ACTIVATION_RANGES));
    let (prepared, simulated) = kinglet_train::qat::predictions(&model, &te).unwrap();
    let samples: Vec<Vec<Vec<f32>>> = (0..prepared.len())
        .map(|i| vec![prepared.branches[0].sample(i).to_vec()])
        .collect();
    let config = PtqConfig {
        logit_clip: None,
        ..PtqConfig::default()
    };
    let (result, used) = quantize_int8_with_recorded_ranges(&graph, &samples, &config).unwrap();
    assert_eq!(used, 3);
    let ranges = QatState::ranges_of(&model).unwrap();
    let output = result.graph.outputs[0];
    let q = result.graph.tensor(output).quant.clone().unwrap();
    let (lo, hi) = ranges["output"];
    assert_eq!(
        (q.scale[0], q.zero_point[0]),
        kinglet_compress::params::activation_params(lo, hi)
    );
    // The int8 graph's predictions against burn's fake-quantised forward pass.
    let mut interp = Interpreter::new(&result.graph).unwrap();
    let (scale, zp) = {
        let t = result.graph.tensor(result.graph.inputs[0]);
        let p = t.quant.as_ref().unwrap();
        (p.scale[0], p.zero_point[0])
    };
    let mut agree = 0;
    for (i, sample) in samples.iter().enumerate() {
        let x: Vec<i8> = sample[0]
            .iter()
            .map(|v| ((v / scale).round() as i32 + zp).clamp(-128, 127) as i8)
            .collect();
        interp.set_input(0, &x).unwrap();
        interp.invoke().unwrap();
        let out = interp.output::<i8>(0).unwrap();
        let best = (0..out.len())
            .max_by_key(|&k| (out[k], -(k as i32)))
            .unwrap();
        agree += usize::from(best as u32 == simulated[i]);
    }
    // Integer requantisation may round an occasional near-tie differently.
    assert!(agree >= samples.len() - 2, "{agree} of {}", samples.len());
    ranges.into_iter().collect()
}

#[test]
fn cli_trains_with_qat_and_quantises_with_recorded_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (float, qat, int8) = (p("f.kgl"), p("q.kgl"), p("q.tflite"));
    let train_data = fixture("train");
    let o = kinglet(&[
        "train",
        "--arch",
        "mnist-cnn",
        "--data",
        &train_data,
        "--no-val",
        "--epochs",
        "2",
        "--out",
        &float,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = kinglet(&[
        "train",
        "--init",
        &float,
        "--qat",
        "--data",
        &train_data,
        "--no-val",
        "--epochs",
        "1",
        "--out",
        &qat,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 activation ranges"), "{}", text(&o));
    let o = kinglet(&[
        "quantize",
        "--model",
        &qat,
        "--data",
        &train_data,
        "--scheme",
        "int8",
        "--out",
        &int8,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 activation ranges from quantisation-aware training"));
    // A float model has no ranges to use.
    let o = kinglet(&[
        "quantize",
        "--model",
        &float,
        "--data",
        &train_data,
        "--ranges",
        "recorded",
        "--out",
        &int8,
    ]);
    assert!(!o.status.success() && text(&o).contains("no activation ranges"));
    // --init needs --qat.
    let o = kinglet(&[
        "train",
        "--init",
        &float,
        "--data",
        &train_data,
        "--out",
        &qat,
    ]);
    assert!(!o.status.success());
}
