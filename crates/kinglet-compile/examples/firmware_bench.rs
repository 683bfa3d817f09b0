//! Regenerates the Cortex-M4 comparison table of BENCHMARKS.md: every model compiled by
//! kinglet and run on QEMU mps2-an386 (Cortex-M4F, `-icount shift=7`, exact counts) with the
//! DSP kernels, the reference kernels and the C99 output, beside the TensorFlow Lite Micro +
//! CMSIS-NN anchors of issue 4.
//!
//! `cargo run --release -p kinglet-compile --example firmware_bench [-- MODEL.tflite ...]`
//! (default: the two int8 seed models). Prints Markdown.
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, default_work_dir, profile};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input_for;
use kinglet_graph::Graph;

/// TFLite Micro + CMSIS-NN on the same board (issue 4): instructions, whole-program flash.
fn anchor(name: &str) -> Option<(u64, &'static str)> {
    match name {
        "B_s123_1IN_int8.tflite" => Some((322_643, "80.9 kB")),
        "S0_s3_int8.tflite" => Some((135_066, "74.2 kB")),
        _ => None,
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
        "| model | build | instructions | vs TFLM+CMSIS-NN | flash, model+kernels | RAM (arena + stack) | outputs |"
    );
    println!("|---|---|---:|---:|---:|---:|---|");
    for path in &models {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let graph = Graph::from_tflite_bytes(&std::fs::read(path)?)?;
        let input = lcg_input_for(&graph);
        if let Some((instr, flash)) = anchor(&name) {
            println!(
                "| `{name}` | TFLM + CMSIS-NN (anchor) | {instr} | 1.00× | {flash} (whole program) | see issue 4 | |"
            );
        }
        for (label, kernels, lang) in [
            (
                "kinglet Rust, M4 DSP kernels",
                FirmwareKernels::Dsp,
                Lang::Rust,
            ),
            (
                "kinglet C99 (gcc -O2), M4 schedule",
                FirmwareKernels::Dsp,
                Lang::C,
            ),
            (
                "kinglet Rust, reference kernels",
                FirmwareKernels::Reference,
                Lang::Rust,
            ),
        ] {
            let p = profile(&graph, &name, &input, kernels, lang, &default_work_dir())?;
            let ratio = anchor(&name).map_or("–".to_owned(), |(a, _)| {
                format!("{:.2}×", p.instructions as f64 / a as f64)
            });
            let outs: Vec<String> = p.outputs.iter().map(i32::to_string).collect();
            println!(
                "| `{name}` | {label} | {} | {ratio} | {:.1} kB | {} B ({} + {}) | `{}` |",
                p.instructions,
                p.flash_bytes as f64 / 1000.0,
                p.ram_bytes,
                p.arena_bytes,
                p.stack_bytes,
                outs.join(" ")
            );
        }
    }
    Ok(())
}
