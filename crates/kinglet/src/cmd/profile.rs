//! `kinglet profile <model> --target cortex-m4|cortex-m3|riscv32 [--json]`: compile, run in
//! QEMU (mps2-an386 for the Cortex-M4F, mps2-an385 for the Cortex-M3, virt for RISC-V rv32imc)
//! on the fixed LCG input, report exact instructions, flash and RAM.
//! Multi-input models (e.g. the three-branch Big model) take one LCG byte stream that fills
//! graph input 0, then input 1, …, exactly as the compiled model's end-to-end input array.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::{Args, ValueEnum};
use kinglet_compile::firmware::{self, default_work_dir};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;

use super::compile::{Lang, Target};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kernels {
    /// kinglet-m4's kernels with the core's inner loops (what the compiled model uses).
    Dsp,
    /// kinglet-micro reference kernels on the same core, for comparison.
    Reference,
}

#[derive(Args)]
pub struct ProfileArgs {
    /// Model to profile (`.tflite`, or a trained `.kgl` model, lowered first).
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "cortex-m4")]
    pub target: Target,
    /// Kernels of the Rust output (C output always runs its kinglet-m4 schedule).
    #[arg(long, value_enum, default_value = "dsp")]
    pub kernels: Kernels,
    /// Run the Rust output or the C99 output (compiled with arm-none-eabi-gcc).
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where firmware builds go (default: work/firmware in kinglet's data folder,
    /// `$KINGLET_HOME` or ~/.cache/kinglet).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Print the profile as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compile every weight dense. By default a fully-connected layer or convolution whose
    /// weights are mostly exact zeros (`kinglet prune`) keeps only the non-zero ones in flash
    /// and runs a sparse kernel where that saves flash; this measures what it saves.
    #[arg(long)]
    pub dense_weights: bool,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let core = args.target.core();
    let graph = crate::cmd::export::load_graph(&args.model)?;
    let name = args
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if graph.inputs.is_empty() {
        anyhow::bail!("{}: model has no input", args.model.display());
    }
    // One LCG byte stream fills input 0, then input 1, … (the compiled model's input order).
    let input_len = graph
        .inputs
        .iter()
        .map(|&id| graph.tensor(id).elements())
        .sum();
    let input = lcg_input(input_len);
    let kernels = match args.kernels {
        Kernels::Dsp => FirmwareKernels::Dsp,
        Kernels::Reference => FirmwareKernels::Reference,
    };
    let lang = match args.lang {
        Lang::Rust => firmware::Lang::Rust,
        Lang::C => firmware::Lang::C,
    };
    let work_dir = args.work_dir.unwrap_or_else(default_work_dir);
    let p = firmware::profile_on(
        core,
        &graph,
        &name,
        &input,
        kernels,
        lang,
        &work_dir,
        !args.dense_weights,
    )
    .with_context(|| {
        format!(
            "profiling {} on QEMU {}",
            args.model.display(),
            core.qemu_machine()
        )
    })?;
    for note in &p.notes {
        eprintln!("note: {note}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        println!("{} on {}, {} kernels", p.model, p.core, p.kernels);
        println!(
            "  instructions/inference  {:>9}   ({} MACs)",
            p.instructions, p.macs
        );
        for (i, l) in p.layers.iter().enumerate() {
            println!(
                "    layer {i:<2} {:<22} {:>9}   ({} MACs)",
                l.name, l.instructions, l.macs
            );
        }
        println!(
            "  flash, model + kernels  {:>9} B (whole test image {} B)",
            p.flash_bytes, p.flash_total_bytes
        );
        println!(
            "  RAM                     {:>9} B (arena {} B + stack {} B; compile states at most {} B)",
            p.ram_bytes, p.arena_bytes, p.stack_bytes, p.stated_stack_bytes
        );
        let outs: Vec<String> = if p.float_outputs.is_empty() {
            p.outputs.iter().map(i32::to_string).collect()
        } else {
            p.float_outputs.iter().map(f32::to_string).collect()
        };
        println!("  outputs                 {}", outs.join(" "));
    }
    // Float outputs compare as bit patterns: exactly, NaN included.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    ensure!(
        bits(&p.float_outputs) == bits(&p.host_float_outputs),
        "QEMU float outputs {:?} differ from the host interpreter's {:?}",
        p.float_outputs,
        p.host_float_outputs
    );
    ensure!(
        p.outputs == p.host_outputs,
        "QEMU outputs {:?} differ from the host interpreter's {:?}",
        p.outputs,
        p.host_outputs
    );
    ensure!(
        p.known_loop_instructions == 3001,
        "instruction counter self-check failed"
    );
    Ok(())
}
