//! `kinglet modes --model M --data <spec> [--validation <spec>] --out DIR`: every operating mode
//! of a nested-width network (fixed widths and adaptive width chains with thresholds chosen on
//! the validation windows), with accuracy, macro-F1, mean and worst-case Cortex-M4
//! instructions measured in QEMU, energy per window on the board profiles and the Pareto subset
//! (`modes.md`, `modes.json`, `modes.svg`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::modes::{self, ModesJob};
use kinglet_compile::firmware::default_work_dir;

#[derive(Args)]
pub struct ModesArgs {
    /// A nested-width `.kgl` model (`kinglet train --widths …`).
    #[arg(long)]
    pub model: PathBuf,
    /// Windows the modes are scored on (split `test` unless given).
    #[arg(long)]
    pub data: String,
    /// Windows the thresholds are chosen on and int8 is calibrated on (default: the `--data`
    /// source's `val` split).
    #[arg(long)]
    pub validation: Option<String>,
    /// Folder for modes.md, modes.json, modes.svg and the widths' int8 models.
    #[arg(long)]
    pub out: PathBuf,
    /// Threshold grid of the adaptive modes, each in [0, 1].
    #[arg(
        long,
        default_value = "0.3,0.4,0.5,0.6,0.7,0.75,0.8,0.85,0.9,0.925,0.95,0.975,0.99"
    )]
    pub thresholds: String,
    /// Accuracy tolerances, in [0, 1] (0.005 = 0.5 pp): per chain and measure, the cheapest
    /// threshold whose validation accuracy is within each of the chain's widest width.
    #[arg(long, default_value = "0,0.0025,0.005,0.01")]
    pub tolerances: String,
    /// Board profiles (TOML) for energy; default: the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Do not build firmware: cost in MACs (an estimate, labelled so in every output).
    #[arg(long)]
    pub no_firmware: bool,
    /// Where firmware builds go (default: work/firmware in kinglet's data folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

pub fn run(args: ModesArgs) -> Result<()> {
    let job = ModesJob {
        model: args.model,
        data: args.data,
        validation: args.validation,
        thresholds: modes::parse_unit_list(&args.thresholds, "threshold")?
            .into_iter()
            .map(|t| t as f32)
            .collect(),
        tolerances: modes::parse_unit_list(&args.tolerances, "tolerance")?,
        out: args.out,
        boards_dir: args.boards_dir,
        no_firmware: args.no_firmware,
        work_dir: args.work_dir.unwrap_or_else(default_work_dir),
    };
    let report = modes::run(&job, &mut std::io::stderr().lock())?;
    let front = report.modes.iter().filter(|m| m.pareto).count();
    println!(
        "{} modes ({front} on the Pareto front); cost unit: {}; wrote {}",
        report.modes.len(),
        report.cost_unit,
        job.out.join("modes.md").display()
    );
    Ok(())
}
