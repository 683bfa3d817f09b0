//! Lowers a trained model to the kinglet-graph float IR, in the op pattern TFLite converters
//! emit for Keras Conv1D models: each branch input `[1, time, channels]` is reshaped to NHWC
//! `[1, 1, time, channels]`, every block becomes CONV_2D (or DEPTHWISE_CONV_2D + CONV_2D) with
//! batch norm folded into its weights and ReLU fused, then MAX_POOL_2D; branches end in a
//! RESHAPE (flatten, time-major) or MEAN (global average pooling), are concatenated, and go
//! through FULLY_CONNECTED layers.
//!
//! The graph takes normalised windows: normalisation is not folded into the first convolution
//! because zero padding would then pad with the raw value 0 instead of the normalised one. The
//! model's normalisation is recorded in the graph metadata (`kinglet.normalisation`, JSON).

use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding, TensorId, meta};

use crate::Error;
use crate::arch::Padding as ArchPadding;
use crate::model_file::TrainedModel;
use crate::network::{BATCH_NORM_EPSILON, NamedTensor};

pub(crate) fn get<'a>(model: &'a TrainedModel, name: &str) -> Result<&'a NamedTensor, Error> {
    model
        .tensor(name)
        .ok_or_else(|| Error::Model(format!("weight `{name}` is missing")))
}

/// Values of weight `name`, which must hold `len` of them: a `.kgl` file names its tensors
/// and shapes itself, so a corrupt one can disagree with its own architecture.
pub(crate) fn get_values<'a>(
    model: &'a TrainedModel,
    name: &str,
    len: usize,
) -> Result<&'a [f32], Error> {
    let values = &get(model, name)?.values;
    if values.len() != len {
        return Err(Error::Model(format!(
            "weight `{name}` holds {} values, the architecture needs {len}",
            values.len()
        )));
    }
    Ok(values)
}

/// The graph's padding for a block's.
pub(crate) fn graph_padding(padding: ArchPadding) -> Padding {
    match padding {
        ArchPadding::Same => Padding::Same,
        ArchPadding::Valid => Padding::Valid,
    }
}

/// Block `p`'s trained depthwise layer (weights `[cin, 1, kh, kw]` or `[cin, 1, kw]`) as a
/// DEPTHWISE_CONV_2D on `x`, its filter laid out TFLite's way, `[1, kh, kw, cin]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_depthwise(
    g: &mut Graph,
    model: &TrainedModel,
    p: &str,
    x: TensorId,
    [kh, kw]: [usize; 2],
    cin: usize,
    padding: Padding,
    (filter_name, bias_name): (String, String),
    op_name: String,
) -> Result<TensorId, Error> {
    let taps = kh * kw;
    let w = get_values(model, &format!("{p}.depthwise.weight"), taps * cin)?;
    let bias = get_values(model, &format!("{p}.depthwise.bias"), cin)?;
    let mut dw = vec![0f32; taps * cin];
    for c in 0..cin {
        for j in 0..taps {
            dw[j * cin + c] = w[c * taps + j];
        }
    }
    let wt = g
        .add_constant_f32(filter_name, &[1, kh, kw, cin], &dw)
        .map_err(graph_err)?;
    let bt = g
        .add_constant_f32(bias_name, &[cin], bias)
        .map_err(graph_err)?;
    let kind = OpKind::DepthwiseConv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding,
        depth_multiplier: 1,
        activation: Activation::None,
    };
    g.add_op_inferred(kind, &[x, wt, bt], op_name)
        .map_err(graph_err)
}

pub(crate) fn graph_err(e: kinglet_graph::GraphError) -> Error {
    Error::Model(format!("lowering: {e}"))
}

/// Per-output-channel scale and shift of a block's batch norm (identity without one).
pub(crate) fn folded_norm(
    model: &TrainedModel,
    prefix: &str,
    filters: usize,
    has_norm: bool,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    if !has_norm {
        return Ok((vec![1.0; filters], vec![0.0; filters]));
    }
    let gamma = get_values(model, &format!("{prefix}.norm.gamma"), filters)?;
    let beta = get_values(model, &format!("{prefix}.norm.beta"), filters)?;
    let mean = get_values(model, &format!("{prefix}.norm.running_mean"), filters)?;
    let var = get_values(model, &format!("{prefix}.norm.running_var"), filters)?;
    let mut scale = Vec::with_capacity(filters);
    let mut shift = Vec::with_capacity(filters);
    for c in 0..filters {
        let s = gamma[c] / (var[c] as f64 + BATCH_NORM_EPSILON).sqrt() as f32;
        scale.push(s);
        shift.push(beta[c] - mean[c] * s);
    }
    Ok((scale, shift))
}

/// Builds the float graph for `model` (batch size 1).
pub fn lower(model: &TrainedModel) -> Result<Graph, Error> {
    let arch = &model.architecture;
    let mut g = Graph::new();
    let mut features = Vec::new();
    let groups = model.input_groups();
    let mut inputs = Vec::new();
    for group in &groups {
        let shape: Vec<usize> = std::iter::once(1)
            .chain(group.shape.iter().copied())
            .collect();
        inputs.push(g.add_input(group.name.clone(), &shape, DType::F32, None));
    }
    // Image networks: one NHWC input through 2D blocks; the 1D loop below is skipped.
    let image = crate::image::feature_map(arch).is_some();
    if image {
        features.push(crate::image::lower_blocks(&mut g, model, inputs[0])?);
    }
    for (b, group) in groups.iter().enumerate().filter(|_| !image) {
        let (mut len, mut cin) = (group.shape[0], group.shape[1]);
        let mut x = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 1, len, cin],
                },
                &[inputs[b]],
                format!("{}/nhwc", group.name),
            )
            .map_err(graph_err)?;
        for (i, block) in arch.blocks.iter().enumerate() {
            let p = format!("branch{b}.block{i}");
            let padding = graph_padding(block.padding);
            let (scale, shift) = folded_norm(model, &p, block.filters, block.batch_norm)?;
            let k = block.kernel;
            let conv_kernel = if block.separable {
                let names = (
                    format!("{p}/depthwise/filter"),
                    format!("{p}/depthwise/bias"),
                );
                x = lower_depthwise(
                    &mut g,
                    model,
                    &p,
                    x,
                    [1, k],
                    cin,
                    padding,
                    names,
                    format!("{p}/depthwise"),
                )?;
                1
            } else {
                k
            };
            // Conv [out, cin, kk] → OHWI [out, 1, kk, cin], scaled by the folded batch norm.
            let out = block.filters;
            let w = get_values(model, &format!("{p}.conv.weight"), out * cin * conv_kernel)?;
            let bias = get_values(model, &format!("{p}.conv.bias"), out)?;
            let mut filter = vec![0f32; out * conv_kernel * cin];
            for o in 0..out {
                for c in 0..cin {
                    for j in 0..conv_kernel {
                        filter[(o * conv_kernel + j) * cin + c] =
                            w[(o * cin + c) * conv_kernel + j] * scale[o];
                    }
                }
            }
            let folded_bias: Vec<f32> = (0..out).map(|o| bias[o] * scale[o] + shift[o]).collect();
            let wt = g
                .add_constant_f32(
                    format!("{p}/conv/filter"),
                    &[out, 1, conv_kernel, cin],
                    &filter,
                )
                .map_err(graph_err)?;
            let bt = g
                .add_constant_f32(format!("{p}/conv/bias"), &[out], &folded_bias)
                .map_err(graph_err)?;
            let conv_padding = if block.separable {
                Padding::Valid
            } else {
                padding
            };
            let kind = OpKind::Conv2D {
                stride: Hw::ONE,
                dilation: Hw::ONE,
                padding: conv_padding,
                activation: Activation::Relu,
            };
            x = g
                .add_op_inferred(kind, &[x, wt, bt], format!("{p}/conv"))
                .map_err(graph_err)?;
            if block.padding == ArchPadding::Valid {
                len = len + 1 - k;
            }
            if block.pool > 1 {
                let kind = OpKind::MaxPool2D {
                    filter: Hw::new(1, block.pool),
                    stride: Hw::new(1, block.pool),
                    padding: Padding::Valid,
                    activation: Activation::None,
                };
                x = g
                    .add_op_inferred(kind, &[x], format!("{p}/pool"))
                    .map_err(graph_err)?;
                len /= block.pool;
            }
            cin = out;
        }
        let flat = if arch.head.global_average_pool {
            g.add_op_inferred(
                OpKind::Mean {
                    axes: vec![1, 2],
                    keep_dims: false,
                },
                &[x],
                format!("branch{b}/gap"),
            )
        } else {
            g.add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, len * cin],
                },
                &[x],
                format!("branch{b}/flatten"),
            )
        }
        .map_err(graph_err)?;
        features.push(flat);
    }
    let mut h: TensorId = if features.len() == 1 {
        features[0]
    } else {
        g.add_op_inferred(
            OpKind::Concatenation {
                axis: 1,
                activation: Activation::None,
            },
            &features,
            "concat",
        )
        .map_err(graph_err)?
    };
    let mut width = arch.merged_features();
    let layers: Vec<(String, usize, Activation)> = arch
        .head
        .hidden
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("hidden{i}"), n, Activation::Relu))
        .chain(std::iter::once((
            "output".to_string(),
            model.class_names.len(),
            Activation::None,
        )))
        .collect();
    for (name, out, activation) in layers {
        // burn Linear [in, out] → TFLite FULLY_CONNECTED [out, in].
        let w = get_values(model, &format!("{name}.weight"), width * out)?;
        let bias = get_values(model, &format!("{name}.bias"), out)?;
        let mut wt = vec![0f32; out * width];
        for i in 0..width {
            for o in 0..out {
                wt[o * width + i] = w[i * out + o];
            }
        }
        let wt = g
            .add_constant_f32(format!("{name}/weights"), &[out, width], &wt)
            .map_err(graph_err)?;
        let bt = g
            .add_constant_f32(format!("{name}/bias"), &[out], bias)
            .map_err(graph_err)?;
        h = g
            .add_op_inferred(
                OpKind::FullyConnected {
                    activation,
                    keep_num_dims: false,
                },
                &[h, wt, bt],
                name,
            )
            .map_err(graph_err)?;
        width = out;
    }
    g.mark_output(h);
    g.set_metadata_list(meta::CLASS_NAMES, &model.class_names);
    if !image {
        // Sensor layouts for HAR evaluators; an image network's input is the whole image.
        let names: Vec<String> = groups.iter().map(sensor_layout).collect();
        g.set_metadata_list(meta::INPUT_NAMES, &names);
    }
    let norm = serde_json::json!({
        "kind": "channel-standardise",
        "inputs": groups,
        "normalisation": model.normalisation,
        "task": arch.task,
    });
    g.metadata
        .insert(meta::NORMALISATION.to_string(), norm.to_string());
    crate::qat::record_ranges(&mut g, model)?;
    crate::qat::record_clips(&mut g, model)?;
    Ok(g)
}

/// An input's sensors in kinglet-graph's layout notation (`body_acc+body_gyro+total_acc`) when
/// it is made of whole xyz sensor groups, else the input's own name.
fn sensor_layout(group: &crate::model_file::InputGroup) -> String {
    const SENSORS: [&str; 3] = ["body_acc", "body_gyro", "total_acc"];
    let mut parts = Vec::new();
    for triple in group.channels.chunks(3) {
        let found = SENSORS.iter().find(|s| {
            triple.len() == 3
                && ["x", "y", "z"]
                    .iter()
                    .zip(triple)
                    .all(|(axis, c)| *c == format!("{s}_{axis}"))
        });
        match found {
            Some(s) => parts.push(*s),
            None => return group.name.clone(),
        }
    }
    if group.shape.last() != Some(&group.channels.len()) {
        return group.name.clone();
    }
    parts.join("+")
}
