//! Lowered programs, run on the host through the same kernels the firmware calls, give the
//! TFLite interpreter's outputs on the anchor models (both kernel sets).
use std::path::PathBuf;

use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, exec, lower};
use kinglet_graph::Graph;

pub fn seed_model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures")
        .join(name)
}

fn check(name: &str, expected: &[i8]) {
    let bytes = std::fs::read(seed_model(name)).expect("seed model present beside the repo");
    let graph = Graph::from_tflite_bytes(&bytes).expect("parse");
    for kernels in [KernelSet::Reference, KernelSet::CortexM4] {
        let program = lower(&graph, kernels).expect("lower");
        let out = exec::run(&program, &lcg_input(program.input_len)).expect("run");
        assert_eq!(out, expected, "{name} with {kernels:?}");
    }
}

#[test]
fn big_anchor_matches_tflite() {
    check("B_s123_1IN_int8.tflite", &[-38, -22, -32, -7, -20, -22]);
}

#[test]
fn little_anchor_matches_tflite() {
    check("S0_s3_int8.tflite", &[-44, 70]);
}

#[test]
fn legacy_uint8_model_is_refused_with_a_clear_error() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures/S0_s3.tflite");
    let graph = Graph::from_tflite_bytes(&std::fs::read(path).expect("seed model")).expect("parse");
    let err = lower(&graph, KernelSet::CortexM4)
        .expect_err("uint8 is not compiled yet")
        .to_string();
    assert!(err.contains("u8") && err.contains("int8"), "{err}");
}
