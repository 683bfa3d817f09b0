//! Quantisation-aware training (QAT): the network trains while seeing, in its forward pass,
//! the rounding its int8 deployment will apply, so the weights settle where int8 loses little.
//!
//! - Weights of every Conv1D, Conv2D, depthwise and Dense layer are fake-quantised per output
//!   channel, symmetric, narrow range: `scale = max|w| / 127` per channel, as the TFLite
//!   converter (and `kinglet quantize`) quantise them. Batch norm scales whole output channels,
//!   so quantising the unfolded kernel per channel rounds exactly as the folded one will.
//! - Activations are fake-quantised per tensor, asymmetric int8, over a range tracked as an
//!   exponential moving average of each batch's min and max, at exactly the tensors the int8
//!   graph quantises: graph inputs, every convolution output (after batch norm and ReLU, which
//!   lowering fuses), depthwise outputs, global-average-pool outputs, the concatenation of
//!   branches and every dense output. Pooling and flattening keep their input's parameters in
//!   int8, so they need no range of their own; a branch flattened into a concatenation is
//!   quantised with the concatenation's range, as the int8 graph does.
//! - Gradients pass straight through the rounding (straight-through estimator); for
//!   activations they are zero where the value was clipped to the range.
//!
//! The tracked ranges travel with the model as tensors `qat:<graph tensor name>` holding
//! `[min, max]` (see docs/model-format.md); [`crate::lower()`] copies them into the graph's
//! [`kinglet_graph::meta::ACTIVATION_RANGES`] metadata, from which `kinglet quantize --scheme
//! int8` takes the activation parameters instead of calibrating.
//!
//! The Conv1D case is kinglet's own: Keras' QAT tooling does not support Conv1D layers.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::nn::conv::{Conv1d, Conv2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::module::{max_pool1d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use kinglet_data::Dataset;
use kinglet_data::metrics::Classification;
use rand::seq::SliceRandom;

use crate::Error;
use crate::arch::Architecture;
use crate::inputs::{ChannelNormalisation, Prepared, output_class_names, prepare};
use crate::model_file::{Provenance, TrainedModel};
use crate::network::{NamedTensor, Network};
use crate::slim::WidthPlan;
use crate::train::{
    EpochReport, Progress, TrainOutcome, batch_inputs, diverged, epoch_rng, labelled_loss,
    loss_function, prepare_sets, sandwich, soft_cross_entropy,
};

/// Name prefix of the model tensors holding tracked activation ranges (`[min, max]`).
pub const RANGE_PREFIX: &str = "qat:";

/// Default decay of the moving averages of activation min/max. TensorFlow uses 0.999 over
/// long runs; QAT here is often a one-epoch fine-tune, where 0.99 forgets the first batches.
pub const DEFAULT_EMA_DECAY: f32 = 0.99;

/// Fine-tuning runs at this fraction of the schedule's final learning rate: a trained model
/// needs only to adapt to the rounding, and at the full rate one more epoch mostly adds noise
/// (Fashion-MNIST seed CNN, one QAT epoch: 88.8 % int8 at the full rate, 89.5 % at a tenth).
pub const FINE_TUNE_RATE_FACTOR: f64 = 0.1;

/// Smallest and largest int8 values (activations use the full range).
const INT8_MIN: i32 = -128;
const INT8_MAX: i32 = 127;
/// Ranges narrower than this are widened to it around 0 (the converter's tolerance).
const NEAR_ZERO_RANGE: f64 = 1.0e-6;

/// Scale and zero point of an int8 activation over `[min, max]`, derived as the TFLite
/// converter does and as `kinglet_compress::params::activation_params` does (kinglet-train
/// sits before kinglet-compress in the crate chain, so the rule is restated here; the CLI's
/// tests check the two agree): the range is widened to contain 0 and to at least 1e-6, the
/// scale is `(max − min) / 255` in single precision and the zero point is solved from the
/// lower end, rounded half away from zero and clamped.
pub fn activation_params(min: f32, max: f32) -> (f32, i32) {
    let finite = |v: f32| if v.is_finite() { f64::from(v) } else { 0.0 };
    let (mut lo, mut hi) = (finite(min).min(0.0), finite(max).max(0.0));
    if hi - lo <= NEAR_ZERO_RANGE {
        lo = lo.min(-NEAR_ZERO_RANGE / 2.0);
        hi = hi.max(NEAR_ZERO_RANGE / 2.0);
    }
    let scale = ((hi as f32) - (lo as f32)) / (INT8_MAX - INT8_MIN) as f32;
    let zero_point_from_min = (f64::from(INT8_MIN) - lo / f64::from(scale)) as f32;
    let zero_point = if zero_point_from_min < INT8_MIN as f32 {
        INT8_MIN
    } else if zero_point_from_min > INT8_MAX as f32 {
        INT8_MAX
    } else {
        zero_point_from_min.round() as i32
    };
    (scale, zero_point)
}

/// Rounds half away from zero (TFLite's `round`); burn's `round` breaks ties to even.
fn round_half_away<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let r = x.clone().round();
    // At a tie, half-to-even went toward zero exactly when |r| < |x|: step away instead.
    let tie = (x.clone() - r.clone()).abs().equal_elem(0.5).float();
    let toward_zero = r.clone().abs().lower(x.clone().abs()).float();
    r + tie * toward_zero * x.sign()
}

/// `y` in the forward pass, with the gradient of `through` (straight-through estimator).
/// `through - through.detach()` is exactly zero, so the forward value is `y` bit for bit.
fn straight_through<const D: usize>(y: Tensor<D>, through: Tensor<D>) -> Tensor<D> {
    y.detach() + (through.clone() - through.detach())
}

/// Int8 quantise-dequantise of an activation over `[min, max]`: `q = clamp(round(x / scale)
/// + zp, −128, 127)`, `y = (q − zp) · scale`. The gradient is 1 inside the representable range
/// and 0 where `x` was clipped.
pub fn fake_quant_activation<const D: usize>(x: Tensor<D>, min: f32, max: f32) -> Tensor<D> {
    let (scale, zp) = activation_params(min, max);
    let q = round_half_away(x.clone().detach().div_scalar(scale))
        .add_scalar(zp as f32)
        .clamp(INT8_MIN as f32, INT8_MAX as f32);
    let y = q.sub_scalar(zp as f32).mul_scalar(scale);
    let lo = (INT8_MIN - zp) as f32 * scale;
    let hi = (INT8_MAX - zp) as f32 * scale;
    straight_through(y, x.clamp(lo, hi))
}

/// Per-channel symmetric int8 quantise-dequantise of a weight tensor whose output channels
/// lie along `axis`: `scale = max|w| / 127` per channel (an all-zero channel gets the
/// converter's minimal range), `q = clamp(round(w / scale), −127, 127)`, `y = q · scale`.
/// The gradient passes straight through (no weight is ever outside its own range).
pub fn fake_quant_weight<const D: usize>(w: Tensor<D>, axis: usize) -> Tensor<D> {
    let moved = w.clone().detach().swap_dims(0, axis);
    let dims = moved.dims();
    let channels = dims[0];
    let per = dims.iter().skip(1).product::<usize>();
    let flat: Tensor<2> = moved.reshape([channels, per]);
    let max_abs = flat
        .clone()
        .abs()
        .max_dim(1)
        .clamp_min((NEAR_ZERO_RANGE / 2.0) as f32);
    // The converter's `(max − (−max)) / 254` in single precision.
    let scale = max_abs.mul_scalar(2.0).div_scalar(254.0);
    // `round(w · (1/scale))`, as the converter's `quantize_weight`.
    let q = round_half_away(flat * scale.clone().recip()).clamp(-127.0, 127.0);
    let y: Tensor<D> = (q * scale).reshape(dims).swap_dims(0, axis);
    straight_through(y, w)
}

/// Name prefix of the model tensors holding learned weight clipping: `[bits, α_0, …, α_C−1]`
/// for the graph weight tensor named after the prefix (see docs/model-format.md).
pub const CLIP_PREFIX: &str = "qat-clip:";

/// Bounds of a learned clipping ratio: the forward pass clamps to them (and so does the record
/// of the model), so an aggressive learning rate cannot drive a scale to zero or below.
pub const CLIP_RATIO_RANGE: (f32, f32) = (1.0 / 32.0, 2.0);

/// Whether a model tensor is a record of quantisation-aware training (an activation range or
/// a learned weight clipping) rather than a network weight.
pub fn is_qat_record(name: &str) -> bool {
    name.starts_with(RANGE_PREFIX) || name.starts_with(CLIP_PREFIX)
}

/// Largest magnitude (in steps) of a symmetric `bits`-bit weight: 7 at 4 bits, 1 at 2.
pub fn weight_qmax(bits: u32) -> f32 {
    ((1i32 << (bits - 1)) - 1) as f32
}

/// Symmetric per-channel `bits`-bit quantise-dequantise of a weight tensor (output channels
/// along `axis`) with a learned clipping ratio per channel: `scale_c = α_c · max|w_c| / Q`,
/// `q = clamp(round(w / scale), −Q, Q)`, `y = q · scale`, Q = 2^(bits−1) − 1. The clipping is
/// learned the LSQ way (Esser et al. 2020): rounding passes gradients straight through, so the
/// gradient reaching the scale is `round(v) − v` inside the range and ±Q where clipped, scaled
/// by `1/√(N·Q)` per channel of N weights. Parametrising by `α` rather than the scale keeps the
/// value meaningful after batch-norm folding, which multiplies a channel's weights and its
/// scale alike.
pub fn fake_quant_weight_clipped<const D: usize>(
    w: Tensor<D>,
    axis: usize,
    bits: u32,
    alpha: Tensor<1>,
) -> Tensor<D> {
    let qmax = weight_qmax(bits);
    let moved = w.swap_dims(0, axis);
    let dims = moved.dims();
    let channels = dims[0];
    let per = dims.iter().skip(1).product::<usize>();
    let flat: Tensor<2> = moved.reshape([channels, per]);
    let max_abs = flat
        .clone()
        .detach()
        .abs()
        .max_dim(1)
        .clamp_min((NEAR_ZERO_RANGE / 2.0) as f32);
    let gradient_scale = 1.0 / ((per as f32) * qmax).sqrt();
    let alpha =
        alpha.clone().detach() + (alpha.clone() - alpha.detach()).mul_scalar(gradient_scale);
    let scale = alpha.reshape([channels, 1]) * max_abs.div_scalar(qmax);
    let clipped = (flat / scale.clone()).clamp(-qmax, qmax);
    let q = straight_through(round_half_away(clipped.clone().detach()), clipped);
    (q * scale).reshape(dims).swap_dims(0, axis)
}

/// The clipping ratio among `k/32` (k = 8…32) of a channel's largest magnitude that quantises
/// `weights` to `bits` bits with the least squared error: where learned clipping starts (the
/// same search post-training quantisation makes).
pub fn mse_clip_ratio(weights: &[f32], bits: u32) -> f32 {
    let qmax = weight_qmax(bits);
    let max_abs = weights.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if !(max_abs.is_finite() && max_abs > 0.0) {
        return 1.0;
    }
    let error = |ratio: f32| -> f64 {
        let scale = ratio * max_abs / qmax;
        weights
            .iter()
            .map(|v| f64::from(v - (v / scale).round().clamp(-qmax, qmax) * scale).powi(2))
            .sum()
    };
    (8..=32)
        .map(|k| k as f32 / 32.0)
        .map(|r| (error(r), r))
        .fold(
            (f64::INFINITY, 1.0),
            |best, c| if c.0 < best.0 { c } else { best },
        )
        .1
}

/// A clipping parameter's values as the forward pass uses them.
fn clamped_ratios(alpha: &Param<Tensor<1>>) -> Vec<f32> {
    alpha
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.clamp(CLIP_RATIO_RANGE.0, CLIP_RATIO_RANGE.1))
        .collect()
}

/// Learned clipping ratios, one parameter vector per sub-byte layer, optimised beside the
/// network.
#[derive(Module, Debug)]
pub struct WeightClips {
    pub alphas: Vec<Param<Tensor<1>>>,
}

/// How the weights of each layer are fake-quantised: widths in graph op order (the order
/// [`forward`] meets the layers in) and, for sub-byte layers, learned clipping.
#[derive(Debug, Clone)]
pub struct WeightQuant {
    /// Bit width per weighted layer; layers past its end take the width of their learned
    /// clipping if any, else 8 (so an empty list with no clipping means int8 everywhere).
    pub bits: Vec<u32>,
    /// One entry per sub-byte layer in order, created when the layer is first met.
    pub clips: WeightClips,
    /// Graph weight tensor name and width of each sub-byte layer, in the order of `clips`.
    pub layers: Vec<(String, u32)>,
    /// Clipping a model already learned (width and ratios by graph weight tensor name): the
    /// starting point where the width agrees.
    pub learned: BTreeMap<String, (u32, Vec<f32>)>,
    layer: usize,
    sub_byte: usize,
}

impl Default for WeightQuant {
    fn default() -> Self {
        WeightQuant::new(Vec::new(), BTreeMap::new())
    }
}

impl WeightQuant {
    pub fn new(bits: Vec<u32>, learned: BTreeMap<String, (u32, Vec<f32>)>) -> Self {
        WeightQuant {
            bits,
            clips: WeightClips { alphas: Vec::new() },
            layers: Vec::new(),
            learned,
            layer: 0,
            sub_byte: 0,
        }
    }

    /// A copy for inference: the learned ratios so far, fixed, and the same widths.
    pub fn frozen(&self) -> WeightQuant {
        let mut learned = self.learned.clone();
        for ((name, bits), alpha) in self.layers.iter().zip(&self.clips.alphas) {
            learned.insert(name.clone(), (*bits, clamped_ratios(alpha)));
        }
        WeightQuant::new(self.bits.clone(), learned)
    }

    fn start_pass(&mut self) {
        self.layer = 0;
        self.sub_byte = 0;
    }

    /// Fake-quantises the weights of the next layer (graph weight tensor `name`).
    fn weights<const D: usize>(&mut self, w: Tensor<D>, axis: usize, name: &str) -> Tensor<D> {
        let learned = self.learned.get(name);
        let bits = match self.bits.get(self.layer) {
            Some(b) => *b,
            None => learned.map_or(8, |(b, _)| *b),
        };
        self.layer += 1;
        if bits >= 8 {
            return fake_quant_weight(w, axis);
        }
        if self.clips.alphas.len() <= self.sub_byte {
            let alphas = match learned {
                Some((b, ratios)) if *b == bits => ratios.clone(),
                _ => {
                    let moved = w.clone().detach().swap_dims(0, axis);
                    let channels = moved.dims()[0].max(1);
                    let values: Vec<f32> = moved.into_data().try_to_vec().unwrap_or_default();
                    values
                        .chunks((values.len() / channels).max(1))
                        .map(|c| mse_clip_ratio(c, bits))
                        .collect()
                }
            };
            let alpha = Tensor::<1>::from_floats(alphas.as_slice(), &w.device());
            self.clips.alphas.push(Param::from_tensor(alpha));
            self.layers.push((name.to_string(), bits));
        }
        let alpha = self.clips.alphas[self.sub_byte].val();
        self.sub_byte += 1;
        fake_quant_weight_clipped(w, axis, bits, alpha)
    }

    /// The learned clipping as model tensors (`qat-clip:<name>` = `[bits, α…]`).
    pub fn clip_tensors(&self) -> Vec<NamedTensor> {
        self.layers
            .iter()
            .zip(&self.clips.alphas)
            .map(|((name, bits), alpha)| {
                let mut values = vec![*bits as f32];
                values.extend(clamped_ratios(alpha));
                NamedTensor {
                    name: format!("{CLIP_PREFIX}{name}"),
                    shape: vec![values.len()],
                    values,
                }
            })
            .collect()
    }

    /// Learned clipping stored in a model: ratios by graph weight tensor name, with widths.
    pub fn clips_of(model: &TrainedModel) -> Result<BTreeMap<String, (u32, Vec<f32>)>, Error> {
        let mut out = BTreeMap::new();
        for t in &model.tensors {
            let Some(name) = t.name.strip_prefix(CLIP_PREFIX) else {
                continue;
            };
            match t.values.split_first() {
                Some((bits, ratios))
                    if (*bits == 4.0 || *bits == 2.0)
                        && !ratios.is_empty()
                        && ratios.iter().all(|r| r.is_finite() && *r > 0.0) =>
                {
                    out.insert(name.to_string(), (*bits as u32, ratios.to_vec()));
                }
                _ => {
                    return Err(Error::Model(format!(
                        "weight clipping `{}` must hold a width (4 or 2) and positive ratios, got {:?}",
                        t.name, t.values
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Learned activation ranges (LSQ-style): each activation's `[min, max]` becomes
/// `[min₀ · a, max₀ · b]` with factors `(a, b)` learned by gradient descent from the range the
/// moving averages had found (`min₀, max₀`). The gradient reaching a factor weighs what
/// clipping costs against what a coarser step costs, through the same straight-through
/// quantiser the forward pass uses, scaled by `1/√(N·127)` for N values as in LSQ (Esser et
/// al. 2020); factors move relative to the starting range, so one learning rate suits ranges
/// of any size. PACT clips only the top of ReLU outputs; this learns both ends of any range.
#[derive(Module, Debug)]
pub struct ActivationClips {
    pub factors: Vec<Param<Tensor<1>>>,
}

/// Which activations learn their ranges, from where, and their factors.
#[derive(Debug, Clone)]
pub struct RangeLearning {
    pub clips: ActivationClips,
    /// Graph tensor name and starting range of each entry of `clips`, in the same order.
    pub starts: Vec<(String, (f32, f32))>,
}

impl Default for RangeLearning {
    fn default() -> Self {
        RangeLearning {
            clips: ActivationClips {
                factors: Vec::new(),
            },
            starts: Vec::new(),
        }
    }
}

impl RangeLearning {
    /// The learned ranges, as the forward pass and the deployed model use them.
    pub fn ranges(&self) -> Vec<(String, (f32, f32))> {
        self.starts
            .iter()
            .zip(&self.clips.factors)
            .map(|((name, (lo, hi)), factors)| {
                let f = clamped_ratios(factors);
                let (a, b) = (f.first().copied(), f.get(1).copied());
                (name.clone(), (lo * a.unwrap_or(1.0), hi * b.unwrap_or(1.0)))
            })
            .collect()
    }
}

/// [`fake_quant_activation`] over a learned range: the forward value is exactly the int8
/// quantiser's over `[min₀·a, max₀·b]` (so the deployed model computes it), and the factors
/// `(a, b)` receive LSQ gradients through a differentiable copy of the same quantiser.
fn fake_quant_activation_learned<const D: usize>(
    x: Tensor<D>,
    (lo0, hi0): (f32, f32),
    factors: Tensor<1>,
) -> Tensor<D> {
    let f: Vec<f32> = factors
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.clamp(CLIP_RATIO_RANGE.0, CLIP_RATIO_RANGE.1))
        .collect();
    let (a, b) = (
        f.first().copied().unwrap_or(1.0),
        f.get(1).copied().unwrap_or(1.0),
    );
    let exact = fake_quant_activation(x.clone(), lo0 * a, hi0 * b);
    let count = x.dims().iter().product::<usize>().max(1);
    let gradient_scale = 1.0 / ((count as f32) * INT8_MAX as f32).sqrt();
    let factors = factors
        .clone()
        .detach()
        .add((factors.clone() - factors.detach()).mul_scalar(gradient_scale))
        .clamp(CLIP_RATIO_RANGE.0, CLIP_RATIO_RANGE.1);
    let bounds = factors * Tensor::<1>::from_floats([lo0, hi0], &x.device());
    let lo = bounds.clone().narrow(0, 0, 1);
    let hi = bounds.narrow(0, 1, 1);
    let levels = (INT8_MAX - INT8_MIN) as f32;
    // Keep the step away from zero so a collapsing range cannot divide by it.
    let scale = (hi - lo.clone())
        .div_scalar(levels)
        .clamp_min((NEAR_ZERO_RANGE / levels as f64) as f32);
    let zero_point = {
        let z = lo.div(scale.clone()).neg().add_scalar(INT8_MIN as f32);
        straight_through(round_half_away(z.clone().detach()), z)
    };
    let scale = scale.reshape([1; D]);
    let zero_point = zero_point.reshape([1; D]);
    let v = x.detach().div(scale.clone());
    let q = (straight_through(round_half_away(v.clone().detach()), v) + zero_point.clone())
        .clamp(INT8_MIN as f32, INT8_MAX as f32);
    let differentiable = (q - zero_point) * scale;
    exact + (differentiable.clone() - differentiable.detach())
}

/// Tracked activation ranges and whether this pass updates them.
#[derive(Debug, Clone)]
pub struct QatState {
    /// `[min, max]` per graph tensor name.
    pub ranges: BTreeMap<String, (f32, f32)>,
    /// Update the ranges from each batch (training); otherwise use them as they are.
    pub training: bool,
    pub ema_decay: f32,
    /// Weight widths and learned clipping.
    pub weights: WeightQuant,
    /// When set (training), activations whose range is already known learn it instead of
    /// following the moving averages.
    pub learned_ranges: Option<RangeLearning>,
}

impl QatState {
    pub fn new(ranges: BTreeMap<String, (f32, f32)>, training: bool, ema_decay: f32) -> Self {
        QatState {
            ranges,
            training,
            ema_decay,
            weights: WeightQuant::default(),
            learned_ranges: None,
        }
    }

    /// [`QatState::new`] learning the ranges it already has (see [`RangeLearning`]).
    pub fn with_range_learning(mut self, learning: Option<RangeLearning>) -> Self {
        self.learned_ranges = learning;
        self
    }

    /// Puts the learned ranges where the forward pass, validation and the saved model read
    /// them; called after every optimiser step.
    pub fn sync_learned_ranges(&mut self) {
        if let Some(learning) = &self.learned_ranges {
            for (name, range) in learning.ranges() {
                self.ranges.insert(name, range);
            }
        }
    }

    /// [`QatState::new`] with weight widths and learned clipping.
    pub fn with_weights(mut self, weights: WeightQuant) -> Self {
        self.weights = weights;
        self
    }

    /// Ranges stored in a model (`qat:` tensors); empty for a model trained without QAT.
    pub fn ranges_of(model: &TrainedModel) -> Result<BTreeMap<String, (f32, f32)>, Error> {
        let mut out = BTreeMap::new();
        for t in &model.tensors {
            let Some(name) = t.name.strip_prefix(RANGE_PREFIX) else {
                continue;
            };
            match t.values.as_slice() {
                [lo, hi] if lo.is_finite() && hi.is_finite() && lo <= hi => {
                    out.insert(name.to_string(), (*lo, *hi));
                }
                _ => {
                    return Err(Error::Model(format!(
                        "activation range `{}` must hold two finite values min ≤ max, got {:?}",
                        t.name, t.values
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The ranges as model tensors (`qat:<name>`, shape `[2]`).
    pub fn range_tensors(&self) -> Vec<NamedTensor> {
        self.ranges
            .iter()
            .map(|(name, (lo, hi))| NamedTensor {
                name: format!("{RANGE_PREFIX}{name}"),
                shape: vec![2],
                values: vec![*lo, *hi],
            })
            .collect()
    }

    /// Fake-quantises the activation called `name` (its graph tensor name), first folding
    /// this batch's min and max into the moving average when training.
    pub fn activation<const D: usize>(&mut self, name: &str, x: Tensor<D>) -> Tensor<D> {
        if self.training
            && let Some(learning) = self.learned_ranges.as_mut()
            && let Some(&known) = self.ranges.get(name)
        {
            let index = match learning.starts.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    learning.starts.push((name.to_string(), known));
                    let ones = Tensor::<1>::from_floats([1.0, 1.0], &x.device());
                    learning.clips.factors.push(Param::from_tensor(ones));
                    learning.starts.len() - 1
                }
            };
            let factors = learning.clips.factors[index].val();
            return fake_quant_activation_learned(x, learning.starts[index].1, factors);
        }
        if self.training {
            let lo = x.clone().detach().min().into_scalar::<f32>();
            let hi = x.clone().detach().max().into_scalar::<f32>();
            if lo.is_finite() && hi.is_finite() {
                let d = self.ema_decay;
                self.ranges
                    .entry(name.to_string())
                    .and_modify(|(a, b)| {
                        *a = d * *a + (1.0 - d) * lo;
                        *b = d * *b + (1.0 - d) * hi;
                    })
                    .or_insert((lo, hi));
            }
        }
        match self.ranges.get(name) {
            Some(&(lo, hi)) => fake_quant_activation(x, lo, hi),
            // Never seen in training (cannot happen for a model trained with QAT).
            None => x,
        }
    }
}

/// Copies of the weighted layers with fake-quantised kernels: per output channel (axis 0 of
/// burn's `[out, in/groups, k…]`, which for a depthwise convolution is its channel; Dense
/// weights are burn `[in, out]`, output channels on axis 1), named after their graph weight
/// tensors.
impl QatState {
    fn conv1d(&mut self, conv: &Conv1d, name: &str) -> Conv1d {
        let mut c = conv.clone();
        let w = self.weights.weights(conv.weight.val(), 0, name);
        c.weight = Param::initialized(ParamId::new(), w);
        c
    }

    fn conv2d(&mut self, conv: &Conv2d, name: &str) -> Conv2d {
        let mut c = conv.clone();
        let w = self.weights.weights(conv.weight.val(), 0, name);
        c.weight = Param::initialized(ParamId::new(), w);
        c
    }

    fn linear(&mut self, layer: &Linear, name: &str) -> Linear {
        let mut l = layer.clone();
        let w = self.weights.weights(layer.weight.val(), 1, name);
        l.weight = Param::initialized(ParamId::new(), w);
        l
    }
}

/// [`Network::forward`] with fake quantisation. Activation names are the tensor names
/// [`crate::lower()`] gives the matching graph tensors.
pub fn forward(
    net: &Network,
    arch: &Architecture,
    inputs: Vec<Tensor<3>>,
    qat: &mut QatState,
) -> Tensor<2> {
    let mut features = Vec::with_capacity(inputs.len());
    let concatenated = arch.branches.len() > 1;
    qat.weights.start_pass();
    if let (Some(image), Some(x)) = (&net.image, inputs.first()) {
        let [batch, channels, _] = x.dims();
        let x = qat.activation(&arch.branches[0].name, x.clone());
        let mut x: Tensor<4> = x.reshape([batch, channels, image.height, image.width]);
        for (i, block) in image.blocks.iter().enumerate() {
            if let Some(dw) = &block.depthwise {
                x = qat.conv2d(dw, &format!("dw{i}/filter")).forward(x);
                x = qat.activation(&format!("dw{i}"), x);
            }
            x = qat
                .conv2d(&block.conv, &format!("conv{i}/filter"))
                .forward(x);
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = burn::tensor::activation::relu(x);
            x = qat.activation(&format!("conv{i}"), x);
            if block.pool > 1 {
                let p = block.pool;
                x = max_pool2d(x, MaxPoolOptions::new([p, p]).with_stride([p, p]));
            }
        }
        let [batch, channels, h, w] = x.dims();
        features.push(if image.global_average_pool {
            let pooled = x
                .reshape([batch, channels, h * w])
                .mean_dim(2)
                .reshape([batch, channels]);
            qat.activation("gap", pooled)
        } else {
            x.permute([0, 2, 3, 1]).reshape([batch, h * w * channels])
        });
    }
    for (b, (branch, mut x)) in net.branches.iter().zip(inputs).enumerate() {
        x = qat.activation(&arch.branches[b].name, x);
        let last = branch.blocks.len().saturating_sub(1);
        for (i, block) in branch.blocks.iter().enumerate() {
            let p = format!("branch{b}.block{i}");
            if let Some(dw) = &block.depthwise {
                x = qat.conv1d(dw, &format!("{p}/depthwise/filter")).forward(x);
                x = qat.activation(&format!("{p}/depthwise"), x);
            }
            x = qat
                .conv1d(&block.conv, &format!("{p}/conv/filter"))
                .forward(x);
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = burn::tensor::activation::relu(x);
            // A flattened branch feeding a concatenation is quantised there, with the
            // concatenation's range (pooling and flattening commute with quantisation).
            if !(i == last && concatenated && !net.global_average_pool) {
                x = qat.activation(&format!("{p}/conv"), x);
            }
            if block.pool > 1 {
                let options = MaxPoolOptions::new([block.pool]).with_stride([block.pool]);
                x = max_pool1d(x, options);
            }
        }
        let [batch, channels, length] = x.dims();
        let flat: Tensor<2> = if net.global_average_pool {
            let pooled = x.mean_dim(2).reshape([batch, channels]);
            if concatenated {
                pooled
            } else {
                qat.activation(&format!("branch{b}/gap"), pooled)
            }
        } else {
            x.swap_dims(1, 2).reshape([batch, length * channels])
        };
        features.push(flat);
    }
    let mut h = if features.len() == 1 {
        features.remove(0)
    } else {
        qat.activation("concat", Tensor::cat(features, 1))
    };
    for (i, layer) in net.hidden.iter().enumerate() {
        let y = burn::tensor::activation::relu(
            qat.linear(layer, &format!("hidden{i}/weights")).forward(h),
        );
        h = qat.activation(&format!("hidden{i}"), y);
    }
    let logits = qat.linear(&net.output, "output/weights").forward(h);
    qat.activation("output", logits)
}

/// Fake quantisation of one narrower width's pass ([`Network::forward_at_with`]), as that
/// width deploys from `kinglet modes`:
/// - own batch norms per width: the width is quantised as a model of its own, so its sliced
///   weights are fake-quantised per channel and its activations track ranges of their own,
///   stored as `qat:width<w>/<graph tensor name>`;
/// - shared normalisation scales: the width runs on the full width's int8 weights and its
///   activation scales are the full width's times the width's factors
///   (`kinglet_compress::nested`), so its weights are the leading block of the full width's
///   fake-quantised ones and its activations use the full width's ranges times the factor.
struct WidthQat<'a> {
    state: &'a mut QatState,
    arch: &'a Architecture,
    /// `width<w>/`: where the width's own ranges are kept.
    prefix: String,
    shared_scale: bool,
}

/// A layer whose weights fake-quantise per output channel (int8, as [`fake_quant_weight`]).
trait FakeQuantLayer: Sized {
    fn fake_quantised(&self) -> Self;
}

impl FakeQuantLayer for Conv1d {
    fn fake_quantised(&self) -> Self {
        let mut c = self.clone();
        c.weight = Param::initialized(ParamId::new(), fake_quant_weight(self.weight.val(), 0));
        c
    }
}

impl FakeQuantLayer for Linear {
    fn fake_quantised(&self) -> Self {
        let mut l = self.clone();
        l.weight = Param::initialized(ParamId::new(), fake_quant_weight(self.weight.val(), 1));
        l
    }
}

impl WidthQat<'_> {
    /// The width's part of `full`: the leading block of the full width's quantised weights
    /// (shared scales), or its own slice quantised on its own.
    fn layer<L: FakeQuantLayer>(&self, full: &L, slice: impl FnOnce(&L) -> L) -> L {
        if self.shared_scale {
            slice(&full.fake_quantised())
        } else {
            slice(full).fake_quantised()
        }
    }
}

impl crate::network::WidthHook for WidthQat<'_> {
    fn conv(&mut self, full: &Conv1d, slice: impl FnOnce(&Conv1d) -> Conv1d) -> Conv1d {
        self.layer(full, slice)
    }

    fn linear(&mut self, full: &Linear, slice: impl FnOnce(&Linear) -> Linear) -> Linear {
        self.layer(full, slice)
    }

    fn reads_factors(&self) -> bool {
        self.shared_scale
    }

    fn input(&mut self, branch: usize, x: Tensor<3>) -> Tensor<3> {
        let name = &self.arch.branches[branch].name;
        let factor = self.shared_scale.then_some(1.0);
        self.activation(name, x, factor)
    }

    fn activation<const D: usize>(
        &mut self,
        name: &str,
        x: Tensor<D>,
        factor: Option<f32>,
    ) -> Tensor<D> {
        match factor {
            Some(f) => match self.state.ranges.get(name) {
                Some(&(lo, hi)) => fake_quant_activation(x, lo * f, hi * f),
                None => x,
            },
            None => self.state.activation(&format!("{}{name}", self.prefix), x),
        }
    }
}

/// Logits of one width of a nested network under fake quantisation ([`forward`] for the full
/// width). The full width's pass must have run first in a training step: a shared-scale
/// width reads its ranges.
pub fn forward_at(
    net: &Network,
    arch: &Architecture,
    inputs: Vec<Tensor<3>>,
    qat: &mut QatState,
    plan: &WidthPlan,
) -> Tensor<2> {
    if plan.slim_index.is_none() {
        return forward(net, arch, inputs, qat);
    }
    let mut hook = WidthQat {
        state: qat,
        arch,
        prefix: crate::slim::range_prefix(plan.width),
        shared_scale: arch.width_norm == crate::arch::WidthNorm::SharedScale,
    };
    net.forward_at_with(inputs, plan, &mut hook)
}

/// Fine-tuning to 4- or 2-bit weights runs by default at this multiple of the schedule's
/// final rate (int8's runs at a tenth of it): the weights must move to a much coarser grid.
/// The best rate depends on the network, so `scripts/qat_rate_grid.sh` chooses it per model
/// on the validation subjects (BENCHMARKS.md, "Precisions"); over kinglet-lite and big3 at
/// w4a8, three seeds each, 3× has the best mean validation accuracy (89.26 % against 88.88 %
/// at 1×), although kinglet-lite alone prefers 1× (87.93 % against 87.87 %).
pub const SUB_BYTE_FINE_TUNE_RATE_FACTOR: f64 = 3.0;

/// Learned clipping ratios move this many times faster than the weights: Adam steps are about
/// the learning rate in size whatever the gradient's scale, and a ratio near 1 must travel a
/// few tenths within a one-epoch fine-tune at a tenth of the final rate.
pub const CLIP_RATE_FACTOR: f64 = 10.0;

/// Conv, depthwise and Dense layers of `net`: the layers whose weights take a bit width.
pub fn weighted_layer_count(net: &Network) -> usize {
    let image = net.image.as_ref().map_or(0, |i| {
        i.blocks
            .iter()
            .map(|b| 1 + usize::from(b.depthwise.is_some()))
            .sum()
    });
    let branches: usize = net
        .branches
        .iter()
        .flat_map(|b| &b.blocks)
        .map(|b| 1 + usize::from(b.depthwise.is_some()))
        .sum();
    image + branches + net.hidden.len() + 1
}

/// Options of [`train_qat`].
#[derive(Debug, Clone)]
pub struct QatOptions {
    pub seed: u64,
    /// Epochs of quantisation-aware training.
    pub epochs: usize,
    /// Constant learning rate; by default the schedule's (from scratch) or, when fine-tuning,
    /// [`FINE_TUNE_RATE_FACTOR`] times the rate the schedule had reached at its last epoch.
    pub learning_rate: Option<f64>,
    pub ema_decay: f32,
    /// Free-text description of the data, stored in the model's provenance.
    pub data_description: String,
    /// Weight bit width (8, 4 or 2) per Conv/Depthwise/Dense layer in graph op order, or one
    /// for all; empty keeps int8 (or, when fine-tuning, the widths the model learned).
    pub weight_bits: Vec<u32>,
    /// Distillation during QAT: the fake-quantised network also learns the teacher's
    /// probabilities (typically the float model it starts from), which keeps it closer to
    /// the function the float model learnt than the labels alone do at 4 or 2 bits.
    pub teacher: Option<crate::distill::Teacher>,
    /// Learn activation ranges (see [`RangeLearning`]) once the moving averages have found
    /// them (from the second epoch when starting without ranges); otherwise they follow the
    /// moving averages throughout.
    pub learn_ranges: bool,
}

impl Default for QatOptions {
    fn default() -> Self {
        QatOptions {
            seed: 0,
            epochs: 1,
            learning_rate: None,
            ema_decay: DEFAULT_EMA_DECAY,
            data_description: String::new(),
            weight_bits: Vec::new(),
            teacher: None,
            learn_ranges: false,
        }
    }
}

/// Class predictions under fake quantisation with fixed ranges.
pub fn predict(
    net: &Network,
    arch: &Architecture,
    ranges: &BTreeMap<String, (f32, f32)>,
    weights: &WeightQuant,
    prepared: &Prepared,
    device: &Device,
) -> Vec<u32> {
    predict_at(net, arch, ranges, weights, prepared, device, None)
}

/// [`predict`] at one width of a nested network (`None`: the full network).
pub fn predict_at(
    net: &Network,
    arch: &Architecture,
    ranges: &BTreeMap<String, (f32, f32)>,
    weights: &WeightQuant,
    prepared: &Prepared,
    device: &Device,
    plan: Option<&WidthPlan>,
) -> Vec<u32> {
    let mut state =
        QatState::new(ranges.clone(), false, DEFAULT_EMA_DECAY).with_weights(weights.frozen());
    let mut out = Vec::with_capacity(prepared.len());
    let all: Vec<usize> = (0..prepared.len()).collect();
    for chunk in all.chunks(512) {
        let inputs = batch_inputs(prepared, chunk, None, device);
        let logits = match plan {
            Some(plan) => forward_at(net, arch, inputs, &mut state, plan),
            None => forward(net, arch, inputs, &mut state),
        };
        let pred = logits.argmax(1).into_data();
        out.extend(pred.iter::<i64>().map(|v| v as u32));
    }
    out
}

/// Scores a QAT model (one with `qat:` ranges) on `data` as its int8 version would compute,
/// up to integer-arithmetic rounding.
pub fn evaluate(model: &TrainedModel, data: &Dataset) -> Result<Classification, Error> {
    let (prepared, pred) = predictions(model, data)?;
    Ok(Classification::new(
        &prepared.class_names,
        &prepared.targets,
        &pred,
    ))
}

/// A QAT model's fake-quantised class predictions for every sample of `data`, with the
/// prepared samples they belong to.
pub fn predictions(model: &TrainedModel, data: &Dataset) -> Result<(Prepared, Vec<u32>), Error> {
    let device = Device::flex();
    let ranges = QatState::ranges_of(model)?;
    if ranges.is_empty() {
        return Err(Error::Model(
            "the model has no activation ranges: it was not trained with QAT".into(),
        ));
    }
    let classes = model.dataset_classes.len();
    let net = Network::from_tensors(&model.architecture, classes, model.tensors.clone(), &device)?;
    let prepared = prepare(&model.architecture, data, &model.normalisation)?;
    let weights = WeightQuant::new(Vec::new(), WeightQuant::clips_of(model)?);
    let pred = predict(
        &net,
        &model.architecture,
        &ranges,
        &weights,
        &prepared,
        &device,
    );
    Ok((prepared, pred))
}

/// Quantisation-aware training of `arch` from scratch, or (with `init`) fine-tuning of a
/// trained model, whose architecture and normalisation are then kept. Keeps the epoch that
/// scores best on `validation` under fake quantisation, or the last one without validation
/// data. No checkpoint or resume: QAT runs are short.
pub fn train_qat(
    arch: &Architecture,
    init: Option<&TrainedModel>,
    train: &Dataset,
    validation: Option<&Dataset>,
    options: &QatOptions,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, Error> {
    let arch = init.map(|m| &m.architecture).unwrap_or(arch);
    arch.validate().map_err(Error::Architecture)?;
    if train.is_empty() {
        return Err(Error::Data("the training set is empty".into()));
    }
    if options.epochs == 0 {
        return Err(Error::Data("QAT needs at least one epoch".into()));
    }
    if !(options.ema_decay.is_finite() && (0.0..1.0).contains(&options.ema_decay)) {
        return Err(Error::Data(format!(
            "the moving-average decay must be in [0, 1), got {}",
            options.ema_decay
        )));
    }
    if let Some(lr) = options.learning_rate
        && !(lr.is_finite() && lr > 0.0)
    {
        return Err(Error::Data(format!(
            "the learning rate must be a positive number, got {lr}"
        )));
    }
    let classes = train.class_names.len();
    let infer_device = Device::flex();
    let device = infer_device.clone().autodiff();
    let (mut net, norm, mut ranges) = match init {
        Some(model) => {
            if model.dataset_classes != train.class_names {
                return Err(Error::Data(format!(
                    "the initial model was trained on classes {:?}, the data has {:?}",
                    model.dataset_classes, train.class_names
                )));
            }
            let net = Network::from_tensors(arch, classes, model.tensors.clone(), &device)?;
            (
                net,
                model.normalisation.clone(),
                QatState::ranges_of(model)?,
            )
        }
        None => {
            let norm = if arch.training.normalise {
                ChannelNormalisation::fit(train)?
            } else {
                ChannelNormalisation::identity(&train.channel_names)
            };
            let net = Network::init(arch, classes, options.seed, &device)?;
            (net, norm, BTreeMap::new())
        }
    };
    let layers = weighted_layer_count(&net);
    let weight_bits = match options.weight_bits.as_slice() {
        [] => Vec::new(),
        [b] => vec![*b; layers],
        bits if bits.len() == layers => bits.to_vec(),
        bits => {
            return Err(Error::Data(format!(
                "{} weight bit widths for a network with {layers} weighted layers (one per layer in op order, or one for all)",
                bits.len()
            )));
        }
    };
    if let Some(b) = weight_bits.iter().find(|b| ![8, 4, 2].contains(*b)) {
        return Err(Error::Data(format!(
            "a weight bit width of {b}: QAT trains 8-, 4- or 2-bit weights"
        )));
    }
    let learned = match init {
        Some(model) => WeightQuant::clips_of(model)?,
        None => BTreeMap::new(),
    };
    let plans = if arch.widths.is_empty() {
        Vec::new()
    } else {
        WidthPlan::all(arch)?
    };
    if !plans.is_empty() && (weight_bits.iter().any(|&b| b < 8) || !learned.is_empty()) {
        return Err(Error::Data(
            "quantisation-aware training of nested-width networks trains int8 weights; \
             4- and 2-bit widths are quantised after training (`kinglet modes --scheme w4a8`)"
                .into(),
        ));
    }
    let mut weight_quant = WeightQuant::new(weight_bits, learned);
    let (prepared, val_prepared) = prepare_sets(arch, train, validation, &norm)?;
    let loss_fn = loss_function(arch, &prepared, &device);
    let taught = options
        .teacher
        .as_ref()
        .map(|t| crate::distill::soft_targets(t, arch, train, &prepared).map(|s| (s, t.weight)))
        .transpose()?;
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let mut clip_optim = AdamConfig::new().with_epsilon(1e-7).init();
    let mut range_optim = AdamConfig::new().with_epsilon(1e-7).init();
    let mut range_learning = RangeLearning::default();
    let batch = arch.training.batch_size;
    let n = prepared.len();
    let batches = n.div_ceil(batch);
    let sub_byte = weight_quant.bits.iter().any(|b| *b < 8);
    let fine_tune_rate = if sub_byte {
        SUB_BYTE_FINE_TUNE_RATE_FACTOR
    } else {
        FINE_TUNE_RATE_FACTOR
    } * arch
        .training
        .learning_rate_at(arch.training.epochs.saturating_sub(1));
    let mut best: Option<(f64, usize, Vec<NamedTensor>)> = None;
    let mut history = Vec::new();
    for epoch in 0..options.epochs {
        progress.epoch_started(epoch + 1, options.epochs, batches);
        let lr = match (options.learning_rate, init) {
            (Some(lr), _) => lr,
            (None, Some(_)) => fine_tune_rate,
            (None, None) => arch.training.learning_rate_at(epoch),
        };
        // A stream apart from normal training's, so QAT after training sees other orders.
        let mut rng = epoch_rng(options.seed ^ 0x5141_5400, epoch);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let augment = &arch.training.augment;
        let augmenting =
            augment.scale > 0.0 || augment.noise > 0.0 || augment.shift > 0 || augment.rotate > 0.0;
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let learn_ranges = options.learn_ranges && !ranges.is_empty();
        let mut state = QatState::new(std::mem::take(&mut ranges), true, options.ema_decay)
            .with_weights(std::mem::take(&mut weight_quant))
            .with_range_learning(learn_ranges.then(|| std::mem::take(&mut range_learning)));
        let mut width_rng = epoch_rng(options.seed ^ 0x5141_5457_0000_0000, epoch);
        for idx in order.chunks(batch) {
            let inputs = batch_inputs(
                &prepared,
                idx,
                augmenting.then_some((augment, &mut rng)),
                &device,
            );
            let logits = forward(&net, arch, inputs.clone(), &mut state);
            // The sandwich rule of float training (crate::train), every width fake-quantised.
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
            .map_err(|v| diverged("QAT", v, epoch))?;
            if let Some(widest) = widest {
                let soft = burn::tensor::activation::softmax(widest, 1);
                for plan in sandwich(&plans, &mut width_rng) {
                    let narrow = forward_at(&net, arch, inputs.clone(), &mut state, plan);
                    loss = loss + soft_cross_entropy(narrow, soft.clone());
                }
            }
            let mut grads = loss.backward();
            let net_grads = GradientsParams::from_module(&mut grads, &net);
            net = optim.step(lr, net, net_grads);
            if !plans.is_empty() {
                net = net.positive_gammas();
            }
            if !state.weights.clips.alphas.is_empty() {
                let clips =
                    std::mem::replace(&mut state.weights.clips, WeightClips { alphas: Vec::new() });
                let clip_grads = GradientsParams::from_module(&mut grads, &clips);
                state.weights.clips = clip_optim.step(CLIP_RATE_FACTOR * lr, clips, clip_grads);
            }
            if let Some(learning) = state.learned_ranges.as_mut()
                && !learning.clips.factors.is_empty()
            {
                let clips = std::mem::replace(
                    &mut learning.clips,
                    ActivationClips {
                        factors: Vec::new(),
                    },
                );
                let range_grads = GradientsParams::from_module(&mut grads, &clips);
                learning.clips = range_optim.step(CLIP_RATE_FACTOR * lr, clips, range_grads);
                state.sync_learned_ranges();
            }
            loss_sum += loss_value * idx.len() as f64;
            correct += batch_correct;
            progress.batch_done(loss_value, batch_correct as f64 / idx.len() as f64);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        if let Some(learning) = state.learned_ranges.take() {
            range_learning = learning;
        }
        ranges = state.ranges;
        weight_quant = state.weights;
        let eval_net = net.valid();
        // A nested network is scored as float training scores it: the mean over its widths.
        let val = val_prepared.as_ref().map(|v| {
            let widths: Vec<Option<&WidthPlan>> = if plans.is_empty() {
                vec![None]
            } else {
                plans.iter().map(Some).collect()
            };
            let (mut accuracy, mut f1) = (0.0, 0.0);
            for plan in &widths {
                let pred = predict_at(
                    &eval_net,
                    arch,
                    &ranges,
                    &weight_quant,
                    v,
                    &infer_device,
                    *plan,
                );
                let c = Classification::new(&v.class_names, &v.targets, &pred);
                accuracy += c.accuracy() / widths.len() as f64;
                f1 += c.macro_f1() / widths.len() as f64;
            }
            (accuracy, f1)
        });
        let report = EpochReport {
            epoch: epoch + 1,
            learning_rate: lr,
            train_loss: loss_sum / n as f64,
            train_accuracy: correct as f64 / n as f64,
            validation_accuracy: val.map(|v| v.0),
            validation_macro_f1: val.map(|v| v.1),
            train_seconds,
        };
        let score = report.validation_accuracy.unwrap_or(epoch as f64);
        let is_best = best.as_ref().is_none_or(|(s, _, _)| score > *s);
        if is_best {
            let mut tensors = eval_net.named_tensors();
            tensors.extend(QatState::new(ranges.clone(), false, 0.0).range_tensors());
            tensors.extend(weight_quant.clip_tensors());
            best = Some((score, epoch + 1, tensors));
        }
        progress.epoch_done(&report, is_best);
        history.push(report);
    }
    let (_, best_epoch, tensors) = best.ok_or_else(|| Error::Model("QAT ran no epoch".into()))?;
    let base = init.map(|m| &m.provenance);
    let model = TrainedModel {
        architecture: arch.clone(),
        class_names: output_class_names(arch, &train.class_names)?,
        dataset_classes: train.class_names.clone(),
        normalisation: norm,
        tensors,
        provenance: Provenance {
            seed: options.seed,
            data: match base {
                Some(p) => format!("{}; QAT on {}", p.data, options.data_description),
                None => format!("QAT on {}", options.data_description),
            },
            epochs_trained: base.map_or(0, |p| p.epochs_trained) + history.len(),
            best_epoch: base.map_or(0, |p| p.epochs_trained) + best_epoch,
            validation_accuracy: history
                .get(best_epoch.saturating_sub(1))
                .and_then(|r| r.validation_accuracy),
        },
    };
    Ok(TrainOutcome {
        model,
        history,
        complete: true,
    })
}

/// Copies a model's ranges into `graph`'s [`kinglet_graph::meta::ACTIVATION_RANGES`]
/// metadata (`name<TAB>min<TAB>max` lines), checking each names a graph tensor.
pub(crate) fn record_ranges(
    graph: &mut kinglet_graph::Graph,
    model: &TrainedModel,
) -> Result<(), Error> {
    // A nested model lowers as its full width; its narrower widths' own ranges travel with
    // their sliced models (crate::slim::slice_model).
    let mut ranges = QatState::ranges_of(model)?;
    ranges.retain(|name, _| crate::slim::range_width(name).is_none());
    if ranges.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (name, (lo, hi)) in &ranges {
        if !graph.tensors.iter().any(|t| &t.name == name) {
            return Err(Error::Model(format!(
                "activation range `{RANGE_PREFIX}{name}` names no tensor of the lowered graph"
            )));
        }
        text.push_str(&format!("{name}\t{lo:?}\t{hi:?}\n"));
    }
    graph
        .metadata
        .insert(kinglet_graph::meta::ACTIVATION_RANGES.to_string(), text);
    Ok(())
}

/// Copies a model's learned weight clipping into `graph`'s
/// [`kinglet_graph::meta::WEIGHT_CLIPS`] metadata, checking each names a weight tensor with
/// one output channel per ratio.
pub(crate) fn record_clips(
    graph: &mut kinglet_graph::Graph,
    model: &TrainedModel,
) -> Result<(), Error> {
    let clips = WeightQuant::clips_of(model)?;
    if clips.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (name, (bits, ratios)) in &clips {
        let Some(t) = graph.tensors.iter().find(|t| &t.name == name) else {
            return Err(Error::Model(format!(
                "weight clipping `{CLIP_PREFIX}{name}` names no tensor of the lowered graph"
            )));
        };
        // Output channels: axis 0 of Conv2D/FC weights, axis 3 of depthwise `[1, kh, kw, out]`.
        let channels = if name.contains("depthwise") || name.starts_with("dw") {
            t.shape.last().copied().unwrap_or(0)
        } else {
            t.shape.first().copied().unwrap_or(0)
        };
        if channels != ratios.len() {
            return Err(Error::Model(format!(
                "weight clipping `{CLIP_PREFIX}{name}` has {} ratios for {channels} output channels",
                ratios.len()
            )));
        }
        let list: Vec<String> = ratios.iter().map(|r| format!("{r:?}")).collect();
        text.push_str(&format!("{name}\t{bits}\t{}\n", list.join(",")));
    }
    graph
        .metadata
        .insert(kinglet_graph::meta::WEIGHT_CLIPS.to_string(), text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tensor1(values: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// Int8 quantise then dequantise as the TFLite int8 spec defines it, scalar by scalar.
    fn reference_activation(x: f32, scale: f32, zp: i32) -> f32 {
        let q = ((x / scale).round() as i32 + zp).clamp(-128, 127);
        (q - zp) as f32 * scale
    }

    #[test]
    fn activation_params_follow_the_converter() {
        // [-1, 2]: scale 3/255, zero point -128 + 1/scale = -43.
        let (s, zp) = activation_params(-1.0, 2.0);
        assert_eq!(s, 3.0f32 / 255.0);
        assert_eq!(zp, -43);
        // Post-ReLU ranges put zero at the bottom; a range not containing 0 is widened.
        assert_eq!(activation_params(0.5, 2.55).1, -128);
        assert_eq!(activation_params(-2.55, -1.0).1, 127);
    }

    #[test]
    fn activation_fake_quant_equals_int8_round_trip() {
        let device = Device::flex();
        let (lo, hi) = (-1.0f32, 2.0f32);
        let (scale, zp) = activation_params(lo, hi);
        // Ties (k + 0.5 steps), values on the grid, inside, and outside both ends.
        let xs: Vec<f32> = [-1.7, -1.0, -0.3, 0.0, 0.013, 0.5, 1.234, 1.99, 2.0, 3.5]
            .into_iter()
            .chain((0..8).map(|k| (k as f32 + 0.5) * scale))
            .chain((0..8).map(|k| -(k as f32 + 0.5) * scale))
            .collect();
        let got = values(fake_quant_activation(tensor1(&xs, &device), lo, hi));
        for (x, y) in xs.iter().zip(&got) {
            assert_eq!(*y, reference_activation(*x, scale, zp), "x = {x}");
        }
    }

    #[test]
    fn activation_gradient_passes_inside_and_stops_outside() {
        let device = Device::flex().autodiff();
        let xs = [-5.0f32, -0.5, 0.0, 0.7, 1.99, 7.0];
        let x = tensor1(&xs, &device).require_grad();
        let y = fake_quant_activation(x.clone(), -1.0, 2.0);
        let grads = (y * tensor1(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &device))
            .sum()
            .backward();
        let g = values(x.grad(&grads).unwrap());
        assert_eq!(g, vec![0.0, 2.0, 3.0, 4.0, 5.0, 0.0]);
    }

    #[test]
    fn weight_fake_quant_is_per_output_channel_int8() {
        let device = Device::flex().autodiff();
        // Dense [in = 3, out = 2]: output channel 0 = column 0, max 1.27; channel 1 max 0.254.
        let w = [1.27f32, 0.1, -0.635, -0.254, 0.3, 0.05];
        let x: Tensor<2> =
            Tensor::from_data(TensorData::new(w.to_vec(), [3, 2]), &device).require_grad();
        let y = fake_quant_weight(x.clone(), 1);
        let got = values(y.clone());
        for (i, (v, q)) in w.iter().zip(&got).enumerate() {
            let m: f32 = if i % 2 == 0 { 1.27 } else { 0.254 };
            let scale = (m * 2.0) / 254.0;
            let inverse = (1.0 / f64::from(scale)) as f32;
            let want = ((v * inverse).round().clamp(-127.0, 127.0)) * scale;
            assert_eq!(*q, want, "index {i}");
        }
        // Channel 0's grid is 0.01: its largest weight is exactly step 127.
        assert_eq!(got[0], 1.27);
        assert!((got[4] - 0.3).abs() < 1e-6);
        let grads = (y * 3.0).sum().backward();
        assert_eq!(values(x.grad(&grads).unwrap()), vec![3.0; 6]);
    }

    #[test]
    fn moving_average_tracks_batch_ranges() {
        let device = Device::flex();
        let mut s = QatState::new(BTreeMap::new(), true, 0.5);
        s.activation("a", tensor1(&[-1.0, 3.0], &device));
        assert_eq!(s.ranges["a"], (-1.0, 3.0));
        s.activation("a", tensor1(&[0.0, 1.0], &device));
        assert_eq!(s.ranges["a"], (-0.5, 2.0));
        let mut frozen = QatState::new(s.ranges.clone(), false, 0.5);
        frozen.activation("a", tensor1(&[-9.0, 9.0], &device));
        assert_eq!(frozen.ranges["a"], (-0.5, 2.0));
    }
}
