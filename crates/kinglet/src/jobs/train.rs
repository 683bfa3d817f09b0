//! `kinglet train` as a library call: resolve the architecture (or take the `--init` model's),
//! load the training split (with `val` merged in on request) and the validation split, then
//! train, or train quantisation-aware, and write the `.kgl` model, its history and checkpoint.
//! The data helpers are shared with the other jobs that fine-tune with the training loop
//! (`prune`, `separable`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_train::{Architecture, Progress, TrainOptions};

/// What a training job tells its user: kinglet-train's per-batch and per-epoch progress, and
/// lines about what it trains on and what it wrote. The closing lines come after
/// [`TrainFeedback::training_done`], so a progress display can be taken down before them.
pub trait TrainFeedback: Progress {
    /// One line of news (the `kinglet` command prints it on standard error).
    fn note(&mut self, line: &str);
    /// The training loop is over.
    fn training_done(&mut self) {}
}

/// No progress and no notes, for programs that only want the model file.
impl TrainFeedback for kinglet_train::Silent {
    fn note(&mut self, _line: &str) {}
}

/// Which windows a job trains and selects on.
#[derive(Debug, Clone, Default)]
pub struct DataChoice {
    /// Training data, e.g. `hapt:../shared/data/hapt.zip` (split `train` unless given).
    pub data: String,
    /// Validation data for best-epoch selection (default: the same source's `val` split).
    pub val: Option<String>,
    /// Train without a validation split (keeps the last epoch).
    pub no_val: bool,
    /// Train on the `val` split as well (no epoch selection then).
    pub merge_val: bool,
}

impl DataChoice {
    /// The training spec, on its `train` split unless one was given.
    pub fn train_spec(&self) -> Result<DataSpec> {
        train_spec(&self.data)
    }

    /// The validation split: `val`, else the source's `val` split, or none with `no_val` /
    /// `merge_val`.
    pub fn val_spec(&self, train: &DataSpec) -> Result<Option<DataSpec>> {
        Ok(match (&self.val, self.no_val || self.merge_val) {
            (_, true) => None,
            (Some(v), _) => Some(DataSpec::parse(v)?),
            (None, false) => Some(train.with_split(Split::Val)),
        })
    }
}

/// A data spec, on its `train` split unless one was given.
pub fn train_spec(data: &str) -> Result<DataSpec> {
    let spec = DataSpec::parse(data)?;
    Ok(if spec.split_given {
        spec
    } else {
        spec.with_split(Split::Train)
    })
}

/// Loads the training split, with the source's `val` split appended when `merge_val`.
pub fn load_train(spec: &DataSpec, merge_val: bool) -> Result<kinglet_data::Dataset> {
    let mut train_set = load(spec)?;
    if merge_val {
        let val_spec = spec.with_split(Split::Val);
        let extra = load(&val_spec)?;
        train_set
            .append(extra)
            .with_context(|| format!("merging {val_spec}"))?;
    }
    Ok(train_set)
}

/// Loads a labelled split, naming it in the error.
pub fn load(spec: &DataSpec) -> Result<kinglet_data::Dataset> {
    kinglet_data::spec::load_labelled(spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))
}

/// Everything `kinglet train` is told.
#[derive(Debug, Clone, Default)]
pub struct TrainJob {
    /// Preset name or architecture `.toml` file; optional with `init` (its architecture).
    pub arch: Option<String>,
    pub data: DataChoice,
    /// Overrides the architecture's number of epochs.
    pub epochs: Option<usize>,
    pub seed: u64,
    /// Where the trained model goes (`.kgl`).
    pub out: PathBuf,
    /// Checkpoint written after every epoch (default: `<out>.ckpt`).
    pub checkpoint: Option<PathBuf>,
    /// Insist on continuing from the checkpoint (an error if there is none); a checkpoint
    /// present is resumed anyway.
    pub resume: bool,
    /// Discard an existing checkpoint and start over.
    pub restart: bool,
    /// Stop after this many epochs (checkpoint kept, no model written).
    pub stop_after: Option<usize>,
    /// Where the per-epoch history goes as JSON.
    pub history: Option<PathBuf>,
    /// Quantisation-aware training (from scratch, or fine-tuning `init`).
    pub qat: Option<QatChoice>,
    /// A trained model to start from (needs `qat`).
    pub init: Option<PathBuf>,
    /// Knowledge distillation from this trained model, with this share of each target.
    pub teacher: Option<(PathBuf, f32)>,
    /// Instead of training, write the prepared training inputs as `.npy` files here.
    pub export_inputs: Option<PathBuf>,
    /// Nested widths (`0.25,0.5,0.75,1.0`): train one slimmable network whose leading channels
    /// at every width form a classifier (see `kinglet_train::slim`).
    pub widths: Option<String>,
    /// How the narrower widths normalise (only with `widths`).
    pub width_norm: kinglet_train::arch::WidthNorm,
}

/// The settings of quantisation-aware training.
#[derive(Debug, Clone)]
pub struct QatChoice {
    /// Constant learning rate (default: the schedule's, or a tenth of its last when fine-tuning).
    pub lr: Option<f64>,
    /// Decay of the moving averages tracking activation min/max.
    pub ema_decay: f32,
    /// Weight bit widths: one for all weighted layers or one per layer (`8,4,4,2,8`).
    pub bits: Option<String>,
    /// Learn the activation ranges (LSQ-style) once the moving averages have found them.
    pub learned_ranges: bool,
}

/// Runs `kinglet train`: see the module documentation.
pub fn run(job: &TrainJob, feedback: &mut dyn TrainFeedback) -> Result<()> {
    let init = job
        .init
        .as_ref()
        .map(|p| {
            kinglet_train::TrainedModel::load(p).with_context(|| format!("loading {}", p.display()))
        })
        .transpose()?;
    let mut arch = match (&job.arch, &init) {
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
    if let Some(widths) = &job.widths {
        if init.is_some() {
            bail!(
                "--widths trains a nested network from scratch; it does not combine with --init (a nested --init model keeps its widths)"
            );
        }
        arch.widths = kinglet_train::slim::parse_widths(widths)?;
        arch.width_norm = job.width_norm;
        arch.validate()
            .map_err(kinglet_train::Error::Architecture)
            .with_context(|| format!("--widths {widths} on `{}`", arch.name))?;
    }
    let spec = job.data.train_spec()?;
    let train_set = load_train(&spec, job.data.merge_val)?;
    if let Some(dir) = &job.export_inputs {
        return export_inputs(&arch, &train_set, dir, feedback);
    }
    let val_spec = job.data.val_spec(&spec)?;
    let val_set = val_spec.as_ref().map(load).transpose()?;
    feedback.note(&format!(
        "training `{}` ({} parameters) on {} windows of {spec}{}{}",
        arch.name,
        arch.parameter_count(train_set.class_names.len()),
        train_set.len(),
        if job.data.merge_val { " + val" } else { "" },
        match (&val_spec, &val_set) {
            (Some(s), Some(v)) => format!(", selecting on {} windows of {s}", v.len()),
            _ => String::new(),
        }
    ));
    if let Some(qat) = &job.qat {
        let sets = (&train_set, val_set.as_ref());
        return run_qat(job, qat, &arch, init.as_ref(), sets, &spec, feedback);
    }
    let checkpoint = job
        .checkpoint
        .clone()
        .unwrap_or_else(|| with_suffix(&job.out, ".ckpt"));
    // A rerun with the same arguments continues where a killed run stopped; a checkpoint of
    // another run is refused by the training loop rather than silently discarded.
    if job.restart && checkpoint.exists() {
        std::fs::remove_file(&checkpoint)
            .with_context(|| format!("removing {}", checkpoint.display()))?;
    }
    let resuming = checkpoint.exists();
    if resuming {
        feedback.note(&format!("resuming from {}", checkpoint.display()));
    } else if job.resume {
        bail!(
            "--resume: {} does not exist (nothing to continue)",
            checkpoint.display()
        );
    }
    let options = TrainOptions {
        seed: job.seed,
        epochs: job.epochs,
        checkpoint: Some(checkpoint.clone()),
        resume: resuming,
        stop_after: job.stop_after,
        data_description: data_description(job, &spec),
        teacher: load_teacher(job)?,
        ..Default::default()
    };
    let outcome = kinglet_train::train(&arch, &train_set, val_set.as_ref(), &options, feedback)
        .with_context(|| {
            if resuming {
                format!(
                    "resuming from {} (pass --restart to discard it and start over)",
                    checkpoint.display()
                )
            } else {
                "training".to_string()
            }
        })?;
    feedback.training_done();
    write_history(job, &outcome.history)?;
    if !outcome.complete {
        feedback.note(&format!(
            "stopped after {} epochs; checkpoint {} (continue with --resume)",
            outcome.history.len(),
            checkpoint.display()
        ));
        return Ok(());
    }
    outcome.model.save(&job.out)?;
    let p = &outcome.model.provenance;
    let mean_epoch: f64 = outcome.history.iter().map(|r| r.train_seconds).sum::<f64>()
        / outcome.history.len().max(1) as f64;
    feedback.note(&format!(
        "wrote {} (best epoch {}{}; {:.2} s/epoch)",
        job.out.display(),
        p.best_epoch,
        p.validation_accuracy
            .map(|a| format!(", val accuracy {a:.4}"))
            .unwrap_or_default(),
        mean_epoch
    ));
    // A nested model's printed validation accuracy is the mean over widths; show each.
    if let Some(val) = val_set.as_ref().filter(|_| !arch.widths.is_empty()) {
        let mut each = Vec::new();
        for &w in &arch.widths {
            let narrow = kinglet_train::slim::slice_model(&outcome.model, w)?;
            let c = kinglet_train::evaluate(&narrow, val)?;
            each.push(format!("{w}: {:.4}", c.accuracy()));
        }
        feedback.note(&format!(
            "validation accuracy per width: {}",
            each.join(", ")
        ));
    }
    // The model is complete; the checkpoint is only needed to resume.
    let _ = std::fs::remove_file(&checkpoint);
    Ok(())
}

fn write_history(job: &TrainJob, history: &[kinglet_train::train::EpochReport]) -> Result<()> {
    if let Some(path) = &job.history {
        let json = serde_json::to_vec_pretty(history)?;
        kinglet_train::model_file::write_atomic(path, &json)?;
    }
    Ok(())
}

/// The data a model learnt from, as its provenance records it (the teacher included).
fn data_description(job: &TrainJob, spec: &DataSpec) -> String {
    match &job.teacher {
        Some((t, weight)) => format!("{spec}, distilled from {} (weight {weight})", t.display()),
        None => spec.to_string(),
    }
}

fn load_teacher(job: &TrainJob) -> Result<Option<kinglet_train::distill::Teacher>> {
    job.teacher
        .as_ref()
        .map(|(p, weight)| {
            kinglet_train::TrainedModel::load(p)
                .with_context(|| format!("loading the teacher {}", p.display()))
                .map(|model| kinglet_train::distill::Teacher {
                    model,
                    weight: *weight,
                })
        })
        .transpose()
}

/// Quantisation-aware training from scratch or from `init`; no checkpoint (QAT runs are short).
fn run_qat(
    job: &TrainJob,
    qat: &QatChoice,
    arch: &Architecture,
    init: Option<&kinglet_train::TrainedModel>,
    (train_set, val_set): (&kinglet_data::Dataset, Option<&kinglet_data::Dataset>),
    spec: &DataSpec,
    feedback: &mut dyn TrainFeedback,
) -> Result<()> {
    if job.resume || job.restart || job.checkpoint.is_some() || job.stop_after.is_some() {
        bail!("--qat runs keep no checkpoint: --resume, --restart and --checkpoint do not apply");
    }
    let options = kinglet_train::qat::QatOptions {
        seed: job.seed,
        epochs: job.epochs.unwrap_or(if init.is_some() {
            1
        } else {
            arch.training.epochs
        }),
        learning_rate: qat.lr,
        ema_decay: qat.ema_decay,
        data_description: data_description(job, spec),
        // The layer count is the network's; train_qat checks the list against it.
        weight_bits: match &qat.bits {
            None => Vec::new(),
            Some(text) => kinglet_compress::subbyte::parse_bit_list(text)
                .with_context(|| format!("--bits {text}"))?,
        },
        teacher: load_teacher(job)?,
        learn_ranges: qat.learned_ranges,
    };
    feedback.note(&format!(
        "quantisation-aware training of `{}` for {} epoch(s){}",
        arch.name,
        options.epochs,
        match &job.init {
            Some(p) => format!(", starting from {}", p.display()),
            None => " from scratch".into(),
        }
    ));
    let outcome =
        kinglet_train::qat::train_qat(arch, init, train_set, val_set, &options, feedback)?;
    feedback.training_done();
    write_history(job, &outcome.history)?;
    outcome.model.save(&job.out)?;
    let ranges = kinglet_train::qat::QatState::ranges_of(&outcome.model)?.len();
    let clips = kinglet_train::qat::WeightQuant::clips_of(&outcome.model)?.len();
    feedback.note(&format!(
        "wrote {} ({ranges} activation ranges, {clips} learned weight clippings{})",
        job.out.display(),
        outcome
            .model
            .provenance
            .validation_accuracy
            .map(|a| format!(", fake-quantised val accuracy {a:.4}"))
            .unwrap_or_default()
    ));
    Ok(())
}

/// Appends `extra`'s samples to `data`; both must come from the same source layout.
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

/// The prepared (normalised) training inputs as `x_<branch>.npy` ([n, time, channels], the
/// layout Keras reads) and `y.npy`, for benchmarks against other frameworks.
fn export_inputs(
    arch: &Architecture,
    data: &kinglet_data::Dataset,
    dir: &Path,
    feedback: &mut dyn TrainFeedback,
) -> Result<()> {
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
    feedback.note(&format!(
        "wrote {} samples to {}",
        prepared.len(),
        dir.display()
    ));
    Ok(())
}
