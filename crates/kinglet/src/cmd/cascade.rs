//! `kinglet cascade`: runs a big–little strategy over a window stream in time order and
//! reports accuracy, macro-F1, Big/little invocations, change-notice delay and energy on the
//! board profiles; optionally calibrates the strategy's threshold on a validation split.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use clap::Args;
use kinglet_adapt::calibrate::{Calibration, calibrate, parse_budget};
use kinglet_adapt::classifier::DistanceTable;
use kinglet_adapt::energy::{Cell, CostTable, price_run_every};
use kinglet_adapt::models::{DualClassifier, GraphClassifier, Normalise, WindowData, load_tflite};
use kinglet_adapt::report::{CascadeRecord, StreamCounts};
use kinglet_adapt::strategy::{StrategyKind, parse_measure};
use kinglet_adapt::{
    BoardProfile, Models, OutputKind, OutputTable, RecordedStream, StrategySpec, WindowClassifier,
    evaluate_scored, simulate,
};
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::Graph;

#[derive(Args, Debug)]
pub struct CascadeArgs {
    /// big-only, 1b6s, 1b1d, 1bdd, confidence, temporal-confidence or signature.
    #[arg(long)]
    pub strategy: String,
    /// Big model (.tflite, or .kgl from `kinglet train`).
    #[arg(long)]
    pub big: Option<PathBuf>,
    /// Little models, comma-separated: one per class for 1b6s (little k = "still class k?"),
    /// multi-class ones for the confidence strategies.
    #[arg(long, value_delimiter = ',')]
    pub little: Vec<PathBuf>,
    /// Dual model for 1b1d (previous + current total_acc window).
    #[arg(long)]
    pub dual: Option<PathBuf>,
    /// Windows in time order, e.g. `uci-har:../shared/data/uci-har:test`.
    #[arg(long)]
    pub data: Option<String>,
    /// Replay per-window model outputs recorded in a CSV (see kinglet_adapt::recorded)
    /// instead of running models; replaces --big/--little/--dual/--data.
    #[arg(long, conflicts_with_all = ["big", "little", "dual", "data"])]
    pub outputs: Option<PathBuf>,
    /// Whether recorded outputs are logits or probabilities.
    #[arg(long, default_value = "logits")]
    pub outputs_kind: String,
    /// `seed`: uint8 inputs get the seed's per-channel min-max scaling over the whole split
    /// (required by uint8 models); `none`: float models take the raw windows (a .kgl applies
    /// its own normalisation).
    #[arg(long, default_value = "none")]
    pub input_scaling: String,
    /// Threshold: P(same) for 1b6s/1b1d (default: the seed's argmax rule), L1 distance for
    /// 1bdd (default 2000), confidence in [0, 1] for the confidence strategies (default 0.9).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Signature strategy: one distance threshold per class, comma-separated in class order
    /// (classes past the list use --threshold).
    #[arg(long, value_delimiter = ',')]
    pub thresholds: Vec<f64>,
    /// Confidence measure: max (max softmax), margin (top-2), entropy.
    #[arg(long, default_value = "max")]
    pub measure: String,
    /// Confidence hysteresis band.
    #[arg(long, default_value_t = 0.0)]
    pub hysteresis: f64,
    /// Which --little model is the multi-class one (confidence strategies).
    #[arg(long, default_value_t = 0)]
    pub little_model: u8,
    /// Big runs at most once in any this many consecutive windows.
    #[arg(long, default_value_t = 0)]
    pub min_interval: u32,
    /// Big runs without a check after this many windows without it.
    #[arg(long, default_value_t = 0)]
    pub max_interval: u32,
    /// Consecutive windows that must ask for Big before it wakes.
    #[arg(long, default_value_t = 1)]
    pub confirm: u8,
    /// After a change a check noticed, Big also runs on this many following windows (the
    /// first of them wholly in the new activity, where the noticing window straddles it).
    #[arg(long, default_value_t = 0)]
    pub settle: u8,
    /// Calibrate the threshold within this accuracy budget of Big-only, e.g. `0.5pp`.
    #[arg(long)]
    pub budget: Option<String>,
    /// Data for calibration (default: the `val` split of --data), or a recorded-outputs CSV
    /// when --outputs is used.
    #[arg(long)]
    pub validation: Option<String>,
    /// Board profile id for the headline energy (file stem in --boards-dir).
    /// TFLite kernel configuration the models run with on the host (`default` = the TFLite
    /// interpreter's default, XNNPACK; `builtin`; `reference`, which firmware follows).
    #[arg(long, default_value = "default")]
    pub tflite_kernels: kinglet_graph::TfliteKernels,
    #[arg(long, default_value = "apollo3")]
    pub board: String,
    /// Board profiles (`*.toml`): default `boards/` in the working directory when there is
    /// one, else the profiles built into kinglet.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Instruction counts per inference: `seed-tflm-cmsis-nn` (default: the seed's models on
    /// TensorFlow Lite Micro + CMSIS-NN), `seed-tflm-reference`, or a JSON cost table
    /// (kinglet_adapt::energy::CostTable).
    #[arg(long, default_value = "seed-tflm-cmsis-nn")]
    pub costs: String,
    /// Override one entry, `KEY=INSTRUCTIONS` or `KEY=PROFILE.json` (the `--json` output of
    /// `kinglet profile`); KEY is big, reference (the model savings are counted against,
    /// default big), little, `little<k>`, dual, l1_distance or signature. Repeatable.
    #[arg(long = "cost")]
    pub cost: Vec<String>,
    /// Battery capacity for the lifetime estimate (default a CR2032, 225 mAh).
    #[arg(long, default_value_t = 225.0)]
    pub battery_mah: f64,
    /// Write the full record (input of `kinglet report`) to this JSON file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write the per-window decisions (`window,check,big,label`) to this CSV, e.g. to compare
    /// with the firmware cascade in QEMU.
    #[arg(long)]
    pub decisions: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// `host` (default) simulates on the host. `cortex-m4` builds the firmware cascade (the
    /// int8 .tflite models compiled into one image, sharing one arena, with the first
    /// --firmware-windows windows embedded), runs it in QEMU mps2-an386, checks its decisions
    /// against the host simulator and reports measured instructions per window.
    #[arg(long, default_value = "host")]
    pub target: String,
    /// Where `--target cortex-m4` builds its firmware (default: work/cascade-firmware in
    /// kinglet's data folder, `$KINGLET_HOME` or ~/.cache/kinglet); give concurrent runs
    /// different folders.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Windows embedded in the firmware for `--target cortex-m4` (the first N of --data).
    #[arg(long, default_value_t = 200)]
    pub firmware_windows: usize,
}

fn spec_from_args(a: &CascadeArgs) -> Result<StrategySpec> {
    let kind = StrategyKind::parse(&a.strategy)?;
    let mut spec = StrategySpec::new(kind);
    if a.threshold.is_some() {
        spec.threshold = a.threshold;
    }
    parse_measure(&a.measure)?;
    spec.measure = a.measure.clone();
    spec.hysteresis = a.hysteresis;
    spec.little_model = a.little_model;
    spec.min_big_interval = a.min_interval;
    spec.max_big_interval = a.max_interval;
    spec.confirm_windows = a.confirm;
    spec.settle_windows = a.settle;
    if !a.thresholds.is_empty() {
        if kind != StrategyKind::Signature {
            bail!("--thresholds is for the signature strategy (use --threshold)");
        }
        spec.thresholds = a.thresholds.clone();
    }
    spec.to_core()?;
    Ok(spec)
}

/// A model file opened as a graph (with the normalisation a `.kgl` carries).
struct LoadedModel {
    name: String,
    graph: Graph,
    normalise: Option<Normalise>,
}

/// Opens a model for the windows of `data`: its normalisation in `data`'s channel order, and
/// a refusal if the model was trained on windows sampled at another rate.
fn load_model(path: &Path, data: &kinglet_data::Dataset) -> Result<LoadedModel> {
    let trained = |n: &kinglet_train::ChannelNormalisation| -> Result<Normalise> {
        n.check_rate(data)
            .with_context(|| format!("{}", path.display()))?;
        Ok(normalise_for(n, &data.channel_names))
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    match kinglet_train::ModelKind::of(path)? {
        kinglet_train::ModelKind::Tflite => {
            let graph = load_tflite(path)?;
            // kinglet-written models carry their training normalisation in the metadata;
            // the seed's models have none and take seed-scaled or raw inputs instead.
            let normalise = match graph.metadata.get(kinglet_graph::meta::NORMALISATION) {
                Some(text) => {
                    let meta: serde_json::Value =
                        serde_json::from_str(text).with_context(|| {
                            format!("{}: malformed normalisation metadata", path.display())
                        })?;
                    let n: kinglet_train::ChannelNormalisation = serde_json::from_value(
                        meta.get("normalisation").cloned().unwrap_or(meta.clone()),
                    )
                    .with_context(|| {
                        format!("{}: malformed normalisation metadata", path.display())
                    })?;
                    Some(trained(&n)?)
                }
                None => None,
            };
            Ok(LoadedModel {
                name,
                graph,
                normalise,
            })
        }
        kinglet_train::ModelKind::Kgl => {
            let model = kinglet_train::TrainedModel::load(path)
                .with_context(|| format!("loading {}", path.display()))?;
            let graph = kinglet_train::lower(&model)
                .with_context(|| format!("lowering {}", path.display()))?;
            let normalise = Some(trained(&model.normalisation)?);
            Ok(LoadedModel {
                name,
                graph,
                normalise,
            })
        }
    }
}

/// The model's per-channel normalisation in the dataset's channel order (identity for
/// channels the model does not read).
fn normalise_for(n: &kinglet_train::ChannelNormalisation, channel_names: &[String]) -> Normalise {
    let mut mean = Vec::new();
    let mut std = Vec::new();
    for c in channel_names {
        match n.channels.iter().position(|m| m == c) {
            Some(i) => {
                mean.push(n.mean[i]);
                std.push(n.std[i]);
            }
            None => {
                mean.push(0.0);
                std.push(1.0);
            }
        }
    }
    Normalise { mean, std }
}

/// Every model of the cascade, running on one stream's windows.
struct StreamModels {
    labels: Vec<u32>,
    /// Continuous streams: which windows are scored, and the grid and straddle counts.
    known: Option<Vec<bool>>,
    counts: Option<StreamCounts>,
    /// Seconds between windows, for the sleep and battery figures.
    window_period_s: f64,
    class_names: Vec<String>,
    big: GraphClassifier,
    littles: Vec<GraphClassifier>,
    dual: Option<DualClassifier>,
    distances: Option<DistanceTable>,
    signatures: Option<DistanceTable>,
}

impl StreamModels {
    fn models(&mut self) -> Models<'_> {
        Models {
            big: &mut self.big,
            littles: self
                .littles
                .iter_mut()
                .map(|m| m as &mut dyn WindowClassifier)
                .collect(),
            dual: self.dual.as_mut().map(|m| m as &mut dyn WindowClassifier),
            distance: self
                .distances
                .as_mut()
                .map(|d| d as &mut dyn kinglet_adapt::WindowDistance),
            signature: self
                .signatures
                .as_mut()
                .map(|d| d as &mut dyn kinglet_adapt::WindowDistance),
        }
    }

    /// Runs every model on every window once, for threshold sweeps.
    fn record(&mut self) -> Result<RecordedStream> {
        let n = self.labels.len();
        Ok(RecordedStream {
            labels: self.labels.clone(),
            known: self.known.clone(),
            big: OutputTable::compute(&mut self.big, n)?,
            littles: self
                .littles
                .iter_mut()
                .map(|m| OutputTable::compute(m, n))
                .collect::<Result<_, _>>()?,
            dual: self
                .dual
                .as_mut()
                .map(|m| OutputTable::compute(m, n))
                .transpose()?,
            distances: self.distances.clone(),
            signatures: self.signatures.clone(),
        })
    }
}

fn open_stream(a: &CascadeArgs, spec: &StrategySpec, data_spec: &DataSpec) -> Result<StreamModels> {
    let data = kinglet_data::spec::load(data_spec, &LoadOptions::default())
        .with_context(|| format!("loading {data_spec}"))?;
    if data.is_empty() {
        bail!("{data_spec}: no windows");
    }
    let windows = Rc::new(WindowData::from_dataset(&data).with_context(|| format!("{data_spec}"))?);
    let seed = match a.input_scaling.as_str() {
        "seed" => true,
        "none" => false,
        other => bail!("--input-scaling {other}: expected seed or none"),
    };
    let open = |path: &Path| -> Result<GraphClassifier> {
        let m = load_model(path, &data)?;
        let uint8 = m
            .graph
            .inputs
            .iter()
            .any(|&id| m.graph.tensor(id).dtype == kinglet_graph::DType::U8);
        if uint8 && !seed {
            bail!("{}: uint8 inputs need --input-scaling seed", path.display());
        }
        Ok(
            GraphClassifier::new(&m.name, &m.graph, windows.clone(), m.normalise)?
                .with_kernels(a.tflite_kernels)?,
        )
    };
    if spec.kind == StrategyKind::OneBigSixLittle && a.little.len() != data.class_names.len() {
        bail!(
            "1b6s needs one little model per class ({} for {data_spec}), got {}",
            data.class_names.len(),
            a.little.len()
        );
    }
    let big_path = a.big.as_ref().context("--big is required (or --outputs)")?;
    let big = open(big_path)?;
    let littles = a
        .little
        .iter()
        .map(|p| open(p))
        .collect::<Result<Vec<_>>>()?;
    let dual = match &a.dual {
        Some(p) => {
            let m = load_model(p, &data)?;
            Some(
                DualClassifier::new(&m.name, &m.graph, windows.clone(), m.normalise)?
                    .with_kernels(a.tflite_kernels)?,
            )
        }
        None => None,
    };
    let distances = if spec.kind == StrategyKind::OneBigDistance {
        Some(windows.s3_distances()?)
    } else {
        None
    };
    let signatures = if spec.kind == StrategyKind::Signature {
        Some(windows.signature_distances()?)
    } else {
        None
    };
    let counts = data.stream.as_ref().map(|s| StreamCounts {
        scored: s.known.iter().filter(|k| **k).count(),
        straddling: s.straddles.iter().filter(|k| **k).count(),
        window: s.window,
        step: s.step,
    });
    let window_period_s = kinglet_data::spec::window_period_s(data_spec, &data)
        .unwrap_or(kinglet_adapt::WINDOW_PERIOD_S);
    Ok(StreamModels {
        window_period_s,
        labels: data.labels.clone(),
        known: data.stream.as_ref().map(|s| s.known.clone()),
        counts,
        class_names: data.class_names.clone(),
        big,
        littles,
        dual,
        distances,
        signatures,
    })
}

fn uci_class_names(stream: &RecordedStream) -> Vec<String> {
    let k = stream
        .big
        .rows
        .first()
        .map_or(0, Vec::len)
        .max(stream.labels.iter().max().map_or(0, |m| *m as usize + 1));
    let uci = [
        "WALKING",
        "WALKING_UPSTAIRS",
        "WALKING_DOWNSTAIRS",
        "SITTING",
        "STANDING",
        "LAYING",
    ];
    if k == uci.len() {
        uci.map(String::from).to_vec()
    } else {
        (0..k).map(|i| format!("class{i}")).collect()
    }
}

pub fn run(a: CascadeArgs) -> Result<()> {
    let mut spec = spec_from_args(&a)?;
    match a.target.as_str() {
        "host" => {}
        "cortex-m4" => return run_on_cortex_m4(&a, &spec),
        other => bail!("--target {other}: expected host or cortex-m4"),
    }
    let mut costs = CostTable::named_or_file(&a.costs)?;
    for entry in &a.cost {
        costs.set_from_arg(entry)?;
    }
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
            let mut val = open_stream(&a, &spec, &val_spec).with_context(|| {
                format!("calibration needs validation windows ({val_spec}); choose them with --validation, e.g. hapt:PATH/hapt.zip:val")
            })?;
            let mut recorded = val.record()?;
            let c = calibrate(&spec, &mut recorded, &costs, &val.class_names, b)
                .with_context(|| format!("calibrating on {val_spec}"))?;
            spec = c.chosen.spec.clone();
            calibration = Some(c);
        }
        let mut stream = open_stream(&a, &spec, &data_spec)?;
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
    let cell = Cell {
        name: format!("{} mAh cell", a.battery_mah),
        capacity_mah: a.battery_mah,
    };
    if !(a.battery_mah.is_finite() && a.battery_mah > 0.0) {
        bail!("--battery-mah must be positive");
    }
    let energy = boards
        .iter()
        .map(|b| price_run_every(&run, b, &costs, &cell, window_period_s))
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
    print(&record, &a.board, a.json)
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

/// `--target cortex-m4`: the strategy in QEMU next to the host simulator on the same int8 windows.
fn run_on_cortex_m4(a: &CascadeArgs, spec: &StrategySpec) -> Result<()> {
    use kinglet_adapt::firmware::{
        CascadeModel, FloatWindows, Int8Windows, StreamWindows, compare_with_host, default_work_dir,
    };
    if a.outputs.is_some() || a.budget.is_some() {
        bail!(
            "--target cortex-m4 takes --big, --little, --dual and --data (no --outputs or --budget: calibrate on the host, then pass the thresholds)"
        );
    }
    let data = a.data.as_ref().context("--target cortex-m4 needs --data")?;
    let mut data_spec = DataSpec::parse(data)?;
    if !data_spec.split_given {
        data_spec = data_spec.with_split(Split::Test);
    }
    let dataset = kinglet_data::spec::load(&data_spec, &LoadOptions::default())
        .with_context(|| format!("loading {data_spec}"))?;
    let windows = WindowData::from_dataset(&dataset).with_context(|| format!("{data_spec}"))?;
    let load = |path: &PathBuf| -> Result<LoadedModel> {
        if kinglet_train::ModelKind::of(path)? != kinglet_train::ModelKind::Tflite {
            bail!(
                "{}: --target cortex-m4 runs int8 .tflite models (see `kinglet quantize`)",
                path.display()
            );
        }
        load_model(path, &dataset)
    };
    let big = load(a.big.as_ref().context("--big is required")?)?;
    let littles = a.little.iter().map(load).collect::<Result<Vec<_>>>()?;
    let dual = a.dual.as_ref().map(load).transpose()?;
    let count = a.firmware_windows.min(windows.n);
    if count == 0 {
        bail!("--firmware-windows must be at least 1");
    }
    let stream = match a.input_scaling.as_str() {
        // The seed's uint8 min-max scaling as int8 (q = u8 − 128; scale 1, zero point 0).
        "seed" => StreamWindows::Int8(Int8Windows {
            n: count,
            time: windows.time,
            channels: windows.channels,
            data: windows.seed_u8[..count * windows.time * windows.channels]
                .iter()
                .map(|&u| (u ^ 0x80) as i8)
                .collect(),
            scale: 1.0,
            zero_point: 0,
        }),
        // The windows as recorded: each model normalises and quantises them on the device.
        "none" => StreamWindows::Float(FloatWindows::take(&windows, 0, count)?),
        other => bail!("--input-scaling {other}: expected seed or none"),
    };
    let seed = matches!(stream, StreamWindows::Int8(_));
    // Seed-scaled int8 windows go in as they are; float windows get each model's normalisation.
    fn cascade_model(m: &LoadedModel, seed: bool) -> CascadeModel<'_> {
        CascadeModel {
            name: m.name.as_str(),
            graph: &m.graph,
            normalise: if seed { None } else { m.normalise.as_ref() },
        }
    }
    let model = |m| cascade_model(m, seed);
    let little_models: Vec<CascadeModel> = littles.iter().map(model).collect();
    let dual_model = dual.as_ref().map(model);
    let cmp = compare_with_host(
        spec,
        &model(&big),
        &little_models,
        dual_model.as_ref(),
        &stream,
        &a.work_dir.clone().unwrap_or_else(default_work_dir),
    )?;
    let fw = &cmp.firmware;
    let mean_where = |big: bool| fw.mean_instructions_where(big);
    let labels = &dataset.labels[..count];
    let correct = fw
        .windows
        .iter()
        .zip(labels)
        .filter(|(w, l)| u32::from(w.label) == **l)
        .count();
    let big_runs = fw.windows.iter().filter(|w| w.big).count();
    let checks = fw
        .windows
        .iter()
        .filter(|w| w.check != kinglet_adapt::CheckKind::None)
        .count();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "strategy": spec.label(),
                "target": "cortex-m4 (QEMU mps2-an386)",
                "data": data_spec.to_string(),
                "n": count,
                "decisions_match_host": cmp.mismatched.is_empty(),
                "mismatched_windows": cmp.mismatched,
                "big_runs": big_runs,
                "little_runs": checks,
                "accuracy": correct as f64 / count as f64,
                "instructions_per_window": fw.mean_instructions(),
                "instructions_per_big_window": mean_where(true),
                "instructions_per_other_window": mean_where(false),
                "instructions": fw.instructions,
                "shared_arena_bytes": fw.shared_arena_bytes,
                "model_arena_bytes": fw.model_arena_bytes,
            })
        );
    } else {
        println!("strategy  {} on cortex-m4 (QEMU mps2-an386)", spec.label());
        println!("data      first {count} windows of {data_spec}");
        println!(
            "decisions {} of {count} windows identical to the host simulator",
            count - cmp.mismatched.len()
        );
        println!(
            "Big runs  {big_runs}   little/check runs {checks}   accuracy {:.2} %",
            100.0 * correct as f64 / count as f64
        );
        let na = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
        println!(
            "instructions/window {:.0} (windows with Big {}, without {})",
            fw.mean_instructions(),
            na(mean_where(true)),
            na(mean_where(false))
        );
        let arenas: Vec<String> = fw
            .model_arena_bytes
            .iter()
            .map(|(n, b)| format!("{n} {b}"))
            .collect();
        println!(
            "shared arena {} B (models: {})",
            fw.shared_arena_bytes,
            arenas.join(", ")
        );
    }
    if !cmp.mismatched.is_empty() {
        bail!(
            "the firmware differs from the host simulator on {} window(s), first {}",
            cmp.mismatched.len(),
            cmp.mismatched[0]
        );
    }
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print(r: &CascadeRecord, board: &str, json: bool) -> Result<()> {
    let headline = r.energy.iter().find(|e| e.board == board);
    if json {
        let out = serde_json::json!({
            "strategy": r.strategy,
            "spec": r.spec,
            "data": r.source,
            "n": r.n,
            "stream": r.stream,
            "accuracy": r.accuracy,
            "macro_f1": r.macro_f1,
            "big_runs": r.big_runs,
            "little_runs": r.little_runs,
            "change_notice": r.change_notice,
            "board": board,
            "energy_per_window_uj": headline.and_then(|e| e.total_uj_per_window),
            "inference_energy_per_window_uj": headline.and_then(|e| e.inference_uj_per_window),
            // Inference energy against the reference model (`--cost reference=…`, else Big) on
            // every window.
            "inference_ratio_to_reference": headline.and_then(|e| {
                Some(e.inference_uj_per_window? / e.big_only_inference_uj_per_window?)
            }),
            "instructions_per_window": headline.map(|e| e.instructions_per_window),
            // Models without a measured instruction count (priced at 0) and board figures
            // not found: the energy numbers above are incomplete when either is non-empty.
            "unmeasured": headline.map(|e| e.unmeasured.clone()).unwrap_or_default(),
            "missing_figures": headline.map(|e| e.missing_figures.clone()).unwrap_or_default(),
            "energy": r.energy,
            "costs_source": r.costs_source,
            "calibration": r.calibration.as_ref().map(|c| serde_json::json!({
                "budget_pp": c.budget_pp,
                "reference_accuracy": c.reference_accuracy,
                "within_budget": c.within_budget,
                "chosen": c.chosen.label,
                "chosen_accuracy": c.chosen.accuracy,
                "front": c.front.iter().map(|p| serde_json::json!({
                    "label": p.label, "accuracy": p.accuracy, "instructions_per_window": p.instructions_per_window
                })).collect::<Vec<_>>(),
            })),
            "confusion": r.confusion,
        });
        println!("{out}");
        return Ok(());
    }
    println!("strategy  {}\ndata      {}", r.strategy, r.source);
    if let Some(c) = &r.stream {
        println!(
            "stream    {} windows on a {}/{} grid: {} scored (the rest unlabelled), {} straddle a change",
            r.n, c.window, c.step, c.scored, c.straddling
        );
    }
    println!(
        "accuracy  {:.2} %   macro-F1 {:.4}   n {}\nBig runs  {}   little runs {}",
        r.accuracy * 100.0,
        r.macro_f1,
        r.n,
        r.big_runs,
        r.little_runs
    );
    let c = &r.change_notice;
    println!(
        "activity changes {}: noticed {}, mean {:.2} / median {:.1} / max {} windows to notice",
        c.changes, c.noticed, c.mean_windows, c.median_windows, c.max_windows
    );
    if let Some(cal) = &r.calibration {
        println!(
            "calibrated within {:.2} pp of Big-only ({:.2} %): {} ({:.2} % on the calibration stream){}",
            cal.budget_pp,
            cal.reference_accuracy * 100.0,
            cal.chosen.label,
            cal.chosen.accuracy * 100.0,
            if cal.within_budget {
                ""
            } else {
                " — budget not met, most accurate point taken"
            }
        );
    }
    println!("instruction counts: {}", r.costs_source);
    let na = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
    println!(
        "{:<10} {:>12} {:>13} {:>10} {:>12} {:>10} {:>10}",
        "board", "instr/window", "inference µJ", "×Big-only", "total µJ", "latency ms", "battery d"
    );
    for e in &r.energy {
        let ratio = match (
            e.inference_uj_per_window,
            e.big_only_inference_uj_per_window,
        ) {
            (Some(x), Some(b)) if b > 0.0 => format!("{:.3}", x / b),
            _ => "n/a".into(),
        };
        println!(
            "{:<10} {:>12.0} {:>13} {:>10} {:>12} {:>10.3} {:>10}",
            e.board,
            e.instructions_per_window,
            na(e.inference_uj_per_window, 3),
            ratio,
            na(e.total_uj_per_window, 3),
            e.mean_latency_ms,
            na(e.battery_life_days, 0)
        );
        if !e.unmeasured.is_empty() {
            println!(
                "           no measured instruction count for: {} (priced at 0)",
                e.unmeasured.join(", ")
            );
        }
        if !e.missing_figures.is_empty() {
            println!(
                "           datasheet figures not found: {}",
                e.missing_figures.join(", ")
            );
        }
    }
    Ok(())
}
