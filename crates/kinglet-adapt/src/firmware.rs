//! The cascade on the device: generates the firmware side of a strategy (every model compiled
//! by kinglet-compile into one module, all sharing one statically planned arena, the windows
//! embedded as int8 and the controller's configuration), builds the QEMU test application in
//! cascade mode, runs it on the emulated Cortex-M4F and reads back its per-window decisions
//! and instruction counts.
//!
//! The firmware runs [`kinglet_adapt_core::Controller`] exactly as [`crate::simulate()`] does:
//! same check order, the models' int8 outputs dequantised with `scale · (q − zero_point)` (the
//! host interpreter's formula), softmax from the core for logit outputs before same/changed
//! rules and confidences, argmax of Big's raw scores for its label. So the host simulator over
//! [`Int8Windows::window_data`] and the firmware must agree window for window.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kinglet_adapt_core::{ConfidenceMeasure, SameRule, Strategy};
use kinglet_compile::firmware::{compile, write_atomic};
use kinglet_compile::qemu;
use kinglet_graph::{DType, Graph};

use crate::models::{
    AccelChannels, DualClassifier, GraphClassifier, Normalise, S3_CHANNELS, WindowData,
    output_kind, quantise_i8, signature_distances,
};
use crate::simulate::{WindowRecord, parse_decisions_csv};
use crate::{
    AdaptError, Models, OutputKind, StrategySpec, StreamRun, WindowClassifier, WindowDistance,
    simulate,
};

/// Consecutive windows as the firmware embeds them: int8, `[n, time, channels]` time-major,
/// quantised with one `(scale, zero_point)` that every model's input must share.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Windows {
    pub n: usize,
    pub time: usize,
    pub channels: usize,
    pub data: Vec<i8>,
    pub scale: f32,
    pub zero_point: i32,
}

impl Int8Windows {
    /// Reads a raw `[n, time, channels]` int8 file (e.g. written by
    /// `scripts/make_cascade_fixture.py`).
    pub fn read(
        path: &Path,
        time: usize,
        channels: usize,
        scale: f32,
        zero_point: i32,
    ) -> Result<Self, AdaptError> {
        let bytes = std::fs::read(path).map_err(|e| AdaptError::io(path, e))?;
        let per = time * channels;
        if per == 0 || bytes.is_empty() || !bytes.len().is_multiple_of(per) {
            return Err(AdaptError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "{} bytes is not a whole number of {time}×{channels} int8 windows",
                    bytes.len()
                ),
            });
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(AdaptError::Invalid(format!(
                "window scale {scale} must be positive"
            )));
        }
        Ok(Self {
            n: bytes.len() / per,
            time,
            channels,
            data: bytes.iter().map(|&b| b as i8).collect(),
            scale,
            zero_point,
        })
    }

    /// The same windows for the host simulator: values dequantised (a graph with this input
    /// quantisation re-quantises them to the very same bytes), and `seed_u8` = `q + 128`, which
    /// for windows made with the seed's min-max scaling is that scaling again — 1BDD's distance
    /// then reads exactly the bytes the firmware reads.
    pub fn window_data(&self) -> WindowData {
        WindowData {
            n: self.n,
            time: self.time,
            channels: self.channels,
            channel_names: crate::models::default_channel_names(self.channels),
            accel: AccelChannels::by_count(self.channels),
            values: self
                .data
                .iter()
                .map(|&q| self.scale * (i32::from(q) - self.zero_point) as f32)
                .collect(),
            seed_u8: self.data.iter().map(|&q| (q as u8) ^ 0x80).collect(),
        }
    }
}

impl Int8Windows {
    /// Windows `first..first + count` of `data` quantised to `(scale, zero_point)` exactly as
    /// [`crate::models::GraphClassifier`] feeds an int8 input (`round(v / scale) + zero_point`,
    /// clamped), so models with that input quantisation see the same bytes on host and device.
    pub fn quantise(
        data: &WindowData,
        first: usize,
        count: usize,
        scale: f32,
        zero_point: i32,
    ) -> Result<Self, AdaptError> {
        let values = window_values(data, first, count)?;
        Ok(Self {
            n: count,
            time: data.time,
            channels: data.channels,
            data: values
                .iter()
                .map(|&v| quantise_i8(v, scale, zero_point))
                .collect(),
            scale,
            zero_point,
        })
    }
}

/// The values of windows `first..first + count` (at least one, all inside the stream).
fn window_values(data: &WindowData, first: usize, count: usize) -> Result<&[f32], AdaptError> {
    let per = data.time * data.channels;
    match first.checked_add(count) {
        Some(end) if count > 0 && end <= data.n => Ok(&data.values[first * per..end * per]),
        _ => Err(AdaptError::Invalid(format!(
            "{count} windows from {first} asked for, the stream has {}",
            data.n
        ))),
    }
}

/// The per-tensor int8 quantisation shared by all of a graph's inputs, if there is one.
pub fn int8_input_quantisation(graph: &Graph) -> Option<(f32, i32)> {
    let mut common = None;
    for &input in &graph.inputs {
        let t = graph.tensor(input);
        let q = match (&t.dtype, &t.quant) {
            (DType::I8, Some(q)) if q.is_per_tensor() => (q.scale[0], q.zero_point[0]),
            _ => return None,
        };
        match common {
            None => common = Some(q),
            Some((s, z)) if s.to_bits() == q.0.to_bits() && z == q.1 => {}
            Some(_) => return None,
        }
    }
    common
}

/// Consecutive windows as recorded (float, `[n, time, channels]` time-major). The firmware
/// normalises and quantises them for each model with that model's own normalisation and
/// input quantisation, as a device does with its sensor samples; the signature check reads
/// total_acc as an 8-bit ±2 g accelerometer delivers it ([`WindowData::signature_bytes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatWindows {
    pub n: usize,
    pub time: usize,
    pub channels: usize,
    pub channel_names: Vec<String>,
    /// The accelerometer the signature check reads.
    pub accel: Option<AccelChannels>,
    pub values: Vec<f32>,
}

impl FloatWindows {
    /// Windows `first..first + count` of `data`.
    pub fn take(data: &WindowData, first: usize, count: usize) -> Result<Self, AdaptError> {
        Ok(Self {
            n: count,
            time: data.time,
            channels: data.channels,
            channel_names: data.channel_names.clone(),
            accel: data.accel,
            values: window_values(data, first, count)?.to_vec(),
        })
    }

    /// The same windows for the host simulator (no seed scaling: float windows feed int8 and
    /// f32 models only).
    pub fn window_data(&self) -> WindowData {
        WindowData {
            n: self.n,
            time: self.time,
            channels: self.channels,
            channel_names: self.channel_names.clone(),
            accel: self.accel,
            values: self.values.clone(),
            seed_u8: vec![0; self.values.len()],
        }
    }
}

/// The windows a firmware cascade embeds.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamWindows {
    /// int8 bytes every model takes as they are (all inputs share one quantisation, e.g. the
    /// seed's min-max scaling).
    Int8(Int8Windows),
    /// Float windows each model normalises and quantises on the device.
    Float(FloatWindows),
}

impl StreamWindows {
    pub fn n(&self) -> usize {
        match self {
            Self::Int8(w) => w.n,
            Self::Float(w) => w.n,
        }
    }

    pub fn time(&self) -> usize {
        match self {
            Self::Int8(w) => w.time,
            Self::Float(w) => w.time,
        }
    }

    pub fn channels(&self) -> usize {
        match self {
            Self::Int8(w) => w.channels,
            Self::Float(w) => w.channels,
        }
    }

    /// What the host simulator reads.
    pub fn window_data(&self) -> WindowData {
        match self {
            Self::Int8(w) => w.window_data(),
            Self::Float(w) => w.window_data(),
        }
    }

    /// The signature check's distances, from exactly the bytes the firmware reads; `data` is
    /// [`window_data`](Self::window_data), already made by the caller.
    fn signature_table(
        &self,
        data: &WindowData,
    ) -> Result<Option<crate::classifier::DistanceTable>, AdaptError> {
        Ok(Some(match self {
            Self::Int8(w) if w.channels <= S3_CHANNELS[2] => return Ok(None),
            Self::Float(_) if data.accel.is_none() => return Ok(None),
            Self::Int8(w) => {
                let per = w.time * w.channels;
                let chunks: Vec<&[i8]> = w.data.chunks_exact(per).collect();
                signature_distances(&chunks, w.channels)
            }
            Self::Float(_) => data.signature_distances()?,
        }))
    }
}

/// Scale and zero point of a graph's first output, which the firmware cascade dequantises:
/// it must be per-tensor int8.
fn int8_output_quantisation(graph: &Graph) -> Result<(f32, i32), String> {
    let output = graph.outputs.first().ok_or("no output")?;
    let t = graph.tensor(*output);
    match (&t.dtype, t.quant.as_ref()) {
        (DType::I8, Some(q)) if q.is_per_tensor() => Ok((q.scale[0], q.zero_point[0])),
        _ => Err("the firmware cascade needs a per-tensor int8 output".into()),
    }
}

/// The host simulator and the firmware on the same windows.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareComparison {
    pub host: StreamRun,
    pub firmware: FirmwareCascadeRun,
    /// Windows whose check, Big run or label differ.
    pub mismatched: Vec<usize>,
}

/// Runs `spec` in the host simulator (kinglet-graph's interpreter over
/// [`Int8Windows::window_data`]) and in QEMU, and lists the windows where they differ.
pub fn compare_with_host(
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    work_dir: &Path,
) -> Result<FirmwareComparison, AdaptError> {
    compare_with_host_on(
        &kinglet_compile::target::CortexM4,
        spec,
        big,
        littles,
        dual,
        windows,
        work_dir,
    )
}

/// [`compare_with_host`] with the firmware on `target`.
pub fn compare_with_host_on(
    target: &dyn kinglet_compile::target::Target,
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    work_dir: &Path,
) -> Result<FirmwareComparison, AdaptError> {
    let data = std::rc::Rc::new(windows.window_data());
    let open = |m: &CascadeModel| {
        GraphClassifier::new(m.name, m.graph, data.clone(), m.normalise.cloned())
    };
    let mut host_big = open(big)?;
    let mut host_littles = littles.iter().map(open).collect::<Result<Vec<_>, _>>()?;
    let mut host_dual = dual
        .map(|m| DualClassifier::new(m.name, m.graph, data.clone(), m.normalise.cloned()))
        .transpose()?;
    let mut distances = match windows {
        StreamWindows::Int8(w) if w.channels > S3_CHANNELS[2] => Some(data.s3_distances()?),
        _ => None,
    };
    let mut signatures = windows.signature_table(&data)?;
    let host = simulate(
        spec,
        &mut Models {
            big: &mut host_big,
            littles: host_littles
                .iter_mut()
                .map(|m| m as &mut dyn WindowClassifier)
                .collect(),
            dual: host_dual.as_mut().map(|m| m as &mut dyn WindowClassifier),
            distance: distances.as_mut().map(|d| d as &mut dyn WindowDistance),
            signature: signatures.as_mut().map(|d| d as &mut dyn WindowDistance),
        },
        windows.n(),
    )?;
    let firmware = run_in_qemu_on(target, spec, big, littles, dual, windows, work_dir)?;
    let mismatched = (0..windows.n())
        .filter(|&i| host.windows.get(i) != firmware.windows.get(i))
        .collect();
    Ok(FirmwareComparison {
        host,
        firmware,
        mismatched,
    })
}

/// One model of the cascade.
pub struct CascadeModel<'a> {
    pub name: &'a str,
    pub graph: &'a Graph,
    /// Per-channel normalisation before the int8 input (float windows only).
    pub normalise: Option<&'a Normalise>,
}

/// What the firmware reported.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareCascadeRun {
    pub windows: Vec<WindowRecord>,
    /// Instructions per window: check, decision and any Big run.
    pub instructions: Vec<u64>,
    /// The one arena all models share (the largest of theirs).
    pub shared_arena_bytes: u64,
    /// Each model's own arena, in order Big, littles.
    pub model_arena_bytes: Vec<(String, u64)>,
    /// The counter self-check (must read 3001).
    pub known_loop_instructions: u64,
}

impl FirmwareCascadeRun {
    pub fn mean_instructions(&self) -> f64 {
        if self.instructions.is_empty() {
            return 0.0;
        }
        self.instructions.iter().sum::<u64>() as f64 / self.instructions.len() as f64
    }

    /// Mean instructions over the windows where Big ran (`big`) or slept; `None` when there
    /// are none.
    pub fn mean_instructions_where(&self, big: bool) -> Option<f64> {
        let picked: Vec<u64> = self
            .windows
            .iter()
            .zip(&self.instructions)
            .filter(|(w, _)| w.big == big)
            .map(|(_, &n)| n)
            .collect();
        (!picked.is_empty()).then(|| picked.iter().sum::<u64>() as f64 / picked.len() as f64)
    }
}

/// Where cascade firmware builds go unless told otherwise.
pub fn default_work_dir() -> PathBuf {
    kinglet_compile::runtime_sources::data_dir().join("work/cascade-firmware")
}

pub(crate) fn f32_literal(v: f32) -> String {
    format!("f32::from_bits({:#010x})", v.to_bits())
}

fn strategy_literal(s: Strategy) -> String {
    let rule = |r: SameRule| match r {
        SameRule::Argmax => "SameRule::Argmax".to_string(),
        SameRule::MinProbability(p) => format!("SameRule::MinProbability({})", f32_literal(p)),
    };
    let measure = |m: ConfidenceMeasure| match m {
        ConfidenceMeasure::MaxProbability => "ConfidenceMeasure::MaxProbability",
        ConfidenceMeasure::Margin => "ConfidenceMeasure::Margin",
        ConfidenceMeasure::Entropy => "ConfidenceMeasure::Entropy",
    };
    match s {
        Strategy::BigOnly => "Strategy::BigOnly".into(),
        Strategy::SameActivity { rule: r } => {
            format!("Strategy::SameActivity {{ rule: {} }}", rule(r))
        }
        Strategy::Dual { rule: r } => format!("Strategy::Dual {{ rule: {} }}", rule(r)),
        Strategy::Distance { threshold } => {
            format!("Strategy::Distance {{ threshold: {threshold} }}")
        }
        Strategy::Signature { thresholds } => {
            let list: Vec<String> = thresholds.iter().map(u32::to_string).collect();
            format!(
                "Strategy::Signature {{ thresholds: [{}] }}",
                list.join(", ")
            )
        }
        Strategy::Confidence {
            model,
            measure: m,
            threshold,
            hysteresis,
        } => format!(
            "Strategy::Confidence {{ model: {model}, measure: {}, threshold: {}, hysteresis: {} }}",
            measure(m),
            f32_literal(threshold),
            f32_literal(hysteresis)
        ),
        Strategy::TemporalConfidence {
            model,
            measure: m,
            threshold,
        } => format!(
            "Strategy::TemporalConfidence {{ model: {model}, measure: {}, threshold: {} }}",
            measure(m),
            f32_literal(threshold)
        ),
    }
}

/// The generated `cascade.rs` the firmware includes. `bins` are the absolute paths of the raw
/// files it embeds with `include_bytes!`: the windows (int8 bytes, or little-endian f32), and
/// for float windows the signature check's total_acc bytes.
pub fn cascade_source(
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    bins: &EmbeddedFiles,
) -> Result<String, AdaptError> {
    cascade_source_with(spec, big, littles, dual, windows, bins, None)
}

/// [`cascade_source`] with the models already compiled together (model `k` is
/// `precompiled.widths[k]`): the widths of a nested network over one weight blob, whose
/// constants the image places beside the models.
pub(crate) fn cascade_source_with(
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    bins: &EmbeddedFiles,
    precompiled: Option<&kinglet_compile::nested::NestedImage>,
) -> Result<String, AdaptError> {
    let (strategy, guards) = spec.to_core()?;
    let (n, time, channels) = (windows.n(), windows.time(), windows.channels());
    let stored = match windows {
        StreamWindows::Int8(w) => w.data.len(),
        StreamWindows::Float(w) => w.values.len(),
    };
    if n == 0 || stored != n * time * channels {
        return Err(AdaptError::Invalid(format!(
            "the firmware cascade needs at least one whole window ({stored} values for {n} windows of {time}×{channels})"
        )));
    }
    let float = matches!(windows, StreamWindows::Float(_));
    if float && matches!(strategy, Strategy::Distance { .. }) {
        return Err(AdaptError::Invalid(
            "1BDD reads the seed's uint8 scaling of the whole stream; run it with --input-scaling seed".into(),
        ));
    }
    if dual.is_some() && !float {
        return Err(AdaptError::Invalid(
            "a Dual model on the device needs float windows (not --input-scaling seed)".into(),
        ));
    }
    if matches!(strategy, Strategy::Dual { .. }) && (dual.is_none() || !float) {
        return Err(AdaptError::Invalid(
            "1B1D on the device needs a kinglet-trained int8 Dual model and float windows (the seed's uint8 Dual does not compile)".into(),
        ));
    }
    let needed_littles = match strategy {
        Strategy::SameActivity { .. } => 1,
        Strategy::Confidence { model, .. } | Strategy::TemporalConfidence { model, .. } => {
            usize::from(model) + 1
        }
        _ => 0,
    };
    if littles.len() < needed_littles {
        return Err(AdaptError::Invalid(format!(
            "strategy {} needs at least {needed_littles} little model(s), {} given",
            spec.label(),
            littles.len()
        )));
    }
    // Float windows carry the signature's accelerometer bytes separately (any layout);
    // seed-scaled int8 windows and 1BDD read total_acc at UCI-HAR's channels.
    let reads_s3 = matches!(strategy, Strategy::Distance { .. })
        || (matches!(strategy, Strategy::Signature { .. }) && !float);
    if reads_s3 && channels <= S3_CHANNELS[2] {
        return Err(AdaptError::Invalid(format!(
            "{} needs total_acc (channels 6–8); the windows have {channels} channels",
            spec.label(),
        )));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by kinglet-adapt's firmware cascade ({}). Do not edit.\n\
         #[allow(unused_imports)]\n\
         use kinglet_adapt_core::{{ConfidenceMeasure, Guards, SameRule, Strategy}};\n\
         pub use kinglet_m4::ShapeError;\n",
        spec.label()
    );
    let _ = writeln!(
        s,
        "pub const STRATEGY: Strategy = {};\n\
         pub const GUARDS: Guards = Guards {{ settle_windows: {}, min_big_interval: {}, max_big_interval: {}, confirm_windows: {} }};\n\
         pub const WINDOW_COUNT: usize = {n};\n\
         pub const WINDOW_TIME: usize = {time};\n\
         pub const WINDOW_CHANNELS: usize = {channels};\n\
         const WINDOW_LEN: usize = WINDOW_TIME * WINDOW_CHANNELS;\n",
        strategy_literal(strategy),
        guards.settle_windows,
        guards.min_big_interval,
        guards.max_big_interval,
        guards.confirm_windows,
    );
    let windows_bin = bins.windows.display().to_string();
    // The widths of a nested network read alike inputs and outputs: their glue is one copy
    // rather than one inlined per width (about 1 kB each on the Cortex-M4).
    let glue = if precompiled.is_some() {
        "#[inline(never)]\n"
    } else {
        ""
    };
    if float {
        let signature_bin = bins
            .signature
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "/// Float samples, little-endian f32, time-major.\n\
             const SAMPLE_BYTES: usize = 4;\n\
             static WINDOWS: &[u8; WINDOW_COUNT * WINDOW_LEN * SAMPLE_BYTES] = include_bytes!({windows_bin:?});\n\
             /// total_acc as an 8-bit ±2 g accelerometer gives it (int8, 1/64 g), time-major.\n\
             static SIGNATURE_BYTES: &[u8; WINDOW_COUNT * WINDOW_TIME * 3] = include_bytes!({signature_bin:?});\n\
             pub const SIGNATURE_STRIDE: usize = 3;\n\
             /// The signature check's first axis within a step (x, y, z follow).\n\
             pub const SIGNATURE_FIRST_AXIS: usize = 0;\n\n\
             /// Window `index` of the embedded stream (f32 bytes).\n\
             pub fn window(index: usize) -> Option<&'static [u8]> {{\n    \
                 let len = WINDOW_LEN * SAMPLE_BYTES;\n    \
                 WINDOWS.get(index.checked_mul(len)?..index.checked_add(1)?.checked_mul(len)?)\n}}\n\n\
             /// The signature check's bytes of window `index`.\n\
             pub fn signature_window(index: usize) -> Option<&'static [u8]> {{\n    \
                 let len = WINDOW_TIME * SIGNATURE_STRIDE;\n    \
                 SIGNATURE_BYTES.get(index.checked_mul(len)?..index.checked_add(1)?.checked_mul(len)?)\n}}\n\n\
             /// Round half away from zero, as the host's `f32::round` (exact for every f32).\n\
             fn round_half_away(x: f32) -> f32 {{\n    \
                 if !(x.abs() < 8_388_608.0) {{\n        return x;\n    }}\n    \
                 let t = x as i32 as f32;\n    \
                 let f = x - t;\n    \
                 if f >= 0.5 {{\n        t + 1.0\n    }} else if f <= -0.5 {{\n        t - 1.0\n    }} else {{\n        t\n    }}\n}}\n\n\
             /// The model's int8 input from float samples: `(x − mean) / std`, then\n\
             /// `round(v / scale) + zero_point`, clamped — the host simulator's very operations.\n\
             {glue}fn gather(window: &[u8], channels: &[usize], norm: &([f32; WINDOW_CHANNELS], [f32; WINDOW_CHANNELS]), quant: (f32, i32), input: &mut [i8]) -> Result<(), ShapeError> {{\n    \
                 if input.len() != WINDOW_TIME * channels.len() || window.len() != WINDOW_LEN * SAMPLE_BYTES {{\n        return Err(ShapeError);\n    }}\n    \
                 let (mean, std) = norm;\n    \
                 let (scale, zero_point) = quant;\n    \
                 for (step, dst) in window.chunks_exact(WINDOW_CHANNELS * SAMPLE_BYTES).zip(input.chunks_exact_mut(channels.len())) {{\n        \
                     for (d, &c) in dst.iter_mut().zip(channels) {{\n            \
                         let bytes = step.get(c * SAMPLE_BYTES..(c + 1) * SAMPLE_BYTES).ok_or(ShapeError)?;\n            \
                         let x = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);\n            \
                         let v = (x - *mean.get(c).ok_or(ShapeError)?) / *std.get(c).ok_or(ShapeError)?;\n            \
                         *d = (round_half_away(v / scale) as i32 + zero_point).clamp(-128, 127) as i8;\n        }}\n    }}\n    Ok(())\n}}\n",
        );
    } else {
        let _ = writeln!(
            s,
            "static WINDOWS: &[u8; WINDOW_COUNT * WINDOW_LEN] = include_bytes!({windows_bin:?});\n\
             pub const SIGNATURE_STRIDE: usize = WINDOW_CHANNELS;\n\
             /// The signature check's first total_acc axis within a window step (x, y, z follow).\n\
             pub const SIGNATURE_FIRST_AXIS: usize = 6;\n\n\
             /// Window `index` of the embedded stream (int8 bytes, time-major).\n\
             pub fn window(index: usize) -> Option<&'static [u8]> {{\n    \
                 WINDOWS.get(index.checked_mul(WINDOW_LEN)?..index.checked_add(1)?.checked_mul(WINDOW_LEN)?)\n}}\n\n\
             /// The signature check reads the window's own total_acc bytes.\n\
             pub fn signature_window(index: usize) -> Option<&'static [u8]> {{\n    window(index)\n}}\n\n\
             {glue}fn gather(window: &[u8], channels: &[usize], input: &mut [i8]) -> Result<(), ShapeError> {{\n    \
                 if input.len() != WINDOW_TIME * channels.len() || window.len() != WINDOW_LEN {{\n        return Err(ShapeError);\n    }}\n    \
                 for (step, dst) in window.chunks_exact(WINDOW_CHANNELS).zip(input.chunks_exact_mut(channels.len())) {{\n        \
                     for (d, &c) in dst.iter_mut().zip(channels) {{\n            \
                         *d = *step.get(c).ok_or(ShapeError)? as i8;\n        }}\n    }}\n    Ok(())\n}}\n",
        );
    }
    let distance_channels: Vec<String> = if channels > S3_CHANNELS[2] {
        S3_CHANNELS.iter().map(|c| c.to_string()).collect()
    } else {
        Vec::new()
    };
    let _ = writeln!(
        s,
        "/// 1BDD reads total_acc as the seed's uint8 scaling (`q + 128`).\n\
         const DISTANCE_CHANNELS: [usize; {}] = [{}];\n\
         pub const DISTANCE_LEN: usize = WINDOW_TIME * DISTANCE_CHANNELS.len();\n\
         pub fn distance_bytes(window: &[u8], out: &mut [u8; DISTANCE_LEN]) {{\n    \
             for (t, step) in window.chunks_exact(WINDOW_CHANNELS).enumerate() {{\n        \
                 for (k, &c) in DISTANCE_CHANNELS.iter().enumerate() {{\n            \
                     if let (Some(o), Some(&v)) = (out.get_mut(t * DISTANCE_CHANNELS.len() + k), step.get(c)) {{\n                \
                         *o = v ^ 0x80;\n            }}\n        }}\n    }}\n}}\n\n\
         {glue}fn dequantise(output: &[i8], scale: f32, zero_point: i32, scores: &mut [f32]) -> Result<usize, ShapeError> {{\n    \
             let dst = scores.get_mut(..output.len()).ok_or(ShapeError)?;\n    \
             for (s, &q) in dst.iter_mut().zip(output) {{\n        *s = scale * (i32::from(q) - zero_point) as f32;\n    }}\n    \
             Ok(output.len())\n}}\n",
        distance_channels.len(),
        distance_channels.join(", ")
    );
    let models: Vec<&CascadeModel> = std::iter::once(big).chain(littles).chain(dual).collect();
    let dual_index = dual.map(|_| models.len() - 1);
    let mut names = Vec::new();
    let mut logits = Vec::new();
    let mut modules: Vec<String> = Vec::new();
    for (m, model) in models.iter().enumerate() {
        let what =
            |message: String| AdaptError::Invalid(format!("model `{}`: {message}", model.name));
        let graph = model.graph;
        if graph.inputs.is_empty() {
            return Err(what("the graph has no input".into()));
        }
        if Some(m) == dual_index {
            let text = dual_source(m, model, windows)?;
            let compiled = compile(graph, model.name).map_err(|e| what(e.to_string()))?;
            let _ = writeln!(
                s,
                "/// `{}` (Dual)\n#[allow(unused_imports, dead_code, clippy::all)]\npub mod m{m} {{\n{}}}\n{text}",
                model.name, compiled.rust_module
            );
            modules.push(compiled.rust_module);
            names.push(format!("{:?}", model.name));
            logits.push(output_kind(graph) == OutputKind::Logits);
            continue;
        }
        let window_channels = match windows {
            StreamWindows::Float(w) => w.channel_names.clone(),
            StreamWindows::Int8(w) => crate::models::default_channel_names(w.channels),
        };
        let layout = crate::models::input_layout(graph, model.name, &window_channels)?;
        let mut input_quant = Vec::new();
        for (i, (&input, picks)) in graph.inputs.iter().zip(&layout.inputs).enumerate() {
            if let Some(&c) = picks.iter().find(|&&c| c >= channels) {
                return Err(what(format!(
                    "input {i} reads channel {c}, the windows have {channels}"
                )));
            }
            let t = graph.tensor(input);
            let quant = t.quant.as_ref().filter(|q| q.is_per_tensor());
            match (t.dtype, quant, windows) {
                (DType::I8, Some(q), StreamWindows::Float(_)) => {
                    input_quant.push((q.scale[0], q.zero_point[0]));
                }
                (DType::I8, Some(q), StreamWindows::Int8(w))
                    if q.scale[0].to_bits() == w.scale.to_bits()
                        && q.zero_point[0] == w.zero_point => {}
                (DType::I8, Some(q), StreamWindows::Int8(w)) => {
                    return Err(what(format!(
                        "input {i} quantisation (scale {}, zero point {}) differs from the windows' ({}, {}); regenerate the windows with it, or embed float windows",
                        q.scale[0], q.zero_point[0], w.scale, w.zero_point
                    )));
                }
                (dtype, _, _) => {
                    return Err(what(format!(
                        "the firmware cascade needs per-tensor int8 inputs, input {i} is {dtype}"
                    )));
                }
            }
        }
        if !float && model.normalise.is_some() {
            return Err(what(
                "int8 windows are fed as they are; a model normalisation needs float windows"
                    .into(),
            ));
        }
        let (scale, zero_point) = int8_output_quantisation(graph).map_err(what)?;
        // The module's source and its input length.
        let (rust_module, input_len) = match precompiled.and_then(|p| p.widths.get(m)) {
            Some(c) => (c.rust_module.clone(), c.dsp.input_len),
            None => {
                let c = compile(graph, model.name).map_err(|e| what(e.to_string()))?;
                (c.rust_module, c.dsp.input_len)
            }
        };
        let picked: usize = layout.inputs.iter().map(Vec::len).sum();
        if input_len != time * picked {
            return Err(what(format!(
                "inputs take {input_len} values, a window gives {time}×{picked}"
            )));
        }
        // Float windows: each input's normalisation and quantisation, and the gather call.
        let (feed_consts, gather_call) = if float {
            let norm = norm_literal(model, channels)?;
            let quants: Vec<String> = input_quant
                .iter()
                .map(|&(sc, zp)| format!("({}, {zp})", f32_literal(sc)))
                .collect();
            (
                format!(
                    "/// Per-channel (mean, std) the model was trained with.\n\
                     const M{m}_NORM: ([f32; WINDOW_CHANNELS], [f32; WINDOW_CHANNELS]) = {norm};\n\
                     /// Each input's (scale, zero point).\n\
                     const M{m}_QUANT: [(f32, i32); {}] = [{}];\n",
                    quants.len(),
                    quants.join(", ")
                ),
                format!("gather(window, channels, &M{m}_NORM, M{m}_QUANT[k], part)?;"),
            )
        } else {
            (
                String::new(),
                "gather(window, channels, part)?;".to_string(),
            )
        };
        let inputs: Vec<String> = layout
            .inputs
            .iter()
            .map(|chans| {
                let list: Vec<String> = chans.iter().map(|c| c.to_string()).collect();
                format!("&[{}]", list.join(", "))
            })
            .collect();
        // A model given twice (e.g. one little standing in for several classes) is compiled in
        // once; the later entry names the first one's module.
        let module = match modules.iter().position(|text| *text == rust_module) {
            Some(first) => format!("pub use self::m{first} as m{m};\n"),
            None => format!(
                "#[allow(unused_imports, dead_code, clippy::all)]\npub mod m{m} {{\n{rust_module}}}\n"
            ),
        };
        modules.push(rust_module);
        let _ = writeln!(
            s,
            "/// `{name}`\n{module}\n\
             /// Window channels of each graph input, fed end to end.\n\
             const M{m}_INPUTS: [&[usize]; {n}] = [{inputs}];\n{feed_consts}\n\
             fn run_m{m}(arena: &mut [u8], window: &[u8], scores: &mut [f32]) -> Result<usize, ShapeError> {{\n    \
                 let mut input = [0i8; m{m}::INPUT_LEN];\n    \
                 let mut rest = &mut input[..];\n    \
                 #[allow(unused_variables)]\n    \
                 for (k, channels) in M{m}_INPUTS.into_iter().enumerate() {{\n        \
                     let (part, tail) = rest.split_at_mut_checked(WINDOW_TIME * channels.len()).ok_or(ShapeError)?;\n        \
                     {gather_call}\n        \
                     rest = tail;\n    }}\n    \
                 let mut output = [0i8; m{m}::OUTPUT_LEN];\n    \
                 m{m}::infer_in(arena, &input, &mut output)?;\n    \
                 dequantise(&output, {scale}, {zero_point}, scores)\n}}\n",
            name = model.name,
            n = inputs.len(),
            inputs = inputs.join(", "),
            scale = f32_literal(scale),
        );
        names.push(format!("{:?}", model.name));
        logits.push(output_kind(graph) == OutputKind::Logits);
    }
    let count = models.len();
    let idx: Vec<usize> = (0..count).collect();
    let list =
        |f: &dyn Fn(usize) -> String| idx.iter().map(|&i| f(i)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        s,
        "pub const MODEL_COUNT: usize = {count};\n\
         /// Big first, then the littles.\n\
         pub const MODEL_NAMES: [&str; MODEL_COUNT] = [{}];\n\
         pub const MODEL_ARENA_BYTES: [usize; MODEL_COUNT] = [{}];\n\
         /// Logit outputs get the core's softmax before a same/changed rule or a confidence.\n\
         pub const MODEL_LOGITS: [bool; MODEL_COUNT] = [{}];\n\
         const fn largest(values: &[usize]) -> usize {{\n    \
             let mut i = 0;\n    let mut top = 0;\n    \
             while i < values.len() {{\n        if values[i] > top {{\n            top = values[i];\n        }}\n        i += 1;\n    }}\n    top\n}}\n\
         /// One arena for every model: they run one at a time, so it is the largest of theirs.\n\
         pub const SHARED_ARENA_BYTES: usize = largest(&MODEL_ARENA_BYTES);\n\
         pub const MAX_OUTPUTS: usize = largest(&[{}]);\n\n\
         /// Runs model `which` (0 = Big, 1 + k = little k) on `window` in the shared `arena`;\n\
         /// writes its dequantised outputs to `scores` and returns how many there are.\n\
         pub fn run_model(which: usize, arena: &mut [u8], window: &[u8], scores: &mut [f32; MAX_OUTPUTS]) -> Result<usize, ShapeError> {{\n    \
             match which {{\n{}        _ => Err(ShapeError),\n    }}\n}}",
        list(&|i| names[i].clone()),
        list(&|i| format!("m{i}::ARENA_BYTES")),
        list(&|i| logits[i].to_string()),
        list(&|i| format!("m{i}::OUTPUT_LEN")),
        idx.iter()
            .filter(|&&i| Some(i) != dual_index)
            .map(|i| format!("        {i} => run_m{i}(arena, window, scores),\n"))
            .collect::<String>()
    );
    if dual_index.is_none() {
        s.push_str(
            "\n/// This image has no Dual model.\n\
             pub fn run_dual(_arena: &mut [u8], _previous: &[u8], _window: &[u8], _scores: &mut [f32; MAX_OUTPUTS]) -> Result<usize, ShapeError> {\n    Err(ShapeError)\n}\n",
        );
    }
    if let Some(p) = precompiled {
        s.push_str(&p.blob_source);
    }
    Ok(s)
}

/// A model's per-channel `(mean, std)` as a Rust tuple-of-arrays literal in the windows' channel
/// order (identity without a normalisation).
fn norm_literal(model: &CascadeModel<'_>, channels: usize) -> Result<String, AdaptError> {
    let (mean, std): (Vec<f32>, Vec<f32>) = match model.normalise {
        Some(n) => {
            n.check(channels)
                .map_err(|e| AdaptError::Invalid(format!("model `{}`: {e}", model.name)))?;
            (n.mean.clone(), n.std.clone())
        }
        None => (vec![0.0; channels], vec![1.0; channels]),
    };
    let list = |v: &[f32]| {
        v.iter()
            .map(|&x| f32_literal(x))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!("([{}], [{}])", list(&mean), list(&std)))
}

/// The Dual model's runner: kinglet's `[1, 384, 2]` int8 input, the three normalised total_acc
/// axes end to end with (previous, current) as the two channels — exactly as
/// [`crate::models::DualClassifier`] feeds it on the host.
fn dual_source(
    m: usize,
    model: &CascadeModel<'_>,
    windows: &StreamWindows,
) -> Result<String, AdaptError> {
    let what =
        |message: String| AdaptError::Invalid(format!("Dual model `{}`: {message}", model.name));
    let graph = model.graph;
    let [input] = graph.inputs[..] else {
        return Err(what("a Dual model has one input".into()));
    };
    let t = graph.tensor(input);
    let time = windows.time();
    let (scale, zero_point) = match (&t.dtype, t.quant.as_ref()) {
        (DType::I8, Some(q)) if q.is_per_tensor() && t.elements() == time * 6 => {
            (q.scale[0], q.zero_point[0])
        }
        _ => {
            return Err(what(format!(
                "expected a per-tensor int8 [1, {}, 2] input, got {} {:?}",
                time * 3,
                t.dtype,
                t.shape
            )));
        }
    };
    let (out_scale, out_zero) = int8_output_quantisation(graph).map_err(what)?;
    let norm = norm_literal(model, windows.channels())?;
    Ok(format!(
        "const M{m}_NORM: ([f32; WINDOW_CHANNELS], [f32; WINDOW_CHANNELS]) = {norm};\n\n\
         /// The Dual model on the previous and the current window.\n\
         pub fn run_dual(arena: &mut [u8], previous: &[u8], window: &[u8], scores: &mut [f32; MAX_OUTPUTS]) -> Result<usize, ShapeError> {{\n    \
             let mut input = [0i8; m{m}::INPUT_LEN];\n    \
             let (mean, std) = &M{m}_NORM;\n    \
             let mut i = 0;\n    \
             for axis in {first}..{first} + 3 {{\n        \
                 for t in 0..WINDOW_TIME {{\n            \
                     for w in [previous, window] {{\n                \
                         let at = (t * WINDOW_CHANNELS + axis) * SAMPLE_BYTES;\n                \
                         let b = w.get(at..at + SAMPLE_BYTES).ok_or(ShapeError)?;\n                \
                         let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);\n                \
                         let v = (x - *mean.get(axis).ok_or(ShapeError)?) / *std.get(axis).ok_or(ShapeError)?;\n                \
                         *input.get_mut(i).ok_or(ShapeError)? = (round_half_away(v / {scale}) as i32 + {zero_point}).clamp(-128, 127) as i8;\n                \
                         i += 1;\n            }}\n        }}\n    }}\n    \
             let mut output = [0i8; m{m}::OUTPUT_LEN];\n    \
             m{m}::infer_in(arena, &input, &mut output)?;\n    \
             dequantise(&output, {out_scale}, {out_zero}, scores)\n}}\n",
        first = S3_CHANNELS[0],
        scale = f32_literal(scale),
        out_scale = f32_literal(out_scale),
    ))
}

/// Firmware builds of one work directory share one output path.
static CASCADE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Generates, builds and runs the firmware cascade in QEMU (mps2-an386), returning its
/// per-window decisions and instruction counts.
pub fn run_in_qemu(
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    work_dir: &Path,
) -> Result<FirmwareCascadeRun, AdaptError> {
    run_in_qemu_on(
        &kinglet_compile::target::CortexM4,
        spec,
        big,
        littles,
        dual,
        windows,
        work_dir,
    )
}

/// [`run_in_qemu`] on `target`'s board (the Cortex-M3's mps2-an385, the same application).
pub fn run_in_qemu_on(
    target: &dyn kinglet_compile::target::Target,
    spec: &StrategySpec,
    big: &CascadeModel<'_>,
    littles: &[CascadeModel<'_>],
    dual: Option<&CascadeModel<'_>>,
    windows: &StreamWindows,
    work_dir: &Path,
) -> Result<FirmwareCascadeRun, AdaptError> {
    let _guard = cascade_lock();
    let bins = embed_windows(windows, work_dir)?;
    let source = cascade_source(spec, big, littles, dual, windows, &bins)?;
    let text = build_and_run(target, &source, work_dir)?;
    parse_firmware_output(&text, windows.n())
}

/// Firmware builds of one work directory share one output path: one at a time per process.
pub(crate) fn cascade_lock() -> std::sync::MutexGuard<'static, ()> {
    CASCADE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn firmware_error(e: kinglet_compile::CompileError) -> AdaptError {
    AdaptError::Invalid(format!("firmware cascade: {e}"))
}

/// Writes `text` as `name` in `work_dir`; returns its absolute path (the firmware's build
/// script and `include_bytes!` need one).
fn write_in(work_dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, AdaptError> {
    let path = work_dir.join(name);
    write_atomic(&path, bytes).map_err(firmware_error)?;
    path.canonicalize().map_err(|e| AdaptError::io(&path, e))
}

/// Builds the cascade-mode image around the generated `source` for `target` and runs it in
/// QEMU; returns its output.
pub(crate) fn build_and_run(
    target: &dyn kinglet_compile::target::Target,
    source: &str,
    work_dir: &Path,
) -> Result<String, AdaptError> {
    build_and_run_sized(target, source, work_dir).map(|(text, _)| text)
}

/// [`build_and_run`], also giving the image's flash bytes.
pub(crate) fn build_and_run_sized(
    target: &dyn kinglet_compile::target::Target,
    source: &str,
    work_dir: &Path,
) -> Result<(String, u64), AdaptError> {
    let rs = write_in(work_dir, "cascade.rs", source.as_bytes())?;
    let elf = qemu::build_cascade_firmware_for(target, &rs, &work_dir.join("target"))
        .map_err(firmware_error)?;
    let flash = qemu::image_size(&elf).map_err(firmware_error)?.flash;
    let text = qemu::run_qemu_on(target, &elf, Duration::from_secs(600)).map_err(firmware_error)?;
    Ok((text, flash))
}

/// Writes the files the image embeds with `include_bytes!`.
pub(crate) fn embed_windows(
    windows: &StreamWindows,
    work_dir: &Path,
) -> Result<EmbeddedFiles, AdaptError> {
    let write = |name: &str, bytes: &[u8]| write_in(work_dir, name, bytes);
    Ok(match windows {
        StreamWindows::Int8(w) => {
            let bytes: Vec<u8> = w.data.iter().map(|&q| q as u8).collect();
            EmbeddedFiles {
                windows: write("windows.i8", &bytes)?,
                signature: None,
            }
        }
        StreamWindows::Float(w) => {
            let bytes: Vec<u8> = w.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let signature = if w.accel.is_some() {
                w.window_data().signature_bytes()
            } else {
                vec![0; w.n * w.time * 3]
            };
            let signature: Vec<u8> = signature.iter().map(|&q| q as u8).collect();
            EmbeddedFiles {
                windows: write("windows.f32", &bytes)?,
                signature: Some(write("signature.i8", &signature)?),
            }
        }
    })
}

/// Files a firmware cascade embeds (absolute paths).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedFiles {
    pub windows: PathBuf,
    /// Float windows: the signature check's total_acc bytes.
    pub signature: Option<PathBuf>,
}

/// Reads the `KINGLET` lines of a cascade run; errors unless every window was reported.
pub fn parse_firmware_output(text: &str, n: usize) -> Result<FirmwareCascadeRun, AdaptError> {
    let bad = |line: &str| AdaptError::Parse {
        path: "firmware output".into(),
        line: 0,
        message: format!("malformed line `{line}`"),
    };
    let mut csv = String::new();
    let mut instructions = Vec::new();
    let mut shared = None;
    let mut arenas = Vec::new();
    let mut known = 0;
    let mut done = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("KINGLET ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        match it.next() {
            Some("window") => {
                let (Some(decision), Some(count)) = (it.next(), it.next()) else {
                    return Err(bad(line));
                };
                csv += decision;
                csv.push('\n');
                instructions.push(count.parse().map_err(|_| bad(line))?);
            }
            Some("arena_bytes") => {
                shared = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad(line))?,
                )
            }
            Some("model_arena") => {
                let (Some(name), Some(bytes)) = (it.next(), it.next().and_then(|v| v.parse().ok()))
                else {
                    return Err(bad(line));
                };
                arenas.push((name.to_string(), bytes));
            }
            Some("known_loop") => {
                known = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(line))?
            }
            Some("error") | Some("panic") => {
                return Err(AdaptError::Invalid(format!("firmware reported: {rest}")));
            }
            Some("done") => done = true,
            _ => {}
        }
    }
    let windows = parse_decisions_csv(&csv, "firmware output")?;
    if !done || windows.len() != n {
        return Err(AdaptError::Invalid(format!(
            "firmware reported {} of {n} windows{}",
            windows.len(),
            if done { "" } else { " and did not finish" }
        )));
    }
    Ok(FirmwareCascadeRun {
        windows,
        instructions,
        shared_arena_bytes: shared.ok_or_else(|| bad("(no arena_bytes line)"))?,
        model_arena_bytes: arenas,
        known_loop_instructions: known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_output_needs_every_window_and_done() {
        let text = "KINGLET known_loop 3001 ticks 9603\nKINGLET arena_bytes 64\nKINGLET model_arena big 64\n\
                    KINGLET window 0,none,1,4 1200\nKINGLET window 1,little4,0,4 300\nKINGLET done\n";
        let run = parse_firmware_output(text, 2).unwrap();
        assert_eq!(run.instructions, [1200, 300]);
        assert_eq!(run.shared_arena_bytes, 64);
        assert_eq!(run.windows[1].label, 4);
        assert!(!run.windows[1].big);
        assert!(parse_firmware_output(text, 3).is_err());
        assert!(parse_firmware_output(&text.replace("KINGLET done\n", ""), 2).is_err());
        assert!(parse_firmware_output(&text.replace(" 300", " x"), 2).is_err());
    }

    #[test]
    fn strategy_literals_keep_exact_thresholds() {
        let lit = strategy_literal(Strategy::SameActivity {
            rule: SameRule::MinProbability(0.7),
        });
        assert_eq!(
            lit,
            format!(
                "Strategy::SameActivity {{ rule: SameRule::MinProbability(f32::from_bits({:#010x})) }}",
                0.7f32.to_bits()
            )
        );
    }
}
