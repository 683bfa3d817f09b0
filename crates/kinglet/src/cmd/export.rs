//! `kinglet export --model <in> --format tflite --out <file>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kinglet_graph::Graph;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Tflite,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Model to export: `.tflite` (re-exported) or a trained `.kgl` model (lowered to a float graph).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "tflite")]
    pub format: ExportFormat,
    /// Output file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// Loads any model kinglet understands as a graph: `.tflite` directly, `.kgl` through the
/// training crate's lowering.
pub fn load_graph(path: &Path) -> Result<Graph> {
    match kinglet_train::ModelKind::of(path)? {
        kinglet_train::ModelKind::Tflite => Ok(kinglet_graph::tflite::read_tflite_file(path)?),
        kinglet_train::ModelKind::Kgl => {
            let model = kinglet_train::TrainedModel::load(path)
                .with_context(|| format!("loading {}", path.display()))?;
            kinglet_train::lower(&model)
                .with_context(|| format!("lowering {} to a graph", path.display()))
        }
    }
}

pub fn run(args: ExportArgs) -> Result<()> {
    let graph = load_graph(&args.model)?;
    match args.format {
        ExportFormat::Tflite => kinglet_graph::tflite::write_tflite_file(&graph, &args.out)?,
    }
    println!(
        "wrote {} ({} ops, {} MACs, {} weight bytes)",
        args.out.display(),
        graph.ops.len(),
        graph.total_macs(),
        graph.weight_bytes()
    );
    Ok(())
}
