//! Float models in firmware: float32 models, float16-weight models (`kinglet quantize
//! --scheme float16`) and dynamic-range models (`--scheme dynamic`: int8 weights, float
//! activations). Every step calls the kinglet-micro kernel kinglet-graph's host interpreter
//! calls for the same op (`conv2d_f32`, `fully_connected_f32`, `hybrid::conv2d_hybrid`, …),
//! with the same constants in the same order, so firmware outputs equal the host's bit for bit.
//! The one substitution: float Conv2D in the Cortex-M4 schedule runs kinglet-m4's
//! `float_conv` (filter transposed at compile time, up to 16 output channels per pass,
//! each output summed in kinglet-micro's order: bit-identical, about 2–3× fewer
//! instructions).
//!
//! Float16 weights stay half floats in flash (half the bytes of float32) and are widened
//! (exactly) when their layer runs, into a scratch buffer of the arena that lives only for
//! that layer: a convolution widens its whole filter; a fully-connected layer with one batch
//! widens one weight row at a time and computes that output, so its scratch is one row, not
//! the matrix. Dynamic-range weights stay int8 in flash; the hybrid kernels quantise the float
//! input into an int8 scratch buffer per call.

use std::fmt::Write as _;

use crate::emit_rust::{conv_params_expr, shape4};
use crate::program::{Dims, Loc};

/// Float constant data as stored in flash.
#[derive(Clone, Debug, PartialEq)]
pub enum FloatConst {
    F32(Vec<f32>),
    /// IEEE half-precision bit patterns, widened on use.
    F16(Vec<u16>),
}

impl FloatConst {
    pub fn len(&self) -> usize {
        match self {
            FloatConst::F32(v) => v.len(),
            FloatConst::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        match self {
            FloatConst::F32(v) => 4 * v.len(),
            FloatConst::F16(v) => 2 * v.len(),
        }
    }

    fn is_f16(&self) -> bool {
        matches!(self, FloatConst::F16(_))
    }
}

/// The op a hybrid (dynamic-range) step runs.
#[derive(Clone, Debug, PartialEq)]
pub enum HybridKind {
    Conv2D {
        input: Dims,
        output: Dims,
        filter: Dims,
        /// stride h, stride w, dilation h, dilation w, pad top, pad left.
        geometry: [usize; 6],
    },
    DepthwiseConv2D {
        input: Dims,
        output: Dims,
        filter: Dims,
        geometry: [usize; 6],
        depth_multiplier: usize,
    },
    FullyConnected {
        batches: usize,
        in_len: usize,
        out_len: usize,
    },
}

/// One kernel call of a float model.
#[derive(Clone, Debug, PartialEq)]
pub enum FloatStep {
    /// kinglet-micro `conv2d_f32`, or with `transposed` kinglet-m4 `float_conv::conv2d_f32`
    /// (same results, four output channels at a time; `weights` then in `[kh][kw][in][out]`
    /// order). With float16 constants, `scratch` (f32, filter then bias when the bias is
    /// float16 too) receives them widened first.
    Conv2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        geometry: [usize; 6],
        transposed: bool,
        weights: FloatConst,
        bias: Option<FloatConst>,
        /// Fused activation clamp (min, max).
        act: [f32; 2],
        scratch: Option<Loc>,
    },
    /// kinglet-micro `depthwise_conv2d_f32` (scratch as for [`FloatStep::Conv2D`]).
    DepthwiseConv2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        geometry: [usize; 6],
        depth_multiplier: usize,
        weights: FloatConst,
        bias: Option<FloatConst>,
        act: [f32; 2],
        scratch: Option<Loc>,
    },
    /// kinglet-micro `fully_connected_f32`. With float16 weights and one batch, `scratch`
    /// holds one widened weight row and the kernel runs once per output; with several
    /// batches it holds the whole widened matrix (and bias).
    FullyConnected {
        src: Loc,
        dst: Loc,
        batches: usize,
        in_len: usize,
        out_len: usize,
        weights: FloatConst,
        bias: Option<FloatConst>,
        act: [f32; 2],
        scratch: Option<Loc>,
    },
    /// kinglet-micro `max_pool2d_f32`.
    MaxPool2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        /// filter h, filter w, stride h, stride w, pad top, pad left.
        window: [usize; 6],
        act: [f32; 2],
    },
    /// kinglet-micro `mean_hw_f32` over the view `[outer, reduced, 1, channels]`.
    Mean { src: Loc, dst: Loc, view: Dims },
    /// kinglet-micro `hybrid::*`: int8 weights with per-channel (conv, depthwise) or one
    /// (fully connected) float scale; `scratch` is the int8 quantised input of one batch.
    Hybrid {
        src: Loc,
        dst: Loc,
        kind: HybridKind,
        weights: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
        act: [f32; 2],
        scratch: Loc,
    },
}

impl FloatStep {
    pub fn src(&self) -> Loc {
        match self {
            FloatStep::Conv2D { src, .. }
            | FloatStep::DepthwiseConv2D { src, .. }
            | FloatStep::FullyConnected { src, .. }
            | FloatStep::MaxPool2D { src, .. }
            | FloatStep::Mean { src, .. }
            | FloatStep::Hybrid { src, .. } => *src,
        }
    }

    pub fn dst(&self) -> Loc {
        match self {
            FloatStep::Conv2D { dst, .. }
            | FloatStep::DepthwiseConv2D { dst, .. }
            | FloatStep::FullyConnected { dst, .. }
            | FloatStep::MaxPool2D { dst, .. }
            | FloatStep::Mean { dst, .. }
            | FloatStep::Hybrid { dst, .. } => *dst,
        }
    }

    pub fn scratch(&self) -> Option<Loc> {
        match self {
            FloatStep::Conv2D { scratch, .. }
            | FloatStep::DepthwiseConv2D { scratch, .. }
            | FloatStep::FullyConnected { scratch, .. } => *scratch,
            FloatStep::Hybrid { scratch, .. } => Some(*scratch),
            FloatStep::MaxPool2D { .. } | FloatStep::Mean { .. } => None,
        }
    }

    /// Flash bytes of the step's constants.
    pub fn constant_bytes(&self) -> usize {
        match self {
            FloatStep::Conv2D { weights, bias, .. }
            | FloatStep::DepthwiseConv2D { weights, bias, .. }
            | FloatStep::FullyConnected { weights, bias, .. } => {
                weights.bytes() + bias.as_ref().map_or(0, FloatConst::bytes)
            }
            FloatStep::MaxPool2D { .. } | FloatStep::Mean { .. } => 0,
            FloatStep::Hybrid {
                weights,
                scales,
                bias,
                ..
            } => weights.len() + 4 * scales.len() + 4 * bias.as_ref().map_or(0, Vec::len),
        }
    }
}

/// Scratch f32 values a float conv/depthwise/FC needs to widen its float16 constants (0: none).
pub(crate) fn widened_len(weights: &FloatConst, bias: Option<&FloatConst>) -> usize {
    let w = if weights.is_f16() { weights.len() } else { 0 };
    let b = match bias {
        Some(b) if b.is_f16() => b.len(),
        _ => 0,
    };
    if w == 0 && b == 0 { 0 } else { w + b }
}

fn bits_array(out: &mut String, name: &str, values: &[f32]) {
    let _ = write!(out, "    static {name}: [f32; {}] = [", values.len());
    for (i, v) in values.iter().enumerate() {
        out.push_str(if i % 8 == 0 { "\n        " } else { " " });
        // Bit patterns: the values must survive the trip through source text exactly.
        let _ = write!(out, "f32::from_bits({:#010x}),", v.to_bits());
    }
    out.push_str("\n    ];\n");
}

fn int_array<T: std::fmt::Display>(out: &mut String, name: &str, ty: &str, values: &[T]) {
    let _ = write!(out, "    static {name}: [{ty}; {}] = [", values.len());
    for (i, v) in values.iter().enumerate() {
        out.push_str(if i % 24 == 0 { "\n        " } else { " " });
        let _ = write!(out, "{v},");
    }
    out.push_str("\n    ];\n");
}

fn const_array(out: &mut String, name: &str, c: &FloatConst) {
    match c {
        FloatConst::F32(v) => bits_array(out, name, v),
        FloatConst::F16(v) => int_array(out, name, "u16", v),
    }
}

fn act_expr(act: &[f32; 2]) -> String {
    format!(
        "ActivationF32 {{ min: f32::from_bits({:#010x}), max: f32::from_bits({:#010x}) }}",
        act[0].to_bits(),
        act[1].to_bits()
    )
}

/// Emits a filter's constants and the statements widening its float16 parts into `scratch`;
/// returns (statements, weights expression, bias expression).
fn filter_operands(
    consts: &mut String,
    p: &str,
    weights: &FloatConst,
    bias: Option<&FloatConst>,
) -> (String, String, String) {
    const_array(consts, &format!("{p}_W"), weights);
    if let Some(b) = bias {
        const_array(consts, &format!("{p}_B"), b);
    }
    let mut widen = String::new();
    if widened_len(weights, bias) > 0 {
        let w_len = if weights.is_f16() { weights.len() } else { 0 };
        let _ = write!(
            widen,
            "let (widened_w, widened_b) = scratch.split_at_mut({w_len});\n        "
        );
    }
    let w_expr = if weights.is_f16() {
        let _ = write!(
            widen,
            "kinglet_micro::half::dequantize_f16(&{p}_W, widened_w).map_err(|_| ShapeError)?;\n        "
        );
        "&*widened_w".to_owned()
    } else {
        format!("&{p}_W")
    };
    let b_expr = match bias {
        None => "None".to_owned(),
        Some(b) if b.is_f16() => {
            let _ = write!(
                widen,
                "kinglet_micro::half::dequantize_f16(&{p}_B, widened_b).map_err(|_| ShapeError)?;\n        "
            );
            "Some(&*widened_b)".to_owned()
        }
        Some(_) => format!("Some(&{p}_B)"),
    };
    if widened_len(weights, bias) > 0 && !weights.is_f16() {
        widen.push_str("let _ = widened_w;\n        ");
    }
    if widened_len(weights, bias) > 0 && !bias.is_some_and(FloatConst::is_f16) {
        widen.push_str("let _ = widened_b;\n        ");
    }
    (widen, w_expr, b_expr)
}

/// The kernel call(s) of one float step; `consts` receives its static arrays. Operands are
/// bound as `src`, `dst` and (when the step has one) `scratch`.
pub(crate) fn emit_call(consts: &mut String, p: &str, step: &FloatStep) -> String {
    match step {
        FloatStep::Conv2D {
            input,
            output,
            filter,
            geometry,
            transposed: true,
            weights,
            bias,
            act,
            ..
        } => {
            let (widen, w, b) = filter_operands(consts, p, weights, bias.as_ref());
            format!(
                "{widen}kinglet_m4::float_conv::conv2d_f32(\n            &kinglet_m4::float_conv::ConvF32 {{ geometry: {}, input: {input:?}, output: {output:?}, kernel: [{}, {}], filter: {w}, bias: {b}, act: [f32::from_bits({:#010x}), f32::from_bits({:#010x})] }},\n            src,\n            dst,\n        )?;",
                conv_params_expr(geometry),
                filter[1],
                filter[2],
                act[0].to_bits(),
                act[1].to_bits()
            )
        }
        FloatStep::Conv2D {
            input,
            output,
            filter,
            geometry,
            weights,
            bias,
            act,
            ..
        } => {
            let (widen, w, b) = filter_operands(consts, p, weights, bias.as_ref());
            format!(
                "{widen}kinglet_micro::conv2d::conv2d_f32(\n            &{},\n            {},\n            TensorRef::new(src, {}),\n            TensorRef::new({w}, {}),\n            {b},\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                conv_params_expr(geometry),
                act_expr(act),
                shape4(input),
                shape4(filter),
                shape4(output)
            )
        }
        FloatStep::DepthwiseConv2D {
            input,
            output,
            filter,
            geometry,
            depth_multiplier,
            weights,
            bias,
            act,
            ..
        } => {
            let (widen, w, b) = filter_operands(consts, p, weights, bias.as_ref());
            format!(
                "{widen}kinglet_micro::depthwise_conv2d::depthwise_conv2d_f32(\n            &kinglet_micro::depthwise_conv2d::DepthwiseParams {{ conv: {}, depth_multiplier: {depth_multiplier} }},\n            {},\n            TensorRef::new(src, {}),\n            TensorRef::new({w}, {}),\n            {b},\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                conv_params_expr(geometry),
                act_expr(act),
                shape4(input),
                shape4(filter),
                shape4(output)
            )
        }
        FloatStep::FullyConnected {
            batches,
            in_len,
            out_len,
            weights,
            bias,
            act,
            ..
        } if *batches == 1 && weights.is_f16() => {
            // One widened row at a time: scratch holds `in_len` values, not the matrix.
            const_array(consts, &format!("{p}_W"), weights);
            let bias_value = match bias {
                None => None,
                Some(b) => {
                    const_array(consts, &format!("{p}_B"), b);
                    Some(if b.is_f16() {
                        format!("kinglet_micro::half::f16_to_f32(*{p}_B.get(o).ok_or(ShapeError)?)")
                    } else {
                        format!("*{p}_B.get(o).ok_or(ShapeError)?")
                    })
                }
            };
            let bias_arg = match &bias_value {
                Some(v) => format!("let bias = [{v}];\n            "),
                None => String::new(),
            };
            format!(
                "if dst.len() != {out_len} {{\n            return Err(ShapeError);\n        }}\n        for (o, (row, out)) in {p}_W.chunks_exact({in_len}).zip(dst.iter_mut()).enumerate() {{\n            let _ = o;\n            kinglet_micro::half::dequantize_f16(row, scratch).map_err(|_| ShapeError)?;\n            {bias_arg}fully_connected::fully_connected_f32(\n                FcShape {{ batches: 1, in_features: {in_len}, out_features: 1 }},\n                {},\n                src,\n                scratch,\n                {},\n                core::slice::from_mut(out),\n            )\n            .map_err(|_| ShapeError)?;\n        }}",
                act_expr(act),
                if bias_value.is_some() {
                    "Some(&bias)"
                } else {
                    "None"
                }
            )
        }
        FloatStep::FullyConnected {
            batches,
            in_len,
            out_len,
            weights,
            bias,
            act,
            ..
        } => {
            let (widen, w, b) = filter_operands(consts, p, weights, bias.as_ref());
            format!(
                "{widen}fully_connected::fully_connected_f32(\n            FcShape {{ batches: {batches}, in_features: {in_len}, out_features: {out_len} }},\n            {},\n            src,\n            {w},\n            {b},\n            dst,\n        )\n        .map_err(|_| ShapeError)?;",
                act_expr(act)
            )
        }
        FloatStep::MaxPool2D {
            input,
            output,
            window: w,
            act,
            ..
        } => format!(
            "max_pool2d::max_pool2d_f32(\n            &PoolParams {{ filter_h: {}, filter_w: {}, stride_h: {}, stride_w: {}, pad_top: {}, pad_left: {} }},\n            {},\n            TensorRef::new(src, {}),\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
            w[5],
            act_expr(act),
            shape4(input),
            shape4(output)
        ),
        FloatStep::Mean { view, .. } => format!(
            "kinglet_micro::mean::mean_hw_f32(TensorRef::new(src, {}), dst).map_err(|_| ShapeError)?;",
            shape4(view)
        ),
        FloatStep::Hybrid {
            kind,
            weights,
            scales,
            bias,
            act,
            ..
        } => {
            int_array(consts, &format!("{p}_W"), "i8", weights);
            bits_array(consts, &format!("{p}_S"), scales);
            let b = match bias {
                Some(b) => {
                    bits_array(consts, &format!("{p}_B"), b);
                    format!("Some(&{p}_B)")
                }
                None => "None".to_owned(),
            };
            match kind {
                HybridKind::Conv2D {
                    input,
                    output,
                    filter,
                    geometry,
                } => format!(
                    "kinglet_micro::hybrid::conv2d_hybrid(\n            &{},\n            {},\n            TensorRef::new(src, {}),\n            TensorRef::new(&{p}_W, {}),\n            &{p}_S,\n            {b},\n            scratch,\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                    conv_params_expr(geometry),
                    act_expr(act),
                    shape4(input),
                    shape4(filter),
                    shape4(output)
                ),
                HybridKind::DepthwiseConv2D {
                    input,
                    output,
                    filter,
                    geometry,
                    depth_multiplier,
                } => format!(
                    "kinglet_micro::hybrid::depthwise_conv2d_hybrid(\n            &kinglet_micro::depthwise_conv2d::DepthwiseParams {{ conv: {}, depth_multiplier: {depth_multiplier} }},\n            {},\n            TensorRef::new(src, {}),\n            TensorRef::new(&{p}_W, {}),\n            &{p}_S,\n            {b},\n            scratch,\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                    conv_params_expr(geometry),
                    act_expr(act),
                    shape4(input),
                    shape4(filter),
                    shape4(output)
                ),
                HybridKind::FullyConnected {
                    batches,
                    in_len,
                    out_len,
                } => format!(
                    "kinglet_micro::hybrid::fully_connected_hybrid(\n            {batches},\n            {in_len},\n            {out_len},\n            {},\n            src,\n            &{p}_W,\n            {p}_S[0],\n            {b},\n            scratch,\n            dst,\n        )\n        .map_err(|_| ShapeError)?;",
                    act_expr(act)
                ),
            }
        }
    }
}
