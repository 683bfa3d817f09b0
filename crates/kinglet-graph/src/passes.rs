//! Graph passes: pure rewrites `&Graph → (Graph, PassReport)` that shrink a model without
//! changing what it computes, and [`optimize_graph`], the default pipeline.
//!
//! Every pass in exact mode ([`PassOptions::default`]) keeps outputs bit-identical under
//! [`crate::Interpreter`]: integer graphs byte for byte, float graphs value for value. Rewrites
//! that would change float rounding (folding a bias into a non-zero bias) run only when
//! [`PassOptions::exact`] is `false`, and their reports say so.
//!
//! What the IR cannot express is not attempted: kinglet's IR (and its `.tflite` reader) has
//! no MUL and no standalone RELU/RELU6 op, so a batch norm left as MUL+ADD, or an activation
//! left as its own op, cannot be read in the first place. The passes fold what the IR can
//! hold: per-channel ADDs of constants after conv/FC (the shift half of a batch norm), 1×1
//! depthwise scales (the scale half, as converters sometimes emit it), and activations that
//! sit on a MAX_POOL_2D after an unactivated producer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::GraphError;
use crate::graph::{Activation, DType, Graph, Hw, Op, OpKind, Tensor, TensorId};
use crate::interp::{Interpreter, TfliteKernels};
use crate::plan::ArenaPlan;

/// Knobs shared by all passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassOptions {
    /// Only rewrite when the result is provably bit-identical (the default). `false` also folds
    /// batch-norm constants whose float sums round differently from the unfolded graph.
    pub exact: bool,
    /// Kernels that evaluate folded constant ops. Most ops compute the same bytes in every
    /// configuration; those that differ (QUANTIZE's rounding, integer MEAN) then match this one.
    pub kernels: TfliteKernels,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            exact: true,
            kernels: Interpreter::DEFAULT_KERNELS,
        }
    }
}

/// One pass of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    FoldConstants,
    FoldBatchNorm,
    FuseActivations,
    SimplifyReshapes,
    RemoveDeadOps,
}

impl Pass {
    /// The default pipeline's order: constants first (so folded weights feed the batch-norm
    /// fold), dead-code removal last (it sweeps what the others disconnect).
    pub const DEFAULT_PIPELINE: [Pass; 5] = [
        Pass::FoldConstants,
        Pass::FoldBatchNorm,
        Pass::FuseActivations,
        Pass::SimplifyReshapes,
        Pass::RemoveDeadOps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pass::FoldConstants => "fold-constants",
            Pass::FoldBatchNorm => "fold-batch-norm",
            Pass::FuseActivations => "fuse-activations",
            Pass::SimplifyReshapes => "simplify-reshapes",
            Pass::RemoveDeadOps => "remove-dead-ops",
        }
    }

    pub fn run(
        self,
        graph: &Graph,
        options: PassOptions,
    ) -> Result<(Graph, PassReport), GraphError> {
        match self {
            Pass::FoldConstants => fold_constants(graph, options),
            Pass::FoldBatchNorm => fold_batch_norm(graph, options),
            Pass::FuseActivations => fuse_activations(graph),
            Pass::SimplifyReshapes => simplify_reshapes(graph),
            Pass::RemoveDeadOps => remove_dead_ops(graph),
        }
    }
}

impl std::str::FromStr for Pass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Pass::DEFAULT_PIPELINE
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Pass::DEFAULT_PIPELINE.iter().map(|p| p.name()).collect();
                format!("unknown pass '{s}' (known: {})", names.join(", "))
            })
    }
}

/// Size measures of a graph, before or after a pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GraphStats {
    pub ops: usize,
    pub tensors: usize,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    /// Op count per TFLite op name.
    pub op_counts: BTreeMap<&'static str, usize>,
}

impl GraphStats {
    pub fn new(graph: &Graph) -> Result<GraphStats, GraphError> {
        let mut op_counts = BTreeMap::new();
        for op in &graph.ops {
            *op_counts.entry(op.kind.name()).or_insert(0) += 1;
        }
        Ok(GraphStats {
            ops: graph.ops.len(),
            tensors: graph.tensors.len(),
            weight_bytes: graph.weight_bytes(),
            arena_bytes: ArenaPlan::new(graph)?.arena_bytes(),
            op_counts,
        })
    }
}

/// What one pass did.
#[derive(Clone, Debug, Serialize)]
pub struct PassReport {
    pub pass: &'static str,
    pub before: GraphStats,
    pub after: GraphStats,
    /// One line per rewrite, naming the ops (by index in the input graph) and tensors.
    pub changes: Vec<String>,
    /// Patterns found but left alone, with the reason (inexact, unsupported, …).
    pub skipped: Vec<String>,
}

impl PassReport {
    fn new(
        pass: Pass,
        before: &Graph,
        after: &Graph,
        changes: Vec<String>,
        skipped: Vec<String>,
    ) -> Result<PassReport, GraphError> {
        Ok(PassReport {
            pass: pass.name(),
            before: GraphStats::new(before)?,
            after: GraphStats::new(after)?,
            changes,
            skipped,
        })
    }
}

/// Runs [`Pass::DEFAULT_PIPELINE`] in exact mode.
pub fn optimize_graph(graph: &Graph) -> Result<(Graph, Vec<PassReport>), GraphError> {
    optimize_graph_with(graph, &Pass::DEFAULT_PIPELINE, PassOptions::default())
}

/// Runs `passes` in order; the result is validated after every pass, so a faulty rewrite
/// surfaces as an error naming the pass instead of a wrong model.
pub fn optimize_graph_with(
    graph: &Graph,
    passes: &[Pass],
    options: PassOptions,
) -> Result<(Graph, Vec<PassReport>), GraphError> {
    graph.validate()?;
    let mut current = graph.clone();
    let mut reports = Vec::with_capacity(passes.len());
    for pass in passes {
        let (next, report) = pass.run(&current, options)?;
        next.validate().map_err(|e| {
            GraphError::Invalid(format!(
                "pass {} produced an invalid graph: {e}",
                pass.name()
            ))
        })?;
        reports.push(report);
        current = next;
    }
    Ok((current, reports))
}

/// A per-pass table (ops, tensors, weight bytes, peak arena, before → after) followed by each
/// pass's changes and skipped patterns; what `kinglet inspect --optimize` prints.
pub fn reports_to_text(reports: &[PassReport]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let arrow = |a: usize, b: usize| format!("{a} → {b}");
    let _ = writeln!(
        s,
        "{:<18} {:>12} {:>12} {:>16} {:>14}",
        "pass", "ops", "tensors", "weight bytes", "arena bytes"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:<18} {:>12} {:>12} {:>16} {:>14}",
            r.pass,
            arrow(r.before.ops, r.after.ops),
            arrow(r.before.tensors, r.after.tensors),
            arrow(r.before.weight_bytes, r.after.weight_bytes),
            arrow(r.before.arena_bytes, r.after.arena_bytes)
        );
    }
    for r in reports {
        for c in &r.changes {
            let _ = writeln!(s, "  {}: {c}", r.pass);
        }
        for c in &r.skipped {
            let _ = writeln!(s, "  {}: skipped: {c}", r.pass);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// Index of the op producing each tensor.
fn producers(graph: &Graph) -> Vec<Option<usize>> {
    let mut p = vec![None; graph.tensors.len()];
    for (i, op) in graph.ops.iter().enumerate() {
        for o in &op.outputs {
            p[o.0] = Some(i);
        }
    }
    p
}

/// How many op inputs read each tensor, plus one for each graph-output use.
fn use_counts(graph: &Graph) -> Vec<usize> {
    let mut n = vec![0; graph.tensors.len()];
    for op in &graph.ops {
        for i in &op.inputs {
            n[i.0] += 1;
        }
    }
    for o in &graph.outputs {
        n[o.0] += 1;
    }
    n
}

fn is_graph_output(graph: &Graph, id: TensorId) -> bool {
    graph.outputs.contains(&id)
}

/// Replaces every op-input use of `from` by `to` (graph outputs are left alone: their
/// tensors are the model's interface).
fn replace_uses(graph: &mut Graph, from: TensorId, to: TensorId) {
    for op in &mut graph.ops {
        for i in &mut op.inputs {
            if *i == from {
                *i = to;
            }
        }
    }
}

fn op_label(index: usize, op: &Op) -> String {
    format!("op {index} ({})", op.kind.name())
}

fn f32_values(t: &Tensor) -> Option<Vec<f32>> {
    t.data_f32()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Marks an op for removal by [`drop_retired`]; a retired op reads and writes nothing, so
/// producer and use lookups ignore it while a pass is still walking op indices.
fn retire(op: &mut Op) {
    op.inputs.clear();
    op.outputs.clear();
}

fn drop_retired(graph: &mut Graph) {
    let keep: Vec<bool> = graph.ops.iter().map(|o| !o.outputs.is_empty()).collect();
    compact(graph, &keep);
}

/// Drops ops marked `false` and then tensors nothing refers to, renumbering tensors in order.
fn compact(graph: &mut Graph, keep_op: &[bool]) {
    let ops = std::mem::take(&mut graph.ops);
    graph.ops = ops
        .into_iter()
        .zip(keep_op)
        .filter(|(_, k)| **k)
        .map(|(op, _)| op)
        .collect();
    graph.drop_unused_tensors();
}

/// Removes ops whose outputs are no longer read by anything (after a rewrite disconnected
/// them), repeatedly, then unused tensors. Returns the removed ops' labels.
fn sweep(graph: &mut Graph) -> Vec<String> {
    let mut keep = vec![true; graph.ops.len()];
    let mut needed = vec![false; graph.tensors.len()];
    for o in &graph.outputs {
        needed[o.0] = true;
    }
    for (i, op) in graph.ops.iter().enumerate().rev() {
        if op.outputs.iter().any(|o| needed[o.0]) {
            for t in &op.inputs {
                needed[t.0] = true;
            }
        } else {
            keep[i] = false;
        }
    }
    let removed = graph
        .ops
        .iter()
        .enumerate()
        .filter(|(i, _)| !keep[*i])
        .map(|(i, op)| op_label(i, op))
        .collect();
    compact(graph, &keep);
    removed
}

// ---------------------------------------------------------------------------------------------
// Dead ops and unused tensors.

/// Removes ops whose outputs never reach a graph output, and tensors no op or graph
/// input/output refers to. Outputs cannot change: only unread work is dropped.
pub fn remove_dead_ops(graph: &Graph) -> Result<(Graph, PassReport), GraphError> {
    graph.validate()?;
    let mut g = graph.clone();
    let tensors_before = g.tensors.len();
    let mut changes: Vec<String> = sweep(&mut g)
        .into_iter()
        .map(|l| format!("removed {l}: its output reaches no graph output"))
        .collect();
    let dropped = tensors_before - g.tensors.len();
    if dropped > 0 {
        changes.push(format!("removed {dropped} unused tensor(s)"));
    }
    let report = PassReport::new(Pass::RemoveDeadOps, graph, &g, changes, Vec::new())?;
    Ok((g, report))
}

// ---------------------------------------------------------------------------------------------
// Constant folding.

/// Half-precision bits to f32, exactly (kinglet-micro's conversion; re-exported for the
/// compression crate).
pub use kinglet_micro::half::f16_to_f32;

/// Whether an op input position is an activation the kernels read from the arena (the
/// others — filters, weights, biases — must be constants).
fn arena_input(kind: &OpKind, position: usize) -> bool {
    match kind {
        OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. } => {
            position == 0
        }
        _ => true,
    }
}

/// Evaluates an op whose inputs are all constants, with the interpreter's own kernels (so the
/// folded bytes are exactly what the op would have produced at run time).
fn evaluate_constant_op(graph: &Graph, op: &Op, kernels: TfliteKernels) -> Result<Vec<u8>, String> {
    let out = graph.tensor(op.outputs[0]);
    let x = graph.tensor(op.inputs[0]);
    match &op.kind {
        OpKind::Reshape { .. } => {
            return x.data.clone().ok_or_else(|| "input is not constant".into());
        }
        OpKind::Dequantize if x.dtype == DType::F16 => {
            let d = x.data.as_ref().ok_or("input is not constant")?;
            let values: Vec<f32> = d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect();
            return Ok(f32_bytes(&values));
        }
        OpKind::Dequantize
            if x.dtype.is_quantized_integer()
                && x.quant.as_ref().is_some_and(|q| !q.is_per_tensor()) =>
        {
            return dequantize_per_axis(x);
        }
        _ => {}
    }
    let mut sub = Graph::new();
    let mut fed: Vec<(usize, &[u8])> = Vec::new();
    let mut ins = Vec::with_capacity(op.inputs.len());
    for (pos, id) in op.inputs.iter().enumerate() {
        let t = graph.tensor(*id);
        let data = t.data.as_deref().ok_or("input is not constant")?;
        if arena_input(&op.kind, pos) {
            fed.push((sub.inputs.len(), data));
            ins.push(sub.add_input(t.name.clone(), &t.shape, t.dtype, t.quant.clone()));
        } else {
            ins.push(
                sub.add_constant(
                    t.name.clone(),
                    &t.shape,
                    t.dtype,
                    t.quant.clone(),
                    data.to_vec(),
                )
                .map_err(|e| e.to_string())?,
            );
        }
    }
    let y = sub.add_activation(out.name.clone(), &out.shape, out.dtype, out.quant.clone());
    sub.add_op(op.kind.clone(), &ins, &[y]);
    sub.mark_output(y);
    let mut interp = Interpreter::with_kernels(&sub, kernels).map_err(|e| e.to_string())?;
    for (i, data) in fed {
        interp.set_input_bytes(i, data).map_err(|e| e.to_string())?;
    }
    interp.invoke().map_err(|e| e.to_string())?;
    Ok(interp.output_bytes(0).map_err(|e| e.to_string())?.to_vec())
}

/// Per-channel dequantisation with kinglet-micro's per-tensor kernel applied per element
/// (TFLite's per-channel kernel rounds the same exact product once).
fn dequantize_per_axis(x: &Tensor) -> Result<Vec<u8>, String> {
    let q = x.quant.as_ref().ok_or("no quantisation")?;
    let d = x.data.as_ref().ok_or("input is not constant")?;
    let dim = *x
        .shape
        .get(q.axis)
        .ok_or_else(|| format!("quantised axis {} out of range", q.axis))?;
    let inner: usize = x.shape[q.axis + 1..].iter().product();
    let mut out = Vec::with_capacity(d.len());
    for (i, b) in d.iter().enumerate() {
        let c = (i / inner.max(1)) % dim.max(1);
        let (s, z) = (q.scale[c], q.zero_point[c]);
        let mut v = [0f32];
        let r = if x.dtype == DType::I8 {
            kinglet_micro::dequantize::dequantize_i8(&[*b as i8], s, z, &mut v)
        } else {
            kinglet_micro::dequantize::dequantize_u8(&[*b], s, z, &mut v)
        };
        r.map_err(|e| e.to_string())?;
        out.extend_from_slice(&v[0].to_le_bytes());
    }
    Ok(out)
}

/// Evaluates once every op whose inputs are all constants (DEQUANTIZE of float16 or int8
/// weights, RESHAPE of constants, QUANTIZE of float constants, …): its output becomes a
/// constant and the op disappears. Outputs of graph outputs stay computed at run time.
///
/// Folding a float16 DEQUANTIZE stores the weights as f32, doubling their bytes; it is what
/// makes such models runnable by kinglet's kernels (which need constant f32 filters).
pub fn fold_constants(
    graph: &Graph,
    options: PassOptions,
) -> Result<(Graph, PassReport), GraphError> {
    graph.validate()?;
    let mut g = graph.clone();
    let (mut changes, mut skipped) = (Vec::new(), Vec::new());
    for i in 0..g.ops.len() {
        let op = g.ops[i].clone();
        if op.inputs.is_empty() || !op.inputs.iter().all(|t| g.tensor(*t).is_constant()) {
            continue;
        }
        let out = op.outputs[0];
        if is_graph_output(&g, out) {
            skipped.push(format!(
                "{}: output '{}' is a graph output, kept as a run-time op",
                op_label(i, &op),
                g.tensor(out).name
            ));
            continue;
        }
        match evaluate_constant_op(&g, &op, options.kernels) {
            Ok(bytes) if bytes.len() == g.tensor(out).byte_size() => {
                let t = g.tensor_mut(out);
                t.data = Some(bytes);
                changes.push(format!(
                    "folded {} into constant '{}' {:?} {}",
                    op_label(i, &op),
                    t.name,
                    t.shape,
                    t.dtype
                ));
                retire(&mut g.ops[i]);
            }
            Ok(bytes) => skipped.push(format!(
                "{}: evaluation gave {} bytes, output needs {}",
                op_label(i, &op),
                bytes.len(),
                g.tensor(out).byte_size()
            )),
            Err(e) => skipped.push(format!("{}: not evaluable ({e})", op_label(i, &op))),
        }
    }
    drop_retired(&mut g);
    let report = PassReport::new(Pass::FoldConstants, graph, &g, changes, skipped)?;
    Ok((g, report))
}

// ---------------------------------------------------------------------------------------------
// Batch-norm folding.

/// Per-channel values of a full-shape constant whose every position holds the same value per
/// channel (last axis), i.e. a broadcast per-channel vector; `None` otherwise.
fn per_channel(values: &[f32], channels: usize) -> Option<Vec<f32>> {
    if channels == 0 || !values.len().is_multiple_of(channels) {
        return None;
    }
    let first = &values[..channels];
    values
        .chunks_exact(channels)
        .all(|row| {
            row.iter()
                .zip(first)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        })
        .then(|| first.to_vec())
}

fn is_weighted(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. }
    )
}

fn set_activation(kind: &mut OpKind, act: Activation) {
    match kind {
        OpKind::Conv2D { activation, .. }
        | OpKind::DepthwiseConv2D { activation, .. }
        | OpKind::FullyConnected { activation, .. }
        | OpKind::MaxPool2D { activation, .. }
        | OpKind::AvgPool2D { activation, .. }
        | OpKind::Concatenation { activation, .. }
        | OpKind::Add { activation } => *activation = act,
        _ => {}
    }
}

/// A float conv/depthwise/FC whose output feeds only the op at `consumer`, has no fused
/// activation and is not a graph output: the precondition of folding that consumer into it.
fn foldable_producer(
    graph: &Graph,
    producers: &[Option<usize>],
    uses: &[usize],
    x: TensorId,
) -> Option<usize> {
    let p = producers[x.0]?;
    let op = &graph.ops[p];
    (is_weighted(&op.kind)
        && op.kind.activation() == Activation::None
        && uses[x.0] == 1
        && !is_graph_output(graph, x)
        && graph.tensor(x).dtype == DType::F32)
        .then_some(p)
}

/// Adds a bias tensor to a weighted op (a fresh constant, never shared with other ops).
fn set_bias(graph: &mut Graph, op_index: usize, values: &[f32]) -> Result<(), GraphError> {
    let name = format!(
        "{}/folded_bias",
        graph.tensor(graph.ops[op_index].outputs[0]).name
    );
    let id = graph.add_constant_f32(name, &[values.len()], values)?;
    let op = &mut graph.ops[op_index];
    if op.inputs.len() > 2 {
        op.inputs[2] = id;
    } else {
        op.inputs.push(id);
    }
    Ok(())
}

/// Folds per-channel affine constants that follow a float conv, depthwise conv or fully
/// connected layer into its weights and bias:
///
/// * `ADD(y, c)` with `c` constant and equal per channel (a batch norm's shift, or a bias
///   kept apart) becomes the producer's bias. Exact when the producer has no bias (or an
///   all-zero one): the kernel then computes `Σ + c`, as ADD did.
/// * A 1×1 DEPTHWISE_CONV_2D (multiplier 1, stride 1) on a conv's output (a batch norm's scale
///   as some converters emit it) is multiplied into the conv's filter and bias. Exact only
///   when the scales are powers of two and the conv has no bias; otherwise only with
///   `exact: false`.
///
/// The consumer's activation moves to the producer. MUL-based batch norms are not readable
/// (the IR has no MUL) and integer graphs are left alone (requantisation is not foldable).
pub fn fold_batch_norm(
    graph: &Graph,
    options: PassOptions,
) -> Result<(Graph, PassReport), GraphError> {
    graph.validate()?;
    let mut g = graph.clone();
    let (mut changes, mut skipped) = (Vec::new(), Vec::new());
    for i in 0..g.ops.len() {
        let producers = producers(&g);
        let uses = use_counts(&g);
        let op = g.ops[i].clone();
        let label = op_label(i, &op);
        match &op.kind {
            OpKind::Add { activation } => {
                let (a, b) = (op.inputs[0], op.inputs[1]);
                let (x, c) = if g.tensor(b).is_constant() {
                    (a, b)
                } else if g.tensor(a).is_constant() {
                    (b, a)
                } else {
                    continue;
                };
                if g.tensor(x).dtype != DType::F32 {
                    skipped.push(format!(
                        "{label}: integer ADD not folded (its requantisation has no bias equivalent)"
                    ));
                    continue;
                }
                let Some(p) = foldable_producer(&g, &producers, &uses, x) else {
                    continue;
                };
                let Some(shift) = f32_values(g.tensor(c))
                    .and_then(|v| per_channel(&v, *g.tensor(x).shape.last().unwrap_or(&0)))
                else {
                    skipped.push(format!("{label}: constant is not per-channel"));
                    continue;
                };
                let bias = g.ops[p].inputs.get(2).map(|b| g.tensor(*b).data_f32());
                let bias = match bias {
                    None => None,
                    Some(Some(v)) => Some(v),
                    Some(None) => continue,
                };
                let zero_bias = bias
                    .as_ref()
                    .is_none_or(|v| v.iter().all(|b| b.to_bits() == 0));
                // -0.0 + -0.0 keeps the sign that (Σ + 0.0) + -0.0 loses.
                let exact = zero_bias
                    && (bias.is_none() || shift.iter().all(|s| s.to_bits() != 0x8000_0000));
                if !exact && options.exact {
                    skipped.push(format!(
                        "{label}: folding into {}'s non-zero bias would round differently (exact mode)",
                        op_label(p, &g.ops[p])
                    ));
                    continue;
                }
                let new_bias: Vec<f32> = match &bias {
                    None => shift.clone(),
                    Some(v) => v.iter().zip(&shift).map(|(b, s)| b + s).collect(),
                };
                set_bias(&mut g, p, &new_bias)?;
                set_activation(&mut g.ops[p].kind, *activation);
                g.ops[p].outputs[0] = op.outputs[0];
                retire(&mut g.ops[i]);
                changes.push(format!(
                    "folded {label} (per-channel constant '{}') into {}'s bias{}",
                    g.tensor(c).name,
                    op_label(p, &g.ops[p]),
                    if exact {
                        ""
                    } else {
                        " (float rounding may differ)"
                    }
                ));
            }
            OpKind::DepthwiseConv2D {
                stride,
                dilation: _,
                padding: _,
                depth_multiplier: 1,
                activation,
            } if *stride == Hw::ONE => {
                let x = op.inputs[0];
                let w = g.tensor(op.inputs[1]);
                if w.shape[1] != 1 || w.shape[2] != 1 {
                    continue;
                }
                let Some(p) = foldable_producer(&g, &producers, &uses, x) else {
                    continue;
                };
                if !matches!(g.ops[p].kind, OpKind::Conv2D { .. }) {
                    continue;
                }
                let (Some(scale), Some(fw)) =
                    (w.data_f32(), g.tensor(g.ops[p].inputs[1]).data_f32())
                else {
                    continue;
                };
                let shift = match op.inputs.get(2) {
                    Some(b) => match g.tensor(*b).data_f32() {
                        Some(v) => Some(v),
                        None => continue,
                    },
                    None => None,
                };
                let bias = match g.ops[p].inputs.get(2) {
                    Some(b) => match g.tensor(*b).data_f32() {
                        Some(v) => Some(v),
                        None => continue,
                    },
                    None => None,
                };
                let pow2 = scale.iter().all(|s| {
                    let b = s.to_bits();
                    s.is_normal() && *s > 0.0 && b & 0x007f_ffff == 0
                });
                let exact = pow2 && bias.is_none();
                if !exact && options.exact {
                    skipped.push(format!(
                        "{label}: per-channel scale into {} would round differently (exact mode)",
                        op_label(p, &g.ops[p])
                    ));
                    continue;
                }
                let channels = scale.len();
                let per_filter = fw.len() / channels.max(1);
                let new_filter: Vec<f32> = fw
                    .iter()
                    .enumerate()
                    .map(|(k, f)| f * scale[k / per_filter.max(1)])
                    .collect();
                let fshape = g.tensor(g.ops[p].inputs[1]).shape.clone();
                let fname = format!("{}/folded_filter", g.tensor(op.outputs[0]).name);
                let fid = g.add_constant_f32(fname, &fshape, &new_filter)?;
                g.ops[p].inputs[1] = fid;
                let new_bias: Option<Vec<f32>> = match (&bias, &shift) {
                    (None, None) => None,
                    (b, t) => Some(
                        (0..channels)
                            .map(|k| {
                                let scaled = b.as_ref().map_or(0.0, |b| b[k] * scale[k]);
                                match t {
                                    Some(t) if b.is_some() => scaled + t[k],
                                    Some(t) => t[k],
                                    None => scaled,
                                }
                            })
                            .collect(),
                    ),
                };
                match new_bias {
                    Some(v) => set_bias(&mut g, p, &v)?,
                    None => g.ops[p].inputs.truncate(2),
                }
                set_activation(&mut g.ops[p].kind, *activation);
                g.ops[p].outputs[0] = op.outputs[0];
                retire(&mut g.ops[i]);
                changes.push(format!(
                    "folded {label} (1×1 per-channel scale) into {}{}",
                    op_label(p, &g.ops[p]),
                    if exact {
                        ""
                    } else {
                        " (float rounding may differ)"
                    }
                ));
            }
            _ => {}
        }
    }
    // A folded op's output moved to its producer, which runs earlier: order is preserved.
    drop_retired(&mut g);
    sweep(&mut g);
    let report = PassReport::new(Pass::FoldBatchNorm, graph, &g, changes, skipped)?;
    Ok((g, report))
}

// ---------------------------------------------------------------------------------------------
// Activation fusion.

/// The single clamp equivalent to `outer(inner(x))` for fused activations.
fn compose(inner: Activation, outer: Activation) -> Activation {
    match (inner, outer) {
        (Activation::Relu6, _) | (_, Activation::Relu6) => Activation::Relu6,
        (Activation::Relu, _) | (_, Activation::Relu) => Activation::Relu,
        _ => Activation::None,
    }
}

/// Moves an activation fused into a MAX_POOL_2D onto the conv/depthwise/FC/ADD that feeds it
/// (max commutes with the monotone clamp, so this is exact for float and integer graphs: the
/// pool keeps its input's quantisation). The clamp then runs inside the producer's
/// requantisation loop instead of as a second pass over the data.
///
/// A standalone RELU/RELU6 op cannot be fused: the `.tflite` reader does not map those ops and
/// the IR has no such op, so models containing them are rejected when read.
pub fn fuse_activations(graph: &Graph) -> Result<(Graph, PassReport), GraphError> {
    graph.validate()?;
    let mut g = graph.clone();
    let (mut changes, mut skipped) = (Vec::new(), Vec::new());
    let producers = producers(&g);
    let uses = use_counts(&g);
    for i in 0..g.ops.len() {
        let OpKind::MaxPool2D { activation, .. } = g.ops[i].kind else {
            continue;
        };
        if activation == Activation::None {
            continue;
        }
        let x = g.ops[i].inputs[0];
        let label = op_label(i, &g.ops[i]);
        let Some(p) = producers[x.0] else { continue };
        let producer_ok = matches!(
            g.ops[p].kind,
            OpKind::Conv2D { .. }
                | OpKind::DepthwiseConv2D { .. }
                | OpKind::FullyConnected { .. }
                | OpKind::Add { .. }
        );
        if !producer_ok {
            continue;
        }
        let (xt, yt) = (g.tensor(x), g.tensor(g.ops[i].outputs[0]));
        if uses[x.0] != 1 || is_graph_output(&g, x) || xt.quant != yt.quant || xt.dtype != yt.dtype
        {
            skipped.push(format!(
                "{label}: its input has other readers or different quantisation"
            ));
            continue;
        }
        let fused = compose(g.ops[p].kind.activation(), activation);
        set_activation(&mut g.ops[p].kind, fused);
        set_activation(&mut g.ops[i].kind, Activation::None);
        changes.push(format!(
            "moved {label}'s {activation:?} into {} ({fused:?})",
            op_label(p, &g.ops[p])
        ));
    }
    let report = PassReport::new(Pass::FuseActivations, graph, &g, changes, skipped)?;
    Ok((g, report))
}

// ---------------------------------------------------------------------------------------------
// Reshapes.

/// `[n, 1, l, c] ↔ [n, l, 1, c]`: the reshape only moves a length-1 axis between H and W.
fn swaps_hw(from: &[usize], to: &[usize]) -> bool {
    from.len() == 4
        && to.len() == 4
        && from[0] == to[0]
        && from[3] == to[3]
        && from[1] == to[2]
        && from[2] == to[1]
        && (from[1] == 1 || from[2] == 1)
        && from[1] != from[2]
}

/// Removes reshapes that do nothing and reshapes that other ops make unnecessary:
///
/// * a reshape to its input's shape;
/// * a reshape of a reshape (the second reads the first's input);
/// * a reshape feeding a FULLY_CONNECTED without `keep_num_dims` (FC flattens anyway);
/// * `RESHAPE [n,1,l,c]→[n,l,1,c]` then a pool over H: the pool runs on the W axis of the
///   unreshaped tensor instead (same elements in the same order, so exact), which leaves
///   reshape pairs that the rules above remove. This is the Conv1D lowering of the seed models.
///
/// Reshapes never change bytes and the planner aliases them, so the saving is op dispatch,
/// not arena.
pub fn simplify_reshapes(graph: &Graph) -> Result<(Graph, PassReport), GraphError> {
    graph.validate()?;
    let mut g = graph.clone();
    let (mut changes, mut skipped) = (Vec::new(), Vec::new());
    let same_type = |g: &Graph, a: TensorId, b: TensorId| {
        let (a, b) = (g.tensor(a), g.tensor(b));
        a.dtype == b.dtype && a.quant == b.quant
    };

    // 1. Pools behind an H/W-swapping reshape run on the unswapped layout.
    let mut i = 0;
    while i < g.ops.len() {
        let producers = producers(&g);
        let op = g.ops[i].clone();
        let (filter, stride, padding, activation, is_max) = match op.kind {
            OpKind::MaxPool2D {
                filter,
                stride,
                padding,
                activation,
            } => (filter, stride, padding, activation, true),
            OpKind::AvgPool2D {
                filter,
                stride,
                padding,
                activation,
            } => (filter, stride, padding, activation, false),
            _ => {
                i += 1;
                continue;
            }
        };
        let b = op.inputs[0];
        let Some(r) = producers[b.0] else {
            i += 1;
            continue;
        };
        let a = g.ops[r].inputs[0];
        let is_swap = matches!(g.ops[r].kind, OpKind::Reshape { .. })
            && !g.tensor(a).is_constant()
            && same_type(&g, a, b)
            && swaps_hw(&g.tensor(a).shape, &g.tensor(b).shape);
        if !is_swap {
            i += 1;
            continue;
        }
        let swap = |h: Hw| Hw::new(h.w, h.h);
        let kind = if is_max {
            OpKind::MaxPool2D {
                filter: swap(filter),
                stride: swap(stride),
                padding,
                activation,
            }
        } else {
            OpKind::AvgPool2D {
                filter: swap(filter),
                stride: swap(stride),
                padding,
                activation,
            }
        };
        let c = op.outputs[0];
        let cs = g.tensor(c).shape.clone();
        let swapped_shape = vec![cs[0], cs[2], cs[1], cs[3]];
        let ct = g.tensor(c).clone();
        let c2 = g.add_activation(
            format!("{}{SWAPPED_SUFFIX}", ct.name),
            &swapped_shape,
            ct.dtype,
            ct.quant.clone(),
        );
        g.ops[i] = Op {
            kind,
            inputs: vec![a],
            outputs: vec![c2],
        };
        g.ops.insert(
            i + 1,
            Op {
                kind: OpKind::Reshape { new_shape: cs },
                inputs: vec![c2],
                outputs: vec![c],
            },
        );
        changes.push(format!(
            "{} reads '{}' {:?} directly (filter/stride swapped to W)",
            op.kind.name(),
            g.tensor(a).name,
            g.tensor(a).shape
        ));
        i += 2;
    }

    // 2. Reshape chains, identity reshapes and reshapes before FC, to a fixed point.
    loop {
        let producers = producers(&g);
        let mut changed = false;
        for i in 0..g.ops.len() {
            let op = g.ops[i].clone();
            if let OpKind::Reshape { new_shape } = &op.kind {
                let x = op.inputs[0];
                let y = op.outputs[0];
                // Reshape of a reshape: read the first one's input.
                if let Some(p) = producers[x.0]
                    && matches!(g.ops[p].kind, OpKind::Reshape { .. })
                    && same_type(&g, g.ops[p].inputs[0], x)
                {
                    let src = g.ops[p].inputs[0];
                    g.ops[i].inputs[0] = src;
                    changes.push(format!(
                        "collapsed RESHAPE '{}' → '{}' → {new_shape:?} into one",
                        g.tensor(src).name,
                        g.tensor(x).name
                    ));
                    changed = true;
                    break;
                }
                // Identity reshape: readers of its output read its input.
                if g.tensor(x).shape == *new_shape && same_type(&g, x, y) {
                    if is_graph_output(&g, y) {
                        if let Some(p) = producers[x.0]
                            && !is_graph_output(&g, x)
                            && g.ops.iter().filter(|o| o.inputs.contains(&x)).count() == 1
                        {
                            // The producer writes the graph output directly.
                            g.ops[p].outputs[0] = y;
                            retire(&mut g.ops[i]);
                        } else {
                            let note = format!(
                                "identity RESHAPE to graph output '{}' kept (its input is an input, constant or shared)",
                                g.tensor(y).name
                            );
                            if !skipped.contains(&note) {
                                skipped.push(note);
                            }
                            continue;
                        }
                    } else {
                        replace_uses(&mut g, y, x);
                    }
                    changes.push(format!(
                        "removed identity RESHAPE of '{}' {new_shape:?}",
                        g.tensor(x).name
                    ));
                    changed = true;
                    break;
                }
            }
            // FC flattens its input: a reshape in front of it is redundant.
            if let OpKind::FullyConnected {
                keep_num_dims: false,
                ..
            } = op.kind
                && let Some(p) = producers[op.inputs[0].0]
                && matches!(g.ops[p].kind, OpKind::Reshape { .. })
                && same_type(&g, g.ops[p].inputs[0], op.inputs[0])
                && !g.tensor(g.ops[p].inputs[0]).is_constant()
            {
                let src = g.ops[p].inputs[0];
                g.ops[i].inputs[0] = src;
                changes.push(format!(
                    "FULLY_CONNECTED reads '{}' {:?} without the RESHAPE in front",
                    g.tensor(src).name,
                    g.tensor(src).shape
                ));
                changed = true;
                break;
            }
        }
        drop_retired(&mut g);
        if !changed {
            break;
        }
        sweep(&mut g);
    }
    sweep(&mut g);
    restore_swapped_names(&mut g);
    let report = PassReport::new(Pass::SimplifyReshapes, graph, &g, changes, skipped)?;
    Ok((g, report))
}

const SWAPPED_SUFFIX: &str = "/hw_swapped";

/// A swapped pool's output takes back its original tensor name once the reshape that carried
/// that name is gone, so optimised models keep the converter's names.
fn restore_swapped_names(graph: &mut Graph) {
    for i in 0..graph.tensors.len() {
        let Some(base) = graph.tensors[i].name.strip_suffix(SWAPPED_SUFFIX) else {
            continue;
        };
        let base = base.to_owned();
        if !graph.tensors.iter().any(|t| t.name == base) {
            graph.tensors[i].name = base;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_activation_is_the_tighter_clamp() {
        assert_eq!(
            compose(Activation::None, Activation::Relu),
            Activation::Relu
        );
        assert_eq!(
            compose(Activation::Relu, Activation::Relu6),
            Activation::Relu6
        );
        assert_eq!(
            compose(Activation::None, Activation::None),
            Activation::None
        );
    }

    #[test]
    fn hw_swap_needs_a_unit_axis() {
        assert!(swaps_hw(&[1, 1, 128, 4], &[1, 128, 1, 4]));
        assert!(swaps_hw(&[1, 64, 1, 4], &[1, 1, 64, 4]));
        assert!(!swaps_hw(&[1, 2, 3, 4], &[1, 3, 2, 4]));
        assert!(!swaps_hw(&[1, 1, 1, 4], &[1, 1, 1, 4]));
    }
}
