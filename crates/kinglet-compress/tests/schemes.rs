//! Float16 scheme against TFLite: kinglet's float16 version of the op-zoo model is
//! byte-identical to the committed fixture that `scripts/schemes_float16_golden.py` checked
//! and ran in ai_edge_litert, and kinglet's interpreter (folding the f16 DEQUANTIZE ops at
//! load) reproduces the interpreter's outputs.

use std::path::PathBuf;

use kinglet_compress::{DynamicConfig, quantize_dynamic, quantize_float16};
use kinglet_graph::passes::{PassOptions, fold_constants};
use kinglet_graph::{DType, Graph, Interpreter};

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn float16_zoo_matches_tflite() {
    let f32_graph =
        Graph::from_tflite_bytes(&read("../kinglet-graph/tests/fixtures/zoo_f32.tflite")).unwrap();
    let half = quantize_float16(&f32_graph).unwrap();
    let committed = read("tests/fixtures/zoo_f16.tflite");
    assert_eq!(
        half.to_tflite_bytes().unwrap(),
        committed,
        "quantize_float16 no longer writes the committed zoo_f16.tflite; regenerate it and the golden"
    );
    assert!(committed.len() < read("../kinglet-graph/tests/fixtures/zoo_f32.tflite").len());
    let back = Graph::from_tflite_bytes(&committed).unwrap();
    let f16_constants = back
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::F16 && t.is_constant())
        .count();
    let golden: serde_json::Value =
        serde_json::from_slice(&read("tests/goldens/schemes_zoo_f16.json")).unwrap();
    assert_eq!(
        golden["f16_constants_checked"].as_u64(),
        Some(f16_constants as u64)
    );
    let (runnable, _) = fold_constants(&back, PassOptions::default()).unwrap();
    assert!(runnable.tensors.iter().all(|t| t.dtype == DType::F32));
    let mut interp = Interpreter::new(&runnable).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let mut worst = 0f32;
    let cases = golden["inputs"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for (input, outputs) in cases.iter().zip(golden["outputs"].as_array().unwrap()) {
        interp.set_input(0, &floats(input)).unwrap();
        interp.invoke().unwrap();
        for (k, expected) in outputs.as_array().unwrap().iter().enumerate() {
            let expected = floats(expected);
            let got = interp.output_f32(k).unwrap();
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                worst = worst.max((g - e).abs() / e.abs().max(1.0));
            }
        }
    }
    // Float kernels sum in different orders (XNNPACK vs reference): a few ULPs.
    assert!(worst < 1e-5, "max relative difference {worst}");
    eprintln!("float16 zoo: max relative difference vs ai_edge_litert {worst:e}");
}

/// Dynamic range: kinglet's version of the op zoo (every weight quantised, so hybrid conv,
/// depthwise and fully connected all run) is byte-identical to the committed fixture, and
/// kinglet's hybrid kernels reproduce TFLite's reference hybrid kernels exactly (the logits,
/// which pass through conv, depthwise and both fully connected hybrid ops, bit for bit).
#[test]
fn dynamic_zoo_matches_tflite_reference_kernels() {
    let f32_graph =
        Graph::from_tflite_bytes(&read("../kinglet-graph/tests/fixtures/zoo_f32.tflite")).unwrap();
    let config = DynamicConfig { min_elements: 0 };
    let (dynamic, quantised) = quantize_dynamic(&f32_graph, &config).unwrap();
    assert_eq!(
        quantised, 4,
        "conv, depthwise and both fully connected weights"
    );
    let committed = read("tests/fixtures/zoo_dynamic.tflite");
    assert_eq!(
        dynamic.to_tflite_bytes().unwrap(),
        committed,
        "quantize_dynamic no longer writes the committed zoo_dynamic.tflite; regenerate it and the golden"
    );
    let back = Graph::from_tflite_bytes(&committed).unwrap();
    let mut interp = Interpreter::new(&back).unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&read("tests/goldens/schemes_zoo_dynamic.json")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let inputs = golden["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4);
    let (mut vs_reference, mut vs_builtin, mut vs_default, mut vs_float) = (0f32, 0f32, 0f32, 0f32);
    let mut float_interp = Interpreter::new(&f32_graph).unwrap();
    for (case, input) in inputs.iter().enumerate() {
        interp.set_input(0, &floats(input)).unwrap();
        interp.invoke().unwrap();
        float_interp.set_input(0, &floats(input)).unwrap();
        float_interp.invoke().unwrap();
        for k in 0..2 {
            let got = interp.output_f32(k).unwrap();
            let diff = |key: &str| -> f32 {
                let e = floats(&golden[key][case][k]);
                assert_eq!(e.len(), got.len());
                got.iter()
                    .zip(&e)
                    .fold(0f32, |m, (g, e)| m.max((g - e).abs()))
            };
            if k == 1 {
                // The logits come straight from the hybrid kernels (and float ADDs): exact.
                assert_eq!(
                    diff("reference"),
                    0.0,
                    "case {case}: logits differ from TFLite"
                );
            }
            vs_reference = vs_reference.max(diff("reference"));
            vs_builtin = vs_builtin.max(diff("builtin"));
            vs_default = vs_default.max(diff("default"));
            let f = float_interp.output_f32(k).unwrap();
            vs_float = vs_float.max(
                got.iter()
                    .zip(&f)
                    .fold(0f32, |m, (g, e)| m.max((g - e).abs())),
            );
        }
    }
    eprintln!(
        "dynamic zoo: max abs diff vs TFLite reference {vs_reference:e}, builtin {vs_builtin:e}, \
         XNNPACK {vs_default:e}; vs the float model {vs_float:e}"
    );
    // The softmax probabilities may differ by an ulp (kinglet's expf is not libm's).
    assert!(
        vs_reference < 3e-8,
        "vs TFLite reference kernels: {vs_reference}"
    );
    assert!(vs_builtin < 1e-6, "vs TFLite builtin kernels: {vs_builtin}");
    // XNNPACK quantises hybrid inputs its own way; the result still tracks the float model.
    assert!(vs_default < 0.05, "vs XNNPACK: {vs_default}");
    assert!(vs_float < 0.1, "dynamic vs float model: {vs_float}");
}
