//! `kinglet export --model <in> --format tflite --out <file>`; `--width W` exports one width of
//! a nested-width `.kgl` (as `.tflite`, or with `--format kgl` as an ordinary `.kgl` that every
//! other command — quantize, eval, profile, compile — takes as it is).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kinglet_graph::Graph;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Tflite,
    /// An ordinary `.kgl` model (only with `--width`).
    Kgl,
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
    /// One width of a nested-width `.kgl` model (`kinglet train --widths`), e.g. 0.5.
    #[arg(long)]
    pub width: Option<f64>,
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
    let graph = match (args.width, args.format) {
        (None, ExportFormat::Kgl) => anyhow::bail!("--format kgl exports one width: give --width"),
        (None, ExportFormat::Tflite) => load_graph(&args.model)?,
        (Some(width), format) => {
            if kinglet_train::ModelKind::of(&args.model)? != kinglet_train::ModelKind::Kgl {
                anyhow::bail!("--width takes a nested-width .kgl model");
            }
            let model = kinglet_train::TrainedModel::load(&args.model)
                .with_context(|| format!("loading {}", args.model.display()))?;
            let narrow = kinglet_train::slim::slice_model(&model, width)
                .with_context(|| format!("{}: --width {width}", args.model.display()))?;
            if let ExportFormat::Kgl = format {
                narrow.save(&args.out)?;
                println!(
                    "wrote {} (width {width}: {} parameters)",
                    args.out.display(),
                    narrow.parameter_count()
                );
                return Ok(());
            }
            kinglet_train::lower(&narrow).context("lowering the width to a graph")?
        }
    };
    match args.format {
        ExportFormat::Tflite | ExportFormat::Kgl => {
            kinglet_graph::tflite::write_tflite_file(&graph, &args.out)?
        }
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
