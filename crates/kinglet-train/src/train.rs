//! The training loop: seed schedule, per-epoch checkpoint, resume, best-epoch selection.
//!
//! Determinism: initial weights come from a ChaCha8 stream seeded by the run's seed, and each
//! epoch's shuffle and augmentation from a stream seeded by (seed, epoch). Nothing depends on
//! burn's global RNG or on wall-clock state, so a run resumed from its checkpoint takes the same
//! steps as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use kinglet_data::Dataset;
use kinglet_data::metrics::Classification;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::arch::{Architecture, Augment};
use crate::inputs::{ChannelNormalisation, Prepared, output_class_names, prepare};
use crate::model_file::{
    Kind, Provenance, TensorEntry, TrainedModel, pack_tensors, read_container, unpack_tensors,
    write_container,
};
use crate::network::{NamedTensor, Network};
use crate::slim::WidthPlan;

/// Options that are not part of the architecture.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub seed: u64,
    /// Overrides the architecture's epoch count.
    pub epochs: Option<usize>,
    /// Where the per-epoch checkpoint goes (written atomically after every epoch).
    pub checkpoint: Option<PathBuf>,
    /// Continue from `checkpoint` if it exists.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many epochs of this invocation; for interruption tests.
    pub stop_after: Option<usize>,
    /// Free-text description of the data, stored in the model's provenance.
    pub data_description: String,
    /// Fine-tuning: start from this model's weights and normalisation (its architecture must
    /// be the one trained) instead of a fresh initialisation.
    pub init: Option<TrainedModel>,
    /// A constant learning rate instead of the schedule's.
    pub learning_rate: Option<f64>,
    /// Distillation: mix this model's probabilities into the training targets.
    pub teacher: Option<crate::distill::Teacher>,
}

/// Summary of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub learning_rate: f64,
    /// Of the full network (for a nested network the narrow widths' distillation terms are
    /// optimised too but not reported here).
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// For a nested-width network, the mean over its widths (what epoch selection uses).
    pub validation_accuracy: Option<f64>,
    pub validation_macro_f1: Option<f64>,
    /// Wall time of the optimisation steps of this epoch (validation excluded).
    pub train_seconds: f64,
}

/// Receives progress; the CLI draws a progress bar from it.
pub trait Progress {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch_done(&mut self, _loss: f64, _accuracy: f64) {}
    fn epoch_done(&mut self, _report: &EpochReport, _is_best: bool) {}
}

/// Progress sink that ignores everything.
pub struct Silent;
impl Progress for Silent {}

/// A finished (or stopped) training run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub model: TrainedModel,
    pub history: Vec<EpochReport>,
    /// True when all epochs ran (false after `stop_after`).
    pub complete: bool,
}

#[derive(Serialize, Deserialize)]
struct CheckpointHeader {
    format: String,
    architecture: Architecture,
    seed: u64,
    epochs: usize,
    epochs_done: usize,
    best_epoch: usize,
    /// Minus infinity until an epoch is eligible as best (JSON has no infinities: `null`).
    #[serde(with = "score_or_null")]
    best_score: f64,
    history: Vec<EpochReport>,
    normalisation: ChannelNormalisation,
    /// The run's data description (and teacher): a checkpoint of other data is not resumed.
    /// Empty in checkpoints written before it was recorded.
    #[serde(default)]
    data: String,
    current: Vec<TensorEntry>,
    best: Vec<TensorEntry>,
    optimizer_offset: usize,
    optimizer_len: usize,
}

/// The best score as JSON: a number, or `null` for "none yet" (minus infinity), which
/// `serde_json` would otherwise write as `null` and then refuse to read back.
mod score_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(score: &f64, s: S) -> Result<S::Ok, S::Error> {
        if score.is_finite() {
            s.serialize_some(score)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }
}

struct Checkpoint {
    header: CheckpointHeader,
    current: Vec<NamedTensor>,
    best: Vec<NamedTensor>,
    optimizer: Vec<u8>,
}

fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<(), Error> {
    let (current, mut payload) = pack_tensors(&c.current);
    let (mut best, best_payload) = pack_tensors(&c.best);
    for e in &mut best {
        e.offset += payload.len();
    }
    payload.extend_from_slice(&best_payload);
    let optimizer_offset = payload.len();
    payload.extend_from_slice(&c.optimizer);
    let header = CheckpointHeader {
        current,
        best,
        optimizer_offset,
        optimizer_len: c.optimizer.len(),
        format: "kinglet-checkpoint".into(),
        architecture: c.header.architecture.clone(),
        normalisation: c.header.normalisation.clone(),
        history: c.header.history.clone(),
        data: c.header.data.clone(),
        ..c.header
    };
    let json = serde_json::to_vec_pretty(&header).map_err(|e| Error::Model(e.to_string()))?;
    write_container(path, Kind::Checkpoint, &json, &payload)
}

fn load_checkpoint(path: &Path) -> Result<Checkpoint, Error> {
    let (json, payload) = read_container(path, Kind::Checkpoint)?;
    let bad = |reason: String| Error::ModelFile {
        path: path.to_path_buf(),
        reason,
    };
    let header: CheckpointHeader =
        serde_json::from_slice(&json).map_err(|e| bad(format!("header: {e}")))?;
    let current = unpack_tensors(&header.current, &payload).map_err(bad)?;
    let best = unpack_tensors(&header.best, &payload).map_err(bad)?;
    let optimizer = header
        .optimizer_offset
        .checked_add(header.optimizer_len)
        .and_then(|end| payload.get(header.optimizer_offset..end))
        .ok_or_else(|| bad("optimizer state lies outside the payload".into()))?
        .to_vec();
    Ok(Checkpoint {
        header,
        current,
        best,
        optimizer,
    })
}

/// Seed of the random stream for one epoch's shuffle and augmentation.
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    rng
}

/// A rotation by a random angle of up to `max_degrees` about a uniformly random axis.
fn random_rotation(max_degrees: f32, rng: &mut ChaCha8Rng) -> [[f32; 3]; 3] {
    let mut normal = || {
        let u1: f32 = rng.random_range(f32::EPSILON..1.0);
        let u2: f32 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    };
    let axis = [normal(), normal(), normal()];
    let length = axis
        .iter()
        .map(|a| a * a)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    let [x, y, z] = axis.map(|a| a / length);
    let angle = rng.random_range(-max_degrees..=max_degrees).to_radians();
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    // Rodrigues' rotation formula.
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

/// Rotates every consecutive group of three channels of a `[channels, length]` sample.
fn rotate_triads(sample: &mut [f32], length: usize, r: &[[f32; 3]; 3]) {
    for group in sample.chunks_exact_mut(3 * length) {
        let (a, rest) = group.split_at_mut(length);
        let (b, c) = rest.split_at_mut(length);
        for t in 0..length {
            let v = [a[t], b[t], c[t]];
            a[t] = r[0][0] * v[0] + r[0][1] * v[1] + r[0][2] * v[2];
            b[t] = r[1][0] * v[0] + r[1][1] * v[1] + r[1][2] * v[2];
            c[t] = r[2][0] * v[0] + r[2][1] * v[1] + r[2][2] * v[2];
        }
    }
}

/// Copies a batch of samples of one branch, applying augmentation when asked; `rotations`
/// holds one rotation per sample (shared by all branches) or none.
fn gather(
    input: &crate::inputs::BranchInput,
    idx: &[usize],
    augment: Option<(&Augment, &mut ChaCha8Rng)>,
    rotations: &[[[f32; 3]; 3]],
) -> Vec<f32> {
    let per = input.channels * input.length;
    let mut out = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        out.extend_from_slice(input.sample(i));
    }
    if input.channels.is_multiple_of(3) {
        for (sample, r) in out.chunks_exact_mut(per).zip(rotations) {
            rotate_triads(sample, input.length, r);
        }
    }
    if let Some((aug, rng)) = augment {
        for sample in out.chunks_exact_mut(per) {
            let factor = if aug.scale > 0.0 {
                1.0 + rng.random_range(-aug.scale..aug.scale)
            } else {
                1.0
            };
            let shift = if aug.shift > 0 {
                rng.random_range(0..=2 * aug.shift) as isize - aug.shift as isize
            } else {
                0
            };
            for row in sample.chunks_exact_mut(input.length) {
                if shift != 0 {
                    row.rotate_left(shift.rem_euclid(input.length as isize) as usize);
                }
                for v in row.iter_mut() {
                    *v *= factor;
                    if aug.noise > 0.0 {
                        // Box–Muller; one normal draw per value.
                        let u1: f32 = rng.random_range(f32::EPSILON..1.0);
                        let u2: f32 = rng.random();
                        *v += aug.noise
                            * (-2.0 * u1.ln()).sqrt()
                            * (std::f32::consts::TAU * u2).cos();
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn batch_inputs(
    prepared: &Prepared,
    idx: &[usize],
    mut augment: Option<(&Augment, &mut ChaCha8Rng)>,
    device: &Device,
) -> Vec<Tensor<3>> {
    let rotations: Vec<[[f32; 3]; 3]> = match augment.as_mut() {
        Some((a, rng)) if a.rotate > 0.0 => {
            idx.iter().map(|_| random_rotation(a.rotate, rng)).collect()
        }
        _ => Vec::new(),
    };
    prepared
        .branches
        .iter()
        .map(|b| {
            let aug = augment.as_mut().map(|(a, r)| (*a, &mut **r));
            let data = gather(b, idx, aug, &rotations);
            Tensor::from_data(
                TensorData::new(data, [idx.len(), b.channels, b.length]),
                device,
            )
        })
        .collect()
}

/// Class predictions of `net` (on a non-autodiff device) for every prepared sample.
pub fn predict(net: &Network, prepared: &Prepared, device: &Device) -> Vec<u32> {
    predict_at(net, prepared, device, None)
}

/// [`predict`] at one width of a nested network (`None`: the full network).
pub fn predict_at(
    net: &Network,
    prepared: &Prepared,
    device: &Device,
    plan: Option<&WidthPlan>,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(prepared.len());
    let all: Vec<usize> = (0..prepared.len()).collect();
    for chunk in all.chunks(512) {
        let inputs = batch_inputs(prepared, chunk, None, device);
        let logits = match plan {
            Some(plan) => net.forward_at(inputs, plan),
            None => net.forward(inputs),
        };
        let pred = logits.argmax(1).into_data();
        out.extend(pred.iter::<i64>().map(|v| v as u32));
    }
    out
}

fn score(net: &Network, prepared: &Prepared, device: &Device) -> Classification {
    let pred = predict(net, prepared, device);
    Classification::new(&prepared.class_names, &prepared.targets, &pred)
}

/// Validation accuracy and macro-F1 for epoch selection: of the network, or for a nested
/// network the mean over its widths (every width should be good, not only the widest).
fn selection_score(
    net: &Network,
    plans: &[WidthPlan],
    prepared: &Prepared,
    device: &Device,
) -> (f64, f64) {
    if plans.is_empty() {
        let c = score(net, prepared, device);
        return (c.accuracy(), c.macro_f1());
    }
    let (mut acc, mut f1) = (0.0, 0.0);
    for plan in plans {
        let pred = predict_at(net, prepared, device, Some(plan));
        let c = Classification::new(&prepared.class_names, &prepared.targets, &pred);
        acc += c.accuracy();
        f1 += c.macro_f1();
    }
    (acc / plans.len() as f64, f1 / plans.len() as f64)
}

/// The narrower widths trained in one step by the sandwich rule: the narrowest always, and one
/// random width strictly between narrowest and widest (the widest is trained on the labels
/// separately). The draw comes from its own stream so plain training's augmentation is unchanged.
pub(crate) fn sandwich<'a>(plans: &'a [WidthPlan], rng: &mut ChaCha8Rng) -> Vec<&'a WidthPlan> {
    let n = plans.len();
    let mut chosen: Vec<&WidthPlan> = plans.first().into_iter().collect();
    if n > 2 {
        chosen.push(&plans[rng.random_range(1..n - 1)]);
    }
    chosen
}

/// In-place distillation: cross-entropy of a narrow width's `logits` against the widest's
/// (detached) probabilities `soft`.
pub(crate) fn soft_cross_entropy(logits: Tensor<2>, soft: Tensor<2>) -> Tensor<1> {
    (burn::tensor::activation::log_softmax(logits, 1) * soft)
        .sum_dim(1)
        .mean()
        .neg()
        .reshape([1])
}

/// Trains `arch` on `train`, choosing the epoch with the best accuracy on `validation`
/// (the last epoch when there is none), or averaging the last epochs' weights when the
/// schedule's `average_last` asks for it.
pub fn train(
    arch: &Architecture,
    train: &Dataset,
    validation: Option<&Dataset>,
    options: &TrainOptions,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, Error> {
    train_with_hook(arch, train, validation, options, progress, &mut NoHook)
}

/// Adjusts the network after every optimiser step (pruning keeps its masks applied this way),
/// so variants of training reuse [`train`]'s loop rather than copying it.
pub trait StepHook {
    /// Called once before the first step with the number of steps this run will take.
    fn run_started(&mut self, _steps: usize) {}
    fn after_step(&mut self, net: Network) -> Result<Network, Error>;
}

/// The hook of plain training: leaves the network as the optimiser left it.
struct NoHook;
impl StepHook for NoHook {
    fn after_step(&mut self, net: Network) -> Result<Network, Error> {
        Ok(net)
    }
}

/// [`train`] with `hook` run after every optimiser step.
pub fn train_with_hook(
    arch: &Architecture,
    train: &Dataset,
    validation: Option<&Dataset>,
    options: &TrainOptions,
    progress: &mut dyn Progress,
    hook: &mut dyn StepHook,
) -> Result<TrainOutcome, Error> {
    arch.validate().map_err(Error::Architecture)?;
    if train.is_empty() {
        return Err(Error::Data("the training set is empty".into()));
    }
    let epochs = options.epochs.unwrap_or(arch.training.epochs);
    let classes = train.class_names.len();
    let fresh_norm = if let Some(init) = &options.init {
        init.normalisation.clone()
    } else if arch.training.normalise {
        ChannelNormalisation::fit(train)?
    } else {
        ChannelNormalisation::identity(&train.channel_names)
    };
    let infer_device = Device::flex();
    let device = infer_device.clone().autodiff();

    let mut optim: ModuleOptimizer = AdamConfig::new().with_epsilon(1e-7).init();
    let mut net;
    let mut start_epoch = 0;
    let mut best_epoch = 0;
    let mut best_score = f64::NEG_INFINITY;
    let mut best_tensors = Vec::new();
    let mut history = Vec::new();
    let mut norm = fresh_norm;

    let resume_from = options
        .checkpoint
        .as_ref()
        .filter(|p| options.resume && p.exists());
    if let Some(path) = resume_from {
        let c = load_checkpoint(path)?;
        let h = &c.header;
        let other_data = !h.data.is_empty() && h.data != options.data_description;
        if other_data {
            return Err(Error::ModelFile {
                path: path.clone(),
                reason: format!(
                    "checkpoint is of a run on `{}`, this run is on `{}`",
                    h.data, options.data_description
                ),
            });
        }
        if h.architecture != *arch || h.seed != options.seed {
            return Err(Error::ModelFile {
                path: path.clone(),
                reason: format!(
                    "checkpoint is for architecture `{}` seed {}, this run is `{}` seed {}",
                    h.architecture.name, h.seed, arch.name, options.seed
                ),
            });
        }
        net = Network::from_tensors(arch, classes, c.current, &device)?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(c.optimizer))
            .map_err(|e| Error::ModelFile {
                path: path.clone(),
                reason: format!("optimizer state: {e:?}"),
            })?;
        start_epoch = h.epochs_done;
        best_epoch = h.best_epoch;
        best_score = h.best_score;
        best_tensors = c.best;
        history = c.header.history;
        norm = c.header.normalisation;
    } else if let Some(init) = &options.init {
        if init.dataset_classes != train.class_names {
            return Err(Error::Data(format!(
                "the initial model was trained on classes {:?}, the data has {:?}",
                init.dataset_classes, train.class_names
            )));
        }
        net = Network::from_tensors(arch, classes, init.tensors.clone(), &device)?;
    } else {
        net = Network::init(arch, classes, options.seed, &device)?;
    }

    let (prepared, val_prepared) = prepare_sets(arch, train, validation, &norm)?;
    let loss_fn = loss_function(arch, &prepared, &device);
    let taught = options
        .teacher
        .as_ref()
        .map(|t| crate::distill::soft_targets(t, arch, train, &prepared).map(|s| (s, t.weight)))
        .transpose()?;
    let batch = arch.training.batch_size;
    let n = prepared.len();
    let batches = n.div_ceil(batch);
    hook.run_started(batches * epochs.saturating_sub(start_epoch));
    let averaging = arch.training.average_last > 0;
    let average_from = epochs.saturating_sub(arch.training.average_last);
    let plans = if arch.widths.is_empty() {
        Vec::new()
    } else {
        WidthPlan::all(arch)?
    };

    for (ran, epoch) in (start_epoch..epochs).enumerate() {
        if options.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        progress.epoch_started(epoch + 1, epochs, batches);
        let lr = options
            .learning_rate
            .unwrap_or_else(|| arch.training.learning_rate_at(epoch));
        let mut rng = epoch_rng(options.seed, epoch);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let augment = &arch.training.augment;
        let augmenting =
            augment.scale > 0.0 || augment.noise > 0.0 || augment.shift > 0 || augment.rotate > 0.0;
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut width_rng = epoch_rng(options.seed ^ 0x5714_d7c4_0000_0000, epoch);
        for idx in order.chunks(batch) {
            let inputs = batch_inputs(
                &prepared,
                idx,
                augmenting.then_some((augment, &mut rng)),
                &device,
            );
            let logits = net.forward(inputs.clone());
            let widest = (!plans.is_empty()).then(|| logits.clone().detach());
            let (mut loss, loss_value, batch_correct) = labelled_loss(
                logits,
                &prepared,
                idx,
                taught.as_ref(),
                &loss_fn,
                arch,
                &device,
            )
            .map_err(|v| diverged("training", v, epoch))?;
            if let Some(widest) = widest {
                let soft = burn::tensor::activation::softmax(widest, 1);
                for plan in sandwich(&plans, &mut width_rng) {
                    let narrow = net.forward_at(inputs.clone(), plan);
                    loss = loss + soft_cross_entropy(narrow, soft.clone());
                }
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = hook.after_step(optim.step(lr, net, grads))?;
            if !plans.is_empty() {
                net = net.positive_gammas();
            }
            loss_sum += loss_value * idx.len() as f64;
            correct += batch_correct;
            progress.batch_done(loss_value, batch_correct as f64 / idx.len() as f64);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let eval_net = net.valid();
        let val = val_prepared
            .as_ref()
            .map(|v| selection_score(&eval_net, &plans, v, &infer_device));
        let report = EpochReport {
            epoch: epoch + 1,
            learning_rate: lr,
            train_loss: loss_sum / n as f64,
            train_accuracy: correct as f64 / n as f64,
            validation_accuracy: val.map(|v| v.0),
            validation_macro_f1: val.map(|v| v.1),
            train_seconds,
        };
        let current = eval_net.named_tensors();
        let is_best = if averaging {
            // The "best" slot holds the running mean of the epochs averaged so far, so a
            // checkpoint resumes the average without extra state.
            if epoch >= average_from {
                let count = epoch - average_from + 1;
                accumulate_mean(&mut best_tensors, &current, count);
                best_epoch = epoch + 1;
                best_score = report.validation_accuracy.unwrap_or(epoch as f64);
            }
            false
        } else {
            let s = report.validation_accuracy.unwrap_or(epoch as f64);
            let is_best = s > best_score;
            if is_best {
                best_score = s;
                best_epoch = epoch + 1;
                best_tensors = current.clone();
            }
            is_best
        };
        progress.epoch_done(&report, is_best);
        history.push(report);
        if let Some(path) = &options.checkpoint {
            let optimizer = optim
                .into_bytes()
                .map_err(|e| Error::Model(format!("optimizer state: {e:?}")))?;
            let c = Checkpoint {
                header: CheckpointHeader {
                    format: String::new(),
                    architecture: arch.clone(),
                    seed: options.seed,
                    epochs,
                    epochs_done: epoch + 1,
                    best_epoch,
                    best_score,
                    history: history.clone(),
                    normalisation: norm.clone(),
                    data: options.data_description.clone(),
                    current: vec![],
                    best: vec![],
                    optimizer_offset: 0,
                    optimizer_len: 0,
                },
                current,
                best: best_tensors.clone(),
                optimizer: optimizer.to_vec(),
            };
            save_checkpoint(path, &c)?;
        }
    }
    let complete = history.len() >= epochs;
    if best_tensors.is_empty() {
        best_tensors = net.valid().named_tensors();
    }
    // An averaged model was never evaluated as such; score it on the validation data.
    let averaged_validation = match (&val_prepared, averaging && complete) {
        (Some(v), true) => {
            let averaged =
                Network::from_tensors(arch, classes, best_tensors.clone(), &infer_device)?;
            Some(selection_score(&averaged, &plans, v, &infer_device).0)
        }
        _ => None,
    };
    let model = TrainedModel {
        architecture: arch.clone(),
        class_names: output_class_names(arch, &train.class_names)?,
        dataset_classes: train.class_names.clone(),
        normalisation: norm,
        tensors: best_tensors,
        provenance: Provenance {
            seed: options.seed,
            data: options.data_description.clone(),
            epochs_trained: history.len(),
            best_epoch,
            validation_accuracy: averaged_validation.or_else(|| {
                history
                    .get(best_epoch.saturating_sub(1))
                    .and_then(|r| r.validation_accuracy)
            }),
        },
    };
    Ok(TrainOutcome {
        model,
        history,
        complete,
    })
}

/// The training and validation samples as `arch` sees them, normalised with `norm`; an error
/// when no training sample is left.
pub(crate) fn prepare_sets(
    arch: &Architecture,
    train: &Dataset,
    validation: Option<&Dataset>,
    norm: &ChannelNormalisation,
) -> Result<(Prepared, Option<Prepared>), Error> {
    let prepared = prepare(arch, train, norm)?;
    if prepared.is_empty() {
        return Err(Error::Data(
            "no training samples after preparing the task".into(),
        ));
    }
    let val_prepared = validation.map(|v| prepare(arch, v, norm)).transpose()?;
    Ok((prepared, val_prepared))
}

/// Cross-entropy of one batch's `logits` against the prepared targets of samples `idx`, with
/// the loss as a number and the batch's correct predictions; `Err(loss)` when it is not finite.
/// The batch's loss against its labels, or against the mixture of labels and a teacher's
/// probabilities (`taught`: the soft targets and the teacher's weight); see [`batch_loss`].
pub(crate) fn labelled_loss(
    logits: Tensor<2>,
    prepared: &Prepared,
    idx: &[usize],
    taught: Option<&(Vec<f32>, f32)>,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
    arch: &Architecture,
    device: &Device,
) -> Result<(Tensor<1>, f64, usize), f64> {
    match taught {
        Some((soft, weight)) => crate::distill::distilled_loss(
            logits,
            prepared,
            idx,
            soft,
            *weight,
            arch.training.label_smoothing,
            device,
        ),
        None => batch_loss(logits, prepared, idx, loss_fn, device),
    }
}

pub(crate) fn batch_loss(
    logits: Tensor<2>,
    prepared: &Prepared,
    idx: &[usize],
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
    device: &Device,
) -> Result<(Tensor<1>, f64, usize), f64> {
    let targets: Vec<i64> = idx.iter().map(|&i| prepared.targets[i] as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [idx.len()]), device);
    let hits = logits
        .clone()
        .argmax(1)
        .reshape([idx.len()])
        .equal(targets.clone())
        .int()
        .sum();
    let loss = loss_fn.forward(logits, targets);
    let loss_value = loss.clone().into_scalar::<f32>() as f64;
    if !loss_value.is_finite() {
        return Err(loss_value);
    }
    Ok((loss, loss_value, hits.into_scalar::<i64>() as usize))
}

/// The error for a loss that stopped being finite (`what`: which training).
pub(crate) fn diverged(what: &str, loss: f64, epoch: usize) -> Error {
    Error::Data(format!(
        "{what} diverged: loss {loss} in epoch {}",
        epoch + 1
    ))
}

/// Cross-entropy as the schedule asks: label smoothing, and per-class weights inversely
/// proportional to class frequency (normalised to average 1 over the training windows).
pub(crate) fn loss_function(
    arch: &Architecture,
    prepared: &Prepared,
    device: &Device,
) -> burn::nn::loss::CrossEntropyLoss {
    let schedule = &arch.training;
    let mut config = burn::nn::loss::CrossEntropyLossConfig::new();
    if schedule.label_smoothing > 0.0 {
        config = config.with_smoothing(Some(schedule.label_smoothing));
    }
    if schedule.balance_classes {
        config = config.with_weights(Some(balanced_class_weights(
            &prepared.targets,
            prepared.class_names.len(),
        )));
    }
    config.init(device)
}

/// `n / (classes_present · count_c)` for every class seen, 1 for classes never seen (they
/// never weigh a loss term, and burn requires positive weights).
fn balanced_class_weights(targets: &[u32], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &t in targets {
        if let Some(c) = counts.get_mut(t as usize) {
            *c += 1;
        }
    }
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                targets.len() as f32 / (present * c) as f32
            }
        })
        .collect()
}

/// Folds `current` into the running mean `mean` of `count - 1` earlier snapshots.
fn accumulate_mean(mean: &mut Vec<NamedTensor>, current: &[NamedTensor], count: usize) {
    if count <= 1 || mean.len() != current.len() {
        *mean = current.to_vec();
        return;
    }
    let weight = 1.0 / count as f32;
    for (m, c) in mean.iter_mut().zip(current) {
        for (a, b) in m.values.iter_mut().zip(&c.values) {
            *a += (b - *a) * weight;
        }
    }
}

/// Runs a trained model on a dataset and scores it against the task's targets.
pub fn evaluate(model: &TrainedModel, data: &Dataset) -> Result<Classification, Error> {
    let device = Device::flex();
    let classes = model.dataset_classes.len();
    let net = Network::from_model(model, &device)?;
    if data.class_names.len() != classes
        && !matches!(model.architecture.task, crate::arch::Task::Change)
    {
        return Err(Error::Data(format!(
            "the model was trained on {classes} classes, the dataset has {}",
            data.class_names.len()
        )));
    }
    let prepared = prepare(&model.architecture, data, &model.normalisation)?;
    Ok(score(&net, &prepared, &device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_best_score_not_yet_set_survives_the_checkpoint_header() {
        // Found by the kill test: averaging networks checkpointed before their first eligible
        // epoch wrote `null` and could not be resumed.
        #[derive(Serialize, Deserialize)]
        struct Header {
            #[serde(with = "score_or_null")]
            best_score: f64,
        }
        for score in [f64::NEG_INFINITY, 0.8125] {
            let json = serde_json::to_string(&Header { best_score: score }).unwrap();
            let back: Header = serde_json::from_str(&json).unwrap();
            assert_eq!(back.best_score, score, "{json}");
        }
        let old: Header = serde_json::from_str(r#"{"best_score": null}"#).unwrap();
        assert_eq!(old.best_score, f64::NEG_INFINITY);
    }

    #[test]
    fn balanced_weights_equalise_class_totals() {
        // 6 negatives, 2 positives, a third class never seen.
        let w = balanced_class_weights(&[0, 0, 0, 1, 0, 0, 1, 0], 3);
        assert_eq!(w, vec![8.0 / 12.0, 2.0, 1.0]);
        assert!((6.0 * w[0] - 2.0 * w[1]).abs() < 1e-6);
    }

    #[test]
    fn random_rotations_are_orthonormal_and_bounded() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let r = random_rotation(15.0, &mut rng);
            for i in 0..3 {
                for j in 0..3 {
                    let dot: f32 = (0..3).map(|k| r[i][k] * r[j][k]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{r:?}");
                }
            }
            // trace = 1 + 2 cos(angle)
            let trace = r[0][0] + r[1][1] + r[2][2];
            let angle = ((trace - 1.0) / 2.0).clamp(-1.0, 1.0).acos().to_degrees();
            assert!(angle <= 15.0 + 1e-2, "angle {angle}");
        }
        let mut sample: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let before: f32 = sample.iter().map(|v| v * v).sum();
        rotate_triads(&mut sample, 4, &random_rotation(15.0, &mut rng));
        let after: f32 = sample.iter().map(|v| v * v).sum();
        assert!((before - after).abs() < 1e-3 * before);
    }
}
