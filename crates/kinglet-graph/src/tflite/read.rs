//! `.tflite` → [`Graph`].

use std::collections::BTreeMap;

use super::schema::{self, activation, builtin_op as op, padding, tensor_type};
use super::sparse;
use crate::error::GraphError;
use crate::graph::{
    Activation, DType, Graph, Hw, Op, OpKind, Padding, QuantParams, Tensor, TensorId,
};

/// Highest op version whose semantics the reader maps (newer versions add types or
/// features kinglet's kernels do not implement).
fn max_version(code: i32) -> Option<(&'static str, i32)> {
    Some(match code {
        op::ADD => ("ADD", 5),
        op::AVERAGE_POOL_2D => ("AVERAGE_POOL_2D", 4),
        op::CONCATENATION => ("CONCATENATION", 4),
        op::CONV_2D => ("CONV_2D", 6),
        op::DEPTHWISE_CONV_2D => ("DEPTHWISE_CONV_2D", 7),
        op::DEQUANTIZE => ("DEQUANTIZE", 6),
        op::FULLY_CONNECTED => ("FULLY_CONNECTED", 11),
        op::MAX_POOL_2D => ("MAX_POOL_2D", 4),
        op::RESHAPE => ("RESHAPE", 2),
        // TF2's Conv1D lowering wraps CONV_2D in EXPAND_DIMS / SQUEEZE: both are reshapes.
        op::EXPAND_DIMS => ("EXPAND_DIMS", 3),
        op::SQUEEZE => ("SQUEEZE", 2),
        op::SOFTMAX => ("SOFTMAX", 3),
        op::PAD => ("PAD", 4),
        op::MEAN => ("MEAN", 3),
        op::QUANTIZE => ("QUANTIZE", 3),
        op::DENSIFY => ("DENSIFY", 3),
        _ => return None,
    })
}

fn malformed(m: impl Into<String>) -> GraphError {
    GraphError::Malformed(m.into())
}

/// Parses and validates a `.tflite` flatbuffer. Never panics on bad bytes: the flatbuffer is
/// verified first, and every index read from it is bounds-checked.
pub fn read(bytes: &[u8]) -> Result<Graph, GraphError> {
    let model = schema::verified_model(bytes).map_err(GraphError::Malformed)?;
    if model.version() != 3 {
        return Err(GraphError::Unsupported(format!(
            "schema version {} (only 3 is read)",
            model.version()
        )));
    }
    let subgraphs = model
        .subgraphs()
        .ok_or_else(|| malformed("model has no subgraphs"))?;
    if subgraphs.len() != 1 {
        return Err(GraphError::Unsupported(format!(
            "{} subgraphs (only single-subgraph models are read)",
            subgraphs.len()
        )));
    }
    let sg = subgraphs.get(0);
    let buffers = model.buffers();
    let buffer_data = |index: u32, what: &str| -> Result<Option<Vec<u8>>, GraphError> {
        if index == 0 {
            return Ok(None);
        }
        let bufs = buffers.ok_or_else(|| {
            malformed(format!(
                "{what} refers to buffer {index} but the model has no buffers"
            ))
        })?;
        let i = index as usize;
        if i >= bufs.len() {
            return Err(malformed(format!(
                "{what} refers to buffer {index}, model has {}",
                bufs.len()
            )));
        }
        let b = bufs.get(i);
        if b.offset() > 1 {
            return Err(GraphError::Unsupported(format!(
                "{what} uses an external buffer (offset {})",
                b.offset()
            )));
        }
        Ok(b.data()
            .filter(|d| !d.is_empty())
            .map(|d| d.bytes().to_vec()))
    };

    let fb_tensors = sg
        .tensors()
        .ok_or_else(|| malformed("subgraph has no tensors"))?;
    let mut tensors = Vec::with_capacity(fb_tensors.len());
    for (i, t) in fb_tensors.iter().enumerate() {
        let name = t.name().unwrap_or("").to_owned();
        let terr = |m: String| GraphError::Tensor {
            index: i,
            name: name.clone(),
            message: m,
        };
        let dtype = match t.tensor_type() {
            tensor_type::FLOAT32 => DType::F32,
            tensor_type::FLOAT16 => DType::F16,
            tensor_type::INT32 => DType::I32,
            tensor_type::UINT8 => DType::U8,
            tensor_type::INT8 => DType::I8,
            tensor_type::INT4 => DType::I4,
            tensor_type::INT2 => DType::I2,
            tensor_type::INT16 => DType::I16,
            tensor_type::INT64 => DType::I64,
            other => {
                return Err(terr(format!(
                    "unsupported tensor type {} ({other})",
                    tensor_type::name(other)
                )));
            }
        };
        let sparsity = t.sparsity().map(read_sparsity).transpose().map_err(&terr)?;
        if t.is_variable() {
            return Err(terr("variable tensors are not supported".into()));
        }
        let shape: Vec<usize> = t
            .shape()
            .map(|s| {
                s.iter()
                    .map(|d| {
                        usize::try_from(d).map_err(|_| terr(format!("negative dimension {d}")))
                    })
                    .collect()
            })
            .transpose()?
            .unwrap_or_default();
        check_tensor_size(&shape, dtype).map_err(terr)?;
        let quant = match t.quantization() {
            Some(q) if q.details_type() != 0 => {
                return Err(terr("custom quantisation details are not supported".into()));
            }
            Some(q) => match (q.scale(), q.zero_point()) {
                (Some(s), zp) if !s.is_empty() => {
                    let scale: Vec<f32> = s.iter().collect();
                    let zero_point: Vec<i32> = match zp {
                        Some(z) if z.len() == scale.len() => z
                            .iter()
                            .map(|v| {
                                i32::try_from(v)
                                    .map_err(|_| terr(format!("zero point {v} out of range")))
                            })
                            .collect::<Result<_, _>>()?,
                        Some(z) if z.is_empty() => vec![0; scale.len()],
                        None => vec![0; scale.len()],
                        Some(z) => {
                            return Err(terr(format!(
                                "{} scales but {} zero points",
                                scale.len(),
                                z.len()
                            )));
                        }
                    };
                    let axis = usize::try_from(q.quantized_dimension()).map_err(|_| {
                        terr(format!(
                            "negative quantized_dimension {}",
                            q.quantized_dimension()
                        ))
                    })?;
                    Some(QuantParams {
                        scale,
                        zero_point,
                        axis,
                    })
                }
                _ => None,
            },
            None => None,
        };
        let mut data = buffer_data(t.buffer(), &format!("tensor {i} ('{name}')"))?;
        if let Some(layout) = &sparsity {
            // Sparse constants are expanded here; DENSIFY ops then just forward them.
            let values = data.take().unwrap_or_default();
            let elem_bytes = dtype.bits() / 8;
            if elem_bytes == 0 {
                return Err(terr(format!("sparse {dtype} tensors are not supported")));
            }
            data = Some(
                sparse::densify(&shape, elem_bytes, layout, &values)
                    .map_err(|m| terr(format!("sparse constant: {m}")))?,
            );
        }
        let tensor = Tensor {
            name,
            shape,
            dtype,
            quant,
            data,
        };
        if let Some(d) = &tensor.data
            && d.len() != tensor.byte_size()
        {
            return Err(GraphError::Tensor {
                index: i,
                name: tensor.name.clone(),
                message: format!(
                    "buffer has {} bytes, shape {:?} {} needs {}",
                    d.len(),
                    tensor.shape,
                    dtype,
                    tensor.byte_size()
                ),
            });
        }
        tensors.push(tensor);
    }
    let tensor_count = tensors.len();
    let tensor_index = |v: i32, what: &str| -> Result<TensorId, GraphError> {
        usize::try_from(v)
            .ok()
            .filter(|i| *i < tensor_count)
            .map(TensorId)
            .ok_or_else(|| {
                malformed(format!(
                    "{what} refers to tensor {v}, subgraph has {tensor_count}"
                ))
            })
    };
    let inputs = sg
        .inputs()
        .map(|v| {
            v.iter()
                .map(|i| tensor_index(i, "subgraph input"))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let outputs = sg
        .outputs()
        .map(|v| {
            v.iter()
                .map(|i| tensor_index(i, "subgraph output"))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();

    let codes = model.operator_codes();
    let mut ops = Vec::new();
    for (index, fb_op) in sg.operators().iter().flatten().enumerate() {
        let oi = fb_op.opcode_index() as usize;
        let code = codes
            .filter(|c| oi < c.len())
            .map(|c| c.get(oi))
            .ok_or_else(|| {
                malformed(format!(
                    "op {index} uses opcode index {oi}, which does not exist"
                ))
            })?;
        if let Some(custom) = code.custom_code() {
            return Err(GraphError::Unsupported(format!(
                "op {index}: custom op '{custom}'"
            )));
        }
        let (name, max) = max_version(code.code()).ok_or_else(|| {
            GraphError::Unsupported(format!(
                "op {index}: builtin operator {} is not supported",
                builtin_name(code.code())
            ))
        })?;
        if code.version() > max || code.version() < 1 {
            return Err(GraphError::Unsupported(format!(
                "op {index} ({name}): version {} (kinglet reads versions 1..={max})",
                code.version()
            )));
        }
        let what = format!("op {index} ({name})");
        if code.code() == op::DENSIFY {
            fold_densify(
                index,
                &ids_of(fb_op.inputs(), &tensor_index, &what)?,
                &ids_of(fb_op.outputs(), &tensor_index, &what)?,
                &mut tensors,
            )?;
            continue;
        }
        let ids =
            |v: Option<flatbuffers::Vector<'_, i32>>| -> Result<Vec<Option<TensorId>>, GraphError> {
                v.iter()
                    .flatten()
                    .map(|i| {
                        if i < 0 {
                            Ok(None)
                        } else {
                            tensor_index(i, &what).map(Some)
                        }
                    })
                    .collect()
            };
        let op_inputs = ids(fb_op.inputs())?;
        let op_outputs: Vec<TensorId> = ids(fb_op.outputs())?.into_iter().flatten().collect();
        let opts = fb_op.builtin_options();
        let opts_type = fb_op.builtin_options_type();
        let kind = translate_op(
            index,
            name,
            code.code(),
            opts_type,
            opts,
            &op_inputs,
            &op_outputs,
            &tensors,
        )?;
        let data_inputs: Vec<TensorId> = match kind {
            // Parameter tensors folded into the op kind are not kernel inputs.
            OpKind::Reshape { .. } | OpKind::Mean { .. } | OpKind::Pad { .. } => {
                op_inputs.iter().take(1).flatten().copied().collect()
            }
            _ => {
                // Only a trailing optional input (a missing bias) may be absent.
                let present: Vec<TensorId> = op_inputs.iter().flatten().copied().collect();
                if op_inputs
                    .iter()
                    .rev()
                    .skip_while(|i| i.is_none())
                    .any(|i| i.is_none())
                {
                    return Err(GraphError::op(
                        index,
                        name,
                        "a required input is missing (-1)",
                    ));
                }
                present
            }
        };
        ops.push(Op {
            kind,
            inputs: data_inputs,
            outputs: op_outputs,
        });
    }

    let mut metadata = BTreeMap::new();
    for m in model.metadata().iter().flatten() {
        let Some(key) = m.name() else { continue };
        let Some(data) = buffer_data(m.buffer(), &format!("metadata '{key}'"))? else {
            continue;
        };
        // Binary entries (e.g. TF's CONVERSION_METADATA) are not kept.
        if let Ok(text) = std::str::from_utf8(&data) {
            metadata.insert(key.to_owned(), text.trim_end_matches('\0').to_owned());
        }
    }

    let mut graph = Graph {
        tensors,
        ops,
        inputs,
        outputs,
        metadata,
    };
    graph.drop_unused_tensors();
    graph.validate()?;
    Ok(graph)
}

/// Tensor ids of an op's input or output list (absent optional tensors dropped).
fn ids_of(
    v: Option<flatbuffers::Vector<'_, i32>>,
    tensor_index: &dyn Fn(i32, &str) -> Result<TensorId, GraphError>,
    what: &str,
) -> Result<Vec<TensorId>, GraphError> {
    v.iter()
        .flatten()
        .filter(|i| *i >= 0)
        .map(|i| tensor_index(i, what))
        .collect()
}

/// Constant-folds DENSIFY: its input was expanded when read, so the output becomes that
/// dense constant (with the output's own quantisation) and the op disappears.
fn fold_densify(
    index: usize,
    inputs: &[TensorId],
    outputs: &[TensorId],
    tensors: &mut [Tensor],
) -> Result<(), GraphError> {
    let ([input], [output]) = (inputs, outputs) else {
        return Err(GraphError::op(
            index,
            "DENSIFY",
            format!(
                "has {} inputs and {} outputs, expected 1 and 1",
                inputs.len(),
                outputs.len()
            ),
        ));
    };
    let (src, dst) = (&tensors[input.0], &tensors[output.0]);
    let Some(data) = src.data.clone() else {
        return Err(GraphError::op(
            index,
            "DENSIFY",
            format!("input '{}' is not a constant", src.name),
        ));
    };
    if src.dtype != dst.dtype || src.elements() != dst.elements() {
        return Err(GraphError::op(
            index,
            "DENSIFY",
            format!(
                "input {:?} {} and output {:?} {} differ",
                src.shape, src.dtype, dst.shape, dst.dtype
            ),
        ));
    }
    tensors[output.0].data = Some(data);
    Ok(())
}

/// Reads a tensor's `SparsityParameters`.
fn read_sparsity(p: schema::SparsityParameters<'_>) -> Result<sparse::SparseLayout, String> {
    let dims =
        |v: Option<flatbuffers::Vector<'_, i32>>, what: &str| -> Result<Vec<usize>, String> {
            v.iter()
                .flatten()
                .map(|d| usize::try_from(d).map_err(|_| format!("sparsity {what} has entry {d}")))
                .collect()
        };
    let mut levels = Vec::new();
    for (level, m) in p.dim_metadata().iter().flatten().enumerate() {
        let dense_size = usize::try_from(m.dense_size())
            .map_err(|_| format!("sparsity level {level}: dense_size {}", m.dense_size()))?;
        let csr = match m.format() {
            schema::dimension_type::DENSE => None,
            schema::dimension_type::SPARSE_CSR => match (m.array_segments(), m.array_indices()) {
                (Some(s), Some(i)) => Some((s, i)),
                _ => {
                    return Err(format!(
                        "sparsity level {level}: SPARSE_CSR without array_segments and \
                         array_indices of a known type"
                    ));
                }
            },
            other => return Err(format!("sparsity level {level}: dimension type {other}")),
        };
        levels.push(sparse::Level { dense_size, csr });
    }
    Ok(sparse::SparseLayout {
        traversal_order: dims(p.traversal_order(), "traversal_order")?,
        block_map: dims(p.block_map(), "block_map")?,
        levels,
    })
}

/// Rejects shapes whose byte size overflows or exceeds [`crate::graph::MAX_TENSOR_BYTES`], so
/// that no later size computation can overflow and no corrupt file makes the runtime try to
/// allocate gigabytes.
pub(crate) fn check_tensor_size(shape: &[usize], dtype: DType) -> Result<(), String> {
    let elements = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    match elements.and_then(|e| e.checked_mul(dtype.bits())) {
        Some(bits) if bits / 8 <= crate::graph::MAX_TENSOR_BYTES => Ok(()),
        _ => Err(format!(
            "shape {shape:?} {dtype} exceeds the {} MiB tensor limit",
            crate::graph::MAX_TENSOR_BYTES >> 20
        )),
    }
}

fn builtin_name(code: i32) -> String {
    format!("{} (code {code})", op::name(code))
}

fn fused(index: usize, name: &'static str, a: i8) -> Result<Activation, GraphError> {
    match a {
        activation::NONE => Ok(Activation::None),
        activation::RELU => Ok(Activation::Relu),
        activation::RELU6 => Ok(Activation::Relu6),
        other => Err(GraphError::Unsupported(format!(
            "op {index} ({name}): fused activation {other} (only NONE, RELU, RELU6)"
        ))),
    }
}

fn pad_kind(index: usize, name: &'static str, p: i8) -> Result<Padding, GraphError> {
    match p {
        padding::SAME => Ok(Padding::Same),
        padding::VALID => Ok(Padding::Valid),
        other => Err(GraphError::Unsupported(format!(
            "op {index} ({name}): padding type {other}"
        ))),
    }
}

fn positive(index: usize, name: &'static str, what: &str, v: i32) -> Result<usize, GraphError> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| GraphError::op(index, name, format!("{what} must be ≥ 1, is {v}")))
}

#[allow(clippy::too_many_arguments)]
fn translate_op<'a>(
    index: usize,
    name: &'static str,
    code: i32,
    opts_type: u8,
    opts: Option<schema::Options<'a>>,
    inputs: &[Option<TensorId>],
    outputs: &[TensorId],
    tensors: &[Tensor],
) -> Result<OpKind, GraphError> {
    use schema::options_type as ot;
    let err = |m: String| GraphError::op(index, name, m);
    let want_opts = |t: u8| -> Result<Option<schema::Options<'a>>, GraphError> {
        match opts {
            Some(o) if opts_type == t => Ok(Some(o)),
            Some(_) => Err(err(format!(
                "has options of union type {opts_type}, expected {t}"
            ))),
            None => Ok(None),
        }
    };
    let out_shape = || -> Result<Vec<usize>, GraphError> {
        outputs
            .first()
            .map(|o| tensors[o.0].shape.clone())
            .ok_or_else(|| err("has no output".into()))
    };
    let const_ints = |pos: usize, what: &str| -> Result<Vec<i64>, GraphError> {
        let t = inputs
            .get(pos)
            .copied()
            .flatten()
            .map(|id| &tensors[id.0])
            .ok_or_else(|| err(format!("missing {what} input")))?;
        let d = t
            .data
            .as_ref()
            .ok_or_else(|| err(format!("{what} tensor '{}' must be a constant", t.name)))?;
        match t.dtype {
            DType::I32 => Ok(d
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()),
            other => Err(err(format!(
                "{what} tensor '{}' must be int32, is {other}",
                t.name
            ))),
        }
    };
    let in_rank = inputs
        .first()
        .copied()
        .flatten()
        .map(|id| tensors[id.0].shape.len())
        .unwrap_or(0);
    // Conv-like option tables share padding/stride_w/stride_h at ids 0/1/2.
    let window = |o: &schema::Options<'_>| -> Result<(Padding, Hw), GraphError> {
        Ok((
            pad_kind(index, name, o.i8_field(0, padding::SAME))?,
            Hw::new(
                positive(index, name, "stride_h", o.i32_field(2, 0))?,
                positive(index, name, "stride_w", o.i32_field(1, 0))?,
            ),
        ))
    };
    let need = |o: Option<schema::Options<'a>>| {
        o.ok_or_else(|| err("is missing its builtin options".into()))
    };
    Ok(match code {
        op::CONV_2D => {
            let o = need(want_opts(ot::CONV_2D)?)?;
            let (padding, stride) = window(&o)?;
            OpKind::Conv2D {
                stride,
                dilation: Hw::new(
                    positive(index, name, "dilation_h", o.i32_field(5, 1))?,
                    positive(index, name, "dilation_w", o.i32_field(4, 1))?,
                ),
                padding,
                activation: fused(index, name, o.i8_field(3, 0))?,
            }
        }
        op::DEPTHWISE_CONV_2D => {
            let o = need(want_opts(ot::DEPTHWISE_CONV_2D)?)?;
            let (padding, stride) = window(&o)?;
            // Newer converters write depth_multiplier 0/1 and rely on the filter shape.
            let in_c = inputs
                .first()
                .copied()
                .flatten()
                .and_then(|id| tensors[id.0].shape.get(3).copied())
                .unwrap_or(0);
            let out_c = inputs
                .get(1)
                .copied()
                .flatten()
                .and_then(|id| tensors[id.0].shape.get(3).copied())
                .unwrap_or(0);
            let depth_multiplier = if in_c > 0 && out_c % in_c == 0 {
                out_c / in_c
            } else {
                1
            };
            OpKind::DepthwiseConv2D {
                stride,
                dilation: Hw::new(
                    positive(index, name, "dilation_h", o.i32_field(6, 1))?,
                    positive(index, name, "dilation_w", o.i32_field(5, 1))?,
                ),
                padding,
                depth_multiplier,
                activation: fused(index, name, o.i8_field(4, 0))?,
            }
        }
        op::FULLY_CONNECTED => {
            let o = want_opts(ot::FULLY_CONNECTED)?;
            let (act, format, keep) = o
                .map(|o| (o.i8_field(0, 0), o.i8_field(1, 0), o.bool_field(2, false)))
                .unwrap_or((0, 0, false));
            if format != 0 {
                return Err(GraphError::Unsupported(format!(
                    "op {index} ({name}): shuffled weights format {format}"
                )));
            }
            OpKind::FullyConnected {
                activation: fused(index, name, act)?,
                keep_num_dims: keep,
            }
        }
        op::MAX_POOL_2D | op::AVERAGE_POOL_2D => {
            let o = need(want_opts(ot::POOL_2D)?)?;
            let (padding, stride) = window(&o)?;
            let filter = Hw::new(
                positive(index, name, "filter_height", o.i32_field(4, 0))?,
                positive(index, name, "filter_width", o.i32_field(3, 0))?,
            );
            let activation = fused(index, name, o.i8_field(5, 0))?;
            if code == op::MAX_POOL_2D {
                OpKind::MaxPool2D {
                    filter,
                    stride,
                    padding,
                    activation,
                }
            } else {
                OpKind::AvgPool2D {
                    filter,
                    stride,
                    padding,
                    activation,
                }
            }
        }
        op::MEAN => {
            let keep_dims = want_opts(ot::REDUCER)?
                .map(|o| o.bool_field(0, false))
                .unwrap_or(false);
            let mut axes = Vec::new();
            for a in const_ints(1, "axes")? {
                let r = in_rank as i64;
                let norm = if a < 0 { a + r } else { a };
                if norm < 0 || norm >= r {
                    return Err(err(format!("axis {a} out of range for rank {in_rank}")));
                }
                axes.push(norm as usize);
            }
            axes.sort_unstable();
            axes.dedup();
            OpKind::Mean { axes, keep_dims }
        }
        op::CONCATENATION => {
            let o = want_opts(ot::CONCATENATION)?;
            let (axis, act) = o
                .map(|o| (o.i32_field(0, 0), o.i8_field(1, 0)))
                .unwrap_or((0, 0));
            let r = in_rank as i32;
            let norm = if axis < 0 { axis + r } else { axis };
            if norm < 0 || norm >= r {
                return Err(err(format!("axis {axis} out of range for rank {in_rank}")));
            }
            OpKind::Concatenation {
                axis: norm as usize,
                activation: fused(index, name, act)?,
            }
        }
        op::ADD => {
            let act = want_opts(ot::ADD)?.map(|o| o.i8_field(0, 0)).unwrap_or(0);
            OpKind::Add {
                activation: fused(index, name, act)?,
            }
        }
        op::RESHAPE | op::EXPAND_DIMS | op::SQUEEZE => OpKind::Reshape {
            new_shape: out_shape()?,
        },
        op::PAD => {
            let v = const_ints(1, "paddings")?;
            if v.len() != 2 * in_rank {
                return Err(err(format!(
                    "paddings has {} values, input rank {in_rank} needs {}",
                    v.len(),
                    2 * in_rank
                )));
            }
            let mut paddings = Vec::new();
            for pair in v.chunks_exact(2) {
                let b = usize::try_from(pair[0])
                    .map_err(|_| err(format!("negative padding {}", pair[0])))?;
                let a = usize::try_from(pair[1])
                    .map_err(|_| err(format!("negative padding {}", pair[1])))?;
                paddings.push([b, a]);
            }
            OpKind::Pad { paddings }
        }
        op::SOFTMAX => {
            let beta = want_opts(ot::SOFTMAX)?
                .map(|o| o.f32_field(0, 0.0))
                .unwrap_or(1.0);
            OpKind::Softmax { beta }
        }
        op::QUANTIZE => OpKind::Quantize,
        op::DEQUANTIZE => OpKind::Dequantize,
        _ => {
            return Err(GraphError::Unsupported(format!(
                "op {index}: builtin operator {}",
                builtin_name(code)
            )));
        }
    })
}
