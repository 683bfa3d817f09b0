//! Energy from measured instruction counts, never from MACs.
//!
//! Per window: each model that ran costs `instructions × cycles_per_instruction` cycles at the
//! board's clock, drawing `active_ua_per_mhz × clock_mhz` from the supply; the MCU wakes once
//! per window (wake-up time at active current) and sleeps for the rest of the
//! [`WINDOW_PERIOD_S`]. A figure missing from a board profile leaves
//! the quantities that need it empty (an unknown wake-up time only drops the wake-up term from
//! the total) and is named in `missing_figures`; a model without a measured instruction count
//! is priced at zero and named in `unmeasured`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{AdaptError, CheckKind, StreamRun, WINDOW_PERIOD_S};

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
    /// Citation per figure: document, revision, table or section.
    pub sources: BTreeMap<String, String>,
    /// Figures searched for and not found, with what was searched.
    #[serde(default)]
    pub missing: BTreeMap<String, String>,
}

impl BoardProfile {
    pub fn parse(text: &str, path: &Path) -> Result<Self, AdaptError> {
        let mut p: BoardProfile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
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
        Ok(())
    }
}

/// A measured instruction count and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub instructions: u64,
    pub source: String,
}

/// Instruction counts per inference, keyed `big`, `little` (any little), `little<k>` (one
/// little), `dual`, `l1_distance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostTable {
    pub source: String,
    pub costs: BTreeMap<String, Cost>,
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
            costs,
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
            costs,
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

    /// Sets one entry from `KEY=VALUE`, VALUE an instruction count or the `--json` output of
    /// `kinglet profile` (its `instructions` field; for the checks `signature` and
    /// `l1_distance` its `checks`), e.g. `big=big-profile.json`.
    pub fn set_from_arg(&mut self, arg: &str) -> Result<(), AdaptError> {
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            AdaptError::Invalid(format!(
                "--cost `{arg}`: expected KEY=INSTRUCTIONS or KEY=PROFILE.json"
            ))
        })?;
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
        self.costs.insert(key.to_string(), cost);
        self.source = format!("{} (with {key} from {})", self.source, value);
        Ok(())
    }

    /// Cost key of a check (None for no check).
    fn check_cost(&self, check: CheckKind) -> (Option<&Cost>, String) {
        let find = |keys: &[String]| {
            keys.iter()
                .find_map(|k| self.costs.get(k).map(|c| (c, k.clone())))
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
}

/// A battery cell for lifetime estimates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub name: String,
    pub capacity_mah: f64,
}

impl Cell {
    /// A CR2032 lithium coin cell, 225 mAh nominal.
    pub fn cr2032() -> Self {
        Self {
            name: "CR2032 (225 mAh)".into(),
            capacity_mah: 225.0,
        }
    }
}

/// Energy of one strategy run on one board, averaged per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    pub board: String,
    pub board_name: String,
    /// Seconds between two windows (the stream's step over its sampling rate): the time
    /// the MCU sleeps in and the battery drains over.
    #[serde(default = "default_window_period")]
    pub window_period_s: f64,
    /// Instructions executed for inference, mean per window.
    pub instructions_per_window: f64,
    pub inference_uj_per_window: Option<f64>,
    pub wakeup_uj_per_window: Option<f64>,
    pub sleep_uj_per_window: Option<f64>,
    /// Inference + sleep (+ wake-up when known); `None` if inference or sleep is unknown.
    pub total_uj_per_window: Option<f64>,
    /// Active time of a window (the latency of its decision), mean and worst, ms.
    pub mean_latency_ms: f64,
    pub max_latency_ms: f64,
    pub battery: String,
    pub battery_life_days: Option<f64>,
    /// Inference energy of the reference model on every window, for ratios: the cost entry
    /// `reference` when given (e.g. kinglet's int8 Big-3IN while a cheaper Big runs the
    /// cascade), else the cascade's own Big.
    pub big_only_inference_uj_per_window: Option<f64>,
    pub unmeasured: Vec<String>,
    pub missing_figures: Vec<String>,
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
    cell: &Cell,
) -> Result<EnergyReport, AdaptError> {
    price_run_every(run, board, costs, cell, WINDOW_PERIOD_S)
}

/// [`price_run`] for windows `window_period_s` apart (e.g. WISDM's 100-sample step at 20 Hz:
/// 5 s).
pub fn price_run_every(
    run: &StreamRun,
    board: &BoardProfile,
    costs: &CostTable,
    cell: &Cell,
    window_period_s: f64,
) -> Result<EnergyReport, AdaptError> {
    if !(window_period_s.is_finite() && window_period_s > 0.0) {
        return Err(AdaptError::Invalid(format!(
            "window period {window_period_s} s: expected a positive number of seconds"
        )));
    }
    let big = costs.costs.get("big");
    let mut unmeasured = std::collections::BTreeSet::new();
    if big.is_none() {
        unmeasured.insert("big".to_string());
    }
    let n = run.windows.len();
    if n == 0 {
        return Err(AdaptError::Invalid("cannot price an empty run".into()));
    }
    let mut total_instr = 0u128;
    let mut max_instr = 0u64;
    for w in &run.windows {
        let (check_cost, key) = costs.check_cost(w.check);
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
    let reference = costs.costs.get("reference").or(big);
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
    // Wake-up is small next to a window period of sleep; an unknown wake-up leaves it out of the total
    // (named in `missing_figures`) rather than hiding the whole total.
    let total = match (inference, sleep) {
        (Some(a), Some(c)) => Some(a + c + wakeup.unwrap_or(0.0)),
        _ => None,
    };
    // Mean current in µA = µJ per window / (V · s per window); life = mAh / mA.
    let battery_life_days = total.map(|e| {
        let ua = e / (v * window_period_s);
        cell.capacity_mah / (ua / 1000.0) / 24.0
    });
    Ok(EnergyReport {
        board: board.id.clone(),
        board_name: board.name.clone(),
        window_period_s,
        instructions_per_window: mean_instr,
        inference_uj_per_window: inference,
        wakeup_uj_per_window: wakeup,
        sleep_uj_per_window: sleep,
        total_uj_per_window: total,
        mean_latency_ms: mean_active_s * 1e3,
        max_latency_ms: max_active_s * 1e3,
        battery: cell.name.clone(),
        battery_life_days,
        big_only_inference_uj_per_window: big_only,
        unmeasured: unmeasured.into_iter().collect(),
        missing_figures: missing,
    })
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
            costs,
        }
    }

    #[test]
    fn energy_per_window_matches_hand_computation() {
        let e = price_run(&run(), &board(Some(100.0)), &costs(), &Cell::cr2032()).unwrap();
        // mean 550 instructions at 1 MHz = 550 µs at 10 µA and 2 V.
        assert!((e.instructions_per_window - 550.0).abs() < 1e-9);
        assert!((e.inference_uj_per_window.unwrap() - 0.011).abs() < 1e-12);
        assert!((e.wakeup_uj_per_window.unwrap() - 0.002).abs() < 1e-12);
        let sleep = 2.0 * (1.28 - 550e-6 - 100e-6);
        assert!((e.sleep_uj_per_window.unwrap() - sleep).abs() < 1e-12);
        let total = 0.011 + 0.002 + sleep;
        assert!((e.total_uj_per_window.unwrap() - total).abs() < 1e-12);
        let days = 225.0 / (total / (2.0 * 1.28) / 1000.0) / 24.0;
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
            price_run_every(
                &run(),
                &board(Some(100.0)),
                &costs(),
                &Cell::cr2032(),
                period,
            )
            .unwrap()
        };
        let (uci, wisdm) = (at(1.28), at(5.0));
        assert_eq!(uci.window_period_s, 1.28);
        assert_eq!(uci.inference_uj_per_window, wisdm.inference_uj_per_window);
        assert!(wisdm.sleep_uj_per_window > uci.sleep_uj_per_window);
        assert!(wisdm.battery_life_days > uci.battery_life_days);
        assert!(price_run_every(&run(), &board(None), &costs(), &Cell::cr2032(), 0.0).is_err());
    }

    #[test]
    fn unknown_wakeup_is_left_out_and_named() {
        let e = price_run(&run(), &board(None), &costs(), &Cell::cr2032()).unwrap();
        assert_eq!(e.missing_figures, ["wakeup_us"]);
        assert!(e.wakeup_uj_per_window.is_none());
        let sleep = 2.0 * (1.28 - 550e-6);
        assert!((e.total_uj_per_window.unwrap() - (0.011 + sleep)).abs() < 1e-12);
    }

    #[test]
    fn unmeasured_models_are_named() {
        let mut c = costs();
        c.costs.remove("little");
        let e = price_run(&run(), &board(None), &c, &Cell::cr2032()).unwrap();
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
        assert_eq!(ids, ["apollo2", "apollo3", "ecm3532", "stm32l4r5"]);
        for b in &boards {
            assert!(b.flash_kib.is_some() && b.ram_kib.is_some(), "{}", b.id);
        }
    }
}
