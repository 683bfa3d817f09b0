//! Reading a cascade's model files: `.tflite` models as they are, trained `.kgl` models
//! lowered to graphs, each with its normalisation in the stream's channel order. This needs
//! the training crate, which kinglet-adapt does not depend on; the opened graphs then go to
//! [`StreamModels`], which does the rest.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use kinglet_adapt::StrategySpec;
use kinglet_adapt::models::{DualClassifier, GraphClassifier, Normalise, WindowData, load_tflite};
use kinglet_adapt::strategy::StrategyKind;
use kinglet_adapt::stream::StreamModels;
use kinglet_data::spec::{DataSpec, LoadOptions};
use kinglet_graph::Graph;

use super::CascadeJob;

/// A model file opened as a graph (with the normalisation a `.kgl` carries).
pub(crate) struct LoadedModel {
    pub(crate) name: String,
    pub(crate) graph: Graph,
    pub(crate) normalise: Option<Normalise>,
}

/// Opens a model for the windows of `data`: its normalisation in `data`'s channel order, and
/// a refusal if the model was trained on windows sampled at another rate.
pub(crate) fn load_model(path: &Path, data: &kinglet_data::Dataset) -> Result<LoadedModel> {
    let trained = |n: &kinglet_train::ChannelNormalisation| -> Result<Normalise> {
        n.check_rate(data)
            .with_context(|| format!("{}", path.display()))?;
        Ok(normalise_for(n, &data.channel_names))
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    match kinglet_train::ModelKind::of(path)? {
        kinglet_train::ModelKind::Tflite => {
            let graph = load_tflite(path)?;
            // kinglet-written models carry their training normalisation in the metadata;
            // the seed's models have none and take seed-scaled or raw inputs instead.
            let normalise = match graph.metadata.get(kinglet_graph::meta::NORMALISATION) {
                Some(text) => {
                    let meta: serde_json::Value =
                        serde_json::from_str(text).with_context(|| {
                            format!("{}: malformed normalisation metadata", path.display())
                        })?;
                    let n: kinglet_train::ChannelNormalisation = serde_json::from_value(
                        meta.get("normalisation").cloned().unwrap_or(meta.clone()),
                    )
                    .with_context(|| {
                        format!("{}: malformed normalisation metadata", path.display())
                    })?;
                    Some(trained(&n)?)
                }
                None => None,
            };
            Ok(LoadedModel {
                name,
                graph,
                normalise,
            })
        }
        kinglet_train::ModelKind::Kgl => {
            let model = kinglet_train::TrainedModel::load(path)
                .with_context(|| format!("loading {}", path.display()))?;
            let graph = kinglet_train::lower(&model)
                .with_context(|| format!("lowering {}", path.display()))?;
            let normalise = Some(trained(&model.normalisation)?);
            Ok(LoadedModel {
                name,
                graph,
                normalise,
            })
        }
    }
}

/// The model's per-channel normalisation in the dataset's channel order (identity for
/// channels the model does not read).
fn normalise_for(n: &kinglet_train::ChannelNormalisation, channel_names: &[String]) -> Normalise {
    let mut mean = Vec::new();
    let mut std = Vec::new();
    for c in channel_names {
        match n.channels.iter().position(|m| m == c) {
            Some(i) => {
                mean.push(n.mean[i]);
                std.push(n.std[i]);
            }
            None => {
                mean.push(0.0);
                std.push(1.0);
            }
        }
    }
    Normalise { mean, std }
}

/// Opens every model `job` names on the windows of `data_spec`, ready for [`simulate`](kinglet_adapt::simulate()).
pub(super) fn open_stream(
    job: &CascadeJob,
    spec: &StrategySpec,
    data_spec: &DataSpec,
) -> Result<StreamModels> {
    let data = kinglet_data::spec::load(data_spec, &LoadOptions::default())
        .with_context(|| format!("loading {data_spec}"))?;
    if data.is_empty() {
        bail!("{data_spec}: no windows");
    }
    let windows = Rc::new(WindowData::from_dataset(&data).with_context(|| format!("{data_spec}"))?);
    let seed = match job.input_scaling.as_str() {
        "seed" => true,
        "none" => false,
        other => bail!("--input-scaling {other}: expected seed or none"),
    };
    let open = |path: &Path| -> Result<GraphClassifier> {
        let m = load_model(path, &data)?;
        let uint8 = m
            .graph
            .inputs
            .iter()
            .any(|&id| m.graph.tensor(id).dtype == kinglet_graph::DType::U8);
        if uint8 && !seed {
            bail!("{}: uint8 inputs need --input-scaling seed", path.display());
        }
        Ok(
            GraphClassifier::new(&m.name, &m.graph, windows.clone(), m.normalise)?
                .with_kernels(job.tflite_kernels)?,
        )
    };
    if spec.kind == StrategyKind::OneBigSixLittle && job.little.len() != data.class_names.len() {
        bail!(
            "1b6s needs one little model per class ({} for {data_spec}), got {}",
            data.class_names.len(),
            job.little.len()
        );
    }
    let big_path = job
        .big
        .as_ref()
        .context("--big is required (or --outputs)")?;
    let big = open(big_path)?;
    let littles = job
        .little
        .iter()
        .map(|p| open(p))
        .collect::<Result<Vec<_>>>()?;
    let dual = match &job.dual {
        Some(p) => {
            let m = load_model(p, &data)?;
            Some(
                DualClassifier::new(&m.name, &m.graph, windows.clone(), m.normalise)?
                    .with_kernels(job.tflite_kernels)?,
            )
        }
        None => None,
    };
    let window_period_s = kinglet_data::spec::window_period_s(data_spec, &data)
        .unwrap_or(kinglet_adapt::WINDOW_PERIOD_S);
    Ok(StreamModels::new(
        &data,
        &windows,
        window_period_s,
        spec.kind,
        big,
        littles,
        dual,
    )?)
}
