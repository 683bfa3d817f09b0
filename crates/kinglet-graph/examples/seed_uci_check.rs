//! Full-data check of the seed models against the TFLite goldens: reads the official UCI-HAR
//! test windows (CSV), applies the seed scaling, runs every seed model with kinglet's
//! interpreter in each TFLite kernel configuration (default = XNNPACK, builtin, reference),
//! and reports, per configuration, windows differing from that configuration's committed
//! golden outputs and the accuracy.
//!
//! `cargo run --release -p kinglet-graph --example seed_uci_check -- [UCI_HAR_DIR]`
//! (default `/work/shared/data/uci-har`; the CSVs are not in the repository).

use std::path::{Path, PathBuf};
use std::time::Instant;

use kinglet_graph::eval::{InputLayout, SEED_CHANNELS, argmax, seed_scale_u8};
use kinglet_graph::{Graph, Interpreter, TfliteKernels};

const MODELS: [&str; 8] = [
    "B_s123_3IN_91",
    "B_s123_1IN_91",
    "S0_s3",
    "S1_s3",
    "S2_s3",
    "S3_s3",
    "S4_s3",
    "S5_s3",
];

fn read_csv(path: &Path) -> Result<Vec<Vec<f64>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            line.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("{}:{}: '{v}': {e}", path.display(), n + 1))
                })
                .collect()
        })
        .collect()
}

fn main() -> Result<(), String> {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/work/shared/data/uci-har".into()),
    );
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let signals = data.join("UCI HAR Dataset/test/Inertial Signals");
    let channels: Vec<Vec<Vec<f64>>> = SEED_CHANNELS
        .iter()
        .map(|c| read_csv(&signals.join(format!("{c}_test.csv"))))
        .collect::<Result<_, _>>()?;
    let (n, t) = (
        channels[0].len(),
        channels[0].first().map(Vec::len).unwrap_or(0),
    );
    for (c, rows) in SEED_CHANNELS.iter().zip(&channels) {
        if rows.len() != n || rows.iter().any(|r| r.len() != t) {
            return Err(format!("{c}: expected {n} rows of {t} values"));
        }
    }
    let mut interleaved = Vec::with_capacity(n * t * 9);
    for w in 0..n {
        for s in 0..t {
            for ch in &channels {
                interleaved.push(ch[w][s]);
            }
        }
    }
    let scaled = seed_scale_u8(&interleaved, 9);
    let labels_path = data.join("UCI HAR Dataset/test/y_test.txt");
    let labels: Vec<usize> = std::fs::read_to_string(&labels_path)
        .map_err(|e| format!("{}: {e}", labels_path.display()))?
        .lines()
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse::<usize>()
                .map(|v| v - 1)
                .map_err(|e| format!("{}:{}: {e}", labels_path.display(), i + 1))
        })
        .collect::<Result<_, _>>()?;
    println!("{n} windows of {t} steps × 9 channels");
    let goldens = here.join("tests/goldens");
    let mut total_mismatches = 0;
    for name in MODELS {
        let bytes = std::fs::read(here.join(format!("tests/fixtures/{name}.tflite")))
            .map_err(|e| e.to_string())?;
        let graph = Graph::from_tflite_bytes(&bytes).map_err(|e| format!("{name}: {e}"))?;
        let layout = InputLayout::for_graph(&graph, name).map_err(|e| e.to_string())?;
        for kernels in TfliteKernels::ALL {
            let suffix = match kernels {
                TfliteKernels::Default => ".xnnpack",
                TfliteKernels::Builtin => "",
                TfliteKernels::Reference => ".ref",
            };
            let path = goldens.join(format!("seed_uci_{name}{suffix}.u8"));
            let golden = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut it = Interpreter::with_kernels(&graph, kernels).map_err(|e| e.to_string())?;
            let start = Instant::now();
            let mut flat = Vec::new();
            for window in scaled.chunks_exact(t * 9) {
                layout
                    .feed(&mut it, window, 9)
                    .map_err(|e| format!("{name}: {e}"))?;
                it.invoke().map_err(|e| format!("{name}: {e}"))?;
                flat.extend_from_slice(it.output_bytes(0).map_err(|e| e.to_string())?);
            }
            let secs = start.elapsed().as_secs_f64();
            if golden.len() != flat.len() {
                return Err(format!(
                    "{}: {} bytes, expected {}",
                    path.display(),
                    golden.len(),
                    flat.len()
                ));
            }
            let width = flat.len() / n;
            let mismatched = flat
                .chunks(width)
                .zip(golden.chunks(width))
                .filter(|(a, b)| a != b)
                .count();
            total_mismatches += mismatched;
            let mut line = format!(
                "{name} [{kernels}]: {mismatched}/{n} windows differ from TFLite's {kernels} kernels ({:.0} windows/s incl. feeding)",
                n as f64 / secs
            );
            if name.starts_with("B_") {
                let correct = flat
                    .chunks(width)
                    .zip(&labels)
                    .filter(|(o, y)| argmax(o) == **y)
                    .count();
                line += &format!(
                    "; accuracy {:.2} % ({correct}/{n})",
                    100.0 * correct as f64 / n as f64
                );
            }
            println!("{line}");
        }
    }
    println!("total windows differing: {total_mismatches}");
    Ok(())
}
