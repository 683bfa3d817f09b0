//! The seed's uint8 models on real UCI-HAR windows, bit for bit against the TFLite
//! interpreter's outputs (goldens from `scripts/tflite_seed_goldens.py`) in each of its three
//! kernel configurations.
//! CI runs the first 200 windows, whose seed-scaled inputs are committed; the full 2,947-window
//! check needs the CSVs: `cargo run --release -p kinglet-graph --example seed_uci_check`.

use std::path::PathBuf;

use kinglet_graph::eval::InputLayout;
use kinglet_graph::{Graph, Interpreter, TfliteKernels};

const MODELS: [&str; 8] = [
    "B_s123_3IN_91",
    "B_s123_1IN_91",
    "S0_s3",
    "S1_s3",
    "S2_s3",
    "S3_s3",
    "S4_s3",
    "S5_s3",
];
const WINDOWS: usize = 200;
const STEPS: usize = 128;

fn file(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Golden file of a kernel configuration (`scripts/tflite_seed_goldens.py`).
fn golden_name(name: &str, kernels: TfliteKernels) -> String {
    let suffix = match kernels {
        TfliteKernels::Default => ".xnnpack",
        TfliteKernels::Builtin => "",
        TfliteKernels::Reference => ".ref",
    };
    format!("goldens/seed_uci_{name}{suffix}.u8")
}

fn check_with(graph: &Graph, name: &str, inputs: &[u8], kernels: TfliteKernels) -> usize {
    let layout = InputLayout::for_graph(graph, name).unwrap();
    let mut it = Interpreter::with_kernels(graph, kernels).unwrap();
    let golden = file(&golden_name(name, kernels));
    let mut differ = 0;
    let mut width = 0;
    for (w, window) in inputs.chunks_exact(STEPS * 9).enumerate() {
        layout.feed(&mut it, window, 9).unwrap();
        it.invoke().unwrap();
        let out = it.output_bytes(0).unwrap();
        width = out.len();
        differ += usize::from(out != &golden[w * width..(w + 1) * width]);
    }
    assert_eq!(golden.len(), 2947 * width, "{name}: golden size");
    differ
}

fn check(graph: &Graph, name: &str, inputs: &[u8]) -> usize {
    check_with(graph, name, inputs, TfliteKernels::Builtin)
}

#[test]
fn seed_models_match_every_tflite_configuration_on_the_first_200_test_windows() {
    let inputs = file(&format!("goldens/seed_uci_inputs_{WINDOWS}.u8"));
    for name in MODELS {
        let graph = Graph::from_tflite_bytes(&file(&format!("fixtures/{name}.tflite"))).unwrap();
        for kernels in TfliteKernels::ALL {
            assert_eq!(
                check_with(&graph, name, &inputs, kernels),
                0,
                "{name}: windows differing from TFLite ({kernels})"
            );
        }
    }
}

#[test]
fn seed_models_match_tflite_on_the_first_200_test_windows() {
    let inputs = file(&format!("goldens/seed_uci_inputs_{WINDOWS}.u8"));
    assert_eq!(inputs.len(), WINDOWS * STEPS * 9);
    for name in MODELS {
        let graph = Graph::from_tflite_bytes(&file(&format!("fixtures/{name}.tflite"))).unwrap();
        assert_eq!(
            check(&graph, name, &inputs),
            0,
            "{name}: windows differing from TFLite"
        );
    }
}

#[test]
fn re_exported_seed_models_give_identical_outputs() {
    let inputs = file(&format!("goldens/seed_uci_inputs_{WINDOWS}.u8"));
    for name in ["B_s123_3IN_91", "S3_s3"] {
        let graph = Graph::from_tflite_bytes(&file(&format!("fixtures/{name}.tflite"))).unwrap();
        let again = Graph::from_tflite_bytes(&graph.to_tflite_bytes().unwrap()).unwrap();
        assert_eq!(check(&again, name, &inputs), 0, "{name} after export");
    }
}
