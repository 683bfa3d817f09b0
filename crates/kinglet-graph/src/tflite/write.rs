//! [`Graph`] → `.tflite` (schema version 3), runnable by the TFLite interpreter.

use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, WIPOffset};

use super::schema::{
    activation, builtin_op as op, dimension_type, options_type as ot, padding, slot,
    sparse_index_vector, tensor_type,
};
use super::sparse::{self, SparseLayout};
use crate::error::GraphError;
use crate::graph::{Activation, DType, Graph, OpKind, Padding, Tensor};

type Off = WIPOffset<TableFinishedWIPOffset>;

fn dtype_code(d: DType) -> i8 {
    match d {
        DType::F32 => tensor_type::FLOAT32,
        DType::F16 => tensor_type::FLOAT16,
        DType::I32 => tensor_type::INT32,
        DType::U8 => tensor_type::UINT8,
        DType::I8 => tensor_type::INT8,
        DType::I4 => tensor_type::INT4,
        DType::I2 => tensor_type::INT2,
        DType::I16 => tensor_type::INT16,
        DType::I64 => tensor_type::INT64,
    }
}

fn act_code(a: Activation) -> i8 {
    match a {
        Activation::None => activation::NONE,
        Activation::Relu => activation::RELU,
        Activation::Relu6 => activation::RELU6,
    }
}

fn pad_code(p: Padding) -> i8 {
    match p {
        Padding::Same => padding::SAME,
        Padding::Valid => padding::VALID,
    }
}

/// Builtin code and the lowest op version whose kernel accepts these types, as TF's
/// converter would write them.
fn code_and_version(kind: &OpKind, input: DType, output: DType) -> (i32, i32) {
    let i8v = |v_int8: i32| {
        if input == DType::I8 || output == DType::I8 {
            v_int8
        } else {
            1
        }
    };
    match kind {
        OpKind::Conv2D { .. } => (op::CONV_2D, i8v(3)),
        OpKind::DepthwiseConv2D { .. } => (op::DEPTHWISE_CONV_2D, i8v(3)),
        OpKind::FullyConnected { keep_num_dims, .. } => {
            (op::FULLY_CONNECTED, if *keep_num_dims { 5 } else { i8v(4) })
        }
        OpKind::MaxPool2D { .. } => (op::MAX_POOL_2D, i8v(2)),
        OpKind::AvgPool2D { .. } => (op::AVERAGE_POOL_2D, i8v(2)),
        OpKind::Mean { .. } => (op::MEAN, i8v(2)),
        OpKind::Concatenation { .. } => (op::CONCATENATION, i8v(2)),
        OpKind::Add { .. } => (op::ADD, i8v(2)),
        OpKind::Reshape { .. } => (op::RESHAPE, 1),
        OpKind::Pad { .. } => (op::PAD, i8v(2)),
        OpKind::Softmax { .. } => (op::SOFTMAX, i8v(2)),
        OpKind::Quantize => (op::QUANTIZE, if input == DType::F32 { 1 } else { 2 }),
        OpKind::Dequantize => (
            op::DEQUANTIZE,
            match input {
                DType::I8 => 2,
                DType::F16 => 3,
                _ => 1,
            },
        ),
    }
}

/// Serialises a validated graph. Parameters kinglet keeps in the op kind (Reshape's shape,
/// Mean's axes, Pad's paddings) become int32 constant inputs, as TFLite expects.
pub fn write(graph: &Graph, options: &super::WriteOptions) -> Result<Vec<u8>, GraphError> {
    graph.validate()?;
    // Tensors: the graph's, then parameter constants appended per op.
    let mut tensors: Vec<Tensor> = graph.tensors.clone();
    let mut op_inputs: Vec<Vec<i32>> = Vec::new();
    for (index, o) in graph.ops.iter().enumerate() {
        let mut ins: Vec<i32> = o.inputs.iter().map(|t| t.0 as i32).collect();
        let mut add_param = |name: String, shape: Vec<usize>, values: Vec<i32>| {
            tensors.push(Tensor {
                name,
                shape,
                dtype: DType::I32,
                quant: None,
                data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            });
            ins.push((tensors.len() - 1) as i32);
        };
        match &o.kind {
            OpKind::Reshape { new_shape } => add_param(
                format!("op{index}/shape"),
                vec![new_shape.len()],
                new_shape.iter().map(|d| *d as i32).collect(),
            ),
            OpKind::Mean { axes, .. } => add_param(
                format!("op{index}/axes"),
                vec![axes.len()],
                axes.iter().map(|d| *d as i32).collect(),
            ),
            OpKind::Pad { paddings } => add_param(
                format!("op{index}/paddings"),
                vec![paddings.len(), 2],
                paddings
                    .iter()
                    .flat_map(|[b, a]| [*b as i32, *a as i32])
                    .collect(),
            ),
            _ => {}
        }
        op_inputs.push(ins);
    }

    // Pruned weights: a sparse constant plus a DENSIFY into the original tensor, when smaller.
    let mut sparsity: Vec<Option<SparseLayout>> = vec![None; tensors.len()];
    let mut densify_ops: Vec<(i32, i32)> = Vec::new();
    if options.sparse_weights {
        for o in &graph.ops {
            let weights = match o.kind {
                OpKind::FullyConnected { .. }
                | OpKind::Conv2D { .. }
                | OpKind::DepthwiseConv2D { .. } => o.inputs.get(1).map(|t| t.0),
                _ => None,
            };
            let Some(w) = weights else { continue };
            if densify_ops.iter().any(|(_, out)| *out == w as i32) {
                continue;
            }
            let t = &tensors[w];
            let (Some(data), DType::I8 | DType::F32) = (&t.data, t.dtype) else {
                continue;
            };
            let Some((layout, values, bytes)) = sparse::encode(&t.shape, t.dtype.bits() / 8, data)
            else {
                continue;
            };
            if bytes + DENSIFY_OVERHEAD >= data.len() {
                continue;
            }
            let mut stored = t.clone();
            stored.name = format!("{}_sparse", t.name);
            stored.data = Some(values);
            tensors.push(stored);
            sparsity.push(Some(layout));
            tensors[w].data = None;
            densify_ops.push(((tensors.len() - 1) as i32, w as i32));
        }
    }

    let mut fbb = FlatBufferBuilder::with_capacity(1024 + graph.weight_bytes() * 2);

    // Buffers: 0 is the empty sentinel; each constant gets its own; metadata after.
    let mut buffers: Vec<Off> = Vec::new();
    let empty = fbb.start_table();
    buffers.push(fbb.end_table(empty));
    let mut buffer_of = vec![0u32; tensors.len()];
    for (i, t) in tensors.iter().enumerate() {
        if let Some(d) = &t.data {
            let v = fbb.create_vector(d.as_slice());
            let b = fbb.start_table();
            fbb.push_slot_always(slot(0), v);
            buffers.push(fbb.end_table(b));
            buffer_of[i] = (buffers.len() - 1) as u32;
        }
    }
    let mut metadata_entries = Vec::new();
    for (key, value) in &graph.metadata {
        let v = fbb.create_vector(value.as_bytes());
        let b = fbb.start_table();
        fbb.push_slot_always(slot(0), v);
        buffers.push(fbb.end_table(b));
        metadata_entries.push((key.as_str(), (buffers.len() - 1) as u32));
    }

    let mut fb_tensors: Vec<Off> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let shape: Vec<i32> = t.shape.iter().map(|d| *d as i32).collect();
        let shape = fbb.create_vector(&shape);
        let name = fbb.create_string(&t.name);
        let quant = t.quant.as_ref().map(|q| {
            let scale = fbb.create_vector(&q.scale);
            let zp: Vec<i64> = q.zero_point.iter().map(|z| i64::from(*z)).collect();
            let zp = fbb.create_vector(&zp);
            let s = fbb.start_table();
            fbb.push_slot_always(slot(2), scale);
            fbb.push_slot_always(slot(3), zp);
            fbb.push_slot::<i32>(slot(6), q.axis as i32, 0);
            fbb.end_table(s)
        });
        let sparse = sparsity[i]
            .as_ref()
            .map(|layout| write_sparsity(&mut fbb, layout));
        let s = fbb.start_table();
        fbb.push_slot_always(slot(0), shape);
        fbb.push_slot::<i8>(slot(1), dtype_code(t.dtype), 0);
        if let Some(sparse) = sparse {
            fbb.push_slot_always(slot(6), sparse);
        }
        fbb.push_slot::<u32>(slot(2), buffer_of[i], 0);
        fbb.push_slot_always(slot(3), name);
        if let Some(q) = quant {
            fbb.push_slot_always(slot(4), q);
        }
        fb_tensors.push(fbb.end_table(s));
    }

    let mut codes: Vec<(i32, i32)> = Vec::new();
    let mut fb_ops: Vec<Off> = Vec::new();
    for (input, output) in &densify_ops {
        if codes.iter().all(|c| c.0 != op::DENSIFY) {
            codes.push((op::DENSIFY, 1));
        }
        let opcode_index = codes.iter().position(|c| c.0 == op::DENSIFY).unwrap_or(0);
        let ins = fbb.create_vector(&[*input]);
        let outs = fbb.create_vector(&[*output]);
        let s = fbb.start_table();
        fbb.push_slot::<u32>(slot(0), opcode_index as u32, 0);
        fbb.push_slot_always(slot(1), ins);
        fbb.push_slot_always(slot(2), outs);
        fb_ops.push(fbb.end_table(s));
    }
    for (o, ins) in graph.ops.iter().zip(&op_inputs) {
        let in_t = graph.tensor(o.inputs[0]).dtype;
        let out_t = graph.tensor(o.outputs[0]).dtype;
        let cv = code_and_version(&o.kind, in_t, out_t);
        let opcode_index = match codes.iter().position(|c| *c == cv) {
            Some(p) => p,
            None => {
                codes.push(cv);
                codes.len() - 1
            }
        };
        let (opts_type, opts) = write_options(&mut fbb, &o.kind);
        let ins = fbb.create_vector(ins);
        let outs: Vec<i32> = o.outputs.iter().map(|t| t.0 as i32).collect();
        let outs = fbb.create_vector(&outs);
        let s = fbb.start_table();
        fbb.push_slot::<u32>(slot(0), opcode_index as u32, 0);
        fbb.push_slot_always(slot(1), ins);
        fbb.push_slot_always(slot(2), outs);
        if let Some(opts) = opts {
            fbb.push_slot::<u8>(slot(3), opts_type, 0);
            fbb.push_slot_always(slot(4), opts);
        }
        fb_ops.push(fbb.end_table(s));
    }

    let tensors_v = fbb.create_vector(&fb_tensors);
    let inputs: Vec<i32> = graph.inputs.iter().map(|t| t.0 as i32).collect();
    let inputs = fbb.create_vector(&inputs);
    let outputs: Vec<i32> = graph.outputs.iter().map(|t| t.0 as i32).collect();
    let outputs = fbb.create_vector(&outputs);
    let ops_v = fbb.create_vector(&fb_ops);
    let sg_name = fbb.create_string("main");
    let s = fbb.start_table();
    fbb.push_slot_always(slot(0), tensors_v);
    fbb.push_slot_always(slot(1), inputs);
    fbb.push_slot_always(slot(2), outputs);
    fbb.push_slot_always(slot(3), ops_v);
    fbb.push_slot_always(slot(4), sg_name);
    let subgraph = fbb.end_table(s);

    let mut fb_codes: Vec<Off> = Vec::new();
    for (code, version) in &codes {
        let s = fbb.start_table();
        fbb.push_slot::<i8>(
            slot(0),
            (*code).min(op::PLACEHOLDER_FOR_GREATER_OP_CODES) as i8,
            0,
        );
        fbb.push_slot::<i32>(slot(2), *version, 1);
        fbb.push_slot::<i32>(slot(3), *code, 0);
        fb_codes.push(fbb.end_table(s));
    }
    let mut fb_meta: Vec<Off> = Vec::new();
    for (key, buffer) in metadata_entries {
        let name = fbb.create_string(key);
        let s = fbb.start_table();
        fbb.push_slot_always(slot(0), name);
        fbb.push_slot::<u32>(slot(1), buffer, 0);
        fb_meta.push(fbb.end_table(s));
    }
    let codes_v = fbb.create_vector(&fb_codes);
    let subgraphs_v = fbb.create_vector(&[subgraph]);
    let description = fbb.create_string("kinglet");
    let buffers_v = fbb.create_vector(&buffers);
    let meta_v = fbb.create_vector(&fb_meta);
    let s = fbb.start_table();
    fbb.push_slot::<u32>(slot(0), 3, 0);
    fbb.push_slot_always(slot(1), codes_v);
    fbb.push_slot_always(slot(2), subgraphs_v);
    fbb.push_slot_always(slot(3), description);
    fbb.push_slot_always(slot(4), buffers_v);
    if !fb_meta.is_empty() {
        fbb.push_slot_always(slot(6), meta_v);
    }
    let model = fbb.end_table(s);
    fbb.finish(model, Some("TFL3"));
    Ok(fbb.finished_data().to_vec())
}

/// Bytes a sparse constant costs beyond its layout: the extra tensor, its name and buffer,
/// the DENSIFY op and its op code. Sparse storage is used only when it saves more.
const DENSIFY_OVERHEAD: usize = 160;

fn write_sparsity(fbb: &mut FlatBufferBuilder<'_>, layout: &SparseLayout) -> Off {
    let mut levels = Vec::new();
    for level in &layout.levels {
        let csr = level.csr.as_ref().map(|(segments, indices)| {
            (
                write_index_vector(fbb, segments),
                write_index_vector(fbb, indices),
            )
        });
        let s = fbb.start_table();
        fbb.push_slot_always::<i8>(
            slot(0),
            if csr.is_some() {
                dimension_type::SPARSE_CSR
            } else {
                dimension_type::DENSE
            },
        );
        fbb.push_slot_always::<i32>(slot(1), level.dense_size as i32);
        if let Some(((seg_type, seg), (idx_type, idx))) = csr {
            fbb.push_slot_always::<u8>(slot(2), seg_type);
            fbb.push_slot_always(slot(3), seg);
            fbb.push_slot_always::<u8>(slot(4), idx_type);
            fbb.push_slot_always(slot(5), idx);
        }
        levels.push(fbb.end_table(s));
    }
    let order: Vec<i32> = layout.traversal_order.iter().map(|d| *d as i32).collect();
    let order = fbb.create_vector(&order);
    let block_map: Vec<i32> = layout.block_map.iter().map(|d| *d as i32).collect();
    let block_map = fbb.create_vector(&block_map);
    let levels = fbb.create_vector(&levels);
    let s = fbb.start_table();
    fbb.push_slot_always(slot(0), order);
    if !layout.block_map.is_empty() {
        fbb.push_slot_always(slot(1), block_map);
    }
    fbb.push_slot_always(slot(2), levels);
    fbb.end_table(s)
}

/// A `SparseIndexVector` in the narrowest element type that holds `values`.
fn write_index_vector(fbb: &mut FlatBufferBuilder<'_>, values: &[u32]) -> (u8, Off) {
    let max = values.iter().copied().max().unwrap_or(0);
    let (kind, vector) = if max <= u32::from(u8::MAX) {
        let v: Vec<u8> = values.iter().map(|v| *v as u8).collect();
        (
            sparse_index_vector::UINT8,
            fbb.create_vector(&v).as_union_value(),
        )
    } else if max <= u32::from(u16::MAX) {
        let v: Vec<u16> = values.iter().map(|v| *v as u16).collect();
        (
            sparse_index_vector::UINT16,
            fbb.create_vector(&v).as_union_value(),
        )
    } else {
        let v: Vec<i32> = values.iter().map(|v| *v as i32).collect();
        (
            sparse_index_vector::INT32,
            fbb.create_vector(&v).as_union_value(),
        )
    };
    let s = fbb.start_table();
    fbb.push_slot_always(slot(0), vector);
    (kind, fbb.end_table(s))
}

fn write_options(fbb: &mut FlatBufferBuilder<'_>, kind: &OpKind) -> (u8, Option<Off>) {
    // Scalars are pushed with `push_slot_always` so files do not depend on schema defaults.
    let s = fbb.start_table();
    let t = match kind {
        OpKind::Conv2D {
            stride,
            dilation,
            padding,
            activation,
        } => {
            fbb.push_slot_always::<i8>(slot(0), pad_code(*padding));
            fbb.push_slot_always::<i32>(slot(1), stride.w as i32);
            fbb.push_slot_always::<i32>(slot(2), stride.h as i32);
            fbb.push_slot_always::<i8>(slot(3), act_code(*activation));
            fbb.push_slot_always::<i32>(slot(4), dilation.w as i32);
            fbb.push_slot_always::<i32>(slot(5), dilation.h as i32);
            ot::CONV_2D
        }
        OpKind::DepthwiseConv2D {
            stride,
            dilation,
            padding,
            depth_multiplier,
            activation,
        } => {
            fbb.push_slot_always::<i8>(slot(0), pad_code(*padding));
            fbb.push_slot_always::<i32>(slot(1), stride.w as i32);
            fbb.push_slot_always::<i32>(slot(2), stride.h as i32);
            fbb.push_slot_always::<i32>(slot(3), *depth_multiplier as i32);
            fbb.push_slot_always::<i8>(slot(4), act_code(*activation));
            fbb.push_slot_always::<i32>(slot(5), dilation.w as i32);
            fbb.push_slot_always::<i32>(slot(6), dilation.h as i32);
            ot::DEPTHWISE_CONV_2D
        }
        OpKind::FullyConnected {
            activation,
            keep_num_dims,
        } => {
            fbb.push_slot_always::<i8>(slot(0), act_code(*activation));
            fbb.push_slot_always::<bool>(slot(2), *keep_num_dims);
            ot::FULLY_CONNECTED
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
            fbb.push_slot_always::<i8>(slot(0), pad_code(*padding));
            fbb.push_slot_always::<i32>(slot(1), stride.w as i32);
            fbb.push_slot_always::<i32>(slot(2), stride.h as i32);
            fbb.push_slot_always::<i32>(slot(3), filter.w as i32);
            fbb.push_slot_always::<i32>(slot(4), filter.h as i32);
            fbb.push_slot_always::<i8>(slot(5), act_code(*activation));
            ot::POOL_2D
        }
        OpKind::Mean { keep_dims, .. } => {
            fbb.push_slot_always::<bool>(slot(0), *keep_dims);
            ot::REDUCER
        }
        OpKind::Concatenation { axis, activation } => {
            fbb.push_slot_always::<i32>(slot(0), *axis as i32);
            fbb.push_slot_always::<i8>(slot(1), act_code(*activation));
            ot::CONCATENATION
        }
        OpKind::Add { activation } => {
            fbb.push_slot_always::<i8>(slot(0), act_code(*activation));
            ot::ADD
        }
        OpKind::Softmax { beta } => {
            fbb.push_slot_always::<f32>(slot(0), *beta);
            ot::SOFTMAX
        }
        OpKind::Reshape { .. } => ot::RESHAPE,
        OpKind::Pad { .. } => ot::PAD,
        OpKind::Quantize => ot::QUANTIZE,
        OpKind::Dequantize => ot::DEQUANTIZE,
    };
    (t, Some(fbb.end_table(s)))
}
