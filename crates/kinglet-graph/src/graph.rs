//! The graph IR: tensors, ops and the builder other crates use to assemble models.
//!
//! Layouts follow TFLite so that reading and writing `.tflite` never reorders data:
//! activations are NHWC (a 1D signal of length N is `[batch, 1, N, channels]`), Conv2D
//! filters are OHWI `[out, kh, kw, in]`, DepthwiseConv2D filters are `[1, kh, kw, out]`,
//! FullyConnected weights are `[out, in]`, biases are `[out]` (int32 for quantised graphs,
//! f32 for float graphs; int64 for the 16×8 scheme's int16 activations). Constant data is stored little-endian, row-major.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::GraphError;

/// Largest tensor kinglet accepts (1 GiB): far beyond any microcontroller model, small enough
/// that byte sizes never overflow.
pub const MAX_TENSOR_BYTES: usize = 1 << 30;

/// Index of a tensor in [`Graph::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub usize);

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Element type of a tensor. Sizes are given in bits so that the packed sub-byte weight types
/// fit the same byte-size arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I8,
    U8,
    /// int16 activations of the 16×8 scheme (symmetric, zero point 0).
    I16,
    I32,
    /// 4-bit signed integers packed two per byte, the first element in the low nibble
    /// (TFLite's `INT4`); kinglet uses it for constant weights only.
    I4,
    /// 2-bit signed integers packed four per byte, the first element in the lowest two bits
    /// (TFLite's `INT2`); constant weights only.
    I2,
    /// Biases of the 16×8 scheme: int16 × int8 products summed over a filter overflow int32.
    I64,
}

impl DType {
    pub fn bits(self) -> usize {
        match self {
            DType::I64 => 64,
            DType::F32 | DType::I32 => 32,
            DType::F16 | DType::I16 => 16,
            DType::I8 | DType::U8 => 8,
            DType::I4 => 4,
            DType::I2 => 2,
        }
    }

    /// Bytes taken by `elements` values, rounding packed types up to whole bytes.
    pub fn bytes_for(self, elements: usize) -> usize {
        (elements * self.bits()).div_ceil(8)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I4 => "i4",
            DType::I2 => "i2",
            DType::I64 => "i64",
        }
    }

    /// Quantised activation or weight types (not biases).
    pub fn is_quantized_integer(self) -> bool {
        matches!(self, DType::I8 | DType::U8 | DType::I16)
    }

    /// The packed signed type of a weight bit width (8, 4 or 2).
    pub fn signed_weights(bits: u32) -> Option<DType> {
        match bits {
            8 => Some(DType::I8),
            4 => Some(DType::I4),
            2 => Some(DType::I2),
            _ => None,
        }
    }

    /// Whether constants of this type hold signed integer weights (int8 or packed sub-byte).
    pub fn is_signed_weights(self) -> bool {
        matches!(self, DType::I8 | DType::I4 | DType::I2)
    }
}

/// Packs signed values of `bits` (4 or 2) bits each, lowest bits first within a byte, as
/// TFLite's `INT4` and `INT2` tensors store them; values outside the width are truncated to
/// their low bits, so callers clamp first. `bits = 8` stores plain int8.
pub fn pack_signed(values: &[i8], bits: u32) -> Vec<u8> {
    if bits >= 8 {
        return values.iter().map(|&v| v as u8).collect();
    }
    let per_byte = (8 / bits) as usize;
    let mask = (1u8 << bits) - 1;
    let mut out = vec![0u8; values.len().div_ceil(per_byte)];
    for (i, &v) in values.iter().enumerate() {
        out[i / per_byte] |= ((v as u8) & mask) << ((i % per_byte) as u32 * bits);
    }
    out
}

/// The first `len` signed values of `bits` bits each from `packed` (see [`pack_signed`]),
/// sign-extended to int8. Missing bytes read as zeros; the graph validator checks lengths.
pub fn unpack_signed(packed: &[u8], bits: u32, len: usize) -> Vec<i8> {
    if bits >= 8 {
        return packed.iter().take(len).map(|&b| b as i8).collect();
    }
    let per_byte = (8 / bits) as usize;
    let shift_up = 8 - bits;
    (0..len)
        .map(|i| {
            let byte = packed.get(i / per_byte).copied().unwrap_or(0);
            let field = byte >> ((i % per_byte) as u32 * bits);
            ((field << shift_up) as i8) >> shift_up
        })
        .collect()
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Affine quantisation: `real = scale * (q - zero_point)`. One entry means per-tensor;
/// several mean per-axis along `axis` (TFLite's `quantized_dimension`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    pub axis: usize,
}

impl QuantParams {
    pub fn per_tensor(scale: f32, zero_point: i32) -> Self {
        QuantParams {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: 0,
        }
    }

    pub fn per_axis(scale: Vec<f32>, zero_point: Vec<i32>, axis: usize) -> Self {
        QuantParams {
            scale,
            zero_point,
            axis,
        }
    }

    pub fn is_per_tensor(&self) -> bool {
        self.scale.len() == 1
    }
}

/// A tensor: an activation (data `None`, placed by the memory planner) or a constant.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub quant: Option<QuantParams>,
    pub data: Option<Vec<u8>>,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn byte_size(&self) -> usize {
        self.dtype.bytes_for(self.elements())
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    /// Constant data as i32 values (for int32 biases and shape-like constants).
    pub fn data_i32(&self) -> Option<Vec<i32>> {
        let d = self.data.as_ref()?;
        (self.dtype == DType::I32).then(|| {
            d.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Constant weights as int8 values, unpacking sub-byte types; `None` for other types.
    pub fn weights_i8(&self) -> Option<Vec<i8>> {
        let d = self.data.as_ref()?;
        let bits = match self.dtype {
            DType::I8 => 8,
            DType::I4 => 4,
            DType::I2 => 2,
            _ => return None,
        };
        Some(unpack_signed(d, bits, self.elements()))
    }

    /// Constant data as f32 values.
    pub fn data_f32(&self) -> Option<Vec<f32>> {
        let d = self.data.as_ref()?;
        (self.dtype == DType::F32).then(|| {
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

/// Flat row-major index in a tensor of shape `full` of each element of its leading block of
/// shape `block` (every index below the block's extent, in row-major order): where a
/// narrower width of a nested network finds its weights inside the full width's. `None`
/// when `block` is not a leading block of `full` (other rank, or wider in some dimension).
pub fn leading_block_indices(block: &[usize], full: &[usize]) -> Option<Vec<usize>> {
    if block.len() != full.len() || block.iter().zip(full).any(|(b, f)| b > f) {
        return None;
    }
    let n: usize = block.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; block.len()];
    for _ in 0..n {
        out.push(
            index
                .iter()
                .zip(full)
                .fold(0, |flat, (&i, &extent)| flat * extent + i),
        );
        for d in (0..block.len()).rev() {
            index[d] += 1;
            if index[d] < block[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, padding split with the extra cell at the end (TFLite).
    Same,
    /// No padding: output size `(in - effective_kernel) / stride + 1`.
    Valid,
}

/// Activation fused into the op that produces a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

/// Height and width pair (strides, dilations, filter sizes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hw {
    pub h: usize,
    pub w: usize,
}

impl Hw {
    pub const ONE: Hw = Hw { h: 1, w: 1 };
    pub fn new(h: usize, w: usize) -> Self {
        Hw { h, w }
    }
}

/// What an op computes. Data-like parameters that TFLite passes as constant input tensors
/// (Mean's axes, Pad's paddings, Reshape's shape) live here instead, so that `Op::inputs`
/// holds only tensors the kernels read.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Inputs: `[input NHWC, filter OHWI, bias?]`.
    Conv2D {
        stride: Hw,
        dilation: Hw,
        padding: Padding,
        activation: Activation,
    },
    /// Inputs: `[input NHWC, filter 1HW(C·M), bias?]`.
    DepthwiseConv2D {
        stride: Hw,
        dilation: Hw,
        padding: Padding,
        depth_multiplier: usize,
        activation: Activation,
    },
    /// Inputs: `[input, weights [out, in], bias?]`; the input is flattened to `[-1, in]`.
    FullyConnected {
        activation: Activation,
        keep_num_dims: bool,
    },
    MaxPool2D {
        filter: Hw,
        stride: Hw,
        padding: Padding,
        activation: Activation,
    },
    AvgPool2D {
        filter: Hw,
        stride: Hw,
        padding: Padding,
        activation: Activation,
    },
    /// Mean over `axes` (sorted, deduplicated), e.g. `[1, 2]` for global average pooling.
    Mean {
        axes: Vec<usize>,
        keep_dims: bool,
    },
    Concatenation {
        axis: usize,
        activation: Activation,
    },
    Add {
        activation: Activation,
    },
    /// Row-major reinterpretation to `new_shape` (fully resolved, no -1).
    Reshape {
        new_shape: Vec<usize>,
    },
    /// `(before, after)` per dimension; padded cells hold the zero point (0.0 for float).
    Pad {
        paddings: Vec<[usize; 2]>,
    },
    Softmax {
        beta: f32,
    },
    /// Float to integer, or integer to integer with new quantisation parameters.
    Quantize,
    Dequantize,
}

impl OpKind {
    /// Name as TFLite spells it, used in errors and `inspect`.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Conv2D { .. } => "CONV_2D",
            OpKind::DepthwiseConv2D { .. } => "DEPTHWISE_CONV_2D",
            OpKind::FullyConnected { .. } => "FULLY_CONNECTED",
            OpKind::MaxPool2D { .. } => "MAX_POOL_2D",
            OpKind::AvgPool2D { .. } => "AVERAGE_POOL_2D",
            OpKind::Mean { .. } => "MEAN",
            OpKind::Concatenation { .. } => "CONCATENATION",
            OpKind::Add { .. } => "ADD",
            OpKind::Reshape { .. } => "RESHAPE",
            OpKind::Pad { .. } => "PAD",
            OpKind::Softmax { .. } => "SOFTMAX",
            OpKind::Quantize => "QUANTIZE",
            OpKind::Dequantize => "DEQUANTIZE",
        }
    }

    pub fn activation(&self) -> Activation {
        match self {
            OpKind::Conv2D { activation, .. }
            | OpKind::DepthwiseConv2D { activation, .. }
            | OpKind::FullyConnected { activation, .. }
            | OpKind::MaxPool2D { activation, .. }
            | OpKind::AvgPool2D { activation, .. }
            | OpKind::Concatenation { activation, .. }
            | OpKind::Add { activation } => *activation,
            _ => Activation::None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// Well-known metadata keys kinglet writes into (and reads from) `.tflite` metadata.
pub mod meta {
    /// Class names, one per line, in output order.
    pub const CLASS_NAMES: &str = "kinglet.class_names";
    /// Graph input names, one per line (e.g. `s1`, `s2`, `s3` for the three-input Big).
    pub const INPUT_NAMES: &str = "kinglet.input_names";
    /// How raw windows are scaled before input, e.g. `seed` or a JSON description.
    pub const NORMALISATION: &str = "kinglet.normalisation";
    /// Activation ranges learnt by quantisation-aware training, one `name<TAB>min<TAB>max`
    /// line per tensor; int8 quantisation uses them instead of calibrating.
    pub const ACTIVATION_RANGES: &str = "kinglet.activation_ranges";
    /// Weight clipping learnt by sub-byte quantisation-aware training, one
    /// `name<TAB>bits<TAB>ratio,ratio,…` line per weight tensor (a ratio per output channel:
    /// the channel's scale is `ratio · max|w| / (2^(bits−1) − 1)`); 4- and 2-bit quantisation
    /// uses it instead of searching the clipping.
    pub const WEIGHT_CLIPS: &str = "kinglet.weight_clips";
}

/// A model: tensors, ops in execution order, graph inputs/outputs and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub ops: Vec<Op>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    pub metadata: BTreeMap<String, String>,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    pub fn tensor_mut(&mut self, id: TensorId) -> &mut Tensor {
        &mut self.tensors[id.0]
    }

    fn push_tensor(&mut self, tensor: Tensor) -> TensorId {
        self.tensors.push(tensor);
        TensorId(self.tensors.len() - 1)
    }

    /// Adds a graph input (an activation the caller fills before each run).
    pub fn add_input(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        dtype: DType,
        quant: Option<QuantParams>,
    ) -> TensorId {
        let id = self.add_activation(name, shape, dtype, quant);
        self.inputs.push(id);
        id
    }

    /// Adds an intermediate tensor (produced by an op, placed in the arena).
    pub fn add_activation(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        dtype: DType,
        quant: Option<QuantParams>,
    ) -> TensorId {
        self.push_tensor(Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            quant,
            data: None,
        })
    }

    /// Adds a constant from raw little-endian bytes; errors if the byte count does not match.
    pub fn add_constant(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        dtype: DType,
        quant: Option<QuantParams>,
        data: Vec<u8>,
    ) -> Result<TensorId, GraphError> {
        let name = name.into();
        let expected = dtype.bytes_for(shape.iter().product());
        if data.len() != expected {
            return Err(GraphError::Invalid(format!(
                "constant '{name}' of shape {shape:?} {dtype} needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(self.push_tensor(Tensor {
            name,
            shape: shape.to_vec(),
            dtype,
            quant,
            data: Some(data),
        }))
    }

    pub fn add_constant_f32(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        values: &[f32],
    ) -> Result<TensorId, GraphError> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_constant(name, shape, DType::F32, None, bytes)
    }

    pub fn add_constant_i32(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        values: &[i32],
        quant: Option<QuantParams>,
    ) -> Result<TensorId, GraphError> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_constant(name, shape, DType::I32, quant, bytes)
    }

    pub fn add_constant_i8(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        values: &[i8],
        quant: Option<QuantParams>,
    ) -> Result<TensorId, GraphError> {
        let bytes = values.iter().map(|v| *v as u8).collect();
        self.add_constant(name, shape, DType::I8, quant, bytes)
    }

    /// Appends an op whose output tensors already exist.
    pub fn add_op(&mut self, kind: OpKind, inputs: &[TensorId], outputs: &[TensorId]) -> usize {
        self.ops.push(Op {
            kind,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
        });
        self.ops.len() - 1
    }

    /// Appends an op and creates its single output with the inferred shape. The output
    /// takes the first input's dtype (f32 for Dequantize) and no quantisation: callers
    /// building quantised graphs set `tensor_mut(out).quant` (and dtype for Quantize).
    pub fn add_op_inferred(
        &mut self,
        kind: OpKind,
        inputs: &[TensorId],
        output_name: impl Into<String>,
    ) -> Result<TensorId, GraphError> {
        let index = self.ops.len();
        let shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|id| {
                self.tensors
                    .get(id.0)
                    .map(|t| t.shape.as_slice())
                    .ok_or_else(|| GraphError::Op {
                        index,
                        op: kind.name(),
                        message: format!("input {id} does not exist"),
                    })
            })
            .collect::<Result<_, _>>()?;
        let shape =
            crate::shape::infer_output_shape(&kind, &shapes).map_err(|message| GraphError::Op {
                index,
                op: kind.name(),
                message,
            })?;
        let dtype = match kind {
            OpKind::Dequantize => DType::F32,
            _ => self.tensors[inputs[0].0].dtype,
        };
        let out = self.add_activation(output_name, &shape, dtype, None);
        self.add_op(kind, inputs, &[out]);
        Ok(out)
    }

    pub fn mark_output(&mut self, id: TensorId) {
        self.outputs.push(id);
    }

    /// Lines of a newline-separated metadata entry (class names, input names).
    pub fn metadata_list(&self, key: &str) -> Option<Vec<String>> {
        self.metadata
            .get(key)
            .map(|v| v.lines().map(str::to_owned).collect())
    }

    pub fn set_metadata_list(&mut self, key: &str, values: &[impl AsRef<str>]) {
        let joined: Vec<&str> = values.iter().map(|v| v.as_ref()).collect();
        self.metadata.insert(key.to_owned(), joined.join("\n"));
    }
}

impl Graph {
    /// Removes tensors no op or graph input/output refers to (e.g. folded Reshape shape
    /// constants) and renumbers the rest, preserving order.
    pub(crate) fn drop_unused_tensors(&mut self) {
        let graph = self;
        let mut used = vec![false; graph.tensors.len()];
        for id in graph.inputs.iter().chain(&graph.outputs).chain(
            graph
                .ops
                .iter()
                .flat_map(|o| o.inputs.iter().chain(&o.outputs)),
        ) {
            used[id.0] = true;
        }
        let mut remap = vec![usize::MAX; graph.tensors.len()];
        let mut next = 0;
        for (i, u) in used.iter().enumerate() {
            if *u {
                remap[i] = next;
                next += 1;
            }
        }
        let tensors = std::mem::take(&mut graph.tensors);
        graph.tensors = tensors
            .into_iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(t, _)| t)
            .collect();
        let fix = |id: &mut TensorId| id.0 = remap[id.0];
        graph.inputs.iter_mut().for_each(fix);
        graph.outputs.iter_mut().for_each(fix);
        for op in &mut graph.ops {
            op.inputs.iter_mut().for_each(fix);
            op.outputs.iter_mut().for_each(fix);
        }
    }
}
