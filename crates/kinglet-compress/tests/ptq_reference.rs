//! kinglet's int8 post-training quantisation against the TensorFlow Lite converter: each
//! float model in the golden bundle is quantised by kinglet with the same calibration
//! samples the converter was given, and every tensor's type, scales, zero points and
//! constant data must agree (scales within float rounding, since kinglet's float kernels
//! may round intermediate values differently). Regenerate with
//! `python3 scripts/diff_ptq_reference.py`.

mod common;

use kinglet_compress::{CalibrationSample, PtqConfig, quantize_int8};
use kinglet_graph::Graph;

#[test]
fn ptq_matches_tflite_converter() {
    let (header, cases) = common::read_ptq_bundle("ptq_reference.kgd.gz");
    assert!(cases.len() >= 30, "bundle has only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = (|| -> Result<Vec<String>, String> {
            let float = Graph::from_tflite_bytes(&case.float_model)
                .map_err(|e| format!("reading float model: {e}"))?;
            let theirs = Graph::from_tflite_bytes(&case.converter_model)
                .map_err(|e| format!("reading converter model: {e}"))?;
            let samples: Vec<CalibrationSample> = case
                .calibration
                .iter()
                .map(|s| s.iter().map(|a| a.f32s()).collect())
                .collect();
            let ours = quantize_int8(&float, &samples, &PtqConfig::default())
                .map_err(|e| format!("quantising: {e}"))?;
            Ok(common::compare_graphs(
                &ours.graph,
                &theirs,
                common::SCALE_RTOL,
            ))
        })();
        match result {
            Ok(p) if p.is_empty() => {}
            Ok(p) => failures.push(format!(
                "{} ({}):\n    {}",
                case.name,
                case.info["int8_ops"],
                p.join("\n    ")
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from the TFLite converter (tensorflow {}):\n{}",
        failures.len(),
        cases.len(),
        header["tensorflow"],
        failures.join("\n")
    );
}
