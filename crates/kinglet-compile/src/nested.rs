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
//! the full width's, value for value, or compilation fails. In the full-stride layout
//! ([`Layout::FullStride`]) the widths go further and share the full width's schedule too.

use kinglet_graph::{Graph, OpKind};

use crate::emit_rust::{Origin, aligned_array, emit_module, requant_arrays};
use crate::firmware::Compiled;
use crate::program::{BlobRef, ConvWeights, KernelSet, PerWidth, Program, StepKind, WidthStep};
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
    /// One schedule serves every width (their shapes and biases in tables); else each width
    /// has a schedule of its own.
    pub one_schedule: bool,
    /// The full-stride layout ([`Layout::FullStride`]): every width runs the full width's
    /// schedule and weights as they are.
    pub full_stride: bool,
}

/// How the widths share the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each width a schedule of its own over the blob, its kernels specialised to its shapes:
    /// the fewest instructions, the most flash.
    PerWidth,
    /// One schedule for all widths, shapes from tables, run-time-shape kernels: less flash,
    /// 13–24 % more instructions (BENCHMARKS.md).
    OneSchedule,
    /// The full width's own schedule serves every width: a narrower width computes the
    /// leading output channels of every layer at the full width's strides, the channels it
    /// leaves out set to the zero point (which the next layer, its biases folded over the full
    /// rows, takes as zero). The full width runs as it does alone and the widths add only
    /// their biases and a few table lookups; a narrower width costs about its share of the
    /// full width's output channels times the full input channels (width 0.25 ≈ a quarter of
    /// the full width, not a sixteenth of the inner layers).
    FullStride,
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
/// weighted layers read one blob. `names` name the widths in the generated comments;
/// `layout` says how they share the image ([`Layout`]): a schedule each, one schedule with
/// their shapes in tables (where the widths allow it, see [`BlobMemory::one_schedule`]), or
/// the full width's own schedule at its strides.
pub fn compile_widths(
    graphs: &[&Graph],
    names: &[&str],
    layout: Layout,
) -> Result<NestedImage, CompileError> {
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
        memory.blob_requant_bytes += full_requant.bytes();
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
                    memory.narrower_requant_bytes += requant.bytes();
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
                    runtime_shapes: false,
                },
            );
        }
    }
    if layout == Layout::FullStride {
        if memory.narrower_requant_bytes > 0 {
            return Err(bad(
                "the full-stride layout needs every width's requantisation to be the full width's (a shared-scale network)".into(),
            ));
        }
        return full_stride(graphs, names, dsp, reference, memory);
    }
    // One schedule for every width where the schedules differ only in numbers; else each
    // width keeps a schedule of its own.
    let one = if layout == Layout::OneSchedule {
        shared_schedule(&dsp)
    } else {
        None
    };
    memory.one_schedule = one.is_some();
    let widths = dsp
        .into_iter()
        .zip(reference)
        .zip(names)
        .enumerate()
        .map(|(w, ((dsp, reference), &name))| {
            let rust_module = if one.is_some() {
                width_entry(&dsp, w, name)
            } else {
                emit_module(
                    &dsp,
                    &reference,
                    &Origin {
                        model_name: name,
                        macs: dsp.macs(),
                    },
                )
            };
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
            "// The weight blob every width reads (kinglet-compile `nested`).\n{blob_source}{}",
            one.unwrap_or_default()
        ),
        memory,
    })
}

/// The widths as one full-stride schedule ([`Layout::FullStride`]): the full width's program
/// with, per weighted step, every width's biases (folded over the full width's rows: a
/// narrower width's left-out input channels hold the zero point, whose products the fold
/// cancels) and the leading output channels it computes.
fn full_stride(
    graphs: &[&Graph],
    names: &[&str],
    dsp: Vec<Program>,
    reference: Vec<Program>,
    mut memory: BlobMemory,
) -> Result<NestedImage, CompileError> {
    let bad = |m: String| CompileError::Unsupported(format!("nested widths, full stride: {m}"));
    let full_index = dsp.len() - 1;
    let full_graph = graphs[full_index];
    let mut program = dsp[full_index].clone();
    program.blobs.clear();
    let mut per_width = PerWidth::default();
    let sum = |w: &[i8]| {
        w.iter()
            .map(|&v| i32::from(v))
            .fold(0i32, i32::wrapping_add)
    };
    for index in 0..program.steps.len() {
        let (full_out, depthwise, conv) = match &program.steps[index].kind {
            StepKind::Conv1d { out_ch, .. } => (*out_ch, false, true),
            StepKind::FullyConnectedQ15 { out_len, .. } => (*out_len, false, false),
            StepKind::Depthwise1d { channels, .. } => (*channels, true, false),
            _ => continue,
        };
        let full_op = weighted_op(full_graph, &program, index)
            .ok_or_else(|| bad(format!("step {index} has no weighted op")))?;
        let (full_raw, _) = filter(full_graph, full_op)
            .ok_or_else(|| bad(format!("op {full_op}: no int8 filter")))?;
        let full_row = full_raw.len() / full_out.max(1);
        let mut entries = Vec::new();
        for (k, (graph, p)) in graphs.iter().zip(&dsp).enumerate() {
            let (bias, active) = match &p.steps[index].kind {
                StepKind::Conv1d { bias, out_ch, .. } => (bias, *out_ch),
                StepKind::FullyConnectedQ15 { bias, out_len, .. } => (bias, *out_len),
                StepKind::Depthwise1d { bias, channels, .. } => (bias, *channels),
                _ => return Err(bad(format!("width {k}, step {index}: another kernel"))),
            };
            if conv && !active.is_multiple_of(kinglet_m4::channel_block(full_out)) {
                return Err(bad(format!(
                    "width {k}, step {index}: {active} output channels are not whole blocks of {} (the full width's {full_out} channels' block)",
                    kinglet_m4::channel_block(full_out)
                )));
            }
            let bias = if depthwise || k == full_index {
                // A depthwise channel's taps are the same at every width.
                bias.clone()
            } else {
                let op = weighted_op(graph, p, index)
                    .ok_or_else(|| bad(format!("width {k}, step {index}: no weighted op")))?;
                let (raw, _) = filter(graph, op)
                    .ok_or_else(|| bad(format!("width {k}, op {op}: no int8 filter")))?;
                let zero_point = graph
                    .tensor(graph.ops[op].inputs[0])
                    .quant
                    .as_ref()
                    .and_then(|q| q.zero_point.first().copied())
                    .unwrap_or(0);
                let row = raw.len() / active.max(1);
                (0..active)
                    .map(|o| {
                        let own = sum(&raw[o * row..(o + 1) * row]);
                        let full = sum(&full_raw[o * full_row..(o + 1) * full_row]);
                        bias[o]
                            .wrapping_add(zero_point.wrapping_mul(own))
                            .wrapping_sub(zero_point.wrapping_mul(full))
                    })
                    .collect()
            };
            entries.push(WidthStep { bias, active });
        }
        per_width.steps.insert(index, entries);
    }
    program.per_width = Some(per_width);
    let (consts, body) = crate::emit_rust::schedule_parts(&program);
    // The schedule's sizes are the wrapper's; its tables stay.
    let tables: String = consts
        .lines()
        .filter(|l| !l.trim_start().starts_with("pub const "))
        .map(|l| format!("{l}\n"))
        .collect();
    memory.full_stride = true;
    let module = schedule_module(
        "The full width's schedule serving every width at its strides: a width's biases and \
         active output channels are looked up here (kinglet-compile `nested`, full stride).",
        &tables,
        &body,
        program.layers.len(),
    );
    let widths = dsp
        .into_iter()
        .zip(reference)
        .zip(names)
        .enumerate()
        .map(|(w, ((dsp, reference), &name))| Compiled {
            rust_module: width_entry(&program, w, name),
            dsp,
            reference,
        })
        .collect();
    Ok(NestedImage {
        widths,
        blob_source: format!("// Every width's schedule (kinglet-compile `nested`).\n{module}"),
        memory,
    })
}

/// Module `widths_schedule`: `tables` and `run(w, …)` over `body` (a schedule body at four
/// spaces, of `layers` layers), which reads the width `w`.
fn schedule_module(doc: &str, tables: &str, body: &str, layers: usize) -> String {
    format!(
        "\n/// {doc}\n\
         #[allow(unused_imports, dead_code, clippy::all)]\n\
         pub mod widths_schedule {{\n    \
         use kinglet_m4::arena::{{self, Place}};\n    \
         use kinglet_m4::ShapeError;\n    \
         use kinglet_micro::{{PoolParams, Shape4, TensorMut, TensorRef, max_pool2d}};\n    \
         pub type InputElem = i8;\n    pub type OutputElem = i8;\n    \
         const LAYER_COUNT: usize = {layers};\n\n    \
         fn pick<T: Copy>(values: &[T], w: usize) -> Result<T, ShapeError> {{\n        \
             values.get(w).copied().ok_or(ShapeError)\n    }}\n\n\
         {tables}\n    \
         #[inline(never)]\n    \
         pub fn run(w: usize, arena: &mut [u8], inputs: &[&[InputElem]; 1], output: &mut [OutputElem], probe: &mut dyn FnMut(usize)) -> Result<(), ShapeError> {{\n\
         {}        Ok(())\n    }}\n}}\n",
        body.replace("\n    ", "\n        ")
            .replacen("    ", "        ", 1),
    )
}

/// The module a width is to the image when one schedule serves them all: its sizes and
/// `infer_in`, which runs the shared schedule as width `w`.
fn width_entry(program: &Program, w: usize, name: &str) -> String {
    format!(
        "// `{name}`: width {w} of the schedule in `widths_schedule` (kinglet-compile `nested`).\n\
         pub type InputElem = i8;\npub type OutputElem = i8;\n\
         pub const INPUT_LEN: usize = {};\npub const OUTPUT_LEN: usize = {};\n\
         pub const ARENA_BYTES: usize = {};\n\
         /// One inference in the caller's arena (at least `ARENA_BYTES`, 4-byte aligned).\n\
         pub fn infer_in(arena: &mut [u8], input: &[InputElem; INPUT_LEN], output: &mut [OutputElem; OUTPUT_LEN]) -> Result<(), kinglet_m4::ShapeError> {{\n    \
             let arena = arena.get_mut(..ARENA_BYTES).ok_or(kinglet_m4::ShapeError)?;\n    \
             super::widths_schedule::run({w}, arena, &[&input[..]], &mut output[..], &mut |_| {{}})\n}}\n",
        program.input_len,
        program.output_len,
        program.arena_bytes.max(4),
    )
}

/// The top-level statements of a schedule body: `probe(k);` lines and `{ … }` step blocks.
fn statements(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut current, mut depth) = (String::new(), 0i32);
    for line in body.lines() {
        current.push_str(line);
        current.push('\n');
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth == 0 && !line.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// Splits `text` into tokens: identifiers (digits inside stay), integers (with a leading
/// minus), and single other characters.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

fn is_number(token: &str) -> bool {
    token
        .trim_start_matches('-')
        .chars()
        .all(|c| c.is_ascii_digit())
        && token.chars().any(|c| c.is_ascii_digit())
}

/// One statement for every width: equal text stays as it is, and a number that differs
/// between widths becomes a lookup of width `w` in a table of the widths' values. Statements
/// whose text differs otherwise (a kernel instance of another requantisation form) are
/// chosen by a `match` on the width.
fn merge_statement(texts: &[String]) -> String {
    let toks: Vec<Vec<String>> = texts.iter().map(|t| tokens(t)).collect();
    let skeleton = |t: &[String]| -> Vec<String> {
        t.iter()
            .map(|x| if is_number(x) { "#".into() } else { x.clone() })
            .collect()
    };
    let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (w, t) in toks.iter().enumerate() {
        let key = skeleton(t);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ws)) => ws.push(w),
            None => groups.push((key, vec![w])),
        }
    }
    let merged = |ws: &[usize]| -> String {
        let first = &toks[ws[0]];
        (0..first.len())
            .map(|k| {
                let values: Vec<&String> = ws.iter().map(|&w| &toks[w][k]).collect();
                if values.iter().all(|v| *v == values[0]) {
                    values[0].clone()
                } else {
                    let all: Vec<String> = (0..toks.len())
                        .map(|w| {
                            if ws.contains(&w) {
                                toks[w][k].clone()
                            } else {
                                values[0].clone()
                            }
                        })
                        .collect();
                    format!("pick(&[{}], w)?", all.join(", "))
                }
            })
            .collect()
    };
    if groups.len() == 1 {
        return merged(&groups[0].1);
    }
    let mut out = String::from("    match w {\n");
    for (_, ws) in &groups {
        let pattern: Vec<String> = ws.iter().map(usize::to_string).collect();
        out += &format!("    {} => {{\n{}    }}\n", pattern.join(" | "), merged(ws));
    }
    out + "    _ => return Err(ShapeError),\n    }\n"
}

/// Every width's schedule as one function of the width (module `widths_schedule`), when the
/// widths are single-input int8 models whose weighted layers all read the blob and whose
/// constants are their biases only; its steps call the kernels' run-time-shape variants.
/// `None` otherwise.
fn shared_schedule(programs: &[Program]) -> Option<String> {
    let steps = programs.first()?.steps.len();
    let weighted = |p: &Program, i: usize| {
        matches!(
            p.steps[i].kind,
            StepKind::Conv1d { .. }
                | StepKind::Depthwise1d { .. }
                | StepKind::FullyConnectedQ15 { .. }
        )
    };
    let fits = programs.iter().all(|p| {
        p.input_lens.len() == 1
            && p.io == crate::program::Elem::I8
            && (0..steps)
                .all(|i| !weighted(p, i) || p.blobs.get(&i).is_some_and(|b| b.shared_requant))
    });
    if !fits {
        return None;
    }
    let mut with_runtime = programs.to_vec();
    for p in &mut with_runtime {
        for blob in p.blobs.values_mut() {
            blob.runtime_shapes = true;
        }
    }
    let mut tables = String::new();
    let mut bodies = Vec::new();
    for (w, p) in with_runtime.iter().enumerate() {
        let (consts, body) = crate::emit_rust::schedule_parts(p);
        // The header (sizes, layer names) and the biases; anything else is not shared here.
        for line in consts
            .lines()
            .filter(|l| l.trim_start().starts_with("static "))
        {
            let name = line
                .trim_start()
                .trim_start_matches("static ")
                .split(':')
                .next()?;
            if !(name.starts_with('S') && name.ends_with("_B")) {
                return None;
            }
        }
        tables += &consts
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("static "))
            .map(|l| l.replacen("static S", &format!("static W{w}_S"), 1) + "\n")
            .collect::<String>();
        bodies.push(body.replace("super::super::", "super::"));
    }
    let per_width: Vec<Vec<String>> = bodies.iter().map(|b| statements(b)).collect();
    let count = per_width[0].len();
    if per_width.iter().any(|s| s.len() != count) {
        return None;
    }
    // A step's biases: the width's own, from a table of the widths'.
    let nw = programs.len();
    for i in 0..steps {
        if programs[0].blobs.contains_key(&i) {
            let refs: Vec<String> = (0..nw).map(|w| format!("&W{w}_S{i}_B")).collect();
            tables += &format!(
                "    static S{i}_B: [&[i32]; {nw}] = [{}];\n",
                refs.join(", ")
            );
        }
    }
    let mut body = String::new();
    for k in 0..count {
        let texts: Vec<String> = per_width
            .iter()
            .map(|s| {
                // `&S3_B` → the width's entry of the table.
                let mut t = s[k].clone();
                for i in 0..steps {
                    t = t.replace(
                        &format!("bias: &S{i}_B,"),
                        &format!("bias: pick(&S{i}_B, w)?,"),
                    );
                }
                t
            })
            .collect();
        body += &merge_statement(&texts);
    }
    Some(schedule_module(
        "Every width's schedule in one function of the width: the widths differ only in the \
         numbers (channels, arena places) and biases looked up here (kinglet-compile `nested`).",
        &tables,
        &body,
        programs[0].layers.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_differ_between_widths_become_table_lookups() {
        assert_eq!(
            tokens("Place::new(600, -128) S1_B"),
            [
                "Place", ":", ":", "new", "(", "600", ",", " ", "-128", ")", " ", "S1_B"
            ]
        );
        let texts = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert_eq!(
            merge_statement(&texts("f(1, 24, -3);", "f(1, 48, -3);")),
            "f(1, pick(&[24, 48], w)?, -3);"
        );
        // Text that differs otherwise picks each width's own statement.
        let merged = merge_statement(&texts("g::<A>(4);", "g::<B>(8);"));
        assert!(merged.contains("match w"), "{merged}");
        assert!(
            merged.contains("0 => {") && merged.contains("g::<A>(4);"),
            "{merged}"
        );
        assert!(
            merged.contains("1 => {") && merged.contains("g::<B>(8);"),
            "{merged}"
        );
        // A block's statements: probe lines and whole `{ … }` blocks.
        let body =
            "    probe(0);\n    {\n        let a = 1;\n        f(a);\n    }\n    probe(1);\n";
        assert_eq!(statements(body).len(), 3);
    }

    #[test]
    fn the_common_block_divides_every_width() {
        assert_eq!(common_block(&[6, 12, 18, 24]), 2);
        assert_eq!(common_block(&[12, 24, 36, 48]), 4);
        assert_eq!(common_block(&[3, 6]), 1);
    }
}
