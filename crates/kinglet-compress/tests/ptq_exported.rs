//! Models quantised by kinglet (int8, and 4/2-bit weights), exported as `.tflite` and run in
//! the TFLite interpreter
//! (`scripts/diff_ptq_export.py` records those outputs): kinglet's interpreter must give
//! identical outputs on the same files, and today's PTQ must still produce exactly the
//! quantisation stored in them (so the goldens describe the current code).

mod common;

use std::collections::BTreeMap;

use kinglet_compress::{CalibrationSample, quantize_int8};
use kinglet_graph::Graph;

#[test]
fn exported_models_match_tflite_and_current_ptq() {
    let (_, reference) = common::read_ptq_bundle("ptq_reference.kgd.gz");
    let reference: BTreeMap<&str, &common::PtqCase> =
        reference.iter().map(|c| (c.name.as_str(), c)).collect();
    let configs: BTreeMap<&str, kinglet_compress::PtqConfig> = common::export_configs()
        .into_iter()
        .map(|(name, config, _)| (name, config))
        .collect();
    let (_, cases) = common::read_diff_bundle("ptq_exported.kgd.gz");
    assert!(cases.len() >= 40, "only {} exported cases", cases.len());
    for (config, least) in [("w4a8", 20), ("mixed", 10)] {
        let n = cases
            .iter()
            .filter(|c| c.info["config"].as_str() == Some(config))
            .count();
        assert!(n >= least, "only {n} exported {config} cases");
    }
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = common::run_case(&case.model, &case.samples) {
            failures.push(format!("{}: kinglet vs TFLite outputs: {e}", case.name));
        }
        let source = case.info["case"].as_str().and_then(|n| reference.get(n));
        let config = case.info["config"].as_str().and_then(|n| configs.get(n));
        let (Some(source), Some(config)) = (source, config) else {
            failures.push(format!(
                "{}: unknown reference case or config {}",
                case.name, case.info
            ));
            continue;
        };
        let requantised = (|| -> Result<Vec<String>, String> {
            let float = Graph::from_tflite_bytes(&source.float_model).map_err(|e| e.to_string())?;
            let samples: Vec<CalibrationSample> = source
                .calibration
                .iter()
                .map(|s| s.iter().map(|a| a.f32s()).collect())
                .collect();
            let config = kinglet_compress::PtqConfig {
                weight_bits: common::sub_byte_bits(
                    case.info["config"].as_str().unwrap_or(""),
                    &float,
                ),
                ..config.clone()
            };
            let ours = quantize_int8(&float, &samples, &config).map_err(|e| e.to_string())?;
            let stored = Graph::from_tflite_bytes(&case.model).map_err(|e| e.to_string())?;
            Ok(common::compare_graphs(&ours.graph, &stored, 0.0))
        })();
        match requantised {
            Ok(p) if p.is_empty() => {}
            Ok(p) => failures.push(format!(
                "{}: PTQ no longer produces the golden model:\n    {}",
                case.name,
                p.join("\n    ")
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} exported models fail (regenerate with scripts/diff_ptq_export.py if PTQ changed on purpose):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
