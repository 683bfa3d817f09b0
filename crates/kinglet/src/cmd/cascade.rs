//! `kinglet cascade`: runs a big–little strategy over a window stream in time order and
//! reports accuracy, macro-F1, Big/little invocations, change-notice delay and energy on the
//! board profiles; optionally calibrates the strategy's threshold on a validation split.
//! The work is [`kinglet::jobs::cascade::run`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::cascade::{CascadeJob, CascadeOutcome};

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
    /// default big), little, `little<k>`, dual, l1_distance or signature. `KEY@CORE=…` gives
    /// counts measured on another core (e.g. `big@cortex-m3=big-m3.json`), which price the
    /// boards with that core; a board whose core has no counts shows "unknown: instructions on
    /// CORE". Repeatable.
    #[arg(long = "cost")]
    pub cost: Vec<String>,
    /// Battery capacity for the lifetime estimate (default a CR2032, 225 mAh; the cell's
    /// self-discharge is the CR2032's, boards/cells/cr2032.toml).
    #[arg(long, default_value_t = 225.0)]
    pub battery_mah: f64,
    /// The IMU the device reads, counted in battery life: `bmi160` (default, 6-axis at 50 Hz),
    /// `none` (the MCU alone) or a sensor profile `.toml` (see boards/sensors/).
    #[arg(long, default_value = "bmi160")]
    pub sensor: String,
    /// Wake the MCU for every sample instead of once per FIFO batch.
    #[arg(long)]
    pub no_fifo: bool,
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
    /// `host` (default) simulates on the host. `cortex-m4`, `cortex-m3` or `riscv32` builds the
    /// firmware cascade (the int8 .tflite models compiled into one image, sharing one arena,
    /// with the first --firmware-windows windows embedded), runs it in QEMU (mps2-an386,
    /// mps2-an385 or virt), checks its decisions against the host simulator and reports
    /// measured instructions per window.
    #[arg(long, default_value = "host")]
    pub target: String,
    /// Where a firmware `--target` builds its firmware (default: work/cascade-firmware in
    /// kinglet's data folder, `$KINGLET_HOME` or ~/.cache/kinglet); give concurrent runs
    /// different folders.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Windows embedded in the firmware for a firmware `--target` (the first N of --data).
    #[arg(long, default_value_t = 200)]
    pub firmware_windows: usize,
}

pub fn run(a: CascadeArgs) -> Result<()> {
    let job = CascadeJob {
        strategy: a.strategy,
        big: a.big,
        little: a.little,
        dual: a.dual,
        data: a.data,
        outputs: a.outputs,
        outputs_kind: a.outputs_kind,
        input_scaling: a.input_scaling,
        threshold: a.threshold,
        thresholds: a.thresholds,
        measure: a.measure,
        hysteresis: a.hysteresis,
        little_model: a.little_model,
        min_interval: a.min_interval,
        max_interval: a.max_interval,
        confirm: a.confirm,
        settle: a.settle,
        budget: a.budget,
        validation: a.validation,
        tflite_kernels: a.tflite_kernels,
        board: a.board,
        boards_dir: a.boards_dir,
        costs: a.costs,
        cost: a.cost,
        battery_mah: a.battery_mah,
        sensor: a.sensor,
        fifo: !a.no_fifo,
        save: a.save,
        decisions: a.decisions,
        target: a.target,
        work_dir: a.work_dir,
        firmware_windows: a.firmware_windows,
    };
    match kinglet::jobs::cascade::run(&job)? {
        CascadeOutcome::Host(record) if a.json => println!("{}", record.summary_json(&job.board)),
        CascadeOutcome::Host(record) => print!("{}", record.summary_text()),
        CascadeOutcome::Firmware(run) => {
            if a.json {
                println!("{}", run.to_json());
            } else {
                print!("{}", run.to_text());
            }
            run.check_agreement()?;
        }
    }
    Ok(())
}
