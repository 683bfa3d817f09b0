//! The embedded cores kinglet measures on, as one trait: each names its Rust target triple,
//! the QEMU board that emulates it and how the firmware counts instructions there; everything
//! else (the schedule, the build of the test application, the report) is shared, so a new
//! core is a few lines here and never a fork of the compile path.

use std::ffi::OsString;

use crate::program::KernelSet;

/// How the firmware turns emulated time into an exact instruction count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The CMSDK APB timer0 (25 MHz) of the MPS2 boards under `-icount shift=7`: 128 ns per
    /// instruction, 3.2 ticks each (firmware/README.md).
    CmsdkTimer,
    /// The RISC-V `minstret` CSR, which QEMU advances by exactly one per retired instruction
    /// under `-icount`.
    Minstret,
}

impl Counter {
    /// One line for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Counter::CmsdkTimer => "-icount shift=7, CMSDK timer",
            Counter::Minstret => "-icount shift=0, minstret",
        }
    }
}

/// A core kinglet compiles for and runs on in QEMU. The provided methods are the Cortex-M4's
/// choices; a core overrides only what differs.
pub trait Target: Sync + std::fmt::Debug {
    /// The `--target` value.
    fn name(&self) -> &'static str;
    /// The core, as reports name it.
    fn core(&self) -> &'static str;
    /// Rust target triple the firmware is built for.
    fn triple(&self) -> &'static str;
    /// QEMU `-M` board.
    fn qemu_machine(&self) -> &'static str;
    /// How this core's kernels are called in reports (`kernels` of a profile).
    fn kernel_tag(&self) -> &'static str;

    /// QEMU system emulator.
    fn qemu_system(&self) -> &'static str {
        "qemu-system-arm"
    }

    fn counter(&self) -> Counter {
        Counter::CmsdkTimer
    }

    /// The optimised schedule: kinglet-m4's kernels where the shape fits (each core runs its
    /// own inner loops of them, chosen when the kernel crate is built for its triple).
    fn kernel_set(&self) -> KernelSet {
        KernelSet::CortexM4
    }

    /// Whether the C99 output can be built and run on this core by the test application.
    fn runs_c(&self) -> bool {
        true
    }

    /// The test application's folder inside the unpacked firmware project.
    fn firmware_app(&self) -> &'static str {
        "qemu-app"
    }

    /// QEMU's arguments up to and including `-kernel` (the ELF follows): semihosting output,
    /// no serial port, and the instruction-counted clock the counter relies on.
    fn qemu_args(&self) -> Vec<OsString> {
        [
            "-M",
            self.qemu_machine(),
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=7",
            "-kernel",
        ]
        .into_iter()
        .map(OsString::from)
        .collect()
    }

    /// `Core (QEMU board, counting method)` for report headers.
    fn describe(&self) -> String {
        format!(
            "{} (QEMU {}, {})",
            self.core(),
            self.qemu_machine(),
            self.counter().describe()
        )
    }
}

/// Cortex-M4F: DSP extension (`SMLAD`, `SXTB16`), single-precision FPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct CortexM4;

impl Target for CortexM4 {
    fn name(&self) -> &'static str {
        "cortex-m4"
    }
    fn core(&self) -> &'static str {
        "Cortex-M4F"
    }
    fn triple(&self) -> &'static str {
        "thumbv7em-none-eabihf"
    }
    fn qemu_machine(&self) -> &'static str {
        "mps2-an386"
    }
    fn kernel_tag(&self) -> &'static str {
        "dsp"
    }
}

/// Cortex-M3: ARMv7-M without the DSP extension or an FPU. Same MPS2 board family, memory map
/// and CMSDK timer as the M4, so the counter and the test application carry over unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct CortexM3;

impl Target for CortexM3 {
    fn name(&self) -> &'static str {
        "cortex-m3"
    }
    fn core(&self) -> &'static str {
        "Cortex-M3"
    }
    fn triple(&self) -> &'static str {
        "thumbv7m-none-eabi"
    }
    fn qemu_machine(&self) -> &'static str {
        "mps2-an385"
    }
    fn kernel_tag(&self) -> &'static str {
        "m3"
    }
}

/// RISC-V rv32imc: no SIMD and no multiply-accumulate, so every MAC is a `MUL` and an `ADD`.
/// QEMU's `virt` board with its own small test application (`firmware/qemu-app-riscv`,
/// semihosting output like the Arm one) and `minstret` as the counter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Riscv32;

impl Target for Riscv32 {
    fn name(&self) -> &'static str {
        "riscv32"
    }
    fn core(&self) -> &'static str {
        "RISC-V rv32imc"
    }
    fn triple(&self) -> &'static str {
        "riscv32imc-unknown-none-elf"
    }
    fn qemu_machine(&self) -> &'static str {
        "virt"
    }
    fn kernel_tag(&self) -> &'static str {
        "rv32"
    }
    fn qemu_system(&self) -> &'static str {
        "qemu-system-riscv32"
    }
    fn counter(&self) -> Counter {
        Counter::Minstret
    }
    /// The C output needs a RISC-V C cross-compiler, which CI does not install.
    fn runs_c(&self) -> bool {
        false
    }
    fn firmware_app(&self) -> &'static str {
        "qemu-app-riscv"
    }
    /// No firmware (`-bios none`: the hart starts at the image), and one nanosecond per
    /// instruction so `minstret` counts instructions.
    fn qemu_args(&self) -> Vec<OsString> {
        [
            "-M",
            self.qemu_machine(),
            "-bios",
            "none",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-kernel",
        ]
        .into_iter()
        .map(OsString::from)
        .collect()
    }
}

/// Every core kinglet runs on, the default first.
pub const TARGETS: &[&dyn Target] = &[&CortexM4, &CortexM3, &Riscv32];

/// The core named `name` (a `--target` value).
pub fn by_name(name: &str) -> Option<&'static dyn Target> {
    TARGETS.iter().copied().find(|t| t.name() == name)
}

/// The `--target` values, for messages.
pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|t| t.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_found_by_its_name_and_names_differ() {
        for t in TARGETS {
            assert_eq!(by_name(t.name()).map(|f| f.triple()), Some(t.triple()));
        }
        let mut triples: Vec<_> = TARGETS.iter().map(|t| t.triple()).collect();
        triples.sort_unstable();
        triples.dedup();
        assert_eq!(triples.len(), TARGETS.len());
        assert!(by_name("cortex-m0").is_none());
    }

    #[test]
    fn qemu_arguments_end_with_the_kernel_flag_and_name_the_board() {
        for t in TARGETS {
            let args = t.qemu_args();
            assert_eq!(args.last().map(|a| a.as_os_str()), Some("-kernel".as_ref()));
            assert!(args.iter().any(|a| a == t.qemu_machine()), "{t:?}");
        }
    }
}
