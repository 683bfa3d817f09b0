//! Shape inference, validation, and per-op cost (MACs, weight bytes).

use crate::error::GraphError;
use crate::graph::{DType, Graph, Hw, Op, OpKind, Padding};

/// Output size and leading padding of one spatial dimension, as TFLite computes them.
pub fn window_geometry(
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Result<(usize, usize), String> {
    if stride == 0 || dilation == 0 || filter == 0 {
        return Err(format!(
            "filter {filter}, stride {stride}, dilation {dilation} must be ≥ 1"
        ));
    }
    let effective = (filter - 1) * dilation + 1;
    match padding {
        Padding::Same => {
            let out = input.div_ceil(stride);
            let needed = ((out.max(1) - 1) * stride + effective).saturating_sub(input);
            Ok((out, needed / 2))
        }
        Padding::Valid => {
            if input < effective {
                return Err(format!(
                    "input size {input} is smaller than the filter extent {effective}"
                ));
            }
            Ok(((input - effective) / stride + 1, 0))
        }
    }
}

fn expect_rank(shape: &[usize], rank: usize, what: &str) -> Result<(), String> {
    if shape.len() != rank {
        return Err(format!("{what} must have rank {rank}, has shape {shape:?}"));
    }
    Ok(())
}

fn spatial(
    input: &[usize],
    filter: Hw,
    stride: Hw,
    dilation: Hw,
    padding: Padding,
) -> Result<(usize, usize), String> {
    let (oh, _) = window_geometry(input[1], filter.h, stride.h, dilation.h, padding)?;
    let (ow, _) = window_geometry(input[2], filter.w, stride.w, dilation.w, padding)?;
    Ok((oh, ow))
}

/// Shape of the (single) output of `kind` applied to inputs of the given shapes.
pub fn infer_output_shape(kind: &OpKind, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
    let need = |n: usize| -> Result<(), String> {
        if inputs.len() < n {
            Err(format!("needs {n} inputs, has {}", inputs.len()))
        } else {
            Ok(())
        }
    };
    match kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            ..
        } => {
            need(2)?;
            let (x, w) = (inputs[0], inputs[1]);
            expect_rank(x, 4, "input")?;
            expect_rank(w, 4, "filter")?;
            if w[3] != x[3] {
                return Err(format!(
                    "filter {w:?} expects {} input channels, input {x:?} has {}",
                    w[3], x[3]
                ));
            }
            check_bias(inputs, w[0])?;
            let (oh, ow) = spatial(x, Hw::new(w[1], w[2]), *stride, *dilation, *padding)?;
            Ok(vec![x[0], oh, ow, w[0]])
        }
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            ..
        } => {
            need(2)?;
            let (x, w) = (inputs[0], inputs[1]);
            expect_rank(x, 4, "input")?;
            expect_rank(w, 4, "filter")?;
            let out_c = x[3] * depth_multiplier;
            if w[0] != 1 || w[3] != out_c {
                return Err(format!(
                    "filter {w:?} must be [1, kh, kw, {out_c}] for input {x:?} and depth multiplier {depth_multiplier}"
                ));
            }
            check_bias(inputs, out_c)?;
            let (oh, ow) = spatial(x, Hw::new(w[1], w[2]), *stride, *dilation, *padding)?;
            Ok(vec![x[0], oh, ow, out_c])
        }
        OpKind::FullyConnected { keep_num_dims, .. } => {
            need(2)?;
            let (x, w) = (inputs[0], inputs[1]);
            expect_rank(w, 2, "weights")?;
            let elements: usize = x.iter().product();
            if w[1] == 0 || !elements.is_multiple_of(w[1]) {
                return Err(format!(
                    "input {x:?} cannot be flattened to rows of {} (weights {w:?})",
                    w[1]
                ));
            }
            check_bias(inputs, w[0])?;
            if *keep_num_dims {
                if x.last() != Some(&w[1]) {
                    return Err(format!(
                        "keep_num_dims needs the last input dim {x:?} to equal {}",
                        w[1]
                    ));
                }
                let mut s = x.to_vec();
                let last = s.len() - 1;
                s[last] = w[0];
                Ok(s)
            } else {
                Ok(vec![elements / w[1], w[0]])
            }
        }
        OpKind::MaxPool2D {
            filter,
            stride,
            padding,
            ..
        }
        | OpKind::AvgPool2D {
            filter,
            stride,
            padding,
            ..
        } => {
            need(1)?;
            let x = inputs[0];
            expect_rank(x, 4, "input")?;
            let (oh, ow) = spatial(x, *filter, *stride, Hw::ONE, *padding)?;
            Ok(vec![x[0], oh, ow, x[3]])
        }
        OpKind::Mean { axes, keep_dims } => {
            need(1)?;
            let x = inputs[0];
            if let Some(a) = axes.iter().find(|a| **a >= x.len()) {
                return Err(format!("axis {a} out of range for input {x:?}"));
            }
            Ok(x.iter()
                .enumerate()
                .filter_map(|(i, d)| match (axes.contains(&i), keep_dims) {
                    (false, _) => Some(*d),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect())
        }
        OpKind::Concatenation { axis, .. } => {
            need(1)?;
            let first = inputs[0];
            if *axis >= first.len() {
                return Err(format!("axis {axis} out of range for input {first:?}"));
            }
            let mut out = first.to_vec();
            for (i, s) in inputs.iter().enumerate().skip(1) {
                if s.len() != first.len()
                    || s.iter()
                        .zip(first.iter())
                        .enumerate()
                        .any(|(d, (a, b))| d != *axis && a != b)
                {
                    return Err(format!(
                        "input {i} shape {s:?} does not match {first:?} outside axis {axis}"
                    ));
                }
                out[*axis] += s[*axis];
            }
            Ok(out)
        }
        OpKind::Add { .. } => {
            need(2)?;
            // NumPy broadcasting (aligned on the last axis, each pair equal or 1), as TFLite.
            let (a, b) = (inputs[0], inputs[1]);
            let rank = a.len().max(b.len());
            if rank > 4 {
                return Err(format!("broadcast of rank {rank} > 4: {a:?} vs {b:?}"));
            }
            let dim = |s: &[usize], i: usize| -> usize {
                (i + s.len()).checked_sub(rank).map_or(1, |j| s[j])
            };
            (0..rank)
                .map(|i| match (dim(a, i), dim(b, i)) {
                    (x, y) if x == y => Ok(x),
                    (1, y) => Ok(y),
                    (x, 1) => Ok(x),
                    _ => Err(format!(
                        "input shapes {a:?} and {b:?} do not broadcast (each axis must be equal or 1)"
                    )),
                })
                .collect()
        }
        OpKind::Reshape { new_shape } => {
            need(1)?;
            let (a, b) = (
                inputs[0].iter().product::<usize>(),
                new_shape.iter().product::<usize>(),
            );
            if a != b {
                return Err(format!(
                    "cannot reshape {:?} ({a} elements) to {new_shape:?} ({b})",
                    inputs[0]
                ));
            }
            Ok(new_shape.clone())
        }
        OpKind::Pad { paddings } => {
            need(1)?;
            let x = inputs[0];
            if paddings.len() != x.len() {
                return Err(format!(
                    "{} padding pairs for input of rank {}",
                    paddings.len(),
                    x.len()
                ));
            }
            Ok(x.iter()
                .zip(paddings)
                .map(|(d, [b, a])| d + b + a)
                .collect())
        }
        OpKind::Softmax { .. } | OpKind::Quantize | OpKind::Dequantize => {
            need(1)?;
            Ok(inputs[0].to_vec())
        }
    }
}

fn check_bias(inputs: &[&[usize]], out_channels: usize) -> Result<(), String> {
    if let Some(b) = inputs.get(2)
        && b.iter().product::<usize>() != out_channels
    {
        return Err(format!("bias {b:?} must have {out_channels} elements"));
    }
    Ok(())
}

/// Multiply-accumulates of one op (convolutions and fully-connected layers; 0 otherwise).
pub fn op_macs(graph: &Graph, op: &Op) -> u64 {
    let shape = |i: usize| {
        op.inputs
            .get(i)
            .map(|t| graph.tensor(*t).shape.as_slice())
            .unwrap_or(&[])
    };
    let out: usize = op
        .outputs
        .first()
        .map(|t| graph.tensor(*t).elements())
        .unwrap_or(0);
    let w = shape(1);
    let macs = match &op.kind {
        OpKind::Conv2D { .. } if w.len() == 4 => out * w[1] * w[2] * w[3],
        OpKind::DepthwiseConv2D { .. } if w.len() == 4 => out * w[1] * w[2],
        OpKind::FullyConnected { .. } if w.len() == 2 => out * w[1],
        _ => 0,
    };
    macs as u64
}

/// Bytes of constant data an op reads (weights, biases).
pub fn op_weight_bytes(graph: &Graph, op: &Op) -> usize {
    op.inputs
        .iter()
        .map(|t| graph.tensor(*t))
        .filter(|t| t.is_constant())
        .map(|t| t.byte_size())
        .sum()
}

impl Graph {
    pub fn total_macs(&self) -> u64 {
        self.ops.iter().map(|op| op_macs(self, op)).sum()
    }

    /// Constant bytes over the whole graph, each tensor counted once.
    pub fn weight_bytes(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| t.is_constant())
            .map(|t| t.byte_size())
            .sum()
    }

    /// Checks that the graph is well formed and executable in order: tensor references exist,
    /// every op input is a constant, a graph input or produced by an earlier op, shapes match
    /// inference, and dtypes/quantisation fit the op.
    pub fn validate(&self) -> Result<(), GraphError> {
        let n = self.tensors.len();
        for (i, t) in self.tensors.iter().enumerate() {
            let terr = |m: String| GraphError::Tensor {
                index: i,
                name: t.name.clone(),
                message: m,
            };
            crate::tflite::check_tensor_size(&t.shape, t.dtype).map_err(terr)?;
            if let Some(d) = &t.data
                && d.len() != t.byte_size()
            {
                return Err(terr(format!(
                    "has {} data bytes, shape {:?} {} needs {}",
                    d.len(),
                    t.shape,
                    t.dtype,
                    t.byte_size()
                )));
            }
            if let Some(q) = &t.quant {
                if q.scale.is_empty() || q.scale.len() != q.zero_point.len() {
                    return Err(terr(format!(
                        "{} scales and {} zero points",
                        q.scale.len(),
                        q.zero_point.len()
                    )));
                }
                if q.scale.iter().any(|s| !s.is_finite() || *s <= 0.0) && t.dtype != DType::I32 {
                    return Err(terr(format!(
                        "quantisation scale must be finite and > 0, got {:?}",
                        q.scale
                    )));
                }
                if !q.is_per_tensor() && t.shape.get(q.axis) != Some(&q.scale.len()) {
                    return Err(terr(format!(
                        "{} per-axis scales along axis {} of shape {:?}",
                        q.scale.len(),
                        q.axis,
                        t.shape
                    )));
                }
            }
        }
        let mut available = vec![false; n];
        for (i, t) in self.tensors.iter().enumerate() {
            available[i] = t.is_constant();
        }
        for id in self.inputs.iter().chain(&self.outputs) {
            if id.0 >= n {
                return Err(GraphError::Invalid(format!(
                    "graph input/output {id} does not exist ({n} tensors)"
                )));
            }
        }
        for id in &self.inputs {
            if self.tensor(*id).is_constant() {
                return Err(GraphError::Invalid(format!(
                    "graph input {id} ('{}') is a constant",
                    self.tensor(*id).name
                )));
            }
            available[id.0] = true;
        }
        for (index, op) in self.ops.iter().enumerate() {
            let name = op.kind.name();
            for id in op.inputs.iter().chain(&op.outputs) {
                if id.0 >= n {
                    return Err(GraphError::op(
                        index,
                        name,
                        format!("refers to missing tensor {id}"),
                    ));
                }
            }
            for id in &op.inputs {
                if !available[id.0] {
                    return Err(GraphError::op(
                        index,
                        name,
                        format!(
                            "input {id} ('{}') is neither a constant, a graph input nor produced by an earlier op",
                            self.tensor(*id).name
                        ),
                    ));
                }
            }
            if op.outputs.len() != 1 {
                return Err(GraphError::op(
                    index,
                    name,
                    format!("must have 1 output, has {}", op.outputs.len()),
                ));
            }
            let out = self.tensor(op.outputs[0]);
            if out.is_constant() || available[op.outputs[0].0] {
                return Err(GraphError::op(
                    index,
                    name,
                    format!(
                        "output {} ('{}') is written twice or is a constant",
                        op.outputs[0], out.name
                    ),
                ));
            }
            let shapes: Vec<&[usize]> = op
                .inputs
                .iter()
                .map(|t| self.tensor(*t).shape.as_slice())
                .collect();
            let inferred = infer_output_shape(&op.kind, &shapes)
                .map_err(|m| GraphError::op(index, name, m))?;
            if inferred != out.shape {
                return Err(GraphError::op(
                    index,
                    name,
                    format!(
                        "output '{}' has shape {:?}, inference gives {inferred:?}",
                        out.name, out.shape
                    ),
                ));
            }
            self.validate_types(index, op)?;
            available[op.outputs[0].0] = true;
        }
        for id in &self.outputs {
            if !available[id.0] {
                return Err(GraphError::Invalid(format!(
                    "graph output {id} ('{}') is never computed",
                    self.tensor(*id).name
                )));
            }
        }
        Ok(())
    }

    fn validate_types(&self, index: usize, op: &Op) -> Result<(), GraphError> {
        let name = op.kind.name();
        let err = |m: String| GraphError::op(index, name, m);
        let x = self.tensor(op.inputs[0]);
        let out = self.tensor(op.outputs[0]);
        let quantized = |t: &crate::graph::Tensor| -> Result<(), GraphError> {
            if t.dtype.is_quantized_integer() && t.quant.is_none() {
                return Err(err(format!(
                    "{} tensor '{}' has no quantisation parameters",
                    t.dtype, t.name
                )));
            }
            Ok(())
        };
        match &op.kind {
            OpKind::Quantize => {
                if !out.dtype.is_quantized_integer() {
                    return Err(err(format!(
                        "output must be i8, u8 or i16, is {}",
                        out.dtype
                    )));
                }
                quantized(out)?;
                if x.dtype != DType::F32 {
                    quantized(x)?;
                }
            }
            OpKind::Dequantize => {
                if out.dtype != DType::F32 {
                    return Err(err(format!("output must be f32, is {}", out.dtype)));
                }
                quantized(x)?;
            }
            _ => {
                let weighted = matches!(
                    op.kind,
                    OpKind::Conv2D { .. }
                        | OpKind::DepthwiseConv2D { .. }
                        | OpKind::FullyConnected { .. }
                );
                for (pos, id) in op.inputs.iter().take(2).enumerate() {
                    let t = self.tensor(*id);
                    if matches!(t.dtype, DType::I4 | DType::I2) && weighted && pos == 1 {
                        // Packed sub-byte weights: constant, per-channel symmetric, int8 input.
                        if !t.is_constant() || t.quant.is_none() || x.dtype != DType::I8 {
                            return Err(err(format!(
                                "{} weights '{}' must be a quantised constant of an int8 layer",
                                t.dtype, t.name
                            )));
                        }
                        continue;
                    }
                    if !matches!(t.dtype, DType::F32 | DType::I8 | DType::U8 | DType::I16) {
                        return Err(err(format!(
                            "tensor '{}' has unsupported type {}",
                            t.name, t.dtype
                        )));
                    }
                    quantized(t)?;
                }
                if weighted {
                    if let Some(b) = op.inputs.get(2) {
                        let b = self.tensor(*b);
                        let want = match x.dtype {
                            DType::F32 => DType::F32,
                            // As the TFLite converter writes 16×8 biases (its kernels also take
                            // int32, which kinglet does not produce).
                            DType::I16 => DType::I64,
                            _ => DType::I32,
                        };
                        if b.dtype != want {
                            return Err(err(format!(
                                "bias '{}' must be {want} for {} input, is {}",
                                b.name, x.dtype, b.dtype
                            )));
                        }
                    }
                } else {
                    for id in &op.inputs {
                        let t = self.tensor(*id);
                        if t.dtype != x.dtype {
                            return Err(err(format!(
                                "input '{}' is {}, first input is {}",
                                t.name, t.dtype, x.dtype
                            )));
                        }
                    }
                }
                if out.dtype != x.dtype {
                    return Err(err(format!(
                        "output '{}' is {}, input is {}",
                        out.name, out.dtype, x.dtype
                    )));
                }
                quantized(out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, Graph, QuantParams};

    fn conv() -> OpKind {
        OpKind::Conv2D {
            stride: Hw::new(1, 2),
            dilation: Hw::ONE,
            padding: Padding::Same,
            activation: Activation::None,
        }
    }

    #[test]
    fn same_and_valid_geometry_follow_tflite() {
        // SAME: out = ceil(in / stride); the extra padding cell goes at the end.
        assert_eq!(
            window_geometry(128, 3, 1, 1, Padding::Same).unwrap(),
            (128, 1)
        );
        assert_eq!(window_geometry(7, 4, 2, 1, Padding::Same).unwrap(), (4, 1));
        assert_eq!(window_geometry(7, 3, 2, 2, Padding::Valid).unwrap(), (2, 0));
        assert!(window_geometry(2, 3, 1, 1, Padding::Valid).is_err());
    }

    #[test]
    fn inference_covers_conv_pool_fc_concat_mean() {
        let s = infer_output_shape(&conv(), &[&[1, 1, 128, 3], &[8, 1, 3, 3], &[8]]).unwrap();
        assert_eq!(s, vec![1, 1, 64, 8]);
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        assert_eq!(
            infer_output_shape(&fc, &[&[1, 4, 8], &[6, 32]]).unwrap(),
            vec![1, 6]
        );
        let cat = OpKind::Concatenation {
            axis: 1,
            activation: Activation::None,
        };
        assert_eq!(
            infer_output_shape(&cat, &[&[1, 2, 3], &[1, 4, 3]]).unwrap(),
            vec![1, 6, 3]
        );
        let mean = OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        };
        assert_eq!(
            infer_output_shape(&mean, &[&[1, 5, 5, 7]]).unwrap(),
            vec![1, 7]
        );
    }

    #[test]
    fn validation_errors_name_the_op_index_and_kind() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 16, 3], DType::F32, None);
        let w = g.add_constant_f32("w", &[4, 1, 3, 2], &[0.0; 24]).unwrap();
        let y = g.add_activation("y", &[1, 1, 8, 4], DType::F32, None);
        g.add_op(conv(), &[x, w], &[y]);
        g.mark_output(y);
        let e = g.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("op 0 (CONV_2D)") && e.contains("input channels"),
            "{e}"
        );

        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            &[1, 4],
            DType::I8,
            Some(QuantParams::per_tensor(0.1, 0)),
        );
        let y = g
            .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[x], "y")
            .unwrap();
        g.mark_output(y);
        let e = g.validate().unwrap_err().to_string();
        assert!(
            e.contains("op 0 (SOFTMAX)") && e.contains("no quantisation"),
            "{e}"
        );
    }

    #[test]
    fn macs_count_conv_and_fc_only() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 16, 3], DType::F32, None);
        let w = g.add_constant_f32("w", &[4, 1, 3, 3], &[0.0; 36]).unwrap();
        let y = g.add_op_inferred(conv(), &[x, w], "y").unwrap();
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let fw = g.add_constant_f32("fw", &[2, 32], &[0.0; 64]).unwrap();
        let z = g.add_op_inferred(fc, &[y, fw], "z").unwrap();
        g.mark_output(z);
        g.validate().unwrap();
        // conv: 8 outputs × 4 channels × 3 taps × 3 inputs; fc: 2 × 32.
        assert_eq!(g.total_macs(), 8 * 4 * 9 + 64);
        assert_eq!(op_weight_bytes(&g, &g.ops[0]), 36 * 4);
    }
}
