//! `kinglet eval`: scores a model on a dataset split: accuracy, macro-F1, per-class precision
//! and recall, confusion matrix.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kinglet_data::metrics::Classification;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_train::TrainedModel;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A `.kgl` model written by `kinglet train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation data, e.g. `uci-har:../shared/data/uci-har:test` (split `test` unless given).
    #[arg(long)]
    pub data: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mut spec = DataSpec::parse(&args.data)?;
    if !spec.split_given {
        spec = spec.with_split(Split::Test);
    }
    let data = kinglet_data::spec::load(&spec, &LoadOptions::default()).with_context(|| format!("loading {spec}"))?;
    let model = TrainedModel::load(&args.model)?;
    let result = kinglet_train::evaluate(&model, &data)?;
    print(&result, &args.model.display().to_string(), &spec.to_string(), args.json)
}

/// Prints a classification report as text or as one JSON object.
pub fn print(result: &Classification, model: &str, data: &str, json: bool) -> Result<()> {
    if json {
        let per_class: Vec<serde_json::Value> = result
            .class_names
            .iter()
            .zip(result.per_class())
            .map(|(name, s)| {
                serde_json::json!({
                    "class": name, "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": model,
            "data": data,
            "accuracy": result.accuracy(),
            "macro_f1": result.macro_f1(),
            "n": result.n(),
            "class_names": result.class_names,
            "per_class": per_class,
            "confusion": result.confusion,
        });
        println!("{out}");
    } else {
        println!("model {model}\ndata  {data}");
        print!("{}", result.to_text());
    }
    Ok(())
}
