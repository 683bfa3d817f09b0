//! Regenerates the Cortex-M3 and RISC-V table of BENCHMARKS.md (issue 15): every model
//! compiled by kinglet and run on QEMU mps2-an385 (Cortex-M3, CMSDK timer) and QEMU virt
//! (rv32imc, minstret), exact counts, beside TensorFlow Lite Micro on the same cores.
//!
//! `cargo run --release -p kinglet-compile --example cores_bench [-- MODEL.tflite ...]`
//! (default: the two int8 seed models). Prints Markdown.
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, default_work_dir, profile_on};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::target::{CortexM3, Riscv32, Target};
use kinglet_compile::testinput::lcg_input_for;
use kinglet_graph::Graph;

/// TensorFlow Lite Micro on the same core (issue 15): build and instructions per inference.
/// The first one is what the goal ratio is taken against.
fn anchors(target: &str, model: &str) -> &'static [(&'static str, u64)] {
    match (target, model) {
        ("cortex-m3", "B_s123_1IN_int8.tflite") => &[
            ("TFLM + CMSIS-NN (C paths without DSP)", 379_283),
            ("TFLM reference kernels", 896_359),
        ],
        ("cortex-m3", "S0_s3_int8.tflite") => &[
            ("TFLM + CMSIS-NN (C paths without DSP)", 139_929),
            ("TFLM reference kernels", 265_922),
        ],
        ("riscv32", "B_s123_1IN_int8.tflite") => {
            &[("TFLM reference kernels (rv32imac, gcc -O2)", 1_032_001)]
        }
        ("riscv32", "S0_s3_int8.tflite") => {
            &[("TFLM reference kernels (rv32imac, gcc -O2)", 286_443)]
        }
        _ => &[],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seed-models/int8");
    let mut models: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if models.is_empty() {
        models = vec![
            seeds.join("B_s123_1IN_int8.tflite"),
            seeds.join("S0_s3_int8.tflite"),
        ];
    }
    println!(
        "| model | core | build | instructions | vs first TFLM row | flash, model+kernels | RAM (arena + stack) | outputs = host |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---|");
    let targets: [&dyn Target; 2] = [&CortexM3, &Riscv32];
    for path in &models {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let graph = Graph::from_tflite_bytes(&std::fs::read(path)?)?;
        let input = lcg_input_for(&graph);
        for target in targets {
            let anchors = anchors(target.name(), &name);
            for (label, instructions) in anchors {
                println!(
                    "| `{name}` | {} | {label} | {instructions} | | | | |",
                    target.name()
                );
            }
            let mut builds = vec![
                (
                    format!("kinglet Rust, {} kernels", target.kernel_tag()),
                    FirmwareKernels::Dsp,
                    Lang::Rust,
                ),
                (
                    "kinglet Rust, reference kernels".to_owned(),
                    FirmwareKernels::Reference,
                    Lang::Rust,
                ),
            ];
            if target.runs_c() {
                builds.push((
                    "kinglet C99 (gcc -O2)".to_owned(),
                    FirmwareKernels::Dsp,
                    Lang::C,
                ));
            }
            for (label, kernels, lang) in builds {
                let p = profile_on(
                    target,
                    &graph,
                    &name,
                    &input,
                    kernels,
                    lang,
                    &default_work_dir(),
                    true,
                )?;
                let ratio = anchors.first().map_or("–".to_owned(), |(_, a)| {
                    format!("{:.2}×", p.instructions as f64 / *a as f64)
                });
                let outs: Vec<String> = p.outputs.iter().map(i32::to_string).collect();
                println!(
                    "| `{name}` | {} | {label} | {} | {ratio} | {:.1} kB | {} + {} B | `{}` {} |",
                    target.name(),
                    p.instructions,
                    p.flash_bytes as f64 / 1000.0,
                    p.arena_bytes,
                    p.stack_bytes,
                    outs.join(" "),
                    if p.outputs == p.host_outputs {
                        "yes"
                    } else {
                        "NO"
                    }
                );
            }
        }
    }
    Ok(())
}
