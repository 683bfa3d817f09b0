//! Full-integer int8 post-training quantisation of a float [`Graph`], following the TFLite
//! int8 specification and the choices its converter makes:
//!
//! - weights: int8 symmetric (zero point 0, narrow range ±127), per output channel — Conv2D
//!   along axis 0 of `[out, kh, kw, in]`, DepthwiseConv2D along axis 3 of `[1, kh, kw, out]`,
//!   FullyConnected along axis 0 of `[out, in]` (TensorFlow ≥ 2.16 converters quantise dense
//!   weights per channel too; `PtqConfig::per_channel_fully_connected = false` gives the older
//!   per-tensor form);
//! - biases: int32, scale `input_scale · weight_scale[c]`, zero point 0;
//! - activations: int8 asymmetric from the calibrated range (widened to contain 0);
//! - Softmax output: scale 1/256, zero point −128 (the fixed range TFLite kernels require);
//! - optionally ([`PtqConfig::logit_clip`], kinglet's addition, off by default): logit outputs
//!   are centred and their range clipped, see [`centre_logits`];
//! - MaxPool, AvgPool, Reshape and Pad outputs reuse their input's parameters, and a
//!   Concatenation's inputs and output all share the parameters of the output's range, as
//!   the converter arranges (kinglet's kernels, like TFLite's, then need no rescaling there).

use std::collections::BTreeMap;

use kinglet_graph::{DType, Graph, Interpreter, OpKind, QuantParams, TensorId, pack_signed};

use crate::calibrate::{Calibration, TensorObserver};
use crate::error::CompressError;
use crate::params::{
    INT16_MAX, activation_params, activation_params_int16, per_channel_scales, quantize_bias,
    quantize_bias_i64, quantize_per_tensor, quantize_with_scales,
};
use crate::subbyte::{quantize_sub_byte, sub_byte_scales, weight_dtype};

/// Metadata key recording how a graph was quantised.
pub const PTQ_METADATA: &str = "kinglet.ptq";

/// Options for [`quantize_int8`].
#[derive(Clone, Debug, PartialEq)]
pub struct PtqConfig {
    pub calibration: Calibration,
    /// Per-channel FullyConnected weights (what current TFLite converters emit).
    pub per_channel_fully_connected: bool,
    /// Keep float inputs/outputs, with QUANTIZE/DEQUANTIZE ops at the graph edges, instead of
    /// int8 inputs and outputs.
    pub float_io: bool,
    /// Bound for logit outputs (graph outputs of a FullyConnected without activation, two or
    /// more wide): the layer is centred so every sample's logits average zero (softmax and
    /// argmax unchanged) and the output range is clipped to ±this. Overconfident classifiers
    /// have min/max logit ranges of hundreds, whose int8 step then swallows the small margins
    /// of close decisions; past a gap of about 17 a float32 softmax is saturated anyway, so
    /// ±16 loses nothing. The bound is raised where calibration sees a second-largest logit
    /// above it, so two classes never saturate together on the calibration data. `None`
    /// keeps the converter's min/max range.
    pub logit_clip: Option<f32>,
    /// Weight bit width (8, 4 or 2) of every Conv2D, DepthwiseConv2D and FullyConnected
    /// layer, in op order (see [`crate::subbyte`]); empty means int8 everywhere.
    pub weight_bits: Vec<u32>,
}

/// Default for [`PtqConfig::logit_clip`] where a caller opts in: centred logits within ±16
/// resolve margins up to 32, where a float32 softmax is already exactly one-hot.
pub const DEFAULT_LOGIT_CLIP: f32 = 16.0;

impl Default for PtqConfig {
    fn default() -> Self {
        PtqConfig {
            calibration: Calibration::MinMax,
            per_channel_fully_connected: true,
            float_io: false,
            logit_clip: None,
            weight_bits: Vec::new(),
        }
    }
}

/// One calibration sample: the values of every graph input, in graph input order.
pub type CalibrationSample = Vec<Vec<f32>>;

/// A quantised graph and what calibration saw.
#[derive(Clone, Debug)]
pub struct PtqResult {
    pub graph: Graph,
    /// The real range each float activation tensor was quantised over, by tensor index in
    /// the float graph.
    pub ranges: BTreeMap<usize, (f32, f32)>,
}

/// Observes every activation tensor of `graph` over `samples` (two passes when the method
/// needs a histogram). Returns one observer per tensor index (constants left empty).
pub fn observe(
    graph: &Graph,
    samples: &[CalibrationSample],
    method: Calibration,
) -> Result<Vec<TensorObserver>, CompressError> {
    if samples.is_empty() {
        return Err(CompressError::Calibration("no calibration samples".into()));
    }
    // Every activation becomes a graph output so the interpreter keeps it and hands it back.
    let mut probe = graph.clone();
    let produced: Vec<TensorId> = graph
        .ops
        .iter()
        .flat_map(|op| op.outputs.iter().copied())
        .collect();
    probe.outputs = produced.clone();
    let mut interpreter = Interpreter::new(&probe)?;
    let mut observers = vec![TensorObserver::default(); graph.tensors.len()];
    let passes = if method.needs_histogram() { 2 } else { 1 };
    for pass in 0..passes {
        for (s, sample) in samples.iter().enumerate() {
            if sample.len() != graph.inputs.len() {
                return Err(CompressError::Calibration(format!(
                    "sample {s} has {} inputs, the model takes {}",
                    sample.len(),
                    graph.inputs.len()
                )));
            }
            let mut record = |id: TensorId, values: &[f32]| -> Result<(), CompressError> {
                let o = &mut observers[id.0];
                if pass == 0 {
                    o.observe_bounds(values).map_err(|i| {
                        CompressError::Calibration(format!(
                            "sample {s}: tensor '{}' has a non-finite value at index {i}",
                            graph.tensor(id).name
                        ))
                    })
                } else {
                    o.observe_histogram(values);
                    Ok(())
                }
            };
            for (i, (id, values)) in graph.inputs.iter().zip(sample).enumerate() {
                interpreter
                    .set_input(i, values)
                    .map_err(|e| CompressError::Calibration(format!("sample {s}: {e}")))?;
                record(*id, values)?;
            }
            interpreter
                .invoke()
                .map_err(|e| CompressError::Calibration(format!("sample {s}: {e}")))?;
            for (i, id) in produced.iter().enumerate() {
                let values = interpreter.output::<f32>(i)?;
                record(*id, &values)?;
            }
        }
    }
    Ok(observers)
}

/// Quantises a float graph to full int8, calibrating activations on `samples`.
pub fn quantize_int8(
    graph: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
) -> Result<PtqResult, CompressError> {
    quantize_int8_overriding(graph, samples, config, &BTreeMap::new())
}

/// [`quantize_int8`] with the ranges of some activation tensors (by tensor index) given
/// instead of calibrated (see [`crate::recorded`]).
pub(crate) fn quantize_int8_overriding(
    graph: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
    overrides: &BTreeMap<usize, (f32, f32)>,
) -> Result<PtqResult, CompressError> {
    quantize_full_integer(graph, samples, config, overrides, Activations::Int8)
}

/// Activation width of a full-integer scheme; weights are int8 per channel in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activations {
    /// TFLite's int8 scheme: asymmetric int8 activations, int32 biases.
    Int8,
    /// TFLite's 16×8 scheme: symmetric int16 activations, int64 biases.
    Int16,
}

impl Activations {
    fn dtype(self) -> DType {
        match self {
            Activations::Int8 => DType::I8,
            Activations::Int16 => DType::I16,
        }
    }

    /// Scale and zero point of an activation calibrated over `[lo, hi]`.
    fn params(self, lo: f32, hi: f32) -> (f32, i32) {
        match self {
            Activations::Int8 => activation_params(lo, hi),
            Activations::Int16 => activation_params_int16(lo, hi),
        }
    }

    /// The fixed output parameters TFLite's softmax kernels require.
    fn softmax(self) -> (f32, i32) {
        match self {
            Activations::Int8 => SOFTMAX_OUTPUT,
            Activations::Int16 => SOFTMAX_OUTPUT_INT16,
        }
    }

    /// Quantised bytes of a constant operand with `(scale, zero point)`.
    fn constant_bytes(self, values: &[f32], (scale, zp): (f32, i32)) -> Vec<u8> {
        let q = |v: f32, lo: f64, hi: f64| {
            ((f64::from(v) / f64::from(scale)).round() + f64::from(zp)).clamp(lo, hi)
        };
        match self {
            Activations::Int8 => values
                .iter()
                .map(|v| q(*v, -128.0, 127.0) as i8 as u8)
                .collect(),
            Activations::Int16 => values
                .iter()
                .flat_map(|v| (q(*v, -32768.0, f64::from(INT16_MAX)) as i16).to_le_bytes())
                .collect(),
        }
    }
}

/// Full-integer quantisation with int8 weights and `acts` activations: the int8 and 16×8
/// schemes differ only in activation parameters, softmax range and bias width.
pub(crate) fn quantize_full_integer(
    graph: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
    overrides: &BTreeMap<usize, (f32, f32)>,
    acts: Activations,
) -> Result<PtqResult, CompressError> {
    check_float_graph(graph)?;
    let layers = crate::subbyte::weighted_layers(graph);
    if !config.weight_bits.is_empty() && config.weight_bits.len() != layers.len() {
        return Err(CompressError::Unsupported(format!(
            "{} weight bit widths for {} weighted layers",
            config.weight_bits.len(),
            layers.len()
        )));
    }
    let centred;
    let (graph, logits) = match config.logit_clip {
        Some(limit) if !(limit.is_finite() && limit > 0.0) => {
            return Err(CompressError::Calibration(format!(
                "logit clip must be a positive number, got {limit}"
            )));
        }
        Some(_) => {
            let (g, logits) = centre_logits(graph)?;
            centred = g;
            (&centred, logits)
        }
        None => (graph, Vec::new()),
    };
    let observers = observe(graph, samples, config.calibration)?;
    let mut ranges: BTreeMap<usize, (f32, f32)> = observers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.count > 0)
        .map(|(i, o)| (i, o.range(config.calibration)))
        .collect();
    if let Some(limit) = config.logit_clip {
        let runner_up = largest_runner_up(graph, samples, &logits)?;
        for (id, second) in logits.iter().zip(runner_up) {
            let bound = limit.max(second);
            if let Some((lo, hi)) = ranges.get_mut(&id.0) {
                *lo = lo.max(-bound);
                *hi = hi.min(bound);
            }
        }
    }
    ranges.extend(overrides.iter().map(|(id, r)| (*id, *r)));
    let plan = assign_activation_params(graph, &ranges, acts)?;
    let params = plan.params;
    let mut q = graph.clone();
    for (id, (scale, zp)) in &params {
        let t = &mut q.tensors[*id];
        t.dtype = acts.dtype();
        t.quant = Some(QuantParams::per_tensor(*scale, *zp));
    }
    quantize_constants(graph, &mut q, &params, config, acts)?;
    insert_requantize(&mut q, &plan.requantize, acts.dtype());
    // Learned clipping has been applied; in a quantised file it would only cost bytes.
    q.metadata.remove(kinglet_graph::meta::WEIGHT_CLIPS);
    if config.float_io {
        add_float_edges(&mut q);
    }
    q.metadata.insert(
        PTQ_METADATA.to_owned(),
        format!(
            "{}{} per-channel weights, calibration {:?} on {} samples{}{}",
            match acts {
                Activations::Int8 => "",
                Activations::Int16 => "int16 activations (16x8), ",
            },
            match crate::subbyte::scheme_name(&config.weight_bits) {
                "mixed" => format!(
                    "mixed ({})",
                    config
                        .weight_bits
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                name => name.to_owned(),
            },
            config.calibration,
            samples.len(),
            match (config.logit_clip, logits.len()) {
                (Some(limit), n) if n > 0 =>
                    format!(", {n} logit output(s) centred, clip ±{limit}"),
                _ => String::new(),
            },
            if config.float_io { ", float I/O" } else { "" }
        ),
    );
    q.validate()?;
    Ok(PtqResult { graph: q, ranges })
}

/// Centres every logit output: a graph output produced by a FullyConnected without fused
/// activation, with constant weights (and bias) and at least two outputs. Subtracting the
/// mean weight row and the mean bias from every row shifts each sample's logits by the same
/// amount, so softmax and argmax are exactly as before while the values sit around zero.
/// In a pruned layer, weight columns with an exact zero keep their values.
/// Returns the centred graph and the logit tensors.
pub fn centre_logits(graph: &Graph) -> Result<(Graph, Vec<TensorId>), CompressError> {
    let mut g = graph.clone();
    let mut logits = Vec::new();
    for out in &graph.outputs {
        let Some(op) = graph.ops.iter().find(|op| op.outputs.contains(out)) else {
            continue;
        };
        if !matches!(
            op.kind,
            OpKind::FullyConnected {
                activation: kinglet_graph::Activation::None,
                ..
            }
        ) {
            continue;
        }
        let weights = graph.tensor(op.inputs[1]);
        let (Some(w), [rows, cols]) = (weights.data_f32(), weights.shape.as_slice()) else {
            continue;
        };
        let (rows, cols) = (*rows, *cols);
        let bias = match op.inputs.get(2) {
            Some(b) => match graph.tensor(*b).data_f32() {
                Some(v) if v.len() == rows => Some((*b, v)),
                _ => continue,
            },
            None => None,
        };
        if rows < 2 || w.len() != rows * cols {
            continue;
        }
        // A weight tensor shared with another op would change that op too.
        let uses = |id: TensorId| graph.ops.iter().filter(|o| o.inputs.contains(&id)).count();
        if uses(op.inputs[1]) != 1 || bias.as_ref().is_some_and(|(b, _)| uses(*b) != 1) {
            continue;
        }
        // Each input column shifts every logit by the same amount, so columns can be centred
        // independently; in a pruned layer (at least half its weights exactly zero) a column
        // holding a zero is left as it is, which keeps the zeros and their sparse storage.
        let pruned = 2 * w.iter().filter(|v| **v == 0.0).count() >= w.len();
        let mut centred = w.clone();
        for c in 0..cols {
            if pruned && (0..rows).any(|r| w[r * cols + c] == 0.0) {
                continue;
            }
            let mean = (0..rows).map(|r| f64::from(w[r * cols + c])).sum::<f64>() / rows as f64;
            for r in 0..rows {
                centred[r * cols + c] = (f64::from(w[r * cols + c]) - mean) as f32;
            }
        }
        g.tensors[op.inputs[1].0].data =
            Some(centred.iter().flat_map(|v| v.to_le_bytes()).collect());
        if let Some((b, values)) = bias {
            let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / rows as f64;
            g.tensors[b.0].data = Some(
                values
                    .iter()
                    .flat_map(|v| ((f64::from(*v) - mean) as f32).to_le_bytes())
                    .collect(),
            );
        }
        logits.push(*out);
    }
    Ok((g, logits))
}

/// For each logit tensor, the largest second-highest logit over all calibration samples
/// (rows of the last axis are the classes).
fn largest_runner_up(
    graph: &Graph,
    samples: &[CalibrationSample],
    logits: &[TensorId],
) -> Result<Vec<f32>, CompressError> {
    let mut best = vec![f32::NEG_INFINITY; logits.len()];
    if logits.is_empty() {
        return Ok(best);
    }
    let mut probe = graph.clone();
    probe.outputs = logits.to_vec();
    let mut interpreter = Interpreter::new(&probe)?;
    for (s, sample) in samples.iter().enumerate() {
        for (i, values) in sample.iter().enumerate() {
            interpreter
                .set_input(i, values)
                .map_err(|e| CompressError::Calibration(format!("sample {s}: {e}")))?;
        }
        interpreter
            .invoke()
            .map_err(|e| CompressError::Calibration(format!("sample {s}: {e}")))?;
        for (k, id) in logits.iter().enumerate() {
            let classes = graph.tensor(*id).shape.last().copied().unwrap_or(1).max(1);
            for row in interpreter.output::<f32>(k)?.chunks_exact(classes) {
                let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                for &v in row {
                    if v > first {
                        second = first;
                        first = v;
                    } else if v > second {
                        second = v;
                    }
                }
                best[k] = best[k].max(second);
            }
        }
    }
    Ok(best)
}

fn check_float_graph(graph: &Graph) -> Result<(), CompressError> {
    for (i, t) in graph.tensors.iter().enumerate() {
        if t.dtype != DType::F32 {
            return Err(CompressError::NotFloat(format!(
                "tensor {i} ('{}') is {}; post-training quantisation takes a float32 model",
                t.name, t.dtype
            )));
        }
    }
    for (i, op) in graph.ops.iter().enumerate() {
        if matches!(op.kind, OpKind::Quantize | OpKind::Dequantize) {
            return Err(CompressError::NotFloat(format!(
                "op {i} ({}) in a float model",
                op.kind.name()
            )));
        }
    }
    graph.validate()?;
    Ok(())
}

fn range_of(
    ranges: &BTreeMap<usize, (f32, f32)>,
    graph: &Graph,
    id: TensorId,
) -> Result<(f32, f32), CompressError> {
    ranges.get(&id.0).copied().ok_or_else(|| {
        CompressError::Calibration(format!(
            "tensor {} ('{}') was never computed during calibration",
            id.0,
            graph.tensor(id).name
        ))
    })
}

/// Scale and zero point of every activation tensor (graph inputs and op outputs).
///
/// MaxPool, AvgPool, Reshape, Pad and Concatenation require the same parameters on their
/// input(s) and output, so tensors joined through them form one class. A class takes the
/// range of its concatenation outputs when it has any (the union of what is concatenated,
/// as the converter propagates it back to the producers), otherwise the range of its first
/// tensor (the one no same-scale op produced). Softmax outputs are fixed at 1/256, −128.
fn assign_activation_params(
    graph: &Graph,
    ranges: &BTreeMap<usize, (f32, f32)>,
    acts: Activations,
) -> Result<ActivationPlan, CompressError> {
    let n = graph.tensors.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut produced_by_same_scale = vec![false; n];
    let mut concat_outputs = Vec::new();
    let softmax_outputs: Vec<usize> = graph
        .ops
        .iter()
        .filter(|op| matches!(op.kind, OpKind::Softmax { .. }))
        .map(|op| op.outputs[0].0)
        .collect();
    let mut requantize = Vec::new();
    for (index, op) in graph.ops.iter().enumerate() {
        let same_scale = matches!(
            op.kind,
            OpKind::MaxPool2D { .. }
                | OpKind::AvgPool2D { .. }
                | OpKind::Reshape { .. }
                | OpKind::Pad { .. }
                | OpKind::Concatenation { .. }
        );
        if !same_scale {
            continue;
        }
        let out = op.outputs[0].0;
        produced_by_same_scale[out] = true;
        if matches!(op.kind, OpKind::Concatenation { .. }) {
            concat_outputs.push(out);
        }
        let is_concat = matches!(op.kind, OpKind::Concatenation { .. });
        for (position, input) in op.inputs.iter().enumerate() {
            if graph.tensor(*input).is_constant() {
                continue;
            }
            // A softmax result keeps its fixed range; a concatenation takes it through a
            // requantising QUANTIZE op instead of inheriting it (as the converter does).
            let class = find(&mut parent, input.0);
            if is_concat
                && softmax_outputs
                    .iter()
                    .any(|s| find(&mut parent, *s) == class)
            {
                requantize.push((index, position));
                continue;
            }
            let (a, b) = (find(&mut parent, input.0), find(&mut parent, out));
            // Keep the earlier tensor as root so the class range defaults to its source.
            let (root, child) = if a < b { (a, b) } else { (b, a) };
            parent[child] = root;
        }
    }
    // Class ranges: union of concatenation outputs where present.
    let mut class_range: BTreeMap<usize, (f32, f32)> = BTreeMap::new();
    for out in &concat_outputs {
        let (lo, hi) = range_of(ranges, graph, TensorId(*out))?;
        let root = find(&mut parent, *out);
        let e = class_range.entry(root).or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
    let activations: Vec<TensorId> = graph
        .inputs
        .iter()
        .copied()
        .chain(graph.ops.iter().flat_map(|op| op.outputs.iter().copied()))
        .collect();
    for id in &activations {
        let root = find(&mut parent, id.0);
        if !class_range.contains_key(&root) && !produced_by_same_scale[id.0] {
            class_range.insert(root, range_of(ranges, graph, *id)?);
        }
    }
    let mut params = BTreeMap::new();
    for id in &activations {
        let root = find(&mut parent, id.0);
        let (lo, hi) = match class_range.get(&root) {
            Some(r) => *r,
            None => range_of(ranges, graph, *id)?,
        };
        params.insert(id.0, acts.params(lo, hi));
    }
    // Softmax fixes its output range; anything sharing parameters with it follows.
    for op in &graph.ops {
        if let OpKind::Softmax { .. } = op.kind {
            let root = find(&mut parent, op.outputs[0].0);
            for id in &activations {
                if find(&mut parent, id.0) == root {
                    params.insert(id.0, acts.softmax());
                }
            }
        }
    }
    // The requantised inputs take their concatenation's parameters.
    let requantize = requantize
        .into_iter()
        .map(|(op, position)| {
            let out = graph.ops[op].outputs[0].0;
            (op, position, params[&out])
        })
        .collect();
    Ok(ActivationPlan { params, requantize })
}

/// Activation parameters, and the op inputs that need a requantising QUANTIZE op in front:
/// `(op index, input position, parameters of the requantised tensor)`.
struct ActivationPlan {
    params: BTreeMap<usize, (f32, i32)>,
    requantize: Vec<(usize, usize, (f32, i32))>,
}

/// Inserts a QUANTIZE (int8 → int8, or int16 → int16) op before each listed op input. Ops
/// are handled from the last to the first so that insertions never shift an index still to
/// be visited.
fn insert_requantize(q: &mut Graph, plan: &[(usize, usize, (f32, i32))], dtype: DType) {
    let mut ops: Vec<usize> = plan.iter().map(|(op, _, _)| *op).collect();
    ops.sort_unstable();
    ops.dedup();
    for op in ops.into_iter().rev() {
        let mut inserted = Vec::new();
        for (_, position, (scale, zero_point)) in plan.iter().filter(|(o, _, _)| *o == op) {
            let source = q.ops[op].inputs[*position];
            let t = q.tensor(source).clone();
            let requantised = q.add_activation(
                format!("{}_requantized", t.name),
                &t.shape,
                dtype,
                Some(QuantParams::per_tensor(*scale, *zero_point)),
            );
            q.ops[op].inputs[*position] = requantised;
            inserted.push(kinglet_graph::Op {
                kind: OpKind::Quantize,
                inputs: vec![source],
                outputs: vec![requantised],
            });
        }
        q.ops.splice(op..op, inserted);
    }
}

/// The fixed int8 output parameters of Softmax: `[0, 1)` in steps of 1/256.
pub const SOFTMAX_OUTPUT: (f32, i32) = (1.0 / 256.0, -128);

/// The fixed int16 output parameters of Softmax: `[0, 1)` in steps of 1/32768.
pub const SOFTMAX_OUTPUT_INT16: (f32, i32) = (1.0 / 32768.0, 0);

fn quantize_constants(
    float: &Graph,
    q: &mut Graph,
    params: &BTreeMap<usize, (f32, i32)>,
    config: &PtqConfig,
    acts: Activations,
) -> Result<(), CompressError> {
    let mut done: BTreeMap<usize, &'static str> = BTreeMap::new();
    let mut layer = 0;
    let clips = crate::subbyte::learned_clips(float)?;
    for (index, op) in float.ops.iter().enumerate() {
        let name = op.kind.name();
        let err = |m: String| CompressError::Unsupported(format!("op {index} ({name}): {m}"));
        let weight_axis = match op.kind {
            OpKind::Conv2D { .. } => Some(Some(0)),
            OpKind::DepthwiseConv2D { .. } => Some(Some(3)),
            OpKind::FullyConnected { .. } => Some(config.per_channel_fully_connected.then_some(0)),
            _ => None,
        };
        if let Some(axis) = weight_axis {
            let (input, weights) = (op.inputs[0], op.inputs[1]);
            let wt = float.tensor(weights);
            let values = wt
                .data_f32()
                .ok_or_else(|| err(format!("weights '{}' are not a float constant", wt.name)))?;
            let bits = config.weight_bits.get(layer).copied().unwrap_or(8);
            layer += 1;
            let mut scales = match (axis, bits) {
                (Some(axis), 8) => per_channel_scales(&values, &wt.shape, axis),
                (None, 8) => vec![quantize_per_tensor(&values).1],
                // Clipping learnt at this width by QAT, where it fits the layer.
                (Some(axis), bits)
                    if clips.get(&wt.name).is_some_and(|(b, r)| {
                        *b == bits && Some(&r.len()) == wt.shape.get(axis)
                    }) =>
                {
                    let ratios = &clips[&wt.name].1;
                    crate::subbyte::clipped_scales(&values, &wt.shape, axis, bits, ratios)
                }
                (axis, bits) => sub_byte_scales(
                    &values,
                    if axis.is_some() { &wt.shape } else { &[] },
                    axis.unwrap_or(0),
                    bits,
                ),
            };
            if let Some(prev) = done.insert(weights.0, name) {
                return Err(err(format!(
                    "weights '{}' are shared with a {prev} op; kinglet quantises each weight tensor once",
                    wt.name
                )));
            }
            if let Some(bias) = op.inputs.get(2).copied() {
                let bt = float.tensor(bias);
                let bv = bt
                    .data_f32()
                    .ok_or_else(|| err(format!("bias '{}' is not a float constant", bt.name)))?;
                if bv.len() != scales.len() && scales.len() != 1 {
                    return Err(err(format!(
                        "bias '{}' has {} values for {} channels",
                        bt.name,
                        bv.len(),
                        scales.len()
                    )));
                }
                let (input_scale, _) = params[&input.0];
                let (dtype, data, bscales) = match acts {
                    Activations::Int8 => {
                        let (qb, bscales, adjusted) = quantize_bias(&bv, input_scale, &scales);
                        scales = adjusted;
                        let data = qb.iter().flat_map(|v| v.to_le_bytes()).collect();
                        (DType::I32, data, bscales)
                    }
                    Activations::Int16 => {
                        let (qb, bscales) = quantize_bias_i64(&bv, input_scale, &scales);
                        let data = qb.iter().flat_map(|v| v.to_le_bytes()).collect();
                        (DType::I64, data, bscales)
                    }
                };
                if done.insert(bias.0, name).is_some() {
                    return Err(err(format!("bias '{}' is shared between ops", bt.name)));
                }
                let bq = if axis.is_none() {
                    QuantParams::per_tensor(bscales[0], 0)
                } else {
                    QuantParams::per_axis(bscales.clone(), vec![0; bscales.len()], 0)
                };
                let target = &mut q.tensors[bias.0];
                target.dtype = dtype;
                target.quant = Some(bq);
                target.data = Some(data);
            }
            let qw = if bits == 8 {
                quantize_with_scales(&values, &wt.shape, axis.unwrap_or(0), &scales)
            } else {
                quantize_sub_byte(&values, &wt.shape, axis.unwrap_or(0), &scales, bits)
            };
            let wq = match axis {
                Some(axis) => QuantParams::per_axis(scales.clone(), vec![0; scales.len()], axis),
                None => QuantParams::per_tensor(scales[0], 0),
            };
            let target = &mut q.tensors[weights.0];
            target.dtype = weight_dtype(bits)?;
            target.quant = Some(wq);
            target.data = Some(pack_signed(&qw, bits));
            continue;
        }
        // Any other constant operand (e.g. a constant addend) is quantised like an
        // activation over its own value range.
        for input in &op.inputs {
            let t = float.tensor(*input);
            let Some(values) = t.data_f32() else { continue };
            if done.insert(input.0, name).is_some() {
                continue;
            }
            let (lo, hi) = values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                    (a.min(*v), b.max(*v))
                });
            let (scale, zp) = acts.params(lo, hi);
            let data = acts.constant_bytes(&values, (scale, zp));
            let target = &mut q.tensors[input.0];
            target.dtype = acts.dtype();
            target.quant = Some(QuantParams::per_tensor(scale, zp));
            target.data = Some(data);
        }
    }
    Ok(())
}

/// Float graph inputs feeding QUANTIZE ops, and DEQUANTIZE ops producing float outputs.
fn add_float_edges(q: &mut Graph) {
    let mut front = Vec::new();
    let mut new_inputs = Vec::new();
    for id in q.inputs.clone() {
        let t = q.tensor(id).clone();
        let float_in = q.add_activation(format!("{}_float", t.name), &t.shape, DType::F32, None);
        front.push(kinglet_graph::Op {
            kind: OpKind::Quantize,
            inputs: vec![float_in],
            outputs: vec![id],
        });
        new_inputs.push(float_in);
    }
    q.ops.splice(0..0, front);
    q.inputs = new_inputs;
    let mut new_outputs = Vec::new();
    for id in q.outputs.clone() {
        let t = q.tensor(id).clone();
        let float_out = q.add_activation(format!("{}_float", t.name), &t.shape, DType::F32, None);
        q.add_op(OpKind::Dequantize, &[id], &[float_out]);
        new_outputs.push(float_out);
    }
    q.outputs = new_outputs;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinglet_graph::{Activation, Hw, Padding};

    /// input [1,1,4,2] → conv 1×1 (3 filters) + ReLU → maxpool 1×2 ┐
    ///                 → reshape [1,1,2,4] → reshape [1,1,2,4] ────┴ concat (channels) → softmax
    fn small_graph() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 4, 2], DType::F32, None);
        let w = g
            .add_constant_f32("w", &[3, 1, 1, 2], &[0.5, -0.25, 1.0, 0.0, 0.0, 0.0])
            .unwrap();
        let b = g.add_constant_f32("b", &[3], &[0.1, -0.2, 0.3]).unwrap();
        let conv = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Same,
            activation: Activation::Relu,
        };
        let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
        let pool = OpKind::MaxPool2D {
            filter: Hw::new(1, 2),
            stride: Hw::new(1, 2),
            padding: Padding::Valid,
            activation: Activation::None,
        };
        let p = g.add_op_inferred(pool, &[c], "pool").unwrap();
        let r1 = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 1, 2, 4],
                },
                &[x],
                "r1",
            )
            .unwrap();
        let r2 = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 1, 2, 4],
                },
                &[r1],
                "r2",
            )
            .unwrap();
        let cat = g
            .add_op_inferred(
                OpKind::Concatenation {
                    axis: 3,
                    activation: Activation::None,
                },
                &[p, r2],
                "cat",
            )
            .unwrap();
        let s = g
            .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[cat], "softmax")
            .unwrap();
        g.mark_output(s);
        g
    }

    fn samples() -> Vec<CalibrationSample> {
        (0..8)
            .map(|k| {
                vec![
                    (0..8)
                        .map(|i| ((i * 7 + k * 3) % 11) as f32 / 5.0 - 1.0)
                        .collect(),
                ]
            })
            .collect()
    }

    fn quant(g: &Graph, name: &str) -> (f32, i32) {
        let t = g.tensors.iter().find(|t| t.name == name).unwrap();
        let q = t.quant.as_ref().unwrap();
        (q.scale[0], q.zero_point[0])
    }

    #[test]
    fn same_scale_ops_share_parameters_and_softmax_is_fixed() {
        let r = quantize_int8(&small_graph(), &samples(), &PtqConfig::default()).unwrap();
        let g = &r.graph;
        // Concatenation, its inputs, the pool and the conv feeding it, and the reshape chain
        // back to the graph input all share one set of parameters.
        let shared = quant(g, "cat");
        for name in ["pool", "conv", "r1", "r2", "x"] {
            assert_eq!(quant(g, name), shared, "{name}");
        }
        assert_eq!(quant(g, "softmax"), SOFTMAX_OUTPUT);
        assert!(
            g.tensors
                .iter()
                .filter(|t| t.data.is_none())
                .all(|t| t.dtype == DType::I8)
        );
        let w = g.tensors.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(w.dtype, DType::I8);
        assert_eq!(w.quant.as_ref().unwrap().scale.len(), 3);
        let b = g.tensors.iter().find(|t| t.name == "b").unwrap();
        assert_eq!(b.dtype, DType::I32);
        // It runs; each of the 2 positions holds a distribution over 3 + 4 channels.
        let mut it = Interpreter::new(g).unwrap();
        it.set_input(0, &[0i8, 10, -20, 30, 5, 5, 100, -100])
            .unwrap();
        it.invoke().unwrap();
        let p = it.output_f32(0).unwrap();
        let sum: f32 = p.iter().sum();
        assert_eq!(p.len(), 14);
        assert!((sum - 2.0).abs() < 0.1, "softmax sums to {sum}");
    }

    #[test]
    fn softmax_into_concatenation_is_requantised() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 6], DType::F32, None);
        let s = g
            .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[x], "softmax")
            .unwrap();
        let cat = OpKind::Concatenation {
            axis: 1,
            activation: Activation::None,
        };
        let c = g.add_op_inferred(cat, &[s, x], "cat").unwrap();
        g.mark_output(c);
        let samples: Vec<CalibrationSample> = (0..4)
            .map(|k| vec![(0..6).map(|i| (i + k) as f32 - 3.0).collect()])
            .collect();
        let q = quantize_int8(&g, &samples, &PtqConfig::default())
            .unwrap()
            .graph;
        let names: Vec<&str> = q.ops.iter().map(|o| o.kind.name()).collect();
        assert_eq!(names, ["SOFTMAX", "QUANTIZE", "CONCATENATION"]);
        assert_eq!(quant(&q, "softmax"), SOFTMAX_OUTPUT);
        // The input keeps a range wide enough for its values; the concatenation shares it.
        assert_eq!(quant(&q, "x"), quant(&q, "cat"));
        assert_eq!(quant(&q, "softmax_requantized"), quant(&q, "cat"));
        assert!(quant(&q, "x").0 > 0.02);
        let mut it = Interpreter::new(&q).unwrap();
        it.set_input(0, &[0i8; 6]).unwrap();
        it.invoke().unwrap();
    }

    /// Two logits `1000a` and `1000a + 100m − 400b`: a large common mode (a) and, for b = 1, a
    /// huge negative margin, around decisions made by a small margin 100m ∈ [−5, 5] — the
    /// shape of an overconfident one-vs-rest network's output.
    fn overconfident_logits() -> (Graph, Vec<CalibrationSample>) {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 3], DType::F32, None);
        let w = g
            .add_constant_f32("w", &[2, 3], &[1000.0, 0.0, 0.0, 1000.0, 100.0, -400.0])
            .unwrap();
        let b = g.add_constant_f32("b", &[2], &[3.0, 3.0]).unwrap();
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let y = g.add_op_inferred(fc, &[x, w, b], "logits").unwrap();
        g.mark_output(y);
        let samples = (0..400u32)
            .map(|k| {
                let a = (k % 7) as f32 / 7.0;
                let m = ((k * 37) % 101) as f32 / 1000.0 - 0.05;
                let b = if k % 3 == 0 { 1.0 } else { 0.0 };
                vec![vec![a, m, b]]
            })
            .collect();
        (g, samples)
    }

    fn top1(g: &Graph, samples: &[CalibrationSample]) -> Vec<usize> {
        let mut it = Interpreter::new(g).unwrap();
        samples
            .iter()
            .map(|s| {
                it.set_input(0, &s[0]).unwrap();
                it.invoke().unwrap();
                let v = it.output_f32(0).unwrap();
                usize::from(v[1] > v[0])
            })
            .collect()
    }

    #[test]
    fn centring_keeps_the_zeros_of_a_pruned_layer() {
        let (mut g, samples) = overconfident_logits();
        let w = g.ops[0].inputs[1];
        // Four of six weights pruned; only column 0 has no zero.
        let pruned = [1000.0f32, 0.0, 0.0, 900.0, 0.0, -400.0];
        g.tensors[w.0].data = Some(pruned.iter().flat_map(|v| v.to_le_bytes()).collect());
        let (centred, _) = centre_logits(&g).unwrap();
        let got = centred.tensor(w).data_f32().unwrap();
        assert_eq!(got, vec![50.0, 0.0, 0.0, -50.0, 0.0, -400.0]);
        assert_eq!(top1(&centred, &samples), top1(&g, &samples));
    }

    #[test]
    fn centring_keeps_decisions_and_clipping_keeps_close_ones_in_int8() {
        let (g, samples) = overconfident_logits();
        let (centred, logits) = centre_logits(&g).unwrap();
        assert_eq!(logits, g.outputs);
        let mut it = Interpreter::new(&centred).unwrap();
        it.set_input(0, &samples[5][0]).unwrap();
        it.invoke().unwrap();
        let v = it.output_f32(0).unwrap();
        assert!((v[0] + v[1]).abs() < 1e-4, "{v:?}");
        let float = top1(&g, &samples);
        assert_eq!(top1(&centred, &samples), float);
        let agreement = |logit_clip| {
            let config = PtqConfig {
                float_io: true,
                logit_clip,
                ..PtqConfig::default()
            };
            let q = quantize_int8(&g, &samples, &config).unwrap().graph;
            let same = top1(&q, &samples)
                .iter()
                .zip(&float)
                .filter(|(a, b)| a == b)
                .count();
            same as f64 / samples.len() as f64
        };
        // Min/max: the output spans about [−400, 860] in steps of 5; clipped: ±16 in 1/8s.
        let (plain, clipped) = (agreement(None), agreement(Some(DEFAULT_LOGIT_CLIP)));
        assert!(plain < 0.85, "min/max agreement {plain}");
        assert!(clipped > 0.97, "clipped agreement {clipped}");
        let bad = PtqConfig {
            logit_clip: Some(0.0),
            ..PtqConfig::default()
        };
        assert!(quantize_int8(&g, &samples, &bad).is_err());
    }

    #[test]
    fn float_io_adds_edge_ops() {
        let config = PtqConfig {
            float_io: true,
            ..PtqConfig::default()
        };
        let g = quantize_int8(&small_graph(), &samples(), &config)
            .unwrap()
            .graph;
        assert_eq!(g.ops.first().map(|o| o.kind.name()), Some("QUANTIZE"));
        assert_eq!(g.ops.last().map(|o| o.kind.name()), Some("DEQUANTIZE"));
        assert_eq!(g.tensor(g.inputs[0]).dtype, DType::F32);
        assert_eq!(g.tensor(g.outputs[0]).dtype, DType::F32);
        let mut it = Interpreter::new(&g).unwrap();
        it.set_input(0, &samples()[0][0]).unwrap();
        it.invoke().unwrap();
        assert_eq!(it.output_f32(0).unwrap().len(), 14);
    }

    #[test]
    fn every_calibration_method_quantises() {
        for c in [
            Calibration::MinMax,
            Calibration::Percentile(99.0),
            Calibration::Mse,
        ] {
            let config = PtqConfig {
                calibration: c,
                ..PtqConfig::default()
            };
            let r = quantize_int8(&small_graph(), &samples(), &config).unwrap();
            assert!(r.graph.metadata.contains_key(PTQ_METADATA));
        }
    }

    #[test]
    fn bad_calibration_data_is_reported() {
        let g = small_graph();
        let err = quantize_int8(&g, &[], &PtqConfig::default()).unwrap_err();
        assert!(err.to_string().contains("no calibration samples"), "{err}");
        let mut bad = samples();
        bad[3][0][2] = f32::NAN;
        let err = quantize_int8(&g, &bad, &PtqConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sample 3") && err.contains("non-finite"),
            "{err}"
        );
        let err = quantize_int8(&g, &[vec![vec![0.0; 3]]], &PtqConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sample 0"), "{err}");
        let err = quantize_int8(&g, &[vec![]], &PtqConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 inputs"), "{err}");
    }

    #[test]
    fn integer_model_is_rejected() {
        let once = quantize_int8(&small_graph(), &samples(), &PtqConfig::default())
            .unwrap()
            .graph;
        let err = quantize_int8(&once, &samples(), &PtqConfig::default()).unwrap_err();
        assert!(matches!(err, CompressError::NotFloat(_)), "{err}");
    }
}
