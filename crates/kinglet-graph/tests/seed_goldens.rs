//! The seed's uint8 models on real UCI-HAR windows, bit for bit against the TFLite
//! interpreter's outputs (goldens from `scripts/tflite_seed_goldens.py`, builtin kernels).
//! CI runs the first 200 windows, whose seed-scaled inputs are committed; the full 2,947-window
//! check needs the CSVs: `cargo run --release -p kinglet-graph --example seed_uci_check`.

use std::path::PathBuf;

use kinglet_graph::Graph;
use kinglet_graph::eval::{InputLayout, evaluate};

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

fn check(graph: &Graph, name: &str, inputs: &[u8]) -> usize {
    let layout = InputLayout::for_graph(graph, name).unwrap();
    let out = evaluate(graph, &layout, inputs.chunks_exact(STEPS * 9), 9).unwrap();
    let golden = file(&format!("goldens/seed_uci_{name}.u8"));
    let width = out.raw[0].len();
    assert_eq!(golden.len(), 2947 * width, "{name}: golden size");
    out.raw
        .iter()
        .zip(golden.chunks_exact(width))
        .filter(|(a, b)| a.as_slice() != *b)
        .count()
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
