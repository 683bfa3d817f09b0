//! Quantises every float model of the PTQ reference bundle with kinglet and writes the
//! int8 (and sub-byte weight) `.tflite` files plus a `manifest.json`, for `scripts/diff_ptq_export.py` to run in
//! the TFLite interpreter. Usage:
//! `cargo run --release -p kinglet-compress --example ptq_export -- <ptq bundle> <out dir>`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::export_configs;
use kinglet_compress::{CalibrationSample, quantize_int8};
use kinglet_graph::Graph;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return Err("usage: ptq_export <ptq_reference.kgd.gz> <out dir>".into());
    }
    let bundle = std::fs::canonicalize(&args[1])?;
    let out = PathBuf::from(&args[2]);
    std::fs::create_dir_all(&out)?;
    let (_, cases) = common::read_ptq_bundle(bundle.to_str().ok_or("non-UTF-8 path")?);
    let mut manifest = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let float = Graph::from_tflite_bytes(&case.float_model);
        let float = match float {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipping {}: {e}", case.name);
                continue;
            }
        };
        let samples: Vec<CalibrationSample> = case
            .calibration
            .iter()
            .map(|s| s.iter().map(|a| a.f32s()).collect())
            .collect();
        for (suffix, config, every) in export_configs() {
            if index % every != 0 {
                continue;
            }
            let config = kinglet_compress::PtqConfig {
                weight_bits: common::sub_byte_bits(suffix, &float),
                ..config
            };
            let q = quantize_int8(&float, &samples, &config)?;
            let bytes = q.graph.to_tflite_bytes()?;
            let file = format!("{}-{suffix}.tflite", case.name.replace('/', "-"));
            std::fs::write(out.join(&file), bytes)?;
            manifest.push(serde_json::json!({"case": case.name, "config": suffix, "file": file}));
        }
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!("wrote {} models to {}", manifest.len(), out.display());
    Ok(())
}
