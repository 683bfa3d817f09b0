//! Runs a `.tflite` model with kinglet's interpreter over raw input windows, for
//! `scripts/tflite_diff.py`. The input file holds, per window, every graph input's raw
//! little-endian bytes in input order; the output file receives, per window, every graph
//! output's raw bytes in output order.
//!
//! `cargo run --release -p kinglet-graph --example tflite_run -- <model> <inputs.bin> <outputs.bin>`
//! With `KINGLET_ALL_TENSORS=1`, every op's output (in op order) is written instead, to find
//! the first op that differs. `KINGLET_TFLITE_KERNELS=default|builtin|reference` picks the
//! TFLite configuration to reproduce (default: builtin).

use std::path::Path;

use kinglet_graph::Interpreter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, inputs, outputs] = args.as_slice() else {
        return Err("usage: tflite_run <model.tflite> <inputs.bin> <outputs.bin>".into());
    };
    let mut graph = kinglet_graph::tflite::read_tflite_file(Path::new(model))?;
    if std::env::var_os("KINGLET_ALL_TENSORS").is_some() {
        graph.outputs = graph.ops.iter().map(|o| o.outputs[0]).collect();
    }
    let kernels: kinglet_graph::TfliteKernels = std::env::var("KINGLET_TFLITE_KERNELS")
        .unwrap_or_else(|_| "builtin".into())
        .parse()?;
    let mut it = Interpreter::with_kernels(&graph, kernels)?;
    let in_sizes: Vec<usize> = graph
        .inputs
        .iter()
        .map(|t| graph.tensor(*t).byte_size())
        .collect();
    let window: usize = in_sizes.iter().sum();
    let data = std::fs::read(inputs)?;
    if window == 0 || data.len() % window != 0 {
        return Err(format!(
            "{inputs}: {} bytes is not a whole number of {window}-byte windows",
            data.len()
        )
        .into());
    }
    let mut out = Vec::new();
    for w in data.chunks_exact(window) {
        let mut at = 0;
        for (i, n) in in_sizes.iter().enumerate() {
            it.set_input_bytes(i, &w[at..at + n])?;
            at += n;
        }
        it.invoke()?;
        for i in 0..graph.outputs.len() {
            out.extend_from_slice(it.output_bytes(i)?);
        }
    }
    std::fs::write(outputs, out)?;
    Ok(())
}
