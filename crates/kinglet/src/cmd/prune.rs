//! `kinglet prune`: magnitude pruning of a trained `.kgl` model while fine-tuning it.
//! Unstructured (default): every convolution and dense kernel ends with `--sparsity` of its
//! weights exactly zero (polynomial-decay schedule, masks kept through every step).
//! Structured (`--structured FRACTION`): that fraction of every convolution block's filters,
//! the weakest by L1 norm, is removed and the architecture shrunk before fine-tuning; the
//! result is an ordinary smaller model. Both can be combined.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kinglet_data::spec::DataSpec;
use kinglet_train::TrainedModel;
use kinglet_train::prune::{
    DEFAULT_EPOCHS, DEFAULT_FREQUENCY, DEFAULT_MIN_WEIGHTS, DEFAULT_SPARSITY, PruneOptions,
};

use kinglet::jobs::train::{load, load_train, train_spec};

use super::common::Bar;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The trained model to prune (`.kgl`).
    #[arg(long)]
    pub model: PathBuf,
    /// Fine-tuning data, e.g. `mnist:../shared/data/mnist` (split `train` unless given).
    #[arg(long)]
    pub data: String,
    /// Fine-tune on the source's `val` split as well (as for a model trained with
    /// `train --merge-val`).
    #[arg(long, conflicts_with = "val")]
    pub merge_val: bool,
    /// Score the pruned model on this data at the end (e.g. the source's `:val` split).
    #[arg(long)]
    pub val: Option<String>,
    /// Where the pruned model goes (`.kgl`).
    #[arg(long)]
    pub out: PathBuf,
    /// Unstructured: fraction of every kernel's weights that ends exactly zero. Default 0.8,
    /// or 0 (none) when `--structured` is given.
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// Unstructured: sparsity at the first step of the polynomial-decay schedule.
    #[arg(long, default_value_t = 0.0)]
    pub initial_sparsity: f64,
    /// Unstructured: optimiser steps between mask updates.
    #[arg(long, default_value_t = DEFAULT_FREQUENCY)]
    pub frequency: usize,
    /// Unstructured: kernels with fewer weights stay dense (they cost little flash, and each
    /// of their weights matters more); 0 prunes every kernel.
    #[arg(long, default_value_t = DEFAULT_MIN_WEIGHTS)]
    pub min_weights: usize,
    /// Structured: remove this fraction of every convolution block's filters (the smallest
    /// L1 norms) and shrink the architecture before fine-tuning.
    #[arg(long)]
    pub structured: Option<f64>,
    /// Fine-tuning epochs (0: prune in one shot, no fine-tuning).
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    pub epochs: usize,
    /// Constant fine-tuning rate (default: the rate the model's schedule reached at its end).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bar (one line per epoch instead).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: PruneArgs) -> Result<()> {
    let model = TrainedModel::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let spec = train_spec(&args.data)?;
    let train_set = load_train(&spec, args.merge_val)?;
    let val_set = args
        .val
        .as_deref()
        .map(|v| load(&DataSpec::parse(v)?))
        .transpose()?;
    let final_sparsity = args.sparsity.unwrap_or(if args.structured.is_some() {
        0.0
    } else {
        DEFAULT_SPARSITY
    });
    let options = PruneOptions {
        seed: args.seed,
        epochs: args.epochs,
        learning_rate: args.lr,
        final_sparsity,
        initial_sparsity: args.initial_sparsity,
        frequency: args.frequency,
        min_weights: args.min_weights,
        structured: args.structured,
        data_description: spec.to_string(),
    };
    eprintln!(
        "pruning `{}` ({} parameters){}{}, fine-tuning {} epoch(s) on {} windows of {spec}{}",
        model.architecture.name,
        model.parameter_count(),
        args.structured
            .map(|f| format!(": {:.0} % of filters removed", f * 100.0))
            .unwrap_or_default(),
        if final_sparsity > 0.0 {
            format!(", kernels to {:.0} % zeros", final_sparsity * 100.0)
        } else {
            String::new()
        },
        args.epochs,
        train_set.len(),
        if args.merge_val { " + val" } else { "" },
    );
    let mut progress = Bar::new(args.quiet);
    let outcome = kinglet_train::prune::prune(
        &model,
        &train_set,
        val_set.as_ref(),
        &options,
        &mut progress,
    )?;
    progress.clear();
    for f in &outcome.filters {
        println!("{:<20} filters {:>4} -> {:>4}", f.layer, f.before, f.after);
    }
    let (mut zeros, mut weights) = (0, 0);
    for l in &outcome.layers {
        println!(
            "{:<28} {:>7} weights {:>7} zero  sparsity {:.3}",
            l.name,
            l.weights,
            l.zeros,
            l.sparsity()
        );
        zeros += l.zeros;
        weights += l.weights;
    }
    println!(
        "kernels: {zeros} of {weights} weights zero (sparsity {:.3}); parameters {} -> {}",
        zeros as f64 / weights.max(1) as f64,
        outcome.parameters_before,
        outcome.parameters_after
    );
    outcome.model.save(&args.out)?;
    eprintln!(
        "wrote {}{}",
        args.out.display(),
        outcome
            .model
            .provenance
            .validation_accuracy
            .map(|a| format!(" (accuracy on --val {a:.4})"))
            .unwrap_or_default()
    );
    Ok(())
}
