//! `kinglet cascade --target cortex-m4|cortex-m3|riscv32`: the int8 `.tflite` models compiled into one
//! firmware image with the first windows of the stream, run in QEMU next to the host
//! simulator.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kinglet_adapt::firmware::{
    CascadeModel, FirmwareComparison, FloatWindows, Int8Windows, StreamWindows,
    compare_with_host_on, default_work_dir,
};
use kinglet_adapt::models::WindowData;
use kinglet_adapt::{CheckKind, StrategySpec};
use kinglet_compile::target::Target;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};

use super::CascadeJob;
use super::models::{LoadedModel, load_model};

/// A core (`cortex-m4`, `cortex-m3`, `riscv32`): the strategy in QEMU next to the host simulator on the
/// same windows.
pub(super) fn run_on_core(
    core: &'static dyn Target,
    a: &CascadeJob,
    spec: &StrategySpec,
) -> Result<FirmwareCascade> {
    let target = core.name();
    if a.outputs.is_some() || a.budget.is_some() {
        bail!(
            "--target {target} takes --big, --little, --dual and --data (no --outputs or --budget: calibrate on the host, then pass the thresholds)"
        );
    }
    let data = a
        .data
        .as_ref()
        .with_context(|| format!("--target {target} needs --data"))?;
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
                "{}: --target {target} runs int8 .tflite models (see `kinglet quantize`)",
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
    let cmp = compare_with_host_on(
        core,
        spec,
        &model(&big),
        &little_models,
        dual_model.as_ref(),
        &stream,
        &a.work_dir.clone().unwrap_or_else(default_work_dir),
    )?;
    let labels = &dataset.labels[..count];
    let correct = cmp
        .firmware
        .windows
        .iter()
        .zip(labels)
        .filter(|(w, l)| u32::from(w.label) == **l)
        .count();
    Ok(FirmwareCascade {
        core,
        strategy: spec.label(),
        data: data_spec.to_string(),
        n: count,
        correct,
        comparison: cmp,
    })
}

/// The firmware cascade beside the host simulator, on the first `n` windows of `data`.
#[derive(Debug)]
pub struct FirmwareCascade {
    /// The core it ran on.
    pub core: &'static dyn Target,
    /// The strategy's display name.
    pub strategy: String,
    pub data: String,
    pub n: usize,
    /// Windows where the firmware's label is the true one.
    pub correct: usize,
    pub comparison: FirmwareComparison,
}

impl FirmwareCascade {
    fn big_runs(&self) -> usize {
        self.comparison
            .firmware
            .windows
            .iter()
            .filter(|w| w.big)
            .count()
    }

    /// Windows where a little model or a check ran.
    fn checks(&self) -> usize {
        let windows = &self.comparison.firmware.windows;
        windows
            .iter()
            .filter(|w| w.check != CheckKind::None)
            .count()
    }

    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n as f64
    }

    /// The run as one JSON object (`kinglet cascade --target cortex-m4 --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let (fw, mismatched) = (&self.comparison.firmware, &self.comparison.mismatched);
        serde_json::json!({
            "strategy": self.strategy,
            "target": format!("{} (QEMU {})", self.core.name(), self.core.qemu_machine()),
            "data": self.data,
            "n": self.n,
            "decisions_match_host": mismatched.is_empty(),
            "mismatched_windows": mismatched,
            "big_runs": self.big_runs(),
            "little_runs": self.checks(),
            "accuracy": self.accuracy(),
            "instructions_per_window": fw.mean_instructions(),
            "instructions_per_big_window": fw.mean_instructions_where(true),
            "instructions_per_other_window": fw.mean_instructions_where(false),
            "instructions": fw.instructions,
            "shared_arena_bytes": fw.shared_arena_bytes,
            "model_arena_bytes": fw.model_arena_bytes,
        })
    }

    /// The run as text.
    pub fn to_text(&self) -> String {
        let (fw, count) = (&self.comparison.firmware, self.n);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "strategy  {} on {} (QEMU {})",
            self.strategy,
            self.core.name(),
            self.core.qemu_machine()
        );
        let _ = writeln!(s, "data      first {count} windows of {}", self.data);
        let _ = writeln!(
            s,
            "decisions {} of {count} windows identical to the host simulator",
            count - self.comparison.mismatched.len()
        );
        let _ = writeln!(
            s,
            "Big runs  {}   little/check runs {}   accuracy {:.2} %",
            self.big_runs(),
            self.checks(),
            100.0 * self.correct as f64 / count as f64
        );
        let na = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            s,
            "instructions/window {:.0} (windows with Big {}, without {})",
            fw.mean_instructions(),
            na(fw.mean_instructions_where(true)),
            na(fw.mean_instructions_where(false))
        );
        let arenas: Vec<String> = fw
            .model_arena_bytes
            .iter()
            .map(|(n, b)| format!("{n} {b}"))
            .collect();
        let _ = writeln!(
            s,
            "shared arena {} B (models: {})",
            fw.shared_arena_bytes,
            arenas.join(", ")
        );
        s
    }

    /// An error naming the windows where the firmware decided otherwise than the host
    /// simulator: the run is only evidence when they agree everywhere.
    pub fn check_agreement(&self) -> Result<()> {
        let mismatched = &self.comparison.mismatched;
        if !mismatched.is_empty() {
            bail!(
                "the firmware differs from the host simulator on {} window(s), first {}",
                mismatched.len(),
                mismatched[0]
            );
        }
        Ok(())
    }
}
