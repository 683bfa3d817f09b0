//! Full-data check of the seed models against the TFLite goldens: reads the official UCI-HAR
//! test windows (CSV), applies the seed scaling, runs every seed model with kinglet's
//! interpreter, and reports mismatches against the committed goldens and accuracies.
//!
//! `cargo run --release -p kinglet-graph --example seed_uci_check -- [UCI_HAR_DIR]`
//! (default `/work/shared/data/uci-har`; the CSVs are not in the repository).

use std::path::{Path, PathBuf};
use std::time::Instant;

use kinglet_graph::Graph;
use kinglet_graph::eval::{InputLayout, SEED_CHANNELS, argmax, evaluate, seed_scale_u8};

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
    for name in MODELS {
        let bytes = std::fs::read(here.join(format!("tests/fixtures/{name}.tflite")))
            .map_err(|e| e.to_string())?;
        let graph = Graph::from_tflite_bytes(&bytes).map_err(|e| format!("{name}: {e}"))?;
        let layout = InputLayout::for_graph(&graph, name).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let out = evaluate(&graph, &layout, scaled.chunks_exact(t * 9), 9)
            .map_err(|e| format!("{name}: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        let flat: Vec<u8> = out.raw.concat();
        let mut line = format!("{name}: {:.0} windows/s", n as f64 / secs);
        for (suffix, what) in [
            ("", "TFLite builtin kernels"),
            (".xnnpack", "TFLite default (XNNPACK)"),
            (".ref", "TFLite reference kernels"),
        ] {
            let path = goldens.join(format!("seed_uci_{name}{suffix}.u8"));
            let Ok(golden) = std::fs::read(&path) else {
                continue;
            };
            let width = flat.len() / n;
            if golden.len() != flat.len() {
                return Err(format!(
                    "{}: {} bytes, expected {}",
                    path.display(),
                    golden.len(),
                    flat.len()
                ));
            }
            let mismatched = flat
                .chunks(width)
                .zip(golden.chunks(width))
                .filter(|(a, b)| a != b)
                .count();
            let pred_diff = flat
                .chunks(width)
                .zip(golden.chunks(width))
                .filter(|(a, b)| argmax(a) != argmax(b))
                .count();
            line += &format!(
                "; vs {what}: {mismatched} windows differ, {pred_diff} predictions differ"
            );
        }
        if name.starts_with("B_") {
            let correct = out
                .predictions()
                .iter()
                .zip(&labels)
                .filter(|(p, y)| p == y)
                .count();
            line += &format!(
                "; accuracy {:.2} % ({correct}/{n})",
                100.0 * correct as f64 / n as f64
            );
        }
        println!("{line}");
    }
    Ok(())
}
