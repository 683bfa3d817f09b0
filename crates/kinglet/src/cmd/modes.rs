//! `kinglet modes --model M --data <spec> [--validation <spec>] --out DIR`: every operating mode
//! of a nested-width network (fixed widths and adaptive width chains with thresholds chosen on
//! the validation windows), with accuracy, macro-F1, mean and worst-case Cortex-M4
//! instructions measured in QEMU, energy per window on the board profiles and the Pareto subset
//! (`modes.md`, `modes.json`, `modes.svg`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kinglet::jobs::modes::{self, ModesJob};
use kinglet_compile::firmware::default_work_dir;
use kinglet_compile::nested::Layout;

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
    /// Threshold grid of the adaptive modes, each in [0, 1]; per chain and measure the
    /// thresholds on the validation front are kept. Small networks trained with
    /// cross-entropy are confident, hence the grid's density near 1.
    #[arg(
        long,
        default_value = "0.5,0.6,0.7,0.8,0.85,0.9,0.95,0.97,0.98,0.99,0.995,0.998,0.999"
    )]
    pub thresholds: String,
    /// Largest loss against the full width, in [0, 1] (0.003 = 0.3 %), of the recommended
    /// adaptive mode on validation: the share of windows it labels otherwise than the full
    /// width (`--recommend agreement`), or its accuracy drop (`--recommend accuracy`).
    #[arg(long, default_value_t = 0.003)]
    pub max_loss: f64,
    /// How the recommended mode reads validation: `agreement` with the full width's labels
    /// (which bounds the accuracy loss and needs no label), or `accuracy`.
    #[arg(long, default_value = "agreement", value_parser = ["agreement", "accuracy"])]
    pub recommend: String,
    /// Board profiles (TOML) for energy; default: the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Do not build firmware: cost in MACs (an estimate, labelled so in every output).
    #[arg(long)]
    pub no_firmware: bool,
    /// Where firmware builds go (default: work/firmware in kinglet's data folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also run the first N test windows on an emulated device with three of the modes in one
    /// image (full width, the recommended adaptive mode, narrowest width), switched by
    /// `set_mode` as a battery-aware policy sees the charge drain from 100 % to 0 % (≥ 60 %:
    /// full, ≥ 25 %: adaptive, below: narrowest); checked window by window against the host
    /// simulator, with each mode's measured instructions.
    #[arg(long, value_name = "N")]
    pub device_stream: Option<usize>,
    /// The device core of --device-stream: cortex-m4, cortex-m3 or riscv32.
    #[arg(long, default_value = "cortex-m4")]
    pub target: String,
    /// The three modes of --device-stream (charge ≥ 60 %, ≥ 25 %, below), as mode ids of
    /// modes.md, e.g. `3,10,0`; default: full width, the recommended mode, narrowest width.
    #[arg(long, value_name = "HIGH,MID,LOW")]
    pub device_modes: Option<String>,
    /// With --device-stream, for a network trained with `--width-norm shared-scale`: the
    /// widths share one schedule with their shapes in tables, instead of one schedule each:
    /// less flash for more instructions (run-time loop bounds; BENCHMARKS.md).
    #[arg(long, conflicts_with = "full_stride")]
    pub one_schedule: bool,
    /// With --device-stream, for a network trained with `--width-norm shared-scale`: every
    /// width runs the full width's own schedule at its strides, computing the leading output
    /// channels of each layer: the least flash (the full width runs as alone), and a narrower
    /// width costs its share of the full width's output channels (BENCHMARKS.md).
    #[arg(long)]
    pub full_stride: bool,
    /// Quantisation of every width: int8, or 4- or 2-bit weights with int8 activations
    /// (w4a8, w2a8), each width then with weights and scales of its own.
    #[arg(long, default_value = "int8", value_parser = kinglet::jobs::modes::SCHEMES)]
    pub scheme: String,
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
        max_loss: modes::parse_unit_list(&args.max_loss.to_string(), "--max-loss")?[0],
        recommend: modes::Recommend::parse(&args.recommend)?,
        out: args.out,
        boards_dir: args.boards_dir,
        no_firmware: args.no_firmware,
        work_dir: args.work_dir.unwrap_or_else(default_work_dir),
        device_stream: args.device_stream,
        target: args.target,
        device_modes: args
            .device_modes
            .as_deref()
            .map(parse_device_modes)
            .transpose()?,
        layout: match (args.one_schedule, args.full_stride) {
            (true, _) => Layout::OneSchedule,
            (_, true) => Layout::FullStride,
            _ => Layout::PerWidth,
        },
        scheme: args.scheme,
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

/// `HIGH,MID,LOW`: three mode ids.
fn parse_device_modes(text: &str) -> Result<[usize; 3]> {
    let ids: Vec<usize> = text
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .with_context(|| format!("--device-modes: `{}` is not a mode id", s.trim()))
        })
        .collect::<Result<_>>()?;
    ids.try_into().map_err(|ids: Vec<usize>| {
        anyhow::anyhow!(
            "--device-modes takes three mode ids (charge ≥ 60 %, ≥ 25 %, below), got {}",
            ids.len()
        )
    })
}
