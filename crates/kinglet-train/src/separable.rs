//! Depthwise-separable conversion of a trained network: every full convolution `W[o, c, taps]`
//! becomes a depthwise convolution `D[c, taps]` (depth multiplier 1) followed by a pointwise
//! 1×1 convolution `P[o, c]`, so that `W ≈ P[o, c] · D[c, taps]`.
//!
//! The factorisation separates by input channel: for each `c`, `W[:, c, :]` is an
//! `out × taps` matrix that the separable form can only express as the outer product
//! `P[:, c] · D[c, :]`. Its best approximation in the Frobenius norm (Eckart–Young) is the
//! leading singular triple, `D[c, :] = σ₁·v₁` and `P[:, c] = u₁`, so the conversion starts
//! fine-tuning from the separable network closest to the trained one, and is exact when every
//! `W[:, c, :]` has rank one. The depthwise bias is zero and the convolution's bias moves to the
//! pointwise layer, which keeps the block's batch norm. Fine-tuning then runs the ordinary
//! training loop from the converted weights ([`crate::train::TrainOptions::init`]).

use kinglet_data::Dataset;

use crate::Error;
use crate::model_file::TrainedModel;
use crate::network::NamedTensor;
use crate::train::{Progress, TrainOptions, TrainOutcome};

/// Off-diagonal mass (relative to the diagonal's) below which the Jacobi iteration stops.
const JACOBI_TOLERANCE: f64 = 1e-26;
/// Jacobi converges quadratically; this many sweeps is never reached for kernel-sized matrices.
const JACOBI_MAX_SWEEPS: usize = 100;

/// The leading singular triple of a matrix: `M ≈ sigma · u · vᵀ`, `|u| = |v| = 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct RankOne {
    pub sigma: f64,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric
/// `n × n` matrix by cyclic Jacobi rotations: simple, and accurate to rounding for the few-tap
/// Gram matrices met here, however close their eigenvalues are.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _ in 0..JACOBI_MAX_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let diagonal: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= JACOBI_TOLERANCE * diagonal || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // Rotation angle φ with cot 2φ = θ zeroes a[p][q] (t = tan φ, the smaller root).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * kp - s * kq;
                    a[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * pk - s * qk;
                    a[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    let values = (0..n).map(|i| a[i * n + i]).collect();
    (values, v)
}

/// Best rank-1 approximation of the row-major `rows × cols` matrix `m`: `v` is the leading
/// eigenvector of `mᵀm`, `sigma = |m·v|`, `u = m·v / sigma`. Signs are fixed so that `v`'s
/// largest-magnitude entry is positive; a zero matrix gives `sigma = 0`, `u = e₀`.
pub fn rank_one(m: &[f64], rows: usize, cols: usize) -> RankOne {
    debug_assert_eq!(m.len(), rows * cols);
    let mut gram = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in i..cols {
            let g: f64 = (0..rows).map(|r| m[r * cols + i] * m[r * cols + j]).sum();
            gram[i * cols + j] = g;
            gram[j * cols + i] = g;
        }
    }
    let (values, vectors) = symmetric_eigen(gram, cols);
    let top = (0..cols)
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0);
    let mut v: Vec<f64> = (0..cols).map(|k| vectors[k * cols + top]).collect();
    let largest = v
        .iter()
        .copied()
        .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
    if largest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    let mv: Vec<f64> = (0..rows)
        .map(|r| (0..cols).map(|k| m[r * cols + k] * v[k]).sum())
        .collect();
    let sigma = mv.iter().map(|x| x * x).sum::<f64>().sqrt();
    let u = if sigma > 0.0 {
        mv.iter().map(|x| x / sigma).collect()
    } else {
        (0..rows).map(|r| if r == 0 { 1.0 } else { 0.0 }).collect()
    };
    RankOne { sigma, u, v }
}

/// How well one converted convolution reproduces the original weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerReport {
    /// Block prefix, e.g. `branch0.block1`.
    pub block: String,
    /// The original kernel's shape `[out, in, taps…]`.
    pub shape: Vec<usize>,
    /// `|W − P·D| / |W|` over the whole kernel (Frobenius norms).
    pub relative_error: f64,
    /// Weights and biases before (full convolution) and after (depthwise + pointwise).
    pub parameters_before: usize,
    pub parameters_after: usize,
}

/// A converted model and what each converted layer lost.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub model: TrainedModel,
    pub layers: Vec<LayerReport>,
}

/// Splits a full kernel `[out, in, taps…]` into the depthwise kernel `[in, 1, taps…]` and the
/// pointwise kernel `[out, in, 1…]`, with the report of the approximation.
fn split_kernel(
    block: &str,
    kernel: &NamedTensor,
) -> Result<(NamedTensor, NamedTensor, f64), Error> {
    let shape = &kernel.shape;
    if shape.len() < 3 {
        return Err(Error::Model(format!(
            "weight `{}` has shape {shape:?}, expected [out, in, taps…]",
            kernel.name
        )));
    }
    let (out, cin) = (shape[0], shape[1]);
    let taps: usize = shape[2..].iter().product();
    if kernel.values.len() != out * cin * taps {
        return Err(Error::Model(format!(
            "weight `{}` holds {} values for shape {shape:?}",
            kernel.name,
            kernel.values.len()
        )));
    }
    if let Some(i) = kernel.values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Model(format!(
            "weight `{}` has a non-finite value at index {i}",
            kernel.name
        )));
    }
    let mut depthwise = vec![0f32; cin * taps];
    let mut pointwise = vec![0f32; out * cin];
    let (mut error, mut norm) = (0.0f64, 0.0f64);
    for c in 0..cin {
        let slice: Vec<f64> = (0..out)
            .flat_map(|o| (0..taps).map(move |j| (o, j)))
            .map(|(o, j)| f64::from(kernel.values[(o * cin + c) * taps + j]))
            .collect();
        let r = rank_one(&slice, out, taps);
        for j in 0..taps {
            depthwise[c * taps + j] = (r.sigma * r.v[j]) as f32;
        }
        for o in 0..out {
            pointwise[o * cin + c] = r.u[o] as f32;
        }
        for o in 0..out {
            for j in 0..taps {
                let w = slice[o * taps + j];
                let approx = f64::from(pointwise[o * cin + c]) * f64::from(depthwise[c * taps + j]);
                error += (w - approx) * (w - approx);
                norm += w * w;
            }
        }
    }
    let relative_error = if norm > 0.0 {
        (error / norm).sqrt()
    } else {
        0.0
    };
    let spatial_ones = vec![1; shape.len() - 2];
    let depthwise = NamedTensor {
        name: format!("{block}.depthwise.weight"),
        shape: [cin, 1].iter().chain(&shape[2..]).copied().collect(),
        values: depthwise,
    };
    let pointwise = NamedTensor {
        name: format!("{block}.conv.weight"),
        shape: [out, cin].iter().chain(&spatial_ones).copied().collect(),
        values: pointwise,
    };
    Ok((depthwise, pointwise, relative_error))
}

/// Block prefixes of every branch's block `i` (one branch for image networks).
fn block_prefixes(model: &TrainedModel, i: usize) -> Vec<String> {
    let arch = &model.architecture;
    let branches = if crate::image::feature_map(arch).is_some() {
        1
    } else {
        arch.branches.len()
    };
    (0..branches)
        .map(|b| format!("branch{b}.block{i}"))
        .collect()
}

/// Converts every full convolution of `model` into depthwise + pointwise, initialised by the
/// per-input-channel rank-1 factorisation. Activation ranges of a QAT model are dropped (they
/// describe the old layers). Fails when the model has no full convolution.
pub fn convert(model: &TrainedModel) -> Result<Conversion, Error> {
    let arch = &model.architecture;
    let targets: Vec<usize> = (0..arch.blocks.len())
        .filter(|&i| !arch.blocks[i].separable)
        .collect();
    if targets.is_empty() {
        return Err(Error::Model(format!(
            "architecture `{}` has no full convolution to convert (every block is already separable)",
            arch.name
        )));
    }
    convert_blocks(model, &targets)
}

/// [`convert`] restricted to the blocks with these (0-based) indices, in every branch: small
/// early layers save little and cost an extra op each, so some networks do better converting
/// only their wide layers.
pub fn convert_blocks(model: &TrainedModel, targets: &[usize]) -> Result<Conversion, Error> {
    let mut arch = model.architecture.clone();
    if targets.is_empty() {
        return Err(Error::Model("no block to convert".into()));
    }
    for &i in targets {
        match arch.blocks.get(i) {
            None => {
                return Err(Error::Model(format!(
                    "block {i} does not exist: architecture `{}` has {} blocks",
                    arch.name,
                    arch.blocks.len()
                )));
            }
            Some(b) if b.separable => {
                return Err(Error::Model(format!(
                    "block {i} of `{}` is already separable: no full convolution to convert",
                    arch.name
                )));
            }
            Some(_) => {}
        }
    }
    let mut replacements = std::collections::BTreeMap::new();
    let mut layers = Vec::new();
    for &i in targets {
        for prefix in block_prefixes(model, i) {
            let name = format!("{prefix}.conv.weight");
            let kernel = model
                .tensor(&name)
                .ok_or_else(|| Error::Model(format!("weight `{name}` is missing")))?;
            let bias_name = format!("{prefix}.conv.bias");
            let bias_len = model
                .tensor(&bias_name)
                .ok_or_else(|| Error::Model(format!("weight `{bias_name}` is missing")))?
                .values
                .len();
            let (depthwise, pointwise, relative_error) = split_kernel(&prefix, kernel)?;
            let cin = kernel.shape[1];
            layers.push(LayerReport {
                block: prefix.clone(),
                shape: kernel.shape.clone(),
                relative_error,
                parameters_before: kernel.values.len() + bias_len,
                parameters_after: depthwise.values.len() + cin + pointwise.values.len() + bias_len,
            });
            let bias = NamedTensor {
                name: format!("{prefix}.depthwise.bias"),
                shape: vec![cin],
                values: vec![0.0; cin],
            };
            replacements.insert(name, [depthwise, bias, pointwise]);
        }
        arch.blocks[i].separable = true;
    }
    let mut tensors = Vec::with_capacity(model.tensors.len() + replacements.len() * 2);
    for t in &model.tensors {
        if crate::qat::is_qat_record(&t.name) {
            continue;
        }
        match replacements.remove(&t.name) {
            // Canonical order: depthwise weight and bias, then the pointwise kernel.
            Some(parts) => tensors.extend(parts),
            None => tensors.push(t.clone()),
        }
    }
    if !arch.name.ends_with("-separable") {
        arch.name = format!("{}-separable", arch.name);
    }
    arch.validate().map_err(Error::Architecture)?;
    let mut provenance = model.provenance.clone();
    provenance.data = format!("{}; depthwise-separable conversion", provenance.data);
    Ok(Conversion {
        model: TrainedModel {
            architecture: arch,
            class_names: model.class_names.clone(),
            dataset_classes: model.dataset_classes.clone(),
            normalisation: model.normalisation.clone(),
            tensors,
            provenance,
        },
        layers,
    })
}

/// Options of [`fine_tune`].
#[derive(Debug, Clone)]
pub struct FineTuneOptions {
    pub seed: u64,
    pub epochs: usize,
    /// Constant learning rate of the fine-tuning (Adam).
    pub learning_rate: f64,
    /// Free-text description of the data, stored in the model's provenance.
    pub data_description: String,
}

/// Fine-tunes a converted model with the ordinary training loop (its schedule's batch size,
/// augmentation and weight averaging, at a constant `learning_rate`), keeping the epoch best
/// on `validation` when given and the schedule does not average.
pub fn fine_tune(
    converted: &TrainedModel,
    train: &Dataset,
    validation: Option<&Dataset>,
    options: &FineTuneOptions,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, Error> {
    if options.epochs == 0 {
        return Err(Error::Data("fine-tuning needs at least one epoch".into()));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(Error::Data(format!(
            "the learning rate must be a positive number, got {}",
            options.learning_rate
        )));
    }
    let train_options = TrainOptions {
        seed: options.seed,
        epochs: Some(options.epochs),
        init: Some(converted.clone()),
        learning_rate: Some(options.learning_rate),
        data_description: options.data_description.clone(),
        ..Default::default()
    };
    let mut outcome = crate::train::train(
        &converted.architecture,
        train,
        validation,
        &train_options,
        progress,
    )?;
    let base = &converted.provenance;
    let p = &mut outcome.model.provenance;
    p.data = format!("{}; fine-tuned on {}", base.data, options.data_description);
    p.best_epoch += base.epochs_trained;
    p.epochs_trained += base.epochs_trained;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Architecture;
    use crate::model_file::test_model;
    use crate::network::Network;
    use burn::tensor::{Device, Tensor, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random initial weights with every full kernel replaced by one of rank 1 per input
    /// channel (`W[o, c, :] = a[o, c] · d[c, :]`), and random biases and batch-norm statistics.
    fn rank_one_model(arch: Architecture, classes: usize, seed: u64) -> TrainedModel {
        let device = Device::flex();
        let net = Network::init(&arch, classes, seed, &device).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = net.named_tensors();
        for t in &mut tensors {
            if t.name.ends_with(".conv.weight") && t.shape.iter().skip(2).product::<usize>() > 1 {
                let (out, cin) = (t.shape[0], t.shape[1]);
                let taps = t.values.len() / (out * cin);
                let a: Vec<f32> = (0..out * cin)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let d: Vec<f32> = (0..cin * taps)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                for o in 0..out {
                    for c in 0..cin {
                        for j in 0..taps {
                            t.values[(o * cin + c) * taps + j] = a[o * cin + c] * d[c * taps + j];
                        }
                    }
                }
            } else if t.name.ends_with("bias") || t.name.ends_with("beta") {
                t.values
                    .iter_mut()
                    .for_each(|v| *v = rng.random_range(-0.5..0.5));
            } else if t.name.ends_with("running_var") || t.name.ends_with("gamma") {
                t.values
                    .iter_mut()
                    .for_each(|v| *v = rng.random_range(0.5..2.0));
            } else if t.name.ends_with("running_mean") {
                t.values
                    .iter_mut()
                    .for_each(|v| *v = rng.random_range(-0.5..0.5));
            }
        }
        test_model(arch, classes, tensors)
    }

    fn logits(model: &TrainedModel, inputs: &[Tensor<3>]) -> Vec<f32> {
        let device = Device::flex();
        // A plain (non-autodiff) device: batch norm uses its running statistics.
        let net = Network::from_model(model, &device).unwrap();
        let y = net.forward(inputs.to_vec());
        y.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    fn random_inputs(model: &TrainedModel, batch: usize, seed: u64) -> Vec<Tensor<3>> {
        let device = Device::flex();
        let arch = &model.architecture;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..arch.branches.len())
            .map(|b| {
                let (c, l) = (arch.branch_channels(b), arch.branch_length());
                let v: Vec<f32> = (0..batch * c * l)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                Tensor::from_data(TensorData::new(v, [batch, c, l]), &device)
            })
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tolerance: f32) {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tolerance * scale, "output {i}: {x} vs {y}");
        }
    }

    #[test]
    fn rank_one_recovers_the_leading_singular_triple() {
        // M = 5·u1·v1ᵀ + 2·u2·v2ᵀ with orthonormal u's and v's (3 × 4).
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let (u1, u2) = ([s, s, 0.0], [s, -s, 0.0]);
        let (v1, v2) = ([0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, -0.5]);
        let m: Vec<f64> = (0..3)
            .flat_map(|r| (0..4).map(move |c| 5.0 * u1[r] * v1[c] + 2.0 * u2[r] * v2[c]))
            .collect();
        let r = rank_one(&m, 3, 4);
        assert!((r.sigma - 5.0).abs() < 1e-12, "{r:?}");
        for (a, b) in r.v.iter().zip(v1) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
        for (a, b) in r.u.iter().zip(u1) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
        let zero = rank_one(&[0.0; 6], 2, 3);
        assert_eq!(zero.sigma, 0.0);
    }

    #[test]
    fn rank_one_minimises_the_error_against_random_rank_one_guesses() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, cols) = (12, 9);
        let m: Vec<f64> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let r = rank_one(&m, rows, cols);
        let err = |u: &[f64], v: &[f64], s: f64| -> f64 {
            (0..rows * cols)
                .map(|i| (m[i] - s * u[i / cols] * v[i % cols]).powi(2))
                .sum()
        };
        let best = err(&r.u, &r.v, r.sigma);
        // Frobenius error² of the best rank-1 = |M|² − σ₁².
        let total: f64 = m.iter().map(|x| x * x).sum();
        assert!((best - (total - r.sigma * r.sigma)).abs() < 1e-9);
        for _ in 0..200 {
            let u: Vec<f64> = (0..rows).map(|_| rng.random_range(-1.0..1.0)).collect();
            let v: Vec<f64> = (0..cols).map(|_| rng.random_range(-1.0..1.0)).collect();
            // Least-squares scale for this (u, v).
            let uv: f64 = (0..rows * cols)
                .map(|i| m[i] * u[i / cols] * v[i % cols])
                .sum();
            let n: f64 =
                u.iter().map(|x| x * x).sum::<f64>() * v.iter().map(|x| x * x).sum::<f64>();
            assert!(err(&u, &v, uv / n) >= best - 1e-12);
        }
    }

    #[test]
    fn conversion_is_exact_for_rank_one_kernels_1d() {
        // Three branches and batch norm: the big3 layout with normalised blocks.
        let mut arch = Architecture::preset("big3").unwrap();
        for b in &mut arch.blocks {
            b.batch_norm = true;
        }
        arch.blocks[1].padding = crate::arch::Padding::Valid;
        let model = rank_one_model(arch, 6, 11);
        let conversion = convert(&model).unwrap();
        assert_eq!(conversion.layers.len(), 15);
        for l in &conversion.layers {
            assert!(l.relative_error < 1e-6, "{l:?}");
        }
        let converted = &conversion.model;
        assert!(converted.architecture.blocks.iter().all(|b| b.separable));
        assert_eq!(
            converted.parameter_count(),
            converted
                .tensors
                .iter()
                .filter(|t| !t.name.contains("running_"))
                .map(|t| t.values.len())
                .sum::<usize>()
        );
        let inputs = random_inputs(&model, 4, 5);
        assert_close(&logits(&model, &inputs), &logits(converted, &inputs), 1e-4);
    }

    #[test]
    fn conversion_is_exact_for_rank_one_kernels_2d() {
        let mut arch = crate::image::mnist_cnn();
        arch.task = crate::arch::Task::Image {
            height: 12,
            width: 12,
        };
        arch.branches[0].channels = vec!["r".into(), "g".into()];
        arch.blocks.push(crate::arch::Block {
            filters: 5,
            kernel: 3,
            pool: 1,
            padding: crate::arch::Padding::Same,
            batch_norm: true,
            separable: false,
        });
        let model = rank_one_model(arch, 10, 12);
        let conversion = convert(&model).unwrap();
        assert_eq!(conversion.layers.len(), 2);
        for l in &conversion.layers {
            assert!(l.relative_error < 1e-6, "{l:?}");
        }
        let inputs = random_inputs(&model, 3, 6);
        assert_close(
            &logits(&model, &inputs),
            &logits(&conversion.model, &inputs),
            1e-4,
        );
    }

    #[test]
    fn single_input_channel_becomes_the_seed_separable_layer() {
        let arch = crate::image::mnist_cnn();
        let device = Device::flex();
        let net = Network::init(&arch, 10, 4, &device).unwrap();
        let model = test_model(arch, 10, net.named_tensors());
        let conversion = convert(&model).unwrap();
        let converted = &conversion.model;
        // Exactly the from-scratch separable mnist-cnn (the seed's SeparableConv2D layer).
        let text = include_str!("../../../archs/mnist-cnn-separable.toml");
        let reference = Architecture::from_toml(text, "mnist-cnn-separable.toml").unwrap();
        assert_eq!(converted.architecture, reference);
        assert_eq!(converted.parameter_count(), reference.parameter_count(10));
        let dw = converted.tensor("branch0.block0.depthwise.weight").unwrap();
        assert_eq!(dw.shape, vec![1, 1, 3, 3]);
        let pw = converted.tensor("branch0.block0.conv.weight").unwrap();
        assert_eq!(pw.shape, vec![12, 1, 1, 1]);
        // With one input channel the separable kernel is the best rank-1 approximation of the
        // whole 12 × 9 kernel: its error is exactly sqrt(1 − σ₁² / |W|²).
        let w = model.tensor("branch0.block0.conv.weight").unwrap();
        let m: Vec<f64> = w.values.iter().map(|&v| f64::from(v)).collect();
        let r = rank_one(&m, 12, 9);
        let total: f64 = m.iter().map(|x| x * x).sum();
        let want = (1.0 - r.sigma * r.sigma / total).sqrt();
        assert!((conversion.layers[0].relative_error - want).abs() < 1e-5);
        assert!(
            conversion.layers[0].relative_error > 0.1,
            "random kernels are not rank 1"
        );
        // Each output filter is a multiple of the one depthwise filter.
        for o in 0..12 {
            for j in 0..9 {
                let approx = pw.values[o] * dw.values[j];
                let direct = (r.u[o] * r.sigma * r.v[j]) as f32;
                assert!((approx - direct).abs() < 1e-5);
            }
        }
        // A second conversion has nothing left to do.
        let err = convert(converted).unwrap_err().to_string();
        assert!(err.contains("no full convolution"), "{err}");
        let err = convert_blocks(&model, &[1]).unwrap_err().to_string();
        assert!(err.contains("block 1 does not exist"), "{err}");
    }

    #[test]
    fn chosen_blocks_convert_alone() {
        let model = rank_one_model(Architecture::preset("big3").unwrap(), 6, 13);
        let conversion = convert_blocks(&model, &[3, 4]).unwrap();
        let separable: Vec<bool> = conversion
            .model
            .architecture
            .blocks
            .iter()
            .map(|b| b.separable)
            .collect();
        assert_eq!(separable, [false, false, false, true, true]);
        assert_eq!(conversion.layers.len(), 6);
        let inputs = random_inputs(&model, 2, 8);
        assert_close(
            &logits(&model, &inputs),
            &logits(&conversion.model, &inputs),
            1e-4,
        );
    }
}
