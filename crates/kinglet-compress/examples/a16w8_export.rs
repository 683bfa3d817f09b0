//! Writes kinglet-graph's op-zoo fixture in the 16×8 scheme for `scripts/a16w8_goldens.py`:
//!
//!   cargo run --release -p kinglet-compress --example a16w8_export -- zoo_a16w8.tflite
//!
//! `tests/a16w8.rs` checks that today's code still writes exactly these bytes.

#[path = "../tests/common/a16w8_zoo.rs"]
mod zoo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: a16w8_export OUT.tflite")?;
    kinglet_graph::tflite::write_tflite_file(&zoo::zoo_a16w8()?, std::path::Path::new(&out))?;
    println!("wrote {out}");
    Ok(())
}
