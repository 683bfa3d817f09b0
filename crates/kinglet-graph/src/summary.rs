//! What `kinglet inspect` shows: ops, shapes, quantisation, MACs, weight bytes, peak arena.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::error::GraphError;
use crate::graph::{Activation, Graph, OpKind, TensorId};
use crate::plan::ArenaPlan;
use crate::shape::{op_macs, op_weight_bytes};

#[derive(Clone, Debug, Serialize)]
pub struct QuantSummary {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    /// Axis of per-axis parameters (absent for per-tensor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axis: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    pub index: usize,
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
    pub constant: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quant: Option<QuantSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub index: usize,
    pub op: &'static str,
    /// Op parameters (strides, padding, activation, axes) in a short human form.
    pub params: String,
    pub inputs: Vec<TensorSummary>,
    pub output: TensorSummary,
    pub macs: u64,
    pub weight_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
    pub ops: Vec<OpSummary>,
    pub total_macs: u64,
    pub weight_bytes: usize,
    /// Peak arena planned for activations: what `Interpreter` allocates.
    pub arena_bytes: usize,
    /// Arena without reuse (sum of all activations), for comparison.
    pub unshared_activation_bytes: usize,
    pub metadata: BTreeMap<String, String>,
}

fn tensor(graph: &Graph, id: TensorId) -> TensorSummary {
    let t = graph.tensor(id);
    TensorSummary {
        index: id.0,
        name: t.name.clone(),
        shape: t.shape.clone(),
        dtype: t.dtype.name(),
        constant: t.is_constant(),
        quant: t.quant.as_ref().map(|q| QuantSummary {
            scale: q.scale.clone(),
            zero_point: q.zero_point.clone(),
            axis: (!q.is_per_tensor()).then_some(q.axis),
        }),
    }
}

fn act(a: Activation) -> &'static str {
    match a {
        Activation::None => "",
        Activation::Relu => " relu",
        Activation::Relu6 => " relu6",
    }
}

fn params(kind: &OpKind) -> String {
    let pad = |p: crate::Padding| {
        if p == crate::Padding::Same {
            "same"
        } else {
            "valid"
        }
    };
    match kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            activation,
        } => format!(
            "stride {}x{} dilation {}x{} {}{}",
            stride.h,
            stride.w,
            dilation.h,
            dilation.w,
            pad(*padding),
            act(*activation)
        ),
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            activation,
        } => format!(
            "stride {}x{} dilation {}x{} ×{depth_multiplier} {}{}",
            stride.h,
            stride.w,
            dilation.h,
            dilation.w,
            pad(*padding),
            act(*activation)
        ),
        OpKind::FullyConnected {
            activation,
            keep_num_dims,
        } => format!(
            "{}{}",
            if *keep_num_dims { "keep_num_dims" } else { "" },
            act(*activation)
        )
        .trim()
        .to_owned(),
        OpKind::MaxPool2D {
            filter,
            stride,
            padding,
            activation,
        }
        | OpKind::AvgPool2D {
            filter,
            stride,
            padding,
            activation,
        } => {
            format!(
                "filter {}x{} stride {}x{} {}{}",
                filter.h,
                filter.w,
                stride.h,
                stride.w,
                pad(*padding),
                act(*activation)
            )
        }
        OpKind::Mean { axes, keep_dims } => format!(
            "axes {axes:?}{}",
            if *keep_dims { " keep_dims" } else { "" }
        ),
        OpKind::Concatenation { axis, activation } => format!("axis {axis}{}", act(*activation)),
        OpKind::Add { activation } => act(*activation).trim().to_owned(),
        OpKind::Reshape { new_shape } => format!("to {new_shape:?}"),
        OpKind::Pad { paddings } => format!("{paddings:?}"),
        OpKind::Softmax { beta } => format!("beta {beta}"),
        OpKind::Quantize | OpKind::Dequantize => String::new(),
    }
}

impl ModelSummary {
    pub fn new(graph: &Graph) -> Result<ModelSummary, GraphError> {
        let plan = ArenaPlan::new(graph)?;
        let ops = graph
            .ops
            .iter()
            .enumerate()
            .map(|(index, op)| OpSummary {
                index,
                op: op.kind.name(),
                params: params(&op.kind),
                inputs: op.inputs.iter().map(|t| tensor(graph, *t)).collect(),
                output: tensor(graph, op.outputs[0]),
                macs: op_macs(graph, op),
                weight_bytes: op_weight_bytes(graph, op),
            })
            .collect();
        Ok(ModelSummary {
            inputs: graph.inputs.iter().map(|t| tensor(graph, *t)).collect(),
            outputs: graph.outputs.iter().map(|t| tensor(graph, *t)).collect(),
            ops,
            total_macs: graph.total_macs(),
            weight_bytes: graph.weight_bytes(),
            arena_bytes: plan.arena_bytes(),
            unshared_activation_bytes: plan.unshared_bytes(),
            metadata: graph.metadata.clone(),
        })
    }

    /// Human-readable table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let q = |t: &TensorSummary| match &t.quant {
            None => String::new(),
            Some(QuantSummary {
                scale,
                zero_point,
                axis: None,
            }) => format!(" q(s={}, zp={})", scale[0], zero_point[0]),
            Some(QuantSummary {
                scale,
                axis: Some(a),
                ..
            }) => format!(" q(per-axis {} along {a})", scale.len()),
        };
        let t = |t: &TensorSummary| format!("{} {:?}{}", t.dtype, t.shape, q(t));
        for i in &self.inputs {
            let _ = writeln!(s, "input  '{}': {}", i.name, t(i));
        }
        for o in &self.outputs {
            let _ = writeln!(s, "output '{}': {}", o.name, t(o));
        }
        let _ = writeln!(
            s,
            "{:>3}  {:<18} {:<34} {:<40} {:>9} {:>8}",
            "#", "op", "params", "output", "MACs", "weights"
        );
        for op in &self.ops {
            let _ = writeln!(
                s,
                "{:>3}  {:<18} {:<34} {:<40} {:>9} {:>8}",
                op.index,
                op.op,
                op.params,
                t(&op.output),
                op.macs,
                op.weight_bytes
            );
        }
        let _ = writeln!(
            s,
            "total: {} ops, {} MACs, {} weight bytes",
            self.ops.len(),
            self.total_macs,
            self.weight_bytes
        );
        let _ = writeln!(
            s,
            "peak arena: {} bytes (activations without reuse: {} bytes)",
            self.arena_bytes, self.unshared_activation_bytes
        );
        for (k, v) in &self.metadata {
            let _ = writeln!(s, "metadata {k}: {}", v.replace('\n', ", "));
        }
        s
    }
}
