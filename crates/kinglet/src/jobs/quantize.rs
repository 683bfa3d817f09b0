//! `kinglet quantize` as a library call (`kinglet quantize --model <model> --data <calibration spec> [--scheme int8|w4a8|w2a8|mixed|a16w8|dynamic|float16]
//! [--calibration minmax|percentile|mse] --out <file.tflite>`: post-training quantisation of a
//! float model: full-integer int8 calibrated on windows of a dataset, dynamic range (int8
//! weights, float activations) or float16 weights; the latter two use the data only to report
//! how often the quantised model agrees with the float one).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kinglet_compress::{
    Calibration, CalibrationSample, DynamicConfig, PtqConfig, quantize_dynamic, quantize_float16,
    quantize_int8,
};
use kinglet_data::Dataset;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::{Graph, Interpreter, meta};

/// Everything `kinglet quantize` is told (see `kinglet quantize --help` for the values).
#[derive(Debug, Clone)]
pub struct QuantizeJob {
    /// Float model: a `.tflite` float32 file or a trained `.kgl` model (lowered first).
    pub model: PathBuf,
    /// Calibration data, e.g. `uci-har:../shared/data/uci-har` (split `train` unless given).
    pub data: String,
    /// `mixed`: weight bit width (8, 4 or 2) per weighted layer in op order (`8,4,4,2,8`).
    pub bits: Option<String>,
    /// Quantisation scheme: `int8` (full-integer, per-channel weights), `w4a8` / `w2a8`
    /// (4- / 2-bit weights, int8 activations), `mixed` (see `bits`), `a16w8` (TFLite's 16×8:
    /// int16 activations, int8 weights, int64 biases), `dynamic` (int8
    /// weights, float activations: TFLite's dynamic range / hybrid ops) or `float16` (half
    /// float weights behind DEQUANTIZE, float activations).
    pub scheme: String,
    /// `dynamic` only: weight tensors with fewer elements stay float (the TFLite converter's
    /// default, 1024).
    pub min_elements: usize,
    /// How activation ranges are chosen: `minmax` (as the TFLite converter), `percentile`
    /// (99.99th; `percentile:P` for another) or `mse` (error-minimising clipping).
    pub calibration: String,
    /// `int8`: where activation ranges come from: `recorded` (those a `--qat` model carries,
    /// see `kinglet train --qat`), `calibrate` (from the data, as for any float model) or
    /// `auto` (recorded when the model has them).
    pub ranges: String,
    /// Number of calibration windows, spread evenly over the split.
    pub windows: usize,
    /// Keep float inputs and outputs (QUANTIZE/DEQUANTIZE at the edges) instead of int8.
    pub float_io: bool,
    /// Per-tensor FullyConnected weights (older converters) instead of per-channel.
    pub per_tensor_dense: bool,
    /// `int8`: centre logit outputs (FullyConnected without activation; softmax and argmax
    /// unchanged) and clip their range to ±this, so an overconfident classifier's huge
    /// min/max logit range does not swallow its close decisions; `off` keeps the converter's
    /// min/max range for them.
    pub logit_clip: String,
    /// Also score the float and the int8 model on this data (e.g. `hapt:…:test`) and print
    /// both accuracies.
    pub eval: Option<String>,
    /// Output `.tflite` file (written atomically).
    pub out: PathBuf,
    /// Write every weight dense. By default pruned weights (mostly exact zeros, see `kinglet
    /// prune`) are stored in TFLite's sparse format behind DENSIFY ops whenever that makes the
    /// file smaller; TFLite's builtin and reference kernels run such files, its default
    /// XNNPACK delegate refuses int8 ones.
    pub dense_weights: bool,
}

/// Runs `kinglet quantize`: quantises the model, writes it to `args.out` and what it wrote
/// and how well it agrees with the float model to `out`.
pub fn run(args: &QuantizeJob, out: &mut dyn Write) -> Result<()> {
    match (args.scheme.as_str(), &args.bits) {
        ("mixed", None) => bail!("--scheme mixed needs --bits (a width per weighted layer)"),
        ("mixed", Some(_)) | ("int8" | "w4a8" | "w2a8" | "a16w8" | "dynamic" | "float16", None) => {
        }
        (other, Some(_)) => bail!("--bits applies to --scheme mixed, not {other}"),
        (other, None) => bail!(
            "--scheme {other}: unknown scheme (expected int8, w4a8, w2a8, mixed, a16w8, dynamic or float16)"
        ),
    }
    let calibration =
        Calibration::parse(&args.calibration).map_err(|e| anyhow::anyhow!("--calibration: {e}"))?;
    if args.windows == 0 {
        bail!("--windows must be at least 1");
    }
    let mut spec = DataSpec::parse(&args.data)?;
    if !spec.split_given {
        spec = spec.with_split(Split::Train);
    }
    let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))?;
    if data.is_empty() {
        bail!("{spec}: no windows to calibrate on");
    }
    let (graph, all_samples, _) = load_with_samples(&args.model, &data)?;
    let picked = spread(all_samples.len(), args.windows);
    let samples: Vec<CalibrationSample> = picked.iter().map(|&i| all_samples[i].clone()).collect();
    let logit_clip = match args.logit_clip.as_str() {
        "off" => None,
        text => match text.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => Some(v),
            _ => bail!("--logit-clip {text}: expected a positive number or `off`"),
        },
    };
    let layers = kinglet_compress::subbyte::weighted_layers(&graph).len();
    let weight_bits = match (args.scheme.as_str(), &args.bits) {
        ("w4a8", _) => vec![4; layers],
        ("w2a8", _) => vec![2; layers],
        (_, Some(bits)) => kinglet_compress::subbyte::parse_bits(bits, layers)
            .with_context(|| format!("--bits {bits}"))?,
        _ => Vec::new(),
    };
    let config = PtqConfig {
        calibration,
        per_channel_fully_connected: !args.per_tensor_dense,
        float_io: args.float_io,
        logit_clip,
        weight_bits,
    };
    let has_ranges = graph
        .metadata
        .contains_key(kinglet_graph::meta::ACTIVATION_RANGES);
    let use_recorded = match args.ranges.as_str() {
        "auto" => has_ranges,
        "recorded" if !has_ranges => bail!(
            "--ranges recorded: {} carries no activation ranges (train it with --qat)",
            args.model.display()
        ),
        "recorded" => true,
        "calibrate" => false,
        other => bail!("--ranges {other}: expected auto, recorded or calibrate"),
    };
    let mut recorded_used = 0;
    let quantised = match args.scheme.as_str() {
        "dynamic" => {
            let config = DynamicConfig {
                min_elements: args.min_elements,
            };
            let (g, count) = quantize_dynamic(&graph, &config)
                .with_context(|| format!("quantising {}", args.model.display()))?;
            if count == 0 {
                bail!(
                    "{}: no Conv2D/DepthwiseConv2D/FullyConnected weights with at least {} elements; nothing to quantise (lower --min-elements)",
                    args.model.display(),
                    args.min_elements
                );
            }
            g
        }
        "float16" => quantize_float16(&graph)
            .with_context(|| format!("quantising {}", args.model.display()))?,
        "a16w8" => {
            kinglet_compress::quantize_a16w8(&graph, &samples, &config)
                .with_context(|| format!("quantising {}", args.model.display()))?
                .graph
        }
        _ if use_recorded => {
            // The recorded logit range belongs to the uncentred logits: no logit clipping.
            let config = PtqConfig {
                logit_clip: None,
                ..config
            };
            let (result, used) =
                kinglet_compress::quantize_int8_with_recorded_ranges(&graph, &samples, &config)
                    .with_context(|| format!("quantising {}", args.model.display()))?;
            recorded_used = used;
            result.graph
        }
        _ => {
            quantize_int8(&graph, &samples, &config)
                .with_context(|| format!("quantising {}", args.model.display()))?
                .graph
        }
    };
    // QAT's activation ranges mean nothing in a quantised file; they would only cost bytes.
    let mut quantised = quantised;
    quantised
        .metadata
        .remove(kinglet_graph::meta::ACTIVATION_RANGES);
    let float_top1 = predict(&graph, &samples)?;
    let quantised_top1 = predict(&quantised, &samples)?;
    let agreement = fraction_equal(&float_top1, &quantised_top1);
    kinglet_graph::tflite::write_tflite_file_with(
        &quantised,
        &args.out,
        &kinglet_graph::tflite::WriteOptions {
            sparse_weights: !args.dense_weights,
        },
    )?;
    let file_bytes = std::fs::metadata(&args.out)
        .with_context(|| format!("reading back {}", args.out.display()))?
        .len();
    writeln!(
        out,
        "wrote {} ({}, {file_bytes} bytes, {} ops, {} weight bytes; float model {} weight bytes)",
        args.out.display(),
        args.scheme,
        quantised.ops.len(),
        quantised.weight_bytes(),
        graph.weight_bytes()
    )?;
    let integer = matches!(
        args.scheme.as_str(),
        "int8" | "w4a8" | "w2a8" | "mixed" | "a16w8"
    );
    let how = if integer && recorded_used > 0 {
        format!(
            "{recorded_used} activation ranges from quantisation-aware training; checked on {} windows of {spec}",
            samples.len()
        )
    } else if integer {
        format!(
            "calibrated on {} windows of {spec} ({calibration:?})",
            samples.len()
        )
    } else {
        format!("checked on {} windows of {spec}", samples.len())
    };
    writeln!(
        out,
        "{how}; {} top-1 agrees with float on {:.2} % of them",
        args.scheme,
        100.0 * agreement
    )?;
    if let Some(eval) = &args.eval {
        let mut spec = DataSpec::parse(eval)?;
        if !spec.split_given {
            spec = spec.with_split(Split::Test);
        }
        let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
            .with_context(|| format!("loading {spec}"))?;
        let (_, samples, targets) = load_with_samples(&args.model, &data)?;
        let float_acc = fraction_equal(&predict(&graph, &samples)?, &targets);
        let quantised_acc = fraction_equal(&predict(&quantised, &samples)?, &targets);
        writeln!(
            out,
            "{spec}: {} windows, float accuracy {:.2} %, {} accuracy {:.2} % ({:+.2} pp)",
            samples.len(),
            100.0 * float_acc,
            args.scheme,
            100.0 * quantised_acc,
            100.0 * (quantised_acc - float_acc)
        )?;
    }
    Ok(())
}

fn fraction_equal(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// `count` indices spread evenly over `0..n` (all of them when `count >= n`), so that a
/// subject-ordered split contributes windows from every subject.
fn spread(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    (0..count).map(|k| k * n / count).collect()
}

/// The float graph and, for every sample built from `data`, the graph's input values and
/// the expected output index.
fn load_with_samples(
    path: &Path,
    data: &Dataset,
) -> Result<(Graph, Vec<CalibrationSample>, Vec<usize>)> {
    match kinglet_train::ModelKind::of(path)? {
        kinglet_train::ModelKind::Kgl => {
            let model = kinglet_train::TrainedModel::load(path)
                .with_context(|| format!("loading {}", path.display()))?;
            let graph = kinglet_train::lower(&model)
                .with_context(|| format!("lowering {}", path.display()))?;
            let (samples, targets) = kinglet_train::graph_inputs(&model, data)
                .with_context(|| format!("preparing calibration windows for {}", path.display()))?;
            Ok((graph, samples, targets))
        }
        kinglet_train::ModelKind::Tflite => {
            let graph = kinglet_graph::tflite::read_tflite_file(path)?;
            let samples = samples_from_metadata(&graph, data)
                .with_context(|| format!("{}: building calibration inputs", path.display()))?;
            let targets = targets_from_metadata(&graph, data);
            Ok((graph, samples, targets))
        }
    }
}

/// Inputs for a `.tflite` model: from kinglet's normalisation metadata when the model was
/// exported by kinglet (per-input channel lists and standardisation), else the raw window
/// when the model has one input of the window's size.
fn samples_from_metadata(graph: &Graph, data: &Dataset) -> Result<Vec<CalibrationSample>> {
    if let Some(text) = graph.metadata.get(meta::NORMALISATION) {
        let v: serde_json::Value =
            serde_json::from_str(text).context("kinglet.normalisation metadata is not JSON")?;
        if v["task"]["kind"].as_str() == Some("change") {
            bail!(
                "pair (change-detection) models calibrate from their .kgl file, not the exported .tflite"
            );
        }
        let groups = v["inputs"]
            .as_array()
            .context("kinglet.normalisation metadata lacks `inputs`")?;
        let norm = &v["normalisation"];
        let names: Vec<&str> = norm["channels"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        let floats = |key: &str| -> Vec<f32> {
            norm[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (mean, std) = (floats("mean"), floats("std"));
        if mean.len() != names.len() || std.len() != names.len() {
            bail!(
                "kinglet.normalisation metadata: {} channels but {} means and {} stds",
                names.len(),
                mean.len(),
                std.len()
            );
        }
        // For each graph input: (dataset channel index, mean, std) per channel.
        let mut maps = Vec::new();
        for g in groups {
            let mut m = Vec::new();
            for ch in g["channels"]
                .as_array()
                .context("input group without `channels`")?
            {
                let ch = ch.as_str().context("channel name is not a string")?;
                let di = data
                    .channel_names
                    .iter()
                    .position(|c| c == ch)
                    .with_context(|| {
                        format!(
                            "the model needs channel `{ch}`, the data has {}",
                            data.channel_names.join(", ")
                        )
                    })?;
                let ni = names
                    .iter()
                    .position(|c| *c == ch)
                    .with_context(|| format!("no normalisation for channel `{ch}`"))?;
                m.push((di, mean[ni], std[ni]));
            }
            maps.push(m);
        }
        if maps.len() != graph.inputs.len() {
            bail!(
                "metadata describes {} inputs, the graph has {}",
                maps.len(),
                graph.inputs.len()
            );
        }
        // Windows `[time, channels]` and images `[height, width, channels]` alike: the
        // channels are the last axis, everything before it is one flattened time axis.
        let channels = data.channels();
        let time = data.sample_len() / channels.max(1);
        for (m, id) in maps.iter().zip(&graph.inputs) {
            if graph.tensor(*id).elements() != time * m.len() {
                bail!(
                    "input '{}' holds {} values, {time} × {} expected from the data",
                    graph.tensor(*id).name,
                    graph.tensor(*id).elements(),
                    m.len()
                );
            }
        }
        return Ok((0..data.len())
            .map(|i| {
                let w = data.sample(i);
                maps.iter()
                    .map(|m| {
                        (0..time)
                            .flat_map(|t| {
                                m.iter()
                                    .map(move |(di, mu, sd)| (w[t * channels + di] - mu) / sd)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect());
    }
    match graph.inputs.as_slice() {
        [id] if graph.tensor(*id).elements() == data.sample_len() => Ok((0..data.len())
            .map(|i| vec![data.sample(i).to_vec()])
            .collect()),
        _ => bail!(
            "the model has {} input(s) and no kinglet metadata; only single-input models whose input holds one {:?} window can be calibrated directly",
            graph.inputs.len(),
            data.sample_shape
        ),
    }
}

/// Expected output per window: the label, or for a one-vs-rest model 1 when the label is
/// its class.
fn targets_from_metadata(graph: &Graph, data: &Dataset) -> Vec<usize> {
    let task = graph
        .metadata
        .get(meta::NORMALISATION)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .map(|v| v["task"].clone())
        .unwrap_or_default();
    match (task["kind"].as_str(), task["class"].as_u64()) {
        (Some("one-vs-rest"), Some(class)) => data
            .labels
            .iter()
            .map(|l| usize::from(u64::from(*l) == class))
            .collect(),
        _ => data.labels.iter().map(|l| *l as usize).collect(),
    }
}

/// Arg-max of output 0 for every sample; float inputs are quantised for integer graphs.
/// Float16 weights (DEQUANTIZE of constants) are folded to f32 first, as kinglet's kernels
/// read f32 constants.
fn predict(graph: &Graph, samples: &[CalibrationSample]) -> Result<Vec<usize>> {
    let folded;
    let graph = if graph
        .tensors
        .iter()
        .any(|t| t.dtype == kinglet_graph::DType::F16)
    {
        folded = kinglet_graph::passes::fold_constants(graph, Default::default())?.0;
        &folded
    } else {
        graph
    };
    let mut interpreter = Interpreter::new(graph)?;
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, x)| if *x > b.1 { (i, *x) } else { b },
            )
            .0
    };
    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        for (i, values) in sample.iter().enumerate() {
            if i >= graph.inputs.len() {
                bail!("sample has more inputs than the model");
            }
            interpreter.set_input_real(i, values)?;
        }
        interpreter.invoke()?;
        out.push(argmax(&interpreter.output_f32(0)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_the_whole_split() {
        assert_eq!(spread(10, 3), vec![0, 3, 6]);
        assert_eq!(spread(3, 10), vec![0, 1, 2]);
    }

    fn dataset() -> Dataset {
        // 2 windows × 3 steps × channels [a, b, c]; value = 100·window + 10·step + channel.
        let data = (0..2)
            .flat_map(|w| {
                (0..3).flat_map(move |t| (0..3).map(move |c| (100 * w + 10 * t + c) as f32))
            })
            .collect();
        Dataset {
            sample_shape: vec![3, 3],
            channel_names: vec!["a".into(), "b".into(), "c".into()],
            data,
            labels: vec![0, 1],
            subjects: None,
            class_names: vec!["x".into(), "y".into()],
            sample_rate_hz: None,
            stream: None,
        }
    }

    #[test]
    fn metadata_selects_and_standardises_channels() {
        let mut g = Graph::new();
        let x = g.add_input("s", &[1, 3, 2], kinglet_graph::DType::F32, None);
        g.mark_output(x);
        let norm = serde_json::json!({
            "kind": "channel-standardise",
            "inputs": [{"name": "s", "channels": ["c", "a"], "shape": [3, 2]}],
            "normalisation": {"channels": ["a", "b", "c"], "mean": [1.0, 0.0, 2.0], "std": [2.0, 1.0, 4.0]},
            "task": {"kind": "activity"},
        });
        g.metadata
            .insert(meta::NORMALISATION.into(), norm.to_string());
        let samples = samples_from_metadata(&g, &dataset()).unwrap();
        assert_eq!(samples.len(), 2);
        // Window 1, step 2: c = 122 → (122 − 2)/4 = 30, a = 120 → (120 − 1)/2 = 59.5.
        assert_eq!(samples[1][0][4..6], [30.0, 59.5]);
        // Unknown channel names are an error naming the channel.
        let bad = norm.to_string().replace(r#"["c","a"]"#, r#"["z","a"]"#);
        g.metadata.insert(meta::NORMALISATION.into(), bad);
        let err = samples_from_metadata(&g, &dataset())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`z`"), "{err}");
    }

    #[test]
    fn plain_single_input_takes_raw_windows() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 3, 3], kinglet_graph::DType::F32, None);
        g.mark_output(x);
        let samples = samples_from_metadata(&g, &dataset()).unwrap();
        assert_eq!(samples[1][0], dataset().sample(1));
        let mut two = Graph::new();
        two.add_input("x", &[1, 3, 3], kinglet_graph::DType::F32, None);
        two.add_input("y", &[1, 3, 3], kinglet_graph::DType::F32, None);
        assert!(samples_from_metadata(&two, &dataset()).is_err());
    }
}
