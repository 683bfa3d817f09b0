//! `kinglet modes` as a library call: every operating mode of one nested-width network.
//!
//! Each width of the `.kgl` is exported as an ordinary model, quantised to int8 (calibrated on
//! the validation windows) and measured in QEMU (Cortex-M4 instructions of the compiled
//! firmware). Every width then scores every validation and test window once (kinglet-graph's
//! reference kernels, which the firmware follows), and the modes are replayed over those scores
//! through `kinglet_adapt_core::WidthMode`, the decision code a device shares:
//! - fixed modes: one width;
//! - adaptive modes: a chain of widths (any subset, narrowest first, at least two) with a
//!   confidence measure (max probability or top-2 margin) and a threshold. Thresholds are
//!   chosen on the validation windows: of the grid, those on the chain and measure's
//!   validation fronts (no other threshold is as accurate, or agrees as often with the full
//!   width, for less).
//!
//! The recommended adaptive mode is chosen on validation too, by default as the cheapest whose
//! labels differ from the full width's on at most a `max_loss` share of every validation
//! subject's windows ([`Recommend::Agreement`]): a mode's accuracy can fall below the full
//! width's by at most the share of windows on which the two disagree, a share that needs no
//! label, and the worst subject stands in for unseen ones. Validation accuracy did not carry
//! over (the narrower widths of HAPT-trained networks score above the full width on HAPT's
//! validation subjects and below it on the official test windows). [`Recommend::Accuracy`]
//! is the earlier rule: the cheapest whose validation accuracy is at most `max_loss` below
//! the full width's.
//!
//! A window's cost is the sum of the measured instructions of the widths it ran.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use kinglet_adapt::BoardProfile;
use kinglet_adapt_core::{ConfidenceMeasure, StepError, WidthMode, softmax_in_place};
use kinglet_compile::nested::Layout;
use kinglet_data::Dataset;
use kinglet_data::metrics::Classification;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::{Graph, TfliteKernels};
use kinglet_train::TrainedModel;
use kinglet_train::arch::WidthNorm;
use kinglet_train::model_file::write_atomic;
use serde::Serialize;

/// Everything `kinglet modes` is told.
#[derive(Debug, Clone)]
pub struct ModesJob {
    /// A nested-width `.kgl` model (`kinglet train --widths`).
    pub model: PathBuf,
    /// Windows the modes are scored on (split `test` unless given).
    pub data: String,
    /// Windows the thresholds are chosen on (and int8 calibrated on); default: the model's
    /// training source's `val` split is not known here, so the `--data` source's `val` split.
    pub validation: Option<String>,
    pub out: PathBuf,
    /// Threshold grid of the adaptive modes (each in [0, 1]).
    pub thresholds: Vec<f32>,
    /// Largest loss (fraction, e.g. 0.003) against the full width, on validation, for the
    /// recommended adaptive mode: share of windows labelled otherwise, or accuracy drop (see
    /// [`Recommend`]).
    pub max_loss: f64,
    /// How the recommended adaptive mode reads validation.
    pub recommend: Recommend,
    /// Board profiles for energy (default: the built-in ones).
    pub boards_dir: Option<PathBuf>,
    /// Skip QEMU: cost in MACs instead of measured instructions (said so in every output).
    pub no_firmware: bool,
    /// Where firmware builds go.
    pub work_dir: PathBuf,
    /// Run this many test windows on a device core with the battery-aware example policy
    /// switching modes as the charge drains (`--device-stream N`).
    pub device_stream: Option<usize>,
    /// The core of the device stream (`--target`, a `kinglet_compile::target` name).
    pub target: String,
    /// The device stream's modes for a well-charged, a half-charged and a low cell, as mode
    /// ids of this run's table (`--device-modes`); default: full width, the recommended
    /// adaptive mode, narrowest width.
    pub device_modes: Option<[usize; 3]>,
    /// How the device stream's widths share the image (kinglet-compile `nested`): a schedule
    /// each, one schedule with shapes in tables, or the full width's schedule at its strides.
    /// The last two only for a shared-scale network.
    pub layout: Layout,
    /// Quantisation of every width: `int8`, or 4- or 2-bit weights with int8 activations
    /// (`w4a8`, `w2a8`; each width quantised with scales of its own, so no shared blob).
    pub scheme: String,
}

/// The quantisation schemes `kinglet modes` takes.
pub const SCHEMES: [&str; 3] = ["int8", "w4a8", "w2a8"];

/// How the recommended adaptive mode is chosen on the validation windows (the cheapest mode
/// there that passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recommend {
    /// Its labels differ from the full width's on at most `max_loss` of the windows of every
    /// validation subject.
    Agreement,
    /// Its accuracy is at most `max_loss` below the full width's.
    Accuracy,
}

impl Recommend {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "agreement" => Ok(Self::Agreement),
            "accuracy" => Ok(Self::Accuracy),
            other => bail!("--recommend `{other}`: expected `agreement` or `accuracy`"),
        }
    }

    /// The rule as the report states it ("the cheapest adaptive mode whose …").
    fn describe(self, max_loss: f64) -> String {
        let share = max_loss * 100.0;
        match self {
            Self::Agreement => format!(
                "labels differ from the full width's on at most {share:.2} % of every validation subject's windows"
            ),
            Self::Accuracy => {
                format!("validation accuracy is at most {share:.2} pp below the full width's")
            }
        }
    }
}

/// The battery policy of the device stream: (least remaining charge %, index into
/// [`DeviceStream::modes`]): the full width while the cell is well charged, the recommended
/// adaptive mode in the middle, the narrowest width when it runs low.
pub const BATTERY_LEVELS: [(u8, u8); 3] = [(60, 0), (25, 1), (0, 2)];

/// One mode of the device stream, as measured on the device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceMode {
    /// Index into `modes` of the report.
    pub mode: usize,
    pub widths: Vec<f64>,
    pub rule: String,
    pub threshold: Option<f32>,
    /// Windows it ran, and their mean and worst instructions on the device.
    pub windows: usize,
    pub mean_instructions: f64,
    pub worst_instructions: u64,
    pub accuracy: f64,
}

/// The modes switched at run time on an emulated device, beside the host simulator.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStream {
    pub target: String,
    pub windows: usize,
    /// The policy: (least charge %, index into `modes` below).
    pub battery_levels: Vec<(u8, u8)>,
    pub modes: Vec<DeviceMode>,
    /// Windows before which the device switched, and to which of `modes`.
    pub switches: Vec<(usize, u8)>,
    pub shared_arena_bytes: u64,
    /// The weight blob every width read (a shared-scale network), with the constants the
    /// widths keep of their own; `None` when each width carried its own weights.
    pub blob: Option<kinglet_compile::nested::BlobMemory>,
    /// Flash of the image (every width, the mode table, the policy, the embedded windows),
    /// and of the same image holding only the full width: their difference is everything the
    /// modes add, code included.
    pub image_flash_bytes: u64,
    pub full_width_alone_flash_bytes: u64,
    /// Mean instructions per window of that full-width-only image on the same stream.
    pub full_width_alone_mean_instructions: f64,
}

/// One width of the network as measured.
#[derive(Debug, Clone, Serialize)]
pub struct WidthRow {
    pub width: f64,
    pub parameters: usize,
    pub macs: u64,
    /// Cortex-M4 instructions per inference (QEMU), or `None` with `--no-firmware`.
    pub instructions: Option<u64>,
    /// Weight bytes of the width's quantised model (sub-byte weights packed).
    pub weight_bytes: usize,
    pub flash_bytes: Option<u64>,
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    /// The width's quantised model (`.tflite`).
    pub model: String,
    /// With `--full-stride`: Cortex-M4 instructions per window of this width in the
    /// full-stride image (input conversion included), the cost the modes are priced at.
    pub full_stride_instructions: Option<u64>,
}

/// One operating mode scored on the test windows.
#[derive(Debug, Clone, Serialize)]
pub struct ModeRow {
    pub id: usize,
    /// The chain's widths, narrowest first.
    pub widths: Vec<f64>,
    /// `fixed`, `max-prob` or `margin`.
    pub rule: String,
    pub threshold: Option<f32>,
    pub validation_accuracy: f64,
    /// Share of validation windows it labels as the full width does, on the validation
    /// subject where that share is lowest.
    pub validation_agreement: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Mean and worst-case cost per window (instructions, or MACs with `--no-firmware`).
    pub mean_cost: f64,
    pub worst_cost: u64,
    /// Share of windows that ran each width of the chain.
    pub ran: Vec<f64>,
    /// Mean inference energy per window per board, µJ (`None` without the board's figures).
    pub energy_uj: Vec<(String, Option<f64>)>,
    pub pareto: bool,
}

/// What `kinglet modes` writes to `modes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ModesReport {
    pub model: String,
    /// Quantisation of the widths ([`SCHEMES`]).
    pub scheme: String,
    pub data: String,
    pub validation: String,
    /// `instructions (QEMU mps2-an386, Cortex-M4)` or the MAC fallback's label.
    pub cost_unit: String,
    pub widths: Vec<WidthRow>,
    pub modes: Vec<ModeRow>,
    /// The cheapest adaptive mode on validation that passes `recommend` at `max_loss`, if any.
    pub recommended: Option<usize>,
    pub max_loss: f64,
    pub recommend: Recommend,
    pub memory: Memory,
    /// `--device-stream`: the modes switched at run time on a device core.
    pub device: Option<DeviceStream>,
}

/// Bytes the mode machinery adds to the full-width quantised network.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Weights of the full width, as stored (sub-byte ones packed).
    pub full_weight_bytes: usize,
    /// Per-output-channel int32 biases of every width below 1 (each width folds its own batch
    /// norm into them).
    pub per_width_bias_bytes: usize,
    /// Per-output-channel requantisation of every width below 1 (int32 multiplier and int32
    /// shift, TFLM's layout) where it is not the full width's (a shared-scale network shares
    /// all of it).
    pub per_width_requant_bytes: usize,
    /// Weights of narrower widths that differ from the full width's at the same position
    /// (0 for a shared-scale network, whose widths read one blob; every narrower weight for
    /// sub-byte widths, quantised each with scales of its own). Compared over the leading
    /// block, so a flattening head's first dense layer, whose narrow rows are strided in the
    /// full weight, counts as differing: an upper bound there.
    pub differing_weight_bytes: usize,
    /// Mode table: per mode a width mask, a measure byte and an f32 threshold; every mode of
    /// the report, and the Pareto modes (what a device would carry).
    pub mode_table_bytes: usize,
    pub pareto_mode_table_bytes: usize,
}

/// Reads a comma-separated list of numbers, each in [0, 1].
pub fn parse_unit_list(text: &str, what: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|s| {
            let v: f64 = s
                .trim()
                .parse()
                .with_context(|| format!("{what} `{}` is not a number", s.trim()))?;
            ensure!((0.0..=1.0).contains(&v), "{what} {v} is outside [0, 1]");
            Ok(v)
        })
        .collect()
}

fn load_split(text: &str, default: Split) -> Result<(DataSpec, Dataset)> {
    let mut spec = DataSpec::parse(text)?;
    if !spec.split_given {
        spec = spec.with_split(default);
    }
    let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
        .with_context(|| format!("loading {spec}"))?;
    Ok((spec, data))
}

/// Class probabilities of an int8 graph on every window of `data`, after the model's input
/// standardisation.
fn probabilities(graph: &Graph, model: &TrainedModel, data: &Dataset) -> Result<Vec<Vec<f32>>> {
    let norm = &model.normalisation;
    norm.check_rate(data)?;
    let c_all = data.channels();
    let affine: Vec<(f32, f32)> = data
        .channel_names
        .iter()
        .map(|c| {
            norm.channels
                .iter()
                .position(|n| n == c)
                .map_or((0.0, 1.0), |i| (norm.mean[i], norm.std[i]))
        })
        .collect();
    let windows: Vec<f32> = data
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (m, s) = affine[i % c_all];
            (v - m) / s
        })
        .collect();
    let layout = kinglet_adapt::models::input_layout(graph, "width", &data.channel_names)?;
    let step = data.sample_shape[0] * c_all;
    let out = kinglet_graph::eval::evaluate_f32_with_kernels(
        graph,
        &layout,
        windows.chunks_exact(step),
        c_all,
        TfliteKernels::Reference,
    )?;
    Ok(out
        .scores
        .into_iter()
        .map(|mut s| {
            softmax_in_place(&mut s);
            s
        })
        .collect())
}

/// A mode's validation figures when it was chosen on a chain's validation front.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Chosen {
    accuracy: f64,
    /// Share of windows labelled as the full width labels them (worst validation subject).
    agreement: f64,
    mean_cost: f64,
}

/// A mode replayed over per-width probabilities: predictions, per-window cost, runs per width.
struct Replay {
    predictions: Vec<u32>,
    costs: Vec<u64>,
    ran: Vec<usize>,
}

fn replay(mode: &WidthMode, probs: &[Vec<Vec<f32>>], cost: &[u64]) -> Result<Replay> {
    let n = probs.first().map_or(0, Vec::len);
    let chain = mode.chain();
    let mut r = Replay {
        predictions: Vec::with_capacity(n),
        costs: Vec::with_capacity(n),
        ran: vec![0; chain.len()],
    };
    let widest = probs.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let mut buffer = vec![0f32; widest];
    for window in 0..n {
        // The decision code a device runs (`WidthMode::classify`), over the stored scores.
        let step = mode
            .classify(&mut buffer, |width, out: &mut [f32]| {
                let scores = probs
                    .get(usize::from(width))
                    .and_then(|p| p.get(window))
                    .context("a width scored fewer windows")?;
                out.get_mut(..scores.len())
                    .context("scores longer than the buffer")?
                    .copy_from_slice(scores);
                Ok::<usize, anyhow::Error>(scores.len())
            })
            .map_err(|e| match e {
                StepError::Model(e) => e,
                StepError::Mode(e) => anyhow::anyhow!("window {window}: {e:?}"),
            })?;
        let mut spent = 0;
        for (stage, &width) in chain.iter().enumerate() {
            if step.ran & (1 << width) != 0 {
                spent += cost[usize::from(width)];
                r.ran[stage] += 1;
            }
        }
        r.predictions.push(u32::from(step.label));
        r.costs.push(spent);
    }
    Ok(r)
}

fn accuracy(data: &Dataset, predictions: &[u32]) -> Classification {
    Classification::new(&data.class_names, &data.labels, predictions)
}

/// Mean inference energy (µJ) of `instructions` on `board`, as `kinglet cascade` prices it.
/// The counts are Cortex-M4 ones, so a board with another core (Cortex-M3, RV32IMC) is left
/// unpriced ("—") rather than priced from another core's count.
fn energy_uj(board: &BoardProfile, instructions: f64) -> Option<f64> {
    if kinglet_adapt::energy::core_id(&board.core) != "cortex-m4" {
        return None;
    }
    let active_ua = board.active_ua_per_mhz? * board.clock_mhz;
    Some(
        active_ua * board.supply_v * instructions * board.cycles_per_instruction
            / (board.clock_mhz * 1e6),
    )
}

fn rule_name(measure: ConfidenceMeasure) -> &'static str {
    match measure {
        ConfidenceMeasure::MaxProbability => "max-prob",
        ConfidenceMeasure::Margin => "margin",
        ConfidenceMeasure::Entropy => "entropy",
    }
}

/// Runs `kinglet modes`: see the module documentation. Returns the report it wrote.
pub fn run(job: &ModesJob, log: &mut dyn std::io::Write) -> Result<ModesReport> {
    if !SCHEMES.contains(&job.scheme.as_str()) {
        bail!(
            "--scheme {}: `kinglet modes` quantises widths to {} (mixed per-layer widths and float schemes are not modes' yet)",
            job.scheme,
            SCHEMES.join(", ")
        );
    }
    let sub_byte = job.scheme != "int8";
    if job.layout != Layout::PerWidth && sub_byte {
        bail!(
            "--one-schedule and --full-stride run every width from the full width's int8 weight blob: they need --scheme int8 (sub-byte widths are quantised each with scales of its own)"
        );
    }
    if job.layout != Layout::PerWidth && job.device_stream.is_none() {
        bail!("--one-schedule and --full-stride shape the device image: they need --device-stream");
    }
    if job.no_firmware && job.device_stream.is_some() {
        bail!("--device-stream runs the modes on an emulated device: drop --no-firmware");
    }
    if let Some(t) = job.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
        bail!("threshold {t} is outside [0, 1]: confidences are probabilities or margins");
    }
    let model = TrainedModel::load(&job.model)
        .with_context(|| format!("loading {}", job.model.display()))?;
    let widths = model.architecture.widths.clone();
    if widths.is_empty() {
        bail!(
            "{} has no nested widths: `kinglet modes` needs a model trained with `kinglet train --widths`",
            job.model.display()
        );
    }
    let (test_spec, test) = load_split(&job.data, Split::Test)?;
    let val_text = match &job.validation {
        Some(v) => v.clone(),
        None => DataSpec::parse(&job.data)?
            .with_split(Split::Val)
            .to_string(),
    };
    let (val_spec, val) = load_split(&val_text, Split::Val)?;
    let boards = match &job.boards_dir {
        Some(dir) => BoardProfile::load_dir(dir)?,
        None => BoardProfile::built_in()?,
    };
    let dir = job.out.join("widths");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut rows = Vec::new();
    let mut graphs = Vec::new();
    let (mut val_probs, mut test_probs) = (Vec::new(), Vec::new());
    // A model trained with QAT quantises with its recorded ranges, which belong to uncentred
    // logits; every width then leaves its logits uncentred, so that a shared-scale width's
    // head weights stay the leading rows of the full width's.
    let trained_with_qat = !kinglet_train::qat::QatState::ranges_of(&model)?.is_empty();
    // Each width as an ordinary model, quantised on its own.
    let quantise = |w: f64| -> Result<(TrainedModel, PathBuf, Graph)> {
        let narrow = kinglet_train::slim::slice_model(&model, w)?;
        let kgl = dir.join(format!("w{w}.kgl"));
        narrow.save(&kgl)?;
        let int8 = dir.join(format!("w{w}.{}.tflite", job.scheme));
        let q = super::quantize::QuantizeJob {
            model: kgl.clone(),
            data: val_spec.to_string(),
            bits: None,
            scheme: job.scheme.clone(),
            min_elements: 1024,
            calibration: "minmax".into(),
            ranges: "auto".into(),
            windows: 300,
            float_io: false,
            per_tensor_dense: false,
            logit_clip: if trained_with_qat { "off" } else { "16" }.into(),
            eval: None,
            out: int8.clone(),
            dense_weights: false,
            budget: Default::default(),
        };
        super::quantize::run(&q, &mut std::io::sink())
            .with_context(|| format!("quantising width {w}"))?;
        let graph = kinglet_graph::tflite::read_tflite_file(&int8)?;
        Ok((narrow, int8, graph))
    };
    let quantised = widths
        .iter()
        .map(|&w| quantise(w))
        .collect::<Result<Vec<_>>>()?;
    // A shared-scale network's narrower widths read the full width's int8 weights and
    // requantisation (kinglet_compress::nested). Widths ascend to the full width
    // (kinglet_train::slim checks it when training).
    let shared_blob = model.architecture.width_norm == WidthNorm::SharedScale && !sub_byte;
    if sub_byte && model.architecture.width_norm == WidthNorm::SharedScale {
        writeln!(
            log,
            "{}: each width keeps weights of its own (the one-blob image shares int8 weights only)",
            job.scheme
        )?;
    }
    let full_int8 = match quantised.last() {
        Some((_, _, graph)) if shared_blob => Some(graph.clone()),
        _ => None,
    };
    let full_width = *widths.last().context("no widths")?;
    for (&w, (narrow, int8, mut graph)) in widths.iter().zip(quantised) {
        if let (Some(full), true) = (&full_int8, w < full_width) {
            let (shared, found) = kinglet_compress::nested::share_full_width(full, &graph)
                .with_context(|| format!("width {w} over the full width's weights"))?;
            writeln!(
                log,
                "width {w}: the full width's int8 weights × {:?} (largest difference from its own quantisation: {:.2} of what rounding explains)",
                found.factors, found.worst_step_difference
            )?;
            kinglet_graph::tflite::write_tflite_file(&shared, &int8)?;
            graph = shared;
        }
        let (instructions, flash) = if job.no_firmware {
            (None, None)
        } else {
            let len = graph
                .inputs
                .iter()
                .map(|&id| graph.tensor(id).elements())
                .sum();
            let p = kinglet_compile::firmware::profile_with(
                &graph,
                &format!("w{w}"),
                &kinglet_compile::testinput::lcg_input(len),
                kinglet_compile::qemu::FirmwareKernels::Dsp,
                kinglet_compile::firmware::Lang::Rust,
                &job.work_dir,
                true,
            )
            .with_context(|| format!("profiling width {w} on QEMU mps2-an386"))?;
            ensure!(
                p.outputs == p.host_outputs && p.known_loop_instructions == 3001,
                "width {w}: QEMU outputs differ from the host interpreter's"
            );
            (Some(p.instructions), Some(p.flash_bytes))
        };
        let vp = probabilities(&graph, &narrow, &val)?;
        let tp = probabilities(&graph, &narrow, &test)?;
        let argmaxes = |p: &[Vec<f32>]| -> Vec<u32> {
            p.iter()
                .map(|s| kinglet_adapt_core::argmax(s).unwrap_or(0) as u32)
                .collect()
        };
        let row = WidthRow {
            width: w,
            parameters: narrow.parameter_count(),
            macs: graph.total_macs(),
            instructions,
            weight_bytes: graph.weight_bytes(),
            flash_bytes: flash,
            validation_accuracy: accuracy(&val, &argmaxes(&vp)).accuracy(),
            test_accuracy: accuracy(&test, &argmaxes(&tp)).accuracy(),
            model: int8.display().to_string(),
            full_stride_instructions: None,
        };
        writeln!(
            log,
            "width {w}: {} MACs, {} instructions, validation {:.4}, test {:.4}",
            row.macs,
            row.instructions
                .map_or("(not measured)".into(), |i| i.to_string()),
            row.validation_accuracy,
            row.test_accuracy
        )?;
        rows.push(row);
        graphs.push(graph);
        val_probs.push(vp);
        test_probs.push(tp);
    }
    // A full-stride image runs a narrower width at another cost than its own image: the
    // table prices every width as that image runs it.
    let cost: Vec<u64> = if job.layout == Layout::FullStride {
        ensure!(
            shared_blob,
            "--full-stride runs every width in the full width's schedule: train the network with `--width-norm shared-scale`"
        );
        let int8: Vec<PathBuf> = rows.iter().map(|r| PathBuf::from(&r.model)).collect();
        let costs = full_stride_costs(job, &test, &int8)?;
        for (r, c) in rows.iter_mut().zip(&costs) {
            r.full_stride_instructions = Some(*c);
            writeln!(
                log,
                "width {}: {c} instructions per window in the full-stride image",
                r.width
            )?;
        }
        costs
    } else {
        rows.iter()
            .map(|r| r.instructions.unwrap_or(r.macs))
            .collect()
    };

    // Candidate modes: fixed widths, then each chain × measure × validation-chosen threshold.
    let k = widths.len();
    let full = k - 1;
    let full_val = replay(&WidthMode::fixed(full as u8), &val_probs, &cost)?.predictions;
    // Agreement with the full width's labels on the validation subject where it is lowest
    // (all windows as one when the data names no subjects): the subject, not the window,
    // is what varies between validation and deployment.
    let subjects: Vec<u32> = match &val.subjects {
        Some(s) if s.len() == full_val.len() => s.clone(),
        _ => vec![0; full_val.len()],
    };
    let agreement = |predictions: &[u32]| {
        let mut per_subject: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
        for ((p, f), s) in predictions.iter().zip(&full_val).zip(&subjects) {
            let e = per_subject.entry(*s).or_default();
            e.0 += usize::from(p == f);
            e.1 += 1;
        }
        per_subject
            .values()
            .map(|&(same, n)| same as f64 / n.max(1) as f64)
            .fold(1.0, f64::min)
    };
    // Each mode with its validation figures when it was chosen on a front.
    let mut modes: Vec<(WidthMode, Option<Chosen>)> =
        (0..k).map(|i| (WidthMode::fixed(i as u8), None)).collect();
    for mask in 1u32..(1 << k) {
        let chain: Vec<u8> = (0..k as u8).filter(|i| mask & (1 << i) != 0).collect();
        if chain.len() < 2 {
            continue;
        }
        for measure in [ConfidenceMeasure::MaxProbability, ConfidenceMeasure::Margin] {
            let mut scored = Vec::new();
            for &t in &job.thresholds {
                let mode = WidthMode::new(&chain, measure, t)
                    .map_err(|e| anyhow::anyhow!("mode {chain:?} threshold {t}: {e:?}"))?;
                let r = replay(&mode, &val_probs, &cost)?;
                let chosen = Chosen {
                    accuracy: accuracy(&val, &r.predictions).accuracy(),
                    agreement: agreement(&r.predictions),
                    mean_cost: r.costs.iter().sum::<u64>() as f64 / r.costs.len().max(1) as f64,
                };
                scored.push((mode, chosen));
            }
            // The thresholds on this chain's validation fronts (accuracy, and agreement with
            // the full width, against cost): none cheaper is as accurate, or agrees as often.
            for (mode, c) in &scored {
                let on_front = |key: fn(&Chosen) -> f64| {
                    !scored.iter().any(|(_, o)| {
                        key(o) >= key(c)
                            && o.mean_cost <= c.mean_cost
                            && (key(o) > key(c) || o.mean_cost < c.mean_cost)
                    })
                };
                let same_point = |m: &(WidthMode, Option<Chosen>)| {
                    m.1.is_some_and(|o| o == *c)
                        && m.0.chain() == mode.chain()
                        && m.0.measure() == mode.measure()
                };
                if (on_front(|o| o.accuracy) || on_front(|o| o.agreement))
                    && !modes.iter().any(same_point)
                {
                    modes.push((*mode, Some(*c)));
                }
            }
        }
    }

    let mut out_rows = Vec::new();
    for (id, (mode, _)) in modes.iter().enumerate() {
        let v = replay(mode, &val_probs, &cost)?;
        let t = replay(mode, &test_probs, &cost)?;
        let c = accuracy(&test, &t.predictions);
        let n = t.costs.len().max(1) as f64;
        let mean = t.costs.iter().sum::<u64>() as f64 / n;
        let fixed = mode.chain().len() == 1;
        out_rows.push(ModeRow {
            id,
            widths: mode.chain().iter().map(|&i| widths[i as usize]).collect(),
            rule: if fixed {
                "fixed".into()
            } else {
                rule_name(mode.measure()).into()
            },
            threshold: (!fixed).then(|| mode.threshold()),
            validation_accuracy: accuracy(&val, &v.predictions).accuracy(),
            validation_agreement: agreement(&v.predictions),
            accuracy: c.accuracy(),
            macro_f1: c.macro_f1(),
            mean_cost: mean,
            worst_cost: t.costs.iter().copied().max().unwrap_or(0),
            ran: t.ran.iter().map(|&r| r as f64 / n).collect(),
            energy_uj: boards
                .iter()
                .map(|b| {
                    let e = if job.no_firmware {
                        None
                    } else {
                        energy_uj(b, mean)
                    };
                    (b.id.clone(), e)
                })
                .collect(),
            pareto: false,
        });
    }
    // Pareto on the test windows: no other mode is at least as accurate and cheaper.
    let frontier: Vec<bool> = out_rows
        .iter()
        .map(|a| {
            !out_rows.iter().any(|b| {
                b.accuracy >= a.accuracy
                    && b.mean_cost <= a.mean_cost
                    && (b.accuracy > a.accuracy || b.mean_cost < a.mean_cost)
            })
        })
        .collect();
    for (r, p) in out_rows.iter_mut().zip(frontier) {
        r.pareto = p;
    }
    // Modes 0..k are the fixed widths in order.
    let full_val_accuracy = out_rows.get(full).map_or(0.0, |m| m.validation_accuracy);
    let passes = |c: &Chosen| match job.recommend {
        Recommend::Agreement => c.agreement >= 1.0 - job.max_loss - 1e-12,
        Recommend::Accuracy => c.accuracy >= full_val_accuracy - job.max_loss - 1e-12,
    };
    let recommended = modes
        .iter()
        .enumerate()
        .filter_map(|(i, (_, c))| c.filter(|c| passes(c)).map(|c| (i, c.mean_cost)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let memory = memory(
        &graphs,
        out_rows.len(),
        out_rows.iter().filter(|m| m.pareto).count(),
    )?;
    let device = match job.device_stream {
        Some(n) => {
            let int8: Vec<PathBuf> = rows.iter().map(|r| PathBuf::from(&r.model)).collect();
            let picked = match job.device_modes {
                Some(ids) => {
                    if let Some(&bad) = ids.iter().find(|&&i| i >= modes.len()) {
                        bail!(
                            "--device-modes: mode {bad} is out of range: the table has {} modes (ids 0 to {}, see modes.md)",
                            modes.len(),
                            modes.len() - 1
                        );
                    }
                    ids
                }
                None => device_modes(&modes, recommended, k)?,
            };
            let chosen = picked.map(|i| modes[i].0);
            let stream = device_stream(
                job,
                n,
                &test,
                &int8,
                (&picked, chosen),
                &out_rows,
                shared_blob,
            )?;
            writeln!(
                log,
                "device stream on {}: {} windows, {} switches, every window as the host simulator",
                stream.target,
                stream.windows,
                stream.switches.len()
            )?;
            Some(stream)
        }
        None => None,
    };
    let report = ModesReport {
        model: job.model.display().to_string(),
        scheme: job.scheme.clone(),
        data: test_spec.to_string(),
        validation: val_spec.to_string(),
        cost_unit: if job.no_firmware {
            "MACs (--no-firmware: MAC-proportional estimate, not measured instructions)".into()
        } else if job.layout == Layout::FullStride {
            "instructions per window in the full-stride image (Cortex-M4, QEMU mps2-an386, input conversion included)".into()
        } else {
            "instructions (Cortex-M4, QEMU mps2-an386, compiled firmware)".into()
        },
        widths: rows,
        modes: out_rows,
        recommended,
        max_loss: job.max_loss,
        recommend: job.recommend,
        memory,
        device,
    };
    write_atomic(
        &job.out.join("modes.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(&job.out.join("modes.md"), markdown(&report).as_bytes())?;
    write_atomic(&job.out.join("modes.svg"), plot(&report)?.as_bytes())?;
    Ok(report)
}

/// The device stream's three modes, as indices into `modes`: the full width, the recommended
/// adaptive mode (else the cheapest adaptive one on a validation front), the narrowest width.
fn device_modes(
    modes: &[(WidthMode, Option<Chosen>)],
    recommended: Option<usize>,
    k: usize,
) -> Result<[usize; 3]> {
    let fixed = |w: usize| {
        modes
            .iter()
            .position(|(m, _)| m.chain() == [w as u8])
            .context("no fixed mode for a width")
    };
    let balanced = match recommended {
        Some(r) => r,
        None => modes
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.map(|c| (i, c.mean_cost)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
            .context("no adaptive mode to run between the full and the narrowest width")?,
    };
    Ok([fixed(k - 1)?, balanced, fixed(0)?])
}

/// The widths' quantised models as the device images load them.
fn load_widths(
    int8: &[PathBuf],
    test: &Dataset,
) -> Result<Vec<super::cascade::models::LoadedModel>> {
    int8.iter()
        .map(|p| super::cascade::models::load_model(p, test))
        .collect()
}

/// The loaded widths as the firmware cascade takes them.
fn cascade_models(
    loaded: &[super::cascade::models::LoadedModel],
) -> Vec<kinglet_adapt::firmware::CascadeModel<'_>> {
    loaded
        .iter()
        .map(|m| kinglet_adapt::firmware::CascadeModel {
            name: &m.name,
            graph: &m.graph,
            normalise: m.normalise.as_ref(),
        })
        .collect()
}

/// With `--full-stride`: each width's Cortex-M4 instructions per window in the full-stride
/// image, measured in QEMU on the first test windows, every width a fixed mode over a share
/// of them (and checked against the host simulator like the device stream).
fn full_stride_costs(job: &ModesJob, test: &Dataset, int8: &[PathBuf]) -> Result<Vec<u64>> {
    use kinglet_adapt::firmware::{FloatWindows, StreamWindows};
    use kinglet_adapt::firmware_modes::{ModePlan, compare_with_host_on};
    let k = int8.len();
    let windows = kinglet_adapt::models::WindowData::from_dataset(test)?;
    // Four windows a width: a width's cost hardly varies between windows (BENCHMARKS.md).
    let count = (4 * k).min(windows.n);
    ensure!(count >= k, "fewer test windows than widths to measure");
    let stream = StreamWindows::Float(FloatWindows::take(&windows, 0, count)?);
    let loaded = load_widths(int8, test)?;
    let widths = cascade_models(&loaded);
    let modes = (0..k).map(|w| WidthMode::fixed(w as u8)).collect();
    // Width w while the draining charge is at least its share: the widths in turn.
    let levels = (0..k)
        .map(|w| ((100 * (k - 1 - w) / k) as u8, w as u8))
        .collect();
    let plan = ModePlan::draining(modes, levels, count);
    let blob = kinglet_adapt::firmware_modes::compile_blob(&widths, Layout::FullStride)?;
    let cmp = compare_with_host_on(
        &kinglet_compile::target::CortexM4,
        &widths,
        &plan,
        &stream,
        &job.work_dir.join("full-stride-costs"),
        Some(&blob),
    )?;
    ensure!(
        cmp.mismatched.is_empty(),
        "the full-stride image differs from the host simulator on windows {:?}",
        cmp.mismatched
    );
    let per_mode = cmp.firmware.per_mode();
    (0..k)
        .map(|w| {
            per_mode
                .iter()
                .find(|(m, _, _)| usize::from(*m) == w)
                .map(|(_, _, mean)| mean.round() as u64)
                .with_context(|| format!("width {w} did not run in the full-stride measurement"))
        })
        .collect()
}

/// `--device-stream`: the picked modes in one image on `job.target`, the battery policy
/// switching them as the charge drains over the first `n` test windows, beside the host
/// simulator.
fn device_stream(
    job: &ModesJob,
    n: usize,
    test: &Dataset,
    int8: &[PathBuf],
    (picked, chosen): (&[usize; 3], [WidthMode; 3]),
    rows: &[ModeRow],
    shared_blob: bool,
) -> Result<DeviceStream> {
    use kinglet_adapt::firmware::{FloatWindows, StreamWindows};
    use kinglet_adapt::firmware_modes::{ModePlan, compare_with_host_on};
    let target = kinglet_compile::target::by_name(&job.target).with_context(|| {
        format!(
            "--target {}: expected one of {}",
            job.target,
            kinglet_compile::target::names().join(", ")
        )
    })?;
    ensure!(n > 0, "--device-stream needs at least one window");
    let windows = kinglet_adapt::models::WindowData::from_dataset(test)?;
    let count = n.min(windows.n);
    let stream = StreamWindows::Float(FloatWindows::take(&windows, 0, count)?);
    let loaded = load_widths(int8, test)?;
    let widths = cascade_models(&loaded);
    let plan = ModePlan::draining(chosen.to_vec(), BATTERY_LEVELS.to_vec(), count);
    ensure!(
        shared_blob || job.layout == Layout::PerWidth,
        "--one-schedule and --full-stride need the widths to share one weight blob: train the network with `--width-norm shared-scale`"
    );
    // A shared-scale network's widths read one weight blob on the device.
    let blob = if shared_blob {
        Some(kinglet_adapt::firmware_modes::compile_blob(
            &widths, job.layout,
        )?)
    } else {
        None
    };
    let cmp = compare_with_host_on(
        target,
        &widths,
        &plan,
        &stream,
        &job.work_dir,
        blob.as_ref(),
    )?;
    ensure!(
        cmp.mismatched.is_empty(),
        "the device's modes differ from the host simulator's on windows {:?}",
        cmp.mismatched
    );
    // The same stream with the full width alone in an image of its own weights: what the
    // modes add to flash, and what reading the blob costs the full width.
    let alone_plan = ModePlan::draining(vec![WidthMode::fixed(0)], vec![(0, 0)], count);
    let alone = kinglet_adapt::firmware_modes::run_in_qemu_on(
        target,
        widths.get(widths.len().saturating_sub(1)..).unwrap_or(&[]),
        &alone_plan,
        &stream,
        &job.work_dir.join("full-width-alone"),
        None,
    )?;
    let fw = &cmp.firmware;
    let device_modes = picked
        .iter()
        .enumerate()
        .map(|(slot, &mode)| {
            let ran: Vec<usize> = (0..count)
                .filter(|&i| usize::from(fw.windows[i].mode) == slot)
                .collect();
            let counts: Vec<u64> = ran.iter().map(|&i| fw.instructions[i]).collect();
            let correct = ran
                .iter()
                .filter(|&&i| u32::from(fw.windows[i].label) == test.labels[i])
                .count();
            let r = &rows[mode];
            DeviceMode {
                mode,
                widths: r.widths.clone(),
                rule: r.rule.clone(),
                threshold: r.threshold,
                windows: ran.len(),
                mean_instructions: counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64,
                worst_instructions: counts.iter().copied().max().unwrap_or(0),
                accuracy: correct as f64 / ran.len().max(1) as f64,
            }
        })
        .collect();
    Ok(DeviceStream {
        target: target.name().to_string(),
        windows: count,
        battery_levels: BATTERY_LEVELS.to_vec(),
        modes: device_modes,
        switches: fw.switches.clone(),
        shared_arena_bytes: fw.shared_arena_bytes,
        blob: blob.map(|b| b.memory),
        image_flash_bytes: fw.image_flash_bytes,
        full_width_alone_flash_bytes: alone.image_flash_bytes,
        full_width_alone_mean_instructions: alone.instructions.iter().sum::<u64>() as f64
            / alone.instructions.len().max(1) as f64,
    })
}

/// Memory the modes add, from the int8 graphs of the widths (the last one is the full width).
/// One weighted layer as [`memory`] compares widths: filter shape, stored weight bytes, per
/// output channel the requantisation ratio, and whether the values are packed sub-byte
/// integers.
type LayerWeights = (Vec<usize>, Vec<u8>, Vec<f64>, bool);

fn memory(graphs: &[Graph], modes: usize, pareto_modes: usize) -> Result<Memory> {
    // Per weighted op: filter shape and int8 values, and per output channel the ratio
    // `s_in · s_w / s_out` its requantisation multiplier is made from.
    let weights = |g: &Graph| -> Vec<LayerWeights> {
        g.ops
            .iter()
            .filter_map(|op| {
                let t = g.tensor(*op.inputs.get(1)?);
                let channels = op.inputs.get(2).map(|&b| g.tensor(b).elements())?;
                let scale = |id: kinglet_graph::TensorId| {
                    g.tensor(id).quant.as_ref().map(|q| q.scale.clone())
                };
                let (s_in, s_w, s_out) = (
                    scale(op.inputs[0])?,
                    scale(op.inputs[1])?,
                    scale(*op.outputs.first()?)?,
                );
                let ratios = (0..channels)
                    .map(|c| {
                        f64::from(s_in[0]) * f64::from(s_w[c.min(s_w.len() - 1)])
                            / f64::from(s_out[0])
                    })
                    .collect();
                matches!(
                    t.dtype,
                    kinglet_graph::DType::I8 | kinglet_graph::DType::I4 | kinglet_graph::DType::I2
                )
                .then(|| {
                    let packed = t.dtype != kinglet_graph::DType::I8;
                    (
                        t.shape.clone(),
                        t.data.clone().unwrap_or_default(),
                        ratios,
                        packed,
                    )
                })
            })
            .collect()
    };
    let full = weights(graphs.last().context("no widths")?);
    let full_weight_bytes = full.iter().map(|(_, d, _, _)| d.len()).sum();
    let (mut biases, mut requant, mut differing) = (0, 0, 0);
    for g in &graphs[..graphs.len() - 1] {
        let narrow = weights(g);
        ensure!(narrow.len() == full.len(), "widths differ in layer count");
        for ((ns, nd, nr, packed), (fs, fd, fr, _)) in narrow.iter().zip(&full) {
            biases += nr.len();
            // A channel whose multiplier is made from the same ratio can read the full
            // width's requantisation.
            requant += nr
                .iter()
                .enumerate()
                .filter(|&(c, r)| fr.get(c).is_none_or(|f| f.to_bits() != r.to_bits()))
                .count();
            if *packed {
                // Sub-byte widths are quantised each with scales of its own: every narrower
                // weight is stored apart.
                differing += nd.len();
                continue;
            }
            let at = kinglet_graph::leading_block_indices(ns, fs)
                .context("a narrower filter is not a leading block of the full width's")?;
            differing += at
                .iter()
                .zip(nd)
                .filter(|&(&j, v)| fd.get(j) != Some(v))
                .count();
        }
    }
    Ok(Memory {
        full_weight_bytes,
        per_width_bias_bytes: 4 * biases,
        per_width_requant_bytes: 8 * requant,
        differing_weight_bytes: differing,
        mode_table_bytes: modes * 6,
        pareto_mode_table_bytes: pareto_modes * 6,
    })
}

fn markdown(r: &ModesReport) -> String {
    let mut s = format!(
        "# Operating modes of {}\n\nScored on `{}`; thresholds chosen on `{}`. Cost: {}.\n\n",
        r.model, r.data, r.validation, r.cost_unit
    );
    s += &format!(
        "| width | parameters | MACs | instructions | {} weights (B) | validation | test |\n|---|---:|---:|---:|---:|---:|---:|\n",
        r.scheme
    );
    for w in &r.widths {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.2} % | {:.2} % |\n",
            w.width,
            w.parameters,
            w.macs,
            w.instructions.map_or("—".into(), |i| i.to_string()),
            w.weight_bytes,
            w.validation_accuracy * 100.0,
            w.test_accuracy * 100.0
        );
    }
    let boards: Vec<&str> = r
        .modes
        .first()
        .map(|m| m.energy_uj.iter().map(|(b, _)| b.as_str()).collect())
        .unwrap_or_default();
    s += &format!(
        "\n{} modes, {} on the Pareto front (★: no mode is as accurate for less).\n\n",
        r.modes.len(),
        r.modes.iter().filter(|m| m.pareto).count()
    );
    s += "| mode | widths | rule | threshold | validation | agrees with full (worst val subject) | accuracy | macro-F1 | mean cost | worst cost | share running each width |";
    for b in &boards {
        s += &format!(" µJ {b} |");
    }
    s += "\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|";
    s += &"---:|".repeat(boards.len());
    s += "\n";
    for m in &r.modes {
        let widths: Vec<String> = m.widths.iter().map(|w| w.to_string()).collect();
        let ran: Vec<String> = m
            .ran
            .iter()
            .map(|x| format!("{:.0} %", x * 100.0))
            .collect();
        s += &format!(
            "| {}{} | {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {:.4} | {:.0} | {} | {} |",
            m.id,
            if m.pareto { " ★" } else { "" },
            widths.join("→"),
            m.rule,
            m.threshold.map_or("—".into(), |t| format!("{t}")),
            m.validation_accuracy * 100.0,
            m.validation_agreement * 100.0,
            m.accuracy * 100.0,
            m.macro_f1,
            m.mean_cost,
            m.worst_cost,
            ran.join(" / ")
        );
        for (_, e) in &m.energy_uj {
            s += &format!(" {} |", e.map_or("—".into(), |e| format!("{e:.2}")));
        }
        s += "\n";
    }
    let full = r
        .modes
        .iter()
        .find(|m| m.rule == "fixed" && m.widths == [1.0]);
    match (r.recommended.and_then(|i| r.modes.get(i)), full) {
        (Some(m), Some(f)) => {
            s += &format!(
                "\nRecommended (chosen on validation: the cheapest adaptive mode whose {}): mode {}, \
                 test accuracy {:.2} % vs {:.2} % for the full width ({:+.2} pp), mean cost {:.0} \
                 vs {:.0} ({:.3}×).\n",
                r.recommend.describe(r.max_loss),
                m.id,
                m.accuracy * 100.0,
                f.accuracy * 100.0,
                (m.accuracy - f.accuracy) * 100.0,
                m.mean_cost,
                f.mean_cost,
                m.mean_cost / f.mean_cost.max(1.0)
            );
        }
        _ => {
            s += &format!(
                "\nNo adaptive mode's {}.\n",
                r.recommend.describe(r.max_loss)
            )
        }
    }
    let mem = &r.memory;
    let share = |b: usize| 100.0 * b as f64 / mem.full_weight_bytes.max(1) as f64;
    s += &format!(
        "\nMemory: full-width {scheme} weights {} B; narrower widths' own int32 biases {} B ({:.1} %) \
         and requantisation {} B ({:.1} %); mode table {} B for all {} modes, {} B for the Pareto \
         ones ({:.1} %); weights of narrower widths that differ from the full width's {} B.\n",
        mem.full_weight_bytes,
        mem.per_width_bias_bytes,
        share(mem.per_width_bias_bytes),
        mem.per_width_requant_bytes,
        share(mem.per_width_requant_bytes),
        mem.mode_table_bytes,
        r.modes.len(),
        mem.pareto_mode_table_bytes,
        share(mem.pareto_mode_table_bytes),
        mem.differing_weight_bytes,
        scheme = r.scheme
    );
    if let Some(d) = &r.device {
        s += &format!(
            "\n## Switched at run time on the device ({}, {} test windows)\n\n\
             One image holds every width and the mode table; before each window a battery-aware \
             policy reads the remaining charge (draining from 100 % to 0 % over the stream) and \
             `set_mode` switches when its choice changes. The device's mode, widths run and label \
             equal the host simulator's on every window (the command fails otherwise). Shared \
             arena: {} B.\n\n\
             | charge | mode | widths | rule | windows | accuracy | mean instructions | worst |\n\
             |---|---:|---|---|---:|---:|---:|---:|\n",
            d.target, d.windows, d.shared_arena_bytes
        );
        for (slot, m) in d.modes.iter().enumerate() {
            let level = d
                .battery_levels
                .iter()
                .find(|(_, k)| usize::from(*k) == slot)
                .map_or("—".to_string(), |(least, _)| format!("≥ {least} %"));
            let widths: Vec<String> = m.widths.iter().map(|w| w.to_string()).collect();
            s += &format!(
                "| {level} | {} | {} | {}{} | {} | {:.2} % | {:.0} | {} |\n",
                m.mode,
                widths.join(" → "),
                m.rule,
                m.threshold.map_or(String::new(), |t| format!(" {t}")),
                m.windows,
                m.accuracy * 100.0,
                m.mean_instructions,
                m.worst_instructions
            );
        }
        let switches: Vec<String> = d
            .switches
            .iter()
            .map(|(at, k)| match d.modes.get(usize::from(*k)) {
                Some(m) => format!("before window {at} to mode {}", m.mode),
                None => format!("before window {at} to slot {k}"),
            })
            .collect();
        s += &format!("\nSwitches: {}.\n", switches.join("; "));
        let added = d
            .image_flash_bytes
            .saturating_sub(d.full_width_alone_flash_bytes);
        s += &format!(
            "\nFlash: {} B for this image against {} B for the same image with only the full \
             width: the modes add {} B ({:.1} % of the full width's {} weights), code included. \
             The full width alone runs the stream at {:.0} instructions per window.\n",
            d.image_flash_bytes,
            d.full_width_alone_flash_bytes,
            added,
            100.0 * added as f64 / r.memory.full_weight_bytes.max(1) as f64,
            r.scheme,
            d.full_width_alone_mean_instructions
        );
        s += &match &d.blob {
            Some(b) => format!(
                "\nOne weight blob: every width read the full width's weights ({} B as stored, \
                 {} B int8) and requantisation ({} B); the narrower widths kept {} B of biases \
                 and {} B of requantisation of their own. {}\n",
                b.blob_weight_bytes,
                b.full_int8_weight_bytes,
                b.blob_requant_bytes,
                b.narrower_bias_bytes,
                b.narrower_requant_bytes,
                if b.full_stride {
                    "Every width ran the full width's schedule at its strides: the leading output \
                     channels of each layer, the others set to the zero point."
                } else if b.one_schedule {
                    "The widths shared one schedule, their shapes and biases in tables."
                } else {
                    "Each width ran a schedule of its own."
                }
            ),
            None => "\nEach width carried weights of its own (a network trained without \
                     `--width-norm shared-scale`).\n"
                .into(),
        };
    }
    s
}

/// Accuracy against mean cost, Pareto modes highlighted.
fn plot(r: &ModesReport) -> Result<String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing the plot: {e}");
    let x_max = r.modes.iter().map(|m| m.mean_cost).fold(0.0, f64::max) * 1.1 + 1.0;
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for m in &r.modes {
        y_lo = y_lo.min(m.accuracy * 100.0);
        y_hi = y_hi.max(m.accuracy * 100.0);
    }
    let pad = ((y_hi - y_lo) * 0.1).max(0.2);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .caption("operating modes: accuracy against cost", ("sans-serif", 16))
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max / 1000.0, (y_lo - pad)..(y_hi + pad).min(100.0))
            .map_err(|e| err(&e))?;
        let unit = if r.cost_unit.starts_with("MACs") {
            "mean MACs per window (thousands; estimate)"
        } else {
            "mean Cortex-M4 instructions per window (thousands)"
        };
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|e| err(&e))?;
        let point = |m: &ModeRow| (m.mean_cost / 1000.0, m.accuracy * 100.0);
        chart
            .draw_series(
                r.modes
                    .iter()
                    .filter(|m| !m.pareto)
                    .map(|m| Circle::new(point(m), 3, RGBColor(150, 150, 150).filled())),
            )
            .map_err(|e| err(&e))?;
        let mut front: Vec<&ModeRow> = r.modes.iter().filter(|m| m.pareto).collect();
        front.sort_by(|a, b| a.mean_cost.total_cmp(&b.mean_cost));
        chart
            .draw_series(LineSeries::new(front.iter().map(|m| point(m)), &RED))
            .map_err(|e| err(&e))?;
        for m in front {
            chart
                .draw_series(std::iter::once(Circle::new(point(m), 5, RED.filled())))
                .map_err(|e| err(&e))?;
            let label: Vec<String> = m.widths.iter().map(|w| w.to_string()).collect();
            chart
                .draw_series(std::iter::once(Text::new(
                    label.join("→"),
                    point(m),
                    ("sans-serif", 11).into_font(),
                )))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
