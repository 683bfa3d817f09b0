//! From a graph to files and measurements: `compile` writes the generated crate, `profile`
//! runs the model in QEMU and reports instructions, flash and RAM.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kinglet_graph::Graph;
use serde::Serialize;

use crate::emit_rust::{Origin, emit_cargo_toml, emit_module};
use crate::error::CompileError;
use crate::lower::{lower_with, sanitize};
use crate::program::{Elem, KernelSet, Program};
use crate::qemu::{self, FirmwareKernels, FirmwareReport};
use crate::target::{CortexM4, Target};

/// Both schedules of one graph.
pub struct Compiled {
    pub dsp: Program,
    pub reference: Program,
    pub rust_module: String,
}

pub fn compile(graph: &Graph, model_name: &str) -> Result<Compiled, CompileError> {
    compile_with(graph, model_name, true)
}

/// [`compile`]; `sparse_weights: false` stores every weight dense (see [`crate::sparse`]).
pub fn compile_with(
    graph: &Graph,
    model_name: &str,
    sparse_weights: bool,
) -> Result<Compiled, CompileError> {
    let dsp = lower_with(graph, KernelSet::CortexM4, sparse_weights)?;
    let reference = lower_with(graph, KernelSet::Reference, sparse_weights)?;
    let rust_module = emit_module(
        &dsp,
        &reference,
        &Origin {
            model_name,
            macs: dsp.macs(),
        },
    );
    Ok(Compiled {
        dsp,
        reference,
        rust_module,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), CompileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CompileError::io(dir, e))?;
    }
    kinglet_graph::files::write_atomic(path, contents).map_err(|e| CompileError::io(path, e))
}

/// Writes a `#![no_std]` crate (`Cargo.toml`, `src/lib.rs`, the kernel crates it calls in
/// `vendor/`) into `out` and returns its name.
pub fn write_rust_crate(
    compiled: &Compiled,
    model_name: &str,
    out: &Path,
) -> Result<String, CompileError> {
    let crate_name = format!("kinglet-model-{}", sanitize(model_name).replace('_', "-"));
    crate::runtime_sources::write_vendored_runtime(out)?;
    write_atomic(
        &out.join("Cargo.toml"),
        emit_cargo_toml(&crate_name).as_bytes(),
    )?;
    let lib = format!("#![no_std]\n{}", compiled.rust_module);
    write_atomic(&out.join("src/lib.rs"), lib.as_bytes())?;
    Ok(crate_name)
}

/// Writes `<prefix>.h` and `<prefix>.c` (the Cortex-M4 schedule as C99) into `out`; returns
/// the two paths.
pub fn write_c(
    compiled: &Compiled,
    model_name: &str,
    out: &Path,
) -> Result<(PathBuf, PathBuf), CompileError> {
    crate::emit_c::supports(&compiled.dsp)?;
    let (header, source) = crate::emit_c::emit_c(&compiled.dsp, model_name);
    let prefix = crate::emit_c::c_prefix(model_name);
    let (h, c) = (
        out.join(format!("{prefix}.h")),
        out.join(format!("{prefix}.c")),
    );
    write_atomic(&h, header.as_bytes())?;
    write_atomic(&c, source.as_bytes())?;
    Ok((h, c))
}

/// Per-layer line of a profile.
#[derive(Clone, Debug, Serialize)]
pub struct LayerProfile {
    pub name: String,
    pub macs: usize,
    pub instructions: u64,
}

/// One model measured on an emulated core.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub model: String,
    /// The `--target` it ran on (`cortex-m4`, `cortex-m3`).
    pub target: String,
    /// The core, its QEMU board and counting method.
    pub core: String,
    pub kernels: String,
    pub macs: usize,
    pub instructions: u64,
    pub layers: Vec<LayerProfile>,
    pub outputs: Vec<i32>,
    /// The same input through kinglet-graph's host interpreter.
    pub host_outputs: Vec<i32>,
    /// Outputs of a float model (float32, float16 weights, dynamic range; `outputs` is then
    /// empty), run on [`crate::testinput::float_test_input`] of the input bytes.
    pub float_outputs: Vec<f32>,
    /// The host interpreter's float outputs for the same input.
    pub host_float_outputs: Vec<f32>,
    /// Model + kernels: code and constant symbols the bare test harness does not have.
    pub flash_bytes: u64,
    /// Whole firmware image.
    pub flash_total_bytes: u64,
    /// Constant data alone (weights, biases, requantisation tables).
    pub model_constant_bytes: usize,
    /// Arena + measured inference stack.
    pub ram_bytes: u64,
    pub arena_bytes: u64,
    /// Measured stack below the caller of `infer` during one inference.
    pub stack_bytes: u64,
    /// The bound `compile` states for it ([`Program::stated_stack_bytes`], for C output
    /// [`Program::stated_c_stack_bytes`]).
    pub stated_stack_bytes: u64,
    /// The counter self-check (must read 3001).
    pub known_loop_instructions: u64,
    /// Instructions per window of the adaptive checks the harness measures beside the model
    /// (`signature`: kinglet-adapt-core's signature check), same image, same core.
    pub checks: std::collections::BTreeMap<String, u64>,
    /// [`Program::notes`] of the schedule that ran (e.g. sub-byte weights stored as int8).
    pub notes: Vec<String>,
}

/// Where firmware builds go unless told otherwise: kinglet's data folder (no checkout needed).
pub fn default_work_dir() -> PathBuf {
    crate::runtime_sources::data_dir().join("work/firmware")
}

/// The generated module plus the embedded test input, as the firmware includes it.
/// Float models run [`crate::testinput::float_test_input`] of `input`, a16w8 models its
/// [`crate::testinput::int16_test_input`].
pub fn firmware_module(compiled: &Compiled, input: &[i8]) -> String {
    with_test_input(compiled.rust_module.clone(), input, compiled.dsp.io)
}

pub(crate) fn with_test_input(module: String, input: &[i8], io: Elem) -> String {
    let mut s = module;
    let _ = write!(
        s,
        "\n/// Input the test application runs.\npub static TEST_INPUT: [InputElem; INPUT_LEN] = ["
    );
    let floats = crate::testinput::float_test_input(input);
    let wide = crate::testinput::int16_test_input(input);
    for (i, v) in input.iter().enumerate() {
        if i % 24 == 0 {
            s.push_str("\n    ");
        }
        let _ = match io {
            // Debug keeps the decimal point; the values are exact binary fractions.
            Elem::F32 => write!(s, "{:?}, ", floats[i]),
            Elem::I16 => write!(s, "{}, ", wide[i]),
            Elem::I8 => write!(s, "{v}, "),
        };
    }
    s.push_str("\n];\n");
    s
}

/// Builds and runs the bare harness (no model): the 3001-instruction check and the baseline
/// image size the model's flash is measured against.
/// Firmware builds of one work directory share one output path: a build and the run of its
/// ELF must not interleave with another (tests run in parallel threads).
static FIRMWARE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn firmware_lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no state to repair.
    FIRMWARE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Returns the report and a copy of the harness ELF (the next build overwrites the original).
pub fn run_harness(work_dir: &Path) -> Result<(FirmwareReport, PathBuf), CompileError> {
    run_harness_on(&CortexM4, work_dir)
}

/// [`run_harness`] on `target`.
pub fn run_harness_on(
    target: &dyn Target,
    work_dir: &Path,
) -> Result<(FirmwareReport, PathBuf), CompileError> {
    let _guard = firmware_lock();
    run_harness_locked(target, work_dir)
}

/// What a target's builds are called inside a work folder: nothing extra on the Cortex-M4
/// (its files keep their names), the target's name elsewhere.
fn target_suffix(target: &dyn Target) -> String {
    if target.triple() == CortexM4.triple() {
        String::new()
    } else {
        format!("-{}", target.name())
    }
}

fn run_harness_locked(
    target: &dyn Target,
    work_dir: &Path,
) -> Result<(FirmwareReport, PathBuf), CompileError> {
    let elf = qemu::build_firmware_for(
        target,
        None,
        None,
        FirmwareKernels::Dsp,
        &work_dir.join("target"),
    )?;
    let copy = work_dir.join(format!("harness{}.elf", target_suffix(target)));
    std::fs::copy(&elf, &copy).map_err(|e| CompileError::io(&copy, e))?;
    let report = qemu::parse_report(&qemu::run_qemu_on(target, &copy, Duration::from_secs(60))?)?;
    Ok((report, copy))
}

/// Source language of the firmware's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    Rust,
    /// The C99 output (Cortex-M4 schedule), compiled by arm-none-eabi-gcc.
    C,
}

/// Compiles `graph`, runs it in QEMU on `input` and measures it (a16w8 models on
/// [`crate::testinput::int16_test_input`] of `input`, float ones on its
/// [`crate::testinput::float_test_input`]). `kernels` applies to Rust output; C output always
/// runs its Cortex-M4 schedule. `input` holds the graph inputs end to
/// end in graph order (the LCG stream fills input 0, then input 1, …).
pub fn profile(
    graph: &Graph,
    model_name: &str,
    input: &[i8],
    kernels: FirmwareKernels,
    lang: Lang,
    work_dir: &Path,
) -> Result<Profile, CompileError> {
    profile_with(graph, model_name, input, kernels, lang, work_dir, true)
}

/// [`profile`]; `sparse_weights: false` compiles every weight dense (to measure what
/// compressing pruned weights saves).
pub fn profile_with(
    graph: &Graph,
    model_name: &str,
    input: &[i8],
    kernels: FirmwareKernels,
    lang: Lang,
    work_dir: &Path,
    sparse_weights: bool,
) -> Result<Profile, CompileError> {
    profile_on(
        &CortexM4,
        graph,
        model_name,
        input,
        kernels,
        lang,
        work_dir,
        sparse_weights,
    )
}

/// [`profile_with`] on `target`.
#[allow(clippy::too_many_arguments)]
pub fn profile_on(
    target: &dyn Target,
    graph: &Graph,
    model_name: &str,
    input: &[i8],
    kernels: FirmwareKernels,
    lang: Lang,
    work_dir: &Path,
    sparse_weights: bool,
) -> Result<Profile, CompileError> {
    let compiled = compile_with(graph, model_name, sparse_weights)?;
    if input.len() != compiled.dsp.input_len {
        return Err(CompileError::Run(format!(
            "input has {} values, {model_name} takes {}",
            input.len(),
            compiled.dsp.input_len
        )));
    }
    let (host_outputs, host_float_outputs) = host_reference(graph, compiled.dsp.io, input)?;
    if lang == Lang::C {
        if !target.runs_c() {
            return Err(CompileError::Run(format!(
                "the C output does not run on {} yet",
                target.name()
            )));
        }
        crate::emit_c::supports(&compiled.dsp)?;
    }
    let _guard = firmware_lock();
    let (_, baseline) = run_harness_locked(target, work_dir)?;
    let (tag, kernels) = match (lang, kernels) {
        (Lang::C, _) => ("c", FirmwareKernels::Dsp),
        (Lang::Rust, FirmwareKernels::Dsp) => (target.kernel_tag(), kernels),
        (Lang::Rust, FirmwareKernels::Reference) => ("reference", kernels),
    };
    let models = work_dir.join("models");
    let module_path = models.join(format!(
        "{}-{tag}{}.rs",
        sanitize(model_name),
        target_suffix(target)
    ));
    let c_path = match lang {
        Lang::Rust => {
            write_atomic(&module_path, firmware_module(&compiled, input).as_bytes())?;
            None
        }
        Lang::C => {
            let shim = crate::emit_c::firmware_shim(&compiled.dsp, model_name);
            write_atomic(
                &module_path,
                with_test_input(shim, input, compiled.dsp.io).as_bytes(),
            )?;
            let (_, c) = write_c(&compiled, model_name, &models.join("c"))?;
            Some(c.canonicalize().map_err(|e| CompileError::io(&c, e))?)
        }
    };
    let module_path = module_path
        .canonicalize()
        .map_err(|e| CompileError::io(&module_path, e))?;
    let elf = qemu::build_firmware_for(
        target,
        Some(&module_path),
        c_path.as_deref(),
        kernels,
        &work_dir.join("target"),
    )?;
    let size = qemu::image_size(&elf)?;
    let model_flash = qemu::added_flash(&elf, &baseline)?;
    let report = qemu::parse_report(&qemu::run_qemu_on(target, &elf, Duration::from_secs(120))?)?;
    let program = match (lang, kernels) {
        (Lang::Rust, FirmwareKernels::Reference) => &compiled.reference,
        _ => &compiled.dsp,
    };
    let instructions = report
        .instructions
        .ok_or_else(|| CompileError::Run("firmware reported no instruction count".into()))?;
    if report.probed_outputs_match != Some(true) {
        return Err(CompileError::Run(
            "the per-layer run gave different outputs".into(),
        ));
    }
    if report.layers.len() != program.layers.len() {
        return Err(CompileError::Run(format!(
            "firmware reported {} layers, the program has {}",
            report.layers.len(),
            program.layers.len()
        )));
    }
    let layers = program
        .layers
        .iter()
        .zip(&report.layers)
        .map(|(l, (_, n))| LayerProfile {
            name: l.name.clone(),
            macs: l.macs,
            instructions: *n,
        })
        .collect();
    let arena = report.arena_bytes.unwrap_or(0);
    let stack = report.inference_stack_bytes.unwrap_or(0);
    Ok(Profile {
        model: model_name.to_owned(),
        target: target.name().to_owned(),
        core: target.describe(),
        kernels: tag.to_owned(),
        macs: program.macs(),
        instructions,
        layers,
        outputs: report.outputs,
        host_outputs,
        float_outputs: report.float_outputs,
        host_float_outputs,
        flash_bytes: model_flash,
        flash_total_bytes: size.flash,
        model_constant_bytes: program.constant_bytes(),
        ram_bytes: arena + stack,
        arena_bytes: arena,
        stack_bytes: stack,
        stated_stack_bytes: match lang {
            Lang::Rust => program.stated_stack_bytes() as u64,
            Lang::C => program.stated_c_stack_bytes() as u64,
        },
        known_loop_instructions: report.known_loop,
        checks: report.checks.into_iter().collect(),
        notes: program.notes.clone(),
    })
}

/// The host interpreter's outputs for the test input the firmware derives from `input` for a
/// model with I/O type `io`: integer outputs (int8, int16) or float ones, the other empty.
pub fn host_reference(
    graph: &Graph,
    io: Elem,
    input: &[i8],
) -> Result<(Vec<i32>, Vec<f32>), CompileError> {
    Ok(match io {
        Elem::F32 => {
            let floats = crate::testinput::float_test_input(input);
            (Vec::new(), host_float_outputs(graph, &floats)?)
        }
        Elem::I16 => (
            host_outputs_i16(graph, &crate::testinput::int16_test_input(input))?,
            Vec::new(),
        ),
        Elem::I8 => (host_outputs(graph, input)?, Vec::new()),
    })
}

/// Outputs of kinglet-graph's host interpreter for `input` (the graph inputs end to end, in
/// graph order, as the compiled model takes them).
pub fn host_outputs(graph: &Graph, input: &[i8]) -> Result<Vec<i32>, CompileError> {
    Ok(run_host::<i8>(graph, input)?
        .into_iter()
        .map(i32::from)
        .collect())
}

/// [`host_outputs`] for an a16w8 model (int16 inputs and output).
pub fn host_outputs_i16(graph: &Graph, input: &[i16]) -> Result<Vec<i32>, CompileError> {
    Ok(run_host::<i16>(graph, input)?
        .into_iter()
        .map(i32::from)
        .collect())
}

/// Output 0 of kinglet-graph's host interpreter on `graph` fed `input` (its inputs end to end).
fn run_host<T: kinglet_graph::Element>(graph: &Graph, input: &[T]) -> Result<Vec<T>, CompileError> {
    let host = |e: kinglet_graph::GraphError| CompileError::Run(format!("host interpreter: {e}"));
    let mut interp = kinglet_graph::Interpreter::new(graph).map_err(host)?;
    let mut rest = input;
    for (slot, &id) in graph.inputs.iter().enumerate() {
        let len = graph.tensor(id).elements();
        let Some((part, tail)) = rest.split_at_checked(len) else {
            return Err(CompileError::Run(format!(
                "input has {} values, fewer than the graph inputs need",
                input.len()
            )));
        };
        interp.set_input(slot, part).map_err(host)?;
        rest = tail;
    }
    interp.invoke().map_err(host)?;
    interp.output::<T>(0).map_err(host)
}

/// Outputs of kinglet-graph's host interpreter for a float model (float32, float16 weights —
/// widened first, as `kinglet eval` does — or dynamic range); `input` holds the graph inputs
/// end to end.
pub fn host_float_outputs(graph: &Graph, input: &[f32]) -> Result<Vec<f32>, CompileError> {
    let folded;
    let graph = if graph
        .tensors
        .iter()
        .any(|t| t.dtype == kinglet_graph::DType::F16)
    {
        folded = kinglet_graph::passes::fold_constants(graph, Default::default())
            .map_err(|e| CompileError::Run(format!("widening float16 weights: {e}")))?
            .0;
        &folded
    } else {
        graph
    };
    run_host::<f32>(graph, input)
}
