//! Dynamic-range quantisation ("int weights with float fallback"): the weights of Conv2D,
//! DepthwiseConv2D and FullyConnected become symmetric int8 (per output channel for convs, one
//! scale for fully connected), activations and biases stay f32. TFLite runs such ops with
//! its hybrid kernels, which quantise each input batch on the fly; kinglet's interpreter runs
//! them with `kinglet_micro::hybrid`. No calibration data is needed.

use std::collections::BTreeSet;

use kinglet_graph::{DType, Graph, OpKind, QuantParams, TensorId};

use crate::error::CompressError;

/// Options of [`quantize_dynamic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicConfig {
    /// Weight tensors with fewer elements stay f32 (the TFLite converter's default is 1024:
    /// small weights save little flash and lose relatively more accuracy).
    pub min_elements: usize,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig { min_elements: 1024 }
    }
}

/// Symmetric int8 values of `values` with scale `max|v| / 127` (1 for an all-zero slice),
/// rounded half away from zero.
fn symmetric(values: &[f32]) -> (f32, Vec<i8>) {
    let range = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if range == 0.0 {
        return (1.0, vec![0; values.len()]);
    }
    let scale = range / 127.0;
    let q = values
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (scale, q)
}

/// The dynamic-range version of a float graph. Weight tensors keep their ids and names;
/// returns the graph and how many weight tensors were quantised.
pub fn quantize_dynamic(
    graph: &Graph,
    config: &DynamicConfig,
) -> Result<(Graph, usize), CompressError> {
    graph.validate()?;
    if let Some(t) = graph
        .tensors
        .iter()
        .find(|t| !t.is_constant() && t.dtype != DType::F32)
    {
        return Err(CompressError::NotFloat(format!(
            "activation '{}' is {}, dynamic-range quantisation needs a float32 model",
            t.name, t.dtype
        )));
    }
    // Weights also read by another op (or as another op's non-weight input) stay float.
    let mut weights: BTreeSet<TensorId> = BTreeSet::new();
    let mut elsewhere: BTreeSet<TensorId> = BTreeSet::new();
    for op in &graph.ops {
        let weighted = matches!(
            op.kind,
            OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. }
        );
        for (pos, id) in op.inputs.iter().enumerate() {
            let as_weights = weighted && pos == 1;
            if !as_weights || !weights.insert(*id) {
                elsewhere.insert(*id);
            }
        }
    }
    let mut g = graph.clone();
    let mut count = 0;
    for op in &graph.ops {
        let axis = match op.kind {
            OpKind::Conv2D { .. } => Some(0),
            OpKind::DepthwiseConv2D { .. } => Some(3),
            OpKind::FullyConnected { .. } => None,
            _ => continue,
        };
        let id = op.inputs[1];
        let t = graph.tensor(id);
        if elsewhere.contains(&id) || t.elements() < config.min_elements {
            continue;
        }
        let Some(values) = t.data_f32() else {
            continue;
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(CompressError::Unsupported(format!(
                "weights '{}' hold a non-finite value at index {i}",
                t.name
            )));
        }
        let (quant, q) = match axis {
            None => {
                let (scale, q) = symmetric(&values);
                (QuantParams::per_tensor(scale, 0), q)
            }
            Some(axis) => {
                let channels = t.shape[axis];
                let inner: usize = t.shape[axis + 1..].iter().product();
                let mut q = vec![0i8; values.len()];
                let mut scales = Vec::with_capacity(channels);
                for c in 0..channels {
                    // Gather channel c (strided when the axis is not the outermost).
                    let idx: Vec<usize> = (0..values.len())
                        .filter(|i| (i / inner) % channels == c)
                        .collect();
                    let chan: Vec<f32> = idx.iter().map(|i| values[*i]).collect();
                    let (scale, qc) = symmetric(&chan);
                    for (i, v) in idx.iter().zip(qc) {
                        q[*i] = v;
                    }
                    scales.push(scale);
                }
                (QuantParams::per_axis(scales, vec![0; channels], axis), q)
            }
        };
        let w = g.tensor_mut(id);
        w.dtype = DType::I8;
        w.quant = Some(quant);
        w.data = Some(q.iter().map(|v| *v as u8).collect());
        count += 1;
    }
    g.validate()?;
    Ok((g, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_uses_the_largest_magnitude() {
        let (s, q) = symmetric(&[0.5, -1.27, 0.005, 0.0]);
        assert_eq!(s, 1.27 / 127.0);
        assert_eq!(q, vec![50, -127, 1, 0]); // 0.005 / 0.01 = 0.5 rounds away from zero
        assert_eq!(symmetric(&[0.0; 3]), (1.0, vec![0; 3]));
    }

    #[test]
    fn depthwise_scales_follow_the_last_axis() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 1, 2], DType::F32, None);
        // [1, 1, 2, 2]: channel 0 values {1, 0.5}, channel 1 values {-4, 2}.
        let w = g
            .add_constant_f32("w", &[1, 1, 2, 2], &[1.0, -4.0, 0.5, 2.0])
            .unwrap();
        let b = g.add_constant_f32("b", &[2], &[0.0, 0.0]).unwrap();
        let y = g
            .add_op_inferred(
                OpKind::DepthwiseConv2D {
                    stride: kinglet_graph::Hw::ONE,
                    dilation: kinglet_graph::Hw::ONE,
                    padding: kinglet_graph::Padding::Same,
                    depth_multiplier: 1,
                    activation: kinglet_graph::Activation::None,
                },
                &[x, w, b],
                "y",
            )
            .unwrap();
        g.mark_output(y);
        let (h, n) = quantize_dynamic(&g, &DynamicConfig { min_elements: 0 }).unwrap();
        assert_eq!(n, 1);
        let t = h.tensor(w);
        let q = t.quant.as_ref().unwrap();
        assert_eq!(
            (q.axis, q.scale.clone()),
            (3, vec![1.0 / 127.0, 4.0 / 127.0])
        );
        assert_eq!(t.data.as_ref().unwrap(), &[127u8, (-127i8) as u8, 64, 64]);
        // Below the size threshold nothing changes.
        let (same, n) = quantize_dynamic(&g, &DynamicConfig::default()).unwrap();
        assert_eq!((n, same == g), (0, true));
    }
}
