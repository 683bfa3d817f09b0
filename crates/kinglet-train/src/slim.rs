//! Nested-width (slimmable) networks: one set of weights in which the first ⌈w·C⌉ channels of
//! every hidden layer form a complete smaller classifier, for each width `w` of
//! [`Architecture::widths`].
//!
//! Only batch normalisation is not shared: a narrower layer sees different statistics (fewer
//! input channels feed each output), so every width below 1 keeps its own scale, shift and
//! running statistics, stored as `width<w>.branch<b>.block<i>.norm.*` tensors of the narrow
//! channel count. The full width keeps the ordinary names, so a nested model is also an ordinary
//! model of its full width for every other command. After lowering, a width's batch norm folds
//! into its convolution's per-channel scale and bias; training keeps every `gamma` positive so
//! the fold never flips a channel's sign (see docs/model-format.md for what that buys int8).
//!
//! The network input's channels and the classifier's outputs are never narrowed.

use crate::Error;
use crate::arch::{Architecture, Task};
use crate::model_file::TrainedModel;
use crate::network::NamedTensor;

/// Smallest batch-norm scale training lets a width keep (see [`crate::network::Network::positive_gammas`]).
pub const MIN_GAMMA: f32 = 1e-3;

/// Channels a layer of `full` channels keeps at `width`: ⌈width·full⌉, at least one.
pub fn channels_at(width: f64, full: usize) -> usize {
    // The small slack keeps 0.75 · 48 = 36 at 36 despite binary rounding.
    ((width * full as f64 - 1e-9).ceil().max(1.0) as usize).min(full)
}

/// Prefix of a width's own batch-norm tensors (`width0.25`).
pub fn prefix(width: f64) -> String {
    format!("width{width}")
}

/// Prefix of a width's own activation ranges in a model trained with QAT
/// (`qat:width0.25/<graph tensor name>`).
pub fn range_prefix(width: f64) -> String {
    format!("{}/", prefix(width))
}

/// The width an activation range name (without `qat:`) belongs to, if it is a narrower
/// width's own (see [`range_prefix`]).
pub fn range_width(name: &str) -> Option<f64> {
    let (head, _) = name.split_once('/')?;
    head.strip_prefix("width")?.parse::<f64>().ok()
}

/// Parses a comma-separated width list (`0.25,0.5,0.75,1.0`) and checks it.
pub fn parse_widths(text: &str) -> Result<Vec<f64>, Error> {
    let widths = text
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| Error::Architecture(format!("width `{}`: {e}", s.trim())))
        })
        .collect::<Result<Vec<f64>, Error>>()?;
    check_list(&widths).map_err(Error::Architecture)?;
    Ok(widths)
}

fn check_list(widths: &[f64]) -> Result<(), String> {
    if widths.len() < 2 {
        return Err("widths: at least two widths are needed (the last one 1)".into());
    }
    if let Some(w) = widths
        .iter()
        .find(|w| !(w.is_finite() && **w > 0.0 && **w <= 1.0))
    {
        return Err(format!("widths: {w} is not in (0, 1]"));
    }
    if widths.windows(2).any(|p| p[0] >= p[1]) {
        return Err(format!(
            "widths must be strictly increasing, got {widths:?}"
        ));
    }
    if widths.last() != Some(&1.0) {
        return Err(format!(
            "widths must end with 1 (the full network), got {widths:?}"
        ));
    }
    Ok(())
}

/// Checks an architecture's widths (none is fine) are usable with its layers.
pub fn validate_widths(arch: &Architecture) -> Result<(), String> {
    if arch.widths.is_empty() {
        return Ok(());
    }
    check_list(&arch.widths)?;
    if matches!(arch.task, Task::Image { .. }) {
        return Err("widths: nested widths are implemented for the 1D CNN family only".into());
    }
    if arch.blocks.is_empty() {
        return Err("widths: a network without convolution blocks has nothing to narrow".into());
    }
    Ok(())
}

/// Which channels one width uses, layer by layer.
#[derive(Debug, Clone, PartialEq)]
pub struct WidthPlan {
    pub width: f64,
    /// Index into the widths below 1 (the per-width batch norms); `None` for the full width.
    pub slim_index: Option<usize>,
    /// Output channels of every convolution block.
    pub blocks: Vec<usize>,
    /// Units of every hidden dense layer.
    pub hidden: Vec<usize>,
    /// Rows of the first dense layer's weight (hidden or output) this width's features meet,
    /// in feature order: branch-major, then time, then channel, as the network flattens.
    pub head_rows: Vec<usize>,
}

impl WidthPlan {
    /// The plan of `width`, which must be one of `arch.widths`.
    pub fn new(arch: &Architecture, width: f64) -> Result<WidthPlan, Error> {
        let k = arch
            .widths
            .iter()
            .position(|&w| (w - width).abs() < 1e-9)
            .ok_or_else(|| {
                if arch.widths.is_empty() {
                    Error::Model(format!(
                        "architecture `{}` has no nested widths (train it with --widths)",
                        arch.name
                    ))
                } else {
                    Error::Model(format!(
                        "width {width} is not one of the model's widths {:?}",
                        arch.widths
                    ))
                }
            })?;
        let full = k + 1 == arch.widths.len();
        let blocks: Vec<usize> = arch
            .blocks
            .iter()
            .map(|b| channels_at(width, b.filters))
            .collect();
        let hidden = arch
            .head
            .hidden
            .iter()
            .map(|&h| channels_at(width, h))
            .collect();
        let (len, channels) = arch.branch_output();
        let kept = blocks.last().copied().unwrap_or(channels);
        let steps = if arch.head.global_average_pool {
            1
        } else {
            len
        };
        let mut head_rows = Vec::with_capacity(arch.branches.len() * steps * kept);
        for b in 0..arch.branches.len() {
            for t in 0..steps {
                for c in 0..kept {
                    head_rows.push((b * steps + t) * channels + c);
                }
            }
        }
        Ok(WidthPlan {
            width,
            slim_index: (!full).then_some(k),
            blocks,
            hidden,
            head_rows,
        })
    }

    /// One plan per width of `arch`, narrowest first.
    pub fn all(arch: &Architecture) -> Result<Vec<WidthPlan>, Error> {
        arch.widths
            .iter()
            .map(|&w| WidthPlan::new(arch, w))
            .collect()
    }
}

/// Initial per-width batch-norm tensors (scale 1, shift 0, unit statistics) of every width
/// below 1, in the order [`crate::network::Network`] takes them.
pub(crate) fn initial_norm_tensors(arch: &Architecture) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    for &w in arch.widths.iter().filter(|&&w| w < 1.0) {
        for b in 0..arch.branches.len() {
            for (i, block) in arch.blocks.iter().enumerate() {
                if !block.batch_norm {
                    continue;
                }
                let c = channels_at(w, block.filters);
                let p = format!("{}.branch{b}.block{i}.norm", prefix(w));
                for (part, value) in [
                    ("gamma", 1.0),
                    ("beta", 0.0),
                    ("running_mean", 0.0),
                    ("running_var", 1.0),
                ] {
                    out.push(NamedTensor {
                        name: format!("{p}.{part}"),
                        shape: vec![c],
                        values: vec![value; c],
                    });
                }
            }
        }
    }
    out
}

/// The leading block of `t` of shape `shape` (every index below the new extent, row-major).
fn leading(t: &NamedTensor, shape: &[usize]) -> Result<Vec<f32>, Error> {
    let at = kinglet_graph::leading_block_indices(shape, &t.shape).ok_or_else(|| {
        Error::Model(format!(
            "weight `{}` of shape {:?} cannot be narrowed to {shape:?}",
            t.name, t.shape
        ))
    })?;
    Ok(at.into_iter().map(|i| t.values[i]).collect())
}

/// One width of a nested model as an ordinary model of the narrow architecture (no widths),
/// so lowering, quantisation, evaluation, profiling and compilation work on it unchanged.
pub fn slice_model(model: &TrainedModel, width: f64) -> Result<TrainedModel, Error> {
    let arch = &model.architecture;
    let plan = WidthPlan::new(arch, width)?;
    let mut narrow = arch.clone();
    narrow.widths = Vec::new();
    narrow.width_norm = Default::default();
    narrow.name = format!("{}-w{width}", arch.name);
    for (block, &c) in narrow.blocks.iter_mut().zip(&plan.blocks) {
        block.filters = c;
    }
    narrow.head.hidden = plan.hidden.clone();
    let classes = model.dataset_classes.len();
    let first_dense = if narrow.head.hidden.is_empty() {
        "output.weight"
    } else {
        "hidden0.weight"
    };
    let norm_prefix = plan.slim_index.map(|_| prefix(width));
    let shared_scale = arch.width_norm == crate::arch::WidthNorm::SharedScale;
    let mut tensors = Vec::new();
    for shape_of in crate::network::initial_tensors(&narrow, classes, 0) {
        let name = &shape_of.name;
        let source_name = match (&norm_prefix, name.contains(".norm.")) {
            (Some(p), true) => format!("{p}.{name}"),
            _ => name.clone(),
        };
        let source = model
            .tensor(&source_name)
            .ok_or_else(|| Error::Model(format!("weight `{source_name}` is missing")))?;
        let values = if let (true, Some(_), Some(part)) = (
            shared_scale,
            &norm_prefix,
            name.rsplit_once(".norm.").map(|(_, part)| part),
        ) {
            // The full width's scale times the width's one factor, over the full width's
            // variance; see WidthNorm::SharedScale. (The full width keeps the plain names.)
            let full = || {
                model
                    .tensor(name)
                    .ok_or_else(|| Error::Model(format!("weight `{name}` is missing")))
                    .and_then(|t| leading(t, &shape_of.shape))
            };
            match part {
                "gamma" => {
                    let factor = crate::network::shared_scale_factor(&source.values);
                    full()?.iter().map(|g| g * factor).collect()
                }
                "running_var" => full()?,
                _ => leading(source, &shape_of.shape)?,
            }
        } else if name == first_dense {
            // Rows follow the flattened features, so a narrow feature map picks a
            // strided subset of them rather than a leading block.
            let cols = shape_of.shape[1];
            let full_cols = source.shape[1];
            let mut values = Vec::with_capacity(plan.head_rows.len() * cols);
            for &r in &plan.head_rows {
                let row = source
                    .values
                    .get(r * full_cols..r * full_cols + cols)
                    .ok_or_else(|| {
                        Error::Model(format!("weight `{source_name}` has too few rows"))
                    })?;
                values.extend_from_slice(row);
            }
            values
        } else {
            leading(source, &shape_of.shape)?
        };
        tensors.push(NamedTensor {
            name: name.clone(),
            shape: shape_of.shape.clone(),
            values,
        });
    }
    // Activation ranges of quantisation-aware training: the width's own under their graph
    // names; the full width's plain ones only at full width.
    let own = range_prefix(width);
    for t in &model.tensors {
        let Some(name) = t.name.strip_prefix(crate::qat::RANGE_PREFIX) else {
            continue;
        };
        let renamed = match (plan.slim_index, range_width(name)) {
            (None, None) => Some(name),
            (Some(_), Some(_)) => name.strip_prefix(&own),
            _ => None,
        };
        if let Some(n) = renamed {
            tensors.push(NamedTensor {
                name: format!("{}{n}", crate::qat::RANGE_PREFIX),
                ..t.clone()
            });
        }
    }
    Ok(TrainedModel {
        architecture: narrow,
        tensors,
        ..model.clone()
    })
}

/// Bytes a nested model spends on its widths beyond the full network's own parameters, as f32
/// in the `.kgl` (per-width batch-norm scale, shift and statistics); after folding on a device
/// this becomes each width's per-channel biases and multipliers, counted by the `modes` report.
pub fn width_tensor_bytes(model: &TrainedModel) -> usize {
    model
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("width"))
        .map(|t| t.values.len() * 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts_round_up() {
        assert_eq!(channels_at(0.25, 16), 4);
        assert_eq!(channels_at(0.75, 48), 36);
        assert_eq!(channels_at(0.25, 2), 1);
        assert_eq!(channels_at(0.3, 10), 3);
        assert_eq!(channels_at(1.0, 7), 7);
    }

    #[test]
    fn width_lists_are_checked() {
        assert_eq!(parse_widths("0.25, 0.5,1.0").unwrap(), vec![0.25, 0.5, 1.0]);
        for bad in ["0.5,0.25,1", "0.5", "0,1", "0.5,1.5", "0.5,0.75", "a,1"] {
            assert!(parse_widths(bad).is_err(), "{bad}");
        }
    }

    fn nested_model(mut arch: Architecture, widths: Vec<f64>) -> TrainedModel {
        use burn::tensor::Device;
        arch.widths = widths;
        let device = Device::flex();
        let net = crate::network::Network::init(&arch, 6, 3, &device).unwrap();
        let mut tensors = net.named_tensors();
        // Distinct statistics per width, so a width reading another's would show.
        for (j, t) in tensors.iter_mut().enumerate() {
            if t.name.contains(".norm.") {
                for (i, v) in t.values.iter_mut().enumerate() {
                    *v += 0.1 + 0.01 * ((i * 7 + j * 3) % 11) as f32;
                }
            }
        }
        crate::model_file::test_model(arch, 6, tensors)
    }

    #[test]
    fn a_sliced_width_computes_what_the_nested_network_computes_at_that_width() {
        use burn::tensor::{Device, Tensor, TensorData};
        let device = Device::flex();
        let mut with_hidden = Architecture::preset("big1").unwrap();
        with_hidden.head.hidden = vec![10];
        let mut shared_scale = Architecture::preset("kinglet-lite").unwrap();
        shared_scale.width_norm = crate::arch::WidthNorm::SharedScale;
        for (arch, widths) in [
            (shared_scale, vec![0.25, 0.5, 1.0]),
            (
                Architecture::preset("kinglet-lite").unwrap(),
                vec![0.25, 0.5, 0.75, 1.0],
            ),
            (Architecture::preset("big3").unwrap(), vec![0.5, 1.0]),
            (with_hidden, vec![0.3, 1.0]),
        ] {
            let model = nested_model(arch, widths.clone());
            let net = crate::network::Network::from_model(&model, &device).unwrap();
            let again = crate::network::Network::from_tensors(
                &model.architecture,
                6,
                net.named_tensors(),
                &device,
            )
            .unwrap();
            assert_eq!(again.named_tensors(), net.named_tensors());
            let inputs: Vec<Tensor<3>> = model
                .architecture
                .branches
                .iter()
                .enumerate()
                .map(|(b, branch)| {
                    let n = 2 * branch.channels.len() * 128;
                    let v: Vec<f32> = (0..n)
                        .map(|i| (((i + b) * 37 % 101) as f32 / 50.0) - 1.0)
                        .collect();
                    Tensor::from_data(TensorData::new(v, [2, branch.channels.len(), 128]), &device)
                })
                .collect();
            for w in widths {
                let plan = WidthPlan::new(&model.architecture, w).unwrap();
                let nested = net
                    .forward_at(inputs.clone(), &plan)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let narrow = slice_model(&model, w).unwrap();
                assert!(narrow.architecture.widths.is_empty());
                let alone = crate::network::Network::from_model(&narrow, &device).unwrap();
                let plain = alone
                    .forward(inputs.clone())
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                for (a, b) in nested.iter().zip(&plain) {
                    assert!(
                        (a - b).abs() < 1e-4,
                        "{} width {w}: {a} vs {b}",
                        model.architecture.name
                    );
                }
            }
        }
        let plain = nested_model(Architecture::preset("big1").unwrap(), Vec::new());
        let err = slice_model(&plain, 0.5).unwrap_err().to_string();
        assert!(err.contains("no nested widths"), "{err}");
    }

    #[test]
    fn head_rows_follow_the_flattened_features() {
        let mut arch = Architecture::preset("big3").unwrap();
        arch.widths = vec![0.5, 1.0];
        let plan = WidthPlan::new(&arch, 0.5).unwrap();
        let (len, c) = arch.branch_output();
        assert_eq!(plan.head_rows.len(), 3 * len * c / 2);
        assert_eq!(&plan.head_rows[..5], &[0, 1, 2, 3, c]);
        assert!(WidthPlan::new(&arch, 0.25).is_err());
    }
}
