//! The widths of a nested-width network compiled into one image with one weight blob.
//!
//! Each width compiles as its own model (its own schedule, arena plan, biases), but its
//! convolutions, depthwise convolutions and fully-connected layers read the full width's
//! weights, emitted once at the image's top level: a narrower width uses the leading output
//! channels and, of every filter, the leading inputs of each tap (kinglet-m4 `nested`). Where
//! a width's requantisation is the leading part of the full width's (a network trained with
//! shared normalisation scales and quantised by `kinglet_compress::nested`), it reads that
//! too; its biases are always its own.
//!
//! The sharing is checked, not assumed: a width's int8 weights must be the leading block of
//! the full width's, value for value, or compilation fails.

use kinglet_graph::{Graph, OpKind};

use crate::emit_rust::{Origin, aligned_array, emit_module, requant_arrays};
use crate::firmware::Compiled;
use crate::program::{BlobRef, ConvWeights, KernelSet, Program, StepKind};
use crate::{CompileError, lower::lower_with};

/// The widths compiled over one blob.
pub struct NestedImage {
    /// One compiled module per width, in the order given (narrowest first).
    pub widths: Vec<Compiled>,
    /// The blob's constants, to be placed at the level of the modules (`super::super::` of
    /// each width's schedule).
    pub blob_source: String,
    pub memory: BlobMemory,
}

/// Flash the blob and the widths' own constants take, in bytes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BlobMemory {
    /// Weights in the blob as stored (int8, or widened to int16 where the lowering widens a
    /// small layer's weights for speed).
    pub blob_weight_bytes: usize,
    /// int8 weights of the full width (what "the weights" are when overheads are compared).
    pub full_int8_weight_bytes: usize,
    /// The blob's requantisation tables (the full width's).
    pub blob_requant_bytes: usize,
    /// Per-channel int32 biases (with the input zero point folded in) of the narrower widths.
    pub narrower_bias_bytes: usize,
    /// Requantisation tables the narrower widths keep because theirs is not the blob's.
    pub narrower_requant_bytes: usize,
}

/// A constant of the blob: as a schedule declares its own, but public at the image's level.
fn blob_array<T: std::fmt::Display>(out: &mut String, name: &str, ty: &str, values: &[T]) {
    let mut text = String::new();
    aligned_array(&mut text, name, ty, values);
    out.push_str(&text.replacen("    static ", "pub static ", 1));
}

/// The weighted op of `program`'s step `index` (graph op index), if it has one.
fn weighted_op(graph: &Graph, program: &Program, index: usize) -> Option<usize> {
    let step = program.steps.get(index)?;
    let layer = program.layers.get(step.layer)?;
    layer.ops.iter().copied().find(|&o| {
        matches!(
            graph.ops.get(o).map(|op| &op.kind),
            Some(
                OpKind::Conv2D { .. }
                    | OpKind::DepthwiseConv2D { .. }
                    | OpKind::FullyConnected { .. }
            )
        )
    })
}

/// int8 weights and shape of op `op`'s filter.
fn filter(graph: &Graph, op: usize) -> Option<(Vec<i8>, Vec<usize>)> {
    let t = graph.tensor(*graph.ops.get(op)?.inputs.get(1)?);
    Some((t.weights_i8()?, t.shape.clone()))
}

/// The largest block (4, 2, 1) dividing every count.
fn common_block(counts: &[usize]) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|b| counts.iter().all(|c| c.is_multiple_of(*b)))
        .unwrap_or(1)
}

fn requant_bytes(r: &crate::program::RequantData) -> usize {
    4 * (r.multipliers.len() + r.shifts.len()) + 8 * r.scales.len()
}

/// Whether `narrow`'s requantisation is the leading part of `full`'s.
fn requant_prefix(
    narrow: &crate::program::RequantData,
    full: &crate::program::RequantData,
) -> bool {
    let prefix = |a: &[i32], b: &[i32]| b.get(..a.len()) == Some(a);
    prefix(&narrow.multipliers, &full.multipliers)
        && prefix(&narrow.shifts, &full.shifts)
        && full.scales.get(..narrow.scales.len()) == Some(&narrow.scales[..])
        && narrow.output_offset == full.output_offset
        && narrow.act_min == full.act_min
        && narrow.act_max == full.act_max
}

/// Compiles `graphs` (one int8 graph per width, the full width last) into modules whose
/// weighted layers read one blob. `names` name the widths in the generated comments.
pub fn compile_widths(graphs: &[&Graph], names: &[&str]) -> Result<NestedImage, CompileError> {
    let bad = |m: String| CompileError::Unsupported(format!("nested widths: {m}"));
    let (full_graph, _) = graphs
        .split_last()
        .ok_or_else(|| bad("no widths to compile".into()))?;
    let mut dsp: Vec<Program> = graphs
        .iter()
        .map(|g| lower_with(g, KernelSet::CortexM4, false))
        .collect::<Result<_, _>>()?;
    let reference: Vec<Program> = graphs
        .iter()
        .map(|g| lower_with(g, KernelSet::Reference, false))
        .collect::<Result<_, _>>()?;
    let full_index = dsp.len() - 1;
    let mut blob_source = String::new();
    let mut memory = BlobMemory::default();
    let steps = dsp[full_index].steps.len();
    if dsp.iter().any(|p| p.steps.len() != steps) {
        return Err(bad("the widths lower to different schedules".into()));
    }
    for index in 0..steps {
        let full_kind = dsp[full_index].steps[index].kind.clone();
        let (full_in, full_out, full_requant, full_weights) = match &full_kind {
            StepKind::Conv1d {
                in_ch,
                out_ch,
                requant,
                weights,
                ..
            } => (*in_ch, *out_ch, requant, weights),
            StepKind::FullyConnectedQ15 {
                in_len,
                out_len,
                requant,
                weights,
                ..
            } => (*in_len, *out_len, requant, weights),
            StepKind::Depthwise1d {
                channels,
                requant,
                weights,
                ..
            } => (*channels, *channels, requant, weights),
            _ => continue,
        };
        if !matches!(full_weights, ConvWeights::Wide(_) | ConvWeights::Narrow(_)) {
            return Err(bad(format!(
                "step {index}: sub-byte weights are not read from a shared blob"
            )));
        }
        let full_op = weighted_op(full_graph, &dsp[full_index], index)
            .ok_or_else(|| bad(format!("step {index} has no weighted op")))?;
        let (full_raw, full_shape) = filter(full_graph, full_op)
            .ok_or_else(|| bad(format!("op {full_op}: no int8 filter")))?;
        let mut outs = Vec::new();
        for (k, (graph, program)) in graphs.iter().zip(&dsp).enumerate() {
            let kind = &program.steps[index].kind;
            let out = match (kind, &full_kind) {
                (StepKind::Conv1d { out_ch, kernel, .. }, StepKind::Conv1d { kernel: fk, .. })
                    if kernel == fk =>
                {
                    *out_ch
                }
                (
                    StepKind::FullyConnectedQ15 { out_len, .. },
                    StepKind::FullyConnectedQ15 { .. },
                ) => *out_len,
                (StepKind::Depthwise1d { channels, .. }, StepKind::Depthwise1d { .. }) => *channels,
                _ => {
                    return Err(bad(format!(
                        "width {k}, step {index}: another kernel than the full width's"
                    )));
                }
            };
            let op = weighted_op(graph, program, index)
                .ok_or_else(|| bad(format!("width {k}, step {index}: no weighted op")))?;
            let (raw, shape) = filter(graph, op)
                .ok_or_else(|| bad(format!("width {k}, op {op}: no int8 filter")))?;
            let at = kinglet_graph::leading_block_indices(&shape, &full_shape).ok_or_else(|| {
                bad(format!(
                    "width {k}, op {op}: filter {shape:?} is not a leading block of {full_shape:?}"
                ))
            })?;
            if at
                .iter()
                .zip(&raw)
                .any(|(&j, &v)| full_raw.get(j) != Some(&v))
            {
                return Err(bad(format!(
                    "width {k}, op {op}: its int8 weights are not the full width's (quantise the widths with kinglet_compress::nested)"
                )));
            }
            outs.push(out);
        }
        let block = common_block(&outs);
        let name = format!("BLOB{index}");
        let row_in = full_raw.len() / full_out.max(1);
        // The blob in the full width's storage, packed in the common block.
        let wide = match (&full_kind, full_weights) {
            (StepKind::Depthwise1d { weights, .. }, _) => {
                let ConvWeights::Wide(w) = weights else {
                    return Err(bad(format!("step {index}: depthwise weights not widened")));
                };
                blob_array(&mut blob_source, &format!("{name}_W"), "i16", w);
                memory.blob_weight_bytes += 2 * w.len();
                true
            }
            (_, weights) => {
                // As the full width stores them: widened, or int8 (widened a block at a time).
                let wide = matches!(weights, ConvWeights::Wide(_));
                let row = (row_in + 1) & !1;
                let cannot = |_| bad(format!("step {index}: cannot pack the blob"));
                if wide {
                    let mut packed = vec![0i16; full_out * row];
                    kinglet_m4::nested::pack_weights_blocked(
                        &full_raw,
                        full_out,
                        row_in,
                        block,
                        &mut packed,
                    )
                    .map_err(cannot)?;
                    blob_array(&mut blob_source, &format!("{name}_W"), "i16", &packed);
                    memory.blob_weight_bytes += 2 * packed.len();
                } else {
                    let bytes = full_out / block * kinglet_m4::narrow_block_bytes(block, row);
                    let mut packed = vec![0i8; bytes];
                    kinglet_m4::nested::pack_weights_narrow_blocked(
                        &full_raw,
                        full_out,
                        row_in,
                        block,
                        &mut packed,
                    )
                    .map_err(cannot)?;
                    blob_array(&mut blob_source, &format!("{name}_W"), "i8", &packed);
                    memory.blob_weight_bytes += packed.len();
                }
                wide
            }
        };
        memory.full_int8_weight_bytes += full_raw.len();
        let mut requant_source = String::new();
        requant_arrays(&mut requant_source, &name, full_requant);
        blob_source += &requant_source.replace("    static ", "pub static ");
        memory.blob_requant_bytes += requant_bytes(full_requant);
        for (k, program) in dsp.iter_mut().enumerate() {
            let (requant, bias_len) = match &program.steps[index].kind {
                StepKind::Conv1d { requant, bias, .. }
                | StepKind::FullyConnectedQ15 { requant, bias, .. }
                | StepKind::Depthwise1d { requant, bias, .. } => (requant, bias.len()),
                _ => continue,
            };
            let shared_requant = requant_prefix(requant, full_requant);
            if k != full_index {
                memory.narrower_bias_bytes += 4 * bias_len;
                if !shared_requant {
                    memory.narrower_requant_bytes += requant_bytes(requant);
                }
            }
            program.blobs.insert(
                index,
                BlobRef {
                    name: name.clone(),
                    full_in,
                    full_out,
                    block,
                    wide,
                    shared_requant,
                },
            );
        }
    }
    let widths = dsp
        .into_iter()
        .zip(reference)
        .zip(names)
        .map(|((dsp, reference), &name)| {
            let rust_module = emit_module(
                &dsp,
                &reference,
                &Origin {
                    model_name: name,
                    macs: dsp.macs(),
                },
            );
            Compiled {
                dsp,
                reference,
                rust_module,
            }
        })
        .collect();
    Ok(NestedImage {
        widths,
        blob_source: format!(
            "// The weight blob every width reads (kinglet-compile `nested`).\n{blob_source}"
        ),
        memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_block_divides_every_width() {
        assert_eq!(common_block(&[6, 12, 18, 24]), 2);
        assert_eq!(common_block(&[12, 24, 36, 48]), 4);
        assert_eq!(common_block(&[3, 6]), 1);
    }
}
