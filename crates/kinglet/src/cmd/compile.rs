//! `kinglet compile <model> --target cortex-m4|cortex-m3|riscv32 --lang rust|c --out DIR`:
//! allocation-free firmware source for a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kinglet_compile::firmware::{compile, write_c, write_rust_crate};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Target {
    /// Cortex-M4F (thumbv7em-none-eabihf): DSP kernels (SMLAD).
    CortexM4,
    /// Cortex-M3 (thumbv7m-none-eabi): the same kernels with MLA inner loops.
    CortexM3,
    /// RISC-V rv32imc (riscv32imc-unknown-none-elf): the same kernels, MUL/ADD inner loops.
    Riscv32,
}

impl Target {
    /// kinglet-compile's description of the core.
    pub fn core(self) -> &'static dyn kinglet_compile::target::Target {
        match self {
            Target::CortexM4 => &kinglet_compile::target::CortexM4,
            Target::CortexM3 => &kinglet_compile::target::CortexM3,
            Target::Riscv32 => &kinglet_compile::target::Riscv32,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Lang {
    /// A `#![no_std]` crate depending on kinglet-micro and kinglet-m4.
    Rust,
    /// Self-contained C99 (`<name>.h`, `<name>.c`, kernels included).
    C,
}

#[derive(Args)]
pub struct CompileArgs {
    /// Model to compile (`.tflite`, or a trained `.kgl` model, lowered first).
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "cortex-m4")]
    pub target: Target,
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: CompileArgs) -> Result<()> {
    // One source serves every core: the kernel crate picks each core's inner loops when it is
    // built for that core's triple.
    let core = args.target.core();
    let graph = crate::cmd::export::load_graph(&args.model)?;
    let name = args
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let compiled =
        compile(&graph, &name).with_context(|| format!("compiling {}", args.model.display()))?;
    // Sub-byte weights a packed kernel cannot run are stored as int8: say so.
    for note in &compiled.dsp.notes {
        eprintln!("note: {note}");
    }
    if let Lang::Rust = args.lang {
        for note in &compiled.reference.notes {
            eprintln!("note: reference schedule (hosts and other targets): {note}");
        }
    }
    match args.lang {
        Lang::Rust => {
            let crate_name = write_rust_crate(&compiled, &name, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote crate {crate_name} to {} for {} (cargo build --release --target {}): arena {} B (kinglet-m4 schedule) / {} B (reference), stack at most {} B / {} B (STACK_BYTES), {} B of constants, {} MACs",
                args.out.display(),
                core.core(),
                core.triple(),
                compiled.dsp.arena_bytes,
                compiled.reference.arena_bytes,
                compiled.dsp.stated_stack_bytes(),
                compiled.reference.stated_stack_bytes(),
                compiled.dsp.constant_bytes(),
                compiled.dsp.macs()
            );
        }
        Lang::C => {
            let (h, c) = write_c(&compiled, &name, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} and {} for {}: arena {} B, stack at most {} B ({}_STACK_BYTES, arm-none-eabi-gcc -O2), {} B of constants, {} MACs (C99; SMLAD where __ARM_FEATURE_DSP)",
                h.display(),
                c.display(),
                core.core(),
                compiled.dsp.arena_bytes,
                compiled.dsp.stated_c_stack_bytes(),
                kinglet_compile::emit_c::c_prefix(&name).to_uppercase(),
                compiled.dsp.constant_bytes(),
                compiled.dsp.macs()
            );
        }
    }
    Ok(())
}
