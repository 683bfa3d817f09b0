//! Builds the QEMU test application (`firmware/qemu-app`) around a generated model, runs it on
//! the emulated Cortex-M4F board `mps2-an386` and parses its semihosting report.
//!
//! Needs `cargo` with the `thumbv7em-none-eabihf` target and `qemu-system-arm` on `PATH`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::CompileError;

/// Which kernels the firmware's compiled model calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FirmwareKernels {
    /// kinglet-m4 DSP kernels (the default on Cortex-M4).
    Dsp,
    /// kinglet-micro reference kernels, forced on the same board for comparison.
    Reference,
}

/// The firmware test application's cargo project.
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/qemu-app")
}

/// kinglet-micro's source directory (generated crates depend on it by path).
pub fn micro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-micro")
}

/// kinglet-m4's source directory.
pub fn m4_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime-m4")
}

/// Builds the firmware (release, thumbv7em-none-eabihf) into `target_dir`; with `model_rs`
/// (a generated module plus a `TEST_INPUT` array) it runs that model, without it only the
/// counter self-test. Returns the ELF path.
/// With `model_c` the model is that C file (compiled by arm-none-eabi-gcc in the firmware's
/// build script) and `model_rs` its FFI shim.
pub fn build_firmware(
    model_rs: Option<&Path>,
    model_c: Option<&Path>,
    kernels: FirmwareKernels,
    target_dir: &Path,
) -> Result<PathBuf, CompileError> {
    let dir = firmware_dir();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The project's .cargo/config.toml (target, linker script) is found from the working
    // directory; flags inherited from an outer cargo must not override it.
    cmd.current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env(
            "KINGLET_MODEL_RS",
            model_rs
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        )
        .env(
            "KINGLET_MODEL_C",
            model_c
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        )
        .env(
            "KINGLET_KERNELS",
            match kernels {
                FirmwareKernels::Dsp => "dsp",
                FirmwareKernels::Reference => "reference",
            },
        );
    let out = cmd.output().map_err(|e| CompileError::Tool {
        tool: "cargo".into(),
        message: format!("cannot start cargo for {}: {e}", dir.display()),
    })?;
    if !out.status.success() {
        return Err(CompileError::Tool {
            tool: "cargo build (firmware)".into(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(target_dir.join("thumbv7em-none-eabihf/release/kinglet-qemu-app"))
}

/// Runs `elf` on QEMU's mps2-an386 with `-icount shift=7` and returns its semihosting output.
pub fn run_qemu(elf: &Path, timeout: Duration) -> Result<String, CompileError> {
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args([
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=7",
            "-kernel",
        ])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CompileError::Tool {
            tool: "qemu-system-arm".into(),
            message: format!("cannot start (is the qemu-system-arm package installed?): {e}"),
        })?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| CompileError::Run(e.to_string()))?
        {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CompileError::Run(format!(
                "{} did not finish within {} s",
                elf.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    if !status.success() {
        return Err(CompileError::Run(format!(
            "firmware exited with {status}: {}{}",
            stdout.trim(),
            stderr.trim()
        )));
    }
    Ok(stdout)
}

/// What the firmware reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FirmwareReport {
    /// Instructions counted for the 3001-instruction reference loop.
    pub known_loop: u64,
    /// Timer ticks between two back-to-back reads (subtracted from every region).
    pub empty_region_ticks: u64,
    /// Instructions of one inference (absent without a model).
    pub instructions: Option<u64>,
    /// Per layer: name and instructions (probe cost subtracted).
    pub layers: Vec<(String, u64)>,
    pub outputs: Vec<i32>,
    pub arena_bytes: Option<u64>,
    /// Deepest stack use of the whole program (from the reset stack pointer).
    pub stack_peak_bytes: u64,
    /// Stack used below the caller's frame during inference.
    pub inference_stack_bytes: Option<u64>,
    /// The per-layer (probed) run gave the same outputs.
    pub probed_outputs_match: Option<bool>,
}

fn num(line: &str, token: Option<&str>) -> Result<u64, CompileError> {
    token
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| CompileError::Run(format!("malformed firmware line: {line:?}")))
}

/// Parses the `KINGLET ...` lines; errors if the run did not reach `KINGLET done`.
pub fn parse_report(text: &str) -> Result<FirmwareReport, CompileError> {
    let mut r = FirmwareReport::default();
    let mut done = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("KINGLET ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        match it.next() {
            Some("empty_region_ticks") => r.empty_region_ticks = num(line, it.next())?,
            Some("known_loop") => r.known_loop = num(line, it.next())?,
            Some("instructions") => r.instructions = Some(num(line, it.next())?),
            Some("arena_bytes") => r.arena_bytes = Some(num(line, it.next())?),
            Some("stack_peak_bytes") => r.stack_peak_bytes = num(line, it.next())?,
            Some("inference_stack_bytes") => r.inference_stack_bytes = Some(num(line, it.next())?),
            Some("layer") => {
                let _index = num(line, it.next())?;
                let name = it.next().unwrap_or("?").to_owned();
                r.layers.push((name, num(line, it.next())?));
            }
            Some("outputs") => {
                r.outputs = it
                    .map(|v| {
                        v.parse()
                            .map_err(|_| CompileError::Run(format!("malformed output in {line:?}")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            Some("probed_outputs_match") => {
                r.probed_outputs_match = Some(it.next() == Some("true"))
            }
            Some("done") => done = true,
            Some("error") => return Err(CompileError::Run(format!("firmware reported: {rest}"))),
            _ => {}
        }
    }
    if !done {
        return Err(CompileError::Run(format!(
            "firmware did not finish; output:\n{text}"
        )));
    }
    Ok(r)
}

/// Flash and RAM of a firmware image, from its ELF section headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageSize {
    /// `.vector_table` + `.text` + `.rodata` + `.data` (its load image lives in flash).
    pub flash: u64,
    /// `.data` + `.bss` + `.uninit`.
    pub static_ram: u64,
}

pub fn image_size(elf: &Path) -> Result<ImageSize, CompileError> {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(elf).map_err(|e| CompileError::io(elf, e))?;
    let file = object::File::parse(&*bytes).map_err(|e| CompileError::io(elf, e))?;
    let mut size = ImageSize::default();
    for section in file.sections() {
        let name = section.name().unwrap_or("");
        match name {
            ".vector_table" | ".text" | ".rodata" => size.flash += section.size(),
            ".data" => {
                size.flash += section.size();
                size.static_ram += section.size();
            }
            ".bss" | ".uninit" => size.static_ram += section.size(),
            _ => {}
        }
    }
    Ok(size)
}

/// Flash taken by what `elf` has and `baseline` lacks: the sizes of code and constant symbols
/// whose names the bare harness does not have (the model's schedule, weights, kernels and the
/// runtime routines they pull in). The harness's own per-layer reporting, inlined into its
/// `main`, is not counted.
pub fn added_flash(elf: &Path, baseline: &Path) -> Result<u64, CompileError> {
    use object::{Object, ObjectSection, ObjectSymbol};
    use std::collections::HashSet;
    let read = |p: &Path| std::fs::read(p).map_err(|e| CompileError::io(p, e));
    let (a, b) = (read(elf)?, read(baseline)?);
    let fa = object::File::parse(&*a).map_err(|e| CompileError::io(elf, e))?;
    let fb = object::File::parse(&*b).map_err(|e| CompileError::io(baseline, e))?;
    let in_flash = |f: &object::File, sym: &object::Symbol| {
        sym.section_index()
            .and_then(|i| f.section_by_index(i).ok())
            .is_some_and(|s| matches!(s.name(), Ok(".text" | ".rodata" | ".data")))
    };
    let known: HashSet<&str> = fb.symbols().filter_map(|s| s.name().ok()).collect();
    let mut seen = HashSet::new();
    Ok(fa
        .symbols()
        .filter(|s| s.size() > 0 && in_flash(&fa, s))
        .filter_map(|s| {
            let name = s.name().ok()?;
            // The embedded test input belongs to the harness, not to the model.
            let fresh = !known.contains(name) && !name.contains("TEST_INPUT");
            (fresh && seen.insert((name, s.address()))).then_some(s.size())
        })
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parsing_needs_done_and_reads_fields() {
        let text = "KINGLET empty_region_ticks 3\nKINGLET known_loop 3001 ticks 9606\nKINGLET arena_bytes 100\n\
                    KINGLET instructions 1234\nKINGLET layer 0 CONV_2D 1000\nKINGLET outputs -44 70\n\
                    KINGLET probed_outputs_match true\nKINGLET stack_peak_bytes 320\nKINGLET done\n";
        let r = parse_report(text).unwrap();
        assert_eq!(r.known_loop, 3001);
        assert_eq!(r.instructions, Some(1234));
        assert_eq!(r.layers, vec![("CONV_2D".to_owned(), 1000)]);
        assert_eq!(r.outputs, vec![-44, 70]);
        assert!(parse_report("KINGLET known_loop 3001\n").is_err());
        assert!(parse_report("KINGLET known_loop x\nKINGLET done").is_err());
    }
}
