//! `kinglet eval`: scores a model on a dataset split: accuracy, macro-F1, per-class precision
//! and recall, confusion matrix.

use std::path::PathBuf;

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Args;
use kinglet_data::Dataset;
use kinglet_data::metrics::Classification;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::eval::{
    InputLayout, evaluate_f32_with_kernels, evaluate_with_kernels, seed_scale_u8,
};
use kinglet_train::TrainedModel;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A `.kgl` model written by `kinglet train`, or a `.tflite` model (run by kinglet-graph's
    /// interpreter).
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation data, e.g. `uci-har:../shared/data/uci-har:test` (split `test` unless given).
    #[arg(long)]
    pub data: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// `.tflite` only: how raw windows become model inputs. `seed`: the Big–Little authors'
    /// per-channel min–max over the evaluated split to uint8; `model`: the standardisation stored
    /// in a kinglet-exported model's metadata; `none`: raw values. Default: `model` when the
    /// metadata has one, else `none`.
    #[arg(long, value_enum)]
    pub input_scaling: Option<InputScaling>,
    /// `.tflite` only: score a two-output model as "is the activity class K?" (output 1 = yes),
    /// as the seed's Little models. Kinglet-exported models carry their task in metadata.
    #[arg(long)]
    pub one_vs_rest: Option<u32>,
    /// Which TFLite kernel configuration `.tflite` models are run with, rounding for rounding:
    /// `default` (the TFLite interpreter's default, XNNPACK — what published TFLite accuracies
    /// come from), `builtin` (optimized kernels, no delegate) or `reference` (the reference
    /// kernels TFLite Micro and kinglet's firmware follow).
    #[arg(long, default_value = "default")]
    pub tflite_kernels: kinglet_graph::TfliteKernels,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputScaling {
    Seed,
    Model,
    None,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mut spec = DataSpec::parse(&args.data)?;
    if !spec.split_given {
        spec = spec.with_split(Split::Test);
    }
    let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))?;
    let started = std::time::Instant::now();
    let kind = kinglet_train::ModelKind::of(&args.model)?;
    let result = if kind == kinglet_train::ModelKind::Tflite {
        evaluate_tflite(&args, &data)?
    } else {
        if args.input_scaling.is_some() || args.one_vs_rest.is_some() {
            bail!(
                "--input-scaling and --one-vs-rest apply to .tflite models; a .kgl model carries both"
            );
        }
        let model = TrainedModel::load(&args.model)?;
        kinglet_train::evaluate(&model, &data)?
    };
    // Host time per window, one process: input preparation and inference (and, for a .kgl,
    // loading the model); a rough latency, for tables such as `kinglet optimize`'s.
    let us_per_window = started.elapsed().as_secs_f64() * 1e6 / result.n().max(1) as f64;
    print(
        &result,
        &args.model.display().to_string(),
        &spec.to_string(),
        args.json,
        us_per_window,
    )
}

/// Prints a classification report as text or as one JSON object.
pub fn print(
    result: &Classification,
    model: &str,
    data: &str,
    json: bool,
    us_per_window: f64,
) -> Result<()> {
    if json {
        let per_class: Vec<serde_json::Value> = result
            .class_names
            .iter()
            .zip(result.per_class())
            .map(|(name, s)| {
                serde_json::json!({
                    "class": name, "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": model,
            "data": data,
            "accuracy": result.accuracy(),
            "macro_f1": result.macro_f1(),
            "n": result.n(),
            "class_names": result.class_names,
            "per_class": per_class,
            "confusion": result.confusion,
            "host_us_per_window": us_per_window,
        });
        writeln!(std::io::stdout().lock(), "{out}")?;
    } else {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "model {model}\ndata  {data}")?;
        write!(stdout, "{}", result.to_text())?;
    }
    Ok(())
}

/// Runs a `.tflite` model over every window with kinglet-graph's interpreter.
fn evaluate_tflite(args: &EvalArgs, data: &Dataset) -> Result<Classification> {
    let path = &args.model;
    let graph = kinglet_graph::tflite::read_tflite_file(path)
        .with_context(|| format!("reading {}", path.display()))?;
    // Float16 models keep f16 weights behind DEQUANTIZE ops; kinglet's kernels read f32.
    let graph = if graph
        .tensors
        .iter()
        .any(|t| t.dtype == kinglet_graph::DType::F16)
    {
        kinglet_graph::passes::fold_constants(&graph, Default::default())
            .with_context(|| format!("{}: widening float16 weights", path.display()))?
            .0
    } else {
        graph
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta: Option<serde_json::Value> = graph
        .metadata
        .get(kinglet_graph::meta::NORMALISATION)
        .and_then(|text| serde_json::from_str(text).ok());
    let task = meta.as_ref().and_then(|m| m.get("task")).cloned();
    if task
        .as_ref()
        .and_then(|t| t.get("kind"))
        .and_then(|k| k.as_str())
        == Some("change")
    {
        bail!(
            "{}: change (Dual) models take window pairs; evaluate the .kgl model instead",
            path.display()
        );
    }
    if task
        .as_ref()
        .and_then(|t| t.get("kind"))
        .and_then(|k| k.as_str())
        == Some("image")
    {
        return evaluate_image_tflite(args, &graph, meta.as_ref(), data);
    }
    // Which of the dataset's channels feed each input: by name, whatever the dataset.
    let layout = kinglet_adapt::models::input_layout(&graph, &file_name, &data.channel_names)
        .with_context(|| format!("{}", path.display()))?;
    let c_all = data.channels();
    let mut windows: Vec<f32> = data.data.clone();
    let step = data.sample_shape[0] * c_all;
    let scaling = args.input_scaling.unwrap_or(if meta.is_some() {
        InputScaling::Model
    } else {
        InputScaling::None
    });
    let outputs = match scaling {
        InputScaling::Seed => {
            let raw: Vec<f64> = windows.iter().map(|&v| v as f64).collect();
            let scaled = seed_scale_u8(&raw, c_all);
            evaluate_with_kernels(
                &graph,
                &layout,
                scaled.chunks_exact(step),
                c_all,
                args.tflite_kernels,
            )?
        }
        InputScaling::Model => {
            let norm = meta
                .as_ref()
                .and_then(|m| m.get("normalisation"))
                .with_context(|| {
                    format!(
                        "{}: no kinglet normalisation in its metadata",
                        path.display()
                    )
                })?;
            let norm: kinglet_train::ChannelNormalisation = serde_json::from_value(norm.clone())
                .with_context(|| format!("{}: malformed normalisation metadata", path.display()))?;
            norm.check_rate(data)?;
            let mut affine = Vec::new();
            for c in &data.channel_names {
                let i = norm.channels.iter().position(|n| n == c);
                affine.push(i.map(|i| (norm.mean[i], norm.std[i])).unwrap_or((0.0, 1.0)));
            }
            for (i, v) in windows.iter_mut().enumerate() {
                let (m, s) = affine[i % c_all];
                *v = (*v - m) / s;
            }
            evaluate_f32_with_kernels(
                &graph,
                &layout,
                windows.chunks_exact(step),
                c_all,
                args.tflite_kernels,
            )?
        }
        InputScaling::None => evaluate_f32_with_kernels(
            &graph,
            &layout,
            windows.chunks_exact(step),
            c_all,
            args.tflite_kernels,
        )?,
    };
    let predictions: Vec<u32> = outputs.predictions().iter().map(|&p| p as u32).collect();
    let outputs_n = outputs.scores.first().map(|s| s.len()).unwrap_or(0);
    let one_vs_rest = args.one_vs_rest.or_else(|| {
        let t = task.as_ref()?;
        (t.get("kind")?.as_str()? == "one-vs-rest")
            .then(|| t.get("class")?.as_u64().map(|c| c as u32))?
    });
    let (labels, names): (Vec<u32>, Vec<String>) = match one_vs_rest {
        Some(k) => {
            let name = data
                .class_names
                .get(k as usize)
                .with_context(|| format!("class {k} does not exist"))?;
            (
                data.labels.iter().map(|&l| u32::from(l == k)).collect(),
                vec![format!("not {name}"), name.clone()],
            )
        }
        None => {
            if outputs_n != data.class_names.len() {
                bail!(
                    "{}: {outputs_n} outputs for {} classes (a one-vs-rest model needs --one-vs-rest K)",
                    path.display(),
                    data.class_names.len()
                );
            }
            (
                data.labels.clone(),
                graph
                    .metadata_list(kinglet_graph::meta::CLASS_NAMES)
                    .unwrap_or(data.class_names.clone()),
            )
        }
    };
    if let Some(&p) = predictions.iter().find(|&&p| p as usize >= names.len()) {
        bail!(
            "{}: predicted class {p} beyond the {} classes",
            path.display(),
            names.len()
        );
    }
    Ok(Classification::new(&names, &labels, &predictions))
}

/// Runs a kinglet-exported image model (task `image` in its metadata) over every image:
/// pixels standardised with the model's normalisation, fed `[height, width, channels]`.
fn evaluate_image_tflite(
    args: &EvalArgs,
    graph: &kinglet_graph::Graph,
    meta: Option<&serde_json::Value>,
    data: &Dataset,
) -> Result<Classification> {
    let path = &args.model;
    if args.input_scaling.is_some_and(|s| s != InputScaling::Model) || args.one_vs_rest.is_some() {
        bail!(
            "{}: image models take their stored normalisation; --input-scaling seed/none and --one-vs-rest do not apply",
            path.display()
        );
    }
    let norm = meta.and_then(|m| m.get("normalisation")).with_context(|| {
        format!(
            "{}: no kinglet normalisation in its metadata",
            path.display()
        )
    })?;
    let norm: kinglet_train::ChannelNormalisation = serde_json::from_value(norm.clone())
        .with_context(|| format!("{}: malformed normalisation metadata", path.display()))?;
    let channels = data.channels();
    if norm.channels != data.channel_names || norm.mean.len() != channels {
        bail!(
            "{}: the model reads channels {:?}, the data has {:?}",
            path.display(),
            norm.channels,
            data.channel_names
        );
    }
    let input_len = graph
        .inputs
        .first()
        .map(|&id| graph.tensor(id).elements())
        .unwrap_or(0);
    if graph.inputs.len() != 1 || input_len != data.sample_len() {
        bail!(
            "{}: expects one input of {input_len} values, the data's samples are {:?}",
            path.display(),
            data.sample_shape
        );
    }
    let images: Vec<f32> = data
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = i % channels;
            (v - norm.mean[c]) / norm.std[c]
        })
        .collect();
    let layout = InputLayout {
        inputs: vec![(0..channels).collect()],
    };
    let outputs = evaluate_f32_with_kernels(
        graph,
        &layout,
        images.chunks_exact(data.sample_len()),
        channels,
        args.tflite_kernels,
    )?;
    let predictions: Vec<u32> = outputs.predictions().iter().map(|&p| p as u32).collect();
    let names = graph
        .metadata_list(kinglet_graph::meta::CLASS_NAMES)
        .unwrap_or(data.class_names.clone());
    if names.len() != data.class_names.len() {
        bail!(
            "{}: {} classes, the data has {}",
            path.display(),
            names.len(),
            data.class_names.len()
        );
    }
    if let Some(&p) = predictions.iter().find(|&&p| p as usize >= names.len()) {
        bail!(
            "{}: predicted class {p} beyond the {} classes",
            path.display(),
            names.len()
        );
    }
    Ok(Classification::new(&names, &data.labels, &predictions))
}
