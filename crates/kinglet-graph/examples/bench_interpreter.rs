//! Host throughput of kinglet's interpreter on one model (windows/s), for BENCHMARKS.md.
//! Inputs are the seed README's LCG bytes, a new window per invocation.
//!
//! `cargo run --release -p kinglet-graph --example bench_interpreter -- <model.tflite> [windows]`
//! Compare with `python3 scripts/tflite_bench.py <model.tflite> [windows]`.

use std::time::Instant;

use kinglet_graph::{DType, Interpreter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: bench_interpreter <model.tflite> [windows]")?;
    let windows: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let graph = kinglet_graph::tflite::read_tflite_file(std::path::Path::new(&path))?;
    let mut it = Interpreter::new(&graph)?;
    let sizes: Vec<(usize, DType)> = graph
        .inputs
        .iter()
        .map(|t| (graph.tensor(*t).byte_size(), graph.tensor(*t).dtype))
        .collect();
    let total: usize = sizes.iter().map(|s| s.0).sum();
    let mut s: u32 = 12345;
    let stream: Vec<u8> = (0..total * 64)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((s >> 16) & 0xff) as u8
        })
        .collect();
    let mut checksum = 0u64;
    let start = Instant::now();
    for w in 0..windows {
        let mut at = (w % 64) * total;
        for (i, (size, _)) in sizes.iter().enumerate() {
            it.set_input_bytes(i, &stream[at..at + size])?;
            at += size;
        }
        it.invoke()?;
        checksum += it.output_bytes(0)?.iter().map(|b| *b as u64).sum::<u64>();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{path}: {windows} windows in {secs:.3} s = {:.0} windows/s ({:.2} µs each; arena {} B; checksum {checksum})",
        windows as f64 / secs,
        1e6 * secs / windows as f64,
        it.plan().arena_bytes()
    );
    Ok(())
}
