//! `kinglet train`: trains an architecture (preset or TOML file) on a dataset's `train` split,
//! keeping the epoch that scores best on its `val` split (or, when the schedule sets
//! `average_last`, the mean of the last epochs' weights), and writes a `.kgl` model.
//! `--qat` trains quantisation-aware instead (from scratch, or fine-tuning `--init model.kgl`),
//! storing the tracked activation ranges in the model for `kinglet quantize --scheme int8`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::train::{QatChoice, TrainJob};

use super::common::{Bar, DataArgs};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Preset name (big3, big1, little0..little5, dual, kinglet, mnist-cnn) or an architecture
    /// .toml file (optional with `--init`, whose architecture is used).
    #[arg(long, required_unless_present = "init")]
    pub arch: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Overrides the architecture's number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the trained model goes (`.kgl`).
    #[arg(long)]
    pub out: PathBuf,
    /// Checkpoint written after every epoch (default: `<out>.ckpt`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint (what a rerun with the same arguments
    /// does anyway when the checkpoint exists; with this flag a missing one is an error).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Discard the checkpoint of an earlier run and start over.
    #[arg(long)]
    pub restart: bool,
    /// Stop after this many epochs (checkpoint kept, no model written unless all epochs ran).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Write the per-epoch history (loss, accuracy, seconds) as JSON.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// No progress bar (one line per epoch instead).
    #[arg(long)]
    pub quiet: bool,
    /// Quantisation-aware training: weights and activations are fake-quantised to int8 in
    /// the forward pass (straight-through gradients) and the tracked activation ranges are
    /// stored in the model, for `kinglet quantize --scheme int8` to use instead of
    /// calibrating. From scratch, or fine-tuning the model given with `--init`.
    #[arg(long)]
    pub qat: bool,
    /// Start from this trained `.kgl` model (its architecture and normalisation are kept);
    /// needs `--qat`.
    #[arg(long, requires = "qat")]
    pub init: Option<PathBuf>,
    /// `--qat` only: constant learning rate (default: the schedule's, or when fine-tuning a
    /// tenth of the rate the schedule reaches at its last epoch).
    #[arg(long, requires = "qat")]
    pub lr: Option<f64>,
    /// `--qat` only: learn each activation's range (LSQ-style, both ends) once the moving
    /// averages have found it, instead of following the averages throughout.
    #[arg(long, requires = "qat")]
    pub learned_ranges: bool,
    /// `--qat` only: decay of the moving averages tracking activation min/max.
    #[arg(long, requires = "qat", default_value_t = kinglet_train::qat::DEFAULT_EMA_DECAY)]
    pub ema_decay: f32,
    /// `--qat` only: weight bit width (8, 4 or 2) for every Conv/Depthwise/Dense layer, or one
    /// per layer in op order (`8,4,4,2,8`); sub-byte layers learn their clipping per channel.
    /// Quantise the result with the same widths (`quantize --scheme w4a8`, or `mixed --bits`).
    #[arg(long, requires = "qat")]
    pub bits: Option<String>,
    /// Knowledge distillation: a trained model (`.kgl`) of the dataset's classes whose
    /// probabilities are mixed into the targets (e.g. kinglet's default teaching a Little).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Share of each target taken from the teacher.
    #[arg(long, requires = "teacher", default_value_t = 0.5)]
    pub teacher_weight: f32,
    /// Instead of training, write the prepared (normalised) training inputs as `.npy` files
    /// into this folder (`x_<branch>.npy` as [n, time, channels], `y.npy`), for benchmarks.
    #[arg(long)]
    pub export_inputs: Option<PathBuf>,
    /// Train one nested-width (slimmable) network: the leading ⌈w·C⌉ channels of every hidden
    /// layer form a classifier at each width w (ascending, ending at 1, e.g.
    /// `0.25,0.5,0.75,1.0`). Each step trains the widest on the labels and the narrowest plus
    /// one random width on the widest's probabilities; each width keeps its own batch norms.
    /// Validation accuracy (and epoch selection) is then the mean over the widths.
    #[arg(long, conflicts_with_all = ["qat", "init"])]
    pub widths: Option<String>,
    /// How the narrower widths normalise: `own` batch norms, or `shared-scale` — the full
    /// width's per-channel scale times one learned factor per layer, with their own means and
    /// shifts, so that on a device every width reads the full width's int8 weights and
    /// requantisation and only its biases are its own (`kinglet modes` then builds one
    /// weight blob).
    #[arg(long, requires = "widths", default_value = "own", value_parser = ["own", "shared-scale"])]
    pub width_norm: String,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let job = TrainJob {
        arch: args.arch,
        data: args.data.choice(),
        epochs: args.epochs,
        seed: args.seed,
        out: args.out,
        checkpoint: args.checkpoint,
        resume: args.resume,
        restart: args.restart,
        stop_after: args.stop_after,
        history: args.history,
        qat: args.qat.then_some(QatChoice {
            lr: args.lr,
            ema_decay: args.ema_decay,
            bits: args.bits,
            learned_ranges: args.learned_ranges,
        }),
        init: args.init,
        teacher: args.teacher.map(|t| (t, args.teacher_weight)),
        export_inputs: args.export_inputs,
        widths: args.widths,
        width_norm: kinglet_train::arch::WidthNorm::parse(&args.width_norm)
            .map_err(anyhow::Error::msg)?,
    };
    kinglet::jobs::train::run(&job, &mut Bar::new(args.quiet))
}
