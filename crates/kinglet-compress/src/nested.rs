//! One weight blob for a nested-width network: a narrower width's int8 graph re-expressed over
//! the full width's int8 weights and requantisation.
//!
//! A network trained with `--width-norm shared-scale` folds, at every narrower width, to the
//! full width's leading weights times one power of two per layer (see
//! `kinglet_train::arch::WidthNorm`). Quantised independently, each width would still pick
//! its own weight scales (the largest weight of a narrower row is usually smaller), its own
//! int8 values and its own requantisation. [`share_full_width`] instead gives the narrower
//! width the full width's int8 weights (the leading block of every weight tensor), the full
//! width's weight scales times the layer's power of two, and activation scales that are the
//! full width's times the product of the powers of two so far. Every scale ratio that makes
//! a requantisation multiplier is then the full width's exactly (powers of two multiply
//! floats exactly), so a device runs every width from one blob with one set of multipliers;
//! only the int32 biases, requantised to the new scales, stay per width.

use std::collections::HashMap;

use kinglet_graph::{DType, Graph, OpKind, QuantParams, TensorId};

use crate::CompressError;

/// What [`share_full_width`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWidth {
    /// Per weighted op of the graph (convolutions and fully-connected, in op order), the power
    /// of two its weights are the full width's times.
    pub factors: Vec<f32>,
    /// Largest difference between a narrower weight as quantised alone and as the scaled full
    /// weight, in units of the most two roundings of one value can differ by (half of each
    /// one's step): ≤ 1 when the network was trained with shared scales.
    pub worst_step_difference: f32,
}

fn err(message: String) -> CompressError {
    CompressError::Unsupported(message)
}

/// Flat index in `full` of each element of the leading block of shape `narrow`.
fn leading_indices(narrow: &[usize], full: &[usize]) -> Result<Vec<usize>, CompressError> {
    kinglet_graph::leading_block_indices(narrow, full).ok_or_else(|| {
        err(format!(
            "a narrower tensor of shape {narrow:?} is not a leading block of {full:?}"
        ))
    })
}

/// The channel along `axis` of each element of a tensor of `shape` (0 for per-tensor).
fn channel_of(shape: &[usize], quant: &QuantParams) -> Vec<usize> {
    let n: usize = shape.iter().product();
    if quant.is_per_tensor() {
        return vec![0; n];
    }
    let inner: usize = shape.iter().skip(quant.axis + 1).product();
    let extent = shape.get(quant.axis).copied().unwrap_or(1);
    (0..n).map(|i| (i / inner.max(1)) % extent.max(1)).collect()
}

/// `narrow` (an int8 graph of a narrower width, quantised on its own) re-expressed over the
/// int8 weights and requantisation of `full` (the same architecture's full width), as the
/// module docs describe. Errors when the two graphs are not the same network at two widths,
/// or when a layer's weights are not the full width's times one power of two (a network
/// trained with its own batch norm per width).
pub fn share_full_width(
    full: &Graph,
    narrow: &Graph,
) -> Result<(Graph, SharedWidth), CompressError> {
    if full.ops.len() != narrow.ops.len() || full.inputs.len() != narrow.inputs.len() {
        return Err(err(format!(
            "the widths differ in structure: {} and {} ops",
            full.ops.len(),
            narrow.ops.len()
        )));
    }
    let mut out = narrow.clone();
    // Activation tensor of the narrow graph → (the full graph's tensor, factor).
    let mut factor: HashMap<usize, (TensorId, f64)> = HashMap::new();
    for (&n, &f) in narrow.inputs.iter().zip(&full.inputs) {
        factor.insert(n.0, (f, 1.0));
    }
    let mut shared = SharedWidth {
        factors: Vec::new(),
        worst_step_difference: 0.0,
    };
    for (index, (nop, fop)) in narrow.ops.iter().zip(&full.ops).enumerate() {
        let name = nop.kind.name();
        let at = |m: String| err(format!("op {index} ({name}): {m}"));
        if name != fop.kind.name()
            || nop.inputs.len() != fop.inputs.len()
            || nop.outputs.len() != fop.outputs.len()
        {
            return Err(at(format!("the full width has {} here", fop.kind.name())));
        }
        let input_factor = nop
            .inputs
            .iter()
            .filter_map(|id| factor.get(&id.0).map(|&(_, c)| c))
            .next()
            .unwrap_or(1.0);
        if nop
            .inputs
            .iter()
            .filter_map(|id| factor.get(&id.0))
            .any(|&(_, c)| c != input_factor)
        {
            return Err(at("inputs at different scale factors".into()));
        }
        let weighted = matches!(
            nop.kind,
            OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. }
        );
        let mut output_factor = input_factor;
        if weighted {
            let (nw, fw) = (narrow.tensor(nop.inputs[1]), full.tensor(fop.inputs[1]));
            let (Some(nq), Some(fq), Some(nd), Some(fd)) =
                (&nw.quant, &fw.quant, &nw.data, &fw.data)
            else {
                return Err(at("weights are not quantised constants".into()));
            };
            if nw.dtype != DType::I8
                || fw.dtype != DType::I8
                || nq.is_per_tensor() != fq.is_per_tensor()
            {
                return Err(at(
                    "weights are not int8 quantised alike at both widths".into()
                ));
            }
            let map = leading_indices(&nw.shape, &fw.shape)?;
            let (nch, fch) = (channel_of(&nw.shape, nq), channel_of(&fw.shape, fq));
            let real_n = |i: usize| f64::from(nd[i] as i8) * f64::from(nq.scale[nch[i]]);
            let real_f = |i: usize| f64::from(fd[i] as i8) * f64::from(fq.scale[fch[i]]);
            // The layer's factor: least squares over the whole tensor, then the nearest
            // power of two (which it is, up to rounding, for a shared-scale network).
            let (dot, norm) = map.iter().enumerate().fold((0.0, 0.0), |(d, s), (i, &j)| {
                (d + real_n(i) * real_f(j), s + real_f(j) * real_f(j))
            });
            if !(dot > 0.0 && norm > 0.0) {
                return Err(at(
                    "weights are zero or of opposite sign to the full width's".into(),
                ));
            }
            let r = (dot / norm).log2().round().exp2();
            let mut scales = fq.scale.clone();
            let channels = nw.shape.get(nq.axis).copied().unwrap_or(1);
            if !nq.is_per_tensor() {
                scales.truncate(channels);
            }
            for s in &mut scales {
                *s = (f64::from(*s) * r) as f32;
            }
            let mut data = Vec::with_capacity(map.len());
            for (i, &j) in map.iter().enumerate() {
                // Two roundings of one value differ by at most half of each step.
                let bound = 0.5 * (f64::from(nq.scale[nch[i]]) + r * f64::from(fq.scale[fch[j]]));
                let difference = ((real_n(i) - real_f(j) * r).abs() / bound) as f32;
                shared.worst_step_difference = shared.worst_step_difference.max(difference);
                data.push(fd[j]);
            }
            if shared.worst_step_difference > 1.01 {
                return Err(at(format!(
                    "weights are not the full width's times a power of two ({:.1}× what rounding \
                     explains): train the network with `--width-norm shared-scale`",
                    shared.worst_step_difference
                )));
            }
            shared.factors.push(r as f32);
            output_factor = input_factor * r;
            let input = factor
                .get(&nop.inputs[0].0)
                .map(|&(f, _)| f)
                .ok_or_else(|| at("its input is not an activation of the graph".into()))?;
            let input_scale = full
                .tensor(input)
                .quant
                .as_ref()
                .map(|q| f64::from(q.scale[0]) * input_factor)
                .ok_or_else(|| at("its input is not quantised".into()))?;
            if let Some(&bias) = nop.inputs.get(2) {
                let bt = narrow.tensor(bias);
                let (Some(values), Some(bq)) = (bt.data_i32(), &bt.quant) else {
                    return Err(at("bias is not an int32 constant".into()));
                };
                let requantised: Vec<u8> = values
                    .iter()
                    .enumerate()
                    .flat_map(|(c, &v)| {
                        let real = f64::from(v) * f64::from(bq.scale[c.min(bq.scale.len() - 1)]);
                        let scale = input_scale * f64::from(scales[c.min(scales.len() - 1)]);
                        let q = (real / scale)
                            .round()
                            .clamp(f64::from(i32::MIN), f64::from(i32::MAX));
                        (q as i32).to_le_bytes()
                    })
                    .collect();
                let bias_scales: Vec<f32> = scales
                    .iter()
                    .map(|&s| (input_scale * f64::from(s)) as f32)
                    .collect();
                let target = out.tensor_mut(bias);
                target.data = Some(requantised);
                target.quant = Some(QuantParams {
                    scale: bias_scales,
                    zero_point: vec![0; scales.len()],
                    axis: 0,
                });
            }
            let target = out.tensor_mut(nop.inputs[1]);
            target.data = Some(data);
            target.quant = Some(QuantParams {
                zero_point: vec![0; scales.len()],
                scale: scales,
                axis: nq.axis,
            });
        }
        for (&n, &f) in nop.outputs.iter().zip(&fop.outputs) {
            // A softmax's output scale is fixed (1/256), whatever its input's.
            let keep_own = matches!(nop.kind, OpKind::Softmax { .. });
            let c = if keep_own { 1.0 } else { output_factor };
            factor.insert(n.0, (f, c));
            if keep_own {
                continue;
            }
            if let Some(fq) = &full.tensor(f).quant {
                out.tensor_mut(n).quant = Some(QuantParams {
                    scale: fq
                        .scale
                        .iter()
                        .map(|&s| (f64::from(s) * c) as f32)
                        .collect(),
                    ..fq.clone()
                });
            }
        }
    }
    for (&n, &f) in narrow.inputs.iter().zip(&full.inputs) {
        out.tensor_mut(n).quant = full.tensor(f).quant.clone();
    }
    Ok((out, shared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PtqConfig, quantize_int8};
    use kinglet_graph::{Activation, Hw, Padding};

    /// A pointwise convolution of `weights` (`[out][1][1][2]`) then a fully-connected head
    /// of `head` (`[3][out]`), quantised to int8 on a few seeded inputs.
    fn width(weights: &[f32], bias: &[f32], head: &[f32]) -> Graph {
        let out = bias.len();
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 4, 2], DType::F32, None);
        let w = g.add_constant_f32("w", &[out, 1, 1, 2], weights).unwrap();
        let b = g.add_constant_f32("b", &[out], bias).unwrap();
        let conv = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Same,
            activation: Activation::Relu,
        };
        let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
        let r = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![4, out],
                },
                &[c],
                "flat",
            )
            .unwrap();
        let hw = g.add_constant_f32("hw", &[3, out], head).unwrap();
        let hb = g.add_constant_f32("hb", &[3], &[0.05, -0.1, 0.2]).unwrap();
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let y = g.add_op_inferred(fc, &[r, hw, hb], "head").unwrap();
        g.mark_output(y);
        let samples: Vec<Vec<Vec<f32>>> = (0..6)
            .map(|k| {
                vec![
                    (0..8)
                        .map(|i| ((i * 5 + k * 3) % 9) as f32 / 4.0 - 1.0)
                        .collect(),
                ]
            })
            .collect();
        quantize_int8(&g, &samples, &PtqConfig::default())
            .unwrap()
            .graph
    }

    const FULL_W: [f32; 8] = [0.5, -0.3, 0.9, 0.2, -0.7, 0.4, 0.1, -0.8];
    const HEAD: [f32; 12] = [
        0.3, -0.2, 0.5, 0.1, -0.4, 0.6, 0.2, -0.1, 0.7, -0.3, 0.2, 0.4,
    ];

    /// The leading `rows` of `[out][cols]` values.
    fn leading(values: &[f32], cols: usize, keep: usize) -> Vec<f32> {
        values
            .chunks(cols)
            .flat_map(|row| row[..keep].to_vec())
            .collect()
    }

    #[test]
    fn a_shared_scale_width_reads_the_full_widths_weights_and_multipliers() {
        let full = width(&FULL_W, &[0.1, -0.1, 0.2, 0.0], &HEAD);
        // Two of four channels, the convolution's weights the full width's times 2.
        let conv: Vec<f32> = FULL_W[..4].iter().map(|w| w * 2.0).collect();
        let narrow = width(&conv, &[0.3, -0.2], &leading(&HEAD, 4, 2));
        let (shared, found) = share_full_width(&full, &narrow).unwrap();
        assert_eq!(found.factors, vec![2.0, 1.0]);
        assert!(found.worst_step_difference <= 1.0, "{found:?}");
        for (op_n, op_f) in shared.ops.iter().zip(&full.ops) {
            let Some((&wn, &wf)) = op_n.inputs.get(1).zip(op_f.inputs.get(1)) else {
                continue;
            };
            let (tn, tf) = (shared.tensor(wn), full.tensor(wf));
            let at = kinglet_graph::leading_block_indices(&tn.shape, &tf.shape).unwrap();
            let (dn, df) = (tn.data.as_ref().unwrap(), tf.data.as_ref().unwrap());
            assert!(at.iter().zip(dn).all(|(&j, v)| df[j] == *v), "{}", tn.name);
            // Every multiplier's ratio s_in · s_w / s_out is the full width's, bit for bit.
            let scale =
                |g: &Graph, id: TensorId| g.tensor(id).quant.as_ref().unwrap().scale.clone();
            let ratio = |g: &Graph, op: &kinglet_graph::Op, c: usize| {
                let sw = scale(g, op.inputs[1]);
                f64::from(scale(g, op.inputs[0])[0]) * f64::from(sw[c.min(sw.len() - 1)])
                    / f64::from(scale(g, op.outputs[0])[0])
            };
            for c in 0..tn.shape[0] {
                assert_eq!(
                    ratio(&shared, op_n, c).to_bits(),
                    ratio(&full, op_f, c).to_bits(),
                    "{} channel {c}",
                    tn.name
                );
            }
        }
    }

    #[test]
    fn a_width_with_scales_of_its_own_is_refused() {
        let full = width(&FULL_W, &[0.1, -0.1, 0.2, 0.0], &HEAD);
        // Channel 0 at ×2, channel 1 at ×3: no one power of two.
        let conv = [1.0, -0.6, 2.7, 0.6];
        let narrow = width(&conv, &[0.3, -0.2], &leading(&HEAD, 4, 2));
        let err = share_full_width(&full, &narrow).unwrap_err().to_string();
        assert!(err.contains("power of two"), "{err}");
        // A graph of another structure.
        let err = share_full_width(&full, &Graph::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("differ in structure"), "{err}");
    }

    #[test]
    fn leading_blocks_index_the_full_tensor() {
        // [2][3] of [3][4]: rows 0–1, columns 0–2.
        assert_eq!(
            leading_indices(&[2, 3], &[3, 4]).unwrap(),
            vec![0, 1, 2, 4, 5, 6]
        );
        assert!(leading_indices(&[4, 3], &[3, 4]).is_err());
        assert!(leading_indices(&[3], &[3, 4]).is_err());
    }

    #[test]
    fn channels_follow_the_quantised_axis() {
        let q = QuantParams::per_axis(vec![1.0; 3], vec![0; 3], 3);
        // Depthwise filter [1][1][2][3]: channel = last index.
        assert_eq!(channel_of(&[1, 1, 2, 3], &q), vec![0, 1, 2, 0, 1, 2]);
        let q0 = QuantParams::per_axis(vec![1.0; 2], vec![0; 2], 0);
        assert_eq!(channel_of(&[2, 3], &q0), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(
            channel_of(&[2, 3], &QuantParams::per_tensor(1.0, 0)),
            vec![0; 6]
        );
    }
}
