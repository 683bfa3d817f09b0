//! `kinglet pipeline`: the whole flow on a data folder, as a user would run it step by step —
//! rebuild windows, train the Big and Little networks and kinglet's default, evaluate them on
//! the official test windows, quantise to int8, profile on the emulated Cortex-M4, run the
//! calibrated big–little cascade and write the report.
//!
//! Every step is this same binary run with the arguments printed beside it, so each number in
//! the summary can be reproduced by copying one line. A step whose output already exists is
//! skipped (rerun with `--force`), so an interrupted pipeline resumes where it stopped.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::pipeline::PipelineJob;

use super::common::this_executable;

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Folder holding `hapt.zip` (or an unpacked `hapt/`) and `uci-har/UCI HAR Dataset/`.
    #[arg(long)]
    pub data: PathBuf,
    /// Where models, evaluations, profiles and the report go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Training epochs for every network (default: each architecture's own schedule).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the firmware steps (QEMU profile) even when QEMU is installed.
    #[arg(long)]
    pub no_firmware: bool,
    /// Rerun steps whose outputs already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: PipelineArgs) -> Result<()> {
    let job = PipelineJob {
        kinglet: this_executable()?,
        data: args.data,
        out: args.out,
        epochs: args.epochs,
        seed: args.seed,
        no_firmware: args.no_firmware,
        force: args.force,
    };
    kinglet::jobs::pipeline::run(&job, &mut std::io::stdout().lock())
}
