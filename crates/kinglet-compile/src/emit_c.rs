//! Self-contained C99 for a compiled model: `<name>.h` (sizes, `<name>_infer`) and `<name>.c`
//! (constants, arena, static schedule and the kernels it calls, from
//! `runtime-c/kinglet_kernels.c`). Compiles with `-std=c99 -Wall -Wextra -Werror` for any
//! target; on cores with the DSP extension the dot products use `SMLAD` (ACLE `__smlad`).

use std::fmt::Write as _;

use crate::program::{ConvWeights, Loc, Program, RequantData, StepKind};

const KERNELS: &str = include_str!("../runtime-c/kinglet_kernels.c");

/// C identifier prefix for a model name (`B_s123_1IN_int8.tflite` → `b_s123_1in_int8_tflite`).
pub fn c_prefix(model_name: &str) -> String {
    let s = crate::lower::sanitize(model_name);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("m_{s}")
    } else {
        s
    }
}

pub(crate) fn array<T: std::fmt::Display>(out: &mut String, ty: &str, name: &str, values: &[T]) {
    let _ = write!(
        out,
        "static const {ty} {name}[{}] = {{",
        values.len().max(1)
    );
    for (i, v) in values.iter().enumerate() {
        if i % 20 == 0 {
            out.push_str("\n    ");
        }
        let _ = write!(out, "{v}, ");
    }
    if values.is_empty() {
        out.push('0');
    }
    out.push_str("\n};\n");
}

pub(crate) fn requant(out: &mut String, p: &str, r: &RequantData) -> String {
    if !r.scales.is_empty() {
        // `{:e}` prints the shortest decimal that reads back as the same double, which every
        // C99 compiler parses correctly rounded.
        let scales: Vec<String> = r.scales.iter().map(|s| format!("{s:e}")).collect();
        array(out, "double", &format!("{p}_scale"), &scales);
        let _ = writeln!(
            out,
            "static const kl_fc_requant {p}_rq = {{ {p}_scale, {}, {}, {} }};",
            r.output_offset, r.act_min, r.act_max
        );
        return format!("&{p}_rq");
    }
    array(out, "int32_t", &format!("{p}_mult"), &r.multipliers);
    array(out, "int32_t", &format!("{p}_shift"), &r.shifts);
    let _ = writeln!(
        out,
        "static const kl_requant {p}_rq = {{ {p}_mult, {p}_shift, {}, {}, {} }};",
        r.output_offset, r.act_min, r.act_max
    );
    format!("&{p}_rq")
}

/// A weighted layer's constants `<p>_w`, `<p>_b` (if any) and requantisation; returns the C
/// expressions for the bias (`NULL` without one) and the requantisation.
fn weighted_consts(
    out: &mut String,
    p: &str,
    weights: &[i8],
    bias: Option<&[i32]>,
    r: &RequantData,
) -> (String, String) {
    array(out, "int8_t", &format!("{p}_w"), weights);
    let b = match bias {
        Some(b) => {
            array(out, "int32_t", &format!("{p}_b"), b);
            format!("{p}_b")
        }
        None => "NULL".into(),
    };
    (b, requant(out, p, r))
}

/// A convolution's shape constants `<p>_in`, `<p>_fd`, `<p>_out`, `<p>_g`.
/// Declares a DSP step's weights `{p}_w` and returns the kernel arguments: the widened
/// array or `NULL`, the packed array or `NULL`, and bits per packed value (0 for widened).
fn weight_consts(out: &mut String, p: &str, weights: &ConvWeights) -> (String, String, u32) {
    let name = format!("{p}_w");
    match (weights, weights.packed_bytes()) {
        (ConvWeights::Wide(w), _) => {
            array(out, "int16_t", &name, w);
            (name, "NULL".into(), 0)
        }
        (_, bytes) => {
            array(out, "uint8_t", &name, &bytes.unwrap_or_default());
            ("NULL".into(), name, weights.bits())
        }
    }
}

pub(crate) fn conv_dims(
    out: &mut String,
    p: &str,
    input: &[usize],
    filter: &[usize],
    output: &[usize],
    geometry: &[usize],
) {
    dims(out, &format!("{p}_in"), input);
    dims(out, &format!("{p}_fd"), filter);
    dims(out, &format!("{p}_out"), output);
    dims(out, &format!("{p}_g"), geometry);
}

pub(crate) fn dims(out: &mut String, name: &str, d: &[usize]) {
    let v: Vec<String> = d.iter().map(usize::to_string).collect();
    let _ = writeln!(
        out,
        "static const int {name}[{}] = {{ {} }};",
        d.len(),
        v.join(", ")
    );
}

/// Pointer expression for a step operand of C type `ty` (`int8_t` or `int16_t`).
fn ptr(program: &Program, loc: Loc, ty: &str) -> String {
    match loc {
        Loc::Input => "inputs[0]".into(),
        Loc::InputPart { offset, .. } => format!("inputs[{}]", input_slot(program, offset)),
        Loc::Output => "output".into(),
        Loc::Arena(b) => {
            let off = program.buffers[b].offset;
            if ty == "int16_t" {
                format!("(kl_arena + {})", off / 2)
            } else {
                format!("((int8_t *)kl_arena + {off})")
            }
        }
    }
}

/// Index of the graph input starting at `offset` of the end-to-end input array.
fn input_slot(program: &Program, offset: usize) -> usize {
    let mut start = 0;
    program
        .input_lens
        .iter()
        .position(|len| {
            let here = start == offset;
            start += len;
            here
        })
        .unwrap_or(0)
}

/// `(header, source)` for `program` (the Cortex-M4 schedule).
/// Whether the C output can express `program`: float models (float32, float16 weights,
/// dynamic range) compile to Rust only for now.
pub fn supports(program: &Program) -> Result<(), crate::CompileError> {
    if program.io == crate::program::Elem::F32
        || program
            .steps
            .iter()
            .any(|s| matches!(s.kind, StepKind::Float(_)))
    {
        return Err(crate::CompileError::Unsupported(
            "C output covers int8 and a16w8 models; float32, float16 and dynamic-range models \
             compile to Rust (`--lang rust`)"
                .into(),
        ));
    }
    Ok(())
}

pub fn emit_c(program: &Program, model_name: &str) -> (String, String) {
    let p = c_prefix(model_name);
    let up = p.to_uppercase();
    let io = program.io.c();
    let header = format!(
        "/* Generated by `kinglet compile --lang c` from {model_name}. Do not edit. */\n\
         #ifndef {up}_H\n#define {up}_H\n\n#include <stdint.h>\n\n\
         /* Graph inputs go end to end in one input array, in graph order: {}. */\n\
         #define {up}_INPUT_COUNT {}\n\
         #define {up}_INPUT_LEN {}\n#define {up}_OUTPUT_LEN {}\n\
         /* Bytes of the statically allocated arena inside {p}.c. */\n#define {up}_ARENA_BYTES {}\n\
         /* Stack an inference may use below its caller's frame, as `kinglet compile` bounds it\n\
          * (Cortex-M4, arm-none-eabi-gcc -O2). */\n#define {up}_STACK_BYTES {}\n\
         #define {up}_LAYER_COUNT {}\n\n\
         /* One inference: {io} input[{up}_INPUT_LEN] in, {io} output[{up}_OUTPUT_LEN] out. No heap;\n\
          * not reentrant (one static arena). Returns 0. */\n\
         int {p}_infer(const {io} *input, {io} *output);\n\n\
         /* The same, calling probe(ctx, layer) before each layer and probe(ctx, {up}_LAYER_COUNT)\n\
          * at the end (per-layer timing); probe may be NULL. */\n\
         int {p}_infer_probed(const {io} *input, {io} *output, void (*probe)(void *ctx, int layer), void *ctx);\n\n\
         /* One inference on the graph inputs as separate arrays: inputs[k] holds the k-th graph\n\
          * input ({up}_INPUT_COUNT of them, sizes as listed above). */\n\
         int {p}_infer_inputs(const {io} *const *inputs, {io} *output);\n\n\
         /* One inference in an arena the caller owns instead of the static one: at least\n\
          * ({up}_ARENA_BYTES + 1) / 2 values, so models that run one at a time can share one\n\
          * arena sized by the largest of them. */\n\
         int {p}_infer_in(int16_t *arena, const {io} *input, {io} *output);\n\n\
         #endif\n",
        input_lens_text(program),
        program.input_lens.len(),
        program.input_len,
        program.output_len,
        program.arena_bytes,
        program.stated_c_stack_bytes(),
        program.layers.len()
    );
    let mut consts = String::new();
    let mut body = String::new();
    let mut current = None;
    for (i, step) in program.steps.iter().enumerate() {
        if current != Some(step.layer) {
            current = Some(step.layer);
            let _ = writeln!(
                body,
                "    if (probe) {{\n        probe(ctx, {});\n    }}",
                step.layer
            );
        }
        let s = format!("s{i}");
        let src8 = ptr(program, step.kind.src(), "int8_t");
        let src16 = ptr(program, step.kind.src(), "int16_t");
        let dst8 = ptr(program, step.kind.dst(), "int8_t");
        let dst16 = ptr(program, step.kind.dst(), "int16_t");
        let call = match &step.kind {
            // `supports` rejects these programs before emission.
            StepKind::Float(_) => "#error \"float steps have no C kernels\"".to_owned(),
            StepKind::SparseFc(f) => crate::sparse::emit_c_call(&mut consts, &s, f, &src8, &dst8),
            StepKind::SparseConv(c) => {
                crate::sparse::emit_c_conv_call(&mut consts, &s, c, &src8, &dst8)
            }
            // No C DSP kernel for 2D convolutions yet: the reference kernel, on the filter and
            // bias as TFLite stores them.
            StepKind::DspConv2D(c) => {
                let (b, rq) =
                    weighted_consts(&mut consts, &s, &c.weights, c.bias.as_deref(), &c.requant);
                conv_dims(&mut consts, &s, &c.input, &c.filter, &c.output, &c.geometry);
                if c.depthwise {
                    format!(
                        "kl_depthwise_conv2d_i8({src8}, {s}_in, {s}_w, {s}_fd, {b}, {s}_out, {s}_g, 1, {}, {rq}, {dst8});",
                        c.input_offset
                    )
                } else {
                    format!(
                        "kl_conv2d_i8({src8}, {s}_in, {s}_w, {s}_fd, {b}, {s}_out, {s}_g, {}, {rq}, {dst8});",
                        c.input_offset
                    )
                }
            }
            StepKind::Widen {
                in_ch,
                zero_point,
                pad_before,
                dst,
                ..
            } => {
                let padded_len = match dst {
                    Loc::Arena(b) => program.buffers[*b].len,
                    _ => 0,
                };
                let len = widen_source_len(program, i);
                format!(
                    "kl_widen_padded({src8}, {len}, {in_ch}, {pad_before}, {zero_point}, {dst16}, {padded_len});"
                )
            }
            StepKind::WidenChannelMajor {
                channels,
                zero_point,
                pad_before,
                row_len,
                ..
            } => {
                let width = widen_source_len(program, i) / channels.max(&1);
                format!(
                    "kl_widen_channel_major({src8}, {width}, {channels}, {pad_before}, {zero_point}, {row_len}, {dst16});"
                )
            }
            StepKind::Conv1d {
                width,
                in_ch,
                out_ch,
                kernel,
                pool,
                weights,
                bias,
                requant: r,
                ..
            } => {
                array(&mut consts, "int32_t", &format!("{s}_b"), bias);
                let rq = requant(&mut consts, &s, r);
                let pool = i32::from(*pool);
                let (wide, packed, bits) = weight_consts(&mut consts, &s, weights);
                if packed == "NULL" {
                    format!(
                        "kl_conv1d({src16}, {width}, {in_ch}, {out_ch}, {kernel}, {pool}, {wide}, NULL, 0, NULL, {s}_b, {rq}, {dst8});"
                    )
                } else {
                    // One block of widened weights, on the stack (the buffer the stated
                    // stack bound counts for this step).
                    format!(
                        "{{\n        int16_t scratch[{}];\n        kl_conv1d({src16}, {width}, {in_ch}, {out_ch}, {kernel}, {pool}, NULL, {packed}, {bits}, scratch, {s}_b, {rq}, {dst8});\n    }}",
                        step.kind.stack_buffer_bytes() / 2
                    )
                }
            }
            StepKind::Depthwise1d {
                width,
                channels,
                kernel,
                weights,
                bias,
                requant: r,
                ..
            } => {
                let (wide, packed, bits) = weight_consts(&mut consts, &s, weights);
                array(&mut consts, "int32_t", &format!("{s}_b"), bias);
                let rq = requant(&mut consts, &s, r);
                let row_len = kinglet_m4::depthwise_row_len(*width, *kernel);
                format!(
                    "kl_depthwise1d({src16}, {width}, {channels}, {kernel}, {row_len}, {wide}, {packed}, {bits}, {s}_b, {rq}, {dst8});"
                )
            }
            StepKind::FullyConnectedQ15 {
                in_len,
                out_len,
                weights,
                bias,
                requant: r,
                ..
            } => {
                let (wide, packed, bits) = weight_consts(&mut consts, &s, weights);
                array(&mut consts, "int32_t", &format!("{s}_b"), bias);
                let rq = requant(&mut consts, &s, r);
                format!(
                    "kl_fully_connected_q15({src16}, {in_len}, {out_len}, {wide}, {packed}, {bits}, {s}_b, {rq}, {dst8});"
                )
            }
            StepKind::RefConv2D {
                input,
                output,
                filter,
                geometry,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let (b, rq) = weighted_consts(&mut consts, &s, weights, bias.as_deref(), r);
                conv_dims(&mut consts, &s, input, filter, output, geometry);
                format!(
                    "kl_conv2d_i8({src8}, {s}_in, {s}_w, {s}_fd, {b}, {s}_out, {s}_g, {input_offset}, {rq}, {dst8});"
                )
            }
            StepKind::RefMaxPool2D {
                input,
                output,
                window,
                act_min,
                act_max,
                ..
            } => {
                dims(&mut consts, &format!("{s}_in"), input);
                dims(&mut consts, &format!("{s}_out"), output);
                dims(&mut consts, &format!("{s}_win"), window);
                format!(
                    "kl_max_pool2d_i8({src8}, {s}_in, {s}_out, {s}_win, {act_min}, {act_max}, {dst8});"
                )
            }
            StepKind::RefFullyConnected {
                batches,
                in_len,
                out_len,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let (b, rq) = weighted_consts(&mut consts, &s, weights, bias.as_deref(), r);
                format!(
                    "kl_fully_connected_i8({src8}, {batches}, {in_len}, {out_len}, {s}_w, {b}, {input_offset}, {rq}, {dst8});"
                )
            }
            StepKind::Copy { len, .. } => {
                let (src, dst, size) =
                    copy_operands(program, step.kind.dst(), [&src8, &src16, &dst8, &dst16]);
                format!("memcpy({dst}, {src}, {len} * {size});")
            }
            StepKind::S16(f) => crate::s16::emit_c_call(&mut consts, &s, f, &src16, &dst16),
            StepKind::RefDepthwiseConv2D {
                input,
                output,
                filter,
                geometry,
                depth_multiplier,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let (b, rq) = weighted_consts(&mut consts, &s, weights, bias.as_deref(), r);
                conv_dims(&mut consts, &s, input, filter, output, geometry);
                format!(
                    "kl_depthwise_conv2d_i8({src8}, {s}_in, {s}_w, {s}_fd, {b}, {s}_out, {s}_g, {depth_multiplier}, {input_offset}, {rq}, {dst8});"
                )
            }
            StepKind::RefMean {
                view,
                input_zero_point,
                output_zero_point,
                multiplier,
                shift,
                ..
            } => format!(
                "kl_mean_i8({src8}, {}, {}, {}, {input_zero_point}, {output_zero_point}, {multiplier}, {shift}, {dst8});",
                view[0],
                view[1] * view[2],
                view[3]
            ),
            StepKind::ConcatPart {
                outer,
                src_inner,
                dst_inner,
                dst_offset,
                ..
            } => {
                let (src, dst, size) =
                    copy_operands(program, step.kind.dst(), [&src8, &src16, &dst8, &dst16]);
                format!(
                    "for (int row = 0; row < {outer}; ++row) {{\n        memcpy({dst} + row * {dst_inner} + {dst_offset}, {src} + row * {src_inner}, {src_inner} * {size});\n    }}"
                )
            }
        };
        let _ = writeln!(
            body,
            "    /* step {i}: {} */\n    {call}",
            program.layers[step.layer].name
        );
    }
    let _ = writeln!(
        body,
        "    if (probe) {{\n        probe(ctx, {});\n    }}",
        program.layers.len()
    );
    let source = format!(
        "/* Generated by `kinglet compile --lang c` from {model_name} ({} MACs). Do not edit. */\n\
         #include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n\n#include \"{p}.h\"\n\n\
         {KERNELS}\n\
         /* Arena: every buffer offset is a multiple of 4; int16 buffers are accessed through\n\
          * this array's own type, int8 ones through a character type. */\n\
         static int16_t kl_arena_storage[({up}_ARENA_BYTES + 3) / 2 + 1];\n\n\
         {consts}\n\
         static int {p}_run(int16_t *kl_arena, const {io} *const *inputs, {io} *output, void (*probe)(void *ctx, int layer), void *ctx) {{\n\
         \x20   (void)kl_arena; /* a model without arena buffers */\n\
         {body}    return 0;\n}}\n\n\
         int {p}_infer_probed(const {io} *input, {io} *output, void (*probe)(void *ctx, int layer), void *ctx) {{\n\
         \x20   const {io} *const inputs[{n}] = {{ {starts} }};\n    return {p}_run(kl_arena_storage, inputs, output, probe, ctx);\n}}\n\n\
         int {p}_infer_in(int16_t *arena, const {io} *input, {io} *output) {{\n\
         \x20   const {io} *const inputs[{n}] = {{ {starts} }};\n    return {p}_run(arena, inputs, output, NULL, NULL);\n}}\n\n\
         int {p}_infer_inputs(const {io} *const *inputs, {io} *output) {{\n    return {p}_run(kl_arena_storage, inputs, output, NULL, NULL);\n}}\n\n\
         int {p}_infer(const {io} *input, {io} *output) {{\n    return {p}_infer_probed(input, output, NULL, NULL);\n}}\n",
        program.macs(),
        n = program.input_lens.len().max(1),
        starts = input_starts(program)
    );
    (header, source)
}

/// `input + 0, input + 384, …`: where each graph input starts in the end-to-end array.
fn input_starts(program: &Program) -> String {
    let mut start = 0;
    let mut parts = Vec::new();
    for len in &program.input_lens {
        parts.push(format!("input + {start}"));
        start += len;
    }
    if parts.is_empty() {
        parts.push("input".into());
    }
    parts.join(", ")
}

/// `"384, 384 and 384 values"` style list of the graph input sizes.
fn input_lens_text(program: &Program) -> String {
    let lens: Vec<String> = program.input_lens.iter().map(usize::to_string).collect();
    match lens.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last} values", rest.join(", ")),
        Some((last, _)) => format!("{last} values"),
        None => "none".into(),
    }
}

/// The source and destination pointers (`[src8, src16, dst8, dst16]`) and element size of a
/// copy writing `dst`: copies keep their element type.
fn copy_operands<'a>(program: &Program, dst: Loc, ptrs: [&'a str; 4]) -> (&'a str, &'a str, usize) {
    let elem = match dst {
        Loc::Arena(b) => program.buffers[b].elem,
        _ => program.io,
    };
    match elem {
        crate::program::Elem::I16 => (ptrs[1], ptrs[3], 2),
        _ => (ptrs[0], ptrs[2], 1),
    }
}

/// Number of int8 values a widen step reads: the whole source tensor.
fn widen_source_len(program: &Program, step: usize) -> usize {
    let src = program.steps[step].kind.src();
    match src {
        Loc::Input => program.input_len,
        Loc::InputPart { len, .. } => len,
        Loc::Output => program.output_len,
        Loc::Arena(b) => program.buffers[b].len,
    }
}

/// A Rust module with the same API as [`crate::emit_rust::emit_module`]'s, calling the C
/// model through FFI: lets the QEMU test application run C output unchanged.
pub fn firmware_shim(program: &Program, model_name: &str) -> String {
    let p = c_prefix(model_name);
    let io = program.io.rust();
    let names: Vec<String> = program
        .layers
        .iter()
        .map(|l| format!("{:?}", l.name))
        .collect();
    let macs: Vec<String> = program.layers.iter().map(|l| l.macs.to_string()).collect();
    format!(
        "// FFI view of the C model generated from {model_name}.\n\
         use core::ffi::c_void;\n\n\
         unsafe extern \"C\" {{\n\
         \x20   fn {p}_infer(input: *const {io}, output: *mut {io}) -> i32;\n\
         \x20   fn {p}_infer_in(arena: *mut i16, input: *const {io}, output: *mut {io}) -> i32;\n\
         \x20   fn {p}_infer_probed(\n        input: *const {io},\n        output: *mut {io},\n        probe: Option<unsafe extern \"C\" fn(*mut c_void, i32)>,\n        ctx: *mut c_void,\n    ) -> i32;\n}}\n\n\
         pub type InputElem = {io};\npub type OutputElem = {io};\n\
         pub const INPUT_LEN: usize = {};\npub const OUTPUT_LEN: usize = {};\npub const ARENA_BYTES: usize = {};\n\
         /// Stack the C model may use below its caller's frame, as `kinglet compile` bounds it.\n\
         pub const STACK_BYTES: usize = {};\n\
         pub const LAYER_COUNT: usize = {};\npub const LAYER_NAMES: &[&str] = &[{}];\npub const LAYER_MACS: &[usize] = &[{}];\n\n\
         #[derive(Debug)]\npub struct ShapeError;\n\n\
         /// The C model keeps its arena in a static of its own.\npub struct Model;\n\n\
         /// One inference in an arena the caller owns (at least `ARENA_BYTES`, 2-byte aligned).\n\
         pub fn infer_in(arena: &mut [u8], input: &[{io}; INPUT_LEN], output: &mut [{io}; OUTPUT_LEN]) -> Result<(), ShapeError> {{\n\
         \x20   if arena.len() < ARENA_BYTES || arena.as_ptr().align_offset(2) != 0 {{\n        return Err(ShapeError);\n    }}\n\
         \x20   // SAFETY: the arena holds ARENA_BYTES, 2-aligned (checked); the arrays have the\n\
         \x20   // lengths the C model was generated for.\n\
         \x20   let rc = unsafe {{ {p}_infer_in(arena.as_mut_ptr().cast::<i16>(), input.as_ptr(), output.as_mut_ptr()) }};\n\
         \x20   if rc == 0 {{ Ok(()) }} else {{ Err(ShapeError) }}\n}}\n\n\
         impl Model {{\n\
         \x20   pub const fn new() -> Self {{\n        Model\n    }}\n\n\
         \x20   pub fn infer(&mut self, input: &[{io}; INPUT_LEN], output: &mut [{io}; OUTPUT_LEN]) -> Result<(), ShapeError> {{\n\
         \x20       // SAFETY: both arrays have the lengths the C model was generated for.\n\
         \x20       let rc = unsafe {{ {p}_infer(input.as_ptr(), output.as_mut_ptr()) }};\n\
         \x20       if rc == 0 {{ Ok(()) }} else {{ Err(ShapeError) }}\n    }}\n\n\
         \x20   pub fn infer_probed<P: FnMut(usize)>(\n        &mut self,\n        input: &[{io}; INPUT_LEN],\n        output: &mut [{io}; OUTPUT_LEN],\n        probe: &mut P,\n    ) -> Result<(), ShapeError> {{\n\
         \x20       unsafe extern \"C\" fn trampoline<P: FnMut(usize)>(ctx: *mut c_void, layer: i32) {{\n\
         \x20           // SAFETY: ctx is the `&mut P` passed below, alive for the whole call.\n\
         \x20           let probe = unsafe {{ &mut *ctx.cast::<P>() }};\n            probe(layer as usize);\n        }}\n\
         \x20       let ctx = (probe as *mut P).cast::<c_void>();\n\
         \x20       // SAFETY: array lengths as above; the trampoline matches the C callback type.\n\
         \x20       let rc = unsafe {{ {p}_infer_probed(input.as_ptr(), output.as_mut_ptr(), Some(trampoline::<P>), ctx) }};\n\
         \x20       if rc == 0 {{ Ok(()) }} else {{ Err(ShapeError) }}\n    }}\n}}\n",
        program.input_len,
        program.output_len,
        program.arena_bytes,
        program.stated_c_stack_bytes(),
        program.layers.len(),
        names.join(", "),
        macs.join(", ")
    )
}
