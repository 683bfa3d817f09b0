//! Activation ranges recorded in a float graph instead of calibrated: kinglet's
//! quantisation-aware training tracks the range of every activation it fake-quantises and
//! lowering stores them in the [`meta::ACTIVATION_RANGES`] metadata (`name<TAB>min<TAB>max`
//! lines). Quantising with exactly those ranges gives the int8 model the network was trained
//! to tolerate; calibration then only fills in tensors the record does not name.

use std::collections::BTreeMap;

use kinglet_graph::{Graph, meta};

use crate::error::CompressError;
use crate::ptq::{CalibrationSample, PTQ_METADATA, PtqConfig, PtqResult, quantize_int8_overriding};

/// The recorded ranges of `graph` by tensor index (empty when it has none).
pub fn recorded_ranges(graph: &Graph) -> Result<BTreeMap<usize, (f32, f32)>, CompressError> {
    let mut out = BTreeMap::new();
    let Some(text) = graph.metadata.get(meta::ACTIVATION_RANGES) else {
        return Ok(out);
    };
    let bad = |line: usize, why: String| {
        CompressError::Calibration(format!(
            "metadata {}, line {}: {why}",
            meta::ACTIVATION_RANGES,
            line + 1
        ))
    };
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, lo, hi] = fields.as_slice() else {
            return Err(bad(
                i,
                format!("expected `name<TAB>min<TAB>max`, got {line:?}"),
            ));
        };
        let number = |v: &str| {
            v.trim()
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(i, format!("`{v}` is not a finite number")))
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo > hi {
            return Err(bad(i, format!("min {lo} exceeds max {hi}")));
        }
        let id = graph
            .tensors
            .iter()
            .position(|t| t.name == *name && !t.is_constant())
            .ok_or_else(|| bad(i, format!("no activation tensor is called '{name}'")))?;
        out.insert(id, (lo, hi));
    }
    Ok(out)
}

/// Full-integer int8 quantisation taking the activation ranges recorded in `graph` (see the
/// module documentation); `samples` calibrate only the tensors without a record. Returns the
/// result and how many recorded ranges were used. Logit clipping re-centres the logits,
/// whose recorded range would then no longer fit, so `config.logit_clip` must be `None`.
pub fn quantize_int8_with_recorded_ranges(
    graph: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
) -> Result<(PtqResult, usize), CompressError> {
    let recorded = recorded_ranges(graph)?;
    if recorded.is_empty() {
        return Err(CompressError::Calibration(format!(
            "the model records no activation ranges ({} metadata); it was not trained with quantisation-aware training",
            meta::ACTIVATION_RANGES
        )));
    }
    if config.logit_clip.is_some() {
        return Err(CompressError::Calibration(
            "logit clipping re-centres the logits, so their recorded range would not apply; turn it off with recorded ranges".into(),
        ));
    }
    let mut result = quantize_int8_overriding(graph, samples, config, &recorded)?;
    // The ranges are now the int8 parameters; the record has done its job.
    result.graph.metadata.remove(meta::ACTIVATION_RANGES);
    if let Some(how) = result.graph.metadata.get_mut(PTQ_METADATA) {
        how.push_str(&format!(
            ", {} activation ranges from quantisation-aware training",
            recorded.len()
        ));
    }
    Ok((result, recorded.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::activation_params;
    use kinglet_graph::{Activation, DType, OpKind};

    /// x [1, 4] → FULLY_CONNECTED (3 outputs) → y.
    fn dense() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 4], DType::F32, None);
        let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 10.0).collect();
        let wt = g.add_constant_f32("w", &[3, 4], &w).unwrap();
        let bt = g.add_constant_f32("b", &[3], &[0.1, -0.2, 0.0]).unwrap();
        let kind = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let y = g.add_op_inferred(kind, &[x, wt, bt], "y").unwrap();
        g.mark_output(y);
        g
    }

    fn samples() -> Vec<CalibrationSample> {
        vec![
            vec![vec![0.1, 0.2, 0.3, 0.4]],
            vec![vec![-0.5, 0.0, 0.5, 1.0]],
        ]
    }

    fn no_clip() -> PtqConfig {
        PtqConfig {
            logit_clip: None,
            ..PtqConfig::default()
        }
    }

    #[test]
    fn recorded_ranges_replace_calibration() {
        let mut g = dense();
        g.metadata.insert(
            meta::ACTIVATION_RANGES.into(),
            "x\t-2.0\t3.0\ny\t-7.5\t4.25\n".into(),
        );
        let (r, used) = quantize_int8_with_recorded_ranges(&g, &samples(), &no_clip()).unwrap();
        assert_eq!(used, 2);
        for (name, lo, hi) in [("x", -2.0, 3.0), ("y", -7.5, 4.25)] {
            let t = r.graph.tensors.iter().find(|t| t.name == name).unwrap();
            let q = t.quant.as_ref().unwrap();
            assert_eq!(
                (q.scale[0], q.zero_point[0]),
                activation_params(lo, hi),
                "{name}"
            );
        }
        assert!(!r.graph.metadata.contains_key(meta::ACTIVATION_RANGES));
        // Calibration alone gives other parameters for the same graph.
        let calibrated = crate::quantize_int8(&dense(), &samples(), &no_clip()).unwrap();
        let y = calibrated
            .graph
            .tensors
            .iter()
            .find(|t| t.name == "y")
            .unwrap();
        assert_ne!(
            y.quant.as_ref().unwrap().scale[0],
            activation_params(-7.5, 4.25).0
        );
    }

    #[test]
    fn bad_records_are_errors_naming_the_line() {
        for (text, expected) in [
            ("x\t1\n", "line 1"),
            ("x\t0\t1\nz\t0\t1\n", "'z'"),
            ("x\t0\tNaN\n", "finite"),
            ("x\t2\t1\n", "exceeds"),
            ("w\t0\t1\n", "'w'"),
        ] {
            let mut g = dense();
            g.metadata
                .insert(meta::ACTIVATION_RANGES.into(), text.into());
            let err = recorded_ranges(&g).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let err = quantize_int8_with_recorded_ranges(&dense(), &samples(), &no_clip())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no activation ranges"), "{err}");
    }
}
