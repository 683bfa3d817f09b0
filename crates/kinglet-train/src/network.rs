//! The burn module for an [`Architecture`]. Inputs are channels-first (`[batch, channels,
//! time]`, burn's convolution layout); before the dense head each branch's feature map is
//! flattened time-major with channels last, exactly as Keras `Flatten` does on `[time,
//! channels]`, so dense weights lower to TFLite `FULLY_CONNECTED` without reordering.
//!
//! Parameters get fixed ids (their index in [`Network::named_tensors`] order), so optimiser
//! state saved in a checkpoint maps back onto a rebuilt network on resume.

use std::collections::BTreeMap;

use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::Conv1d;
use burn::nn::{BatchNorm, Linear, PaddingConfig1d};
use burn::tensor::module::max_pool1d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::Error;
use crate::arch::Architecture;

/// A named weight tensor in plain memory (row-major f32).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Batch-norm epsilon (Keras's default, so folded weights match a Keras-trained equivalent).
pub const BATCH_NORM_EPSILON: f64 = 1e-3;
const BATCH_NORM_MOMENTUM: f64 = 0.1;

#[derive(Module, Debug)]
pub struct ConvBlock {
    /// Present for depthwise-separable blocks: per-channel `kernel`-wide convolution.
    pub depthwise: Option<Conv1d>,
    /// The full convolution, or the pointwise (kernel 1) half of a separable block.
    pub conv: Conv1d,
    pub norm: Option<BatchNorm>,
    pub pool: usize,
}

#[derive(Module, Debug)]
pub struct BranchNet {
    pub blocks: Vec<ConvBlock>,
}

/// The batch norms of one width below the full one, indexed `branch · blocks + block`
/// (`None` for blocks without batch norm).
#[derive(Module, Debug)]
pub struct SlimNorms {
    pub width: f64,
    pub norms: Vec<Option<BatchNorm>>,
}

#[derive(Module, Debug)]
pub struct Network {
    /// The 2D convolution stack of an image network (then `branches` is empty).
    pub image: Option<crate::image::ImageBody>,
    pub branches: Vec<BranchNet>,
    pub hidden: Vec<Linear>,
    pub output: Linear,
    pub global_average_pool: bool,
    /// Per-width batch norms of a nested-width network (one entry per width below 1).
    pub slim: Vec<SlimNorms>,
    /// The narrower widths normalise by the full width's scale ([`crate::arch::WidthNorm`]).
    pub shared_scale: bool,
}

/// Shape of every parameter and running statistic, in canonical order, with its initial values.
pub(crate) fn initial_tensors(arch: &Architecture, classes: usize, seed: u64) -> Vec<NamedTensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    // Glorot uniform, as Keras initialises kernels; biases start at zero.
    let mut glorot = |name: String, shape: Vec<usize>, fan_in: usize, fan_out: usize| {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| rng.random_range(-limit..limit)).collect();
        NamedTensor {
            name,
            shape,
            values,
        }
    };
    let zeros = |name: String, n: usize| NamedTensor {
        name,
        shape: vec![n],
        values: vec![0.0; n],
    };
    let ones = |name: String, n: usize| NamedTensor {
        name,
        shape: vec![n],
        values: vec![1.0; n],
    };
    let mut tensors = crate::image::initial_block_tensors(arch, &mut glorot);
    let image = crate::image::feature_map(arch).is_some();
    for b in (0..arch.branches.len()).filter(|_| !image) {
        let mut cin = arch.branch_channels(b);
        for (i, block) in arch.blocks.iter().enumerate() {
            let p = format!("branch{b}.block{i}");
            let k = block.kernel;
            if block.separable {
                tensors.push(glorot(
                    format!("{p}.depthwise.weight"),
                    vec![cin, 1, k],
                    k,
                    k,
                ));
                tensors.push(zeros(format!("{p}.depthwise.bias"), cin));
                tensors.push(glorot(
                    format!("{p}.conv.weight"),
                    vec![block.filters, cin, 1],
                    cin,
                    block.filters,
                ));
            } else {
                tensors.push(glorot(
                    format!("{p}.conv.weight"),
                    vec![block.filters, cin, k],
                    cin * k,
                    block.filters * k,
                ));
            }
            tensors.push(zeros(format!("{p}.conv.bias"), block.filters));
            if block.batch_norm {
                tensors.push(ones(format!("{p}.norm.gamma"), block.filters));
                tensors.push(zeros(format!("{p}.norm.beta"), block.filters));
                tensors.push(zeros(format!("{p}.norm.running_mean"), block.filters));
                tensors.push(ones(format!("{p}.norm.running_var"), block.filters));
            }
            cin = block.filters;
        }
    }
    let mut width = arch.merged_features();
    for (i, &h) in arch.head.hidden.iter().enumerate() {
        tensors.push(glorot(
            format!("hidden{i}.weight"),
            vec![width, h],
            width,
            h,
        ));
        tensors.push(zeros(format!("hidden{i}.bias"), h));
        width = h;
    }
    let outputs = arch.outputs(classes);
    tensors.push(glorot(
        "output.weight".into(),
        vec![width, outputs],
        width,
        outputs,
    ));
    tensors.push(zeros("output.bias".into(), outputs));
    tensors.extend(crate::slim::initial_norm_tensors(arch));
    out.extend(tensors);
    out
}

/// Takes the tensors a network needs by name, checking shapes.
pub(crate) struct TensorSource {
    by_name: BTreeMap<String, NamedTensor>,
    next_id: u64,
    device: Device,
}

impl TensorSource {
    pub(crate) fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, Error> {
        let t = self
            .by_name
            .remove(name)
            .ok_or_else(|| Error::Model(format!("weight `{name}` is missing")))?;
        if t.shape != shape {
            return Err(Error::Model(format!(
                "weight `{name}` has shape {:?}, expected {:?}",
                t.shape, shape
            )));
        }
        if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Model(format!(
                "weight `{name}` has a non-finite value at index {i}"
            )));
        }
        Ok(Tensor::from_data(
            TensorData::new(t.values, shape),
            &self.device,
        ))
    }

    pub(crate) fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>, Error> {
        let t = self.take(name, shape)?;
        self.next_id += 1;
        Ok(Param::initialized(ParamId::from(self.next_id), t).set_require_grad(true))
    }
}

fn conv(
    src: &mut TensorSource,
    prefix: &str,
    out: usize,
    cin_per_group: usize,
    k: usize,
    groups: usize,
    padding: (usize, usize),
) -> Result<Conv1d, Error> {
    Ok(Conv1d {
        weight: src.param(&format!("{prefix}.weight"), [out, cin_per_group, k])?,
        bias: Some(src.param(&format!("{prefix}.bias"), [out])?),
        stride: 1,
        kernel_size: k,
        dilation: 1,
        groups,
        padding: PaddingConfig1d::Explicit(padding.0, padding.1),
    })
}

/// Batch norm `{prefix}.norm.*` over `filters` channels.
pub(crate) fn batch_norm(
    src: &mut TensorSource,
    prefix: &str,
    filters: usize,
) -> Result<BatchNorm, Error> {
    let f = filters;
    let gamma = src.param(&format!("{prefix}.norm.gamma"), [f])?;
    let beta = src.param(&format!("{prefix}.norm.beta"), [f])?;
    let mean = src.take(&format!("{prefix}.norm.running_mean"), [f])?;
    let var = src.take(&format!("{prefix}.norm.running_var"), [f])?;
    Ok(BatchNorm {
        gamma,
        beta,
        training: Param::from_bool(true),
        running_mean: RunningState::new(mean),
        running_var: RunningState::new(var),
        momentum: BATCH_NORM_MOMENTUM,
        epsilon: BATCH_NORM_EPSILON,
    })
}

fn linear(src: &mut TensorSource, prefix: &str, cin: usize, out: usize) -> Result<Linear, Error> {
    Ok(Linear {
        weight: src.param(&format!("{prefix}.weight"), [cin, out])?,
        bias: Some(src.param(&format!("{prefix}.bias"), [out])?),
    })
}

/// What follows a block's convolution, at any width: its batch norm, ReLU and max-pooling.
fn norm_relu_pool(x: Tensor<3>, norm: Option<&BatchNorm>, pool: usize) -> Tensor<3> {
    let x = match norm {
        Some(norm) => norm.forward(x),
        None => x,
    };
    relu_pool(x, pool)
}

fn relu_pool(x: Tensor<3>, pool: usize) -> Tensor<3> {
    relu_pool_after(burn::tensor::activation::relu(x), pool)
}

/// The max pool after a block's ReLU (and, in quantisation-aware training, after its
/// activation is quantised: pooling commutes with quantisation).
fn relu_pool_after(x: Tensor<3>, pool: usize) -> Tensor<3> {
    if pool > 1 {
        max_pool1d(x, MaxPoolOptions::new([pool]).with_stride([pool]))
    } else {
        x
    }
}

/// A narrower width's normalisation under [`crate::arch::WidthNorm::SharedScale`]:
/// `(x − μ) · a · γ_full / √(σ²_full + ε) + β` on the leading channels, where `μ` is the
/// width's own (batch, then running) mean, `β` its own shift, and `a` one factor per layer —
/// the mean of the width's `gamma` tensor (whose entries start equal and receive equal
/// gradients, so they stay one value) rounded to a power of two ([`shared_scale_factor`]). The full width's running variance is read as a
/// constant: the width must fold to the full width's per-channel scales times `a`.
fn shared_scale_norm(x: Tensor<3>, own: &BatchNorm, full: &BatchNorm) -> Tensor<3> {
    let device = x.device();
    let c = x.dims()[1];
    let var = full
        .running_var
        .value()
        .to_device(&device)
        .narrow(0, 0, c)
        .detach();
    // The factor moves in powers of two (straight-through: the gradient reaches the mean
    // as if unrounded), so that on a device a width's scales are the full width's times
    // powers of two and its requantisation multipliers come out bit-identical.
    let mean_gamma = own.gamma.val().mean();
    let factor =
        mean_gamma.clone() + (power_of_two(mean_gamma.clone().detach()) - mean_gamma).detach();
    let scale = full
        .gamma
        .val()
        .narrow(0, 0, c)
        .div(var.add_scalar(full.epsilon).sqrt())
        .mul(factor);
    let training = device.is_autodiff() && own.training.is_enabled();
    let mean = if training {
        let batch_mean = x.clone().mean_dim(2).mean_dim(0).reshape([c]);
        let running = own
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - own.momentum)
            .add(batch_mean.clone().detach().mul_scalar(own.momentum));
        own.running_mean.update(running.detach());
        batch_mean
    } else {
        own.running_mean.value().to_device(&device)
    };
    x.sub(mean.reshape([1, c, 1]))
        .mul(scale.reshape([1, c, 1]))
        .add(own.beta.val().reshape([1, c, 1]))
}

/// The factor a shared-scale width's layer applies, from its `gamma` values, as training
/// computes it: their mean rounded to a power of two.
pub fn shared_scale_factor(gamma: &[f32]) -> f32 {
    let mean = gamma.iter().sum::<f32>() / gamma.len().max(1) as f32;
    mean.log2().round().exp2()
}

/// `2^round(log2 x)` elementwise (x > 0; batch-norm scales are kept positive).
fn power_of_two<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let ln2 = std::f64::consts::LN_2;
    x.log().div_scalar(ln2).round().mul_scalar(ln2).exp()
}

/// The branches' flattened features side by side: the dense head's input.
fn concat_features(mut features: Vec<Tensor<2>>) -> Tensor<2> {
    if features.len() == 1 {
        features.remove(0)
    } else {
        Tensor::cat(features, 1)
    }
}

impl Network {
    /// A branch's last feature map as the head reads it: averaged over time, or flattened
    /// time-major.
    fn flatten(&self, x: Tensor<3>) -> Tensor<2> {
        let [batch, channels, length] = x.dims();
        if self.global_average_pool {
            x.mean_dim(2).reshape([batch, channels])
        } else {
            x.swap_dims(1, 2).reshape([batch, length * channels])
        }
    }

    /// A freshly initialised network (Glorot-uniform kernels from `seed`, zero biases).
    pub fn init(
        arch: &Architecture,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self, Error> {
        Self::from_tensors(arch, classes, initial_tensors(arch, classes, seed), device)
    }

    /// The network of a trained model (its architecture, classes and weights).
    pub fn from_model(model: &crate::TrainedModel, device: &Device) -> Result<Self, Error> {
        Self::from_tensors(
            &model.architecture,
            model.dataset_classes.len(),
            model.tensors.clone(),
            device,
        )
    }

    /// Rebuilds a network from saved tensors; every tensor must be used and shaped right.
    pub fn from_tensors(
        arch: &Architecture,
        classes: usize,
        tensors: Vec<NamedTensor>,
        device: &Device,
    ) -> Result<Self, Error> {
        let mut src = TensorSource {
            // Activation ranges and weight clipping of quantisation-aware training are not weights.
            by_name: tensors
                .into_iter()
                .filter(|t| !crate::qat::is_qat_record(&t.name))
                .map(|t| (t.name.clone(), t))
                .collect(),
            next_id: 0,
            device: device.clone(),
        };
        let image = crate::image::ImageBody::build(arch, &mut src)?;
        let mut branches = Vec::new();
        for b in (0..arch.branches.len()).filter(|_| image.is_none()) {
            let mut cin = arch.branch_channels(b);
            let mut blocks = Vec::new();
            for (i, block) in arch.blocks.iter().enumerate() {
                let p = format!("branch{b}.block{i}");
                let pad = block.padding.amounts(block.kernel);
                let (depthwise, conv) = if block.separable {
                    let dw = conv(
                        &mut src,
                        &format!("{p}.depthwise"),
                        cin,
                        1,
                        block.kernel,
                        cin,
                        pad,
                    )?;
                    (
                        Some(dw),
                        conv(
                            &mut src,
                            &format!("{p}.conv"),
                            block.filters,
                            cin,
                            1,
                            1,
                            (0, 0),
                        )?,
                    )
                } else {
                    (
                        None,
                        conv(
                            &mut src,
                            &format!("{p}.conv"),
                            block.filters,
                            cin,
                            block.kernel,
                            1,
                            pad,
                        )?,
                    )
                };
                let norm = if block.batch_norm {
                    Some(batch_norm(&mut src, &p, block.filters)?)
                } else {
                    None
                };
                blocks.push(ConvBlock {
                    depthwise,
                    conv,
                    norm,
                    pool: block.pool,
                });
                cin = block.filters;
            }
            branches.push(BranchNet { blocks });
        }
        let mut width = arch.merged_features();
        let mut hidden = Vec::new();
        for (i, &h) in arch.head.hidden.iter().enumerate() {
            hidden.push(linear(&mut src, &format!("hidden{i}"), width, h)?);
            width = h;
        }
        let output = linear(&mut src, "output", width, arch.outputs(classes))?;
        let mut slim = Vec::new();
        for &w in arch.widths.iter().filter(|&&w| w < 1.0) {
            let mut norms = Vec::new();
            for b in 0..branches.len() {
                for (i, block) in arch.blocks.iter().enumerate() {
                    let p = format!("{}.branch{b}.block{i}", crate::slim::prefix(w));
                    norms.push(if block.batch_norm {
                        let c = crate::slim::channels_at(w, block.filters);
                        Some(batch_norm(&mut src, &p, c)?)
                    } else {
                        None
                    });
                }
            }
            slim.push(SlimNorms { width: w, norms });
        }
        if let Some(extra) = src.by_name.keys().next() {
            return Err(Error::Model(format!(
                "weight `{extra}` does not belong to architecture `{}`",
                arch.name
            )));
        }
        Ok(Network {
            image,
            branches,
            hidden,
            output,
            global_average_pool: arch.head.global_average_pool,
            slim,
            shared_scale: arch.width_norm == crate::arch::WidthNorm::SharedScale,
        })
    }

    /// Logits `[batch, outputs]` for one channels-first input per branch.
    pub fn forward(&self, inputs: Vec<Tensor<3>>) -> Tensor<2> {
        let mut features = Vec::with_capacity(inputs.len());
        if let (Some(image), Some(x)) = (&self.image, inputs.first()) {
            features.push(image.features(x.clone()));
        }
        // Image networks have no 1D branches, so this loop only runs for the 1D family.
        for (branch, mut x) in self.branches.iter().zip(inputs) {
            for block in &branch.blocks {
                if let Some(dw) = &block.depthwise {
                    x = dw.forward(x);
                }
                x = norm_relu_pool(block.conv.forward(x), block.norm.as_ref(), block.pool);
            }
            features.push(self.flatten(x));
        }
        let mut h = concat_features(features);
        for layer in &self.hidden {
            h = burn::tensor::activation::relu(layer.forward(h));
        }
        self.output.forward(h)
    }

    /// Every parameter and running statistic, in the canonical order and naming of the model file.
    pub fn named_tensors(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        if let Some(image) = &self.image {
            image.named_tensors(&mut out);
        }
        for (b, branch) in self.branches.iter().enumerate() {
            for (i, block) in branch.blocks.iter().enumerate() {
                let p = format!("branch{b}.block{i}");
                if let Some(dw) = &block.depthwise {
                    grab(&mut out, format!("{p}.depthwise.weight"), dw.weight.val());
                    if let Some(bias) = &dw.bias {
                        grab(&mut out, format!("{p}.depthwise.bias"), bias.val());
                    }
                }
                grab(
                    &mut out,
                    format!("{p}.conv.weight"),
                    block.conv.weight.val(),
                );
                if let Some(bias) = &block.conv.bias {
                    grab(&mut out, format!("{p}.conv.bias"), bias.val());
                }
                if let Some(norm) = &block.norm {
                    grab(&mut out, format!("{p}.norm.gamma"), norm.gamma.val());
                    grab(&mut out, format!("{p}.norm.beta"), norm.beta.val());
                    grab(
                        &mut out,
                        format!("{p}.norm.running_mean"),
                        norm.running_mean.value(),
                    );
                    grab(
                        &mut out,
                        format!("{p}.norm.running_var"),
                        norm.running_var.value(),
                    );
                }
            }
        }
        for (i, layer) in self.hidden.iter().enumerate() {
            grab(&mut out, format!("hidden{i}.weight"), layer.weight.val());
            if let Some(bias) = &layer.bias {
                grab(&mut out, format!("hidden{i}.bias"), bias.val());
            }
        }
        grab(&mut out, "output.weight".into(), self.output.weight.val());
        if let Some(bias) = &self.output.bias {
            grab(&mut out, "output.bias".into(), bias.val());
        }
        self.slim_tensors(&mut out);
        out
    }
}

impl Network {
    /// Appends the per-width batch-norm tensors in the order [`Network::from_tensors`] takes them.
    fn slim_tensors(&self, out: &mut Vec<NamedTensor>) {
        let blocks = self.branches.first().map_or(0, |b| b.blocks.len());
        for slim in &self.slim {
            for (j, norm) in slim.norms.iter().enumerate() {
                let Some(norm) = norm else { continue };
                let p = format!(
                    "{}.branch{}.block{}.norm",
                    crate::slim::prefix(slim.width),
                    j / blocks.max(1),
                    j % blocks.max(1)
                );
                grab(out, format!("{p}.gamma"), norm.gamma.val());
                grab(out, format!("{p}.beta"), norm.beta.val());
                grab(out, format!("{p}.running_mean"), norm.running_mean.value());
                grab(out, format!("{p}.running_var"), norm.running_var.value());
            }
        }
    }

    /// Logits of one width of a nested network: every layer runs on the leading channels of
    /// the shared weights (sliced inside the autodiff graph, so gradients reach the shared
    /// tensors), with the width's own batch norms.
    pub fn forward_at(&self, inputs: Vec<Tensor<3>>, plan: &crate::slim::WidthPlan) -> Tensor<2> {
        self.forward_at_with(inputs, plan, &mut FloatWidth)
    }

    /// [`Network::forward_at`] with `hook` applied to every weighted layer and quantised
    /// activation (quantisation-aware training of the widths, `kinglet_train::qat`). Names
    /// are the graph tensor names [`crate::lower()`] gives the width's own model.
    pub fn forward_at_with<H: WidthHook>(
        &self,
        inputs: Vec<Tensor<3>>,
        plan: &crate::slim::WidthPlan,
        hook: &mut H,
    ) -> Tensor<2> {
        let Some(k) = plan.slim_index else {
            return self.forward(inputs);
        };
        let blocks = self.branches.first().map_or(0, |b| b.blocks.len());
        let concatenated = self.branches.len() > 1;
        let mut features = Vec::with_capacity(inputs.len());
        // The width's activation scales relative to the full width's, for shared-scale
        // networks: the product of its layers' factors so far (kinglet_compress::nested).
        let mut factor = (self.shared_scale && hook.reads_factors()).then_some(1.0f32);
        for (b, (branch, mut x)) in self.branches.iter().zip(inputs).enumerate() {
            x = hook.input(b, x);
            let last = branch.blocks.len().saturating_sub(1);
            for (i, block) in branch.blocks.iter().enumerate() {
                let p = format!("branch{b}.block{i}");
                let cin = x.dims()[1];
                let cout = plan.blocks[i];
                if let Some(dw) = &block.depthwise {
                    x = hook.conv(dw, |c| narrow_conv(c, cin, 1, cin)).forward(x);
                    x = hook.activation(&format!("{p}/depthwise"), x, factor);
                }
                let norm = self.slim[k]
                    .norms
                    .get(b * blocks + i)
                    .and_then(Option::as_ref);
                let y = hook
                    .conv(&block.conv, |c| narrow_conv(c, cout, cin, 1))
                    .forward(x);
                x = match (norm, &block.norm) {
                    (Some(own), Some(full)) if self.shared_scale => {
                        if let Some(f) = factor.as_mut() {
                            let gamma: Vec<f32> = own
                                .gamma
                                .val()
                                .into_data()
                                .convert::<f32>()
                                .try_to_vec::<f32>()
                                .unwrap_or_default();
                            *f *= shared_scale_factor(&gamma);
                        }
                        burn::tensor::activation::relu(shared_scale_norm(y, own, full))
                    }
                    _ => burn::tensor::activation::relu(match norm {
                        Some(n) => n.forward(y),
                        None => y,
                    }),
                };
                // A flattened branch feeding a concatenation is quantised there.
                if !(i == last && concatenated && !self.global_average_pool) {
                    x = hook.activation(&format!("{p}/conv"), x, factor);
                }
                x = relu_pool_after(x, block.pool);
            }
            let flat = self.flatten(x);
            features.push(if self.global_average_pool && !concatenated {
                hook.activation(&format!("branch{b}/gap"), flat, factor)
            } else {
                flat
            });
        }
        let mut h = concat_features(features);
        if concatenated {
            h = hook.activation("concat", h, factor);
        }
        let device = h.device();
        let rows: Vec<i64> = plan.head_rows.iter().map(|&r| r as i64).collect();
        let rows = Tensor::<1, burn::tensor::Int>::from_data(
            TensorData::new(rows, [plan.head_rows.len()]),
            &device,
        );
        let mut rows = Some(rows);
        for (i, (layer, &units)) in self.hidden.iter().zip(&plan.hidden).enumerate() {
            let inputs = h.dims()[1];
            let dense = hook.linear(layer, |l| narrow_linear(l, rows.take(), inputs, units));
            h = burn::tensor::activation::relu(dense.forward(h));
            h = hook.activation(&format!("hidden{i}"), h, factor);
        }
        let outputs = self.output.weight.val().dims()[1];
        let inputs = h.dims()[1];
        let output = hook.linear(&self.output, |l| narrow_linear(l, rows, inputs, outputs));
        hook.activation("output", output.forward(h), factor)
    }

    /// The network with every batch-norm scale (all widths) raised to at least
    /// [`crate::slim::MIN_GAMMA`]: a positive scale folds into a convolution's weights without
    /// changing any channel's sign, so the widths' int8 weights can agree.
    pub fn positive_gammas(mut self) -> Self {
        let clamp = |norm: &mut BatchNorm| {
            norm.gamma = norm.gamma.clone().map(|g| {
                let grad = g.is_require_grad();
                let out = g.detach().clamp_min(crate::slim::MIN_GAMMA).detach();
                if grad { out.require_grad() } else { out }
            });
        };
        for branch in &mut self.branches {
            for block in &mut branch.blocks {
                if let Some(norm) = &mut block.norm {
                    clamp(norm);
                }
            }
        }
        for slim in &mut self.slim {
            for norm in slim.norms.iter_mut().flatten() {
                clamp(norm);
            }
        }
        self
    }
}

/// A convolution on the leading `out` filters and `cin_per_group` input channels of `conv`
/// (`groups` > 1 only for depthwise, where both equal the narrowed channel count).
fn narrow_conv(conv: &Conv1d, out: usize, cin_per_group: usize, groups: usize) -> Conv1d {
    let (out, cin_per_group) = if conv.groups > 1 {
        (groups, 1)
    } else {
        (out, cin_per_group)
    };
    let w = conv.weight.val();
    let [_, _, k] = w.dims();
    Conv1d {
        weight: Param::initialized(ParamId::new(), w.slice([0..out, 0..cin_per_group, 0..k])),
        bias: conv
            .bias
            .as_ref()
            .map(|b| Param::initialized(ParamId::new(), b.val().narrow(0, 0, out))),
        stride: conv.stride,
        kernel_size: conv.kernel_size,
        dilation: conv.dilation,
        groups: if conv.groups > 1 { groups } else { 1 },
        padding: conv.padding.clone(),
    }
}

/// What a width's forward pass ([`Network::forward_at_with`]) does to each weighted layer and
/// each activation the int8 graph quantises: nothing in float training; quantisation-aware
/// training fake-quantises them (`kinglet_train::qat`).
pub trait WidthHook {
    /// The width's part of convolution `full`; `slice` cuts the width's leading channels from
    /// a layer.
    fn conv(&mut self, full: &Conv1d, slice: impl FnOnce(&Conv1d) -> Conv1d) -> Conv1d {
        slice(full)
    }

    /// The width's part of dense layer `full`, as [`WidthHook::conv`].
    fn linear(&mut self, full: &Linear, slice: impl FnOnce(&Linear) -> Linear) -> Linear {
        slice(full)
    }

    /// Whether [`WidthHook::activation`] reads a shared-scale width's factors: finding them
    /// copies every layer's scale out of the tensor graph, which float training skips.
    fn reads_factors(&self) -> bool {
        false
    }

    /// Branch `branch`'s input (the graph input named after the branch).
    fn input(&mut self, _branch: usize, x: Tensor<3>) -> Tensor<3> {
        x
    }

    /// Activation `name` of the width; `factor` is its scale relative to the full width's
    /// same tensor for a shared-scale network when [`WidthHook::reads_factors`], `None`
    /// otherwise.
    fn activation<const D: usize>(
        &mut self,
        _name: &str,
        x: Tensor<D>,
        _factor: Option<f32>,
    ) -> Tensor<D> {
        x
    }
}

/// Float training's width pass: the layers as sliced, the activations as computed.
struct FloatWidth;
impl WidthHook for FloatWidth {}

/// A dense layer on `units` leading outputs of `layer`, taking the rows `rows` (the first dense
/// layer, whose inputs are flattened features) or else the `inputs` leading rows.
fn narrow_linear(
    layer: &Linear,
    rows: Option<Tensor<1, burn::tensor::Int>>,
    inputs: usize,
    units: usize,
) -> Linear {
    let w = layer.weight.val();
    let w = match rows {
        Some(rows) => w.select(0, rows).slice([0..inputs, 0..units]),
        None => w.slice([0..inputs, 0..units]),
    };
    Linear {
        weight: Param::initialized(ParamId::new(), w),
        bias: layer
            .bias
            .as_ref()
            .map(|b| Param::initialized(ParamId::new(), b.val().narrow(0, 0, units))),
    }
}

/// Appends `t` to `out` as a plain-memory tensor called `name`.
pub(crate) fn grab<const D: usize>(out: &mut Vec<NamedTensor>, name: String, t: Tensor<D>) {
    let shape = t.dims().to_vec();
    let values = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    out.push(NamedTensor {
        name,
        shape,
        values,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_tensors_count_matches_parameter_count() {
        for name in crate::arch::PRESET_NAMES {
            let arch = Architecture::preset(name).unwrap();
            let total: usize = initial_tensors(&arch, 6, 1)
                .iter()
                .filter(|t| !t.name.contains("running_"))
                .map(|t| t.values.len())
                .sum();
            assert_eq!(total, arch.parameter_count(6), "{name}");
        }
    }

    #[test]
    fn forward_shape_and_tensor_round_trip() {
        let device = Device::flex();
        let arch = Architecture::preset("kinglet").unwrap();
        let net = Network::init(&arch, 6, 7, &device).unwrap();
        let x = Tensor::<3>::ones([2, 9, 128], &device);
        let y = net.forward(vec![x.clone()]);
        assert_eq!(y.dims(), [2, 6]);
        let again = Network::from_tensors(&arch, 6, net.named_tensors(), &device).unwrap();
        let y2 = again.forward(vec![x]);
        let a = y.into_data().try_into_vec::<f32>().unwrap();
        let b = y2.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn wrong_shapes_and_extra_weights_are_errors() {
        let device = Device::flex();
        let arch = Architecture::preset("little0").unwrap();
        let mut t = initial_tensors(&arch, 6, 1);
        t[0].shape = vec![4, 3, 2];
        let err = Network::from_tensors(&arch, 6, t, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("branch0.block0.conv.weight"), "{err}");
        let mut t = initial_tensors(&arch, 6, 1);
        t.push(NamedTensor {
            name: "stray".into(),
            shape: vec![1],
            values: vec![0.0],
        });
        assert!(Network::from_tensors(&arch, 6, t, &device).is_err());
    }
}
