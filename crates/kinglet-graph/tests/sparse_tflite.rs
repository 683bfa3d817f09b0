//! Sparse constants in `.tflite` files: kinglet writes pruned weights in TFLite's sparse
//! format behind DENSIFY ops, reads them back, and its host executor matches the TFLite
//! interpreter on those files (goldens from `scripts/tflite_sparse_goldens.py`).
//!
//! The fixtures are the writer's output for the models built here; `KINGLET_BLESS=1 cargo
//! test -p kinglet-graph --test sparse_tflite` rewrites them after a deliberate writer change
//! (then rerun the script).

use std::path::PathBuf;

use kinglet_graph::tflite::WriteOptions;
use kinglet_graph::{
    Activation, DType, Graph, Interpreter, OpKind, QuantParams, TensorId, TfliteKernels,
};

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

/// Numerical Recipes LCG, as the goldens script.
struct Lcg(u32);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
    /// int8 weights with `zero_percent` % exact zeros.
    fn pruned_i8(&mut self, n: usize, zero_percent: u32) -> Vec<i8> {
        (0..n)
            .map(|_| {
                let keep = self.next() % 100 >= zero_percent;
                let v = (self.next() % 255) as i32 - 127;
                if keep && v != 0 { v as i8 } else { 0 }
            })
            .collect()
    }
}

/// int8 [1, 200] → FC(32, ReLU, per-channel weights, 80 % zeros) → FC(10, per-tensor, 70 %
/// zeros).
fn pruned_int8_model() -> Graph {
    let mut rng = Lcg(2024);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        &[1, 200],
        DType::I8,
        Some(QuantParams::per_tensor(0.05, -3)),
    );
    let w1 = rng.pruned_i8(32 * 200, 80);
    let s1: Vec<f32> = (0..32).map(|o| 0.002 + 0.0001 * o as f32).collect();
    let w1 = g
        .add_constant_i8(
            "fc1/weights",
            &[32, 200],
            &w1,
            Some(QuantParams::per_axis(s1.clone(), vec![0; 32], 0)),
        )
        .unwrap();
    let b1: Vec<i32> = (0..32).map(|_| (rng.next() % 2001) as i32 - 1000).collect();
    let b1 = g
        .add_constant_i32(
            "fc1/bias",
            &[32],
            &b1,
            Some(QuantParams::per_axis(
                s1.iter().map(|s| s * 0.05).collect(),
                vec![0; 32],
                0,
            )),
        )
        .unwrap();
    let h = g.add_activation(
        "h",
        &[1, 32],
        DType::I8,
        Some(QuantParams::per_tensor(0.04, -128)),
    );
    g.add_op(
        OpKind::FullyConnected {
            activation: Activation::Relu,
            keep_num_dims: false,
        },
        &[x, w1, b1],
        &[h],
    );
    let w2 = rng.pruned_i8(10 * 32, 70);
    let w2 = g
        .add_constant_i8(
            "fc2/weights",
            &[10, 32],
            &w2,
            Some(QuantParams::per_tensor(0.01, 0)),
        )
        .unwrap();
    let y = g.add_activation(
        "y",
        &[1, 10],
        DType::I8,
        Some(QuantParams::per_tensor(0.1, 5)),
    );
    g.add_op(
        OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        },
        &[h, w2],
        &[y],
    );
    g.mark_output(y);
    g
}

/// float32 [1, 64] → FC(16, 85 % zeros).
fn pruned_f32_model() -> Graph {
    let mut rng = Lcg(7);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 64], DType::F32, None);
    let w: Vec<f32> = rng
        .pruned_i8(16 * 64, 85)
        .iter()
        .map(|v| f32::from(*v) / 64.0)
        .collect();
    let w = g.add_constant_f32("fc/weights", &[16, 64], &w).unwrap();
    let y = g.add_activation("y", &[1, 16], DType::F32, None);
    g.add_op(
        OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        },
        &[x, w],
        &[y],
    );
    g.mark_output(y);
    g
}

/// Builds one of the test models.
type Build = fn() -> Graph;

const MODELS: [(&str, Build); 2] = [
    ("sparse_fc_i8", pruned_int8_model),
    ("sparse_fc_f32", pruned_f32_model),
];

fn weights(g: &Graph) -> Vec<Option<Vec<u8>>> {
    g.ops
        .iter()
        .map(|o| g.tensor(o.inputs[1]).data.clone())
        .collect()
}

#[test]
fn fixtures_are_the_writers_sparse_output_and_smaller_than_dense() {
    for (name, build) in MODELS {
        let g = build();
        let sparse = g.to_tflite_bytes().unwrap();
        let dense = g
            .to_tflite_bytes_with(&WriteOptions {
                sparse_weights: false,
            })
            .unwrap();
        assert!(
            sparse.len() * 10 < dense.len() * 8,
            "{name}: sparse {} bytes, dense {}",
            sparse.len(),
            dense.len()
        );
        let path = dir("fixtures").join(format!("{name}.tflite"));
        if std::env::var_os("KINGLET_BLESS").is_some() {
            std::fs::write(&path, &sparse).unwrap();
            std::fs::write(dir("fixtures").join(format!("{name}_dense.tflite")), &dense).unwrap();
        }
        let fixture = std::fs::read(&path).unwrap();
        assert_eq!(
            fixture, sparse,
            "{name}: the writer's output changed (see module doc)"
        );
        // Reading folds DENSIFY back into dense constants: the same graph as written.
        for bytes in [&sparse, &dense] {
            let back = Graph::from_tflite_bytes(bytes).unwrap();
            assert_eq!(back.ops.len(), g.ops.len(), "{name}");
            assert_eq!(weights(&back), weights(&g), "{name}");
        }
    }
}

#[test]
fn unpruned_weights_stay_dense() {
    let mut g = pruned_f32_model();
    let w = g.ops[0].inputs[1];
    let t = g.tensor_mut(w);
    for chunk in t.data.as_mut().unwrap().chunks_exact_mut(4) {
        chunk.copy_from_slice(&0.5f32.to_le_bytes());
    }
    let bytes = g.to_tflite_bytes().unwrap();
    let dense = g
        .to_tflite_bytes_with(&WriteOptions {
            sparse_weights: false,
        })
        .unwrap();
    assert_eq!(bytes, dense);
}

/// The goldens' LCG input stream (glibc-style, as the other kinglet-graph goldens).
fn lcg_bytes(n: usize) -> Vec<u8> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((s >> 16) & 0xFF) as u8
        })
        .collect()
}

fn input_of(id: TensorId, g: &Graph, window: &[u8]) -> Vec<u8> {
    match g.tensor(id).dtype {
        DType::I8 => window.to_vec(),
        _ => window
            .iter()
            .flat_map(|b| (f32::from(*b) / 128.0 - 1.0).to_le_bytes())
            .collect(),
    }
}

#[test]
fn host_executor_matches_the_tflite_interpreter_on_sparse_files() {
    let text = std::fs::read_to_string(dir("goldens").join("sparse_tflite.json")).unwrap();
    let goldens: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (name, _) in MODELS {
        let g = kinglet_graph::tflite::read_tflite_file(
            &dir("fixtures").join(format!("{name}.tflite")),
        )
        .unwrap();
        let entry = &goldens[name];
        assert_eq!(
            entry["sparse_equals_dense"],
            serde_json::Value::Bool(true),
            "{name}: the interpreter gave the sparse and dense files different outputs"
        );
        let in_len = g.tensor(g.inputs[0]).elements();
        let windows = entry["windows"]["reference"].as_array().unwrap().len();
        let stream = lcg_bytes(in_len * windows);
        // int8: the reference kernels (TFLite Micro's arithmetic, what the firmware runs).
        // The XNNPACK delegate refuses int8 FULLY_CONNECTED behind DENSIFY, and the optimized
        // builtin kernels differ from kinglet's `Builtin` by one LSB on rare requantisation
        // ties (1 of 50 LCG windows of this model, on the dense file just as on the sparse
        // one), so they are not compared here.
        let configs: &[(&str, TfliteKernels)] = if name.ends_with("i8") {
            &[("reference", TfliteKernels::Reference)]
        } else {
            &[
                ("reference", TfliteKernels::Reference),
                ("builtin", TfliteKernels::Builtin),
                ("default", TfliteKernels::Default),
            ]
        };
        for &(config, kernels) in configs {
            let expected = entry["windows"][config].as_array().unwrap();
            let mut it = Interpreter::with_kernels(&g, kernels).unwrap();
            for (w, want) in expected.iter().enumerate() {
                let window = &stream[w * in_len..(w + 1) * in_len];
                it.set_input_bytes(0, &input_of(g.inputs[0], &g, window))
                    .unwrap();
                it.invoke().unwrap();
                let want: Vec<f64> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                if g.tensor(g.outputs[0]).dtype == DType::I8 {
                    let got: Vec<f64> = it
                        .output::<i8>(0)
                        .unwrap()
                        .iter()
                        .map(|v| f64::from(*v))
                        .collect();
                    assert_eq!(got, want, "{name} {config} window {w}");
                } else {
                    let got = it.output::<f32>(0).unwrap();
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1.0),
                            "{name} {config} window {w}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn corrupt_sparse_files_are_errors_not_panics() {
    let bytes = std::fs::read(dir("fixtures").join("sparse_fc_i8.tflite")).unwrap();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            // Any outcome but a panic: the flatbuffer verifier and the sparse walk check all.
            let _ = Graph::from_tflite_bytes(&bad);
        }
    }
    for len in (0..bytes.len()).step_by(97) {
        assert!(Graph::from_tflite_bytes(&bytes[..len]).is_err());
    }
}
