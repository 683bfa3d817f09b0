//! Writes the float16 and the dynamic-range versions of kinglet-graph's op-zoo fixture for
//! `scripts/schemes_golden.py`:
//!
//!   cargo run --release -p kinglet-compress --example schemes_export -- F16.tflite DYN.tflite
//!
//! The dynamic version quantises every weight (threshold 0) so all three hybrid kernels run.
//! `tests/schemes.rs` checks that today's code still writes exactly these bytes.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: schemes_export F16.tflite DYN.tflite";
    let out = std::env::args().nth(1).ok_or(usage)?;
    let dynamic_out = std::env::args().nth(2).ok_or(usage)?;
    let zoo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures/zoo_f32.tflite");
    let graph = kinglet_graph::tflite::read_tflite_file(&zoo)?;
    let half = kinglet_compress::quantize_float16(&graph)?;
    kinglet_graph::tflite::write_tflite_file(&half, std::path::Path::new(&out))?;
    let config = kinglet_compress::DynamicConfig { min_elements: 0 };
    let (dynamic, _) = kinglet_compress::quantize_dynamic(&graph, &config)?;
    kinglet_graph::tflite::write_tflite_file(&dynamic, std::path::Path::new(&dynamic_out))?;
    println!("wrote {out} and {dynamic_out}");
    Ok(())
}
