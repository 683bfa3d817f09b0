//! Models in TFLite's 16×8 scheme (`kinglet quantize --scheme a16w8`: int16 activations,
//! int8 weights, int64 biases) in firmware. Every step calls the kinglet-micro `s16` kernel
//! kinglet-graph's host interpreter calls for the same op, with the constants its `Prepare`
//! derives (reference kernels: fully-connected layers requantise in double precision), so the
//! firmware's int16 outputs equal the host's. The C output carries ports of the same kernels
//! (`runtime-c`, `kl_*_s16`), integer arithmetic for integer arithmetic.
//!
//! Both schedules call the same kernels: kinglet-m4 has no int16-activation kernels yet.
//! Softmax's lookup tables are built here, with the host's `exp`, and stored in flash, so the
//! device never evaluates `exp`.

use std::fmt::Write as _;

use kinglet_micro::s16::softmax::{LUT_LEN, SoftmaxS16};
use kinglet_micro::{Shape4, TensorMut, TensorRef};

use crate::emit_rust::{array, conv_params_expr, pool_call, shape4};
use crate::program::{Dims, Loc, micro_conv_params, micro_pool_params};

/// Requantisation of an int16 convolution or depthwise convolution: a Q31 multiplier and a
/// shift per output channel, reduced to Q15 by the kernel (kinglet-micro `Quant16`).
#[derive(Clone, Debug, PartialEq)]
pub struct Quant16Data {
    pub multipliers: Vec<i32>,
    pub shifts: Vec<i32>,
    pub act_min: i32,
    pub act_max: i32,
}

impl Quant16Data {
    fn micro(&self) -> kinglet_micro::s16::Quant16<'_> {
        kinglet_micro::s16::Quant16 {
            multipliers: &self.multipliers,
            shifts: &self.shifts,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// One kernel call of an a16w8 model.
#[derive(Clone, Debug, PartialEq)]
pub enum S16Step {
    /// kinglet-micro `conv2d_s16`, or `depthwise_conv2d_s16` with a depth multiplier.
    Conv2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        /// stride h, stride w, dilation h, dilation w, pad top, pad left.
        geometry: [usize; 6],
        depth_multiplier: Option<usize>,
        weights: Vec<i8>,
        bias: Option<Vec<i64>>,
        requant: Quant16Data,
    },
    /// kinglet-micro `fully_connected_s16_double`: `scales` are `s_in · s_w[o] / s_out`, one
    /// per output.
    FullyConnected {
        src: Loc,
        dst: Loc,
        batches: usize,
        in_len: usize,
        out_len: usize,
        weights: Vec<i8>,
        bias: Option<Vec<i64>>,
        scales: Vec<f64>,
        act_min: i32,
        act_max: i32,
    },
    /// kinglet-micro `max_pool2d_s16` or (`average`) `average_pool2d_s16`.
    Pool2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        /// filter h, filter w, stride h, stride w, pad top, pad left.
        window: [usize; 6],
        average: bool,
        act_min: i32,
        act_max: i32,
    },
    /// kinglet-micro `mean_hw_s16` over the view `[outer, reduced, 1, channels]`;
    /// `multiplier` and `shift` are what it derives from `scales` (input, output), for C.
    Mean {
        src: Loc,
        dst: Loc,
        view: Dims,
        scales: [f32; 2],
        multiplier: i32,
        shift: i32,
    },
    /// kinglet-micro `softmax_s16` over `rows` rows of `depth`, its tables precomputed.
    Softmax {
        src: Loc,
        dst: Loc,
        rows: usize,
        depth: usize,
        exp_lut: Vec<i16>,
        one_over_one_plus_x_lut: Vec<i16>,
        input_multiplier: i32,
        input_left_shift: i32,
    },
}

impl S16Step {
    pub fn src(&self) -> Loc {
        match self {
            S16Step::Conv2D { src, .. }
            | S16Step::FullyConnected { src, .. }
            | S16Step::Pool2D { src, .. }
            | S16Step::Mean { src, .. }
            | S16Step::Softmax { src, .. } => *src,
        }
    }

    pub fn dst(&self) -> Loc {
        match self {
            S16Step::Conv2D { dst, .. }
            | S16Step::FullyConnected { dst, .. }
            | S16Step::Pool2D { dst, .. }
            | S16Step::Mean { dst, .. }
            | S16Step::Softmax { dst, .. } => *dst,
        }
    }

    /// Flash bytes of the step's constants (int64 biases: 8 bytes each).
    pub fn constant_bytes(&self) -> usize {
        let bias_bytes = |b: &Option<Vec<i64>>| 8 * b.as_ref().map_or(0, Vec::len);
        match self {
            S16Step::Conv2D {
                weights,
                bias,
                requant,
                ..
            } => {
                weights.len()
                    + bias_bytes(bias)
                    + 4 * (requant.multipliers.len() + requant.shifts.len())
            }
            S16Step::FullyConnected {
                weights,
                bias,
                scales,
                ..
            } => weights.len() + bias_bytes(bias) + 8 * scales.len(),
            S16Step::Pool2D { .. } | S16Step::Mean { .. } => 0,
            S16Step::Softmax {
                exp_lut,
                one_over_one_plus_x_lut,
                ..
            } => 2 * (exp_lut.len() + one_over_one_plus_x_lut.len()),
        }
    }
}

/// The step's softmax tables as kinglet-micro takes them.
fn softmax_tables(
    exp_lut: &[i16],
    one_over_one_plus_x_lut: &[i16],
    input_multiplier: i32,
    input_left_shift: i32,
) -> Option<SoftmaxS16> {
    Some(SoftmaxS16 {
        exp_lut: exp_lut.try_into().ok()?,
        one_over_one_plus_x_lut: one_over_one_plus_x_lut.try_into().ok()?,
        input_multiplier,
        input_left_shift,
    })
}

fn shape(d: Dims) -> Shape4 {
    Shape4::new(d[0], d[1], d[2], d[3])
}

/// Runs one step on the host (what the firmware runs, for [`crate::exec`]).
pub(crate) fn run(step: &S16Step, src: &[i16], dst: &mut [i16]) -> Result<(), String> {
    use kinglet_micro::s16;
    let r = match step {
        S16Step::Conv2D {
            input,
            output,
            filter,
            geometry,
            depth_multiplier: None,
            weights,
            bias,
            requant,
            ..
        } => s16::conv2d::conv2d_s16(
            &micro_conv_params(geometry),
            &requant.micro(),
            TensorRef::new(src, shape(*input)),
            TensorRef::new(weights, shape(*filter)),
            bias.as_deref(),
            TensorMut::new(dst, shape(*output)),
        ),
        S16Step::Conv2D {
            input,
            output,
            filter,
            geometry,
            depth_multiplier: Some(depth_multiplier),
            weights,
            bias,
            requant,
            ..
        } => s16::depthwise_conv2d::depthwise_conv2d_s16(
            &kinglet_micro::depthwise_conv2d::DepthwiseParams {
                conv: micro_conv_params(geometry),
                depth_multiplier: *depth_multiplier,
            },
            &requant.micro(),
            TensorRef::new(src, shape(*input)),
            TensorRef::new(weights, shape(*filter)),
            bias.as_deref(),
            TensorMut::new(dst, shape(*output)),
        ),
        S16Step::FullyConnected {
            batches,
            in_len,
            out_len,
            weights,
            bias,
            scales,
            act_min,
            act_max,
            ..
        } => s16::fully_connected::fully_connected_s16_double(
            kinglet_micro::fully_connected::FcShape {
                batches: *batches,
                in_features: *in_len,
                out_features: *out_len,
            },
            scales,
            *act_min,
            *act_max,
            src,
            weights,
            bias.as_deref(),
            dst,
        ),
        S16Step::Pool2D {
            input,
            output,
            window,
            average,
            act_min,
            act_max,
            ..
        } => {
            let pool = if *average {
                s16::average_pool2d::average_pool2d_s16
            } else {
                s16::max_pool2d::max_pool2d_s16
            };
            pool(
                &micro_pool_params(window),
                *act_min,
                *act_max,
                TensorRef::new(src, shape(*input)),
                TensorMut::new(dst, shape(*output)),
            )
        }
        S16Step::Mean { view, scales, .. } => s16::mean::mean_hw_s16(
            &kinglet_micro::mean::MeanQuant {
                input_scale: scales[0],
                input_zero_point: 0,
                output_scale: scales[1],
                output_zero_point: 0,
            },
            TensorRef::new(src, shape(*view)),
            dst,
        ),
        S16Step::Softmax {
            depth,
            exp_lut,
            one_over_one_plus_x_lut,
            input_multiplier,
            input_left_shift,
            ..
        } => {
            let tables = softmax_tables(
                exp_lut,
                one_over_one_plus_x_lut,
                *input_multiplier,
                *input_left_shift,
            )
            .ok_or_else(|| format!("softmax tables must hold {LUT_LEN} entries"))?;
            s16::softmax::softmax_s16(&tables, src, dst, *depth)
        }
    };
    r.map_err(|e| e.to_string())
}

/// An optional int64 bias as a constant; returns the kernel's bias argument.
fn rust_bias(consts: &mut String, p: &str, bias: Option<&[i64]>) -> String {
    match bias {
        Some(b) => {
            array(consts, &format!("{p}_B"), "i64", b);
            format!("Some(&{p}_B)")
        }
        None => "None".into(),
    }
}

/// The kernel call of one step; `consts` receives its static arrays. Operands are bound as
/// `src` and `dst`.
pub(crate) fn emit_rust_call(consts: &mut String, p: &str, step: &S16Step) -> String {
    match step {
        S16Step::Conv2D {
            input,
            output,
            filter,
            geometry,
            depth_multiplier,
            weights,
            bias,
            requant,
            ..
        } => {
            array(consts, &format!("{p}_W"), "i8", weights);
            let b = rust_bias(consts, p, bias.as_deref());
            array(consts, &format!("{p}_MULT"), "i32", &requant.multipliers);
            array(consts, &format!("{p}_SHIFT"), "i32", &requant.shifts);
            let (kernel, params) = match depth_multiplier {
                None => ("conv2d::conv2d_s16", conv_params_expr(geometry)),
                Some(m) => (
                    "depthwise_conv2d::depthwise_conv2d_s16",
                    format!(
                        "kinglet_micro::depthwise_conv2d::DepthwiseParams {{ conv: {}, depth_multiplier: {m} }}",
                        conv_params_expr(geometry)
                    ),
                ),
            };
            format!(
                "kinglet_micro::s16::{kernel}(\n            &{params},\n            &kinglet_micro::s16::Quant16 {{ multipliers: &{p}_MULT, shifts: &{p}_SHIFT, act_min: {}, act_max: {} }},\n            TensorRef::new(src, {}),\n            TensorRef::new(&{p}_W, {}),\n            {b},\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                requant.act_min,
                requant.act_max,
                shape4(input),
                shape4(filter),
                shape4(output)
            )
        }
        S16Step::FullyConnected {
            batches,
            in_len,
            out_len,
            weights,
            bias,
            scales,
            act_min,
            act_max,
            ..
        } => {
            array(consts, &format!("{p}_W"), "i8", weights);
            let b = rust_bias(consts, p, bias.as_deref());
            // Bit patterns: the scales must survive the trip through source text exactly.
            let bits: Vec<String> = (scales.iter())
                .map(|s| format!("f64::from_bits({:#018x})", s.to_bits()))
                .collect();
            array(consts, &format!("{p}_SCALE"), "f64", &bits);
            format!(
                "kinglet_micro::s16::fully_connected::fully_connected_s16_double(\n            FcShape {{ batches: {batches}, in_features: {in_len}, out_features: {out_len} }},\n            &{p}_SCALE,\n            {act_min},\n            {act_max},\n            src,\n            &{p}_W,\n            {b},\n            dst,\n        )\n        .map_err(|_| ShapeError)?;"
            )
        }
        S16Step::Pool2D {
            input,
            output,
            window: w,
            average,
            act_min,
            act_max,
            ..
        } => pool_call(
            if *average {
                "kinglet_micro::s16::average_pool2d::average_pool2d_s16"
            } else {
                "kinglet_micro::s16::max_pool2d::max_pool2d_s16"
            },
            w,
            *act_min,
            *act_max,
            input,
            output,
        ),
        S16Step::Mean { view, scales, .. } => format!(
            "kinglet_micro::s16::mean::mean_hw_s16(\n            &kinglet_micro::mean::MeanQuant {{ input_scale: f32::from_bits({:#x}), input_zero_point: 0, output_scale: f32::from_bits({:#x}), output_zero_point: 0 }},\n            TensorRef::new(src, {}),\n            dst,\n        )\n        .map_err(|_| ShapeError)?;",
            scales[0].to_bits(),
            scales[1].to_bits(),
            shape4(view)
        ),
        S16Step::Softmax {
            depth,
            exp_lut,
            one_over_one_plus_x_lut,
            input_multiplier,
            input_left_shift,
            ..
        } => {
            let mut table = String::new();
            for (name, lut) in [
                ("exp_lut", exp_lut),
                ("one_over_one_plus_x_lut", one_over_one_plus_x_lut),
            ] {
                let values: Vec<String> = lut.iter().map(i16::to_string).collect();
                let _ = write!(table, "{name}: [{}], ", values.join(", "));
            }
            let _ = writeln!(
                consts,
                "    static {p}_SOFTMAX: kinglet_micro::s16::softmax::SoftmaxS16 = kinglet_micro::s16::softmax::SoftmaxS16 {{ {table}input_multiplier: {input_multiplier}, input_left_shift: {input_left_shift} }};"
            );
            format!(
                "kinglet_micro::s16::softmax::softmax_s16(&{p}_SOFTMAX, src, dst, {depth}).map_err(|_| ShapeError)?;"
            )
        }
    }
}

/// An optional int64 bias as a C constant; returns the kernel's bias argument.
fn c_bias(consts: &mut String, p: &str, bias: Option<&[i64]>) -> String {
    match bias {
        Some(b) => {
            // INT64_C keeps every literal in range; INT64_MIN has no literal of its own.
            let values: Vec<String> = (b.iter())
                .map(|&v| {
                    if v == i64::MIN {
                        "INT64_MIN".to_owned()
                    } else {
                        format!("INT64_C({v})")
                    }
                })
                .collect();
            crate::emit_c::array(consts, "int64_t", &format!("{p}_b"), &values);
            format!("{p}_b")
        }
        None => "NULL".into(),
    }
}

/// The C kernel call of one step (`src`/`dst`: int16 pointer expressions); `consts` receives
/// its constants.
pub(crate) fn emit_c_call(
    consts: &mut String,
    p: &str,
    step: &S16Step,
    src: &str,
    dst: &str,
) -> String {
    use crate::emit_c::{array, conv_dims, dims};
    match step {
        S16Step::Conv2D {
            input,
            output,
            filter,
            geometry,
            depth_multiplier,
            weights,
            bias,
            requant: r,
            ..
        } => {
            array(consts, "int8_t", &format!("{p}_w"), weights);
            let b = c_bias(consts, p, bias.as_deref());
            array(consts, "int32_t", &format!("{p}_mult"), &r.multipliers);
            array(consts, "int32_t", &format!("{p}_shift"), &r.shifts);
            let _ = writeln!(
                consts,
                "static const kl_requant16 {p}_rq = {{ {p}_mult, {p}_shift, {}, {} }};",
                r.act_min, r.act_max
            );
            conv_dims(consts, p, input, filter, output, geometry);
            // A plain convolution is the depthwise loop's transpose: one call each.
            match depth_multiplier {
                None => format!(
                    "kl_conv2d_s16({src}, {p}_in, {p}_w, {p}_fd, {b}, {p}_out, {p}_g, &{p}_rq, {dst});"
                ),
                Some(m) => format!(
                    "kl_depthwise_conv2d_s16({src}, {p}_in, {p}_w, {p}_fd, {b}, {p}_out, {p}_g, {m}, &{p}_rq, {dst});"
                ),
            }
        }
        S16Step::FullyConnected {
            batches,
            in_len,
            out_len,
            weights,
            bias,
            scales,
            act_min,
            act_max,
            ..
        } => {
            array(consts, "int8_t", &format!("{p}_w"), weights);
            let b = c_bias(consts, p, bias.as_deref());
            // `{:e}` prints the shortest decimal that reads back as the same double.
            let scales: Vec<String> = scales.iter().map(|s| format!("{s:e}")).collect();
            array(consts, "double", &format!("{p}_scale"), &scales);
            format!(
                "kl_fully_connected_s16({src}, {batches}, {in_len}, {out_len}, {p}_w, {b}, {p}_scale, {act_min}, {act_max}, {dst});"
            )
        }
        S16Step::Pool2D {
            input,
            output,
            window,
            average,
            act_min,
            act_max,
            ..
        } => {
            dims(consts, &format!("{p}_in"), input);
            dims(consts, &format!("{p}_out"), output);
            dims(consts, &format!("{p}_win"), window);
            format!(
                "kl_pool2d_s16({src}, {p}_in, {p}_out, {p}_win, {}, {act_min}, {act_max}, {dst});",
                i32::from(*average)
            )
        }
        S16Step::Mean {
            view,
            multiplier,
            shift,
            ..
        } => format!(
            "kl_mean_s16({src}, {}, {}, {}, {multiplier}, {shift}, {dst});",
            view[0],
            view[1] * view[2],
            view[3]
        ),
        S16Step::Softmax {
            rows,
            depth,
            exp_lut,
            one_over_one_plus_x_lut,
            input_multiplier,
            input_left_shift,
            ..
        } => {
            array(consts, "int16_t", &format!("{p}_exp"), exp_lut);
            array(
                consts,
                "int16_t",
                &format!("{p}_recip"),
                one_over_one_plus_x_lut,
            );
            format!(
                "kl_softmax_s16({src}, {rows}, {depth}, {p}_exp, {p}_recip, {input_multiplier}, {input_left_shift}, {dst});"
            )
        }
    }
}
