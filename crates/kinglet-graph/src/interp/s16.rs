//! The 16×8 scheme (`a16w8`) in the host executor: ops whose activations are int16 run
//! kinglet-micro's [`km::s16`] kernels. Everything is prepared as TFLite's int16 `Prepare`
//! does; int16 tensors must be symmetric (zero point 0), which TFLite's kernels require too.

use kinglet_micro as km;
use kinglet_micro::{Shape4, TensorMut, TensorRef};

use super::{TfliteKernels, fused, kerr, quant1, shape4, window_params};
use crate::graph::{Activation, DType, Graph, Op, OpKind, Tensor};

/// Requantisation of a conv-like op, owned.
#[derive(Clone, Debug)]
pub(super) struct Requant16 {
    multipliers: Vec<i32>,
    shifts: Vec<i32>,
    act_min: i32,
    act_max: i32,
}

impl Requant16 {
    fn quant(&self) -> km::s16::Quant16<'_> {
        km::s16::Quant16 {
            multipliers: &self.multipliers,
            shifts: &self.shifts,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// A prepared int16 op.
#[derive(Clone, Debug)]
pub(super) enum Kernel16 {
    Conv {
        params: km::ConvParams,
        filter: Vec<i8>,
        filter_shape: Shape4,
        bias: Option<Vec<i64>>,
        requant: Requant16,
    },
    Depthwise {
        params: km::depthwise_conv2d::DepthwiseParams,
        filter: Vec<i8>,
        filter_shape: Shape4,
        bias: Option<Vec<i64>>,
        requant: Requant16,
    },
    FullyConnected {
        shape: km::fully_connected::FcShape,
        weights: Vec<i8>,
        bias: Option<Vec<i64>>,
        requant: Requant16,
        /// The reference kernels' double-precision scales, when reproducing them.
        double: Option<Vec<f64>>,
    },
    MaxPool {
        params: km::PoolParams,
        act_min: i32,
        act_max: i32,
    },
    AvgPool {
        params: km::PoolParams,
        act_min: i32,
        act_max: i32,
    },
    Mean {
        quant: km::mean::MeanQuant,
        view: Shape4,
    },
    Concat {
        outer: usize,
        row_lens: Vec<usize>,
    },
    Add {
        params: km::add::AddParams,
        constants: [Option<Vec<i16>>; 2],
    },
    Copy,
    Pad {
        before: [usize; 4],
        after: [usize; 4],
    },
    Softmax {
        tables: Box<km::s16::softmax::SoftmaxS16>,
        depth: usize,
    },
    Quantize {
        scale: f32,
        zero_point: i32,
        rounding: km::quantize::QuantizeRounding,
    },
    Requantize {
        params: km::quantize::RequantizeParams,
    },
    Dequantize {
        scale: f32,
    },
}

/// Scale of an int16 tensor, which must be per tensor and symmetric.
fn scale16(t: &Tensor) -> Result<f32, String> {
    let (s, z) = quant1(t)?;
    if z != 0 {
        return Err(format!(
            "int16 tensor '{}' has zero point {z}; the 16×8 scheme needs 0",
            t.name
        ));
    }
    Ok(s)
}

fn act_range(act: Activation, out: &Tensor) -> Result<(i32, i32), String> {
    let s = scale16(out)?;
    Ok(km::quant::activation_range_quantized(
        fused(act),
        s,
        0,
        i32::from(i16::MIN),
        i32::from(i16::MAX),
    ))
}

fn const_i8(t: &Tensor) -> Result<Vec<i8>, String> {
    match (&t.data, t.dtype) {
        (Some(d), DType::I8) => Ok(d.iter().map(|b| *b as i8).collect()),
        _ => Err(format!(
            "weights '{}' must be an int8 constant, are {}",
            t.name, t.dtype
        )),
    }
}

fn const_i16(t: &Tensor) -> Option<Vec<i16>> {
    let d = t.data.as_ref()?;
    Some(
        d.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// The int64 bias of a weighted op (input 2), if any.
fn bias64(graph: &Graph, op: &Op) -> Result<Option<Vec<i64>>, String> {
    let Some(b) = op.inputs.get(2).map(|t| graph.tensor(*t)) else {
        return Ok(None);
    };
    match (&b.data, b.dtype) {
        (Some(d), DType::I64) => Ok(Some(
            d.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        )),
        _ => Err(format!(
            "bias '{}' must be an int64 constant for int16 input, is {}",
            b.name, b.dtype
        )),
    }
}

/// Per-channel multipliers `s_in · s_w[c] / s_out` and the fused clamp of a weighted op.
fn weighted(
    x: &Tensor,
    weights: &Tensor,
    out: &Tensor,
    channels: usize,
    act: Activation,
) -> Result<Requant16, String> {
    let wq = weights
        .quant
        .as_ref()
        .ok_or_else(|| format!("weights '{}' have no quantisation", weights.name))?;
    if wq.scale.len() != 1 && wq.scale.len() != channels {
        return Err(format!(
            "weights '{}' have {} scales for {channels} output channels",
            weights.name,
            wq.scale.len()
        ));
    }
    if wq.zero_point.iter().any(|z| *z != 0) {
        return Err(format!(
            "weights '{}' must be symmetric (zero point 0)",
            weights.name
        ));
    }
    let n = wq.scale.len();
    let (mut multipliers, mut shifts) = (vec![0; n], vec![0; n]);
    km::quant::conv_output_multipliers(
        scale16(x)?,
        &wq.scale,
        scale16(out)?,
        &mut multipliers,
        &mut shifts,
    )
    .map_err(kerr)?;
    let (act_min, act_max) = act_range(act, out)?;
    Ok(Requant16 {
        multipliers,
        shifts,
        act_min,
        act_max,
    })
}

/// Prepares op `op` whose input or output is int16.
pub(super) fn prepare(
    graph: &Graph,
    op: &Op,
    in_shapes: &[Shape4],
    kernels: TfliteKernels,
) -> Result<Kernel16, String> {
    let x = graph.tensor(op.inputs[0]);
    let out = graph.tensor(op.outputs[0]);
    let float_edge = matches!(op.kind, OpKind::Quantize | OpKind::Dequantize);
    if !float_edge && (x.dtype != DType::I16 || out.dtype != DType::I16) {
        return Err(format!(
            "{} from {} to {}: the 16×8 scheme keeps int16 throughout",
            op.kind.name(),
            x.dtype,
            out.dtype
        ));
    }
    let act = op.kind.activation();
    Ok(match &op.kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            ..
        } => {
            let w = graph.tensor(op.inputs[1]);
            let fs = shape4(&w.shape)?;
            Kernel16::Conv {
                params: window_params(in_shapes[0], fs.h, fs.w, *stride, *dilation, *padding)?,
                filter: const_i8(w)?,
                filter_shape: fs,
                bias: bias64(graph, op)?,
                requant: weighted(x, w, out, fs.n, act)?,
            }
        }
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            ..
        } => {
            let w = graph.tensor(op.inputs[1]);
            let fs = shape4(&w.shape)?;
            Kernel16::Depthwise {
                params: km::depthwise_conv2d::DepthwiseParams {
                    conv: window_params(in_shapes[0], fs.h, fs.w, *stride, *dilation, *padding)?,
                    depth_multiplier: *depth_multiplier,
                },
                filter: const_i8(w)?,
                filter_shape: fs,
                bias: bias64(graph, op)?,
                requant: weighted(x, w, out, fs.c, act)?,
            }
        }
        OpKind::FullyConnected { .. } => {
            let w = graph.tensor(op.inputs[1]);
            let (out_features, in_features) = (w.shape[0], w.shape[1]);
            // TFLite has no optimized int16 fully-connected kernel: every configuration runs
            // the reference one, which rounds in double precision (the builtin and default
            // interpreters give the reference outputs on kinglet-lite and big3 a16w8).
            let double = match &w.quant {
                Some(wq) => {
                    let mut s = vec![0f64; wq.scale.len()];
                    km::quant::fc_reference_scales(scale16(x)?, &wq.scale, scale16(out)?, &mut s)
                        .map_err(kerr)?;
                    Some(s)
                }
                _ => None,
            };
            Kernel16::FullyConnected {
                double,
                shape: km::fully_connected::FcShape {
                    batches: x.elements() / in_features.max(1),
                    in_features,
                    out_features,
                },
                weights: const_i8(w)?,
                bias: bias64(graph, op)?,
                requant: weighted(x, w, out, out_features, act)?,
            }
        }
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
            let params = super::pool_params(in_shapes[0], *filter, *stride, *padding)?;
            if scale16(x)? != scale16(out)? {
                return Err("int16 pooling needs equal input and output scales".into());
            }
            let (act_min, act_max) = act_range(*activation, out)?;
            if matches!(op.kind, OpKind::MaxPool2D { .. }) {
                Kernel16::MaxPool {
                    params,
                    act_min,
                    act_max,
                }
            } else {
                Kernel16::AvgPool {
                    params,
                    act_min,
                    act_max,
                }
            }
        }
        OpKind::Mean { axes, .. } => {
            let view = super::mean_view(&x.shape, axes)?;
            Kernel16::Mean {
                quant: km::mean::MeanQuant {
                    input_scale: scale16(x)?,
                    input_zero_point: 0,
                    output_scale: scale16(out)?,
                    output_zero_point: 0,
                },
                view,
            }
        }
        OpKind::Concatenation { axis, activation } => {
            if *activation != Activation::None {
                return Err("a fused activation on CONCATENATION is not executable".into());
            }
            let os = scale16(out)?;
            for t in &op.inputs {
                let t = graph.tensor(*t);
                if t.dtype != DType::I16 || scale16(t)? != os {
                    return Err(format!(
                        "int16 concatenation input '{}' must share the output's scale",
                        t.name
                    ));
                }
            }
            Kernel16::Concat {
                outer: x.shape[..*axis].iter().product(),
                row_lens: op
                    .inputs
                    .iter()
                    .map(|t| graph.tensor(*t).shape[*axis..].iter().product())
                    .collect(),
            }
        }
        OpKind::Add { activation } => {
            let y = graph.tensor(op.inputs[1]);
            let (lo, hi) = act_range(*activation, out)?;
            let params =
                km::s16::add::add_params_s16(scale16(x)?, scale16(y)?, scale16(out)?, lo, hi)
                    .map_err(kerr)?;
            Kernel16::Add {
                params,
                constants: [const_i16(x), const_i16(y)],
            }
        }
        OpKind::Reshape { .. } => Kernel16::Copy,
        OpKind::Pad { paddings } => {
            let (before, after) = super::pad_widths(paddings)?;
            Kernel16::Pad { before, after }
        }
        OpKind::Softmax { beta } => {
            let os = scale16(out)?;
            if (os - 1.0 / 32768.0).abs() > 0.001 / 32768.0 {
                return Err(format!(
                    "int16 softmax output '{}' must have scale 1/32768, has {os}",
                    out.name
                ));
            }
            Kernel16::Softmax {
                tables: Box::new(
                    km::s16::softmax::SoftmaxS16::with_exp(scale16(x)?, *beta, f64::exp)
                        .map_err(kerr)?,
                ),
                depth: out.shape.last().copied().unwrap_or(1),
            }
        }
        OpKind::Quantize if x.dtype == DType::F32 => Kernel16::Quantize {
            scale: scale16(out)?,
            zero_point: 0,
            rounding: if kernels == TfliteKernels::Reference {
                km::quantize::QuantizeRounding::DivideTiesAway
            } else {
                km::quantize::QuantizeRounding::ReciprocalTiesEven
            },
        },
        OpKind::Quantize if x.dtype == DType::I16 && out.dtype == DType::I16 => {
            let (multiplier, shift) =
                km::quantize::requantize_multiplier(scale16(x)?, scale16(out)?).map_err(kerr)?;
            Kernel16::Requantize {
                params: km::quantize::RequantizeParams {
                    input_zero_point: 0,
                    output_zero_point: 0,
                    multiplier,
                    shift,
                },
            }
        }
        OpKind::Dequantize if x.dtype == DType::I16 => Kernel16::Dequantize { scale: scale16(x)? },
        other => {
            return Err(format!(
                "{} from {} to {} is not supported by the 16×8 scheme",
                other.name(),
                x.dtype,
                out.dtype
            ));
        }
    })
}

fn i16s(b: &[u8]) -> Result<&[i16], String> {
    km::tensor::bytes_as_i16(b).map_err(kerr)
}

fn i16m(b: &mut [u8]) -> Result<&mut [i16], String> {
    km::tensor::bytes_as_i16_mut(b).map_err(kerr)
}

/// Runs a prepared int16 op on its arena slices.
pub(super) fn run(
    k: &Kernel16,
    in_shapes: &[Shape4],
    out_shape: Shape4,
    ins: &[&[u8]],
    out: &mut [u8],
) -> Result<(), String> {
    let (is, os) = (in_shapes[0], out_shape);
    let x = ins.first().copied().ok_or("op has no activation input")?;
    match k {
        Kernel16::Conv {
            params,
            filter,
            filter_shape,
            bias,
            requant,
        } => km::s16::conv2d::conv2d_s16(
            params,
            &requant.quant(),
            TensorRef::new(i16s(x)?, is),
            TensorRef::new(filter, *filter_shape),
            bias.as_deref(),
            TensorMut::new(i16m(out)?, os),
        ),
        Kernel16::Depthwise {
            params,
            filter,
            filter_shape,
            bias,
            requant,
        } => km::s16::depthwise_conv2d::depthwise_conv2d_s16(
            params,
            &requant.quant(),
            TensorRef::new(i16s(x)?, is),
            TensorRef::new(filter, *filter_shape),
            bias.as_deref(),
            TensorMut::new(i16m(out)?, os),
        ),
        Kernel16::FullyConnected {
            shape,
            weights,
            bias,
            requant,
            double: Some(scales),
        } => km::s16::fully_connected::fully_connected_s16_double(
            *shape,
            scales,
            requant.act_min,
            requant.act_max,
            i16s(x)?,
            weights,
            bias.as_deref(),
            i16m(out)?,
        ),
        Kernel16::FullyConnected {
            shape,
            weights,
            bias,
            requant,
            double: None,
        } => km::s16::fully_connected::fully_connected_s16(
            *shape,
            &requant.quant(),
            i16s(x)?,
            weights,
            bias.as_deref(),
            i16m(out)?,
        ),
        Kernel16::MaxPool {
            params,
            act_min,
            act_max,
        } => km::s16::max_pool2d::max_pool2d_s16(
            params,
            *act_min,
            *act_max,
            TensorRef::new(i16s(x)?, is),
            TensorMut::new(i16m(out)?, os),
        ),
        Kernel16::AvgPool {
            params,
            act_min,
            act_max,
        } => km::s16::average_pool2d::average_pool2d_s16(
            params,
            *act_min,
            *act_max,
            TensorRef::new(i16s(x)?, is),
            TensorMut::new(i16m(out)?, os),
        ),
        Kernel16::Mean { quant, view } => {
            km::s16::mean::mean_hw_s16(quant, TensorRef::new(i16s(x)?, *view), i16m(out)?)
        }
        Kernel16::Concat { outer, row_lens } => {
            if ins.len() != row_lens.len() {
                return Err("concatenation of constants is not executable".into());
            }
            let parts = ins
                .iter()
                .zip(row_lens)
                .map(|(d, r)| {
                    Ok(km::concatenation::ConcatInput {
                        data: i16s(d)?,
                        row_len: *r,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            km::s16::concatenation::concatenation_s16(*outer, &parts, i16m(out)?)
        }
        Kernel16::Add { params, constants } => {
            let mut arena_ins = ins.iter();
            let mut operands: [&[i16]; 2] = [&[], &[]];
            for (k, c) in constants.iter().enumerate() {
                operands[k] = match c {
                    Some(v) => v,
                    None => i16s(arena_ins.next().copied().ok_or("ADD needs two operands")?)?,
                };
            }
            km::s16::add::add_s16(
                params,
                TensorRef::new(operands[0], in_shapes[0]),
                TensorRef::new(operands[1], in_shapes[1]),
                TensorMut::new(i16m(out)?, os),
            )
        }
        Kernel16::Copy => km::reshape::reshape(x, out),
        Kernel16::Pad { before, after } => km::pad::pad(
            TensorRef::new(i16s(x)?, is),
            *before,
            *after,
            0i16,
            TensorMut::new(i16m(out)?, os),
        ),
        Kernel16::Softmax { tables, depth } => {
            km::s16::softmax::softmax_s16(tables, i16s(x)?, i16m(out)?, *depth)
        }
        Kernel16::Quantize {
            scale,
            zero_point,
            rounding,
        } => km::s16::quantize::quantize_f32_to_s16(
            *rounding,
            km::tensor::bytes_as_f32(x).map_err(kerr)?,
            *scale,
            *zero_point,
            i16m(out)?,
        ),
        Kernel16::Requantize { params } => {
            km::s16::quantize::requantize_s16(params, i16s(x)?, i16m(out)?)
        }
        Kernel16::Dequantize { scale } => km::s16::dequantize::dequantize_s16(
            i16s(x)?,
            *scale,
            0,
            km::tensor::bytes_as_f32_mut(out).map_err(kerr)?,
        ),
    }
    .map_err(kerr)
}
