//! `kinglet optimize`: compression steps alone and in sequence on one trained model, each
//! variant measured the same way — file size, accuracy and host time from `kinglet eval`,
//! flash and instructions on `--target` (Cortex-M4 by default) from `kinglet profile` (which
//! runs the variant in QEMU and fails unless its outputs equal the host's) — into a table and
//! a plot.
//!
//! A variant is a `+`-separated sequence of steps applied left to right: first the steps that
//! retrain the `.kgl` model — `separable` (convert convolutions to depthwise-separable ones and
//! fine-tune), `prune-filters` (structured pruning: drop whole filters), `prune` (magnitude
//! pruning to exact zeros), `qat` (quantisation-aware fine-tuning) —, then `graph-opt` (the
//! graph passes, a float `.tflite`), then at most one final format: `float`, `int8`, `dynamic`
//! or `float16`. Every step is this binary run with printed arguments (as in `kinglet
//! pipeline`); shared prefixes run once, and a step whose output exists is skipped unless
//! `--force`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::optimize::OptimizeJob;

use super::common::this_executable;

#[derive(Args, Debug)]
pub struct OptimizeArgs {
    /// The trained model (`.kgl`).
    #[arg(long)]
    pub model: PathBuf,
    /// Training data (calibration, QAT fine-tuning), e.g. `mnist:../shared/data/mnist`.
    #[arg(long)]
    pub data: String,
    /// Evaluation data (default: the `test` split of --data).
    #[arg(long)]
    pub eval: Option<String>,
    /// Variants, comma-separated; steps within one joined by `+`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "float,dynamic,float16,int8,prune+int8,prune-filters+int8,qat+dynamic,qat+int8,separable+int8,graph-opt+int8"
    )]
    pub pipeline: Vec<String>,
    /// Final sparsity of the `prune` step (default: `kinglet prune`'s).
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// Fraction of each convolution's filters the `prune-filters` step removes (default:
    /// `kinglet prune`'s).
    #[arg(long)]
    pub filters: Option<f64>,
    /// Where the variants, `optimize.md`, `optimize.json` and `optimize.svg` go.
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration windows or images for the quantisation steps.
    #[arg(long, default_value_t = 1000)]
    pub windows: usize,
    /// Skip the firmware columns (QEMU) even when QEMU is installed.
    #[arg(long)]
    pub no_firmware: bool,
    /// The core whose flash and instructions the table gives.
    #[arg(long, value_enum, default_value = "cortex-m4")]
    pub target: super::compile::Target,
    /// Rerun steps whose outputs already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: OptimizeArgs) -> Result<()> {
    let job = OptimizeJob {
        kinglet: this_executable()?,
        model: args.model,
        data: args.data,
        eval: args.eval,
        pipeline: args.pipeline,
        sparsity: args.sparsity,
        filters: args.filters,
        out: args.out,
        windows: args.windows,
        no_firmware: args.no_firmware,
        target: args.target.core(),
        force: args.force,
    };
    kinglet::jobs::optimize::run(&job, &mut std::io::stdout().lock())
}
