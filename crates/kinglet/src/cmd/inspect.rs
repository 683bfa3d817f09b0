//! `kinglet inspect <model>`: ops, shapes, quantisation, MACs, weight bytes and peak arena;
//! with `--optimize`, the same after kinglet-graph's passes, and what each pass did.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kinglet_graph::passes::{self, Pass, PassOptions};
use kinglet_graph::{Graph, Interpreter, ModelSummary};

#[derive(Args)]
pub struct InspectArgs {
    /// Model to inspect (`.tflite`, or a trained `.kgl` model, lowered first).
    pub model: PathBuf,
    /// Print the summary as JSON (with `--optimize`: `{before, after, passes}`).
    #[arg(long)]
    pub json: bool,
    /// Also run the graph passes (constant folding, batch-norm folding, activation fusion,
    /// reshape simplification, dead-op removal) and show the model before and after.
    #[arg(long, alias = "passes")]
    pub optimize: bool,
    /// Passes to run, comma-separated, in order (default: the whole pipeline).
    #[arg(long, value_delimiter = ',', requires = "optimize")]
    pub pipeline: Option<Vec<Pass>>,
    /// Also apply rewrites that change float rounding (batch-norm shifts into non-zero biases,
    /// non-power-of-two scales); without it every pass is bit-exact.
    #[arg(long, requires = "optimize")]
    pub inexact: bool,
    /// Write the optimised model to this `.tflite` file.
    #[arg(long, value_name = "PATH", requires = "optimize")]
    pub write: Option<PathBuf>,
}

/// Summary of a graph plus proof that the runtime allocates exactly the planned arena (building
/// the interpreter also proves every op is executable).
fn summarise(graph: &Graph, what: &str) -> Result<ModelSummary> {
    let summary = ModelSummary::new(graph).with_context(|| format!("planning {what}"))?;
    let interp =
        Interpreter::new(graph).with_context(|| format!("preparing {what} for execution"))?;
    anyhow::ensure!(
        interp.arena_len() == summary.arena_bytes,
        "internal: planned and allocated arena differ"
    );
    Ok(summary)
}

pub fn run(args: InspectArgs) -> Result<()> {
    let graph = crate::cmd::export::load_graph(&args.model)?;
    let name = args.model.display().to_string();
    if !args.optimize {
        let summary = summarise(&graph, &name)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary.to_text());
        }
        return Ok(());
    }

    // A model may only become executable after the passes (float16 weights behind
    // DEQUANTIZE): the original is summarised without requiring that it runs.
    let before = ModelSummary::new(&graph).with_context(|| format!("planning {name}"))?;
    let before_runs = Interpreter::new(&graph).err().map(|e| e.to_string());
    let pipeline = args
        .pipeline
        .unwrap_or_else(|| Pass::DEFAULT_PIPELINE.to_vec());
    let options = PassOptions {
        exact: !args.inexact,
        ..PassOptions::default()
    };
    let (optimised, reports) = passes::optimize_graph_with(&graph, &pipeline, options)
        .with_context(|| format!("optimising {name}"))?;
    let after = summarise(&optimised, &format!("{name} after graph passes"))?;
    if let Some(path) = &args.write {
        kinglet_graph::tflite::write_tflite_file(&optimised, path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let v = serde_json::json!({
            "before": before,
            "before_not_executable": before_runs,
            "after": after,
            "passes": reports,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("== before ({name})");
        print!("{}", before.to_text());
        if let Some(e) = &before_runs {
            println!("(not executable by kinglet before the passes: {e})");
        }
        println!("\n== after graph passes");
        print!("{}", after.to_text());
        println!("\n== passes");
        print!("{}", passes::reports_to_text(&reports));
        if let Some(path) = &args.write {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
