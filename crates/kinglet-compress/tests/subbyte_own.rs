//! kinglet's own sub-byte and 16×8 models (kinglet-lite and big3 trained on HAPT, quantised to
//! w4a8, two mixed 8/4/2-bit assignments and a16w8) against the TFLite interpreter: the committed files run in
//! ai_edge_litert with its reference, optimized builtin and default (XNNPACK) kernels
//! (`scripts/subbyte_own_goldens.py` records the outputs), and kinglet's interpreter in the
//! matching configuration must give the same int8 outputs bit for bit.

use std::path::PathBuf;

use kinglet_graph::{DType, Graph, Interpreter, TfliteKernels};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

/// The seed README's byte generator (one stream across windows).
fn lcg_bytes(n: usize) -> Vec<u8> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            ((s >> 16) & 0xFF) as u8
        })
        .collect()
}

#[test]
fn own_sub_byte_models_match_tflite_in_every_kernel_configuration() {
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("goldens/subbyte_own.json")).unwrap())
            .unwrap();
    let windows = golden["header"]["windows"].as_u64().unwrap() as usize;
    let models = golden["models"].as_object().unwrap();
    assert!(
        models.len() >= 4,
        "only {} models in the golden",
        models.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, expected) in models {
        let bytes = std::fs::read(fixture(&format!("fixtures/own/{file}"))).unwrap();
        let graph = Graph::from_tflite_bytes(&bytes).unwrap();
        assert!(
            graph
                .tensors
                .iter()
                .any(|t| matches!(t.dtype, DType::I4 | DType::I2 | DType::I16)),
            "{file} has neither sub-byte weights nor int16 activations"
        );
        let sizes: Vec<usize> = graph
            .inputs
            .iter()
            .map(|id| graph.tensor(*id).byte_size())
            .collect();
        let per_window: usize = sizes.iter().sum();
        let stream = lcg_bytes(per_window * windows);
        for kernels in TfliteKernels::ALL {
            let label = kernels.name();
            let rows = expected[label].as_array().unwrap();
            assert_eq!(rows.len(), windows);
            let mut interp = Interpreter::with_kernels(&graph, kernels).unwrap();
            for (w, row) in rows.iter().enumerate() {
                let mut at = w * per_window;
                for (i, size) in sizes.iter().enumerate() {
                    interp.set_input_bytes(i, &stream[at..at + size]).unwrap();
                    at += size;
                }
                interp.invoke().unwrap();
                let out = graph.tensor(graph.outputs[0]).dtype;
                let bytes = interp.output_bytes(0).unwrap();
                let got: Vec<i64> = match out {
                    DType::I16 => bytes
                        .chunks_exact(2)
                        .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                        .collect(),
                    _ => bytes.iter().map(|b| i64::from(*b as i8)).collect(),
                };
                let want: Vec<i64> = row
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect();
                checked += 1;
                if got != want {
                    failures.push(format!("{file} {label} window {w}: {got:?} != {want:?}"));
                }
            }
        }
    }
    assert!(checked >= 5 * 3 * windows);
    assert!(
        failures.is_empty(),
        "{} of {checked} windows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
