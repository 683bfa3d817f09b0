//! Rust source for a compiled model: one module holding both schedules, chosen at compile
//! time — kinglet-m4's DSP kernels on Cortex-M4/M7 (`target_feature = "dsp"`), kinglet-micro's
//! reference kernels everywhere else (Cortex-M3, RISC-V, the host). Weights are `static`
//! arrays (flash), the arena is a field of `Model` sized by the plan, and `infer` is the
//! whole API.

use std::fmt::Write as _;

use crate::program::{BlobRef, ConvWeights, Elem, KernelSet, Loc, Program, RequantData, StepKind};

/// Where the generated module comes from, for its header comment.
pub struct Origin<'a> {
    pub model_name: &'a str,
    pub macs: usize,
}

pub(crate) fn array<T: std::fmt::Display>(out: &mut String, name: &str, ty: &str, values: &[T]) {
    let _ = write!(out, "    static {name}: [{ty}; {}] = [", values.len());
    for (i, v) in values.iter().enumerate() {
        if i % 24 == 0 {
            out.push_str("\n        ");
        } else {
            out.push(' ');
        }
        let _ = write!(out, "{v},");
    }
    out.push_str("\n    ];\n");
}

/// Packed weights, 4-byte aligned (the DSP kernels load them as words, with `LDM`).
pub(crate) fn aligned_array<T: std::fmt::Display>(
    out: &mut String,
    name: &str,
    ty: &str,
    values: &[T],
) {
    let _ = write!(
        out,
        "    static {name}: kinglet_m4::Aligned<[{ty}; {}]> = kinglet_m4::Aligned([",
        values.len()
    );
    for (i, v) in values.iter().enumerate() {
        if i % 24 == 0 {
            out.push_str("\n        ");
        } else {
            out.push(' ');
        }
        let _ = write!(out, "{v},");
    }
    out.push_str("\n    ]);\n");
}

pub(crate) fn requant_arrays(out: &mut String, prefix: &str, r: &RequantData) {
    if r.scales.is_empty() {
        array(out, &format!("{prefix}_MULT"), "i32", &r.multipliers);
        array(out, &format!("{prefix}_SHIFT"), "i32", &r.shifts);
    } else {
        // Bit patterns: the scales must survive the trip through source text exactly.
        let bits: Vec<String> = (r.scales.iter())
            .map(|s| format!("f64::from_bits({:#018x})", s.to_bits()))
            .collect();
        array(out, &format!("{prefix}_SCALE"), "f64", &bits);
    }
}

fn place(program: &Program, loc: Loc) -> Option<(String, Elem)> {
    match loc {
        Loc::Arena(b) => {
            let buf = &program.buffers[b];
            Some((format!("Place::new({}, {})", buf.offset, buf.len), buf.elem))
        }
        _ => None,
    }
}

/// `let (src, dst) = ...;` for a step.
fn operands(program: &Program, src: Loc, dst: Loc) -> String {
    let input = input_expr(program, src);
    match (place(program, src), place(program, dst)) {
        (Some((s, se)), Some((d, de))) => format!(
            "let (src, dst) = arena::split::<{}, {}>(arena, {s}, {d})?;",
            se.rust(),
            de.rust()
        ),
        (None, Some((d, de))) => {
            format!(
                "let src: &[InputElem] = {input};\n        let dst = arena::view_mut::<{}>(arena, {d})?;",
                de.rust()
            )
        }
        (Some((s, se)), None) => {
            format!(
                "let src = arena::view::<{}>(arena, {s})?;\n        let dst: &mut [OutputElem] = &mut output[..];",
                se.rust()
            )
        }
        (None, None) => {
            format!(
                "let src: &[InputElem] = {input};\n        let dst: &mut [OutputElem] = &mut output[..];"
            )
        }
    }
}

/// `let (src, dst, scratch) = ...;` for a step with an arena scratch buffer.
fn operands_with_scratch(program: &Program, src: Loc, dst: Loc, scratch: Loc) -> String {
    let input = input_expr(program, src);
    let Some((c, ce)) = place(program, scratch) else {
        return operands(program, src, dst);
    };
    let ce = ce.rust();
    match (place(program, src), place(program, dst)) {
        (Some((s, se)), Some((d, de))) => format!(
            "let (src, dst, scratch) = arena::split3::<{}, {}, {ce}>(arena, {s}, {d}, {c})?;",
            se.rust(),
            de.rust()
        ),
        (None, Some((d, de))) => format!(
            "let src: &[InputElem] = {input};\n        let (dst, scratch) = arena::split_mut::<{}, {ce}>(arena, {d}, {c})?;",
            de.rust()
        ),
        (Some((s, se)), None) => format!(
            "let (src, scratch) = arena::split::<{}, {ce}>(arena, {s}, {c})?;\n        let dst: &mut [OutputElem] = &mut output[..];",
            se.rust()
        ),
        (None, None) => format!(
            "let src: &[InputElem] = {input};\n        let dst: &mut [OutputElem] = &mut output[..];\n        let scratch = arena::view_mut::<{ce}>(arena, {c})?;"
        ),
    }
}

/// The caller's array a step reads when its source is a graph input.
fn input_expr(program: &Program, src: Loc) -> String {
    match src {
        Loc::InputPart { offset, .. } => {
            // Graph input k starts at the sum of the sizes before it.
            let mut start = 0;
            let slot = program
                .input_lens
                .iter()
                .position(|len| {
                    let here = start == offset;
                    start += len;
                    here
                })
                .unwrap_or(0);
            format!("inputs[{slot}]")
        }
        _ => "inputs[0]".to_owned(),
    }
}

fn requant_expr(prefix: &str, r: &RequantData) -> String {
    format!(
        "kinglet_m4::Requant {{ multipliers: &{prefix}_MULT, shifts: &{prefix}_SHIFT, output_offset: {}, act_min: {}, act_max: {} }}",
        r.output_offset, r.act_min, r.act_max
    )
}

fn fc_requant_expr(prefix: &str, r: &RequantData) -> String {
    format!(
        "kinglet_m4::FcRequant {{ scales: &{prefix}_SCALE, output_offset: {}, act_min: {}, act_max: {} }}",
        r.output_offset, r.act_min, r.act_max
    )
}

/// Declares `weights` as the aligned constant `name` and returns the kinglet-m4
/// `ConvWeights` expression over it.
fn weights_const(out: &mut String, name: &str, weights: &ConvWeights) -> String {
    let variant = match weights {
        ConvWeights::Wide(w) => {
            aligned_array(out, name, "i16", w);
            "Wide"
        }
        ConvWeights::Narrow(w) => {
            aligned_array(out, name, "i8", w);
            "Narrow"
        }
        ConvWeights::Int4(w) | ConvWeights::Int2(w) => {
            aligned_array(out, name, "u8", w);
            if weights.bits() == 4 { "Int4" } else { "Int2" }
        }
    };
    format!("kinglet_m4::ConvWeights::{variant}(&{name}.0)")
}

/// The kinglet-m4 `ConvWeights` over a nested network's blob (its leading `len` values when
/// given: per-channel rows).
fn blob_weights_expr(blob: &BlobRef, len: Option<usize>) -> String {
    let variant = if blob.wide { "Wide" } else { "Narrow" };
    let range = len.map_or(String::new(), |n| format!("[..{n}]"));
    format!(
        "kinglet_m4::ConvWeights::{variant}(&super::super::{}_W.0{range})",
        blob.name
    )
}

/// The kinglet-m4 `FullRows` of a blob: the full width's channels and the blob's block.
fn full_rows_expr(blob: &BlobRef) -> String {
    format!(
        "kinglet_m4::nested::FullRows {{ in_ch: {}, out_ch: {}, block: {} }}",
        blob.full_in, blob.full_out, blob.block
    )
}

/// A blob step's `Requant`: the leading part of the blob's tables when they are this width's,
/// else tables of its own.
fn blob_requant_expr(
    consts: &mut String,
    prefix: &str,
    blob: &BlobRef,
    r: &RequantData,
    channels: usize,
) -> String {
    if blob.shared_requant {
        format!(
            "kinglet_m4::Requant {{ multipliers: &super::super::{name}_MULT[..{channels}], shifts: &super::super::{name}_SHIFT[..{channels}], output_offset: {}, act_min: {}, act_max: {} }}",
            r.output_offset,
            r.act_min,
            r.act_max,
            name = blob.name
        )
    } else {
        requant_arrays(consts, prefix, r);
        requant_expr(prefix, r)
    }
}

/// What makes two kernel calls the same function instance (`None`: not a shared kernel).
fn instance_key(kind: &StepKind) -> Option<String> {
    match kind {
        StepKind::Conv1d {
            width,
            in_ch,
            out_ch,
            kernel,
            pool,
            requant,
            weights,
            bias,
            ..
        } => Some(format!(
            "conv {in_ch} {out_ch} {kernel} {width} {pool} {} {}",
            form_1d(requant, bias, kinglet_m4::conv1d_row_len(*in_ch, *kernel)),
            weights.bits()
        )),
        StepKind::Depthwise1d {
            width,
            channels,
            kernel,
            requant,
            bias,
            ..
        } => Some(format!(
            "depthwise {channels} {kernel} {width} {}",
            form_1d(requant, bias, *kernel)
        )),
        _ => None,
    }
}

/// The `FORM` parameter of kinglet-m4's 1D conv and depthwise kernels, as the constant's
/// name so the generated code reads as what it is.
fn form_1d(r: &RequantData, bias: &[i32], row: usize) -> &'static str {
    use kinglet_m4::requant_form::{BIT31, HIGH_WORD};
    match kinglet_m4::requant_form_1d(&r.shifts, r.output_offset, r.act_min, bias, row) {
        HIGH_WORD => "{ kinglet_m4::requant_form::HIGH_WORD }",
        BIT31 => "{ kinglet_m4::requant_form::BIT31 }",
        _ => "{ kinglet_m4::requant_form::GENERAL }",
    }
}

pub(crate) fn ref_quant_expr(prefix: &str, r: &RequantData, input_offset: i32) -> String {
    let requant = if r.scales.is_empty() {
        format!("Requant::new(&{prefix}_MULT, &{prefix}_SHIFT)")
    } else {
        format!("Requant::double(&{prefix}_SCALE)")
    };
    format!(
        "QuantParams {{ input_offset: {input_offset}, filter_offset: 0, output_offset: {}, requant: {requant}, act_min: {}, act_max: {} }}",
        r.output_offset, r.act_min, r.act_max
    )
}

pub(crate) fn shape4(d: &[usize; 4]) -> String {
    format!("Shape4::new({}, {}, {}, {})", d[0], d[1], d[2], d[3])
}

/// The body of `mod <name> { ... }` for one schedule.
fn schedule(program: &Program) -> String {
    let (consts, body) = schedule_parts(program);
    format!(
        "{consts}\n    /// The static schedule: one kernel call per step, `probe(layer)` before each layer. One\n    /// copy serves every probe (it is dynamic): the kernels are inlined here, so a copy per\n    /// probe type would double the code.\n    #[inline(never)]\n    pub(super) fn run_schedule(\n        arena: &mut [u8],\n        inputs: &[&[InputElem]; INPUT_COUNT],\n        output: &mut [OutputElem; OUTPUT_LEN],\n        probe: &mut dyn FnMut(usize),\n    ) -> Result<(), ShapeError> {{\n    {}        Ok(())\n    }}\n",
        body.replace("\n    ", "\n        ")
    )
}

/// A schedule's constants (`static` tables, one per line block) and its body: `probe(layer);`
/// lines and one `{ … }` block per step, at four spaces.
pub(crate) fn schedule_parts(program: &Program) -> (String, String) {
    let mut consts = String::new();
    let mut body = String::new();
    let _ = writeln!(
        consts,
        "    pub const ARENA_BYTES: usize = {};",
        program.arena_bytes.max(4)
    );
    let _ = writeln!(
        consts,
        "    pub const STACK_BYTES: usize = {};",
        program.stated_stack_bytes()
    );
    let _ = writeln!(
        consts,
        "    pub const LAYER_COUNT: usize = {};",
        program.layers.len()
    );
    let names: Vec<String> = program
        .layers
        .iter()
        .map(|l| format!("{:?}", l.name))
        .collect();
    let _ = writeln!(
        consts,
        "    pub const LAYER_NAMES: [&str; LAYER_COUNT] = [{}];",
        names.join(", ")
    );
    let macs: Vec<String> = program.layers.iter().map(|l| l.macs.to_string()).collect();
    let _ = writeln!(
        consts,
        "    pub const LAYER_MACS: [usize; LAYER_COUNT] = [{}];",
        macs.join(", ")
    );
    // Kernel instances (shape and requantisation form) used by several layers are called out
    // of line and shared; the others are inlined.
    let mut instances: std::collections::HashMap<String, usize> = Default::default();
    for step in &program.steps {
        if let Some(key) = instance_key(&step.kind) {
            *instances.entry(key).or_default() += 1;
        }
    }
    let shared = |kind: &StepKind| {
        // A full-stride schedule inlines every call: its calls differ in the width's numbers.
        if program.per_width.is_none()
            && instance_key(kind).is_some_and(|k| instances.get(&k).copied().unwrap_or(0) > 1)
        {
            "_shared"
        } else {
            ""
        }
    };
    let mut current_layer = None;
    for (i, step) in program.steps.iter().enumerate() {
        if current_layer != Some(step.layer) {
            current_layer = Some(step.layer);
            let _ = writeln!(body, "    probe({});", step.layer);
        }
        let p = format!("S{i}");
        let ops = match step.kind.scratch() {
            Some(scratch) => {
                operands_with_scratch(program, step.kind.src(), step.kind.dst(), scratch)
            }
            None => operands(program, step.kind.src(), step.kind.dst()),
        };
        let call = match &step.kind {
            StepKind::Float(f) => crate::float::emit_call(&mut consts, &p, f),
            StepKind::S16(s) => crate::s16::emit_rust_call(&mut consts, &p, s),
            StepKind::SparseConv(c) => crate::sparse::emit_rust_conv_call(&mut consts, &p, c),
            StepKind::DspConv2D(c) => {
                aligned_array(&mut consts, &format!("{p}_W"), "i16", &c.packed);
                array(&mut consts, &format!("{p}_B"), "i32", &c.folded_bias);
                requant_arrays(&mut consts, &p, &c.requant);
                c.rust_call(&p)
            }
            StepKind::SparseFc(f) => crate::sparse::emit_rust_call(
                &mut consts,
                &p,
                f,
                program.kernels == KernelSet::CortexM4,
            ),
            StepKind::Widen {
                in_ch,
                zero_point,
                pad_before,
                ..
            } => {
                format!(
                    "kinglet_m4::widen_padded_before(src, {in_ch}, {zero_point}, {pad_before}, dst)?;"
                )
            }
            StepKind::WidenChannelMajor {
                channels,
                zero_point,
                pad_before,
                row_len,
                ..
            } => {
                format!(
                    "kinglet_m4::widen_channel_major(src, {channels}, {zero_point}, {pad_before}, {row_len}, dst)?;"
                )
            }
            StepKind::Conv1d {
                width,
                in_ch,
                out_ch,
                kernel,
                pool,
                bias,
                requant,
                ..
            } if program.blobs.contains_key(&i) => {
                let blob = &program.blobs[&i];
                let scratch = program.step_stack_bytes(i, step) / 4;
                array(&mut consts, &format!("{p}_B"), "i32", bias);
                let form = form_1d(requant, bias, kinglet_m4::conv1d_row_len(*in_ch, *kernel));
                let params = format!(
                    "&kinglet_m4::Conv1d {{ width: {width}, kernel: {kernel}, weights: {}, bias: &{p}_B, requant: {}, pool: {pool} }}",
                    blob_weights_expr(blob, None),
                    blob_requant_expr(&mut consts, &p, blob, requant, *out_ch),
                );
                if blob.runtime_shapes {
                    // Every width's call the same but for numbers (see crate::nested).
                    format!(
                        "let mut scratch = [0u32; {scratch}];\n        kinglet_m4::nested::nested_conv1d_fixed::<{}, {form}, {}>(\n            {in_ch},\n            {out_ch},\n            {},\n            {params},\n            src,\n            dst,\n            &mut scratch,\n        )?;",
                        blob.block,
                        *in_ch < blob.full_in,
                        full_rows_expr(blob),
                    )
                } else {
                    format!(
                        "kinglet_m4::nested::nested_conv1d::<{in_ch}, {out_ch}, {kernel}, {scratch}, {form}, {}, {}, {}>(\n            {params},\n            src,\n            dst,\n        )?;",
                        blob.full_in, blob.full_out, blob.block,
                    )
                }
            }
            StepKind::Conv1d {
                width,
                in_ch,
                out_ch,
                kernel,
                pool,
                weights,
                bias,
                requant,
                ..
            } => {
                let weights_expr = weights_const(&mut consts, &format!("{p}_W"), weights);
                // The buffer the stated stack bound counts for this step, in words.
                let scratch = step.kind.stack_buffer_bytes() / 4;
                let widths = program.per_width.as_ref().and_then(|pw| pw.steps.get(&i));
                let (bias_expr, all_biases, active) =
                    width_biases(&mut consts, &p, bias, widths, *out_ch);
                requant_arrays(&mut consts, &p, requant);
                let row = kinglet_m4::conv1d_row_len(*in_ch, *kernel);
                let form = form_1d(requant, &all_biases, row);
                let params = format!(
                    "&kinglet_m4::Conv1d {{ width: {width}, kernel: {kernel}, weights: {weights_expr}, bias: {bias_expr}, requant: {}, pool: {pool} }}",
                    requant_expr(&p, requant)
                );
                match active {
                    Some(active) => format!(
                        "kinglet_m4::conv1d_active::<{in_ch}, {out_ch}, {kernel}, {scratch}, {form}>(\n            {params},\n            src,\n            dst,\n            {active},\n        )?;\n        kinglet_m4::fill_channels(dst, {out_ch}, {active}, {})?;",
                        requant.output_offset
                    ),
                    None => format!(
                        "kinglet_m4::conv1d{}::<{in_ch}, {out_ch}, {kernel}, {scratch}{}>(\n            {params},\n            src,\n            dst,\n        )?;",
                        shared(&step.kind),
                        if shared(&step.kind).is_empty() {
                            format!(", {form}")
                        } else {
                            format!(", {width}, {pool}, {form}")
                        },
                    ),
                }
            }
            StepKind::Depthwise1d {
                width,
                channels,
                kernel,
                weights,
                bias,
                requant,
                ..
            } if program.blobs.contains_key(&i) => {
                let blob = &program.blobs[&i];
                array(&mut consts, &format!("{p}_B"), "i32", bias);
                // Per-channel rows: a narrower width's are the blob's leading ones.
                let len = match weights {
                    ConvWeights::Wide(w) => w.len(),
                    other => other.bytes(),
                };
                let params = format!(
                    "&kinglet_m4::Depthwise1d {{ width: {width}, kernel: {kernel}, weights: {}, bias: &{p}_B, requant: {} }}",
                    blob_weights_expr(blob, Some(len)),
                    blob_requant_expr(&mut consts, &p, blob, requant, *channels),
                );
                let call = if blob.runtime_shapes {
                    format!("kinglet_m4::depthwise1d_dyn(\n            {channels},")
                } else {
                    format!(
                        "kinglet_m4::depthwise1d::<{channels}, {kernel}, {}>(",
                        form_1d(requant, bias, *kernel)
                    )
                };
                format!(
                    "{call}\n            {params},\n            src,\n            dst,\n        )?;"
                )
            }
            StepKind::Depthwise1d {
                width,
                channels,
                kernel,
                weights,
                bias,
                requant,
                ..
            } => {
                let weights_expr = weights_const(&mut consts, &format!("{p}_W"), weights);
                let widths = program.per_width.as_ref().and_then(|pw| pw.steps.get(&i));
                let (bias_expr, all_biases, active) =
                    width_biases(&mut consts, &p, bias, widths, *channels);
                requant_arrays(&mut consts, &p, requant);
                let form = form_1d(requant, &all_biases, *kernel);
                let params = format!(
                    "&kinglet_m4::Depthwise1d {{ width: {width}, kernel: {kernel}, weights: {weights_expr}, bias: {bias_expr}, requant: {} }}",
                    requant_expr(&p, requant)
                );
                match active {
                    Some(active) => format!(
                        "kinglet_m4::depthwise1d_active::<{channels}, {kernel}, {form}>(\n            {params},\n            src,\n            dst,\n            {active},\n        )?;\n        kinglet_m4::fill_channels(dst, {channels}, {active}, {})?;",
                        requant.output_offset
                    ),
                    None => format!(
                        "kinglet_m4::depthwise1d{}::<{channels}, {kernel}{}>(\n            {params},\n            src,\n            dst,\n        )?;",
                        shared(&step.kind),
                        if shared(&step.kind).is_empty() {
                            format!(", {form}")
                        } else {
                            format!(", {width}, {form}")
                        },
                    ),
                }
            }
            StepKind::FullyConnectedQ15 {
                in_len,
                out_len,
                bias,
                requant,
                ..
            } if program.blobs.contains_key(&i) => {
                let blob = &program.blobs[&i];
                array(&mut consts, &format!("{p}_B"), "i32", bias);
                let scales = if blob.shared_requant {
                    format!("&super::super::{}_SCALE[..{out_len}]", blob.name)
                } else {
                    requant_arrays(&mut consts, &p, requant);
                    format!("&{p}_SCALE")
                };
                let params = format!(
                    "&kinglet_m4::FullyConnected {{ weights: {}, bias: &{p}_B, requant: kinglet_m4::FcRequant {{ scales: {scales}, output_offset: {}, act_min: {}, act_max: {} }} }}",
                    blob_weights_expr(blob, None),
                    requant.output_offset,
                    requant.act_min,
                    requant.act_max,
                );
                let bits = if blob.wide { 16 } else { 8 };
                let call = if blob.runtime_shapes {
                    format!(
                        "kinglet_m4::nested::nested_fully_connected_fixed::<{}, {bits}>(\n            {in_len},\n            {out_len},\n            {},",
                        blob.block,
                        full_rows_expr(blob),
                    )
                } else {
                    format!(
                        "kinglet_m4::nested::nested_fully_connected::<{in_len}, {out_len}, {bits}, {}, {}, {}>(",
                        blob.full_in, blob.full_out, blob.block,
                    )
                };
                format!(
                    "{call}\n            {params},\n            src,\n            dst,\n        )?;"
                )
            }
            StepKind::FullyConnectedQ15 {
                in_len,
                out_len,
                weights,
                bias,
                requant,
                ..
            } => {
                let weights_expr = weights_const(&mut consts, &format!("{p}_W"), weights);
                let bits = weights.bits();
                let widths = program.per_width.as_ref().and_then(|pw| pw.steps.get(&i));
                // Every width computes all the classes: its biases are all that differ.
                let (bias_expr, _, _) = width_biases(&mut consts, &p, bias, widths, *out_len);
                requant_arrays(&mut consts, &p, requant);
                format!(
                    "kinglet_m4::fully_connected::<{in_len}, {out_len}, {bits}>(\n            &kinglet_m4::FullyConnected {{ weights: {weights_expr}, bias: {bias_expr}, requant: {} }},\n            src,\n            dst,\n        )?;",
                    fc_requant_expr(&p, requant)
                )
            }
            StepKind::RefConv2D {
                input,
                output,
                filter,
                geometry: g,
                weights,
                bias,
                input_offset,
                requant,
                ..
            } => {
                let bias_expr = filter_consts(&mut consts, &p, weights, bias.as_deref(), requant);
                format!(
                    "conv2d::conv2d_i8(\n            &{},\n            &{},\n            TensorRef::new(src, {}),\n            TensorRef::new(&{p}_W, {}),\n            {bias_expr},\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                    conv_params_expr(g),
                    ref_quant_expr(&p, requant, *input_offset),
                    shape4(input),
                    shape4(filter),
                    shape4(output)
                )
            }
            StepKind::RefMaxPool2D {
                input,
                output,
                window: w,
                act_min,
                act_max,
                ..
            } => pool_call(
                "max_pool2d::max_pool2d_i8",
                w,
                *act_min,
                *act_max,
                input,
                output,
            ),
            StepKind::RefFullyConnected {
                batches,
                in_len,
                out_len,
                weights,
                bias,
                input_offset,
                requant,
                ..
            } => {
                let bias_expr = filter_consts(&mut consts, &p, weights, bias.as_deref(), requant);
                format!(
                    "fully_connected::fully_connected_i8(\n            FcShape {{ batches: {batches}, in_features: {in_len}, out_features: {out_len} }},\n            &{},\n            src,\n            &{p}_W,\n            {bias_expr},\n            dst,\n        )\n        .map_err(|_| ShapeError)?;",
                    ref_quant_expr(&p, requant, *input_offset)
                )
            }
            StepKind::RefDepthwiseConv2D {
                input,
                output,
                filter,
                geometry: g,
                depth_multiplier,
                weights,
                bias,
                input_offset,
                requant,
                ..
            } => {
                let bias_expr = filter_consts(&mut consts, &p, weights, bias.as_deref(), requant);
                format!(
                    "kinglet_micro::depthwise_conv2d::depthwise_conv2d_i8(\n            &kinglet_micro::depthwise_conv2d::DepthwiseParams {{ conv: {}, depth_multiplier: {depth_multiplier} }},\n            &{},\n            TensorRef::new(src, {}),\n            TensorRef::new(&{p}_W, {}),\n            {bias_expr},\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
                    conv_params_expr(g),
                    ref_quant_expr(&p, requant, *input_offset),
                    shape4(input),
                    shape4(filter),
                    shape4(output)
                )
            }
            StepKind::RefMean {
                view,
                input_zero_point,
                output_zero_point,
                multiplier,
                shift,
                ..
            } if program.kernels == KernelSet::CortexM4 => format!(
                "kinglet_m4::mean_i8(src, {}, {}, {input_zero_point}, {output_zero_point}, {multiplier}, {shift}, dst)?;",
                view[1] * view[2],
                view[3]
            ),
            StepKind::RefMean {
                view,
                scales,
                input_zero_point,
                output_zero_point,
                ..
            } => format!(
                "kinglet_micro::mean::mean_hw_i8(\n            &kinglet_micro::mean::MeanQuant {{ input_scale: f32::from_bits({:#x}), input_zero_point: {input_zero_point}, output_scale: f32::from_bits({:#x}), output_zero_point: {output_zero_point} }},\n            TensorRef::new(src, {}),\n            dst,\n        )\n        .map_err(|_| ShapeError)?;",
                scales[0].to_bits(),
                scales[1].to_bits(),
                shape4(view)
            ),
            StepKind::ConcatPart {
                outer,
                src_inner,
                dst_inner,
                dst_offset,
                ..
            } => format!(
                "if src.len() < {} || dst.len() < {} {{\n            return Err(ShapeError);\n        }}\n        for row in 0..{outer} {{\n            let to = row * {dst_inner} + {dst_offset};\n            dst[to..to + {src_inner}].copy_from_slice(&src[row * {src_inner}..(row + 1) * {src_inner}]);\n        }}",
                outer * src_inner,
                outer * dst_inner
            ),
            StepKind::Copy { len, .. } => format!(
                "match (src.get(..{len}), dst.get_mut(..{len})) {{\n            (Some(s), Some(d)) => d.copy_from_slice(s),\n            _ => return Err(ShapeError),\n        }}"
            ),
        };
        let _ = writeln!(
            body,
            "    {{\n        // step {i}: layer {} ({})\n        {ops}\n        {call}\n    }}",
            step.layer, program.layers[step.layer].name
        );
    }
    let _ = writeln!(body, "    probe(LAYER_COUNT);");
    (consts, body)
}

/// A weighted step's biases: its own array (`&S3_B`), or in a full-stride schedule
/// ([`Program::per_width`]) one array per width and the lookup of width `w`'s. Also every
/// width's biases together (the requantisation form must fit them all) and, when some width
/// computes fewer than the `channels` output channels, the lookup of its count.
fn width_biases(
    consts: &mut String,
    p: &str,
    bias: &[i32],
    widths: Option<&Vec<crate::program::WidthStep>>,
    channels: usize,
) -> (String, Vec<i32>, Option<String>) {
    let Some(widths) = widths else {
        array(consts, &format!("{p}_B"), "i32", bias);
        return (format!("&{p}_B"), bias.to_vec(), None);
    };
    let mut refs = Vec::new();
    for (w, step) in widths.iter().enumerate() {
        array(consts, &format!("W{w}_{p}_B"), "i32", &step.bias);
        refs.push(format!("&W{w}_{p}_B"));
    }
    let _ = writeln!(
        consts,
        "    static {p}_B: [&[i32]; {}] = [{}];",
        widths.len(),
        refs.join(", ")
    );
    let all = widths.iter().flat_map(|s| s.bias.iter().copied()).collect();
    let active = widths.iter().any(|s| s.active < channels).then(|| {
        let counts: Vec<String> = widths.iter().map(|s| s.active.to_string()).collect();
        let _ = writeln!(
            consts,
            "    static {p}_ACTIVE: [usize; {}] = [{}];",
            widths.len(),
            counts.join(", ")
        );
        format!("pick(&{p}_ACTIVE, w)?")
    });
    (format!("pick(&{p}_B, w)?"), all, active)
}

/// The generated module: `dsp` is the Cortex-M4 schedule, `reference` the portable one.
pub fn emit_module(dsp: &Program, reference: &Program, origin: &Origin) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by `kinglet compile` from {} ({} MACs). Do not edit.\n\
         //\n\
         // API: `Model::new()` (const; put it in a static — it holds the arena), then\n\
         // `model.infer(&input, &mut output)` (a multi-input model takes its graph inputs end to\n\
         // end in `input`, sizes in `INPUT_LENS`, or as separate slices via `infer_inputs`). No heap, no interpreter; every kernel checks its\n\
         // buffers once and reports a mismatch as `ShapeError` instead of panicking.\n\
         // Schedule: kinglet-m4 DSP kernels on targets with the DSP extension (Cortex-M4/M7),\n\
         // kinglet-micro reference kernels elsewhere; both give identical outputs.\n",
        origin.model_name, origin.macs
    );
    s.push_str(
        "#[allow(unused_imports)]\n\
         use kinglet_m4::arena::{self, Place};\n\
         pub use kinglet_m4::ShapeError;\n\n",
    );
    let _ = writeln!(
        s,
        "pub type InputElem = {io};\npub type OutputElem = {io};",
        io = dsp.io.rust()
    );
    let lens: Vec<String> = dsp.input_lens.iter().map(usize::to_string).collect();
    let _ = writeln!(
        s,
        "/// Values of each graph input; `infer` takes them end to end in this order.\npub const INPUT_LENS: [usize; {}] = [{}];",
        lens.len(),
        lens.join(", ")
    );
    let _ = writeln!(s, "pub const INPUT_COUNT: usize = {};", lens.len());
    let _ = writeln!(s, "pub const INPUT_LEN: usize = {};", dsp.input_len);
    let mut start = 0;
    let parts: Vec<String> = dsp
        .input_lens
        .iter()
        .map(|len| {
            let part = format!("&input[{start}..{}]", start + len);
            start += len;
            part
        })
        .collect();
    let _ = writeln!(
        s,
        "\n/// The graph inputs inside the end-to-end input array (constant bounds: no panic path).\nfn split_input(input: &[InputElem; INPUT_LEN]) -> [&[InputElem]; INPUT_COUNT] {{\n    [{}]\n}}",
        parts.join(", ")
    );
    let _ = writeln!(s, "pub const OUTPUT_LEN: usize = {};\n", dsp.output_len);
    s.push_str(
        "/// kinglet-m4 kernels on Cortex-M4/M7, Cortex-M3 and RISC-V rv32 unless the build sets\n/// `--cfg kinglet_reference_kernels`.\n\
         const USE_DSP: bool = kinglet_m4::PACKED_KERNELS && !cfg!(kinglet_reference_kernels);\n\
         pub const ARENA_BYTES: usize = if USE_DSP { dsp::ARENA_BYTES } else { reference::ARENA_BYTES };\n\
         /// Stack `infer` may use below its caller's frame, as `kinglet compile` bounds it.\n\
         pub const STACK_BYTES: usize = if USE_DSP { dsp::STACK_BYTES } else { reference::STACK_BYTES };\n\
         pub const LAYER_COUNT: usize = if USE_DSP { dsp::LAYER_COUNT } else { reference::LAYER_COUNT };\n\
         pub const LAYER_NAMES: &[&str] = if USE_DSP { &dsp::LAYER_NAMES } else { &reference::LAYER_NAMES };\n\
         pub const LAYER_MACS: &[usize] = if USE_DSP { &dsp::LAYER_MACS } else { &reference::LAYER_MACS };\n\n\
         fn run_schedule<P: FnMut(usize)>(\n    arena: &mut [u8],\n    input: &[InputElem; INPUT_LEN],\n    output: &mut [OutputElem; OUTPUT_LEN],\n    probe: &mut P,\n) -> Result<(), ShapeError> {\n\
         \x20   run_schedule_inputs(arena, &split_input(input), output, probe)\n}\n\n\
         fn run_schedule_inputs<P: FnMut(usize)>(\n    arena: &mut [u8],\n    inputs: &[&[InputElem]; INPUT_COUNT],\n    output: &mut [OutputElem; OUTPUT_LEN],\n    probe: &mut P,\n) -> Result<(), ShapeError> {\n\
         \x20   if inputs.iter().zip(INPUT_LENS).any(|(input, len)| input.len() != len) {\n        return Err(ShapeError);\n    }\n\
         \x20   // Opaque to the optimiser, which would otherwise clone the whole schedule for the\n    // no-op probe of `infer`.\n    let probe: &mut dyn FnMut(usize) = core::hint::black_box(probe);\n\
         \x20   if USE_DSP {\n        dsp::run_schedule(arena, inputs, output, probe)\n    } else {\n        reference::run_schedule(arena, inputs, output, probe)\n    }\n}\n\n\
         #[repr(C, align(4))]\n\
         struct Arena([u8; ARENA_BYTES]);\n\n\
         /// The compiled model and its statically sized arena (`ARENA_BYTES`).\n\
         pub struct Model {\n    arena: Arena,\n}\n\n\
         impl Default for Model {\n    fn default() -> Self {\n        Self::new()\n    }\n}\n\n\
         impl Model {\n\
         \x20   pub const fn new() -> Self {\n        Model { arena: Arena([0; ARENA_BYTES]) }\n    }\n\n\
         \x20   /// One inference.\n\
         \x20   pub fn infer(&mut self, input: &[InputElem; INPUT_LEN], output: &mut [OutputElem; OUTPUT_LEN]) -> Result<(), ShapeError> {\n\
         \x20       run_schedule(&mut self.arena.0, input, output, &mut |_| {})\n    }\n\n\
         \x20   /// One inference calling `probe(layer)` before each layer and `probe(LAYER_COUNT)` at the\n\
         \x20   /// end (per-layer timing on the target).\n\
         \x20   pub fn infer_probed<P: FnMut(usize)>(\n        &mut self,\n        input: &[InputElem; INPUT_LEN],\n        output: &mut [OutputElem; OUTPUT_LEN],\n        probe: &mut P,\n    ) -> Result<(), ShapeError> {\n\
         \x20       run_schedule(&mut self.arena.0, input, output, probe)\n    }\n\n\
         \x20   /// One inference on the graph inputs as separate slices, in graph order; each must hold\n\
         \x20   /// `INPUT_LENS[k]` values (else `ShapeError`).\n\
         \x20   pub fn infer_inputs(&mut self, inputs: &[&[InputElem]; INPUT_COUNT], output: &mut [OutputElem; OUTPUT_LEN]) -> Result<(), ShapeError> {\n\
         \x20       run_schedule_inputs(&mut self.arena.0, inputs, output, &mut |_| {})\n    }\n}\n\n\
         /// One inference in an arena the caller owns (at least `ARENA_BYTES`, 4-byte aligned),\n\
         /// so models that run one at a time can share one arena sized by the largest of them.\n\
         pub fn infer_in(arena: &mut [u8], input: &[InputElem; INPUT_LEN], output: &mut [OutputElem; OUTPUT_LEN]) -> Result<(), ShapeError> {\n\
         \x20   match arena.get_mut(..ARENA_BYTES) {\n        Some(arena) => run_schedule(arena, input, output, &mut |_| {}),\n        None => Err(ShapeError),\n    }\n}\n\n",
    );
    for (name, program) in [("dsp", dsp), ("reference", reference)] {
        let _ = writeln!(
            s,
            "#[allow(unused_imports, clippy::all)]\nmod {name} {{\n    use super::*;\n    use kinglet_micro::fully_connected::{{self, FcShape}};\n    use kinglet_micro::{{ActivationF32, ConvParams, PoolParams, QuantParams, Requant, Shape4, TensorMut, TensorRef, conv2d, max_pool2d}};\n\n{}}}\n",
            schedule(program)
        );
    }
    s
}

/// `Cargo.toml` of the generated crate: the kernel crates come vendored beside it
/// ([`crate::runtime_sources`]), so it builds wherever it is copied.
pub fn emit_cargo_toml(crate_name: &str) -> String {
    format!(
        "# Generated by `kinglet compile`. Needs Rust 1.95 or later and nothing else: the kernels\n\
         # it calls are in vendor/. kinglet-m4 kernels on thumbv7em-* (Cortex-M4/M7, SMLAD),\n\
         # thumbv7m-* (Cortex-M3) and riscv32* targets, reference kernels elsewhere, e.g.\n\
         #   rustup target add thumbv7em-none-eabihf\n\
         #   cargo build --release --target thumbv7em-none-eabihf\n\
         [package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\nrust-version = \"1.95\"\npublish = false\n\n[workspace]\n\n[lints.rust]\nunexpected_cfgs = {{ level = \"warn\", check-cfg = [\"cfg(kinglet_reference_kernels)\"] }}\n\n[dependencies]\nkinglet-micro = {{ path = \"vendor/kinglet-micro\" }}\nkinglet-m4 = {{ path = \"vendor/kinglet-m4\" }}\n"
    )
}

/// Emits a convolution's weights, optional bias and requantisation tables as constants and
/// returns the bias argument the kernel call takes.
fn filter_consts(
    consts: &mut String,
    p: &str,
    weights: &[i8],
    bias: Option<&[i32]>,
    requant: &RequantData,
) -> String {
    array(consts, &format!("{p}_W"), "i8", weights);
    if let Some(b) = bias {
        array(consts, &format!("{p}_B"), "i32", b);
    }
    requant_arrays(consts, p, requant);
    if bias.is_some() {
        format!("Some(&{p}_B)")
    } else {
        "None".into()
    }
}

/// A call of the integer pool `kernel` (kinglet-micro's signature: params, clamp, input,
/// output) on window `w` (filter h, w, stride h, w, pad top, left).
pub(crate) fn pool_call(
    kernel: &str,
    w: &[usize; 6],
    act_min: i32,
    act_max: i32,
    input: &[usize; 4],
    output: &[usize; 4],
) -> String {
    format!(
        "{kernel}(\n            &PoolParams {{ filter_h: {}, filter_w: {}, stride_h: {}, stride_w: {}, pad_top: {}, pad_left: {} }},\n            {act_min},\n            {act_max},\n            TensorRef::new(src, {}),\n            TensorMut::new(dst, {}),\n        )\n        .map_err(|_| ShapeError)?;",
        w[0],
        w[1],
        w[2],
        w[3],
        w[4],
        w[5],
        shape4(input),
        shape4(output)
    )
}

/// `ConvParams` literal from a step's geometry (strides, dilations, top/left padding).
pub(crate) fn conv_params_expr(g: &[usize; 6]) -> String {
    format!(
        "ConvParams {{ stride_h: {}, stride_w: {}, dilation_h: {}, dilation_w: {}, pad_top: {}, pad_left: {} }}",
        g[0], g[1], g[2], g[3], g[4], g[5]
    )
}
