//! `kinglet cascade` as a library call: runs a big–little strategy over a window stream in
//! time order (models from files, or outputs recorded in a CSV), optionally calibrating its
//! threshold on a validation split first, and prices the run on the board profiles; or, with
//! `target` `cortex-m4`, runs the firmware cascade in QEMU beside the host simulator.

mod firmware;
pub(crate) mod models;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kinglet_adapt::calibrate::{Calibration, calibrate, parse_budget};
use kinglet_adapt::energy::{Cell, CostTable, Sensor, System, price_run_every};
use kinglet_adapt::report::{CascadeRecord, StreamCounts};
use kinglet_adapt::strategy::{StrategyKind, parse_measure};
use kinglet_adapt::{
    BoardProfile, OutputKind, RecordedStream, StrategySpec, evaluate_scored, simulate,
};
use kinglet_data::spec::{DataSpec, Split};
use kinglet_graph::TfliteKernels;

pub use firmware::FirmwareCascade;
use models::open_stream;

/// Everything `kinglet cascade` is told; the fields are its options (see `kinglet cascade
/// --help` for each one's meaning and default).
#[derive(Debug, Clone)]
pub struct CascadeJob {
    /// big-only, 1b6s, 1b1d, 1bdd, confidence, temporal-confidence or signature.
    pub strategy: String,
    /// Big model (`.tflite` or `.kgl`).
    pub big: Option<PathBuf>,
    /// Little models: one per class for 1b6s, multi-class ones for the confidence strategies.
    pub little: Vec<PathBuf>,
    /// Dual model for 1b1d.
    pub dual: Option<PathBuf>,
    /// Windows in time order (split `test` unless given).
    pub data: Option<String>,
    /// Per-window model outputs recorded in a CSV, instead of models and data.
    pub outputs: Option<PathBuf>,
    /// `logits` or `probabilities`.
    pub outputs_kind: String,
    /// `seed` (the seed's uint8 min-max scaling) or `none`.
    pub input_scaling: String,
    pub threshold: Option<f64>,
    /// Signature strategy: one distance threshold per class.
    pub thresholds: Vec<f64>,
    /// Confidence measure: max, margin or entropy.
    pub measure: String,
    pub hysteresis: f64,
    pub little_model: u8,
    pub min_interval: u32,
    pub max_interval: u32,
    pub confirm: u8,
    pub settle: u8,
    /// Calibrate the threshold within this accuracy budget of Big-only, e.g. `0.5pp`.
    pub budget: Option<String>,
    /// Calibration data (default: the `val` split of `data`), or a recorded-outputs CSV.
    pub validation: Option<String>,
    pub tflite_kernels: TfliteKernels,
    /// Board profile id for the headline energy.
    pub board: String,
    /// Board profiles (default `boards/` when there is one, else the built-in ones).
    pub boards_dir: Option<PathBuf>,
    /// Instruction counts per inference: a named table or a JSON cost table.
    pub costs: String,
    /// Cost overrides, `KEY=INSTRUCTIONS` or `KEY=PROFILE.json`.
    pub cost: Vec<String>,
    pub battery_mah: f64,
    /// The IMU counted in battery life: `bmi160`, `none` or a sensor profile `.toml`.
    pub sensor: String,
    /// Read the IMU once per FIFO batch (else once per sample).
    pub fifo: bool,
    /// Where the full record goes (JSON).
    pub save: Option<PathBuf>,
    /// Where the per-window decisions go (CSV).
    pub decisions: Option<PathBuf>,
    /// `host`, `cortex-m4`, `cortex-m3` or `riscv32`.
    pub target: String,
    /// Where a firmware target builds its firmware (default: kinglet's work folder).
    pub work_dir: Option<PathBuf>,
    /// Windows embedded in the firmware for a firmware target.
    pub firmware_windows: usize,
}

/// What a cascade run measured.
#[derive(Debug)]
pub enum CascadeOutcome {
    /// On the host: the record `kinglet report` reads (see [`CascadeRecord::summary_text`]).
    Host(Box<CascadeRecord>),
    /// On an emulated core (`--target cortex-m4`, `cortex-m3` or `riscv32`).
    Firmware(Box<FirmwareCascade>),
}

/// The strategy `job` describes, checked.
pub fn strategy_spec(job: &CascadeJob) -> Result<StrategySpec> {
    let kind = StrategyKind::parse(&job.strategy)?;
    let mut spec = StrategySpec::new(kind);
    if job.threshold.is_some() {
        spec.threshold = job.threshold;
    }
    parse_measure(&job.measure)?;
    spec.measure = job.measure.clone();
    spec.hysteresis = job.hysteresis;
    spec.little_model = job.little_model;
    spec.min_big_interval = job.min_interval;
    spec.max_big_interval = job.max_interval;
    spec.confirm_windows = job.confirm;
    spec.settle_windows = job.settle;
    if !job.thresholds.is_empty() {
        if kind != StrategyKind::Signature {
            bail!("--thresholds is for the signature strategy (use --threshold)");
        }
        spec.thresholds = job.thresholds.clone();
    }
    spec.to_core()?;
    Ok(spec)
}

/// Runs `kinglet cascade`: on the host, the record (also written to `save`, with the
/// decisions to `decisions`); on a core (`cortex-m4`, `cortex-m3`, `riscv32`), the firmware run beside
/// the host simulator.
pub fn run(job: &CascadeJob) -> Result<CascadeOutcome> {
    let spec = strategy_spec(job)?;
    match job.target.as_str() {
        "host" => run_on_host(job, spec).map(|r| CascadeOutcome::Host(Box::new(r))),
        name => match kinglet_compile::target::by_name(name) {
            Some(core) => firmware::run_on_core(core, job, &spec)
                .map(|r| CascadeOutcome::Firmware(Box::new(r))),
            None => bail!(
                "--target {name}: expected host or {}",
                kinglet_compile::target::names().join(", ")
            ),
        },
    }
}

fn run_on_host(a: &CascadeJob, mut spec: StrategySpec) -> Result<CascadeRecord> {
    let mut costs = CostTable::named_or_file(&a.costs)?;
    for entry in &a.cost {
        costs.set_from_arg(entry)?;
    }
    // The device around the MCU, checked before any model runs.
    if !(a.battery_mah.is_finite() && a.battery_mah > 0.0) {
        bail!("--battery-mah must be positive");
    }
    let system = System {
        cell: Cell::cr2032().with_capacity(a.battery_mah),
        sensor: match a.sensor.as_str() {
            "none" => None,
            name => Some(Sensor::named_or_file(name)?),
        },
        fifo: a.fifo,
    };
    let budget = a.budget.as_deref().map(parse_budget).transpose()?;
    let outputs_kind = match a.outputs_kind.as_str() {
        "logits" => OutputKind::Logits,
        "probabilities" => OutputKind::Probabilities,
        other => bail!("--outputs-kind {other}: expected logits or probabilities"),
    };

    let mut calibration: Option<Calibration> = None;
    let mut known: Option<Vec<bool>> = None;
    let mut counts: Option<StreamCounts> = None;
    let mut window_period_s = kinglet_adapt::WINDOW_PERIOD_S;
    let (run, labels, class_names, source) = if let Some(path) = &a.outputs {
        let mut stream = RecordedStream::load_csv(path, outputs_kind)?;
        let class_names = uci_class_names(&stream);
        if let Some(b) = budget {
            let val_path = a
                .validation
                .as_ref()
                .context("--budget with --outputs needs --validation OUTPUTS.csv")?;
            let mut val = RecordedStream::load_csv(Path::new(val_path), outputs_kind)?;
            let c = calibrate(&spec, &mut val, &costs, &class_names, b)?;
            spec = c.chosen.spec.clone();
            calibration = Some(c);
        }
        let n = stream.len();
        let run = simulate(&spec, &mut stream.models(), n)?;
        (
            run,
            stream.labels.clone(),
            class_names,
            path.display().to_string(),
        )
    } else {
        let data = a
            .data
            .as_ref()
            .context("--data is required (or --outputs)")?;
        let mut data_spec = DataSpec::parse(data)?;
        if !data_spec.split_given {
            data_spec = data_spec.with_split(Split::Test);
        }
        if let Some(b) = budget {
            let val_spec = match &a.validation {
                Some(v) => DataSpec::parse(v)?,
                None => data_spec.with_split(Split::Val),
            };
            let mut val = open_stream(a, &spec, &val_spec).with_context(|| {
                format!("calibration needs validation windows ({val_spec}); choose them with --validation, e.g. hapt:PATH/hapt.zip:val")
            })?;
            let mut recorded = val.record()?;
            let c = calibrate(&spec, &mut recorded, &costs, &val.class_names, b)
                .with_context(|| format!("calibrating on {val_spec}"))?;
            spec = c.chosen.spec.clone();
            calibration = Some(c);
        }
        let mut stream = open_stream(a, &spec, &data_spec)?;
        let n = stream.labels.len();
        let run = simulate(&spec, &mut stream.models(), n)?;
        known = stream.known.take();
        counts = stream.counts;
        window_period_s = stream.window_period_s;
        (
            run,
            stream.labels.clone(),
            stream.class_names.clone(),
            data_spec.to_string(),
        )
    };

    let e = evaluate_scored(&run, &labels, known.as_deref(), &class_names)?;
    let (boards, boards_source) = load_boards(a.boards_dir.as_deref())?;
    if !boards.iter().any(|b| b.id == a.board) {
        let ids: Vec<&str> = boards.iter().map(|b| b.id.as_str()).collect();
        bail!(
            "no board profile `{}` in {boards_source} (have: {})",
            a.board,
            ids.join(", ")
        );
    }
    let energy = boards
        .iter()
        .map(|b| price_run_every(&run, b, &costs, &system, window_period_s))
        .collect::<Result<Vec<_>, _>>()?;
    let record = CascadeRecord {
        strategy: spec.label(),
        spec: spec.clone(),
        source,
        n: e.n,
        stream: counts,
        accuracy: e.accuracy,
        macro_f1: e.macro_f1,
        big_runs: e.big_runs,
        little_runs: e.little_runs,
        change_notice: e.change_notice.clone(),
        class_names: class_names.clone(),
        confusion: e.classification.confusion.clone(),
        costs_source: costs.source.clone(),
        energy,
        calibration,
    };
    if let Some(path) = &a.save {
        write_atomic(path, &serde_json::to_string_pretty(&record)?)?;
    }
    if let Some(path) = &a.decisions {
        write_atomic(path, &run.decisions_csv())?;
    }
    Ok(record)
}

fn uci_class_names(stream: &RecordedStream) -> Vec<String> {
    let k = stream
        .big
        .rows
        .first()
        .map_or(0, Vec::len)
        .max(stream.labels.iter().max().map_or(0, |m| *m as usize + 1));
    // UCI-HAR's six activities are the first six of HAPT's.
    let uci = &kinglet_data::hapt::DEFAULT_ACTIVITY_NAMES[..6];
    if k == uci.len() {
        uci.iter().map(|s| s.to_string()).collect()
    } else {
        (0..k).map(|i| format!("class{i}")).collect()
    }
}

/// The board profiles `--boards-dir` names, else `./boards`, else those built into kinglet;
/// with where they came from.
fn load_boards(dir: Option<&Path>) -> Result<(Vec<BoardProfile>, String)> {
    let dir = match dir {
        Some(d) => Some(d.to_path_buf()),
        None => Some(PathBuf::from("boards")).filter(|d| d.is_dir()),
    };
    match dir {
        Some(d) => {
            let boards = BoardProfile::load_dir(&d).with_context(|| {
                format!(
                    "reading board profiles from {} (set --boards-dir)",
                    d.display()
                )
            })?;
            Ok((boards, d.display().to_string()))
        }
        None => Ok((
            BoardProfile::built_in()?,
            "the profiles built into kinglet".into(),
        )),
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    super::steps::write_atomic(path, text.as_bytes())
}
