//! `kinglet eval` as a library call: scores a `.kgl` or `.tflite` model on a dataset split
//! (accuracy, macro-F1, per-class precision and recall, confusion matrix) and times it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kinglet_data::Dataset;
use kinglet_data::metrics::Classification;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::TfliteKernels;
use kinglet_graph::eval::{
    InputLayout, evaluate_f32_with_kernels, evaluate_with_kernels, seed_scale_u8,
};
use kinglet_train::TrainedModel;

/// How raw windows become the inputs of a `.tflite` model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputScaling {
    /// The Big–Little authors' per-channel min–max over the evaluated split, to uint8.
    Seed,
    /// The standardisation stored in a kinglet-exported model's metadata.
    Model,
    /// Raw values.
    None,
}

/// Everything `kinglet eval` is told.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// A `.kgl` model or a `.tflite` model.
    pub model: PathBuf,
    /// Evaluation data (split `test` unless given).
    pub data: String,
    /// `.tflite` only; default `Model` when the metadata has a normalisation, else `None`.
    pub input_scaling: Option<InputScaling>,
    /// `.tflite` only: score a two-output model as "is the activity class K?".
    pub one_vs_rest: Option<u32>,
    /// The TFLite kernel configuration `.tflite` models are run with.
    pub tflite_kernels: TfliteKernels,
    /// `.kgl` only: score this width of a nested-width model (see `kinglet train --widths`).
    pub width: Option<f64>,
}

/// A scored model: what `kinglet eval` prints.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub classification: Classification,
    /// The model file as given.
    pub model: String,
    /// The data spec, with its split.
    pub data: String,
    /// Host time per window, one process: input preparation and inference (and, for a
    /// `.kgl`, loading the model); a rough latency, for tables such as `kinglet optimize`'s.
    pub host_us_per_window: f64,
}

/// Runs `kinglet eval`: loads the split, scores the model on every window.
pub fn run(job: &EvalJob) -> Result<EvalReport> {
    let mut spec = DataSpec::parse(&job.data)?;
    if !spec.split_given {
        spec = spec.with_split(Split::Test);
    }
    let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))?;
    let started = std::time::Instant::now();
    let kind = kinglet_train::ModelKind::of(&job.model)?;
    let result = if kind == kinglet_train::ModelKind::Tflite {
        if job.width.is_some() {
            bail!(
                "--width applies to nested-width .kgl models; a .tflite model has one width (export it with `kinglet export --width`)"
            );
        }
        evaluate_tflite(job, &data)?
    } else {
        if job.input_scaling.is_some() || job.one_vs_rest.is_some() {
            bail!(
                "--input-scaling and --one-vs-rest apply to .tflite models; a .kgl model carries both"
            );
        }
        let mut model = TrainedModel::load(&job.model)?;
        if let Some(width) = job.width {
            model = kinglet_train::slim::slice_model(&model, width)
                .with_context(|| format!("{}: --width {width}", job.model.display()))?;
        }
        kinglet_train::evaluate(&model, &data)?
    };
    let host_us_per_window = started.elapsed().as_secs_f64() * 1e6 / result.n().max(1) as f64;
    Ok(EvalReport {
        classification: result,
        model: job.model.display().to_string(),
        data: spec.to_string(),
        host_us_per_window,
    })
}

impl EvalReport {
    /// The report as one JSON object (`kinglet eval --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let result = &self.classification;
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
        serde_json::json!({
            "model": self.model,
            "data": self.data,
            "accuracy": result.accuracy(),
            "macro_f1": result.macro_f1(),
            "n": result.n(),
            "class_names": result.class_names,
            "per_class": per_class,
            "confusion": result.confusion,
            "host_us_per_window": self.host_us_per_window,
        })
    }

    /// Writes the report as tables, or as one line of JSON.
    pub fn write(&self, out: &mut dyn Write, json: bool) -> std::io::Result<()> {
        if json {
            writeln!(out, "{}", self.to_json())
        } else {
            writeln!(out, "model {}\ndata  {}", self.model, self.data)?;
            write!(out, "{}", self.classification.to_text())
        }
    }
}

/// Runs a `.tflite` model over every window with kinglet-graph's interpreter.
fn evaluate_tflite(job: &EvalJob, data: &Dataset) -> Result<Classification> {
    let path = &job.model;
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
        return evaluate_image_tflite(job, &graph, meta.as_ref(), data);
    }
    // Which of the dataset's channels feed each input: by name, whatever the dataset.
    let layout = kinglet_adapt::models::input_layout(&graph, &file_name, &data.channel_names)
        .with_context(|| format!("{}", path.display()))?;
    let c_all = data.channels();
    let mut windows: Vec<f32> = data.data.clone();
    let step = data.sample_shape[0] * c_all;
    let scaling = job.input_scaling.unwrap_or(if meta.is_some() {
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
                job.tflite_kernels,
            )?
        }
        InputScaling::Model => {
            let norm = stored_normalisation(meta.as_ref(), path)?;
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
                job.tflite_kernels,
            )?
        }
        InputScaling::None => evaluate_f32_with_kernels(
            &graph,
            &layout,
            windows.chunks_exact(step),
            c_all,
            job.tflite_kernels,
        )?,
    };
    let predictions: Vec<u32> = outputs.predictions().iter().map(|&p| p as u32).collect();
    let outputs_n = outputs.scores.first().map(|s| s.len()).unwrap_or(0);
    let one_vs_rest = job.one_vs_rest.or_else(|| {
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
    job: &EvalJob,
    graph: &kinglet_graph::Graph,
    meta: Option<&serde_json::Value>,
    data: &Dataset,
) -> Result<Classification> {
    let path = &job.model;
    if job.input_scaling.is_some_and(|s| s != InputScaling::Model) || job.one_vs_rest.is_some() {
        bail!(
            "{}: image models take their stored normalisation; --input-scaling seed/none and --one-vs-rest do not apply",
            path.display()
        );
    }
    let norm = stored_normalisation(meta, path)?;
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
        job.tflite_kernels,
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

/// The standardisation a kinglet-exported `.tflite` carries in its metadata.
fn stored_normalisation(
    meta: Option<&serde_json::Value>,
    path: &Path,
) -> Result<kinglet_train::ChannelNormalisation> {
    let norm = meta.and_then(|m| m.get("normalisation")).with_context(|| {
        format!(
            "{}: no kinglet normalisation in its metadata",
            path.display()
        )
    })?;
    serde_json::from_value(norm.clone())
        .with_context(|| format!("{}: malformed normalisation metadata", path.display()))
}
