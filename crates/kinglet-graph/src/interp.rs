//! Host executor: runs a graph op by op with kinglet-micro kernels on slices of one arena
//! laid out by [`ArenaPlan`]. All quantisation arithmetic (multipliers, shifts, clamp ranges,
//! softmax tables) is derived once in [`Interpreter::new`], as TFLite's `Prepare` does.

use std::ops::Range;

mod conv1d;
mod s16;

use kinglet_micro as km;
use kinglet_micro::{KernelError, Shape4, TensorMut, TensorRef};

use crate::error::GraphError;
use crate::graph::{Activation, DType, Graph, OpKind, Padding, QuantParams, Tensor, TensorId};
use crate::plan::{ARENA_ALIGN, ArenaPlan};

/// Element types callers can feed and read.
pub trait Element: Copy + Default {
    const DTYPE: DType;
    fn read_le(bytes: &[u8]) -> Self;
    fn write_le(self, out: &mut [u8]);
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; size_of::<$t>()];
                a.copy_from_slice(&b[..size_of::<$t>()]);
                <$t>::from_le_bytes(a)
            }
            fn write_le(self, out: &mut [u8]) {
                out[..size_of::<$t>()].copy_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, DType::F32);
element!(i8, DType::I8);
element!(u8, DType::U8);
element!(i16, DType::I16);
element!(i32, DType::I32);

/// Constant data copied into typed, aligned storage once.
#[derive(Clone, Debug)]
enum Const {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

impl Const {
    fn from_tensor(t: &Tensor) -> Option<Const> {
        let d = t.data.as_ref()?;
        Some(match t.dtype {
            DType::F32 => Const::F32(d.chunks_exact(4).map(f32::read_le).collect()),
            DType::I32 => Const::I32(d.chunks_exact(4).map(i32::read_le).collect()),
            DType::I8 | DType::I4 | DType::I2 => Const::I8(t.weights_i8()?),
            DType::U8 => Const::U8(d.clone()),
            // 16×8 constants are read by the int16 preparation itself.
            DType::F16 | DType::I16 | DType::I64 => return None,
        })
    }
}

/// Which kernels of the TFLite interpreter (`ai-edge-litert`) kinglet reproduces bit for bit.
/// The three configurations differ only in how some ops requantise (see kinglet-micro's
/// crate docs for the table):
///
/// * [`TfliteKernels::Default`]: what `Interpreter(model_path=...)` runs out of the box, i.e.
///   the XNNPACK delegate (single-precision, round-half-even requantisation of conv,
///   depthwise and fully connected; XNNPACK's mean and int8 requantize). The seed's published
///   accuracies (Big-3IN 91.28 %, Big-1IN 90.23 %) were measured with it.
/// * [`TfliteKernels::Builtin`]: `OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`, TFLite's
///   optimized builtin kernels (fixed-point multipliers everywhere).
/// * [`TfliteKernels::Reference`]: `OpResolverType.BUILTIN_REF`, the reference kernels
///   (fixed-point conv, double-precision fully connected, quantize rounding ties away from
///   zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TfliteKernels {
    /// The interpreter's default configuration (XNNPACK delegate).
    Default,
    /// Optimized builtin kernels without delegates.
    Builtin,
    /// Reference kernels.
    Reference,
}

impl TfliteKernels {
    /// Every configuration, in CLI order.
    pub const ALL: [TfliteKernels; 3] = [
        TfliteKernels::Default,
        TfliteKernels::Builtin,
        TfliteKernels::Reference,
    ];

    /// CLI spelling: `default`, `builtin`, `reference`.
    pub fn name(self) -> &'static str {
        match self {
            TfliteKernels::Default => "default",
            TfliteKernels::Builtin => "builtin",
            TfliteKernels::Reference => "reference",
        }
    }
}

impl std::fmt::Display for TfliteKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TfliteKernels {
    type Err = GraphError;
    fn from_str(s: &str) -> Result<Self, GraphError> {
        match s {
            "default" | "xnnpack" | "auto" => Ok(TfliteKernels::Default),
            "builtin" | "optimized" => Ok(TfliteKernels::Builtin),
            "reference" | "ref" => Ok(TfliteKernels::Reference),
            other => Err(GraphError::Invalid(format!(
                "unknown TFLite kernel set '{other}' (use default, builtin or reference)"
            ))),
        }
    }
}

/// Output requantisation of a conv-like op, as one of kinglet-micro's [`km::Requant`] variants.
#[derive(Clone, Debug)]
enum RequantPrep {
    FixedPoint {
        multipliers: Vec<i32>,
        shifts: Vec<i32>,
    },
    FixedPointTiesUp {
        multipliers: Vec<i32>,
        shifts: Vec<i32>,
    },
    Double(Vec<f64>),
    Float32(Vec<f32>),
}

/// Requantisation of a conv/depthwise/FC output, computed at prepare time.
#[derive(Clone, Debug)]
struct QuantPrep {
    input_offset: i32,
    filter_offset: i32,
    output_offset: i32,
    requant: RequantPrep,
    act_min: i32,
    act_max: i32,
}

impl QuantPrep {
    fn params(&self) -> km::QuantParams<'_> {
        km::QuantParams {
            input_offset: self.input_offset,
            filter_offset: self.filter_offset,
            output_offset: self.output_offset,
            requant: match &self.requant {
                RequantPrep::FixedPoint {
                    multipliers,
                    shifts,
                } => km::Requant::new(multipliers, shifts),
                RequantPrep::FixedPointTiesUp {
                    multipliers,
                    shifts,
                } => km::Requant::fixed_point_ties_up(multipliers, shifts),
                RequantPrep::Double(s) => km::Requant::double(s),
                RequantPrep::Float32(s) => km::Requant::float32(s),
            },
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// Per-input (scale, zero point), then the output's scale and zero point.
type ConcatQuant = (Vec<(f32, i32)>, f32, i32);

#[derive(Clone, Debug)]
enum Kernel {
    /// 8-bit 1D conv on the host fast path (possibly with a fused max pool).
    Conv1d {
        plan: Box<conv1d::Conv1dPlan>,
        quant: QuantPrep,
        /// Where the result goes: the conv's output, or the fused pool's.
        output: TensorId,
    },
    /// An op whose work a previous op does (a max pool fused into its conv, or a reshape
    /// between them).
    Fused,
    /// A max pool fused into its conv, which left the pooled values at the start of its own
    /// output buffer: copy them to the pool's output.
    CopyPooled {
        from: TensorId,
        len: usize,
    },
    Conv {
        params: km::ConvParams,
        filter: Const,
        filter_shape: Shape4,
        bias: Option<Const>,
        quant: Option<QuantPrep>,
        act: km::ActivationF32,
    },
    Depthwise {
        params: km::depthwise_conv2d::DepthwiseParams,
        filter: Const,
        filter_shape: Shape4,
        bias: Option<Const>,
        quant: Option<QuantPrep>,
        act: km::ActivationF32,
    },
    FullyConnected {
        shape: km::fully_connected::FcShape,
        weights: Const,
        bias: Option<Const>,
        quant: Option<QuantPrep>,
        act: km::ActivationF32,
    },
    MaxPool {
        params: km::PoolParams,
        act_min: i32,
        act_max: i32,
        act: km::ActivationF32,
    },
    AvgPool {
        params: km::PoolParams,
        act_min: i32,
        act_max: i32,
        act: km::ActivationF32,
    },
    Mean {
        quant: Option<km::mean::MeanQuant>,
        variant: km::mean::MeanVariant,
        /// The input viewed as [outer, reduced, 1, inner].
        view: Shape4,
    },
    Concat {
        outer: usize,
        row_lens: Vec<usize>,
        quant: Option<ConcatQuant>,
    },
    Add {
        quant: Option<km::add::AddParams>,
        act: km::ActivationF32,
        /// Constant operands (e.g. a broadcast bias), by input position.
        constants: [Option<Const>; 2],
    },
    Copy,
    Pad {
        before: [usize; 4],
        after: [usize; 4],
        zero_point: i32,
    },
    Softmax {
        lut: Option<Box<km::softmax::SoftmaxLut>>,
        quant: Option<km::softmax::SoftmaxQuant>,
        beta: f32,
        depth: usize,
    },
    QuantizeFromF32 {
        scale: f32,
        zero_point: i32,
        rounding: km::quantize::QuantizeRounding,
    },
    Requantize {
        params: km::quantize::RequantizeParams,
    },
    RequantizeXnnpack {
        params: km::quantize::XnnpackRequantize,
    },
    Dequantize {
        scale: f32,
        zero_point: i32,
    },
    /// An op of the 16×8 scheme (int16 activations).
    S16(Box<s16::Kernel16>),
    /// Dynamic-range op: float activations, int8 weights with per-channel (conv, depthwise)
    /// or per-tensor (fully connected) scales.
    Hybrid {
        op: HybridOp,
        filter: Vec<i8>,
        filter_shape: Shape4,
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
        act: km::ActivationF32,
    },
}

#[derive(Clone, Debug)]
enum HybridOp {
    Conv(km::ConvParams),
    Depthwise(km::depthwise_conv2d::DepthwiseParams),
    FullyConnected(km::fully_connected::FcShape),
}

#[derive(Clone, Debug)]
struct Prepared {
    kernel: Kernel,
    /// Dtype of the first input: selects the kernel instantiation.
    dtype: DType,
    out_dtype: DType,
    /// NHWC shapes (rank ≤ 4 padded with leading 1s) of inputs and output.
    in_shapes: Vec<Shape4>,
    out_shape: Shape4,
    inputs: Vec<TensorId>,
    output: TensorId,
}

/// Runs a graph on the host. Owns a copy of the graph, its plan and an arena of exactly
/// `plan().arena_bytes()` bytes.
pub struct Interpreter {
    graph: Graph,
    kernels: TfliteKernels,
    plan: ArenaPlan,
    ops: Vec<Prepared>,
    /// 16-byte words so that every planned offset is aligned for f32/i32 views.
    arena: Vec<u128>,
}

fn shape4(shape: &[usize]) -> Result<Shape4, String> {
    if shape.len() > 4 {
        return Err(format!(
            "rank {} > 4 is not supported by the kernels ({shape:?})",
            shape.len()
        ));
    }
    let mut d = [1usize; 4];
    d[4 - shape.len()..].copy_from_slice(shape);
    Ok(Shape4::from_dims(d))
}

fn quant1(t: &Tensor) -> Result<(f32, i32), String> {
    match &t.quant {
        Some(q) if q.is_per_tensor() => Ok((q.scale[0], q.zero_point[0])),
        Some(_) => Err(format!("tensor '{}' must be quantised per tensor", t.name)),
        None => Err(format!("tensor '{}' has no quantisation", t.name)),
    }
}

fn fused(a: Activation) -> km::FusedActivation {
    match a {
        Activation::None => km::FusedActivation::None,
        Activation::Relu => km::FusedActivation::Relu,
        Activation::Relu6 => km::FusedActivation::Relu6,
    }
}

fn type_range(d: DType) -> (i32, i32) {
    match d {
        DType::I8 => (-128, 127),
        DType::U8 => (0, 255),
        DType::I16 => (-32768, 32767),
        _ => (i32::MIN, i32::MAX),
    }
}

fn kerr(e: KernelError) -> String {
    e.to_string()
}

fn pad_kind(p: Padding) -> km::PaddingKind {
    match p {
        Padding::Same => km::PaddingKind::Same,
        Padding::Valid => km::PaddingKind::Valid,
    }
}

/// Which conv-like op is being prepared (they requantise differently per configuration).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Weighted {
    Conv,
    Depthwise { dilated: bool },
    FullyConnected,
}

fn prepare_op(graph: &Graph, index: usize, kernels: TfliteKernels) -> Result<Prepared, String> {
    let op = &graph.ops[index];
    let x = graph.tensor(op.inputs[0]);
    let out = graph.tensor(op.outputs[0]);
    let in_shapes: Vec<Shape4> = op
        .inputs
        .iter()
        .map(|t| shape4(&graph.tensor(*t).shape))
        .collect::<Result<_, _>>()?;
    let out_shape = shape4(&out.shape)?;
    if x.dtype == DType::I16 || out.dtype == DType::I16 {
        return Ok(Prepared {
            kernel: Kernel::S16(Box::new(s16::prepare(graph, op, &in_shapes, kernels)?)),
            dtype: x.dtype,
            out_dtype: out.dtype,
            in_shapes,
            out_shape,
            inputs: op.inputs.clone(),
            output: op.outputs[0],
        });
    }
    let quantized = x.dtype.is_quantized_integer();
    if !matches!(x.dtype, DType::F32 | DType::I8 | DType::U8) {
        return Err(format!("input type {} is not executable", x.dtype));
    }
    let act_f32 = km::ActivationF32::from_fused(fused(op.kind.activation()));
    let act_q = |act: Activation| -> Result<(i32, i32), String> {
        let (s, z) = quant1(out)?;
        let (lo, hi) = type_range(out.dtype);
        Ok(km::quant::activation_range_quantized(
            fused(act),
            s,
            z,
            lo,
            hi,
        ))
    };
    let constant = |pos: usize, what: &str| -> Result<Const, String> {
        let t = graph.tensor(op.inputs[pos]);
        if !t.is_constant() {
            return Err(format!("{what} '{}' must be a constant", t.name));
        }
        Const::from_tensor(t)
            .ok_or_else(|| format!("{what} '{}' has unsupported type {}", t.name, t.dtype))
    };
    let bias = || -> Result<Option<Const>, String> {
        if op.inputs.len() > 2 {
            constant(2, "bias").map(Some)
        } else {
            Ok(None)
        }
    };
    // Requantisation of conv-like ops in the chosen kernel configuration.
    let weighted_quant =
        |weights: &Tensor, channels: usize, kind: Weighted| -> Result<Option<QuantPrep>, String> {
            if !quantized {
                return Ok(None);
            }
            let (in_s, in_z) = quant1(x)?;
            let (out_s, out_z) = quant1(out)?;
            let wq: &QuantParams = weights
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
            let (act_min, act_max) = act_q(op.kind.activation())?;
            let n = wq.scale.len();
            // XNNPACK declines dilated uint8 depthwise convs; TFLite's builtin kernel runs them.
            // XNNPACK declines int4 convolution filters too (it takes int4 FC weights); TFLite's
            // builtin kernels run those layers.
            let int4_conv = weights.dtype == DType::I4 && kind != Weighted::FullyConnected;
            let xnnpack = kernels == TfliteKernels::Default
                && !(x.dtype == DType::U8 && kind == Weighted::Depthwise { dilated: true })
                && !int4_conv;
            let builtin = kernels == TfliteKernels::Builtin
                || (kernels == TfliteKernels::Default && !xnnpack);
            let fc_reference =
                kernels == TfliteKernels::Reference && kind == Weighted::FullyConnected;
            let requant = if xnnpack {
                let mut s = vec![0f32; n];
                km::quant::xnnpack_scales(in_s, &wq.scale, out_s, &mut s).map_err(kerr)?;
                RequantPrep::Float32(s)
            } else if fc_reference {
                let mut s = vec![0f64; n];
                km::quant::fc_reference_scales(in_s, &wq.scale, out_s, &mut s).map_err(kerr)?;
                RequantPrep::Double(s)
            } else if n == 1 && (x.dtype == DType::U8 || kind == Weighted::FullyConnected) {
                // TFLite's per-tensor formula (scale product rounded to f32 first).
                let (m, s) =
                    km::quant::legacy_output_multiplier(in_s, wq.scale[0], out_s).map_err(kerr)?;
                RequantPrep::FixedPoint {
                    multipliers: vec![m],
                    shifts: vec![s],
                }
            } else {
                let mut m = vec![0; channels];
                let mut s = vec![0; channels];
                km::quant::conv_output_multipliers(in_s, &wq.scale, out_s, &mut m, &mut s)
                    .map_err(kerr)?;
                // The optimized per-channel FC runs on ruy, whose x86 kernels round the final
                // shift's ties up; so does TFLite's optimized per-channel depthwise kernel
                // (seen first on int4 filters, where 100 of 100 windows differed without it,
                // then on an int8 depthwise layer fed by int4 convolutions).
                let ties_up = match kind {
                    Weighted::FullyConnected | Weighted::Depthwise { .. } => true,
                    Weighted::Conv => false,
                };
                if builtin && ties_up {
                    RequantPrep::FixedPointTiesUp {
                        multipliers: m,
                        shifts: s,
                    }
                } else {
                    RequantPrep::FixedPoint {
                        multipliers: m,
                        shifts: s,
                    }
                }
            };
            Ok(Some(QuantPrep {
                input_offset: -in_z,
                filter_offset: -wq.zero_point[0],
                output_offset: out_z,
                requant,
                act_min,
                act_max,
            }))
        };
    let window = |filter_h: usize,
                  filter_w: usize,
                  stride: crate::Hw,
                  dilation: crate::Hw,
                  padding: Padding| {
        window_params(in_shapes[0], filter_h, filter_w, stride, dilation, padding)
    };
    let pool_quant = |act: Activation| -> Result<(i32, i32), String> {
        if quantized { act_q(act) } else { Ok((0, 0)) }
    };
    if let Some(kernel) = prepare_hybrid(graph, op, &in_shapes, act_f32)? {
        return Ok(Prepared {
            kernel,
            dtype: x.dtype,
            out_dtype: out.dtype,
            in_shapes,
            out_shape,
            inputs: op.inputs.clone(),
            output: op.outputs[0],
        });
    }
    let kernel = match &op.kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            activation: _,
        } => {
            let w = graph.tensor(op.inputs[1]);
            let fs = shape4(&w.shape)?;
            let quant = weighted_quant(w, fs.n, Weighted::Conv)?;
            let params = window(fs.h, fs.w, *stride, *dilation, *padding)?;
            let filter = constant(1, "filter")?;
            let bias = bias()?;
            let fast = match (&quant, &filter, &bias) {
                (Some(q), Const::I8(f), None | Some(Const::I32(_))) => conv1d::Conv1dPlan::new(
                    in_shapes[0],
                    fs,
                    out_shape,
                    &params,
                    conv1d::Conv1dWeights {
                        filter: f,
                        bias: i32_bias(&bias)?,
                        filter_offset: q.filter_offset,
                    },
                    q.input_offset,
                    q.output_offset,
                    q.act_min,
                    q.act_max,
                ),
                (Some(q), Const::U8(f), None | Some(Const::I32(_))) => conv1d::Conv1dPlan::new(
                    in_shapes[0],
                    fs,
                    out_shape,
                    &params,
                    conv1d::Conv1dWeights {
                        filter: f,
                        bias: i32_bias(&bias)?,
                        filter_offset: q.filter_offset,
                    },
                    q.input_offset,
                    q.output_offset,
                    q.act_min,
                    q.act_max,
                ),
                _ => None,
            };
            // The fast path also needs a valid requantisation (same check as the kernels).
            match (fast, quant) {
                (Some(mut plan), Some(q)) if q.params().requant.check(fs.n).is_ok() => {
                    plan.prepare_simd(&q.params().requant);
                    Kernel::Conv1d {
                        plan: Box::new(plan),
                        quant: q,
                        output: op.outputs[0],
                    }
                }
                (_, quant) => Kernel::Conv {
                    params,
                    filter,
                    filter_shape: fs,
                    bias,
                    quant,
                    act: act_f32,
                },
            }
        }
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            activation: _,
        } => {
            let w = graph.tensor(op.inputs[1]);
            let fs = shape4(&w.shape)?;
            let dilated = dilation.h != 1 || dilation.w != 1;
            let quant = weighted_quant(w, fs.c, Weighted::Depthwise { dilated })?;
            let conv = window(fs.h, fs.w, *stride, *dilation, *padding)?;
            Kernel::Depthwise {
                params: km::depthwise_conv2d::DepthwiseParams {
                    conv,
                    depth_multiplier: *depth_multiplier,
                },
                filter: constant(1, "filter")?,
                filter_shape: fs,
                bias: bias()?,
                quant,
                act: act_f32,
            }
        }
        OpKind::FullyConnected { .. } => {
            let w = graph.tensor(op.inputs[1]);
            let (out_features, in_features) = (w.shape[0], w.shape[1]);
            let quant = weighted_quant(w, out_features, Weighted::FullyConnected)?;
            Kernel::FullyConnected {
                shape: km::fully_connected::FcShape {
                    batches: x.elements() / in_features,
                    in_features,
                    out_features,
                },
                weights: constant(1, "weights")?,
                bias: bias()?,
                quant,
                act: act_f32,
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
            let params = pool_params(in_shapes[0], *filter, *stride, *padding)?;
            let (act_min, act_max) = pool_quant(*activation)?;
            if matches!(op.kind, OpKind::MaxPool2D { .. }) {
                Kernel::MaxPool {
                    params,
                    act_min,
                    act_max,
                    act: act_f32,
                }
            } else {
                Kernel::AvgPool {
                    params,
                    act_min,
                    act_max,
                    act: act_f32,
                }
            }
        }
        OpKind::Mean { axes, .. } => {
            // Any contiguous run of axes is a spatial mean of the view [outer, reduced, 1,
            // inner]: e.g. axes [1, 2] of NHWC, or axis [1] of a [n, time, c] signal.
            let view = mean_view(&x.shape, axes)?;
            let quant = if quantized {
                let (is, iz) = quant1(x)?;
                let (os, oz) = quant1(out)?;
                Some(km::mean::MeanQuant {
                    input_scale: is,
                    input_zero_point: iz,
                    output_scale: os,
                    output_zero_point: oz,
                })
            } else {
                None
            };
            let variant = if kernels == TfliteKernels::Default {
                km::mean::MeanVariant::Xnnpack
            } else {
                km::mean::MeanVariant::Reference
            };
            Kernel::Mean {
                quant,
                variant,
                view,
            }
        }
        OpKind::Concatenation { axis, activation } => {
            if *activation != Activation::None {
                return Err("a fused activation on CONCATENATION is not executable".into());
            }
            let outer: usize = x.shape[..*axis].iter().product();
            let row_lens = op
                .inputs
                .iter()
                .map(|t| graph.tensor(*t).shape[*axis..].iter().product())
                .collect();
            let quant = if quantized {
                let ins = op
                    .inputs
                    .iter()
                    .map(|t| quant1(graph.tensor(*t)))
                    .collect::<Result<Vec<_>, _>>()?;
                let (os, oz) = quant1(out)?;
                Some((ins, os, oz))
            } else {
                None
            };
            Kernel::Concat {
                outer,
                row_lens,
                quant,
            }
        }
        OpKind::Add { activation } => {
            let quant = if quantized {
                let q = |t: &Tensor| {
                    quant1(t).map(|(scale, zero_point)| km::add::QuantScale { scale, zero_point })
                };
                let (lo, hi) = act_q(*activation)?;
                Some(
                    km::add::AddParams::new(q(x)?, q(graph.tensor(op.inputs[1]))?, q(out)?, lo, hi)
                        .map_err(kerr)?,
                )
            } else {
                None
            };
            let operand = |pos: usize| -> Result<Option<Const>, String> {
                let t = graph.tensor(op.inputs[pos]);
                if t.is_constant() {
                    constant(pos, "operand").map(Some)
                } else {
                    Ok(None)
                }
            };
            Kernel::Add {
                quant,
                act: act_f32,
                constants: [operand(0)?, operand(1)?],
            }
        }
        OpKind::Reshape { .. } => Kernel::Copy,
        OpKind::Pad { paddings } => {
            let (before, after) = pad_widths(paddings)?;
            let zero_point = if quantized { quant1(x)?.1 } else { 0 };
            Kernel::Pad {
                before,
                after,
                zero_point,
            }
        }
        OpKind::Softmax { beta } => {
            let depth = out.shape.last().copied().unwrap_or(1);
            if quantized {
                let (is, _) = quant1(x)?;
                let (os, oz) = quant1(out)?;
                Kernel::Softmax {
                    lut: Some(Box::new(km::softmax::SoftmaxLut::new(is, *beta))),
                    quant: Some(km::softmax::SoftmaxQuant {
                        output_scale: os,
                        output_zero_point: oz,
                    }),
                    beta: *beta,
                    depth,
                }
            } else {
                Kernel::Softmax {
                    lut: None,
                    quant: None,
                    beta: *beta,
                    depth,
                }
            }
        }
        OpKind::Quantize => {
            let (os, oz) = quant1(out)?;
            if x.dtype == DType::F32 {
                Kernel::QuantizeFromF32 {
                    scale: os,
                    zero_point: oz,
                    rounding: if kernels == TfliteKernels::Reference {
                        km::quantize::QuantizeRounding::DivideTiesAway
                    } else {
                        km::quantize::QuantizeRounding::ReciprocalTiesEven
                    },
                }
            } else if let Some(params) = (kernels == TfliteKernels::Default
                && x.dtype == DType::I8
                && out.dtype == DType::I8)
                .then(|| quant1(x).ok())
                .flatten()
                // XNNPACK declines scale ratios outside [1/256, 128]; TFLite's kernel runs them.
                .and_then(|(is, iz)| km::quantize::XnnpackRequantize::new(is, iz, os, oz).ok())
            {
                Kernel::RequantizeXnnpack { params }
            } else {
                let (is, iz) = quant1(x)?;
                let (multiplier, shift) =
                    km::quantize::requantize_multiplier(is, os).map_err(kerr)?;
                Kernel::Requantize {
                    params: km::quantize::RequantizeParams {
                        input_zero_point: iz,
                        output_zero_point: oz,
                        multiplier,
                        shift,
                    },
                }
            }
        }
        OpKind::Dequantize => {
            let (scale, zero_point) = quant1(x)?;
            Kernel::Dequantize { scale, zero_point }
        }
    };
    Ok(Prepared {
        kernel,
        dtype: x.dtype,
        out_dtype: out.dtype,
        in_shapes,
        out_shape,
        inputs: op.inputs.clone(),
        output: op.outputs[0],
    })
}

/// Pad's `(before, after)` widths as 4D arrays (leading dimensions unpadded).
fn pad_widths(paddings: &[[usize; 2]]) -> Result<([usize; 4], [usize; 4]), String> {
    let r = paddings.len();
    if r > 4 {
        return Err(format!("rank {r} > 4"));
    }
    let (mut before, mut after) = ([0; 4], [0; 4]);
    for (i, [b, a]) in paddings.iter().enumerate() {
        before[4 - r + i] = *b;
        after[4 - r + i] = *a;
    }
    Ok((before, after))
}

/// Window, stride and leading padding of a pool over an NHWC input.
fn pool_params(
    input: Shape4,
    filter: crate::Hw,
    stride: crate::Hw,
    padding: Padding,
) -> Result<km::PoolParams, String> {
    let c = window_params(input, filter.h, filter.w, stride, crate::Hw::ONE, padding)?;
    Ok(km::PoolParams {
        filter_h: filter.h,
        filter_w: filter.w,
        stride_h: stride.h,
        stride_w: stride.w,
        pad_top: c.pad_top,
        pad_left: c.pad_left,
    })
}

/// Stride, dilation and leading padding of a window over an NHWC input.
fn window_params(
    input: Shape4,
    filter_h: usize,
    filter_w: usize,
    stride: crate::Hw,
    dilation: crate::Hw,
    padding: Padding,
) -> Result<km::ConvParams, String> {
    let gh = km::axis_geometry(pad_kind(padding), input.h, filter_h, stride.h, dilation.h)
        .map_err(kerr)?;
    let gw = km::axis_geometry(pad_kind(padding), input.w, filter_w, stride.w, dilation.w)
        .map_err(kerr)?;
    Ok(km::ConvParams {
        stride_h: stride.h,
        stride_w: stride.w,
        dilation_h: dilation.h,
        dilation_w: dilation.w,
        pad_top: gh.pad_before,
        pad_left: gw.pad_before,
    })
}

/// The input of a mean as `[outer, reduced, 1, inner]`: any contiguous run of axes is a
/// spatial mean of that view, e.g. axes `[1, 2]` of NHWC or axis `[1]` of `[n, time, c]`.
fn mean_view(dims: &[usize], axes: &[usize]) -> Result<Shape4, String> {
    let (first, last) = match (axes.first(), axes.last()) {
        (Some(f), Some(l)) if l - f + 1 == axes.len() => (*f, *l),
        _ => {
            return Err(format!(
                "the mean over non-contiguous axes {axes:?} is not executable"
            ));
        }
    };
    Ok(Shape4::new(
        dims[..first].iter().product(),
        dims[first..=last].iter().product(),
        1,
        dims[last + 1..].iter().product(),
    ))
}

/// The hybrid kernel of a float-input Conv2D, DepthwiseConv2D or FullyConnected whose weights
/// are int8 constants (TFLite dynamic-range quantisation); `None` for every other op.
fn prepare_hybrid(
    graph: &Graph,
    op: &crate::graph::Op,
    in_shapes: &[Shape4],
    act: km::ActivationF32,
) -> Result<Option<Kernel>, String> {
    let x = graph.tensor(op.inputs[0]);
    let Some(w) = op.inputs.get(1).map(|t| graph.tensor(*t)) else {
        return Ok(None);
    };
    let weighted = matches!(
        op.kind,
        OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. }
    );
    if !weighted || x.dtype != DType::F32 || w.dtype != DType::I8 {
        return Ok(None);
    }
    let Some(Const::I8(filter)) = Const::from_tensor(w) else {
        return Err(format!("int8 weights '{}' must be a constant", w.name));
    };
    let q = w
        .quant
        .as_ref()
        .ok_or_else(|| format!("int8 weights '{}' have no quantisation", w.name))?;
    if q.zero_point.iter().any(|z| *z != 0) {
        return Err(format!(
            "hybrid weights '{}' must be symmetric (zero point 0)",
            w.name
        ));
    }
    let bias = match op.inputs.get(2).map(|t| graph.tensor(*t)) {
        None => None,
        Some(b) => match Const::from_tensor(b) {
            Some(Const::F32(v)) => Some(v),
            _ => return Err(format!("bias '{}' must be an f32 constant", b.name)),
        },
    };
    let fs = shape4(&w.shape)?;
    let window = |fh: usize, fw: usize, stride: crate::Hw, dilation: crate::Hw, padding| {
        let s = in_shapes[0];
        let gh =
            km::axis_geometry(pad_kind(padding), s.h, fh, stride.h, dilation.h).map_err(kerr)?;
        let gw =
            km::axis_geometry(pad_kind(padding), s.w, fw, stride.w, dilation.w).map_err(kerr)?;
        Ok::<_, String>(km::ConvParams {
            stride_h: stride.h,
            stride_w: stride.w,
            dilation_h: dilation.h,
            dilation_w: dilation.w,
            pad_top: gh.pad_before,
            pad_left: gw.pad_before,
        })
    };
    let per_channel = |channels: usize, axis: usize| -> Result<Vec<f32>, String> {
        if q.scale.len() == channels && (channels == 1 || q.axis == axis) {
            Ok(q.scale.clone())
        } else if q.scale.len() == 1 {
            Ok(vec![q.scale[0]; channels])
        } else {
            Err(format!(
                "hybrid weights '{}' have {} scales on axis {}, expected {channels} on axis {axis}",
                w.name,
                q.scale.len(),
                q.axis
            ))
        }
    };
    let (op_kind, scales) = match &op.kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            ..
        } => (
            HybridOp::Conv(window(fs.h, fs.w, *stride, *dilation, *padding)?),
            per_channel(fs.n, 0)?,
        ),
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            ..
        } => (
            HybridOp::Depthwise(km::depthwise_conv2d::DepthwiseParams {
                conv: window(fs.h, fs.w, *stride, *dilation, *padding)?,
                depth_multiplier: *depth_multiplier,
            }),
            per_channel(fs.c, 3)?,
        ),
        _ => {
            if q.scale.len() != 1 {
                return Err(format!(
                    "hybrid FULLY_CONNECTED weights '{}' must have one scale, have {}",
                    w.name,
                    q.scale.len()
                ));
            }
            let (out_features, in_features) = (w.shape[0], w.shape[1]);
            (
                HybridOp::FullyConnected(km::fully_connected::FcShape {
                    batches: x.elements() / in_features.max(1),
                    in_features,
                    out_features,
                }),
                q.scale.clone(),
            )
        }
    };
    Ok(Some(Kernel::Hybrid {
        op: op_kind,
        filter,
        filter_shape: fs,
        scales,
        bias,
        act,
    }))
}

/// Splits the arena into the output's bytes (mutable) and each input's bytes (shared);
/// errors if an input overlaps the output (the planner never does that).
fn split_io<'a>(
    arena: &'a mut [u8],
    out: Range<usize>,
    inputs: &[Range<usize>],
) -> Result<(&'a mut [u8], Vec<&'a [u8]>), String> {
    if out.end > arena.len() {
        return Err(format!(
            "output range {out:?} exceeds the arena ({} bytes)",
            arena.len()
        ));
    }
    let (left, rest) = arena.split_at_mut(out.start);
    let (mid, right) = rest.split_at_mut(out.end - out.start);
    let (left, right): (&'a [u8], &'a [u8]) = (left, right);
    let mut ins = Vec::with_capacity(inputs.len());
    for r in inputs {
        if r.end <= out.start {
            ins.push(&left[r.clone()]);
        } else if r.start >= out.end && r.end <= out.end + right.len() {
            ins.push(&right[r.start - out.end..r.end - out.end]);
        } else {
            return Err(format!(
                "input range {r:?} overlaps output {out:?} or exceeds the arena"
            ));
        }
    }
    Ok((mid, ins))
}

fn i8_bytes(v: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len()) }
}

fn as_f32(b: &[u8]) -> Result<&[f32], String> {
    km::tensor::bytes_as_f32(b).map_err(kerr)
}
fn as_f32_mut(b: &mut [u8]) -> Result<&mut [f32], String> {
    km::tensor::bytes_as_f32_mut(b).map_err(kerr)
}

macro_rules! q8_dispatch {
    ($dtype:expr, $i8:expr, $u8:expr, $f32:expr) => {
        match $dtype {
            DType::I8 => $i8,
            DType::U8 => $u8,
            DType::F32 => $f32,
            other => Err(format!("type {other} is not executable")),
        }
    };
}

fn run_op(p: &Prepared, arena: &mut [u8], plan: &ArenaPlan) -> Result<(), String> {
    let out_range = plan.range(p.output).ok_or("output is not planned")?;
    let copy = match &p.kernel {
        Kernel::Copy => true,
        Kernel::S16(k) => matches!(**k, s16::Kernel16::Copy),
        _ => false,
    };
    if copy && p.inputs.first().is_some_and(|i| plan.aliased(*i, p.output)) {
        return Ok(());
    }
    match &p.kernel {
        Kernel::Fused => return Ok(()),
        Kernel::CopyPooled { from, len } => {
            let src = plan
                .range(*from)
                .ok_or("fused conv output is not planned")?;
            let dst = plan.range(p.output).ok_or("pool output is not planned")?;
            if *len > src.len() || *len != dst.len() || dst.end > arena.len() {
                return Err("fused pool: buffer sizes disagree".into());
            }
            if src.start < dst.end && dst.start < src.start + len {
                return Err("fused pool: buffers overlap".into());
            }
            arena.copy_within(src.start..src.start + len, dst.start);
            return Ok(());
        }
        Kernel::Conv1d {
            plan: conv,
            quant,
            output,
        } => {
            let input = p
                .inputs
                .first()
                .and_then(|t| plan.range(*t))
                .ok_or("conv input is not planned")?;
            let output = plan.range(*output).ok_or("conv output is not planned")?;
            // A fused pool writes fewer values than the conv's own buffer holds.
            let len = conv.output_len();
            if len > output.len() {
                return Err("conv output buffer is smaller than the plan".into());
            }
            let output = output.start..output.start + len;
            return conv.run(
                &quant.params().requant,
                p.dtype == DType::I8,
                arena,
                input,
                output,
            );
        }
        _ => {}
    }
    // Constant inputs are held in `Kernel`; only activations come from the arena.
    let in_ranges: Vec<Range<usize>> = p.inputs.iter().filter_map(|t| plan.range(*t)).collect();
    let (out, ins) = split_io(arena, out_range, &in_ranges)?;
    let os = p.out_shape;
    let is = p.in_shapes[0];
    let x = ins.first().copied().ok_or("op has no activation input")?;
    let i8s = km::tensor::bytes_as_i8;
    let i8m = km::tensor::bytes_as_i8_mut;
    match &p.kernel {
        Kernel::Fused | Kernel::CopyPooled { .. } | Kernel::Conv1d { .. } => Ok(()),
        Kernel::S16(k) => s16::run(k, &p.in_shapes, os, &ins, out),
        Kernel::Conv {
            params,
            filter,
            filter_shape,
            bias,
            quant,
            act,
        } => {
            let fs = *filter_shape;
            match (filter, bias, quant) {
                (Const::I8(w), b, Some(q)) => km::conv2d::conv2d_i8(
                    params,
                    &q.params(),
                    TensorRef::new(i8s(x), is),
                    TensorRef::new(w, fs),
                    i32_bias(b)?,
                    TensorMut::new(i8m(out), os),
                ),
                (Const::U8(w), b, Some(q)) => km::conv2d::conv2d_u8(
                    params,
                    &q.params(),
                    TensorRef::new(x, is),
                    TensorRef::new(w, fs),
                    i32_bias(b)?,
                    TensorMut::new(out, os),
                ),
                (Const::F32(w), b, None) => km::conv2d::conv2d_f32(
                    params,
                    *act,
                    TensorRef::new(as_f32(x)?, is),
                    TensorRef::new(w, fs),
                    f32_bias(b)?,
                    TensorMut::new(as_f32_mut(out)?, os),
                ),
                _ => return Err("filter type does not match the input type".into()),
            }
            .map_err(kerr)
        }
        Kernel::Hybrid {
            op,
            filter,
            filter_shape,
            scales,
            bias,
            act,
        } => {
            let x = as_f32(x)?;
            let out = as_f32_mut(out)?;
            let bias = bias.as_deref();
            match op {
                HybridOp::Conv(params) => km::hybrid::conv2d_hybrid(
                    params,
                    *act,
                    TensorRef::new(x, is),
                    TensorRef::new(filter, *filter_shape),
                    scales,
                    bias,
                    &mut vec![0; is.h * is.w * is.c],
                    TensorMut::new(out, os),
                ),
                HybridOp::Depthwise(params) => km::hybrid::depthwise_conv2d_hybrid(
                    params,
                    *act,
                    TensorRef::new(x, is),
                    TensorRef::new(filter, *filter_shape),
                    scales,
                    bias,
                    &mut vec![0; is.h * is.w * is.c],
                    TensorMut::new(out, os),
                ),
                HybridOp::FullyConnected(shape) => km::hybrid::fully_connected_hybrid(
                    shape.batches,
                    shape.in_features,
                    shape.out_features,
                    *act,
                    x,
                    filter,
                    scales[0],
                    bias,
                    &mut vec![0; shape.in_features],
                    out,
                ),
            }
            .map_err(kerr)
        }
        Kernel::Depthwise {
            params,
            filter,
            filter_shape,
            bias,
            quant,
            act,
        } => {
            let fs = *filter_shape;
            match (filter, bias, quant) {
                (Const::I8(w), b, Some(q)) => km::depthwise_conv2d::depthwise_conv2d_i8(
                    params,
                    &q.params(),
                    TensorRef::new(i8s(x), is),
                    TensorRef::new(w, fs),
                    i32_bias(b)?,
                    TensorMut::new(i8m(out), os),
                ),
                (Const::U8(w), b, Some(q)) => km::depthwise_conv2d::depthwise_conv2d_u8(
                    params,
                    &q.params(),
                    TensorRef::new(x, is),
                    TensorRef::new(w, fs),
                    i32_bias(b)?,
                    TensorMut::new(out, os),
                ),
                (Const::F32(w), b, None) => km::depthwise_conv2d::depthwise_conv2d_f32(
                    params,
                    *act,
                    TensorRef::new(as_f32(x)?, is),
                    TensorRef::new(w, fs),
                    f32_bias(b)?,
                    TensorMut::new(as_f32_mut(out)?, os),
                ),
                _ => return Err("filter type does not match the input type".into()),
            }
            .map_err(kerr)
        }
        Kernel::FullyConnected {
            shape,
            weights,
            bias,
            quant,
            act,
        } => match (weights, bias, quant) {
            (Const::I8(w), b, Some(q)) => km::fully_connected::fully_connected_i8(
                *shape,
                &q.params(),
                i8s(x),
                w,
                i32_bias(b)?,
                i8m(out),
            ),
            (Const::U8(w), b, Some(q)) => km::fully_connected::fully_connected_u8(
                *shape,
                &q.params(),
                x,
                w,
                i32_bias(b)?,
                out,
            ),
            (Const::F32(w), b, None) => km::fully_connected::fully_connected_f32(
                *shape,
                *act,
                as_f32(x)?,
                w,
                f32_bias(b)?,
                as_f32_mut(out)?,
            ),
            _ => return Err("weight type does not match the input type".into()),
        }
        .map_err(kerr),
        Kernel::MaxPool {
            params,
            act_min,
            act_max,
            act,
        } => q8_dispatch!(
            p.dtype,
            km::max_pool2d::max_pool2d_i8(
                params,
                *act_min,
                *act_max,
                TensorRef::new(i8s(x), is),
                TensorMut::new(i8m(out), os)
            )
            .map_err(kerr),
            km::max_pool2d::max_pool2d_u8(
                params,
                *act_min,
                *act_max,
                TensorRef::new(x, is),
                TensorMut::new(out, os)
            )
            .map_err(kerr),
            km::max_pool2d::max_pool2d_f32(
                params,
                *act,
                TensorRef::new(as_f32(x)?, is),
                TensorMut::new(as_f32_mut(out)?, os)
            )
            .map_err(kerr)
        ),
        Kernel::AvgPool {
            params,
            act_min,
            act_max,
            act,
        } => q8_dispatch!(
            p.dtype,
            km::average_pool2d::average_pool2d_i8(
                params,
                *act_min,
                *act_max,
                TensorRef::new(i8s(x), is),
                TensorMut::new(i8m(out), os)
            )
            .map_err(kerr),
            km::average_pool2d::average_pool2d_u8(
                params,
                *act_min,
                *act_max,
                TensorRef::new(x, is),
                TensorMut::new(out, os)
            )
            .map_err(kerr),
            km::average_pool2d::average_pool2d_f32(
                params,
                *act,
                TensorRef::new(as_f32(x)?, is),
                TensorMut::new(as_f32_mut(out)?, os)
            )
            .map_err(kerr)
        ),
        Kernel::Mean {
            quant,
            variant,
            view,
        } => match (p.dtype, quant) {
            (DType::I8, Some(q)) => {
                km::mean::mean_hw_with(*variant, q, TensorRef::new(i8s(x), *view), i8m(out))
                    .map_err(kerr)
            }
            (DType::U8, Some(q)) => {
                km::mean::mean_hw_with(*variant, q, TensorRef::new(x, *view), out).map_err(kerr)
            }
            (DType::F32, None) => {
                km::mean::mean_hw_f32(TensorRef::new(as_f32(x)?, *view), as_f32_mut(out)?)
                    .map_err(kerr)
            }
            _ => Err("mean: inconsistent types".into()),
        },
        Kernel::Concat {
            outer,
            row_lens,
            quant,
        } => {
            if ins.len() != row_lens.len() {
                return Err("concatenation of constants is not executable".into());
            }
            match (p.dtype, quant) {
                (DType::I8, Some((qs, os_, oz))) => {
                    let parts: Vec<_> = ins
                        .iter()
                        .zip(row_lens)
                        .zip(qs)
                        .map(|((d, r), (s, z))| km::concatenation::ConcatInputQuant {
                            input: km::concatenation::ConcatInput {
                                data: i8s(d),
                                row_len: *r,
                            },
                            scale: *s,
                            zero_point: *z,
                        })
                        .collect();
                    km::concatenation::concatenation_requant(*outer, &parts, *os_, *oz, i8m(out))
                        .map_err(kerr)
                }
                (DType::U8, Some((qs, os_, oz))) => {
                    let parts: Vec<_> = ins
                        .iter()
                        .zip(row_lens)
                        .zip(qs)
                        .map(|((d, r), (s, z))| km::concatenation::ConcatInputQuant {
                            input: km::concatenation::ConcatInput {
                                data: d,
                                row_len: *r,
                            },
                            scale: *s,
                            zero_point: *z,
                        })
                        .collect();
                    km::concatenation::concatenation_requant(*outer, &parts, *os_, *oz, out)
                        .map_err(kerr)
                }
                (DType::F32, None) => {
                    let parts: Vec<_> = ins
                        .iter()
                        .zip(row_lens)
                        .map(|(d, r)| {
                            Ok(km::concatenation::ConcatInput {
                                data: as_f32(d)?,
                                row_len: *r,
                            })
                        })
                        .collect::<Result<_, String>>()?;
                    km::concatenation::concatenation(*outer, &parts, as_f32_mut(out)?).map_err(kerr)
                }
                _ => Err("concatenation: inconsistent types".into()),
            }
        }
        Kernel::Add {
            quant,
            act,
            constants,
        } => {
            // Operands in input order: constants from the kernel, the rest from the arena.
            let mut arena_ins = ins.iter();
            let mut bytes: [&[u8]; 2] = [&[], &[]];
            let mut floats: [Option<&[f32]>; 2] = [None, None];
            for (k, c) in constants.iter().enumerate() {
                match c {
                    Some(Const::I8(v)) => bytes[k] = i8_bytes(v),
                    Some(Const::U8(v)) => bytes[k] = v,
                    Some(Const::F32(v)) => floats[k] = Some(v),
                    Some(Const::I32(_)) => return Err("ADD of int32 is not executable".into()),
                    None => {
                        bytes[k] = arena_ins.next().copied().ok_or("ADD needs two operands")?;
                    }
                }
            }
            let f = |k: usize| -> Result<&[f32], String> {
                match floats[k] {
                    Some(v) => Ok(v),
                    None => as_f32(bytes[k]),
                }
            };
            let (xs, ys) = (p.in_shapes[0], p.in_shapes[1]);
            match (p.dtype, quant) {
                (DType::I8, Some(q)) => km::add::add_i8(
                    q,
                    TensorRef::new(i8s(bytes[0]), xs),
                    TensorRef::new(i8s(bytes[1]), ys),
                    TensorMut::new(i8m(out), os),
                ),
                (DType::U8, Some(q)) => km::add::add_u8(
                    q,
                    TensorRef::new(bytes[0], xs),
                    TensorRef::new(bytes[1], ys),
                    TensorMut::new(out, os),
                ),
                (DType::F32, None) => km::add::add_f32(
                    *act,
                    TensorRef::new(f(0)?, xs),
                    TensorRef::new(f(1)?, ys),
                    TensorMut::new(as_f32_mut(out)?, os),
                ),
                _ => return Err("add: inconsistent types".into()),
            }
            .map_err(kerr)
        }
        // Row-major data is unchanged by a reshape: copy the bytes.
        Kernel::Copy => km::reshape::reshape(x, out).map_err(kerr),
        Kernel::Pad {
            before,
            after,
            zero_point,
        } => q8_dispatch!(
            p.dtype,
            km::pad::pad(
                TensorRef::new(i8s(x), is),
                *before,
                *after,
                *zero_point as i8,
                TensorMut::new(i8m(out), os)
            )
            .map_err(kerr),
            km::pad::pad(
                TensorRef::new(x, is),
                *before,
                *after,
                *zero_point as u8,
                TensorMut::new(out, os)
            )
            .map_err(kerr),
            km::pad::pad(
                TensorRef::new(as_f32(x)?, is),
                *before,
                *after,
                0.0f32,
                TensorMut::new(as_f32_mut(out)?, os)
            )
            .map_err(kerr)
        ),
        Kernel::Softmax {
            lut,
            quant,
            beta,
            depth,
        } => match (p.dtype, lut, quant) {
            (DType::I8, Some(l), Some(q)) => {
                km::softmax::softmax_i8(l, q, i8s(x), i8m(out), *depth).map_err(kerr)
            }
            (DType::U8, Some(l), Some(q)) => {
                km::softmax::softmax_u8(l, q, x, out, *depth).map_err(kerr)
            }
            (DType::F32, _, _) => {
                km::softmax::softmax_f32(*beta, as_f32(x)?, as_f32_mut(out)?, *depth).map_err(kerr)
            }
            _ => Err("softmax: inconsistent types".into()),
        },
        Kernel::QuantizeFromF32 {
            scale,
            zero_point,
            rounding,
        } => match p.out_dtype {
            DType::I8 => km::quantize::quantize_f32_with(
                *rounding,
                as_f32(x)?,
                *scale,
                *zero_point,
                i8m(out),
            )
            .map_err(kerr),
            DType::U8 => {
                km::quantize::quantize_f32_with(*rounding, as_f32(x)?, *scale, *zero_point, out)
                    .map_err(kerr)
            }
            other => Err(format!("quantize to {other}")),
        },
        Kernel::RequantizeXnnpack { params } => {
            km::quantize::requantize_xnnpack::<i8, i8>(params, i8s(x), i8m(out)).map_err(kerr)
        }
        Kernel::Requantize { params } => match (p.dtype, p.out_dtype) {
            (DType::I8, DType::I8) => km::quantize::requantize::<i8, i8>(params, i8s(x), i8m(out)),
            (DType::I8, DType::U8) => km::quantize::requantize::<i8, u8>(params, i8s(x), out),
            (DType::U8, DType::I8) => km::quantize::requantize::<u8, i8>(params, x, i8m(out)),
            (DType::U8, DType::U8) => km::quantize::requantize::<u8, u8>(params, x, out),
            (a, b) => return Err(format!("requantize {a} to {b}")),
        }
        .map_err(kerr),
        Kernel::Dequantize { scale, zero_point } => match p.dtype {
            DType::I8 => {
                km::dequantize::dequantize_i8(i8s(x), *scale, *zero_point, as_f32_mut(out)?)
                    .map_err(kerr)
            }
            DType::U8 => km::dequantize::dequantize_u8(x, *scale, *zero_point, as_f32_mut(out)?)
                .map_err(kerr),
            other => Err(format!("dequantize from {other}")),
        },
    }
}

/// Whether requantisation is monotone non-decreasing in the accumulator (non-negative
/// multipliers/scales, no left shift that could wrap), so max-pooling commutes with it.
fn requant_monotone(q: &QuantPrep) -> bool {
    match &q.requant {
        RequantPrep::FixedPoint {
            multipliers,
            shifts,
        }
        | RequantPrep::FixedPointTiesUp {
            multipliers,
            shifts,
        } => multipliers.iter().all(|m| *m >= 0) && shifts.iter().all(|s| *s <= 0),
        RequantPrep::Double(s) => s.iter().all(|v| *v >= 0.0),
        RequantPrep::Float32(s) => s.iter().all(|v| *v >= 0.0),
    }
}

/// Fuses `Conv1d → [Reshape] → MaxPool2D` chains whose intermediate tensors nothing else
/// reads: the conv pools its accumulators and writes the pool's output; the pool (and the
/// reshape) become [`Kernel::Fused`]. Row-major data is unchanged by the reshape, and a pool
/// along H of `[n, h, 1, c]` is the same as along W of `[n, 1, h, c]`.
fn fuse_conv_pools(graph: &Graph, plan_: &ArenaPlan, ops: &mut [Prepared]) {
    let consumers = |t: TensorId| -> Vec<usize> {
        graph
            .ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.inputs.contains(&t))
            .map(|(i, _)| i)
            .collect()
    };
    let single_internal = |t: TensorId| -> Option<usize> {
        if graph.outputs.contains(&t) {
            return None;
        }
        match consumers(t).as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    };
    for i in 0..ops.len() {
        let Kernel::Conv1d { plan, quant, .. } = &ops[i].kernel else {
            continue;
        };
        if plan.pool.is_some() || !requant_monotone(quant) || ops[i].in_shapes[0].n != 1 {
            continue;
        }
        let Some(mut next) = single_internal(ops[i].output) else {
            continue;
        };
        let mut skipped = Vec::new();
        if matches!(ops[next].kernel, Kernel::Copy) {
            skipped.push(next);
            match single_internal(ops[next].output) {
                Some(n) => next = n,
                None => continue,
            }
        }
        let Kernel::MaxPool {
            params: pp,
            act_min,
            act_max,
            ..
        } = &ops[next].kernel
        else {
            continue;
        };
        if ops[next].dtype != ops[i].dtype || pp.pad_top != 0 || pp.pad_left != 0 {
            continue;
        }
        let (ps, po) = (ops[next].in_shapes[0], ops[next].out_shape);
        // The pool's window must run along the conv's width (as W of [1,1,w,c] or H of
        // [1,h,1,c]) over the same elements.
        let along = if ps.h == 1 && pp.filter_h == 1 && po.h == 1 {
            Some((pp.filter_w, pp.stride_w, po.w))
        } else if ps.w == 1 && pp.filter_w == 1 && po.w == 1 {
            Some((pp.filter_h, pp.stride_h, po.h))
        } else {
            None
        };
        let Some((filter, stride, out_w)) = along else {
            continue;
        };
        let pool = conv1d::FusedPool {
            filter,
            stride,
            out_w,
            act_min: *act_min,
            act_max: *act_max,
        };
        let pool_out = ops[next].output;
        let fits = ps.n == 1
            && ps.c == ops[i].out_shape.c
            && ps.h * ps.w == ops[i].out_shape.w
            && po.c == ps.c
            && plan.can_fuse_pool(filter, stride, out_w);
        if !fits {
            continue;
        }
        // The conv now writes the pool's output early: no tensor an op between them reads or
        // writes may share its bytes (tensors live across the pool are kept apart from it
        // by the planner already).
        let Some(dst) = plan_.range(pool_out) else {
            continue;
        };
        let overlaps = |t: &TensorId| {
            plan_
                .range(*t)
                .is_some_and(|r| r.start < dst.end && dst.start < r.end)
        };
        let clobbers = (i + 1..next).filter(|k| !skipped.contains(k)).any(|k| {
            graph.ops[k].inputs.iter().any(overlaps) || graph.ops[k].outputs.iter().any(overlaps)
        });
        let conv_out = ops[i].output;
        if !clobbers {
            if let Kernel::Conv1d { plan, output, .. } = &mut ops[i].kernel {
                plan.pool = Some(pool);
                *output = pool_out;
            }
            for k in skipped.into_iter().chain([next]) {
                ops[k].kernel = Kernel::Fused;
            }
        } else if skipped
            .iter()
            .all(|k| plan_.aliased(conv_out, ops[*k].output))
        {
            // Other ops run in between (e.g. parallel branches): the conv keeps the pooled
            // values in its own buffer, which stays live until the pool (the reshape, if
            // any, aliases it), and the pool op copies them over.
            let len = dst.len();
            if let Kernel::Conv1d { plan, .. } = &mut ops[i].kernel {
                plan.pool = Some(pool);
            }
            for k in skipped {
                ops[k].kernel = Kernel::Fused;
            }
            ops[next].kernel = Kernel::CopyPooled {
                from: conv_out,
                len,
            };
        }
    }
}

fn i32_bias(b: &Option<Const>) -> Result<Option<&[i32]>, String> {
    match b {
        None => Ok(None),
        Some(Const::I32(v)) => Ok(Some(v)),
        Some(_) => Err("bias must be int32 for quantised ops".into()),
    }
}

fn f32_bias(b: &Option<Const>) -> Result<Option<&[f32]>, String> {
    match b {
        None => Ok(None),
        Some(Const::F32(v)) => Ok(Some(v)),
        Some(_) => Err("bias must be f32 for float ops".into()),
    }
}

impl Interpreter {
    /// Kernel configuration [`Interpreter::new`] reproduces: TFLite's reference kernels.
    ///
    /// Chosen deliberately although TFLite users run the XNNPACK configuration by default:
    /// the reference arithmetic (fixed-point conv requantisation, quantize rounding ties away
    /// from zero) is what TFLite Micro and kinglet's generated firmware compute, and what
    /// kinglet-compress's differential goldens (≥ 1,000 random models, PTQ exports) were
    /// recorded with; under XNNPACK rounding 11 of its 78 PTQ-exported models differ by
    /// 1 LSB. Code reporting accuracy the way a TFLite user measures it (`kinglet eval` on a
    /// `.tflite` model, the seed's published 91.28 % / 90.23 %) passes
    /// [`TfliteKernels::Default`] to [`Interpreter::with_kernels`].
    pub const DEFAULT_KERNELS: TfliteKernels = TfliteKernels::Reference;

    /// [`Interpreter::with_kernels`] with [`Interpreter::DEFAULT_KERNELS`].
    pub fn new(graph: &Graph) -> Result<Interpreter, GraphError> {
        Interpreter::with_kernels(graph, Interpreter::DEFAULT_KERNELS)
    }

    /// Validates the graph, plans the arena, derives every op's requantisation parameters for
    /// the chosen TFLite kernel configuration and allocates the arena. Errors name the op that
    /// cannot run.
    pub fn with_kernels(graph: &Graph, kernels: TfliteKernels) -> Result<Interpreter, GraphError> {
        let plan = ArenaPlan::new(graph)?;
        let ops = (0..graph.ops.len())
            .map(|i| {
                prepare_op(graph, i, kernels)
                    .map_err(|m| GraphError::op(i, graph.ops[i].kind.name(), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut ops = ops;
        fuse_conv_pools(graph, &plan, &mut ops);
        let arena = vec![0u128; plan.arena_bytes() / ARENA_ALIGN];
        Ok(Interpreter {
            graph: graph.clone(),
            kernels,
            plan,
            ops,
            arena,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The TFLite kernel configuration this interpreter reproduces.
    pub fn kernels(&self) -> TfliteKernels {
        self.kernels
    }

    pub fn plan(&self) -> &ArenaPlan {
        &self.plan
    }

    /// Bytes of arena this interpreter allocated (equal to `plan().arena_bytes()`).
    pub fn arena_len(&self) -> usize {
        self.arena.len() * size_of::<u128>()
    }

    fn arena_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.arena_len();
        // SAFETY: u128 storage reinterpreted as bytes: same memory, u8 has alignment 1 and
        // every bit pattern is valid; the borrow of `self.arena` is held for the result's life.
        unsafe { std::slice::from_raw_parts_mut(self.arena.as_mut_ptr().cast::<u8>(), len) }
    }

    fn arena_bytes(&self) -> &[u8] {
        // SAFETY: as in `arena_bytes_mut`, shared.
        unsafe { std::slice::from_raw_parts(self.arena.as_ptr().cast::<u8>(), self.arena_len()) }
    }

    fn io_tensor(
        &self,
        list: &[TensorId],
        i: usize,
        what: &str,
    ) -> Result<(TensorId, Range<usize>), GraphError> {
        let id = *list.get(i).ok_or_else(|| {
            GraphError::Runtime(format!(
                "{what} {i} does not exist (graph has {})",
                list.len()
            ))
        })?;
        let range = self
            .plan
            .range(id)
            .ok_or_else(|| GraphError::Runtime(format!("{what} {i} is not in the arena")))?;
        Ok((id, range))
    }

    /// Copies `values` into graph input `i`; the element type and count must match.
    pub fn set_input<T: Element>(&mut self, i: usize, values: &[T]) -> Result<(), GraphError> {
        let (id, range) = self.io_tensor(&self.graph.inputs, i, "input")?;
        let t = self.graph.tensor(id);
        if t.dtype != T::DTYPE || t.elements() != values.len() {
            return Err(GraphError::Runtime(format!(
                "input {i} ('{}') is {} × {:?}; got {} {} values",
                t.name,
                t.dtype,
                t.shape,
                values.len(),
                T::DTYPE
            )));
        }
        let size = size_of::<T>();
        let dst = &mut self.arena_bytes_mut()[range];
        for (v, chunk) in values.iter().zip(dst.chunks_exact_mut(size)) {
            v.write_le(chunk);
        }
        Ok(())
    }

    /// Sets graph input `i` from real values: copied into a float input, quantised
    /// (`round(x / scale) + zero_point`, clamped to the type) into an integer one.
    pub fn set_input_real(&mut self, i: usize, values: &[f32]) -> Result<(), GraphError> {
        let (id, _) = self.io_tensor(&self.graph.inputs, i, "input")?;
        let t = self.graph.tensor(id);
        if t.dtype == DType::F32 {
            return self.set_input(i, values);
        }
        let q = t
            .quant
            .as_ref()
            .filter(|q| q.is_per_tensor())
            .ok_or_else(|| {
                GraphError::Runtime(format!(
                    "input {i} ('{}') needs per-tensor quantisation",
                    t.name
                ))
            })?;
        let (s, z) = (q.scale[0], q.zero_point[0] as f32);
        let (lo, hi) = type_range(t.dtype);
        let quantized = values
            .iter()
            .map(|x| ((x / s).round() + z).clamp(lo as f32, hi as f32));
        match t.dtype {
            DType::I8 => self.set_input(i, &quantized.map(|v| v as i8).collect::<Vec<_>>()),
            DType::U8 => self.set_input(i, &quantized.map(|v| v as u8).collect::<Vec<_>>()),
            DType::I16 => self.set_input(i, &quantized.map(|v| v as i16).collect::<Vec<_>>()),
            other => Err(GraphError::Runtime(format!(
                "input {i} ('{}') has type {other}",
                t.name
            ))),
        }
    }

    /// Copies raw little-endian bytes into graph input `i`.
    pub fn set_input_bytes(&mut self, i: usize, bytes: &[u8]) -> Result<(), GraphError> {
        let (_, range) = self.io_tensor(&self.graph.inputs, i, "input")?;
        if range.len() != bytes.len() {
            return Err(GraphError::Runtime(format!(
                "input {i} takes {} bytes, got {}",
                range.len(),
                bytes.len()
            )));
        }
        self.arena_bytes_mut()[range].copy_from_slice(bytes);
        Ok(())
    }

    /// Runs every op in order.
    pub fn invoke(&mut self) -> Result<(), GraphError> {
        let mut arena = std::mem::take(&mut self.arena);
        let len = arena.len() * size_of::<u128>();
        // SAFETY: as in `arena_bytes_mut`; `arena` is a local owned for this scope.
        let bytes = unsafe { std::slice::from_raw_parts_mut(arena.as_mut_ptr().cast::<u8>(), len) };
        let result = run_graph(&self.graph, &self.plan, &self.ops, bytes);
        self.arena = arena;
        result
    }

    /// Values of graph output `i`; the element type must match.
    pub fn output<T: Element>(&self, i: usize) -> Result<Vec<T>, GraphError> {
        let (id, range) = self.io_tensor(&self.graph.outputs, i, "output")?;
        let t = self.graph.tensor(id);
        if t.dtype != T::DTYPE {
            return Err(GraphError::Runtime(format!(
                "output {i} ('{}') is {}, asked for {}",
                t.name,
                t.dtype,
                T::DTYPE
            )));
        }
        Ok(self.arena_bytes()[range]
            .chunks_exact(size_of::<T>())
            .map(T::read_le)
            .collect())
    }

    /// Raw bytes of graph output `i`.
    pub fn output_bytes(&self, i: usize) -> Result<&[u8], GraphError> {
        let (_, range) = self.io_tensor(&self.graph.outputs, i, "output")?;
        Ok(&self.arena_bytes()[range])
    }

    /// Output `i` as real numbers (dequantised with its scale and zero point if integer).
    pub fn output_f32(&self, i: usize) -> Result<Vec<f32>, GraphError> {
        let (id, _) = self.io_tensor(&self.graph.outputs, i, "output")?;
        let t = self.graph.tensor(id);
        match t.dtype {
            DType::F32 => self.output::<f32>(i),
            DType::I16 => {
                let (s, z) = quant1(t).map_err(GraphError::Runtime)?;
                Ok(self
                    .output::<i16>(i)?
                    .iter()
                    .map(|q| s * (i32::from(*q) - z) as f32)
                    .collect())
            }
            DType::I8 | DType::U8 => {
                let (s, z) = quant1(t).map_err(GraphError::Runtime)?;
                let raw = self.output_bytes(i)?;
                Ok(raw
                    .iter()
                    .map(|b| {
                        if t.dtype == DType::I8 {
                            *b as i8 as i32
                        } else {
                            *b as i32
                        }
                    })
                    .map(|q| s * (q - z) as f32)
                    .collect())
            }
            other => Err(GraphError::Runtime(format!("output {i} has type {other}"))),
        }
    }

    /// Bytes one window occupies in [`Interpreter::invoke_batch`]'s input (every graph input,
    /// in order) and output (every graph output, in order).
    pub fn batch_window_bytes(&self) -> Result<(usize, usize), GraphError> {
        let sum = |list: &[TensorId], what: &str| -> Result<usize, GraphError> {
            (0..list.len())
                .map(|i| self.io_tensor(list, i, what).map(|(_, r)| r.len()))
                .sum()
        };
        Ok((
            sum(&self.graph.inputs, "input")?,
            sum(&self.graph.outputs, "output")?,
        ))
    }

    /// Runs many windows. `inputs` holds, per window, every graph input's raw little-endian
    /// bytes in input order (as [`Interpreter::set_input_bytes`] takes them); `outputs` is
    /// replaced by, per window, every graph output's bytes in output order. With
    /// `threads > 1` the windows are split into that many contiguous parts run in parallel
    /// (each thread with its own arena; the prepared ops are shared). Results do not depend
    /// on `threads`.
    pub fn invoke_batch(
        &mut self,
        inputs: &[u8],
        threads: usize,
        outputs: &mut Vec<u8>,
    ) -> Result<(), GraphError> {
        let (win_in, win_out) = self.batch_window_bytes()?;
        if win_in == 0 || !inputs.len().is_multiple_of(win_in) {
            return Err(GraphError::Runtime(format!(
                "batch of {} bytes is not a whole number of {win_in}-byte windows",
                inputs.len()
            )));
        }
        let windows = inputs.len() / win_in;
        outputs.clear();
        outputs.resize(windows * win_out, 0);
        let in_ranges: Vec<Range<usize>> = (0..self.graph.inputs.len())
            .map(|i| {
                self.io_tensor(&self.graph.inputs, i, "input")
                    .map(|(_, r)| r)
            })
            .collect::<Result<_, _>>()?;
        let out_ranges: Vec<Range<usize>> = (0..self.graph.outputs.len())
            .map(|i| {
                self.io_tensor(&self.graph.outputs, i, "output")
                    .map(|(_, r)| r)
            })
            .collect::<Result<_, _>>()?;
        let run_part = |arena: &mut [u8], ins: &[u8], outs: &mut [u8], first: usize| {
            for (w, (x, y)) in ins
                .chunks_exact(win_in)
                .zip(outs.chunks_exact_mut(win_out))
                .enumerate()
            {
                let mut at = 0;
                for r in &in_ranges {
                    arena[r.clone()].copy_from_slice(&x[at..at + r.len()]);
                    at += r.len();
                }
                run_graph(&self.graph, &self.plan, &self.ops, arena)
                    .map_err(|e| GraphError::Runtime(format!("window {}: {e}", first + w)))?;
                let mut at = 0;
                for r in &out_ranges {
                    y[at..at + r.len()].copy_from_slice(&arena[r.clone()]);
                    at += r.len();
                }
            }
            Ok::<(), GraphError>(())
        };
        let threads = threads.clamp(1, windows.max(1));
        if threads == 1 {
            let mut arena = std::mem::take(&mut self.arena);
            let len = arena.len() * size_of::<u128>();
            // SAFETY: as in `arena_bytes_mut`; `arena` is a local owned for this scope.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(arena.as_mut_ptr().cast::<u8>(), len) };
            let result = run_part(bytes, inputs, outputs, 0);
            self.arena = arena;
            return result;
        }
        let per = windows.div_ceil(threads);
        let words = self.arena.len();
        std::thread::scope(|scope| {
            let handles: Vec<_> = inputs
                .chunks(per * win_in)
                .zip(outputs.chunks_mut(per * win_out))
                .enumerate()
                .map(|(t, (ins, outs))| {
                    let run_part = &run_part;
                    scope.spawn(move || {
                        let mut arena = vec![0u128; words];
                        let len = words * size_of::<u128>();
                        // SAFETY: u128 storage viewed as bytes (see `arena_bytes_mut`).
                        let bytes = unsafe {
                            std::slice::from_raw_parts_mut(arena.as_mut_ptr().cast::<u8>(), len)
                        };
                        run_part(bytes, ins, outs, t * per)
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| GraphError::Runtime("a batch thread panicked".into()))?
            })
        })
    }

    /// Runs the graph on a caller-provided arena (e.g. to check the planned size is enough):
    /// errors if `arena` is shorter than `plan().arena_bytes()` or not 16-byte aligned.
    /// Inputs must already be in the arena at their planned offsets.
    pub fn invoke_in(&self, arena: &mut [u8]) -> Result<(), GraphError> {
        run_graph(&self.graph, &self.plan, &self.ops, arena)
    }
}

fn run_graph(
    graph: &Graph,
    plan: &ArenaPlan,
    ops: &[Prepared],
    arena: &mut [u8],
) -> Result<(), GraphError> {
    if arena.len() < plan.arena_bytes() {
        return Err(GraphError::Runtime(format!(
            "arena of {} bytes is smaller than the planned {}",
            arena.len(),
            plan.arena_bytes()
        )));
    }
    if arena.as_ptr().align_offset(ARENA_ALIGN) != 0 {
        return Err(GraphError::Runtime(format!(
            "arena is not {ARENA_ALIGN}-byte aligned"
        )));
    }
    for (i, p) in ops.iter().enumerate() {
        run_op(p, arena, plan).map_err(|m| GraphError::op(i, graph.ops[i].kind.name(), m))?;
    }
    Ok(())
}
