//! `kinglet quantize --weight-budget` / `--flash-budget`: a weight width per layer chosen on
//! validation windows for a memory budget ([`kinglet_compress::bitwidth`]), then a short
//! quantisation-aware fine-tune at those widths when the model is a trained `.kgl` (the
//! compression crate cannot train; this crate can reach both).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use kinglet_compress::bitwidth::{BitChoice, Budget, Validation, choose_bits};
use kinglet_compress::{CalibrationSample, PtqConfig};
use kinglet_data::Dataset;
use kinglet_graph::Graph;

/// The budget options of a quantise job.
#[derive(Debug, Clone, Default)]
pub struct BudgetChoice {
    /// Bytes of packed weights and int32 biases (`3kB`, `2KiB`, `1500`).
    pub weight_budget: Option<String>,
    /// Bytes of the written `.tflite` file.
    pub flash_budget: Option<String>,
    /// Windows the widths are chosen on (a validation split).
    pub validation: Option<String>,
    /// Quantisation-aware fine-tuning epochs at the chosen widths (`.kgl` models only).
    pub fine_tune_epochs: usize,
}

impl BudgetChoice {
    pub fn budget(&self) -> Result<Option<Budget>> {
        Ok(match (&self.weight_budget, &self.flash_budget) {
            (Some(_), Some(_)) => anyhow::bail!("give --weight-budget or --flash-budget, not both"),
            (Some(b), None) => Some(Budget::Weights(
                Budget::parse_bytes(b).context("--weight-budget")?,
            )),
            (None, Some(b)) => Some(Budget::File(
                Budget::parse_bytes(b).context("--flash-budget")?,
            )),
            (None, None) => None,
        })
    }
}

/// A graph to quantise and its calibration windows, after choosing widths (and fine-tuning).
pub struct Budgeted {
    pub graph: Graph,
    pub samples: Vec<CalibrationSample>,
    pub choice: BitChoice,
    /// The QAT fine-tuned model that replaced the float one (its activation ranges and
    /// learned clipping are in `graph`).
    pub fine_tuned: Option<kinglet_train::TrainedModel>,
}

/// Chooses widths for `graph` (the float model at `model_path`) under `budget`, printing the
/// per-layer sensitivity to `out`, then fine-tunes a `.kgl` model at those widths on `train`
/// (the calibration split) and returns the graph to quantise.
#[allow(clippy::too_many_arguments)]
pub fn choose_and_fine_tune(
    model_path: &Path,
    graph: Graph,
    samples: Vec<CalibrationSample>,
    train: &Dataset,
    train_description: &str,
    config: &PtqConfig,
    options: &BudgetChoice,
    budget: Budget,
    out: &mut dyn Write,
) -> Result<Budgeted> {
    let validation_spec = options
        .validation
        .as_deref()
        .context("choosing bit widths needs --validation <spec> (a validation split)")?;
    let spec = kinglet_data::spec::DataSpec::parse(validation_spec)?;
    let val = kinglet_data::spec::load_labelled(&spec, &Default::default())
        .with_context(|| format!("loading {spec}"))?;
    let (_, val_samples, val_targets) = super::quantize::load_with_samples(model_path, &val)?;
    let validation = Validation {
        samples: &val_samples,
        targets: &val_targets,
    };
    let mut lines = Vec::new();
    let choice = choose_bits(&graph, &samples, config, &validation, budget, &mut |l| {
        lines.push(l.to_owned())
    })
    .with_context(|| format!("choosing bit widths for {}", model_path.display()))?;
    for line in &lines {
        writeln!(out, "  {line}")?;
    }
    let list: Vec<String> = choice.bits.iter().map(|b| b.to_string()).collect();
    writeln!(
        out,
        "chose --bits {} on {} windows of {spec}: {} bytes ({:?}), validation {:.2} % (int8 {:.2} %)",
        list.join(","),
        val_samples.len(),
        choice.bytes,
        budget,
        100.0 * choice.accuracy,
        100.0 * choice.int8_accuracy
    )?;
    let kgl = kinglet_train::ModelKind::of(model_path)? == kinglet_train::ModelKind::Kgl;
    if !kgl || options.fine_tune_epochs == 0 {
        return Ok(Budgeted {
            graph,
            samples,
            choice,
            fine_tuned: None,
        });
    }
    let model = kinglet_train::TrainedModel::load(model_path)
        .with_context(|| format!("loading {}", model_path.display()))?;
    let qat = kinglet_train::qat::QatOptions {
        epochs: options.fine_tune_epochs,
        weight_bits: choice.bits.clone(),
        data_description: train_description.to_owned(),
        ..Default::default()
    };
    let outcome = kinglet_train::qat::train_qat(
        &model.architecture,
        Some(&model),
        train,
        Some(&val),
        &qat,
        &mut kinglet_train::train::Silent,
    )
    .context("fine-tuning at the chosen widths")?;
    let graph = kinglet_train::lower(&outcome.model).context("lowering the fine-tuned model")?;
    let (all, _) = kinglet_train::graph_inputs(&outcome.model, train)?;
    let picked = super::quantize::spread(all.len(), samples.len());
    writeln!(
        out,
        "fine-tuned {} epoch(s) with QAT at those widths: validation {:.2} % under fake quantisation",
        outcome.history.len(),
        100.0
            * outcome
                .model
                .provenance
                .validation_accuracy
                .unwrap_or(f64::NAN)
    )?;
    Ok(Budgeted {
        graph,
        samples: picked.iter().map(|&i| all[i].clone()).collect(),
        choice,
        fine_tuned: Some(outcome.model),
    })
}
