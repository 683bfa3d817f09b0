//! TFLite's 16×8 scheme (`a16w8`) against the TFLite interpreter: random single-op int16
//! models (every op kinglet's 16×8 path runs) and kinglet's own a16w8 models must give exactly
//! the outputs of ai-edge-litert's reference kernels. Goldens from `scripts/a16w8_goldens.py`
//! (versions and seed in each bundle's header).

mod common;
#[path = "common/a16w8_zoo.rs"]
mod zoo;

use std::collections::BTreeMap;

use common::{read_diff_bundle, run_case};
use zoo::zoo_a16w8;

fn check_bundle(name: &str, min_cases: usize) {
    let (header, cases) = read_diff_bundle(name);
    assert!(cases.len() >= min_cases, "{name}: {} cases", cases.len());
    let mut failures = Vec::new();
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        *families
            .entry(case.info["family"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Err(e) = run_case(&case.model, &case.samples) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{name} ({header}): {} of {} cases differ from TFLite:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{name}: {} cases match TFLite, by op: {families:?}",
        cases.len()
    );
}

#[test]
fn int16_kernels_match_the_tflite_reference_kernels() {
    check_bundle("a16w8_ops.kgd.gz", 100);
}

#[test]
fn kinglets_own_a16w8_models_match_tflite() {
    check_bundle("a16w8_models.kgd.gz", 1);
}

/// The zoo model in `a16w8_models.kgd.gz` is the one today's `quantize_a16w8` writes for the
/// committed float fixture: a change to the scheme must regenerate the goldens.
#[test]
fn committed_model_is_what_quantize_a16w8_makes() {
    let q = zoo_a16w8().expect("zoo quantises");
    let (_, cases) = read_diff_bundle("a16w8_models.kgd.gz");
    let stored = cases
        .iter()
        .find(|c| c.info["file"] == "zoo_a16w8.tflite")
        .expect("zoo_a16w8 case");
    assert_eq!(
        q.to_tflite_bytes().expect("writes"),
        stored.model,
        "quantize_a16w8(zoo_f32) changed; regenerate the goldens (see the README)"
    );
}

#[test]
fn unsupported_input_is_refused_with_the_op_named() {
    // An int16 conv whose output was left int8: the interpreter names the op.
    let mut q = zoo_a16w8().expect("zoo quantises");
    let conv = q
        .ops
        .iter()
        .position(|o| o.kind.name() == "CONV_2D")
        .expect("zoo has a conv");
    let out = q.ops[conv].outputs[0];
    q.tensor_mut(out).dtype = kinglet_graph::DType::I8;
    let err = kinglet_graph::Interpreter::new(&q)
        .err()
        .expect("mixed widths are refused")
        .to_string();
    assert!(err.contains("CONV_2D"), "{err}");
}
