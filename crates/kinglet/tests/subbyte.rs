//! Sub-byte and mixed-precision weights end to end on the UCI-HAR fixture: quantisation-aware
//! training at 4 and 2 bits predicts what the deployed packed-weight graph predicts (the
//! learned clipping reaches the quantiser), and the CLI's schemes, per-layer widths, budget
//! search and its errors.

use std::path::Path;

mod common;
use common::{har, kinglet, run_ok, text, train};

use kinglet_compress::{PtqConfig, quantize_int8_with_recorded_ranges};
use kinglet_data::spec::{DataSpec, LoadOptions, load};
use kinglet_graph::{DType, Interpreter, meta};
use kinglet_train::qat::{QatOptions, WeightQuant, train_qat};
use kinglet_train::{Silent, TrainedModel, lower};

fn split(name: &str) -> String {
    format!("{}:{name}", har())
}

/// Weight types of the weighted layers of a `.tflite`, in op order (from `inspect --json`).
fn weight_types(model: &str) -> Vec<String> {
    let o = kinglet(&["inspect", model, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| {
            matches!(
                op["op"].as_str(),
                Some("CONV_2D" | "DEPTHWISE_CONV_2D" | "FULLY_CONNECTED")
            )
        })
        .map(|op| op["inputs"][1]["dtype"].as_str().unwrap().to_owned())
        .collect()
}

/// Training starts learned clipping where post-training quantisation's search ends (the rule
/// is restated in kinglet-train, which sits before kinglet-compress in the crate chain).
#[test]
fn qat_starts_from_the_clipping_ptq_searches() {
    for bits in [4, 2] {
        for seed in 0..50u32 {
            let w: Vec<f32> = (0..24)
                .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0).powi(3))
                .collect();
            let ratio = kinglet_train::qat::mse_clip_ratio(&w, bits);
            let max_abs = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let qmax = kinglet_compress::subbyte::weight_qmax(bits) as f32;
            let scale = kinglet_compress::subbyte::sub_byte_scales(&w, &[1, 24], 0, bits)[0];
            assert_eq!(ratio * max_abs / qmax, scale, "bits {bits} seed {seed}");
        }
    }
}

#[test]
fn sub_byte_qat_predicts_what_the_packed_graph_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let float_path = dir.path().join("f.kgl");
    train("little0", &split("train"), float_path.to_str().unwrap());
    let float = TrainedModel::load(&float_path).unwrap();
    let data = |s: &str| {
        load(
            &DataSpec::parse(&split(s)).unwrap(),
            &LoadOptions::default(),
        )
        .unwrap()
    };
    let (tr, te) = (data("train"), data("test"));
    for bits in [vec![4], vec![2], vec![8, 4, 2, 4]] {
        let options = QatOptions {
            seed: 3,
            epochs: 2,
            weight_bits: bits.clone(),
            ..Default::default()
        };
        let model = train_qat(
            &float.architecture,
            Some(&float),
            &tr,
            None,
            &options,
            &mut Silent,
        )
        .unwrap()
        .model;
        let widths = if bits.len() == 1 {
            vec![bits[0]; 4]
        } else {
            bits.clone()
        };
        let clips = WeightQuant::clips_of(&model).unwrap();
        let sub_byte = widths.iter().filter(|b| **b < 8).count();
        assert_eq!(clips.len(), sub_byte, "{bits:?}: {clips:?}");
        let graph = lower(&model).unwrap();
        assert!(graph.metadata.contains_key(meta::WEIGHT_CLIPS));
        let config = PtqConfig {
            logit_clip: None,
            weight_bits: widths.clone(),
            ..PtqConfig::default()
        };
        let (samples, _) = kinglet_train::graph_inputs(&model, &te).unwrap();
        let (result, _) = quantize_int8_with_recorded_ranges(&graph, &samples, &config).unwrap();
        let packed: Vec<u32> = kinglet_compress::subbyte::layer_bits(&result.graph);
        assert_eq!(packed, widths);
        // The learned clipping, not the searched one, set the scales.
        for (name, (b, ratios)) in &clips {
            let t = result
                .graph
                .tensors
                .iter()
                .find(|t| &t.name == name)
                .unwrap();
            assert_eq!(t.dtype, DType::signed_weights(*b).unwrap());
            let float_w = graph.tensors.iter().find(|t| &t.name == name).unwrap();
            let axis = if name.contains("depthwise") { 3 } else { 0 };
            let expected = kinglet_compress::subbyte::clipped_scales(
                &float_w.data_f32().unwrap(),
                &float_w.shape,
                axis,
                *b,
                ratios,
            );
            assert_eq!(t.quant.as_ref().unwrap().scale, expected, "{name}");
        }
        let (_, simulated) = kinglet_train::qat::predictions(&model, &te).unwrap();
        let mut interp = Interpreter::new(&result.graph).unwrap();
        let mut agree = 0;
        for (sample, want) in samples.iter().zip(&simulated) {
            interp.set_input_real(0, &sample[0]).unwrap();
            interp.invoke().unwrap();
            let out = interp.output_f32(0).unwrap();
            let best = (0..out.len())
                .max_by(|&a, &b| out[a].total_cmp(&out[b]).then(b.cmp(&a)))
                .unwrap();
            agree += usize::from(best as u32 == *want);
        }
        // Integer requantisation may round an occasional near-tie differently.
        assert!(
            agree + 3 >= samples.len(),
            "{bits:?}: {agree} of {}",
            samples.len()
        );
    }
}

#[test]
fn cli_schemes_widths_and_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let float = p("f.kgl");
    train("little0", &split("train"), &float);
    let train_data = split("train");
    let quantize = |extra: &[&str], out: &str| {
        let mut args = vec!["quantize", "--model", &float, "--data", &train_data];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out]);
        kinglet(&args)
    };
    for (scheme, dtype) in [("w4a8", "i4"), ("w2a8", "i2")] {
        let out = p(&format!("{scheme}.tflite"));
        let o = quantize(&["--scheme", scheme], &out);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(&format!("({scheme}, ")), "{}", text(&o));
        assert_eq!(weight_types(&out), vec![dtype; 4]);
        run_ok(&["eval", "--model", &out, "--data", &split("test")]);
    }
    let mixed = p("mixed.tflite");
    let o = quantize(&["--scheme", "mixed", "--bits", "8,4,2,4"], &mixed);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(weight_types(&mixed), ["i8", "i4", "i2", "i4"]);
    // Bad widths and budgets are refused, saying why.
    for (args, says) in [
        (
            vec!["--scheme", "mixed", "--bits", "8,3,8,8"],
            "bit width of 3",
        ),
        (
            vec!["--scheme", "mixed", "--bits", "8,4"],
            "2 bit widths given for a model with 4 weighted layers",
        ),
        (vec!["--scheme", "mixed", "--bits", "16"], "a16w8"),
        (
            vec!["--scheme", "w4a8", "--bits", "4"],
            "--bits applies to --scheme mixed",
        ),
        (vec!["--scheme", "mixed"], "needs --bits"),
        (
            vec!["--weight-budget", "10"],
            "the smallest, every layer at 2 bits, takes",
        ),
        (vec!["--flash-budget", "10"], "bytes (.tflite file)"),
        (vec!["--weight-budget", "3 parsecs"], "unknown unit"),
    ] {
        let o = quantize(&args, &p("bad.tflite"));
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
        assert!(!Path::new(&p("bad.tflite")).exists());
    }
    // A budget between all-2-bit and int8: widths chosen on the validation split, then QAT.
    let budgeted = p("budget.tflite");
    let o = quantize(
        &["--weight-budget", "120", "--fine-tune-epochs", "1"],
        &budgeted,
    );
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("chose --bits") && t.contains("fine-tuned 1 epoch"),
        "{t}"
    );
    assert!(Path::new(&p("budget.kgl")).exists(), "{t}");
    let o = kinglet(&["inspect", &budgeted, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["weight_bytes"].as_u64().unwrap() <= 120, "{v}");
    assert!(weight_types(&budgeted).iter().any(|t| t != "i8"));
    // train --qat --bits, then the same widths at quantisation.
    let qat = p("q.kgl");
    let o = kinglet(&[
        "train",
        "--init",
        &float,
        "--qat",
        "--bits",
        "2",
        "--data",
        &split("train"),
        "--no-val",
        "--epochs",
        "1",
        "--out",
        &qat,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("4 learned weight clippings"),
        "{}",
        text(&o)
    );
    let out = p("q.tflite");
    let o = kinglet(&[
        "quantize",
        "--model",
        &qat,
        "--data",
        &split("train"),
        "--scheme",
        "w2a8",
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = kinglet(&[
        "train",
        "--init",
        &float,
        "--qat",
        "--bits",
        "3",
        "--data",
        &split("train"),
        "--no-val",
        "--out",
        &p("bad.kgl"),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("bit width of 3"),
        "{}",
        text(&o)
    );
}
