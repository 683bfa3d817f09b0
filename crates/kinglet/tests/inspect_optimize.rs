//! `kinglet inspect --optimize`: before/after summaries and per-pass reports, text and JSON,
//! and the optimised model written with `--write` reads back and runs.

use std::path::PathBuf;

mod common;
use common::{kinglet, text};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn optimize_json_has_before_after_and_every_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opt.tflite");
    let o = kinglet(&[
        "inspect",
        &fixture("cnn_bn_f16.tflite"),
        "--optimize",
        "--json",
        "--write",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["before"]["ops"].as_array().unwrap().len(), 7);
    assert_eq!(v["after"]["ops"].as_array().unwrap().len(), 3);
    assert!(
        v["before_not_executable"]
            .as_str()
            .unwrap()
            .contains("DEQUANTIZE")
    );
    let passes = v["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 5);
    assert_eq!(passes[0]["pass"], "fold-constants");
    assert_eq!(passes[0]["before"]["ops"], 7);
    assert_eq!(passes[0]["after"]["ops"], 4);
    let g = kinglet_graph::tflite::read_tflite_file(&out).unwrap();
    assert_eq!(g.ops.len(), 3);
    kinglet_graph::Interpreter::new(&g).unwrap();
}

#[test]
fn optimize_text_shows_both_models_and_a_pass_table() {
    let o = kinglet(&[
        "inspect",
        &fixture("S0_s3.tflite"),
        "--passes",
        "--pipeline",
        "simplify-reshapes,remove-dead-ops",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("== before") && s.contains("== after graph passes"),
        "{s}"
    );
    assert!(
        s.contains("total: 14 ops") && s.contains("total: 8 ops"),
        "{s}"
    );
    assert!(
        s.contains("simplify-reshapes") && s.contains("14 → 8"),
        "{s}"
    );
    let bad = kinglet(&[
        "inspect",
        &fixture("S0_s3.tflite"),
        "--optimize",
        "--pipeline",
        "nope",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown pass 'nope'"), "{}", text(&bad));
}
