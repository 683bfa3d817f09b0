//! Energy from measured instruction counts, never from MACs, and battery life from the whole
//! device, not the MCU core alone.
//!
//! Per window: each model that ran costs `instructions × cycles_per_instruction` cycles at the
//! board's clock, drawing `active_ua_per_mhz × clock_mhz` from the supply; the MCU wakes once
//! per window (wake-up time at active current) and sleeps for the rest of the
//! [`WINDOW_PERIOD_S`]. Around it ([`system`]): the IMU's current at its sampling rate, the
//! wake-ups that read its samples (one per sample, or one per FIFO batch), the bus transfers,
//! and the cell's self-discharge; battery life comes from all of them, with each part's share.
//! Each operating point of a board (clock, core voltage, flash wait states) is priced too, and
//! the cheapest one that meets the window deadline is named.
//!
//! Counts are per core: a board is priced only from counts measured on its own core (a
//! Cortex-M3 board never silently from Cortex-M4 counts). A figure missing from a board profile
//! leaves the quantities that need it empty, named `unknown: <figure>`; a model without a
//! measured instruction count is priced at zero and named in `unmeasured`.

pub mod system;

use system::line_of;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{AdaptError, CheckKind, StreamRun, WINDOW_PERIOD_S};
pub use system::{Cell, OperatingPointEnergy, Part, Sensor, System, SystemEnergy};

include!(concat!(env!("OUT_DIR"), "/boards.rs"));

/// An MCU as the energy model sees it. Every figure cites its datasheet in `sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short id used on the command line (file stem), filled in by [`BoardProfile::load`].
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub core: String,
    pub clock_mhz: f64,
    pub supply_v: f64,
    /// Run-mode current per MHz executing from flash.
    pub active_ua_per_mhz: Option<f64>,
    /// Deep-sleep current with a timer (RTC) running and SRAM retained.
    pub sleep_ua: Option<f64>,
    /// Wake-up time from that sleep mode.
    pub wakeup_us: Option<f64>,
    /// Core cycles per instruction counted in QEMU (see the profile's `sources`).
    pub cycles_per_instruction: f64,
    /// On-chip flash and SRAM, KiB: what a model and its arena must fit in (not used in energy).
    #[serde(default)]
    pub flash_kib: Option<f64>,
    #[serde(default)]
    pub ram_kib: Option<f64>,
    /// Core supply voltage at `clock_mhz`, mV: what lets another operating point's current be
    /// derived from `active_ua_per_mhz` (dynamic current ∝ core voltage × clock).
    #[serde(default)]
    pub core_mv: Option<f64>,
    /// Flash wait states at `clock_mhz`: what a fetch that misses the flash cache costs on top.
    #[serde(default)]
    pub flash_wait_states: Option<u32>,
    /// Other clocks the chip runs at (its DVFS or regulator-range table), each with its source;
    /// the default point is `clock_mhz` above.
    #[serde(default)]
    pub operating_points: Vec<OperatingPoint>,
    /// Citation per figure: document, revision, table or section.
    pub sources: BTreeMap<String, String>,
    /// Figures searched for and not found, with what was searched.
    #[serde(default)]
    pub missing: BTreeMap<String, String>,
}

impl BoardProfile {
    pub fn parse(text: &str, path: &Path) -> Result<Self, AdaptError> {
        let mut p: BoardProfile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            AdaptError::Parse {
                path: path.to_path_buf(),
                line,
                message: e.message().to_string(),
            }
        })?;
        if p.id.is_empty() {
            p.id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        p.validate(path)?;
        Ok(p)
    }

    pub fn load(path: &Path) -> Result<Self, AdaptError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// The profiles of kinglet's `boards/` folder as it was built, sorted by id: what an
    /// installed kinglet prices with when no `boards/` folder is at hand. Each is named
    /// `built-in:boards/<file>` in errors.
    pub fn built_in() -> Result<Vec<Self>, AdaptError> {
        let mut out = BUILT_IN_BOARDS
            .iter()
            .map(|(name, text)| Self::parse(text, &Path::new("built-in:boards").join(name)))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// All `*.toml` profiles in `dir`, sorted by id.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, AdaptError> {
        let entries = std::fs::read_dir(dir).map_err(|e| AdaptError::io(dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| AdaptError::io(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                out.push(Self::load(&path)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn validate(&self, path: &Path) -> Result<(), AdaptError> {
        let bad = |message: String| {
            Err(AdaptError::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        let figures = [
            ("clock_mhz", Some(self.clock_mhz)),
            ("supply_v", Some(self.supply_v)),
            ("active_ua_per_mhz", self.active_ua_per_mhz),
            ("sleep_ua", self.sleep_ua),
            ("wakeup_us", self.wakeup_us),
            ("cycles_per_instruction", Some(self.cycles_per_instruction)),
        ];
        for (name, value) in figures {
            match value {
                Some(v) if !(v.is_finite() && v >= 0.0) => {
                    return bad(format!("{name} = {v} is not a finite non-negative number"));
                }
                Some(_) if !self.sources.contains_key(name) => {
                    return bad(format!("{name} has no citation in [sources]"));
                }
                None if !self.missing.contains_key(name) => {
                    return bad(format!("{name} is absent and not explained in [missing]"));
                }
                _ => {}
            }
        }
        // Memory sizes are optional, but cited when given.
        for (name, value) in [("flash_kib", self.flash_kib), ("ram_kib", self.ram_kib)] {
            match value {
                Some(v) if !(v.is_finite() && v > 0.0) => {
                    return bad(format!("{name} = {v} is not a finite positive number"));
                }
                Some(_) if !self.sources.contains_key(name) => {
                    return bad(format!("{name} has no citation in [sources]"));
                }
                _ => {}
            }
        }
        if self.clock_mhz <= 0.0 || self.cycles_per_instruction <= 0.0 {
            return bad("clock_mhz and cycles_per_instruction must be positive".into());
        }
        // Operating-point figures are optional, but cited when given.
        if let Some(v) = self.core_mv
            && !(v.is_finite() && v > 0.0)
        {
            return bad(format!("core_mv = {v} is not a finite positive number"));
        }
        for (name, given) in [
            ("core_mv", self.core_mv.is_some()),
            ("flash_wait_states", self.flash_wait_states.is_some()),
        ] {
            if given && !self.sources.contains_key(name) {
                return bad(format!("{name} has no citation in [sources]"));
            }
        }
        for (i, p) in self.operating_points.iter().enumerate() {
            let positive = |v: f64| v.is_finite() && v > 0.0;
            if !positive(p.clock_mhz)
                || !p.core_mv.is_none_or(positive)
                || !p.active_ua_per_mhz.is_none_or(positive)
            {
                return bad(format!(
                    "operating_points[{i}] ({} MHz): clock_mhz, core_mv and active_ua_per_mhz must be finite positive numbers",
                    p.clock_mhz
                ));
            }
            if p.source.trim().is_empty() {
                return bad(format!(
                    "operating_points[{i}] ({} MHz) has no source",
                    p.clock_mhz
                ));
            }
        }
        Ok(())
    }

    /// The default operating point (`clock_mhz` and the figures beside it) first, then the
    /// profile's `operating_points` that differ from it.
    pub fn all_operating_points(&self) -> Vec<OperatingPoint> {
        let default = OperatingPoint {
            clock_mhz: self.clock_mhz,
            core_mv: self.core_mv,
            active_ua_per_mhz: self.active_ua_per_mhz,
            flash_wait_states: self.flash_wait_states,
            source: "the profile's default clock".into(),
        };
        let mut out = vec![default.clone()];
        out.extend(
            self.operating_points
                .iter()
                .filter(|p| !(p.clock_mhz == default.clock_mhz && p.core_mv == default.core_mv))
                .cloned(),
        );
        out
    }
}

/// A clock the chip can run at, with the core voltage and flash wait states it needs there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    pub clock_mhz: f64,
    #[serde(default)]
    pub core_mv: Option<f64>,
    /// Run current per MHz at this point when a source gives it; otherwise it is derived from
    /// the default point's figure by core voltage, or unknown.
    #[serde(default)]
    pub active_ua_per_mhz: Option<f64>,
    #[serde(default)]
    pub flash_wait_states: Option<u32>,
    /// Where the point (and any figure on it) comes from.
    pub source: String,
}

/// A measured instruction count and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub instructions: u64,
    pub source: String,
}

/// Instruction counts per inference, keyed `big`, `little` (any little), `little<k>` (one
/// little), `dual`, `l1_distance`, per core: the same model executes different instructions on
/// a Cortex-M3 (no SIMD MAC) or an RV32IMC core than on the Cortex-M4 its `kinglet profile`
/// count came from, so each board is priced only from counts of its own core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostTable {
    pub source: String,
    /// The core the counts in `costs` were measured on. Tables written before cores were named
    /// hold Cortex-M4 counts (`kinglet profile --target cortex-m4`, QEMU mps2-an386).
    #[serde(default = "default_core")]
    pub core: String,
    pub costs: BTreeMap<String, Cost>,
    /// Counts measured on other cores, keyed by [`core_id`]: `--cost big@cortex-m3=…`.
    #[serde(default)]
    pub other_cores: BTreeMap<String, BTreeMap<String, Cost>>,
}

fn default_core() -> String {
    "Cortex-M4".into()
}

/// The id a core is matched by: lower case, dashes for spaces, and a Cortex-M's FPU suffix
/// dropped (the FPU changes no integer instruction count, so Cortex-M4 counts price a
/// Cortex-M4F and back).
pub fn core_id(core: &str) -> String {
    let c = core.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    match c.strip_suffix('f') {
        Some(s) if s.starts_with("cortex-m") => s.to_string(),
        _ => c,
    }
}

impl CostTable {
    /// The seed's system on TensorFlow Lite Micro with CMSIS-NN, QEMU mps2-an386 (Cortex-M4F),
    /// exact counts from /work/shared/seed-models/README.md. Big-1IN int8 stands in for
    /// Big-3IN (same layers, merged input); the Dual model and the L1 distance were not measured.
    pub fn seed_tflm_cmsis_nn() -> Self {
        let src = "seed-models/README.md: TFLM + CMSIS-NN, QEMU mps2-an386, release build";
        let mut costs = BTreeMap::new();
        costs.insert(
            "big".into(),
            Cost {
                instructions: 322_643,
                source: format!("B_s123_1IN_int8, {src}"),
            },
        );
        costs.insert(
            "little".into(),
            Cost {
                instructions: 135_066,
                source: format!("S0_s3_int8, {src}"),
            },
        );
        Self {
            source: "seed's system on TensorFlow Lite Micro + CMSIS-NN".into(),
            core: default_core(),
            costs,
            other_cores: BTreeMap::new(),
        }
    }

    /// The seed's Big on TensorFlow Lite Micro with its reference kernels (issue 4's anchor,
    /// 911,169 instructions for B_s123_1IN_int8); the Little was not measured that way.
    pub fn seed_tflm_reference() -> Self {
        let mut costs = BTreeMap::new();
        costs.insert(
            "big".into(),
            Cost {
                instructions: 911_169,
                source: "B_s123_1IN_int8, TFLM reference kernels, QEMU mps2-an386 (issue 4 anchor)"
                    .into(),
            },
        );
        Self {
            source: "seed's Big on TensorFlow Lite Micro, reference kernels".into(),
            core: default_core(),
            costs,
            other_cores: BTreeMap::new(),
        }
    }

    /// A built-in table by name (`seed-tflm-cmsis-nn`, `seed-tflm-reference`) or a JSON file
    /// holding a [`CostTable`].
    pub fn named_or_file(name: &str) -> Result<Self, AdaptError> {
        match name {
            "seed-tflm-cmsis-nn" => Ok(Self::seed_tflm_cmsis_nn()),
            "seed-tflm-reference" => Ok(Self::seed_tflm_reference()),
            path => Self::load(Path::new(path)),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AdaptError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| AdaptError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })
    }

    /// Sets one entry from `KEY=VALUE` or `KEY@CORE=VALUE`, VALUE an instruction count or the
    /// `--json` output of `kinglet profile` (its `instructions` field; for the checks
    /// `signature` and `l1_distance` its `checks`), e.g. `big=big-profile.json` (counts on the
    /// table's core) or `big@cortex-m3=big-m3.json` (counts measured on a Cortex-M3).
    pub fn set_from_arg(&mut self, arg: &str) -> Result<(), AdaptError> {
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            AdaptError::Invalid(format!(
                "--cost `{arg}`: expected KEY=INSTRUCTIONS, KEY=PROFILE.json or KEY@CORE=…"
            ))
        })?;
        let (key, core) = match key.split_once('@') {
            Some((k, c)) if !c.trim().is_empty() => (k, Some(core_id(c))),
            Some(_) => {
                return Err(AdaptError::Invalid(format!(
                    "--cost `{arg}`: empty core after `@` (e.g. big@cortex-m3=…)"
                )));
            }
            None => (key, None),
        };
        let valid = [
            "big",
            "reference",
            "little",
            "dual",
            "l1_distance",
            "signature",
        ]
        .contains(&key)
            || key
                .strip_prefix("little")
                .is_some_and(|k| k.parse::<u8>().is_ok());
        if !valid {
            return Err(AdaptError::Invalid(format!(
                "--cost key `{key}`: expected big, reference, little, little<k>, dual, l1_distance or signature"
            )));
        }
        let cost = match value.parse::<u64>() {
            Ok(instructions) => Cost {
                instructions,
                source: "given on the command line".into(),
            },
            Err(_) => {
                let path = Path::new(value);
                let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| AdaptError::Parse {
                        path: path.to_path_buf(),
                        line: e.line(),
                        message: e.to_string(),
                    })?;
                // A model's cost is its `instructions`; a check's is in `checks` (the
                // profile harness measures them beside the model).
                let (field, found) = match key {
                    "signature" | "l1_distance" => (
                        if key == "signature" {
                            "checks.signature"
                        } else {
                            "checks.l1_distance"
                        },
                        json.get("checks").and_then(|c| c.get(key)),
                    ),
                    _ => ("instructions", json.get("instructions")),
                };
                let instructions = found.and_then(serde_json::Value::as_u64).ok_or_else(|| {
                    AdaptError::Config {
                        path: path.to_path_buf(),
                        message: format!("no non-negative integer `{field}` field"),
                    }
                })?;
                Cost {
                    instructions,
                    source: format!("measured, {}", path.display()),
                }
            }
        };
        match core.filter(|c| *c != core_id(&self.core)) {
            Some(c) => {
                self.source = format!("{} (with {key} on {c} from {value})", self.source);
                self.other_cores
                    .entry(c)
                    .or_default()
                    .insert(key.to_string(), cost);
            }
            None => {
                self.costs.insert(key.to_string(), cost);
                self.source = format!("{} (with {key} from {value})", self.source);
            }
        }
        Ok(())
    }

    /// The counts measured on `core` (matched by [`core_id`]), if any.
    pub fn for_core(&self, core: &str) -> Option<&BTreeMap<String, Cost>> {
        let id = core_id(core);
        if id == core_id(&self.core) {
            Some(&self.costs)
        } else {
            self.other_cores.get(&id)
        }
    }

    /// Cost key of a check (None for no check).
    fn check_cost(&self, check: CheckKind) -> (Option<&Cost>, String) {
        check_cost(&self.costs, check)
    }
}

/// Cost of a check in `costs` and the key it was (or would be) found under.
fn check_cost(costs: &BTreeMap<String, Cost>, check: CheckKind) -> (Option<&Cost>, String) {
    let find = |keys: &[String]| {
        keys.iter()
            .find_map(|k| costs.get(k).map(|c| (c, k.clone())))
    };
    let keys: Vec<String> = match check {
        CheckKind::None => return (None, String::new()),
        CheckKind::SameActivity(k) | CheckKind::Classifier(k) => {
            vec![format!("little{k}"), "little".into()]
        }
        CheckKind::Dual => vec!["dual".into()],
        CheckKind::Distance => vec!["l1_distance".into()],
        CheckKind::Signature => vec!["signature".into()],
    };
    match find(&keys) {
        Some((c, k)) => (Some(c), k),
        None => (None, keys[0].clone()),
    }
}
/// Energy of one strategy run on one board, averaged per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    pub board: String,
    pub board_name: String,
    /// The board's core, and the core whose instruction counts priced it (`None`: no counts
    /// measured on that core, so nothing inference-related is priced).
    #[serde(default)]
    pub core: String,
    #[serde(default)]
    pub counts_core: Option<String>,
    /// Seconds between two windows (the stream's step over its sampling rate): the time
    /// the MCU sleeps in and the battery drains over.
    #[serde(default = "default_window_period")]
    pub window_period_s: f64,
    /// Instructions executed for inference, mean per window.
    pub instructions_per_window: f64,
    pub inference_uj_per_window: Option<f64>,
    pub wakeup_uj_per_window: Option<f64>,
    pub sleep_uj_per_window: Option<f64>,
    /// The MCU alone at the default clock: inference + sleep (+ one wake-up when known);
    /// `None` if inference or sleep is unknown.
    pub total_uj_per_window: Option<f64>,
    /// Active time of a window (the latency of its decision), mean and worst, ms.
    pub mean_latency_ms: f64,
    pub max_latency_ms: f64,
    pub battery: String,
    /// The whole device on the cell at the default clock (MCU, sensor, sampling wake-ups,
    /// self-discharge; see `operating_points[0].system`); `None` while any part is unknown.
    pub battery_life_days: Option<f64>,
    /// The MCU alone, as priced before the device around it was modelled: an upper bound that
    /// no real device reaches.
    #[serde(default)]
    pub mcu_only_battery_life_days: Option<f64>,
    /// Inference energy of the reference model on every window, for ratios: the cost entry
    /// `reference` when given (e.g. kinglet's int8 Big-3IN while a cheaper Big runs the
    /// cascade), else the cascade's own Big.
    pub big_only_inference_uj_per_window: Option<f64>,
    pub unmeasured: Vec<String>,
    pub missing_figures: Vec<String>,
    /// The sensor the device reads (`none` for the MCU alone) and whether it batches in its
    /// FIFO.
    #[serde(default)]
    pub sensor: String,
    #[serde(default)]
    pub fifo: bool,
    /// Which cycles-per-instruction figure the energy rests on, and the bound beside it.
    #[serde(default)]
    pub cpi_note: String,
    /// Every operating point, the default clock first.
    #[serde(default)]
    pub operating_points: Vec<OperatingPointEnergy>,
    /// Index into `operating_points` of the cheapest one meeting the deadline, by the
    /// lower-bound CPI and by the wait-state bound.
    #[serde(default)]
    pub best_point: Option<usize>,
    #[serde(default)]
    pub best_point_with_wait_states: Option<usize>,
    /// The parts of the device's energy the best point minimises (see [`system::ranking`]).
    #[serde(default)]
    pub ranked_by: Vec<String>,
}

impl EnergyReport {
    /// The whole device at the default clock, when priced.
    pub fn system(&self) -> Option<&SystemEnergy> {
        self.operating_points.first().map(|p| &p.system)
    }

    /// Whether no instruction counts were measured on the board's core (records written before
    /// cores were named were all priced, and say nothing).
    pub fn counts_unknown(&self) -> bool {
        self.missing_figures
            .iter()
            .any(|f| f.starts_with("instructions on "))
    }

    /// What `unknown: …` the board's figures leave, as shown in tables.
    pub fn unknown_text(&self) -> String {
        self.missing_figures
            .iter()
            .map(|f| format!("unknown: {f}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Where no run current is cited at all (ECM3532, GAP8) but every point states its core
    /// voltage: the point meeting the deadline whose dynamic energy per instruction, ∝ V², is
    /// least (ties: the fastest), with that energy relative to the default point's. The ratio
    /// needs no absolute figure, so it is the one honest statement the voltage table allows.
    pub fn relative_best_point(&self) -> Option<(usize, f64)> {
        let base = self.operating_points.first()?.core_mv?;
        if self
            .operating_points
            .iter()
            .any(|p| p.active_ua_per_mhz.is_some() || p.core_mv.is_none())
            || self.counts_unknown()
        {
            return None;
        }
        let ratio = |p: &OperatingPointEnergy| p.core_mv.map(|v| (v / base) * (v / base));
        let meeting: Vec<(usize, f64)> = (self.operating_points.iter().enumerate())
            .filter(|(_, p)| p.meets_deadline)
            .filter_map(|(i, p)| ratio(p).map(|r| (i, r)))
            .collect();
        let least = meeting.iter().map(|m| m.1).min_by(f64::total_cmp)?;
        meeting
            .into_iter()
            .filter(|m| m.1 <= least + 1e-12)
            .max_by(|a, b| {
                let clock = |i: usize| self.operating_points[i].clock_mhz;
                clock(a.0).total_cmp(&clock(b.0))
            })
    }

    /// The best operating point and what it saves against the default clock, as text.
    pub fn best_point_text(&self) -> String {
        let Some(base) = self.operating_points.first() else {
            return "not priced".into();
        };
        let describe = |i: usize, ws: bool| {
            let p = &self.operating_points[i];
            let pick = |p: &OperatingPointEnergy| {
                if ws {
                    p.system_with_wait_states
                        .clone()
                        .unwrap_or(p.system.clone())
                } else {
                    p.system.clone()
                }
            };
            let (b, s) = (pick(base), pick(p));
            let mv = p.core_mv.map(|v| format!(" {v:.0} mV")).unwrap_or_default();
            // Savings are counted on the MCU's parts: the sensor and self-discharge are the same
            // at every point and would hide them.
            let mcu_parts: Vec<String> = self
                .ranked_by
                .iter()
                .filter(|p| !["sensor", "self-discharge"].contains(&p.as_str()))
                .cloned()
                .collect();
            let what = if mcu_parts.len() == 4 {
                "MCU".to_string()
            } else {
                mcu_parts.join(" + ")
            };
            let key = |e: &SystemEnergy| system::rank_key(e, &mcu_parts);
            match (key(&b), key(&s)) {
                (Some(bk), Some(sk)) if i != 0 && bk > 0.0 => {
                    let mut t = format!(
                        "{} MHz{mv}: {what} {sk:.3} µJ/window vs {bk:.3} at {} MHz ({:.1} % less)",
                        p.clock_mhz,
                        base.clock_mhz,
                        (1.0 - sk / bk) * 100.0
                    );
                    let inference =
                        |e: &SystemEnergy| e.parts.first().and_then(|x| x.uj_per_window);
                    if let (Some(i0), Some(i1)) = (inference(&b), inference(&s))
                        && mcu_parts.len() > 1
                    {
                        t += &format!("; inference alone {i1:.3} vs {i0:.3}");
                    }
                    if let (Some(d0), Some(d1)) = (b.battery_life_days, s.battery_life_days) {
                        t += &format!(", battery {d0:.1} → {d1:.1} days");
                    }
                    t
                }
                _ => format!("{} MHz{mv} (the default clock)", p.clock_mhz),
            }
        };
        let others_unknown: Vec<String> = self.operating_points[1..]
            .iter()
            .filter(|p| p.active_ua_per_mhz.is_none())
            .map(|p| format!("{} MHz", p.clock_mhz))
            .collect();
        let relative = self.relative_best_point();
        let mut s = match (self.best_point, relative) {
            (Some(i), _) => describe(i, false),
            (None, Some((i, ratio))) => {
                let p = &self.operating_points[i];
                let mv = p.core_mv.map(|v| format!(" {v:.0} mV")).unwrap_or_default();
                if i == 0 {
                    format!(
                        "unknown in µJ (no cited run current); by core voltage alone the default, {} MHz{mv}",
                        p.clock_mhz
                    )
                } else {
                    format!(
                        "unknown in µJ (no cited run current); by core voltage alone {} MHz{mv}: \
                         inference ≈ {ratio:.2}× the default's energy ({:.0} % less; dynamic energy \
                         ∝ V², leakage over the longer active time not counted)",
                        p.clock_mhz,
                        (1.0 - ratio) * 100.0
                    )
                }
            }
            (None, None) => "unknown".into(),
        };
        if let Some(i) = self.best_point_with_wait_states
            && Some(i) != self.best_point
        {
            s += &format!(
                "; with flash wait states on every fetch: {}",
                describe(i, true)
            );
        }
        if !others_unknown.is_empty() && (self.best_point.is_some() || relative.is_none()) {
            s += &format!(" ({} unknown)", others_unknown.join(", "));
        }
        s
    }
}

fn default_window_period() -> f64 {
    WINDOW_PERIOD_S
}

/// Prices a run on a board with measured instruction counts, a window every
/// [`WINDOW_PERIOD_S`] (UCI-HAR's 64-sample step at 50 Hz).
pub fn price_run(
    run: &StreamRun,
    board: &BoardProfile,
    costs: &CostTable,
    system: &System,
) -> Result<EnergyReport, AdaptError> {
    price_run_every(run, board, costs, system, WINDOW_PERIOD_S)
}

/// [`price_run`] for windows `window_period_s` apart (e.g. WISDM's 100-sample step at 20 Hz:
/// 5 s).
pub fn price_run_every(
    run: &StreamRun,
    board: &BoardProfile,
    costs: &CostTable,
    system: &System,
    window_period_s: f64,
) -> Result<EnergyReport, AdaptError> {
    if !(window_period_s.is_finite() && window_period_s > 0.0) {
        return Err(AdaptError::Invalid(format!(
            "window period {window_period_s} s: expected a positive number of seconds"
        )));
    }
    let n = run.windows.len();
    if n == 0 {
        return Err(AdaptError::Invalid("cannot price an empty run".into()));
    }
    let cell = &system.cell;
    let mut report = EnergyReport {
        board: board.id.clone(),
        board_name: board.name.clone(),
        core: board.core.clone(),
        counts_core: None,
        window_period_s,
        instructions_per_window: 0.0,
        inference_uj_per_window: None,
        wakeup_uj_per_window: None,
        sleep_uj_per_window: None,
        total_uj_per_window: None,
        mean_latency_ms: 0.0,
        max_latency_ms: 0.0,
        battery: cell.name.clone(),
        battery_life_days: None,
        mcu_only_battery_life_days: None,
        big_only_inference_uj_per_window: None,
        unmeasured: Vec::new(),
        missing_figures: Vec::new(),
        sensor: system
            .sensor
            .as_ref()
            .map_or("none".to_string(), |s| s.id.clone()),
        fifo: system.fifo,
        cpi_note: String::new(),
        operating_points: Vec::new(),
        best_point: None,
        best_point_with_wait_states: None,
        ranked_by: Vec::new(),
    };
    // Counts from another core would price this one at a guess: leave it unknown instead.
    let Some(table) = costs.for_core(&board.core) else {
        report
            .missing_figures
            .push(format!("instructions on {}", board.core));
        return Ok(report);
    };
    report.counts_core = Some(if core_id(&costs.core) == core_id(&board.core) {
        costs.core.clone()
    } else {
        core_id(&board.core)
    });
    let big = table.get("big");
    let mut unmeasured = std::collections::BTreeSet::new();
    if big.is_none() {
        unmeasured.insert("big".to_string());
    }
    let mut total_instr = 0u128;
    let mut max_instr = 0u64;
    for w in &run.windows {
        let (check_cost, key) = check_cost(table, w.check);
        let mut instr = 0u64;
        if w.check != CheckKind::None {
            match check_cost {
                Some(c) => instr += c.instructions,
                None => {
                    unmeasured.insert(key);
                }
            }
        }
        if w.big {
            instr += big.map_or(0, |c| c.instructions);
        }
        total_instr += u128::from(instr);
        max_instr = max_instr.max(instr);
    }
    let mean_instr = total_instr as f64 / n as f64;
    let hz = board.clock_mhz * 1e6;
    let cpi = board.cycles_per_instruction;
    let mean_active_s = mean_instr * cpi / hz;
    let max_active_s = max_instr as f64 * cpi / hz;
    let v = board.supply_v;
    let mut missing = Vec::new();
    // µA/MHz × MHz = µA; µA × V × s = µJ.
    let active_ua = board.active_ua_per_mhz.map(|a| a * board.clock_mhz);
    if active_ua.is_none() {
        missing.push("active_ua_per_mhz".to_string());
    }
    let inference = active_ua.map(|i| i * v * mean_active_s);
    let reference = table.get("reference").or(big);
    let big_only = match (active_ua, reference) {
        (Some(i), Some(c)) => Some(i * v * c.instructions as f64 * cpi / hz),
        _ => None,
    };
    let wake_s = board.wakeup_us.map(|us| us * 1e-6);
    if wake_s.is_none() {
        missing.push("wakeup_us".to_string());
    }
    let wakeup = match (active_ua, wake_s) {
        (Some(i), Some(t)) => Some(i * v * t),
        _ => None,
    };
    if board.sleep_ua.is_none() {
        missing.push("sleep_ua".to_string());
    }
    let sleep = board
        .sleep_ua
        .map(|s| s * v * (window_period_s - mean_active_s - wake_s.unwrap_or(0.0)).max(0.0));
    // The MCU-only total keeps its old rule (an unknown wake-up is left out and named); the
    // device total below is unknown while any part is.
    let total = match (inference, sleep) {
        (Some(a), Some(c)) => Some(a + c + wakeup.unwrap_or(0.0)),
        _ => None,
    };
    // Mean current in µA = µJ per window / (V · s per window); life = mAh / mA.
    let mcu_only_days = total.map(|e| {
        let ua = e / (v * window_period_s);
        cell.capacity_mah / (ua / 1000.0) / 24.0
    });
    let work = system::Workload {
        mean_instructions: mean_instr,
        max_instructions: max_instr as f64,
        period_s: window_period_s,
    };
    let points: Vec<OperatingPointEnergy> = board
        .all_operating_points()
        .iter()
        .map(|p| system::price_point(board, p, &work, system))
        .collect();
    for p in &points[0].system.unknown {
        if !missing.contains(p) {
            missing.push(p.clone());
        }
    }
    report.cpi_note = match board.flash_wait_states {
        Some(ws) => format!(
            "energy at CPI {cpi} (documented lower bound: every fetch hits the flash cache); \
             with {ws} flash wait states on every fetch CPI {} — both shown per operating point",
            cpi + f64::from(ws)
        ),
        None => format!(
            "energy at CPI {cpi} (documented lower bound); flash wait states not in the profile, \
             so cache misses are not counted"
        ),
    };
    report.instructions_per_window = mean_instr;
    report.inference_uj_per_window = inference;
    report.wakeup_uj_per_window = wakeup;
    report.sleep_uj_per_window = sleep;
    report.total_uj_per_window = total;
    report.mean_latency_ms = mean_active_s * 1e3;
    report.max_latency_ms = max_active_s * 1e3;
    report.battery_life_days = points[0].system.battery_life_days;
    report.mcu_only_battery_life_days = mcu_only_days;
    report.big_only_inference_uj_per_window = big_only;
    report.unmeasured = unmeasured.into_iter().collect();
    report.missing_figures = missing;
    let ranked_by = system::ranking(&points);
    report.best_point = system::best_point(&points, &ranked_by, false);
    report.best_point_with_wait_states =
        if points.iter().any(|p| p.system_with_wait_states.is_some()) {
            system::best_point(&points, &ranked_by, true)
        } else {
            None
        };
    report.ranked_by = ranked_by;
    report.operating_points = points;
    Ok(report)
}

/// Mean instructions per window: the board-independent cost used to rank thresholds.
pub fn instructions_per_window(run: &StreamRun, costs: &CostTable) -> f64 {
    let big = costs.costs.get("big").map_or(0, |c| c.instructions);
    let total: u128 = run
        .windows
        .iter()
        .map(|w| {
            let check = if w.check == CheckKind::None {
                0
            } else {
                costs.check_cost(w.check).0.map_or(0, |c| c.instructions)
            };
            u128::from(check + if w.big { big } else { 0 })
        })
        .sum();
    total as f64 / run.windows.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::WindowRecord;
    use crate::strategy::StrategyKind;
    use crate::{StrategySpec, StreamRun};

    fn board(wakeup_us: Option<f64>) -> BoardProfile {
        let text = format!(
            "name = \"test\"\ncore = \"Cortex-M4F\"\nclock_mhz = 1.0\nsupply_v = 2.0\nactive_ua_per_mhz = 10.0\nsleep_ua = 1.0\n{}cycles_per_instruction = 1.0\n[sources]\nclock_mhz = \"a\"\nsupply_v = \"b\"\nactive_ua_per_mhz = \"c\"\nsleep_ua = \"d\"\nwakeup_us = \"e\"\ncycles_per_instruction = \"f\"\n[missing]\nwakeup_us = \"not found\"\n",
            wakeup_us
                .map(|w| format!("wakeup_us = {w}\n"))
                .unwrap_or_default()
        );
        BoardProfile::parse(&text, Path::new("test.toml")).unwrap()
    }

    fn run() -> StreamRun {
        StreamRun {
            strategy: StrategySpec::new(StrategyKind::OneBigSixLittle),
            windows: vec![
                WindowRecord {
                    check: CheckKind::None,
                    big: true,
                    label: 0,
                },
                WindowRecord {
                    check: CheckKind::SameActivity(0),
                    big: false,
                    label: 0,
                },
            ],
        }
    }

    fn costs() -> CostTable {
        let mut costs = BTreeMap::new();
        costs.insert(
            "big".into(),
            Cost {
                instructions: 1000,
                source: "t".into(),
            },
        );
        costs.insert(
            "little".into(),
            Cost {
                instructions: 100,
                source: "t".into(),
            },
        );
        CostTable {
            source: "t".into(),
            core: "Cortex-M4".into(),
            costs,
            other_cores: BTreeMap::new(),
        }
    }

    fn mcu_only() -> System {
        System::mcu_only(Cell::cr2032())
    }

    #[test]
    fn energy_per_window_matches_hand_computation() {
        let e = price_run(&run(), &board(Some(100.0)), &costs(), &mcu_only()).unwrap();
        // mean 550 instructions at 1 MHz = 550 µs at 10 µA and 2 V.
        assert!((e.instructions_per_window - 550.0).abs() < 1e-9);
        assert!((e.inference_uj_per_window.unwrap() - 0.011).abs() < 1e-12);
        assert!((e.wakeup_uj_per_window.unwrap() - 0.002).abs() < 1e-12);
        let sleep = 2.0 * (1.28 - 550e-6 - 100e-6);
        assert!((e.sleep_uj_per_window.unwrap() - sleep).abs() < 1e-12);
        let total = 0.011 + 0.002 + sleep;
        assert!((e.total_uj_per_window.unwrap() - total).abs() < 1e-12);
        let days = 225.0 / (total / (2.0 * 1.28) / 1000.0) / 24.0;
        assert!((e.mcu_only_battery_life_days.unwrap() - days).abs() < 1e-6);
        // The MCU alone on the cell still loses 1.5 %/year of 225 mAh to self-discharge.
        let self_discharge_uj = 225.0 * 0.015 / 8766.0 * 1000.0 * 2.0 * 1.28;
        let days = 225.0 / ((total + self_discharge_uj) / (2.0 * 1.28) / 1000.0) / 24.0;
        assert!((e.battery_life_days.unwrap() - days).abs() < 1e-6);
        assert!((e.max_latency_ms - 1.0).abs() < 1e-12);
        assert!((e.big_only_inference_uj_per_window.unwrap() - 0.02).abs() < 1e-12);
        assert!(e.missing_figures.is_empty() && e.unmeasured.is_empty());
    }

    #[test]
    fn the_built_in_boards_are_the_boards_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
        let built_in = BoardProfile::built_in().unwrap();
        assert_eq!(built_in, BoardProfile::load_dir(&dir).unwrap());
        assert!(built_in.iter().any(|b| b.id == "apollo3"), "{built_in:?}");
    }

    #[test]
    fn sleep_and_battery_follow_the_window_period() {
        let at = |period: f64| {
            price_run_every(&run(), &board(Some(100.0)), &costs(), &mcu_only(), period).unwrap()
        };
        let (uci, wisdm) = (at(1.28), at(5.0));
        assert_eq!(uci.window_period_s, 1.28);
        assert_eq!(uci.inference_uj_per_window, wisdm.inference_uj_per_window);
        assert!(wisdm.sleep_uj_per_window > uci.sleep_uj_per_window);
        assert!(wisdm.battery_life_days > uci.battery_life_days);
        assert!(price_run_every(&run(), &board(None), &costs(), &mcu_only(), 0.0).is_err());
    }

    #[test]
    fn unknown_wakeup_is_left_out_and_named() {
        let e = price_run(&run(), &board(None), &costs(), &mcu_only()).unwrap();
        assert_eq!(e.missing_figures, ["wakeup_us"]);
        assert_eq!(e.unknown_text(), "unknown: wakeup_us");
        // The device total is not guessed without it.
        assert_eq!(e.battery_life_days, None);
        assert_eq!(e.system().unwrap().unknown, ["wakeup_us"]);
        assert!(e.wakeup_uj_per_window.is_none());
        let sleep = 2.0 * (1.28 - 550e-6);
        assert!((e.total_uj_per_window.unwrap() - (0.011 + sleep)).abs() < 1e-12);
    }

    #[test]
    fn unmeasured_models_are_named() {
        let mut c = costs();
        c.costs.remove("little");
        let e = price_run(&run(), &board(None), &c, &mcu_only()).unwrap();
        assert_eq!(e.unmeasured, ["little0"]);
    }

    #[test]
    fn profiles_must_cite_every_figure() {
        let text = "name = \"x\"\ncore = \"M4\"\nclock_mhz = 48.0\nsupply_v = 3.3\nactive_ua_per_mhz = 6.0\ncycles_per_instruction = 1.0\n[sources]\nclock_mhz = \"a\"\nsupply_v = \"b\"\ncycles_per_instruction = \"c\"\n[missing]\nsleep_ua = \"?\"\nwakeup_us = \"?\"\n";
        let e = BoardProfile::parse(text, Path::new("x.toml")).unwrap_err();
        assert!(
            e.to_string().contains("active_ua_per_mhz has no citation"),
            "{e}"
        );
        let uncited_flash = text.replace(
            "[sources]",
            "flash_kib = 1024.0\n[sources]\nactive_ua_per_mhz = \"d\"",
        );
        let e = BoardProfile::parse(&uncited_flash, Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("flash_kib has no citation"), "{e}");
        let e = BoardProfile::parse("name = 3", Path::new("y.toml")).unwrap_err();
        assert!(e.to_string().starts_with("y.toml:1:"), "{e}");
    }

    #[test]
    fn cost_entries_come_from_numbers_or_profile_json() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("big.json");
        std::fs::write(
            &profile,
            r#"{"instructions": 98765, "flash_bytes": 1, "checks": {"signature": 3400}}"#,
        )
        .unwrap();
        let mut c = CostTable::seed_tflm_cmsis_nn();
        c.set_from_arg(&format!("big={}", profile.display()))
            .unwrap();
        c.set_from_arg(&format!("signature={}", profile.display()))
            .unwrap();
        assert_eq!(c.costs["signature"].instructions, 3400);
        c.set_from_arg("little3=1234").unwrap();
        assert_eq!(c.costs["big"].instructions, 98765);
        assert_eq!(c.costs["little3"].instructions, 1234);
        assert!(c.set_from_arg("bog=1").is_err());
        std::fs::write(&profile, r#"{"flash_bytes": 1}"#).unwrap();
        let e = c
            .set_from_arg(&format!("big={}", profile.display()))
            .unwrap_err();
        assert!(e.to_string().contains("instructions"), "{e}");
        let e = c
            .set_from_arg(&format!("signature={}", profile.display()))
            .unwrap_err();
        assert!(e.to_string().contains("checks.signature"), "{e}");
    }

    #[test]
    fn shipped_board_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
        let boards = BoardProfile::load_dir(&dir).unwrap();
        let ids: Vec<&str> = boards.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["apollo2", "apollo3", "ecm3532", "gap8", "stm32l4r5"]);
        for b in &boards {
            // GAP8 has no on-chip flash (its profile says so under [missing]).
            assert!(
                (b.flash_kib.is_some() || b.missing.contains_key("flash_kib"))
                    && b.ram_kib.is_some(),
                "{}",
                b.id
            );
        }
        let core = |id: &str| boards.iter().find(|b| b.id == id).unwrap().core.clone();
        assert_eq!(core_id(&core("gap8")), "rv32imc");
        assert_eq!(core_id(&core("ecm3532")), "cortex-m3");
        assert_eq!(core_id(&core("apollo3")), "cortex-m4");
        let s = Sensor::named_or_file("bmi160").unwrap();
        assert_eq!((s.odr_hz, s.fifo_bytes), (50.0, Some(1024.0)));
        assert_eq!(Cell::cr2032().self_discharge_per_year, Some(0.015));
        assert!(Sensor::named_or_file("bmx999").is_err());
    }

    fn sensor(current_ua: Option<f64>) -> Sensor {
        let text = format!(
            "name = \"imu\"\n{}odr_hz = 50.0\nbytes_per_sample = 12.0\nfifo_bytes = 1024.0\nbus_khz = 100.0\n[sources]\ncurrent_ua = \"a\"\nodr_hz = \"b\"\nbytes_per_sample = \"c\"\nfifo_bytes = \"d\"\nbus_khz = \"e\"\n[missing]\ncurrent_ua = \"not found\"\n",
            current_ua
                .map(|c| format!("current_ua = {c}\n"))
                .unwrap_or_default()
        );
        Sensor::parse(&text, Path::new("imu.toml")).unwrap()
    }

    #[test]
    fn device_energy_and_shares_match_hand_computation() {
        let system = System {
            cell: Cell::cr2032(),
            sensor: Some(sensor(Some(50.0))),
            fifo: true,
        };
        let e = price_run(&run(), &board(Some(100.0)), &costs(), &system).unwrap();
        let s = e.system().unwrap();
        // 64 samples × 12 bytes = 768 bytes: one FIFO batch, read in (768 + 3) × 9 bits at
        // 100 kHz = 69.39 ms at 10 µA and 2 V.
        assert_eq!(s.wakeups_per_window, 1.0);
        let read = 10.0 * 2.0 * 0.06939;
        let sleep = 1.0 * 2.0 * (1.28 - 550e-6 - 100e-6 - 0.06939);
        let imu = 50.0 * 2.0 * 1.28;
        let self_discharge = 225.0 * 0.015 / 8766.0 * 1000.0 * 2.0 * 1.28;
        let expected = [0.011, sleep, 0.002, read, imu, self_discharge];
        let total: f64 = expected.iter().sum();
        for (part, want) in s.parts.iter().zip(expected) {
            let got = part.uj_per_window.unwrap();
            assert!((got - want).abs() < 1e-9, "{}: {got} vs {want}", part.name);
            assert!((part.share.unwrap() - want / total).abs() < 1e-12);
            assert!((part.mean_ua.unwrap() - want / (2.0 * 1.28)).abs() < 1e-9);
        }
        assert!((s.total_uj_per_window.unwrap() - total).abs() < 1e-9);
        let days = 225.0 / (total / (2.0 * 1.28) / 1000.0) / 24.0;
        assert!((e.battery_life_days.unwrap() - days).abs() < 1e-6);
        assert!(e.mcu_only_battery_life_days.unwrap() > 10.0 * days);

        // Without the FIFO every sample wakes the MCU: 64 wake-ups, 64 reads' framing.
        let no_fifo = System {
            fifo: false,
            ..system.clone()
        };
        let e = price_run(&run(), &board(Some(100.0)), &costs(), &no_fifo).unwrap();
        let s = e.system().unwrap();
        assert_eq!(s.wakeups_per_window, 64.0);
        assert!((s.parts[2].uj_per_window.unwrap() - 64.0 * 0.002).abs() < 1e-12);
        let read = 10.0 * 2.0 * (768.0 + 3.0 * 64.0) * 9.0 / 100e3;
        assert!((s.parts[3].uj_per_window.unwrap() - read).abs() < 1e-12);

        // A sensor figure that is missing makes the total unknown, named.
        let unknown = System {
            sensor: Some(sensor(None)),
            ..system
        };
        let e = price_run(&run(), &board(Some(100.0)), &costs(), &unknown).unwrap();
        assert_eq!(e.battery_life_days, None);
        assert_eq!(e.unknown_text(), "unknown: current_ua of imu");
    }

    /// A board with a lower-voltage point and a burst point without a voltage.
    fn text_profile() -> String {
        "name = \"t\"\ncore = \"Cortex-M4F\"\nclock_mhz = 1.0\nsupply_v = 2.0\nactive_ua_per_mhz = 10.0\nsleep_ua = 1.0\nwakeup_us = 100.0\ncycles_per_instruction = 1.0\ncore_mv = 1000.0\nflash_wait_states = 2\n[sources]\nclock_mhz = \"a\"\nsupply_v = \"b\"\nactive_ua_per_mhz = \"c\"\nsleep_ua = \"d\"\nwakeup_us = \"e\"\ncycles_per_instruction = \"f\"\ncore_mv = \"g\"\nflash_wait_states = \"h\"\n[[operating_points]]\nclock_mhz = 0.5\ncore_mv = 800.0\nflash_wait_states = 0\nsource = \"table\"\n[[operating_points]]\nclock_mhz = 2.0\nsource = \"burst, no voltage\"\n".to_string()
    }

    #[test]
    fn operating_points_scale_with_core_voltage_and_wait_states() {
        let text = text_profile();
        let b = BoardProfile::parse(&text, Path::new("t.toml")).unwrap();
        let e = price_run(&run(), &b, &costs(), &mcu_only()).unwrap();
        let [base, low, burst] = &e.operating_points[..] else {
            panic!("{:?}", e.operating_points)
        };
        // 10 µA/MHz × 800/1000 = 8 µA/MHz; 550 instructions at 0.5 MHz = 1.1 ms at 4 µA, 2 V.
        assert_eq!(low.active_ua_per_mhz, Some(8.0));
        assert!((low.inference_uj().unwrap() - 0.0088).abs() < 1e-12);
        assert!((base.inference_uj().unwrap() - 0.011).abs() < 1e-12);
        // With 2 wait states on every fetch the default clock runs at CPI 3.
        assert_eq!(base.cpi_with_wait_states, Some(3.0));
        let ws = base.system_with_wait_states.as_ref().unwrap();
        assert!((ws.parts[0].uj_per_window.unwrap() - 0.033).abs() < 1e-12);
        // Worst window: 1000 instructions × CPI 3 at 1 MHz.
        assert!((base.max_latency_ms - 3.0).abs() < 1e-12);
        assert!(burst.active_ua_per_mhz.is_none());
        assert!(
            burst
                .active_current_from
                .starts_with("unknown: active_ua_per_mhz at 2 MHz")
        );
        // The burst point is unknown, so points are ranked by awake energy; the low point wins.
        assert_eq!(e.ranked_by.len(), 6, "{:?}", e.ranked_by);
        assert_eq!(e.best_point, Some(1));
        assert_eq!(e.best_point_with_wait_states, Some(1));
        let text = e.best_point_text();
        assert!(text.starts_with("0.5 MHz 800 mV: MCU "), "{text}");
        assert!(text.contains("(2 MHz unknown)"), "{text}");

        // Without a wake-up time the device total is unknown at every point, so points are
        // ranked by the parts known at all of them, and the ranking says which.
        let no_wake =
            text_profile().replace("wakeup_us = 100.0\n", "") + "[missing]\nwakeup_us = \"?\"\n";
        let b = BoardProfile::parse(&no_wake, Path::new("t.toml")).unwrap();
        let e = price_run(&run(), &b, &costs(), &mcu_only()).unwrap();
        assert_eq!(e.battery_life_days, None);
        assert_eq!(
            e.ranked_by,
            [
                "inference",
                "mcu sleep",
                "sample reads",
                "sensor",
                "self-discharge"
            ]
        );
        assert_eq!(e.best_point, Some(1));
        let text = e.best_point_text();
        assert!(
            text.starts_with("0.5 MHz 800 mV: inference + mcu sleep + sample reads "),
            "{text}"
        );

        // Without sleep and wake-up figures, two points at one voltage cost the same: the
        // faster one is named.
        let tie = text_profile()
            .replace("wakeup_us = 100.0\n", "")
            .replace("sleep_ua = 1.0\n", "")
            + "[[operating_points]]\nclock_mhz = 0.25\ncore_mv = 800.0\nsource = \"t\"\n[missing]\nwakeup_us = \"?\"\nsleep_ua = \"?\"\n";
        let b = BoardProfile::parse(&tie, Path::new("t.toml")).unwrap();
        let e = price_run(&run(), &b, &costs(), &mcu_only()).unwrap();
        assert_eq!(e.operating_points[3].clock_mhz, 0.25);
        assert_eq!(
            e.operating_points[3].inference_uj(),
            e.operating_points[1].inference_uj()
        );
        assert_eq!(e.best_point, Some(1));
    }

    /// A board with a voltage table but no run current (ECM3532-like): no µJ anywhere, but the
    /// point of least V² that meets the deadline is named with its ratio to the default's.
    #[test]
    fn a_voltage_table_without_a_run_current_ranks_points_relatively() {
        let no_current = text_profile()
            .replace("active_ua_per_mhz = 10.0\n", "")
            .replace("active_ua_per_mhz = \"c\"\n", "")
            .replace(
                "[[operating_points]]\nclock_mhz = 2.0\nsource = \"burst, no voltage\"\n",
                "[[operating_points]]\nclock_mhz = 0.0005\ncore_mv = 600.0\nsource = \"too slow\"\n",
            )
            + "[missing]\nactive_ua_per_mhz = \"?\"\n";
        let b = BoardProfile::parse(&no_current, Path::new("t.toml")).unwrap();
        let e = price_run(&run(), &b, &costs(), &mcu_only()).unwrap();
        assert_eq!(e.best_point, None);
        assert!(
            e.operating_points
                .iter()
                .all(|p| p.inference_uj().is_none())
        );
        // 1,000 worst-case instructions at 0.5 kHz miss the window: 800 mV is the least that
        // meets it, (800/1000)² = 0.64 of the default's energy per instruction.
        assert!(!e.operating_points[2].meets_deadline);
        let (i, ratio) = e.relative_best_point().unwrap();
        assert_eq!(i, 1);
        assert!((ratio - 0.64).abs() < 1e-12);
        let text = e.best_point_text();
        assert!(text.contains("0.5 MHz 800 mV: inference ≈ 0.64×"), "{text}");
        assert!(text.starts_with("unknown in µJ"), "{text}");
        // With a run current the relative ranking stays out of it.
        let priced = price_run(
            &run(),
            &BoardProfile::parse(&text_profile(), Path::new("t.toml")).unwrap(),
            &costs(),
            &mcu_only(),
        )
        .unwrap();
        assert_eq!(priced.relative_best_point(), None);
    }

    #[test]
    fn boards_are_priced_only_from_their_own_cores_counts() {
        let mut b = board(Some(100.0));
        b.core = "Cortex-M3".into();
        let e = price_run(&run(), &b, &costs(), &mcu_only()).unwrap();
        assert_eq!(e.unknown_text(), "unknown: instructions on Cortex-M3");
        assert_eq!(e.counts_core, None);
        assert_eq!(e.inference_uj_per_window, None);
        assert_eq!(e.battery_life_days, None);
        let mut c = costs();
        c.set_from_arg("big@Cortex-M3=2000").unwrap();
        c.set_from_arg("little0@cortex-m3=200").unwrap();
        let e = price_run(&run(), &b, &c, &mcu_only()).unwrap();
        assert_eq!(e.counts_core.as_deref(), Some("cortex-m3"));
        assert!((e.instructions_per_window - 1100.0).abs() < 1e-9);
        // The M4 board still prices from the M4 counts.
        let e = price_run(&run(), &board(Some(100.0)), &c, &mcu_only()).unwrap();
        assert!((e.instructions_per_window - 550.0).abs() < 1e-9);
        assert!(c.set_from_arg("big@=1").is_err());
    }

    #[test]
    fn malformed_profiles_name_file_and_line() {
        // A string where a number belongs, on line 4 of an operating point.
        let text = "name = \"x\"\ncore = \"M4\"\nclock_mhz = 48.0\nsupply_v = 3.3\ncycles_per_instruction = 1.0\n[sources]\nclock_mhz = \"a\"\nsupply_v = \"b\"\ncycles_per_instruction = \"c\"\n[missing]\nactive_ua_per_mhz = \"?\"\nsleep_ua = \"?\"\nwakeup_us = \"?\"\n[[operating_points]]\nclock_mhz = \"fast\"\nsource = \"s\"\n";
        let e = BoardProfile::parse(text, Path::new("boards/x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("boards/x.toml:15:"), "{e}");
        let ok = text.replace("\"fast\"", "24.0");
        assert!(BoardProfile::parse(&ok, Path::new("boards/x.toml")).is_ok());
        let uncited = ok.replace(
            "cycles_per_instruction = 1.0\n",
            "cycles_per_instruction = 1.0\ncore_mv = 900.0\n",
        );
        let e = BoardProfile::parse(&uncited, Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("core_mv has no citation"), "{e}");
        let e = Sensor::parse(
            "name = \"s\"\nodr_hz = 50.0\nodr_hz = 52.0\n",
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("s.toml:3:"), "{e}");
        let e = Cell::parse(
            "name = \"c\"\ncapacity_mah = 225.0\n[sources]\ncapacity_mah = \"x\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("self_discharge_per_year is absent"),
            "{e}"
        );
    }
}
