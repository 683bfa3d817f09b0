//! Pruning of a trained model, followed by fine-tuning in [`crate::train()`]'s loop.
//!
//! - Unstructured magnitude pruning (as TensorFlow Model Optimization's `prune_low_magnitude`
//!   with a [`PolynomialDecay`] schedule): every convolution, depthwise and dense kernel (not
//!   biases, not batch norm) gets a mask; every `frequency` steps the mask is recomputed to
//!   zero the smallest-magnitude fraction `s(t)` of that layer's weights, and after every
//!   optimiser step the masked weights are set back to exactly `0.0`. The saved model holds
//!   exact zeros, which symmetric int8 weight quantisation maps to the integer 0 (zero point
//!   0), so a sparse storage format can skip them after quantisation too.
//! - Structured pruning removes the output filters of every convolution block with the
//!   smallest L1 norm (scaled by the batch norm's per-channel gain, which multiplies the
//!   filter's output), rewrites the architecture with fewer filters and copies the surviving
//!   weights, including the matching input channels of the next block and the rows of the
//!   first dense layer (in flatten order, branch by branch). The result is an ordinary, smaller
//!   model: it lowers, quantises and compiles like any other.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use kinglet_data::Dataset;

use crate::Error;
use crate::arch::{Architecture, Task};
use crate::model_file::{Provenance, TrainedModel};
use crate::network::{BATCH_NORM_EPSILON, NamedTensor, Network};
use crate::train::{EpochReport, Progress, StepHook, TrainOptions, train_with_hook};

/// Default final sparsity: 80 % of every kernel's weights become zero.
pub const DEFAULT_SPARSITY: f64 = 0.8;
/// Default fine-tuning epochs.
pub const DEFAULT_EPOCHS: usize = 2;
/// TF-MOT's default: the mask is recomputed every 100 steps.
pub const DEFAULT_FREQUENCY: usize = 100;
/// Kernels with fewer weights stay dense by default: they cost next to no flash, and each of
/// their weights matters more (the seed CNN's 108-weight convolution at 80 % sparsity keeps
/// under two weights per 3×3 filter).
pub const DEFAULT_MIN_WEIGHTS: usize = 1000;

/// TF-MOT's `PolynomialDecay` sparsity schedule: `s(t) = s_f + (s_i − s_f)·(1 − p)^power`
/// with `p = (t − begin) / (end − begin)` clamped to [0, 1]; the mask changes at `begin`,
/// every `frequency` steps after it and (kinglet's addition, so the final sparsity is always
/// reached) at `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolynomialDecay {
    pub initial_sparsity: f64,
    pub final_sparsity: f64,
    pub begin_step: usize,
    pub end_step: usize,
    pub power: f64,
    pub frequency: usize,
}

impl PolynomialDecay {
    /// The sparsity targeted at optimiser step `step` (0-based).
    pub fn sparsity_at(&self, step: usize) -> f64 {
        let span = self.end_step.saturating_sub(self.begin_step);
        let progress = if span == 0 {
            if step >= self.begin_step { 1.0 } else { 0.0 }
        } else {
            (step.saturating_sub(self.begin_step) as f64 / span as f64).clamp(0.0, 1.0)
        };
        self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress).powf(self.power)
    }

    /// Whether the mask is recomputed at `step`.
    pub fn updates_mask_at(&self, step: usize) -> bool {
        step >= self.begin_step
            && step <= self.end_step
            && ((step - self.begin_step).is_multiple_of(self.frequency.max(1))
                || step == self.end_step)
    }

    /// kinglet's schedule over a run of `steps` optimiser steps: from `initial` at step 0 to
    /// `final_sparsity` after two thirds of the steps, so the last third fine-tunes under the
    /// final mask; at least ten mask updates on short runs.
    pub fn over(steps: usize, initial: f64, final_sparsity: f64, frequency: usize) -> Self {
        let end_step = (steps * 2 / 3).min(steps.saturating_sub(1));
        PolynomialDecay {
            initial_sparsity: initial,
            final_sparsity,
            begin_step: 0,
            end_step,
            power: 3.0,
            frequency: frequency.min((end_step / 10).max(1)).max(1),
        }
    }
}

/// Whether a model tensor is a kernel that unstructured pruning masks.
pub fn is_prunable(name: &str) -> bool {
    name.ends_with(".conv.weight")
        || name.ends_with(".depthwise.weight")
        || name == "output.weight"
        || (name.starts_with("hidden") && name.ends_with(".weight"))
}

/// Which weights to zero (`true`) so that the `round(sparsity · n)` smallest magnitudes go;
/// ties fall to the lower index. Weights already zero are the smallest, so a growing
/// sparsity never revives them.
pub fn magnitude_mask(values: &[f32], sparsity: f64) -> Vec<bool> {
    let n = values.len();
    let k = ((sparsity.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()).then(a.cmp(&b)));
    let mut pruned = vec![false; n];
    for &i in &order[..k] {
        pruned[i] = true;
    }
    pruned
}

/// Zeros of one pruned kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSparsity {
    pub name: String,
    pub weights: usize,
    pub zeros: usize,
}

impl LayerSparsity {
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.weights.max(1) as f64
    }
}

/// Exact zeros of every prunable kernel of `model`.
pub fn sparsity_report(model: &TrainedModel) -> Vec<LayerSparsity> {
    model
        .tensors
        .iter()
        .filter(|t| is_prunable(&t.name))
        .map(|t| LayerSparsity {
            name: t.name.clone(),
            weights: t.values.len(),
            zeros: t.values.iter().filter(|v| **v == 0.0).count(),
        })
        .collect()
}

/// Filters of one convolution block before and after structured pruning.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChange {
    /// `branch<b>.block<i>`.
    pub layer: String,
    pub before: usize,
    pub after: usize,
}

/// Options of [`prune`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub seed: u64,
    /// Fine-tuning epochs; 0 prunes in one shot without fine-tuning.
    pub epochs: usize,
    /// Constant fine-tuning rate; by default the rate the model's schedule reached at its
    /// last epoch.
    pub learning_rate: Option<f64>,
    /// Unstructured: fraction of every kernel's weights zeroed at the end (0 = none).
    pub final_sparsity: f64,
    /// Unstructured: sparsity at the first step.
    pub initial_sparsity: f64,
    /// Unstructured: steps between mask updates.
    pub frequency: usize,
    /// Unstructured: kernels with fewer weights than this are not pruned.
    pub min_weights: usize,
    /// Structured: fraction of every convolution block's filters removed before fine-tuning.
    pub structured: Option<f64>,
    /// Free-text description of the data, stored in the model's provenance.
    pub data_description: String,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            seed: 0,
            epochs: DEFAULT_EPOCHS,
            learning_rate: None,
            final_sparsity: DEFAULT_SPARSITY,
            initial_sparsity: 0.0,
            frequency: DEFAULT_FREQUENCY,
            min_weights: DEFAULT_MIN_WEIGHTS,
            structured: None,
            data_description: String::new(),
        }
    }
}

/// A pruned (and fine-tuned) model.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    pub model: TrainedModel,
    pub history: Vec<EpochReport>,
    /// Zeros per kernel of the result.
    pub layers: Vec<LayerSparsity>,
    /// Filters per convolution block (empty without structured pruning).
    pub filters: Vec<FilterChange>,
    pub parameters_before: usize,
    pub parameters_after: usize,
}

/// Keeps the masks of unstructured pruning: recomputes them on the schedule and zeros the
/// masked weights after every optimiser step.
struct MaskHook {
    final_sparsity: f64,
    initial_sparsity: f64,
    frequency: usize,
    min_weights: usize,
    schedule: Option<PolynomialDecay>,
    step: usize,
    /// Per kernel name, `true` where the weight is pruned.
    masks: BTreeMap<String, Vec<bool>>,
}

impl MaskHook {
    fn update(&mut self, net: &Network, sparsity: f64) {
        for mut t in net
            .named_tensors()
            .into_iter()
            .filter(|t| is_prunable(&t.name) && t.values.len() >= self.min_weights)
        {
            // Zero the previously pruned weights first: the optimiser has nudged them since,
            // and they must stay the smallest so pruning never revives a weight.
            if let Some(old) = self.masks.get(&t.name) {
                for (v, &p) in t.values.iter_mut().zip(old) {
                    if p {
                        *v = 0.0;
                    }
                }
            }
            let mask = magnitude_mask(&t.values, sparsity);
            self.masks.insert(t.name, mask);
        }
    }
}

impl StepHook for MaskHook {
    fn run_started(&mut self, steps: usize) {
        self.schedule = Some(PolynomialDecay::over(
            steps,
            self.initial_sparsity,
            self.final_sparsity,
            self.frequency,
        ));
    }

    fn after_step(&mut self, net: Network) -> Result<Network, Error> {
        let schedule = self
            .schedule
            .ok_or_else(|| Error::Model("pruning schedule used before the run started".into()))?;
        if schedule.updates_mask_at(self.step) {
            self.update(&net, schedule.sparsity_at(self.step));
        }
        self.step += 1;
        Ok(apply_masks(net, &self.masks))
    }
}

/// `param` with the weights at `pruned` set to exactly zero.
fn masked<const D: usize>(param: Param<Tensor<D>>, pruned: Option<&Vec<bool>>) -> Param<Tensor<D>> {
    let Some(pruned) = pruned else {
        return param;
    };
    param.map(|w| {
        let grad = w.is_require_grad();
        let mask: Tensor<D, Bool> =
            Tensor::from_data(TensorData::new(pruned.clone(), w.dims()), &w.device());
        let out = w.detach().mask_fill(mask, 0.0).detach();
        if grad { out.require_grad() } else { out }
    })
}

/// Zeros the masked weights of every kernel of `net`.
fn apply_masks(mut net: Network, masks: &BTreeMap<String, Vec<bool>>) -> Network {
    let get = |p: &str, part: &str| masks.get(&format!("{p}.{part}.weight"));
    if let Some(image) = &mut net.image {
        for (i, block) in image.blocks.iter_mut().enumerate() {
            let p = format!("branch0.block{i}");
            if let Some(dw) = &mut block.depthwise {
                dw.weight = masked(dw.weight.clone(), get(&p, "depthwise"));
            }
            block.conv.weight = masked(block.conv.weight.clone(), get(&p, "conv"));
        }
    }
    for (b, branch) in net.branches.iter_mut().enumerate() {
        for (i, block) in branch.blocks.iter_mut().enumerate() {
            let p = format!("branch{b}.block{i}");
            if let Some(dw) = &mut block.depthwise {
                dw.weight = masked(dw.weight.clone(), get(&p, "depthwise"));
            }
            block.conv.weight = masked(block.conv.weight.clone(), get(&p, "conv"));
        }
    }
    for (i, layer) in net.hidden.iter_mut().enumerate() {
        layer.weight = masked(
            layer.weight.clone(),
            masks.get(&format!("hidden{i}.weight")),
        );
    }
    net.output.weight = masked(net.output.weight.clone(), masks.get("output.weight"));
    net
}

/// Zeros the masked weights of plain-memory tensors (exact `+0.0`).
fn apply_masks_to_tensors(tensors: &mut [NamedTensor], masks: &BTreeMap<String, Vec<bool>>) {
    for t in tensors {
        if let Some(mask) = masks.get(&t.name) {
            for (v, &p) in t.values.iter_mut().zip(mask) {
                if p {
                    *v = 0.0;
                }
            }
        }
    }
}

fn check_fraction(what: &str, v: f64) -> Result<(), Error> {
    if v.is_finite() && (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::Data(format!("{what} must be in [0, 1), got {v}")))
    }
}

/// Prunes `model` as `options` ask (structured first, then unstructured during fine-tuning on
/// `train`), keeping the last epoch; scores the result on `validation` when given.
pub fn prune(
    model: &TrainedModel,
    train: &Dataset,
    validation: Option<&Dataset>,
    options: &PruneOptions,
    progress: &mut dyn Progress,
) -> Result<PruneOutcome, Error> {
    check_fraction("the sparsity", options.final_sparsity)?;
    check_fraction("the initial sparsity", options.initial_sparsity)?;
    if options.initial_sparsity > options.final_sparsity {
        return Err(Error::Data(format!(
            "the initial sparsity {} exceeds the final sparsity {}",
            options.initial_sparsity, options.final_sparsity
        )));
    }
    if let Some(f) = options.structured {
        check_fraction("the fraction of filters to remove", f)?;
    }
    if let Some(lr) = options.learning_rate
        && !(lr.is_finite() && lr > 0.0)
    {
        return Err(Error::Data(format!(
            "the learning rate must be a positive number, got {lr}"
        )));
    }
    if model.dataset_classes != train.class_names {
        return Err(Error::Data(format!(
            "the model was trained on classes {:?}, the data has {:?}",
            model.dataset_classes, train.class_names
        )));
    }
    let parameters_before = model.parameter_count();
    let (start, filters) = match options.structured {
        Some(fraction) => remove_filters(model, fraction)?,
        None => (without_ranges(model), Vec::new()),
    };
    let mut hook = MaskHook {
        final_sparsity: options.final_sparsity,
        initial_sparsity: options.initial_sparsity,
        frequency: options.frequency,
        min_weights: options.min_weights,
        schedule: None,
        step: 0,
        masks: BTreeMap::new(),
    };
    let (mut pruned, history) = if options.epochs == 0 {
        let mut m = start;
        let prunable =
            |t: &&mut NamedTensor| is_prunable(&t.name) && t.values.len() >= options.min_weights;
        for t in m.tensors.iter_mut().filter(prunable) {
            let mask = magnitude_mask(&t.values, options.final_sparsity);
            hook.masks.insert(t.name.clone(), mask);
        }
        apply_masks_to_tensors(&mut m.tensors, &hook.masks);
        (m, Vec::new())
    } else {
        fine_tune(&start, train, options, progress, &mut hook)?
    };
    apply_masks_to_tensors(&mut pruned.tensors, &hook.masks);
    // Negative zeros become +0.0, so every pruned weight has the same bit pattern.
    for t in pruned.tensors.iter_mut().filter(|t| is_prunable(&t.name)) {
        for v in t.values.iter_mut().filter(|v| **v == 0.0) {
            *v = 0.0;
        }
    }
    let base = &model.provenance;
    pruned.provenance = Provenance {
        seed: options.seed,
        data: format!("{}; pruned on {}", base.data, options.data_description),
        epochs_trained: base.epochs_trained + history.len(),
        best_epoch: base.epochs_trained + history.len(),
        validation_accuracy: validation
            .map(|v| crate::train::evaluate(&pruned, v).map(|c| c.accuracy()))
            .transpose()?,
    };
    Ok(PruneOutcome {
        layers: sparsity_report(&pruned),
        parameters_after: pruned.parameter_count(),
        model: pruned,
        history,
        filters,
        parameters_before,
    })
}

/// Fine-tunes `start` in the training loop with `hook` keeping the masks, at a constant rate,
/// keeping the last epoch (a validation pick could prefer an early, less sparse one).
fn fine_tune(
    start: &TrainedModel,
    train: &Dataset,
    options: &PruneOptions,
    progress: &mut dyn Progress,
    hook: &mut MaskHook,
) -> Result<(TrainedModel, Vec<EpochReport>), Error> {
    let arch = &start.architecture;
    let rate = options.learning_rate.unwrap_or_else(|| {
        arch.training
            .learning_rate_at(arch.training.epochs.saturating_sub(1))
    });
    // Weight averaging would blend epochs of different sparsity: the last epoch is kept.
    let mut tuning = arch.clone();
    tuning.training.average_last = 0;
    let train_options = TrainOptions {
        seed: options.seed,
        epochs: Some(options.epochs),
        data_description: options.data_description.clone(),
        init: Some(start.clone()),
        learning_rate: Some(rate),
        ..TrainOptions::default()
    };
    let outcome = train_with_hook(&tuning, train, None, &train_options, progress, hook)?;
    let mut model = outcome.model;
    model.architecture = arch.clone();
    Ok((model, outcome.history))
}

/// `model` without the activation ranges of quantisation-aware training: pruning changes the
/// activations, so the ranges would be stale.
fn without_ranges(model: &TrainedModel) -> TrainedModel {
    let mut m = model.clone();
    m.tensors.retain(|t| !crate::qat::is_qat_record(&t.name));
    m
}

/// Tensor `t` seen as `[a, b, inner]` (a 1-D tensor as `[a, 1, 1]`) with only rows `rows` of
/// axis 0 and columns `cols` of axis 1 (all when `None`).
fn select(t: &NamedTensor, rows: Option<&[usize]>, cols: Option<&[usize]>) -> NamedTensor {
    let a = t.shape.first().copied().unwrap_or(1);
    let b = t.shape.get(1).copied().unwrap_or(1);
    let inner: usize = t.shape.iter().skip(2).product();
    let all_rows: Vec<usize> = (0..a).collect();
    let all_cols: Vec<usize> = (0..b).collect();
    let rows = rows.unwrap_or(&all_rows);
    let cols = cols.unwrap_or(&all_cols);
    let mut values = Vec::with_capacity(rows.len() * cols.len() * inner);
    for &r in rows {
        for &c in cols {
            let at = (r * b + c) * inner;
            values.extend_from_slice(&t.values[at..at + inner]);
        }
    }
    let mut shape = t.shape.clone();
    if let Some(s) = shape.first_mut() {
        *s = rows.len();
    }
    if let Some(s) = shape.get_mut(1) {
        *s = cols.len();
    }
    NamedTensor {
        name: t.name.clone(),
        shape,
        values,
    }
}

fn tensor<'a>(model: &'a TrainedModel, name: &str) -> Result<&'a NamedTensor, Error> {
    model
        .tensor(name)
        .ok_or_else(|| Error::Model(format!("weight `{name}` is missing")))
}

/// Indices of the `keep` filters of block `prefix` with the largest L1 norm (times the batch
/// norm's gain `|γ| / √(var + ε)` when the block has one), in ascending order.
fn strongest_filters(
    model: &TrainedModel,
    prefix: &str,
    filters: usize,
    batch_norm: bool,
    keep: usize,
) -> Result<Vec<usize>, Error> {
    let w = tensor(model, &format!("{prefix}.conv.weight"))?;
    let per = w.values.len() / filters.max(1);
    let mut score: Vec<f64> = w
        .values
        .chunks(per.max(1))
        .map(|c| c.iter().map(|v| f64::from(v.abs())).sum())
        .collect();
    if batch_norm {
        let gamma = &tensor(model, &format!("{prefix}.norm.gamma"))?.values;
        let var = &tensor(model, &format!("{prefix}.norm.running_var"))?.values;
        for (o, s) in score.iter_mut().enumerate() {
            let (g, v) = (gamma.get(o).copied(), var.get(o).copied());
            if let (Some(g), Some(v)) = (g, v) {
                *s *= f64::from(g.abs()) / (f64::from(v) + BATCH_NORM_EPSILON).sqrt();
            }
        }
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    // Strongest first; equal scores keep the lower index.
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order.into_iter().take(keep).collect();
    kept.sort_unstable();
    Ok(kept)
}

/// Structured pruning: removes `round(fraction · filters)` filters (keeping at least one) of
/// every convolution block of every branch, those with the smallest (gain-scaled) L1 norm,
/// and rewrites the architecture and weights to match. No fine-tuning here; activation ranges
/// of quantisation-aware training are dropped.
pub fn remove_filters(
    model: &TrainedModel,
    fraction: f64,
) -> Result<(TrainedModel, Vec<FilterChange>), Error> {
    check_fraction("the fraction of filters to remove", fraction)?;
    let arch = &model.architecture;
    if arch.blocks.is_empty() {
        return Err(Error::Architecture(format!(
            "`{}` has no convolution block to remove filters from",
            arch.name
        )));
    }
    // Every tensor must fit the architecture before indices into them are trusted.
    Network::from_tensors(
        arch,
        model.dataset_classes.len(),
        without_ranges(model).tensors,
        &Device::flex(),
    )?;
    let image = matches!(arch.task, Task::Image { .. });
    let branches = if image { 1 } else { arch.branches.len() };
    let kept_count: Vec<usize> = arch
        .blocks
        .iter()
        .map(|b| {
            let removed = (fraction * b.filters as f64).round() as usize;
            b.filters.saturating_sub(removed).max(1)
        })
        .collect();
    // kept[b][i]: surviving filters of block i of branch b.
    let mut kept = Vec::with_capacity(branches);
    let mut changes = Vec::new();
    for b in 0..branches {
        let mut per_block = Vec::with_capacity(arch.blocks.len());
        for (i, block) in arch.blocks.iter().enumerate() {
            let p = format!("branch{b}.block{i}");
            per_block.push(strongest_filters(
                model,
                &p,
                block.filters,
                block.batch_norm,
                kept_count[i],
            )?);
            changes.push(FilterChange {
                layer: p,
                before: block.filters,
                after: kept_count[i],
            });
        }
        kept.push(per_block);
    }
    let dense_rows = dense_rows(arch, &kept)?;
    let first_dense = if arch.head.hidden.is_empty() {
        "output.weight".to_string()
    } else {
        "hidden0.weight".to_string()
    };
    let mut tensors = Vec::with_capacity(model.tensors.len());
    for t in &model.tensors {
        if crate::qat::is_qat_record(&t.name) {
            continue;
        }
        if t.name == first_dense {
            tensors.push(select(t, Some(&dense_rows), None));
            continue;
        }
        let Some((b, i, part)) = block_tensor(&t.name) else {
            tensors.push(t.clone());
            continue;
        };
        let Some(own) = kept.get(b).and_then(|k| k.get(i)) else {
            return Err(Error::Model(format!(
                "weight `{}` names a block the architecture does not have",
                t.name
            )));
        };
        let previous = i.checked_sub(1).map(|j| kept[b][j].as_slice());
        let selected = match part {
            "conv.weight" => select(t, Some(own), previous),
            "depthwise.weight" | "depthwise.bias" => select(t, previous, None),
            _ => select(t, Some(own), None),
        };
        tensors.push(selected);
    }
    let mut new_arch = arch.clone();
    for (block, &k) in new_arch.blocks.iter_mut().zip(&kept_count) {
        block.filters = k;
    }
    if !new_arch.name.ends_with("-pruned") {
        new_arch.name = format!("{}-pruned", new_arch.name);
    }
    let pruned = TrainedModel {
        architecture: new_arch,
        tensors,
        ..model.clone()
    };
    // Every tensor must fit the rewritten architecture exactly.
    Network::from_model(&pruned, &Device::flex())?;
    Ok((pruned, changes))
}

/// `(branch, block, rest)` of a tensor called `branch<b>.block<i>.<rest>`.
fn block_tensor(name: &str) -> Option<(usize, usize, &str)> {
    let rest = name.strip_prefix("branch")?;
    let (b, rest) = rest.split_once(".block")?;
    let (i, part) = rest.split_once('.')?;
    Some((b.parse().ok()?, i.parse().ok()?, part))
}

/// Rows of the first dense layer that read surviving channels, in order: features are
/// flattened position-major with channels last (Keras `Flatten`), or one per channel after
/// global average pooling, and the branches' features are concatenated in branch order.
fn dense_rows(arch: &Architecture, kept: &[Vec<Vec<usize>>]) -> Result<Vec<usize>, Error> {
    let last = |b: usize| -> Result<&[usize], Error> {
        kept.get(b)
            .and_then(|k| k.last())
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Model(format!("branch {b} has no convolution block")))
    };
    let mut rows = Vec::new();
    if let Some((h, w, c)) = crate::image::feature_map(arch) {
        let channels = last(0)?;
        for pos in 0..h * w {
            rows.extend(channels.iter().map(|&ch| pos * c + ch));
        }
        return Ok(rows);
    }
    let (len, c) = arch.branch_output();
    let positions = if arch.head.global_average_pool {
        1
    } else {
        len
    };
    for b in 0..arch.branches.len() {
        let offset = b * positions * c;
        let channels = last(b)?;
        for pos in 0..positions {
            rows.extend(channels.iter().map(|&ch| offset + pos * c + ch));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Block, Head, Padding};
    use crate::model_file::test_model;

    fn schedule() -> PolynomialDecay {
        PolynomialDecay {
            initial_sparsity: 0.5,
            final_sparsity: 0.8,
            begin_step: 10,
            end_step: 110,
            power: 3.0,
            frequency: 30,
        }
    }

    #[test]
    fn polynomial_decay_follows_tf_mot() {
        let s = schedule();
        assert_eq!(s.sparsity_at(0), 0.5);
        assert_eq!(s.sparsity_at(10), 0.5);
        // Halfway: 0.8 + (0.5 − 0.8)·0.5³ = 0.7625.
        assert!((s.sparsity_at(60) - 0.7625).abs() < 1e-12);
        // p = 0.25: 0.8 − 0.3·0.75³.
        assert!((s.sparsity_at(35) - (0.8 - 0.3 * 0.421875)).abs() < 1e-12);
        assert_eq!(s.sparsity_at(110), 0.8);
        assert_eq!(s.sparsity_at(500), 0.8);
        let updates: Vec<usize> = (0..200).filter(|&t| s.updates_mask_at(t)).collect();
        assert_eq!(updates, vec![10, 40, 70, 100, 110]);
        let run = PolynomialDecay::over(300, 0.0, 0.8, 100);
        assert_eq!((run.end_step, run.frequency), (200, 20));
        assert_eq!(run.sparsity_at(run.end_step), 0.8);
        assert_eq!(PolynomialDecay::over(1, 0.0, 0.5, 100).sparsity_at(0), 0.5);
    }

    #[test]
    fn mask_prunes_the_smallest_and_keeps_zeros_pruned() {
        let w = [0.5f32, -0.1, 0.0, 2.0, -0.3, 0.05];
        let m = magnitude_mask(&w, 0.5);
        assert_eq!(m, vec![false, true, true, false, false, true]);
        assert_eq!(magnitude_mask(&w, 0.0), vec![false; 6]);
        // Growing sparsity over weights whose pruned entries were zeroed keeps them pruned.
        let mut v: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
        let mut previous = vec![false; v.len()];
        for s in [0.1, 0.3, 0.3, 0.6, 0.9] {
            let m = magnitude_mask(&v, s);
            assert!(previous.iter().zip(&m).all(|(p, n)| !p || *n));
            assert_eq!(
                m.iter().filter(|p| **p).count(),
                (s * 100.0_f64).round() as usize
            );
            for (x, p) in v.iter_mut().zip(&m) {
                if *p {
                    *x = 0.0;
                }
            }
            previous = m;
        }
    }

    #[test]
    fn applied_masks_are_exact_zeros_and_leave_the_rest() {
        let device = Device::flex().autodiff();
        let arch = Architecture::preset("little0").unwrap();
        let net = Network::init(&arch, 6, 4, &device).unwrap();
        let before = net.named_tensors();
        let masks: BTreeMap<String, Vec<bool>> = before
            .iter()
            .filter(|t| is_prunable(&t.name))
            .map(|t| (t.name.clone(), magnitude_mask(&t.values, 0.5)))
            .collect();
        assert_eq!(masks.len(), 4);
        let after = apply_masks(net, &masks).named_tensors();
        for (a, b) in before.iter().zip(&after) {
            let mask = masks.get(&a.name);
            for (k, (x, y)) in a.values.iter().zip(&b.values).enumerate() {
                match mask {
                    Some(m) if m[k] => assert_eq!(y.to_bits(), 0, "{} {k}", a.name),
                    _ => assert_eq!(x, y, "{} {k}", a.name),
                }
            }
        }
    }

    fn model_of(arch: &Architecture, classes: usize, seed: u64) -> TrainedModel {
        let net = Network::init(arch, classes, seed, &Device::flex()).unwrap();
        test_model(arch.clone(), classes, net.named_tensors())
    }

    /// Zeroes filter `o` (kernel and bias) of every block of every branch.
    fn zero_filter(model: &mut TrainedModel, o: usize) {
        for t in &mut model.tensors {
            if t.name.ends_with(".conv.weight") {
                let per = t.values.len() / t.shape[0];
                t.values[o * per..(o + 1) * per].fill(0.0);
            } else if t.name.ends_with(".conv.bias") {
                t.values[o] = 0.0;
            }
        }
    }

    fn logits(model: &TrainedModel, inputs: &[(usize, usize)], seed: u64) -> Vec<f32> {
        let device = Device::flex();
        let net = Network::from_model(model, &device).unwrap();
        let mut state = seed;
        let xs = inputs
            .iter()
            .map(|&(channels, length)| {
                let values: Vec<f32> = (0..3 * channels * length)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect();
                Tensor::from_data(TensorData::new(values, [3, channels, length]), &device)
            })
            .collect();
        net.forward(xs).into_data().try_into_vec::<f32>().unwrap()
    }

    /// Removing filters whose kernel and bias are zero must leave the logits as they were.
    fn removing_zero_filters_changes_nothing(arch: Architecture, inputs: &[(usize, usize)]) {
        let mut model = model_of(&arch, 5, 11);
        // Batch-norm statistics away from their initial values, so selecting them matters.
        for t in &mut model.tensors {
            let field = t.name.rsplit('.').next().unwrap_or_default().to_string();
            for (k, v) in t.values.iter_mut().enumerate().filter(|(k, _)| *k != 1) {
                let k = k as f32;
                match field.as_str() {
                    "gamma" => *v = 0.5 + 0.1 * k,
                    "beta" => *v = 0.05 * k,
                    "running_mean" => *v = 0.02 * k,
                    "running_var" => *v = 1.0 + 0.3 * k,
                    _ => {}
                }
            }
        }
        zero_filter(&mut model, 1);
        let (pruned, changes) = remove_filters(&model, 0.25).unwrap();
        assert!(
            changes.iter().all(|c| c.after == c.before - 1),
            "{changes:?}"
        );
        assert!(pruned.parameter_count() < model.parameter_count());
        let before = logits(&model, inputs, 5);
        let after = logits(&pruned, inputs, 5);
        for (a, b) in before.iter().zip(&after) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "{before:?} vs {after:?}"
            );
        }
    }

    fn block(filters: usize, kernel: usize, pool: usize) -> Block {
        Block {
            filters,
            kernel,
            pool,
            padding: Padding::Same,
            batch_norm: false,
            separable: false,
        }
    }

    #[test]
    fn structured_pruning_keeps_multi_branch_flattened_outputs() {
        let mut arch = Architecture::preset("big3").unwrap();
        arch.blocks = vec![block(4, 3, 2), block(4, 3, 2), block(4, 3, 2)];
        arch.window = 32;
        removing_zero_filters_changes_nothing(arch, &[(3, 32), (3, 32), (3, 32)]);
    }

    #[test]
    fn structured_pruning_keeps_separable_batch_norm_pooled_outputs() {
        let mut arch = Architecture::preset("kinglet-lite").unwrap();
        arch.window = 32;
        arch.blocks = vec![
            Block {
                batch_norm: true,
                ..block(4, 5, 2)
            },
            Block {
                batch_norm: true,
                separable: true,
                ..block(4, 3, 2)
            },
        ];
        arch.head = Head {
            global_average_pool: true,
            hidden: vec![6],
        };
        removing_zero_filters_changes_nothing(arch, &[(9, 32)]);
    }

    #[test]
    fn structured_pruning_keeps_image_outputs() {
        let mut arch = crate::image::mnist_cnn();
        arch.task = Task::Image {
            height: 12,
            width: 12,
        };
        arch.blocks = vec![
            Block {
                padding: Padding::Valid,
                ..block(4, 3, 2)
            },
            block(4, 3, 1),
        ];
        removing_zero_filters_changes_nothing(arch, &[(1, 144)]);
    }

    #[test]
    fn structured_pruning_drops_the_weakest_filters() {
        let arch = crate::image::mnist_cnn();
        let mut model = model_of(&arch, 10, 3);
        // Filter 7 a hundred times larger than the others: it must survive removing 11 of 12.
        for t in &mut model.tensors {
            if t.name == "branch0.block0.conv.weight" {
                for v in &mut t.values[7 * 9..8 * 9] {
                    *v *= 100.0;
                }
            }
        }
        let (pruned, changes) = remove_filters(&model, 0.95).unwrap();
        assert_eq!(changes[0].after, 1);
        let w = pruned.tensor("branch0.block0.conv.weight").unwrap();
        let original = model.tensor("branch0.block0.conv.weight").unwrap();
        assert_eq!(w.values, original.values[7 * 9..8 * 9].to_vec());
        // 13·13 positions × 1 channel rows of the dense layer, each row 10 wide.
        let dense = pruned.tensor("output.weight").unwrap();
        assert_eq!(dense.shape, vec![169, 10]);
        let old = &model.tensor("output.weight").unwrap().values;
        assert_eq!(dense.values[10..20], old[(12 + 7) * 10..(12 + 7) * 10 + 10]);
        assert!(remove_filters(&model, 1.5).is_err());
    }
}
