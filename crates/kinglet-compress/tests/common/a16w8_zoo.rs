//! kinglet-graph's op-zoo fixture quantised to a16w8 on fixed calibration windows: shared by
//! `tests/a16w8.rs` and `examples/a16w8_export.rs`, which writes the model the goldens hold.

use kinglet_compress::{CalibrationSample, PtqConfig, quantize_a16w8};
use kinglet_graph::Graph;

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures")
        .join(name)
}

/// Deterministic calibration windows for the zoo's `[1, 8, 8, 3]` input.
pub fn zoo_samples() -> Vec<CalibrationSample> {
    (0..16u32)
        .map(|k| {
            vec![
                (0..192u32)
                    .map(|i| ((i * 37 + k * 101) % 97) as f32 / 24.0 - 2.0)
                    .collect(),
            ]
        })
        .collect()
}

/// `zoo_f32.tflite` in the 16×8 scheme.
pub fn zoo_a16w8() -> Result<Graph, Box<dyn std::error::Error>> {
    let float = kinglet_graph::tflite::read_tflite_file(&fixture("zoo_f32.tflite"))?;
    Ok(quantize_a16w8(&float, &zoo_samples(), &PtqConfig::default())?.graph)
}
