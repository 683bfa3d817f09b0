//! `kinglet inspect <model>`: ops, shapes, quantisation, MACs, weight bytes and peak arena.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kinglet_graph::{Interpreter, ModelSummary};

#[derive(Args)]
pub struct InspectArgs {
    /// Model to inspect (`.tflite`, or a trained `.kgl` model, lowered first).
    pub model: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let graph = crate::cmd::export::load_graph(&args.model)?;
    let summary =
        ModelSummary::new(&graph).with_context(|| format!("planning {}", args.model.display()))?;
    // The arena reported is the one the runtime allocates; building the interpreter also
    // proves every op is executable.
    let interp = Interpreter::new(&graph)
        .with_context(|| format!("preparing {} for execution", args.model.display()))?;
    anyhow::ensure!(
        interp.arena_len() == summary.arena_bytes,
        "internal: planned and allocated arena differ"
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
