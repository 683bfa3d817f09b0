//! Graph → [`Program`]: picks a kernel for every op, prepares constant data in the layout the
//! kernel reads (widened weights, zero point folded into the bias, requantisation tables),
//! aliases reshapes, and hands the buffers to the planner.

use std::collections::HashMap;

use kinglet_graph::{Activation, DType, Graph, Op, OpKind, Padding, Tensor, TensorId};
use kinglet_micro::padding::{PaddingKind, axis_geometry};
use kinglet_micro::quant::{
    FusedActivation, activation_range_quantized, check_shift, conv_output_multipliers,
    fc_reference_scales, quantize_multiplier,
};

use crate::error::CompileError;
use crate::plan::plan_arena;

mod float;
mod s16;
use crate::program::{
    Buffer, ConvWeights, Dims, Elem, KernelSet, Layer, Loc, Program, RequantData, Step, StepKind,
};

/// Lowers `graph` (int8 activations, one or more inputs, one output) into a planned [`Program`].
/// Pruned fully-connected weights are stored compressed where that saves flash
/// ([`crate::sparse`]).
pub fn lower(graph: &Graph, kernels: KernelSet) -> Result<Program, CompileError> {
    Lowering::new(graph, kernels)?.run()
}

/// [`lower`] with every weight stored dense (`sparse_weights: false`), e.g. to measure what
/// compression saves.
pub fn lower_with(
    graph: &Graph,
    kernels: KernelSet,
    sparse_weights: bool,
) -> Result<Program, CompileError> {
    let mut lowering = Lowering::new(graph, kernels)?;
    lowering.sparse_weights = sparse_weights;
    lowering.run()
}

struct Lowering<'g> {
    graph: &'g Graph,
    kernels: KernelSet,
    locs: HashMap<TensorId, Loc>,
    buffers: Vec<Buffer>,
    steps: Vec<Step>,
    layers: Vec<Layer>,
    /// How many ops still read each tensor (to decide whether a conv output may be fused away).
    readers: HashMap<TensorId, usize>,
    /// A float model (float32 inputs and output), lowered by [`float`].
    float: bool,
    /// An a16w8 model (int16 inputs and output), lowered by [`s16`].
    s16: bool,
    /// Float16 constants behind lowered DEQUANTIZE ops, by the DEQUANTIZE output.
    half_consts: HashMap<TensorId, Vec<u16>>,
    /// Whether pruned fully-connected weights may be stored compressed ([`crate::sparse`]).
    sparse_weights: bool,
    /// [`Program::notes`].
    notes: Vec<String>,
}

fn op_err(index: usize, op: &Op, message: impl Into<String>) -> CompileError {
    CompileError::Op {
        index,
        op: op.kind.name(),
        message: message.into(),
    }
}

fn fused(act: Activation) -> FusedActivation {
    match act {
        Activation::None => FusedActivation::None,
        Activation::Relu => FusedActivation::Relu,
        Activation::Relu6 => FusedActivation::Relu6,
    }
}

/// Input, filter and output dimensions of a convolution, all of which must be 4D.
fn filter_dims(
    index: usize,
    op: &Op,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<(Dims, Dims, Dims), CompileError> {
    match (dims4(x), dims4(w), dims4(y)) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(op_err(
            index,
            op,
            "input, filter and output must be 4D (NHWC / OHWI)",
        )),
    }
}

fn dims4(t: &Tensor) -> Option<Dims> {
    match t.shape.as_slice() {
        [n, h, w, c] => Some([*n, *h, *w, *c]),
        _ => None,
    }
}

/// Constant int8 or packed sub-byte weights as int8 values.
fn i8_data(t: &Tensor) -> Option<Vec<i8>> {
    t.weights_i8()
}

/// Bits per weight of a weight tensor (8 unless it is packed sub-byte).
fn weight_bits(t: &Tensor) -> u32 {
    match t.dtype {
        DType::I4 => 4,
        DType::I2 => 2,
        _ => 8,
    }
}

/// Flash bytes of `count` weights as `t` stores them.
fn stored_weight_bytes(t: &Tensor, count: usize) -> usize {
    (count * weight_bits(t) as usize).div_ceil(8)
}

/// Sub-byte weights kept packed: kinglet-m4 `ConvWeights::Int4` or `Int2` over `bytes`.
fn sub_byte_weights(bits: u32, bytes: Vec<u8>) -> ConvWeights {
    match bits {
        4 => ConvWeights::Int4(bytes),
        _ => ConvWeights::Int2(bytes),
    }
}

/// (scale, zero point) of a per-tensor quantised int8 activation.
fn activation_quant(t: &Tensor) -> Option<(f32, i32)> {
    let q = t.quant.as_ref()?;
    (t.dtype == DType::I8 && q.is_per_tensor()).then(|| (q.scale[0], q.zero_point[0]))
}

impl<'g> Lowering<'g> {
    fn new(graph: &'g Graph, kernels: KernelSet) -> Result<Self, CompileError> {
        if graph.inputs.is_empty() || graph.outputs.len() != 1 {
            return Err(CompileError::Unsupported(format!(
                "compiled models take one or more inputs and one output; this graph has {} and {}",
                graph.inputs.len(),
                graph.outputs.len()
            )));
        }
        let ends = graph
            .inputs
            .iter()
            .map(|&id| ("input", id))
            .chain([("output", graph.outputs[0])])
            .map(|(what, id)| {
                graph.tensors.get(id.0).map(|t| (what, t)).ok_or_else(|| {
                    CompileError::Unsupported(format!("graph {what} {id} does not exist"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let float = float::is_float_model(&ends.iter().map(|&(_, t)| t).collect::<Vec<_>>())?;
        let s16 = !float && ends.iter().any(|(_, t)| t.dtype == DType::I16);
        for &(what, t) in ends.iter().filter(|_| !float) {
            let fits = if s16 {
                s16::scale16(t).is_some()
            } else {
                activation_quant(t).is_some()
            };
            if !fits {
                return Err(CompileError::Unsupported(format!(
                    "graph {what} '{}' is {}; compiled models are per-tensor int8, symmetric \
                     int16 (a16w8, at every input and the output) or float32",
                    t.name, t.dtype
                )));
            }
        }
        let mut readers = HashMap::new();
        for op in &graph.ops {
            for &i in &op.inputs {
                *readers.entry(i).or_insert(0) += 1;
            }
        }
        let mut locs = HashMap::new();
        if let [only] = graph.inputs.as_slice() {
            locs.insert(*only, Loc::Input);
        } else {
            // The caller's input array holds the graph inputs end to end, in graph order.
            let mut offset = 0;
            for &id in &graph.inputs {
                let len = graph.tensor(id).elements();
                locs.insert(id, Loc::InputPart { offset, len });
                offset += len;
            }
        }
        Ok(Lowering {
            graph,
            kernels,
            locs,
            buffers: Vec::new(),
            steps: Vec::new(),
            layers: Vec::new(),
            readers,
            float,
            s16,
            half_consts: HashMap::new(),
            sparse_weights: true,
            notes: Vec::new(),
        })
    }

    fn tensor(&self, index: usize, op: &Op, id: TensorId) -> Result<&'g Tensor, CompileError> {
        self.graph
            .tensors
            .get(id.0)
            .ok_or_else(|| op_err(index, op, format!("tensor {id} does not exist")))
    }

    /// The op's first output, by id and tensor.
    fn output(&self, index: usize, op: &Op) -> Result<(TensorId, &'g Tensor), CompileError> {
        let id = *op
            .outputs
            .first()
            .ok_or_else(|| op_err(index, op, "no output"))?;
        Ok((id, self.tensor(index, op, id)?))
    }

    /// The op's optional constant int32 bias (input 2), which must hold `len` values (one per
    /// entry of `what`).
    fn bias(
        &self,
        index: usize,
        op: &Op,
        len: usize,
        what: &str,
    ) -> Result<Option<Vec<i32>>, CompileError> {
        let Some(&b) = op.inputs.get(2) else {
            return Ok(None);
        };
        let bias = self
            .tensor(index, op, b)?
            .data_i32()
            .ok_or_else(|| op_err(index, op, "bias must be constant int32"))?;
        if bias.len() != len {
            return Err(op_err(
                index,
                op,
                format!("bias length differs from the {what}"),
            ));
        }
        Ok(Some(bias))
    }

    fn input(&self, index: usize, op: &Op, slot: usize) -> Result<&'g Tensor, CompileError> {
        let id = *op
            .inputs
            .get(slot)
            .ok_or_else(|| op_err(index, op, format!("missing input {slot}")))?;
        self.tensor(index, op, id)
    }

    fn src_loc(&self, index: usize, op: &Op) -> Result<Loc, CompileError> {
        let id = *op
            .inputs
            .first()
            .ok_or_else(|| op_err(index, op, "op has no input"))?;
        self.locs.get(&id).copied().ok_or_else(|| {
            op_err(
                index,
                op,
                format!("input {id} is neither the graph input nor produced earlier"),
            )
        })
    }

    fn new_buffer(&mut self, name: &str, elem: Elem, len: usize) -> Loc {
        self.buffers.push(Buffer {
            name: name.to_owned(),
            elem,
            len,
            offset: 0,
        });
        Loc::Arena(self.buffers.len() - 1)
    }

    /// Location for an op's output tensor: the caller's output array or a new arena buffer
    /// (int16 for a16w8 activations, else int8).
    fn dst_loc(&mut self, id: TensorId) -> Loc {
        let loc = if self.graph.outputs[0] == id {
            Loc::Output
        } else {
            let t = self.graph.tensor(id);
            let name = format!("t{}_{}", id.0, sanitize(&t.name));
            let elem = if t.dtype == DType::I16 {
                Elem::I16
            } else {
                Elem::I8
            };
            self.new_buffer(&name, elem, t.elements())
        };
        self.locs.insert(id, loc);
        loc
    }

    fn run(mut self) -> Result<Program, CompileError> {
        let ops = &self.graph.ops;
        let mut index = 0;
        while index < ops.len() {
            let op = &ops[index];
            if self.float {
                index += self.float_op(index, op)?;
                continue;
            }
            if self.s16 {
                index += self.s16_op(index, op)?;
                continue;
            }
            let consumed = match &op.kind {
                OpKind::Reshape { .. } => self.reshape(index, op)?,
                OpKind::Conv2D { .. } => self.conv(index, op)?,
                OpKind::MaxPool2D { .. } => self.max_pool(index, op)?,
                OpKind::FullyConnected { .. } => self.fully_connected(index, op)?,
                OpKind::Concatenation { .. } => self.concatenation(index, op)?,
                OpKind::DepthwiseConv2D { .. } => self.depthwise(index, op)?,
                OpKind::Mean { .. } => self.mean(index, op)?,
                other => {
                    return Err(op_err(
                        index,
                        op,
                        format!("{} has no compiled kernel yet", other.name()),
                    ));
                }
            };
            index += consumed;
        }
        let out = self.graph.outputs[0];
        if self.locs.get(&out) != Some(&Loc::Output) {
            return Err(CompileError::Unsupported(
                "the graph output is not produced by any op (or is the input itself)".into(),
            ));
        }
        let input_lens: Vec<usize> = (self.graph.inputs.iter())
            .map(|&id| self.graph.tensor(id).elements())
            .collect();
        let input_len = input_lens.iter().sum();
        let output_len = self.graph.tensor(out).elements();
        let arena_bytes = plan_arena(&mut self.buffers, &self.steps);
        Ok(Program {
            per_width: None,
            kernels: self.kernels,
            input_len,
            input_lens,
            output_len,
            io: match (self.float, self.s16) {
                (true, _) => Elem::F32,
                (_, true) => Elem::I16,
                _ => Elem::I8,
            },
            buffers: self.buffers,
            steps: self.steps,
            layers: self.layers,
            arena_bytes,
            notes: self.notes,
            blobs: Default::default(),
        })
    }

    /// A convolution's geometry as steps store it: stride h, stride w, dilation h, dilation
    /// w, pad top, pad left.
    fn conv_geometry(
        &self,
        index: usize,
        op: &Op,
        xd: [usize; 4],
        wd: [usize; 4],
    ) -> Result<[usize; 6], CompileError> {
        let (stride, dilation, padding) = match &op.kind {
            OpKind::Conv2D {
                stride,
                dilation,
                padding,
                ..
            }
            | OpKind::DepthwiseConv2D {
                stride,
                dilation,
                padding,
                ..
            } => (*stride, *dilation, *padding),
            _ => unreachable!("dispatched on convolutions"),
        };
        let geometry = |size, k, s, d| {
            axis_geometry(pad_kind(padding), size, k, s, d)
                .map(|g| g.pad_before)
                .map_err(|e| op_err(index, op, format!("geometry: {e}")))
        };
        Ok([
            stride.h,
            stride.w,
            dilation.h,
            dilation.w,
            geometry(xd[1], wd[1], stride.h, dilation.h)?,
            geometry(xd[2], wd[2], stride.w, dilation.w)?,
        ])
    }

    /// A MAX_POOL_2D or AVERAGE_POOL_2D window as steps store it: filter h, filter w, stride h, stride w, pad
    /// top, pad left.
    fn pool_window(
        &self,
        index: usize,
        op: &Op,
        xd: [usize; 4],
    ) -> Result<[usize; 6], CompileError> {
        let (OpKind::MaxPool2D {
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
        }) = op.kind
        else {
            unreachable!("dispatched on pools");
        };
        let pad = |size, k, s| {
            axis_geometry(pad_kind(padding), size, k, s, 1)
                .map(|g| g.pad_before)
                .map_err(|e| op_err(index, op, format!("geometry: {e}")))
        };
        Ok([
            filter.h,
            filter.w,
            stride.h,
            stride.w,
            pad(xd[1], filter.h, stride.h)?,
            pad(xd[2], filter.w, stride.w)?,
        ])
    }

    /// Says that op `index` stores its sub-byte weights `w` as int8 in flash (`why`: no
    /// packed kernel runs it), so a fallback never widens flash silently.
    fn note_int8_weights(&mut self, index: usize, op: &Op, w: &Tensor, why: &str) {
        if weight_bits(w) < 8 {
            self.notes.push(format!(
                "op {index} ({}): {} weights '{}' stored as int8 in flash ({why})",
                op.kind.name(),
                w.dtype,
                w.name
            ));
        }
    }

    fn push_layer(&mut self, name: String, ops: Vec<usize>, macs: usize) -> usize {
        self.layers.push(Layer { name, ops, macs });
        self.layers.len() - 1
    }

    fn reshape(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let src = self.src_loc(index, op)?;
        let out = *op
            .outputs
            .first()
            .ok_or_else(|| op_err(index, op, "no output"))?;
        if out == self.graph.outputs[0] {
            // The graph output lives in the caller's array: copy into it.
            let len = self.tensor(index, op, out)?.elements();
            let layer = self.push_layer("RESHAPE".into(), vec![index], 0);
            self.locs.insert(out, Loc::Output);
            self.steps.push(Step {
                layer,
                kind: StepKind::Copy {
                    src,
                    dst: Loc::Output,
                    len,
                },
            });
        } else {
            // Row-major data is unchanged by a reshape: alias the input's buffer.
            self.locs.insert(out, src);
        }
        Ok(1)
    }

    /// Requantisation table for an op with input `x`, filter `w` and output `y`, one entry
    /// per channel. `fully_connected` selects TFLite's reference fully-connected
    /// requantisation (double-precision scales, per tensor or per channel), as kinglet-graph's
    /// interpreter does with reference kernels; convolutions get Q31 multipliers.
    #[allow(clippy::too_many_arguments)]
    fn requant(
        &self,
        index: usize,
        op: &Op,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        channels: usize,
        act: Activation,
        fully_connected: bool,
    ) -> Result<RequantData, CompileError> {
        let (xs, _) = activation_quant(x)
            .ok_or_else(|| op_err(index, op, "input must be per-tensor int8"))?;
        let (ys, yz) = activation_quant(y)
            .ok_or_else(|| op_err(index, op, "output must be per-tensor int8"))?;
        let wq = weight_scales(index, op, w, channels)?;
        let (mut multipliers, mut shifts, mut scales) = (Vec::new(), Vec::new(), Vec::new());
        if fully_connected {
            scales = vec![0.0; channels];
            fc_reference_scales(xs, wq, ys, &mut scales)
                .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
            if let Some(bad) = scales.iter().position(|s| !s.is_finite()) {
                return Err(op_err(
                    index,
                    op,
                    format!("requantisation scale of output {bad} is not finite"),
                ));
            }
        } else {
            multipliers = vec![0; channels];
            shifts = vec![0; channels];
            conv_output_multipliers(xs, wq, ys, &mut multipliers, &mut shifts)
                .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
        }
        let (act_min, act_max) = activation_range_quantized(fused(act), ys, yz, -128, 127);
        Ok(RequantData {
            multipliers,
            shifts,
            scales,
            output_offset: yz,
            act_min,
            act_max,
        })
    }

    fn conv(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Conv2D {
            stride,
            dilation,
            padding,
            activation,
        } = op.kind.clone()
        else {
            unreachable!("dispatched on Conv2D");
        };
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, wd, yd) = filter_dims(index, op, x, w, y)?;
        let weights =
            i8_data(w).ok_or_else(|| op_err(index, op, "filter must be constant int8"))?;
        let out_ch = wd[0];
        let bias = self.bias(index, op, out_ch, "output channels")?;
        let (_, xz) = activation_quant(x)
            .ok_or_else(|| op_err(index, op, "input must be per-tensor int8"))?;
        let requant = self.requant(index, op, x, w, y, out_ch, activation, false)?;
        let macs = yd[1] * yd[2] * out_ch * wd[1] * wd[2] * wd[3];
        let src = self.src_loc(index, op)?;

        // Pruned filters: compressed when that saves more flash than the sparse kernel's code
        // costs.
        let taps = kinglet_micro::fully_connected::FcShape {
            batches: 1,
            in_features: wd[1] * wd[2] * wd[3],
            out_features: out_ch,
        };
        if self.sparse_weights
            && let Some(compressed) = crate::sparse::compress_if_smaller(
                taps,
                &weights,
                stored_weight_bytes(w, weights.len())
                    .saturating_sub(crate::sparse::CONV_CODE_BYTES),
            )
        {
            let geometry = self.conv_geometry(index, op, xd, wd)?;
            let layer = self.push_layer(
                "CONV_2D(sparse)".into(),
                vec![index],
                yd[1] * yd[2] * compressed.nonzero(),
            );
            let dst = self.dst_loc(out_id);
            self.steps.push(Step {
                layer,
                kind: StepKind::SparseConv(crate::sparse::SparseConvStep {
                    src,
                    dst,
                    input: xd,
                    output: yd,
                    filter: wd,
                    geometry,
                    weights: compressed,
                    bias,
                    input_offset: -xz,
                    requant,
                }),
            });
            return Ok(1);
        }

        // 1D convolutions (any kernel size, SAME or VALID; pointwise ones are kernel 1) run
        // on the DSP kernel; output position x reads the padded window starting at x.
        let kernel = wd[2];
        let har_geometry = axis_geometry(pad_kind(padding), xd[2], kernel, 1, 1).ok();
        let is_har_conv = self.kernels == KernelSet::CortexM4
            && xd[0] == 1
            && xd[1] == 1
            && wd[1] == 1
            && wd[3] == xd[3]
            && stride.h == 1
            && stride.w == 1
            && (dilation.w == 1 || kernel == 1)
            && har_geometry.is_some_and(|g| yd == [1, 1, g.out, out_ch]);
        if let (true, Some(geometry)) = (is_har_conv, har_geometry) {
            let (width, in_ch) = (geometry.out, xd[3]);
            // A following 2-wide max pool that is this conv's only reader folds into it.
            let pool = self.graph.ops.get(index + 1).filter(|next| {
                matches!(next.kind, OpKind::MaxPool2D { filter, stride, padding, activation: Activation::None }
                    if filter.h == 1 && filter.w == 2 && stride.h == 1 && stride.w == 2
                        && (padding == Padding::Valid || width % 2 == 0))
                    && next.inputs.first() == Some(&out_id)
                    && self.readers.get(&out_id) == Some(&1)
                    && self.graph.outputs[0] != out_id
            });
            let (layer_name, ops, final_out) = match pool {
                Some(next) => (
                    "CONV_2D+MAX_POOL_2D".to_owned(),
                    vec![index, index + 1],
                    *next
                        .outputs
                        .first()
                        .ok_or_else(|| op_err(index + 1, next, "no output"))?,
                ),
                None => ("CONV_2D".to_owned(), vec![index], out_id),
            };
            let row = kinglet_m4::conv1d_row_len(in_ch, kernel);
            let packing = |_| op_err(index, op, "filter size disagrees with its shape");
            // Narrow (int8) weights halve their flash for about one instruction per weight
            // (plus the widening loop's code): worth it for layers with enough weights, each
            // serving many output positions.
            let narrow = width >= NARROW_WEIGHTS_MIN_POSITIONS
                && weights.len() >= NARROW_WEIGHTS_MIN_COUNT
                && 4 * kinglet_m4::conv1d_scratch_words(out_ch, row) <= NARROW_SCRATCH_MAX_BYTES;
            // Sub-byte weights stay packed whatever the layer's size (their point is flash).
            let bits = weight_bits(w);
            let sub_byte = bits < 8
                && 4 * kinglet_m4::subbyte::packed_scratch_words(bits, out_ch, row)
                    <= NARROW_SCRATCH_MAX_BYTES;
            if bits < 8 && !sub_byte {
                self.note_int8_weights(index, op, w, "unpacking a block of them needs more stack than NARROW_SCRATCH_MAX_BYTES; widened to i16");
            }
            let packed = if sub_byte {
                let block = kinglet_m4::channel_block(out_ch);
                let mut bytes = vec![
                    0u8;
                    out_ch / block
                        * kinglet_m4::subbyte::packed_block_bytes(bits, block, row)
                ];
                kinglet_m4::subbyte::pack_weights_bits(
                    &weights,
                    out_ch,
                    kernel * in_ch,
                    bits,
                    &mut bytes,
                )
                .map_err(packing)?;
                sub_byte_weights(bits, bytes)
            } else if narrow {
                let block = kinglet_m4::channel_block(out_ch);
                let mut narrow =
                    vec![0i8; out_ch / block * kinglet_m4::narrow_block_bytes(block, row)];
                kinglet_m4::pack_weights_narrow(&weights, out_ch, kernel * in_ch, &mut narrow)
                    .map_err(packing)?;
                ConvWeights::Narrow(narrow)
            } else {
                let mut wide = vec![0i16; out_ch * row];
                kinglet_m4::pack_weights(&weights, out_ch, kernel * in_ch, &mut wide)
                    .map_err(packing)?;
                ConvWeights::Wide(wide)
            };
            let folded = fold_zero_point(bias.as_deref(), &weights, out_ch, xz);
            let layer = self.push_layer(layer_name, ops, macs);
            let padded = self.new_buffer(
                &format!("op{index}_widened"),
                Elem::I16,
                kinglet_m4::conv1d_padded_len(width, in_ch, kernel),
            );
            let dst = self.dst_loc(final_out);
            self.steps.push(Step {
                layer,
                kind: StepKind::Widen {
                    src,
                    dst: padded,
                    in_ch,
                    zero_point: xz as i8,
                    pad_before: geometry.pad_before,
                },
            });
            self.steps.push(Step {
                layer,
                kind: StepKind::Conv1d {
                    src: padded,
                    dst,
                    width,
                    in_ch,
                    out_ch,
                    kernel,
                    pool: pool.is_some(),
                    weights: packed,
                    bias: folded,
                    requant,
                },
            });
            return Ok(if pool.is_some() { 2 } else { 1 });
        }

        let geometry = self.conv_geometry(index, op, xd, wd)?;
        // Other 2D convolutions: kinglet-m4's 2D DSP kernel where the shape fits.
        if self.kernels == KernelSet::CortexM4
            && crate::conv2d_dsp::fits(xd, yd, wd, geometry)
            && (-128..=127).contains(&xz)
            && requant.scales.is_empty()
        {
            let padded = self.new_buffer(
                &format!("op{index}_padded"),
                Elem::I16,
                crate::conv2d_dsp::DspConv2dStep::padded_len(false, xd, yd, wd, geometry),
            );
            let dst = self.dst_loc(out_id);
            let step = crate::conv2d_dsp::DspConv2dStep::new(
                false, src, dst, padded, xd, yd, wd, geometry, weights, bias, -xz, requant,
            )
            .ok_or_else(|| op_err(index, op, "filter size disagrees with its shape"))?;
            self.note_int8_weights(
                index,
                op,
                w,
                "the 2D convolution kernel has no packed variant",
            );
            let layer = self.push_layer("CONV_2D".into(), vec![index], macs);
            self.steps.push(Step {
                layer,
                kind: StepKind::DspConv2D(step),
            });
            return Ok(1);
        }
        self.note_int8_weights(index, op, w, "reference kernel");
        let layer = self.push_layer("CONV_2D".into(), vec![index], macs);
        let dst = self.dst_loc(out_id);
        self.steps.push(Step {
            layer,
            kind: StepKind::RefConv2D {
                src,
                dst,
                input: xd,
                output: yd,
                filter: wd,
                geometry,
                weights,
                bias,
                input_offset: -xz,
                requant,
            },
        });
        Ok(1)
    }

    fn max_pool(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::MaxPool2D { activation, .. } = op.kind.clone() else {
            unreachable!("dispatched on MaxPool2D");
        };
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, yd) = match (dims4(x), dims4(y)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(op_err(index, op, "input and output must be 4D NHWC")),
        };
        let (ys, yz) = activation_quant(y)
            .ok_or_else(|| op_err(index, op, "output must be per-tensor int8"))?;
        let (act_min, act_max) = activation_range_quantized(fused(activation), ys, yz, -128, 127);
        let window = self.pool_window(index, op, xd)?;
        let src = self.src_loc(index, op)?;
        let layer = self.push_layer("MAX_POOL_2D".into(), vec![index], 0);
        let dst = self.dst_loc(out_id);
        self.steps.push(Step {
            layer,
            kind: StepKind::RefMaxPool2D {
                src,
                dst,
                input: xd,
                output: yd,
                window,
                act_min,
                act_max,
            },
        });
        Ok(1)
    }

    fn fully_connected(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::FullyConnected { activation, .. } = op.kind.clone() else {
            unreachable!("dispatched on FullyConnected");
        };
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (batches, in_len, out_len) = fc_dims(index, op, x, w)?;
        let weights =
            i8_data(w).ok_or_else(|| op_err(index, op, "weights must be constant int8"))?;
        let bias = self.bias(index, op, out_len, "output size")?;
        let (_, xz) = activation_quant(x)
            .ok_or_else(|| op_err(index, op, "input must be per-tensor int8"))?;
        let requant = self.requant(index, op, x, w, y, out_len, activation, true)?;
        let src = self.src_loc(index, op)?;
        let dsp = self.kernels == KernelSet::CortexM4 && batches == 1;
        // Pruned weights: compressed when that takes less flash than dense int8 (what the DSP
        // kernel keeps too); unpruned layers keep their dense kernels.
        let shape = kinglet_micro::fully_connected::FcShape {
            batches,
            in_features: in_len,
            out_features: out_len,
        };
        if self.sparse_weights
            && let Some(compressed) = crate::sparse::compress_if_smaller(
                shape,
                &weights,
                stored_weight_bytes(w, weights.len()),
            )
        {
            let layer = self.push_layer(
                "FULLY_CONNECTED(sparse)".into(),
                vec![index],
                batches * compressed.nonzero(),
            );
            let dst = self.dst_loc(out_id);
            self.steps.push(Step {
                layer,
                kind: StepKind::SparseFc(crate::sparse::SparseFcStep {
                    src,
                    dst,
                    batches,
                    in_len,
                    out_len,
                    weights: compressed,
                    bias,
                    input_offset: -xz,
                    requant,
                }),
            });
            return Ok(1);
        }
        let layer = self.push_layer(
            "FULLY_CONNECTED".into(),
            vec![index],
            batches * in_len * out_len,
        );
        if dsp {
            // int8 in flash, widened in registers as they are read (each weight is used once
            // per inference): half the weight flash for one `SXTB16` per weight pair. The
            // narrow kernel's code is no larger than the wide one's, so this pays for every
            // layer (measured down to 288 weights).
            let row = kinglet_m4::fc_row_len(in_len);
            let block = kinglet_m4::channel_block(out_len);
            let packing = |_| op_err(index, op, "weights size disagrees with their shape");
            // Sub-byte weights are unpacked in registers too (kinglet-m4 subbyte).
            let bits = weight_bits(w);
            let packed = if bits < 8 && row <= kinglet_m4::subbyte::PACKED_FC_MAX_ROW {
                let mut bytes = vec![
                    0u8;
                    out_len / block
                        * kinglet_m4::subbyte::packed_block_bytes(bits, block, row)
                ];
                kinglet_m4::subbyte::pack_weights_bits(&weights, out_len, in_len, bits, &mut bytes)
                    .map_err(packing)?;
                sub_byte_weights(bits, bytes)
            } else {
                self.note_int8_weights(index, op, w, "row longer than the packed kernel takes");
                let mut narrow =
                    vec![0i8; out_len / block * kinglet_m4::narrow_block_bytes(block, row)];
                kinglet_m4::pack_weights_narrow(&weights, out_len, in_len, &mut narrow)
                    .map_err(packing)?;
                ConvWeights::Narrow(narrow)
            };
            let folded = fold_zero_point(bias.as_deref(), &weights, out_len, xz);
            let padded = self.new_buffer(
                &format!("op{index}_widened"),
                Elem::I16,
                kinglet_m4::fc_row_len(in_len),
            );
            let dst = self.dst_loc(out_id);
            self.steps.push(Step {
                layer,
                kind: StepKind::Widen {
                    src,
                    dst: padded,
                    in_ch: in_len,
                    zero_point: xz as i8,
                    pad_before: 0,
                },
            });
            self.steps.push(Step {
                layer,
                kind: StepKind::FullyConnectedQ15 {
                    src: padded,
                    dst,
                    in_len,
                    out_len,
                    weights: packed,
                    bias: folded,
                    requant,
                },
            });
        } else {
            self.note_int8_weights(index, op, w, "reference kernel");
            let dst = self.dst_loc(out_id);
            self.steps.push(Step {
                layer,
                kind: StepKind::RefFullyConnected {
                    src,
                    dst,
                    batches,
                    in_len,
                    out_len,
                    weights,
                    bias,
                    input_offset: -xz,
                    requant,
                },
            });
        }
        Ok(1)
    }

    fn depthwise(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            activation,
        } = op.kind.clone()
        else {
            unreachable!("dispatched on DepthwiseConv2D");
        };
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, wd, yd) = filter_dims(index, op, x, w, y)?;
        let weights =
            i8_data(w).ok_or_else(|| op_err(index, op, "filter must be constant int8"))?;
        let out_ch = yd[3];
        let bias = self.bias(index, op, out_ch, "output channels")?;
        let (_, xz) = activation_quant(x)
            .ok_or_else(|| op_err(index, op, "input must be per-tensor int8"))?;
        let requant = self.requant(index, op, x, w, y, out_ch, activation, false)?;
        let geometry = self.conv_geometry(index, op, xd, wd)?;
        let macs = yd[0] * yd[1] * yd[2] * out_ch * wd[1] * wd[2];
        let src = self.src_loc(index, op)?;
        let layer = self.push_layer("DEPTHWISE_CONV_2D".into(), vec![index], macs);
        let dst = self.dst_loc(out_id);
        let kernel = wd[2];
        let is_har_depthwise = self.kernels == KernelSet::CortexM4
            && depth_multiplier == 1
            && xd[0] == 1
            && xd[1] == 1
            && wd[0] == 1
            && wd[1] == 1
            && wd[3] == xd[3]
            && out_ch == xd[3]
            && (1..=kinglet_m4::DEPTHWISE_MAX_KERNEL).contains(&kernel)
            && stride.w == 1
            && (dilation.w == 1 || kernel == 1)
            && yd[..2] == [1, 1]
            && axis_geometry(pad_kind(padding), xd[2], kernel, 1, 1).is_ok_and(|g| g.out == yd[2]);
        if is_har_depthwise {
            let width = yd[2];
            let packing = |_| op_err(index, op, "filter size disagrees with its shape");
            let bits = weight_bits(w);
            let packed = if bits < 8 {
                let per_channel = kinglet_m4::subbyte::depthwise_packed_channel_bytes(bits, kernel);
                let mut bytes = vec![0u8; out_ch * per_channel];
                kinglet_m4::subbyte::pack_depthwise_weights_bits(
                    &weights, out_ch, kernel, bits, &mut bytes,
                )
                .map_err(packing)?;
                sub_byte_weights(bits, bytes)
            } else {
                let per_channel = 2 * kinglet_m4::depthwise_pairs(kernel);
                let mut wide = vec![0i16; out_ch * per_channel];
                kinglet_m4::pack_depthwise_weights(&weights, out_ch, kernel, &mut wide)
                    .map_err(packing)?;
                ConvWeights::Wide(wide)
            };
            let folded = fold_zero_point_depthwise(bias.as_deref(), &weights, out_ch, xz);
            let row_len = kinglet_m4::depthwise_row_len(width, kernel);
            let padded = self.new_buffer(
                &format!("op{index}_channel_major"),
                Elem::I16,
                out_ch * row_len,
            );
            self.steps.push(Step {
                layer,
                kind: StepKind::WidenChannelMajor {
                    src,
                    dst: padded,
                    channels: out_ch,
                    zero_point: xz as i8,
                    pad_before: geometry[5],
                    row_len,
                },
            });
            self.steps.push(Step {
                layer,
                kind: StepKind::Depthwise1d {
                    src: padded,
                    dst,
                    width,
                    channels: out_ch,
                    kernel,
                    weights: packed,
                    bias: folded,
                    requant,
                },
            });
            return Ok(1);
        }
        // Other depthwise convolutions with multiplier 1: kinglet-m4's 2D depthwise kernel.
        if self.kernels == KernelSet::CortexM4
            && crate::conv2d_dsp::fits_depthwise(xd, yd, wd, geometry, depth_multiplier)
            && (-128..=127).contains(&xz)
            && requant.scales.is_empty()
        {
            let padded = self.new_buffer(
                &format!("op{index}_planes"),
                Elem::I16,
                crate::conv2d_dsp::DspConv2dStep::padded_len(true, xd, yd, wd, geometry),
            );
            let step = crate::conv2d_dsp::DspConv2dStep::new(
                true, src, dst, padded, xd, yd, wd, geometry, weights, bias, -xz, requant,
            )
            .ok_or_else(|| op_err(index, op, "filter size disagrees with its shape"))?;
            self.note_int8_weights(
                index,
                op,
                w,
                "the 2D depthwise kernel has no packed variant",
            );
            self.steps.push(Step {
                layer,
                kind: StepKind::DspConv2D(step),
            });
            return Ok(1);
        }
        self.note_int8_weights(index, op, w, "reference kernel");
        self.steps.push(Step {
            layer,
            kind: StepKind::RefDepthwiseConv2D {
                src,
                dst,
                input: xd,
                output: yd,
                filter: wd,
                geometry,
                depth_multiplier,
                weights,
                bias,
                input_offset: -xz,
                requant,
            },
        });
        Ok(1)
    }

    fn mean(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Mean { axes, .. } = op.kind.clone() else {
            unreachable!("dispatched on Mean");
        };
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let view = mean_view(index, op, &axes, &x.shape)?;
        let (is, iz) = activation_quant(x)
            .ok_or_else(|| op_err(index, op, "input must be per-tensor int8"))?;
        let (os, oz) = activation_quant(y)
            .ok_or_else(|| op_err(index, op, "output must be per-tensor int8"))?;
        let count: usize = view[1];
        if count == 0 || !(is > 0.0 && os > 0.0) {
            return Err(op_err(index, op, "empty mean or non-positive scales"));
        }
        let (multiplier, shift) = mean_requant(index, op, is, os, count)?;
        let src = self.src_loc(index, op)?;
        let layer = self.push_layer("MEAN".into(), vec![index], 0);
        let dst = self.dst_loc(out_id);
        self.steps.push(Step {
            layer,
            kind: StepKind::RefMean {
                src,
                dst,
                view,
                scales: [is, os],
                input_zero_point: iz,
                output_zero_point: oz,
                multiplier,
                shift,
            },
        });
        Ok(1)
    }

    fn concatenation(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Concatenation { axis, activation } = op.kind.clone() else {
            unreachable!("dispatched on Concatenation");
        };
        if activation != Activation::None {
            return Err(op_err(index, op, "a fused activation is not supported"));
        }
        let (_, y) = self.output(index, op)?;
        let y_quant = activation_quant(y)
            .ok_or_else(|| op_err(index, op, "output must be per-tensor int8"))?;
        self.concatenation_copies(index, op, axis, false, |slot, x| {
            // TFLite quantises every CONCATENATION input like its output; a copy is then exact.
            if activation_quant(x) != Some(y_quant) {
                return Err(format!(
                    "input {slot} is not quantised like the output (requantising concatenation is not compiled)"
                ));
            }
            if x.shape.len() != y.shape.len() || x.shape[..axis] != y.shape[..axis] {
                return Err(format!(
                    "input {slot} shape {:?} does not fit output {:?}",
                    x.shape, y.shape
                ));
            }
            Ok(())
        })
    }

    /// CONCATENATION as plain copies (`ConcatPart` steps), shared by the int8 and float
    /// lowerings: `input_fits` rejects an input a copy would not carry over exactly, `float`
    /// picks an f32 output buffer.
    fn concatenation_copies(
        &mut self,
        index: usize,
        op: &Op,
        axis: usize,
        float: bool,
        input_fits: impl Fn(usize, &Tensor) -> Result<(), String>,
    ) -> Result<usize, CompileError> {
        let (out_id, y) = self.output(index, op)?;
        if axis >= y.shape.len() {
            return Err(op_err(index, op, format!("axis {axis} out of range")));
        }
        let outer: usize = y.shape[..axis].iter().product();
        let dst_inner: usize = y.shape[axis..].iter().product();
        let mut parts = Vec::with_capacity(op.inputs.len());
        let mut dst_offset = 0;
        for slot in 0..op.inputs.len() {
            let x = self.input(index, op, slot)?;
            input_fits(slot, x).map_err(|message| op_err(index, op, message))?;
            let src = self.locs.get(&op.inputs[slot]).copied().ok_or_else(|| {
                op_err(
                    index,
                    op,
                    format!("input {slot} is neither a graph input nor produced earlier"),
                )
            })?;
            let src_inner: usize = x.shape[axis..].iter().product();
            parts.push((src, src_inner, dst_offset));
            dst_offset += src_inner;
        }
        if dst_offset != dst_inner {
            return Err(op_err(
                index,
                op,
                "input sizes do not add up to the output size",
            ));
        }
        let layer = self.push_layer("CONCATENATION".into(), vec![index], 0);
        let dst = if float {
            self.float_dst(out_id)
        } else {
            self.dst_loc(out_id)
        };
        for (src, src_inner, dst_offset) in parts {
            self.steps.push(Step {
                layer,
                kind: StepKind::ConcatPart {
                    src,
                    dst,
                    outer,
                    src_inner,
                    dst_inner,
                    dst_offset,
                },
            });
        }
        Ok(1)
    }
}

/// DSP convolutions with at least this many output positions and
/// [`NARROW_WEIGHTS_MIN_COUNT`] weights keep their weights int8 in flash (kinglet-m4
/// `ConvWeights::Narrow`): widening a block of weights costs about one instruction per weight,
/// against `positions` multiply-accumulates per weight.
pub const NARROW_WEIGHTS_MIN_POSITIONS: usize = 32;

/// Below this many weights, the bytes narrow storage saves do not pay for its widening code.
pub const NARROW_WEIGHTS_MIN_COUNT: usize = 256;

/// Largest stack buffer (one block of widened weights) a narrow-weight layer may use.
pub const NARROW_SCRATCH_MAX_BYTES: usize = 2048;

/// A MEAN over one contiguous run of axes as `[outer, reduced, 1, inner]`, the view the host
/// interpreter reduces (int8 and float lowering alike).
pub(crate) fn mean_view(
    index: usize,
    op: &Op,
    axes: &[usize],
    dims: &[usize],
) -> Result<[usize; 4], CompileError> {
    match (axes.first(), axes.last()) {
        (Some(&first), Some(&last))
            if last.checked_sub(first).map(|d| d + 1) == Some(axes.len()) && last < dims.len() =>
        {
            Ok([
                dims[..first].iter().product(),
                dims[first..=last].iter().product(),
                1,
                dims[last + 1..].iter().product(),
            ])
        }
        _ => Err(op_err(
            index,
            op,
            format!("mean over axes {axes:?} (only one contiguous run compiles)"),
        )),
    }
}

/// The symmetric per-tensor or per-channel scales of weights `w` for `channels` outputs.
fn weight_scales<'t>(
    index: usize,
    op: &Op,
    w: &'t Tensor,
    channels: usize,
) -> Result<&'t [f32], CompileError> {
    let wq = w
        .quant
        .as_ref()
        .ok_or_else(|| op_err(index, op, "weights are not quantised"))?;
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(op_err(
            index,
            op,
            "int8 weights must be symmetric (zero point 0)",
        ));
    }
    if wq.scale.len() != 1 && wq.scale.len() != channels {
        return Err(op_err(
            index,
            op,
            format!(
                "{} weight scales for {channels} output channels",
                wq.scale.len()
            ),
        ));
    }
    Ok(&wq.scale)
}

/// The integer requantisation kinglet-micro's 8- and 16-bit means derive from the scales and
/// the reduced `count`, precomputed for the C kernels: `mbqm(Σx − zp_in·count, multiplier,
/// shift) + zp_out`.
fn mean_requant(
    index: usize,
    op: &Op,
    input_scale: f32,
    output_scale: f32,
    count: usize,
) -> Result<(i32, i32), CompileError> {
    let (multiplier, shift) = quantize_multiplier(f64::from(input_scale) / f64::from(output_scale))
        .and_then(|(m, s)| check_shift(s).map(|()| (m, s)))
        .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
    let count = count as i64;
    let log2 = 63 - (count as u64).leading_zeros() as i32;
    let k = log2.min(32).min(31 + shift);
    Ok((((i64::from(multiplier) << k) / count) as i32, shift - k))
}

/// `bias − zp_in · Σ w` per output channel: padding cells and the widened activations keep
/// the raw zero point, so the kernels never subtract it per MAC.
pub(crate) fn fold_zero_point(
    bias: Option<&[i32]>,
    weights: &[i8],
    out_ch: usize,
    zero_point: i32,
) -> Vec<i32> {
    let row = weights.len() / out_ch.max(1);
    let sums = (0..out_ch).map(|o| {
        weights[o * row..(o + 1) * row]
            .iter()
            .map(|&v| i32::from(v))
            .sum()
    });
    fold_sums(bias, sums, zero_point)
}

/// [`fold_zero_point`] for a depthwise filter, whose channel `c` has the taps
/// `weights[t·channels + c]`.
pub(crate) fn fold_zero_point_depthwise(
    bias: Option<&[i32]>,
    weights: &[i8],
    channels: usize,
    zero_point: i32,
) -> Vec<i32> {
    let taps = weights.len() / channels.max(1);
    let sums = (0..channels).map(|c| {
        (0..taps)
            .map(|t| i32::from(weights[t * channels + c]))
            .sum()
    });
    fold_sums(bias, sums, zero_point)
}

/// `bias[o] − zero_point · sums[o]` per output channel (wrapping, as the kernels add).
fn fold_sums(bias: Option<&[i32]>, sums: impl Iterator<Item = i32>, zero_point: i32) -> Vec<i32> {
    sums.enumerate()
        .map(|(o, sum)| {
            bias.map_or(0, |b| b[o])
                .wrapping_sub(zero_point.wrapping_mul(sum))
        })
        .collect()
}

/// A FULLY_CONNECTED's (batches, in_len, out_len) from its 2D `[out, in]` weights; the
/// input's element count must be a multiple of `in_len`.
fn fc_dims(
    index: usize,
    op: &Op,
    x: &Tensor,
    w: &Tensor,
) -> Result<(usize, usize, usize), CompileError> {
    let [out_len, in_len] = w.shape.as_slice() else {
        return Err(op_err(index, op, "weights must be 2D [out, in]"));
    };
    let (out_len, in_len) = (*out_len, *in_len);
    if in_len == 0 || !x.elements().is_multiple_of(in_len) {
        return Err(op_err(
            index,
            op,
            format!(
                "input of {} elements is not a multiple of {in_len}",
                x.elements()
            ),
        ));
    }
    Ok((x.elements() / in_len, in_len, out_len))
}

fn pad_kind(p: Padding) -> PaddingKind {
    match p {
        Padding::Same => PaddingKind::Same,
        Padding::Valid => PaddingKind::Valid,
    }
}

/// A tensor name reduced to identifier characters.
pub(crate) fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_');
    let mut short: String = s.chars().take(24).collect();
    if short.is_empty() {
        short.push('t');
    }
    short
}
