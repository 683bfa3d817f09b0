//! Kinglet-written models using every supported op (float and int8), run by kinglet and
//! compared with the TFLite interpreter's outputs on the same models
//! (`scripts/tflite_op_zoo_goldens.py`): int8 bit for bit, float within rounding.

use std::path::PathBuf;

use kinglet_graph::{DType, Graph, Interpreter, TfliteKernels};

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

fn lcg_inputs(n: usize) -> Vec<f32> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((s >> 16) & 0xff) as f32 / 128.0 - 1.0
        })
        .collect()
}

fn golden(name: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path("goldens/op_zoo.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[name]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn run(name: &str) -> (Graph, Interpreter) {
    let bytes = std::fs::read(path(&format!("fixtures/{name}.tflite"))).unwrap();
    let g = Graph::from_tflite_bytes(&bytes).unwrap();
    let mut it = Interpreter::with_kernels(&g, TfliteKernels::Builtin).unwrap();
    it.set_input(0, &lcg_inputs(8 * 8 * 3)).unwrap();
    it.invoke().unwrap();
    (g, it)
}

#[test]
fn float_zoo_matches_tflite_within_rounding() {
    let (_, it) = run("zoo_f32");
    for (i, want) in golden("zoo_f32").iter().enumerate() {
        let got = it.output::<f32>(i).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0),
                "output {i}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn int8_zoo_matches_tflite_bit_for_bit() {
    let (g, it) = run("zoo_i8");
    let want = golden("zoo_i8");
    assert_eq!(g.tensor(g.outputs[0]).dtype, DType::I8);
    let prob: Vec<f64> = it
        .output::<i8>(0)
        .unwrap()
        .iter()
        .map(|v| *v as f64)
        .collect();
    assert_eq!(prob, want[0]);
    // Compared as f32: the JSON holds each f32 printed as a double.
    let want_logits: Vec<f32> = want[1].iter().map(|v| *v as f32).collect();
    assert_eq!(it.output::<f32>(1).unwrap(), want_logits);
    let kinds: std::collections::BTreeSet<&str> = g.ops.iter().map(|o| o.kind.name()).collect();
    assert_eq!(kinds.len(), 13, "every op kind is exercised: {kinds:?}");
}

/// Per kernel configuration, outputs of 200 consecutive LCG windows.
fn golden_windows(name: &str, kernels: TfliteKernels) -> Vec<Vec<Vec<f64>>> {
    let text = std::fs::read_to_string(path("goldens/op_zoo.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f = |x: &serde_json::Value| -> Vec<f64> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    v[name]["windows"][kernels.name()]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no windows for {kernels}"))
        .iter()
        .map(|w| w.as_array().unwrap().iter().map(f).collect())
        .collect()
}

#[test]
fn int8_zoo_matches_every_tflite_configuration_on_200_windows() {
    let bytes = std::fs::read(path("fixtures/zoo_i8.tflite")).unwrap();
    let g = Graph::from_tflite_bytes(&bytes).unwrap();
    let n = g.tensor(g.inputs[0]).elements();
    let mut report = Vec::new();
    for kernels in TfliteKernels::ALL {
        let want = golden_windows("zoo_i8", kernels);
        assert_eq!(want.len(), 200);
        let xs = lcg_inputs(n * want.len());
        let mut it = Interpreter::with_kernels(&g, kernels).unwrap();
        let mut differ = Vec::new();
        for (w, (x, expect)) in xs.chunks_exact(n).zip(&want).enumerate() {
            it.set_input(0, x).unwrap();
            it.invoke().unwrap();
            let prob: Vec<f64> = it
                .output::<i8>(0)
                .unwrap()
                .iter()
                .map(|v| *v as f64)
                .collect();
            let logits: Vec<f32> = it.output::<f32>(1).unwrap();
            let want_logits: Vec<f32> = expect[1].iter().map(|v| *v as f32).collect();
            if prob != expect[0] || logits != want_logits {
                differ.push(w);
            }
        }
        if !differ.is_empty() {
            report.push(format!("{kernels}: windows {differ:?} differ"));
        }
    }
    assert!(report.is_empty(), "{report:?}");
}

#[test]
fn float_zoo_matches_every_tflite_configuration_within_rounding() {
    let bytes = std::fs::read(path("fixtures/zoo_f32.tflite")).unwrap();
    let g = Graph::from_tflite_bytes(&bytes).unwrap();
    let n = g.tensor(g.inputs[0]).elements();
    for kernels in TfliteKernels::ALL {
        let want = golden_windows("zoo_f32", kernels);
        let xs = lcg_inputs(n * want.len());
        let mut it = Interpreter::with_kernels(&g, kernels).unwrap();
        for (w, (x, expect)) in xs.chunks_exact(n).zip(&want).enumerate() {
            it.set_input(0, x).unwrap();
            it.invoke().unwrap();
            for (i, e) in expect.iter().enumerate() {
                let got = it.output::<f32>(i).unwrap();
                for (g, e) in got.iter().zip(e) {
                    assert!(
                        (*g as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
                        "{kernels} window {w} output {i}: {got:?} vs {e:?}"
                    );
                }
            }
        }
    }
}
