//! The random-model differential suite: ≥ 1,000 small models generated and converted by
//! TensorFlow (int8, float-I/O int8 and float32), with inputs and the TFLite reference
//! interpreter's outputs, replayed through kinglet-graph's `.tflite` reader and
//! interpreter. int8 outputs must be bit-identical; float outputs agree to a tight
//! tolerance. Regenerate with `python3 scripts/diff_generate.py` (format in that script).

mod common;

use std::collections::BTreeMap;

#[test]
fn random_models_match_tflite_interpreter() {
    // KINGLET_RANDOM_BUNDLE points at another bundle (e.g. a partial regeneration under
    // /tmp); the committed one must hold at least 1,000 cases.
    let (header, cases) = match std::env::var("KINGLET_RANDOM_BUNDLE") {
        Ok(path) => common::read_diff_bundle(&path),
        Err(_) => {
            let (h, c) = common::read_diff_bundle("random_models.kgd.gz");
            assert!(c.len() >= 1000, "bundle has only {} cases", c.len());
            (h, c)
        }
    };
    let mut per_family: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut per_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let family = case.info["family"].as_str().unwrap_or("?").to_owned();
        let ops: Vec<String> = case.info["ops"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let result = common::run_case(&case.model, &case.samples);
        let failed = usize::from(result.is_err());
        let e = per_family.entry(family).or_default();
        e.0 += 1;
        e.1 += failed;
        let mut unique = ops.clone();
        unique.sort();
        unique.dedup();
        for op in unique {
            let e = per_op.entry(op).or_default();
            e.0 += 1;
            e.1 += failed;
        }
        if let Err(msg) = result {
            failures.push(format!("{} {:?}: {msg}", case.name, ops));
        }
    }
    let table = |m: &BTreeMap<String, (usize, usize)>| {
        m.iter()
            .map(|(k, (n, bad))| format!("  {k:<20} {bad:>4} mismatching of {n:>4}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    eprintln!(
        "random models: {} cases (tensorflow {}, ai-edge-litert {}), {} mismatching\nby family:\n{}\nby op (case contains op):\n{}",
        cases.len(),
        header["tensorflow"],
        header["ai_edge_litert"],
        failures.len(),
        table(&per_family),
        table(&per_op)
    );
    assert!(
        failures.is_empty(),
        "{} cases mismatch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
