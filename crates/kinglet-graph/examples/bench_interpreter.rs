//! Host throughput of kinglet's interpreter (windows/s), for BENCHMARKS.md, in each TFLite
//! kernel configuration: one `set_input_bytes` + `invoke` + `output_bytes` per window, and
//! [`Interpreter::invoke_batch`] on 1 and 2 threads.
//!
//! Inputs: `windows` distinct windows of the seed README's LCG byte stream (window w = bytes
//! `[w·n, (w+1)·n)` over all graph inputs), run `reps` times; `scripts/tflite_bench.py` feeds
//! the TFLite interpreter the same windows.
//!
//! `cargo run --release -p kinglet-graph --example bench_interpreter -- <model.tflite> [windows] [reps]`

use std::time::Instant;

use kinglet_graph::{Interpreter, TfliteKernels};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: bench_interpreter <model.tflite> [windows] [reps]")?;
    let windows: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2947);
    let reps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let graph = kinglet_graph::tflite::read_tflite_file(std::path::Path::new(&path))?;
    for kernels in TfliteKernels::ALL {
        let mut it = Interpreter::with_kernels(&graph, kernels)?;
        let (win_in, win_out) = it.batch_window_bytes()?;
        let mut s: u32 = 12345;
        let stream: Vec<u8> = (0..win_in * windows)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((s >> 16) & 0xff) as u8
            })
            .collect();
        let sizes: Vec<usize> = graph
            .inputs
            .iter()
            .map(|t| graph.tensor(*t).byte_size())
            .collect();
        // Warm-up (thread-local scratch, caches).
        let mut out = Vec::new();
        it.invoke_batch(&stream, 1, &mut out)?;
        let reference = out.clone();
        let start = Instant::now();
        let mut checksum = 0u64;
        for _ in 0..reps {
            for w in stream.chunks_exact(win_in) {
                let mut at = 0;
                for (i, n) in sizes.iter().enumerate() {
                    it.set_input_bytes(i, &w[at..at + n])?;
                    at += n;
                }
                it.invoke()?;
                checksum += it
                    .output_bytes(0)?
                    .iter()
                    .map(|b| u64::from(*b))
                    .sum::<u64>();
            }
        }
        let single = start.elapsed().as_secs_f64();
        let total = (windows * reps) as f64;
        println!(
            "{path} [{kernels}] per-invoke: {:.0} windows/s ({:.2} µs each; checksum {checksum})",
            total / single,
            1e6 * single / total
        );
        for threads in [1, 2] {
            let start = Instant::now();
            for _ in 0..reps {
                it.invoke_batch(&stream, threads, &mut out)?;
            }
            let secs = start.elapsed().as_secs_f64();
            if out != reference {
                return Err(
                    format!("{threads}-thread batch differs from the 1-thread batch").into(),
                );
            }
            println!(
                "{path} [{kernels}] invoke_batch, {threads} thread(s): {:.0} windows/s ({:.2} µs each; {win_out} output bytes/window)",
                total / secs,
                1e6 * secs / total
            );
        }
    }
    Ok(())
}
