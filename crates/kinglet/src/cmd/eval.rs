//! `kinglet eval`: scores a model on a dataset split: accuracy, macro-F1, per-class precision
//! and recall, confusion matrix.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::eval::{self, EvalJob};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A `.kgl` model written by `kinglet train`, or a `.tflite` model (run by kinglet-graph's
    /// interpreter).
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation data, e.g. `uci-har:../shared/data/uci-har:test` (split `test` unless given).
    #[arg(long)]
    pub data: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// `.tflite` only: how raw windows become model inputs. `seed`: the Big–Little authors'
    /// per-channel min–max over the evaluated split to uint8; `model`: the standardisation stored
    /// in a kinglet-exported model's metadata; `none`: raw values. Default: `model` when the
    /// metadata has one, else `none`.
    #[arg(long, value_enum)]
    pub input_scaling: Option<InputScaling>,
    /// `.tflite` only: score a two-output model as "is the activity class K?" (output 1 = yes),
    /// as the seed's Little models. Kinglet-exported models carry their task in metadata.
    #[arg(long)]
    pub one_vs_rest: Option<u32>,
    /// Which TFLite kernel configuration `.tflite` models are run with, rounding for rounding:
    /// `default` (the TFLite interpreter's default, XNNPACK — what published TFLite accuracies
    /// come from), `builtin` (optimized kernels, no delegate) or `reference` (the reference
    /// kernels TFLite Micro and kinglet's firmware follow).
    #[arg(long, default_value = "default")]
    pub tflite_kernels: kinglet_graph::TfliteKernels,
    /// `.kgl` only: score one width of a nested-width model (`kinglet train --widths`).
    #[arg(long)]
    pub width: Option<f64>,
}

/// `--input-scaling`'s values (see [`eval::InputScaling`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputScaling {
    Seed,
    Model,
    None,
}

impl From<InputScaling> for eval::InputScaling {
    fn from(s: InputScaling) -> Self {
        match s {
            InputScaling::Seed => Self::Seed,
            InputScaling::Model => Self::Model,
            InputScaling::None => Self::None,
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let report = eval::run(&EvalJob {
        model: args.model,
        data: args.data,
        input_scaling: args.input_scaling.map(Into::into),
        one_vs_rest: args.one_vs_rest,
        tflite_kernels: args.tflite_kernels,
        width: args.width,
    })?;
    report.write(&mut std::io::stdout().lock(), args.json)?;
    Ok(())
}
