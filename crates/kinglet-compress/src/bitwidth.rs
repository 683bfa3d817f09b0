//! Choosing a weight bit width per layer for a memory budget.
//!
//! Kinglet first measures each layer's *sensitivity* (the validation accuracy the int8 model
//! loses when only that layer's weights drop to 4 or to 2 bits), reported to the user. It then
//! narrows layers greedily, always taking the step that loses the least validation accuracy per
//! byte saved — each candidate measured jointly with the widths already chosen, because losses
//! do not add up (on kinglet-lite, two first convolutions at 2 bits cost 14 pp together against
//! about 2 pp each alone) — until the budget is met, and finally widens again any layer that
//! still fits, largest measured gain first. A HAR network has 5–20 weighted layers, so the
//! search costs tens to a few hundred post-training quantisations and validation passes on the
//! host interpreter (seconds to minutes) and needs no training. That is why it is preferred
//! here to a differentiable search: the quantisation-aware fine-tune that follows (`kinglet
//! quantize --weight-budget` on a `.kgl` model) is the only training step, and it then
//! recovers what post-training quantisation loses at the chosen widths.

use kinglet_graph::{Graph, Interpreter};

use crate::error::CompressError;
use crate::ptq::{CalibrationSample, PtqConfig, quantize_int8};
use crate::subbyte::{WEIGHT_BITS, weight_bytes, weighted_layers};

/// What a budget limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Bytes of weights (packed) and biases of the weighted layers.
    Weights(usize),
    /// Bytes of the whole `.tflite` file (weights, activations' parameters, graph).
    File(usize),
}

impl Budget {
    /// Parses `3kB`, `3000`, `2.5KiB` or `1MB` (k = 1000, Ki = 1024).
    pub fn parse_bytes(text: &str) -> Result<usize, CompressError> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let factor = match unit.trim() {
            "" | "B" => 1.0,
            "kB" | "KB" | "k" => 1e3,
            "KiB" => 1024.0,
            "MB" => 1e6,
            "MiB" => 1024.0 * 1024.0,
            other => {
                return Err(CompressError::Unsupported(format!(
                    "budget '{text}': unknown unit '{other}' (expected B, kB, KiB, MB or MiB)"
                )));
            }
        };
        match number.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok((v * factor).round() as usize),
            _ => Err(CompressError::Unsupported(format!(
                "budget '{text}' is not a positive size"
            ))),
        }
    }
}

/// Validation windows (inputs in graph input order) and their classes.
pub struct Validation<'a> {
    pub samples: &'a [CalibrationSample],
    pub targets: &'a [usize],
}

/// The chosen widths and what the search measured.
#[derive(Clone, Debug)]
pub struct BitChoice {
    pub bits: Vec<u32>,
    /// The budgeted size of the chosen assignment.
    pub bytes: usize,
    /// Validation accuracy of the int8 model and of the chosen assignment (measured jointly).
    pub int8_accuracy: f64,
    pub accuracy: f64,
    /// Accuracy lost by each layer alone at 4 and at 2 bits (rows in op order; negative: gained).
    pub sensitivity: Vec<(String, f64, f64)>,
}

/// Top-1 accuracy of a graph on labelled windows.
pub fn accuracy(graph: &Graph, validation: &Validation) -> Result<f64, CompressError> {
    let mut interpreter = Interpreter::new(graph)?;
    let mut correct = 0usize;
    for (sample, target) in validation.samples.iter().zip(validation.targets) {
        for (i, values) in sample.iter().enumerate() {
            interpreter.set_input_real(i, values)?;
        }
        interpreter.invoke()?;
        let scores = interpreter.output_f32(0)?;
        let best = scores
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
            )
            .0;
        correct += usize::from(best == *target);
    }
    Ok(correct as f64 / validation.samples.len().max(1) as f64)
}

/// Picks a weight width from {8, 4, 2} per layer of `float` so that the quantised model meets
/// `budget` with the least validation accuracy lost (see the module documentation).
/// `config` gives every other PTQ setting; calibration runs on `samples`.
pub fn choose_bits(
    float: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
    validation: &Validation,
    budget: Budget,
    progress: &mut dyn FnMut(&str),
) -> Result<BitChoice, CompressError> {
    let layers = weighted_layers(float);
    if layers.is_empty() {
        return Err(CompressError::Unsupported(
            "the model has no Conv2D, DepthwiseConv2D or FullyConnected weights to narrow".into(),
        ));
    }
    let limit = match budget {
        Budget::Weights(b) | Budget::File(b) => b,
    };
    let quantise = |bits: &[u32]| -> Result<Graph, CompressError> {
        let config = PtqConfig {
            weight_bits: bits.to_vec(),
            ..config.clone()
        };
        Ok(quantize_int8(float, samples, &config)?.graph)
    };
    // The size as the budget counts it: weight bytes need no quantisation, a file does.
    let size_of = |bits: &[u32], quantised: Option<&Graph>| -> Result<usize, CompressError> {
        match (budget, quantised) {
            (Budget::Weights(_), _) => Ok(weight_bytes(float, &layers, bits)),
            (Budget::File(_), Some(q)) => Ok(q.to_tflite_bytes()?.len()),
            (Budget::File(_), None) => Ok(quantise(bits)?.to_tflite_bytes()?.len()),
        }
    };
    // Size and validation accuracy from one quantisation.
    let assess = |bits: &[u32]| -> Result<(usize, f64), CompressError> {
        let q = quantise(bits)?;
        Ok((size_of(bits, Some(&q))?, accuracy(&q, validation)?))
    };
    let smallest = vec![2; layers.len()];
    let smallest_size = size_of(&smallest, None)?;
    if smallest_size > limit {
        return Err(CompressError::Unsupported(format!(
            "no assignment of 8/4/2-bit weights meets {limit} bytes: the smallest, every layer at 2 bits, takes {smallest_size} bytes ({})",
            match budget {
                Budget::Weights(_) => "weights and biases",
                Budget::File(_) => ".tflite file",
            }
        )));
    }
    let int8 = vec![8; layers.len()];
    let (int8_size, int8_accuracy) = assess(&int8)?;
    // Reported only: the accuracy each layer loses alone at 4 and at 2 bits.
    let mut sensitivity = Vec::with_capacity(layers.len());
    for (l, layer) in layers.iter().enumerate() {
        let mut lost = [0.0f64; 2];
        for (w, b) in [4u32, 2].into_iter().enumerate() {
            let mut bits = int8.clone();
            bits[l] = b;
            let acc = accuracy(&quantise(&bits)?, validation)?;
            lost[w] = int8_accuracy - acc;
            progress(&format!(
                "layer {l} ({} '{}') at {b} bits: validation {:.2} % ({:+.2} pp)",
                layer.kind,
                layer.name,
                100.0 * acc,
                100.0 * (acc - int8_accuracy)
            ));
        }
        sensitivity.push((layer.name.clone(), lost[0], lost[1]));
    }
    let level = |b: u32| WEIGHT_BITS.iter().position(|x| *x == b).unwrap_or(0);
    let (mut bits, mut size, mut current) = (int8, int8_size, int8_accuracy);
    // Narrow: the step losing the least measured accuracy per byte saved first. Every
    // candidate is measured jointly with the widths already chosen (losses do not add up:
    // two layers at 2 bits can cost far more than each alone).
    while size > limit {
        let mut best: Option<(f64, usize, usize, f64)> = None;
        for l in 0..layers.len() {
            let from = level(bits[l]);
            if from + 1 >= WEIGHT_BITS.len() {
                continue;
            }
            let mut trial = bits.clone();
            trial[l] = WEIGHT_BITS[from + 1];
            let saved = weight_bytes(float, &layers, &bits)
                .saturating_sub(weight_bytes(float, &layers, &trial))
                .max(1) as f64;
            let (trial_size, acc) = assess(&trial)?;
            let score = ((current - acc).max(0.0) + 1e-9) / saved;
            if best.is_none_or(|(s, ..)| score < s) {
                best = Some((score, l, trial_size, acc));
            }
        }
        let Some((_, l, trial_size, acc)) = best else {
            break;
        };
        bits[l] = WEIGHT_BITS[level(bits[l]) + 1];
        (size, current) = (trial_size, acc);
        progress(&format!(
            "narrowed layer {l} to {} bits: {size} bytes, validation {:.2} %",
            bits[l],
            100.0 * acc
        ));
    }
    // Widen again where room is left: the largest measured gain first.
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for l in 0..layers.len() {
            let from = level(bits[l]);
            if from == 0 {
                continue;
            }
            let mut trial = bits.clone();
            trial[l] = WEIGHT_BITS[from - 1];
            // Weight bytes rule a candidate out before it is quantised.
            if matches!(budget, Budget::Weights(_)) && size_of(&trial, None)? > limit {
                continue;
            }
            let (trial_size, acc) = assess(&trial)?;
            if trial_size <= limit && acc > current && best.is_none_or(|(a, ..)| acc > a) {
                best = Some((acc, l, trial_size));
            }
        }
        let Some((acc, l, trial_size)) = best else {
            break;
        };
        bits[l] = WEIGHT_BITS[level(bits[l]) - 1];
        (size, current) = (trial_size, acc);
    }
    Ok(BitChoice {
        bits,
        bytes: size,
        int8_accuracy,
        accuracy: current,
        sensitivity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_with_units() {
        assert_eq!(Budget::parse_bytes("3kB").unwrap(), 3000);
        assert_eq!(Budget::parse_bytes("2KiB").unwrap(), 2048);
        assert_eq!(Budget::parse_bytes("1500").unwrap(), 1500);
        assert_eq!(Budget::parse_bytes("1.5 kB").unwrap(), 1500);
        assert!(Budget::parse_bytes("3 parsecs").is_err());
        assert!(Budget::parse_bytes("-3kB").is_err());
        assert!(Budget::parse_bytes("0").is_err());
    }
}
