//! `kinglet train`: trains an architecture (preset or TOML file) on a dataset's `train` split,
//! keeping the epoch that scores best on its `val` split (or, when the schedule sets
//! `average_last`, the mean of the last epochs' weights), and writes a `.kgl` model.
//! `--qat` trains quantisation-aware instead (from scratch, or fine-tuning `--init model.kgl`),
//! storing the tracked activation ranges in the model for `kinglet quantize --scheme int8`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_train::train::EpochReport;
use kinglet_train::{Architecture, Progress, TrainOptions};

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
    /// Continue an interrupted run from its checkpoint.
    #[arg(long)]
    pub resume: bool,
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
    #[arg(long, conflicts_with = "qat")]
    pub teacher: Option<PathBuf>,
    /// Share of each target taken from the teacher.
    #[arg(long, requires = "teacher", default_value_t = 0.5)]
    pub teacher_weight: f32,
    /// Instead of training, write the prepared (normalised) training inputs as `.npy` files
    /// into this folder (`x_<branch>.npy` as [n, time, channels], `y.npy`), for benchmarks.
    #[arg(long)]
    pub export_inputs: Option<PathBuf>,
}

/// The data arguments of `train` and of the commands that fine-tune with its loop.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Training data, e.g. `hapt:../shared/data/hapt.zip` (split `train` unless given).
    #[arg(long)]
    pub data: String,
    /// Validation data for best-epoch selection (default: the same source's `val` split).
    #[arg(long)]
    pub val: Option<String>,
    /// Train without a validation split (keeps the last epoch).
    #[arg(long, conflicts_with = "val")]
    pub no_val: bool,
    /// Train on the `val` split as well (no epoch selection then): with a weight-averaging
    /// schedule (`average_last`) there is nothing to select, so the held-out subjects are
    /// better spent as training data.
    #[arg(long, conflicts_with_all = ["val", "no_val"])]
    pub merge_val: bool,
}

impl DataArgs {
    /// The `--data` spec, on its `train` split unless one was given.
    pub(crate) fn train_spec(&self) -> Result<DataSpec> {
        train_spec(&self.data)
    }

    /// The validation split: `--val`, else the source's `val` split, or none with
    /// `--no-val` / `--merge-val`.
    pub(crate) fn val_spec(&self, train: &DataSpec) -> Result<Option<DataSpec>> {
        Ok(match (&self.val, self.no_val || self.merge_val) {
            (_, true) => None,
            (Some(v), _) => Some(DataSpec::parse(v)?),
            (None, false) => Some(train.with_split(Split::Val)),
        })
    }
}

/// A `--data` spec, on its `train` split unless one was given.
pub(crate) fn train_spec(data: &str) -> Result<DataSpec> {
    let spec = DataSpec::parse(data)?;
    Ok(if spec.split_given {
        spec
    } else {
        spec.with_split(Split::Train)
    })
}

/// Loads the training split, with the source's `val` split appended for `--merge-val`.
pub(crate) fn load_train(spec: &DataSpec, merge_val: bool) -> Result<kinglet_data::Dataset> {
    let mut train_set = load(spec)?;
    if merge_val {
        let val_spec = spec.with_split(Split::Val);
        let extra = load(&val_spec)?;
        append(&mut train_set, extra).with_context(|| format!("merging {val_spec}"))?;
    }
    Ok(train_set)
}

/// The training progress bar (also drawn by other fine-tuning commands).
pub(crate) struct Bar {
    bar: Option<ProgressBar>,
    started: std::time::Instant,
    epochs_done: usize,
}

impl Bar {
    pub(crate) fn new(quiet: bool) -> Bar {
        let bar = (!quiet).then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Bar {
            bar,
            started: std::time::Instant::now(),
            epochs_done: 0,
        }
    }

    /// Removes the bar once the run is over.
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(batches as u64);
            bar.set_position(0);
            // Whole-run ETA from the epochs finished in this invocation.
            let remaining = epochs + 1 - epoch;
            let eta = (self.epochs_done > 0).then(|| {
                let per = self.started.elapsed().as_secs_f64() / self.epochs_done as f64;
                let secs = (per * remaining as f64) as u64;
                format!(" (run ETA {}:{:02})", secs / 60, secs % 60)
            });
            bar.set_prefix(format!("epoch {epoch}/{epochs}{}", eta.unwrap_or_default()));
        }
    }

    fn batch_done(&mut self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4} acc {accuracy:.3}"));
        }
    }

    fn epoch_done(&mut self, r: &EpochReport, is_best: bool) {
        self.epochs_done += 1;
        let val = match (r.validation_accuracy, r.validation_macro_f1) {
            (Some(a), Some(f)) => format!("  val acc {a:.4} F1 {f:.4}"),
            _ => String::new(),
        };
        let line = format!(
            "epoch {:3}  lr {:.5}  loss {:.4}  acc {:.4}{val}  {:.2}s{}",
            r.epoch,
            r.learning_rate,
            r.train_loss,
            r.train_accuracy,
            r.train_seconds,
            if is_best { "  *" } else { "" }
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

pub(crate) fn load(spec: &DataSpec) -> Result<kinglet_data::Dataset> {
    kinglet_data::spec::load_labelled(spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))
}

pub fn run(args: TrainArgs) -> Result<()> {
    let init = args
        .init
        .as_ref()
        .map(|p| {
            kinglet_train::TrainedModel::load(p).with_context(|| format!("loading {}", p.display()))
        })
        .transpose()?;
    let arch = match (&args.arch, &init) {
        (Some(name), Some(model)) => {
            let arch = Architecture::resolve(name)?;
            if arch != model.architecture {
                bail!(
                    "--arch {name} differs from the architecture of the --init model (`{}`); leave --arch out to use the model's",
                    model.architecture.name
                );
            }
            arch
        }
        (Some(name), None) => Architecture::resolve(name)?,
        (None, Some(model)) => model.architecture.clone(),
        (None, None) => bail!("--arch is required (or --init with a trained model)"),
    };
    let spec = args.data.train_spec()?;
    let train_set = load_train(&spec, args.data.merge_val)?;
    if let Some(dir) = &args.export_inputs {
        return export_inputs(&arch, &train_set, dir);
    }
    let val_spec = args.data.val_spec(&spec)?;
    let val_set = val_spec.as_ref().map(load).transpose()?;
    eprintln!(
        "training `{}` ({} parameters) on {} windows of {spec}{}{}",
        arch.name,
        arch.parameter_count(train_set.class_names.len()),
        train_set.len(),
        if args.data.merge_val { " + val" } else { "" },
        match (&val_spec, &val_set) {
            (Some(s), Some(v)) => format!(", selecting on {} windows of {s}", v.len()),
            _ => String::new(),
        }
    );
    if args.qat {
        return run_qat(
            &args,
            &arch,
            init.as_ref(),
            &train_set,
            val_set.as_ref(),
            &spec,
        );
    }
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| with_suffix(&args.out, ".ckpt"));
    if !args.resume && checkpoint.exists() {
        bail!(
            "{} exists: pass --resume to continue that run, or delete it to start over",
            checkpoint.display()
        );
    }
    let options = TrainOptions {
        seed: args.seed,
        epochs: args.epochs,
        checkpoint: Some(checkpoint.clone()),
        resume: args.resume,
        stop_after: args.stop_after,
        data_description: match &args.teacher {
            Some(t) => format!(
                "{spec}, distilled from {} (weight {})",
                t.display(),
                args.teacher_weight
            ),
            None => spec.to_string(),
        },
        teacher: args
            .teacher
            .as_ref()
            .map(|p| {
                kinglet_train::TrainedModel::load(p)
                    .with_context(|| format!("loading the teacher {}", p.display()))
                    .map(|model| kinglet_train::distill::Teacher {
                        model,
                        weight: args.teacher_weight,
                    })
            })
            .transpose()?,
        ..Default::default()
    };
    let mut progress = Bar::new(args.quiet);
    let outcome =
        kinglet_train::train(&arch, &train_set, val_set.as_ref(), &options, &mut progress)?;
    progress.clear();
    if let Some(path) = &args.history {
        let json = serde_json::to_vec_pretty(&outcome.history)?;
        kinglet_train::model_file::write_atomic(path, &json)?;
    }
    if !outcome.complete {
        eprintln!(
            "stopped after {} epochs; checkpoint {} (continue with --resume)",
            outcome.history.len(),
            checkpoint.display()
        );
        return Ok(());
    }
    outcome.model.save(&args.out)?;
    let p = &outcome.model.provenance;
    let mean_epoch: f64 = outcome.history.iter().map(|r| r.train_seconds).sum::<f64>()
        / outcome.history.len().max(1) as f64;
    eprintln!(
        "wrote {} (best epoch {}{}; {:.2} s/epoch)",
        args.out.display(),
        p.best_epoch,
        p.validation_accuracy
            .map(|a| format!(", val accuracy {a:.4}"))
            .unwrap_or_default(),
        mean_epoch
    );
    // The model is complete; the checkpoint is only needed to resume.
    let _ = std::fs::remove_file(&checkpoint);
    Ok(())
}

/// `--qat`: quantisation-aware training from scratch or from `--init`; no checkpoint (QAT
/// runs are short).
fn run_qat(
    args: &TrainArgs,
    arch: &Architecture,
    init: Option<&kinglet_train::TrainedModel>,
    train_set: &kinglet_data::Dataset,
    val_set: Option<&kinglet_data::Dataset>,
    spec: &DataSpec,
) -> Result<()> {
    if args.resume || args.checkpoint.is_some() || args.stop_after.is_some() {
        bail!("--qat runs keep no checkpoint: --resume and --checkpoint do not apply");
    }
    let options = kinglet_train::qat::QatOptions {
        seed: args.seed,
        epochs: args.epochs.unwrap_or(if init.is_some() {
            1
        } else {
            arch.training.epochs
        }),
        learning_rate: args.lr,
        ema_decay: args.ema_decay,
        data_description: spec.to_string(),
        weight_bits: match &args.bits {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|b| {
                    b.trim()
                        .parse::<u32>()
                        .map_err(|_| anyhow::anyhow!("--bits {text}: '{b}' is not a bit width"))
                })
                .collect::<Result<_>>()?,
        },
    };
    eprintln!(
        "quantisation-aware training of `{}` for {} epoch(s){}",
        arch.name,
        options.epochs,
        match &args.init {
            Some(p) => format!(", starting from {}", p.display()),
            None => " from scratch".into(),
        }
    );
    let mut progress = Bar::new(args.quiet);
    let outcome =
        kinglet_train::qat::train_qat(arch, init, train_set, val_set, &options, &mut progress)?;
    progress.clear();
    if let Some(path) = &args.history {
        let json = serde_json::to_vec_pretty(&outcome.history)?;
        kinglet_train::model_file::write_atomic(path, &json)?;
    }
    outcome.model.save(&args.out)?;
    let ranges = kinglet_train::qat::QatState::ranges_of(&outcome.model)?.len();
    let clips = kinglet_train::qat::WeightQuant::clips_of(&outcome.model)?.len();
    eprintln!(
        "wrote {} ({ranges} activation ranges, {clips} learned weight clippings{})",
        args.out.display(),
        outcome
            .model
            .provenance
            .validation_accuracy
            .map(|a| format!(", fake-quantised val accuracy {a:.4}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Appends `extra`'s samples to `data`; both must come from the same source layout.
fn append(data: &mut kinglet_data::Dataset, extra: kinglet_data::Dataset) -> Result<()> {
    if extra.sample_shape != data.sample_shape
        || extra.channel_names != data.channel_names
        || extra.class_names != data.class_names
    {
        bail!("the splits differ in sample shape, channels or classes");
    }
    data.data.extend_from_slice(&extra.data);
    data.labels.extend_from_slice(&extra.labels);
    data.subjects = match (data.subjects.take(), extra.subjects) {
        (Some(mut a), Some(b)) => {
            a.extend_from_slice(&b);
            Some(a)
        }
        _ => None,
    };
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Minimal `.npy` (version 1.0) writer: little-endian, C order.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    kinglet_train::model_file::write_atomic(path, &bytes)?;
    Ok(())
}

fn export_inputs(arch: &Architecture, data: &kinglet_data::Dataset, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let norm = if arch.training.normalise {
        kinglet_train::ChannelNormalisation::fit(data)?
    } else {
        kinglet_train::ChannelNormalisation::identity(&data.channel_names)
    };
    let prepared = kinglet_train::inputs::prepare(arch, data, &norm)?;
    for (branch, input) in arch.branches.iter().zip(&prepared.branches) {
        // Channels-first in memory → [n, time, channels] for Keras.
        let n = prepared.len();
        let mut bytes = Vec::with_capacity(input.data.len() * 4);
        for i in 0..n {
            let s = input.sample(i);
            for t in 0..input.length {
                for c in 0..input.channels {
                    bytes.extend_from_slice(&s[c * input.length + t].to_le_bytes());
                }
            }
        }
        write_npy(
            &dir.join(format!("x_{}.npy", branch.name)),
            "<f4",
            &[n, input.length, input.channels],
            &bytes,
        )?;
    }
    let y: Vec<u8> = prepared
        .targets
        .iter()
        .flat_map(|&t| (t as i32).to_le_bytes())
        .collect();
    write_npy(&dir.join("y.npy"), "<i4", &[prepared.len()], &y)?;
    eprintln!("wrote {} samples to {}", prepared.len(), dir.display());
    Ok(())
}
