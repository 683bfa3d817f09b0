//! The device around the MCU core: the IMU that samples at the stream's rate, the wake-ups that
//! read its samples, the bus transfers, the sleep in between and the cell's self-discharge.
//!
//! Without them the signature cascade on Apollo3 lasted 23 years on a coin cell, because only
//! the core drew current; a battery designer needs every part that draws, each with its share.
//! Figures come from `boards/sensors/*.toml` and `boards/cells/*.toml`, each cited like a board
//! profile; a figure that is missing makes the parts that need it, and the total, `unknown`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BoardProfile, OperatingPoint};
use crate::AdaptError;

/// Hours in a mean year (365.25 days): self-discharge is quoted per year.
const HOURS_PER_YEAR: f64 = 8766.0;

/// The built-in sensor profiles (file name, text), so an installed kinglet has them.
const BUILT_IN_SENSORS: &[(&str, &str)] = &[(
    "bmi160.toml",
    include_str!("../../../../boards/sensors/bmi160.toml"),
)];

const BUILT_IN_CR2032: &str = include_str!("../../../../boards/cells/cr2032.toml");

/// 1-based line of byte `offset` in `text`: lines started before it, counted by newline (a
/// span at the start of a line belongs to that line, not the one before).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses a TOML profile, turning a syntax or schema error into `file:line: message`.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, AdaptError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        AdaptError::Parse {
            path: path.to_path_buf(),
            line,
            message: e.message().to_string(),
        }
    })
}

/// Every figure in `figures` is cited in `sources` when given, explained in `missing` when not,
/// and finite and non-negative.
fn check_cited(
    path: &Path,
    figures: &[(&str, Option<f64>)],
    sources: &BTreeMap<String, String>,
    missing: &BTreeMap<String, String>,
) -> Result<(), AdaptError> {
    let bad = |message: String| {
        Err(AdaptError::Config {
            path: path.to_path_buf(),
            message,
        })
    };
    for &(name, value) in figures {
        match value {
            Some(v) if !(v.is_finite() && v >= 0.0) => {
                return bad(format!("{name} = {v} is not a finite non-negative number"));
            }
            Some(_) if !sources.contains_key(name) => {
                return bad(format!("{name} has no citation in [sources]"));
            }
            None if !missing.contains_key(name) => {
                return bad(format!("{name} is absent and not explained in [missing]"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// An IMU as the energy model sees it: its current while sampling, and what reading a sample
/// costs the MCU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    /// Short id used on the command line (file stem).
    #[serde(default)]
    pub id: String,
    pub name: String,
    /// Supply current with the channels the models need running (accelerometer and gyroscope).
    pub current_ua: Option<f64>,
    /// Output data rate the sensor samples at.
    pub odr_hz: f64,
    /// Bytes per sample over the bus (6 axes × 16 bit).
    pub bytes_per_sample: f64,
    /// FIFO the sensor batches samples in; without one every sample wakes the MCU.
    #[serde(default)]
    pub fifo_bytes: Option<f64>,
    /// Bus clock: sets how long the MCU stays awake per byte read.
    pub bus_khz: Option<f64>,
    pub sources: BTreeMap<String, String>,
    #[serde(default)]
    pub missing: BTreeMap<String, String>,
}

impl Sensor {
    pub fn parse(text: &str, path: &Path) -> Result<Self, AdaptError> {
        let mut s: Sensor = parse_toml(text, path)?;
        if s.id.is_empty() {
            s.id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        check_cited(
            path,
            &[
                ("current_ua", s.current_ua),
                ("odr_hz", Some(s.odr_hz)),
                ("bytes_per_sample", Some(s.bytes_per_sample)),
                ("bus_khz", s.bus_khz),
            ],
            &s.sources,
            &s.missing,
        )?;
        if let Some(f) = s.fifo_bytes {
            check_cited(path, &[("fifo_bytes", Some(f))], &s.sources, &s.missing)?;
        }
        if s.odr_hz <= 0.0 || s.bytes_per_sample <= 0.0 || s.bus_khz == Some(0.0) {
            return Err(AdaptError::Config {
                path: path.to_path_buf(),
                message: "odr_hz, bytes_per_sample and bus_khz must be positive".into(),
            });
        }
        Ok(s)
    }

    pub fn load(path: &Path) -> Result<Self, AdaptError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// A built-in sensor profile by id (`bmi160`, `lsm6dso`) or a profile file.
    pub fn named_or_file(name: &str) -> Result<Self, AdaptError> {
        for (file, text) in BUILT_IN_SENSORS {
            if file.strip_suffix(".toml") == Some(name) {
                return Self::parse(text, &Path::new("built-in:boards/sensors").join(file));
            }
        }
        let path = Path::new(name);
        if path.extension().is_some_and(|e| e == "toml") {
            return Self::load(path);
        }
        let ids: Vec<&str> = BUILT_IN_SENSORS
            .iter()
            .filter_map(|(f, _)| f.strip_suffix(".toml"))
            .collect();
        Err(AdaptError::Invalid(format!(
            "sensor `{name}`: expected none, {} or a sensor profile .toml",
            ids.join(", ")
        )))
    }
}

/// A battery cell for lifetime estimates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub name: String,
    pub capacity_mah: f64,
    /// Capacity lost per year whether the cell is used or not, as a fraction of nominal.
    #[serde(default)]
    pub self_discharge_per_year: Option<f64>,
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    #[serde(default)]
    pub missing: BTreeMap<String, String>,
}

impl Cell {
    pub fn parse(text: &str, path: &Path) -> Result<Self, AdaptError> {
        let c: Cell = parse_toml(text, path)?;
        check_cited(
            path,
            &[
                ("capacity_mah", Some(c.capacity_mah)),
                ("self_discharge_per_year", c.self_discharge_per_year),
            ],
            &c.sources,
            &c.missing,
        )?;
        if c.capacity_mah <= 0.0 || c.self_discharge_per_year.is_some_and(|r| r >= 1.0) {
            return Err(AdaptError::Config {
                path: path.to_path_buf(),
                message: "capacity_mah must be positive and self_discharge_per_year below 1".into(),
            });
        }
        Ok(c)
    }

    /// A CR2032 lithium–manganese-dioxide coin cell, 225 mAh nominal, with its cited
    /// self-discharge (`boards/cells/cr2032.toml`).
    pub fn cr2032() -> Self {
        Self::parse(
            BUILT_IN_CR2032,
            Path::new("built-in:boards/cells/cr2032.toml"),
        )
        .expect("the shipped cr2032.toml is checked by the tests")
    }

    /// The same chemistry with another capacity (`--battery-mah`).
    pub fn with_capacity(mut self, capacity_mah: f64) -> Self {
        if capacity_mah != self.capacity_mah {
            self.name = format!("{capacity_mah} mAh {}", self.name);
            self.capacity_mah = capacity_mah;
        }
        self
    }
}

/// What the MCU is embedded in: the cell it drains, the IMU it reads, and whether it reads the
/// IMU once per FIFO batch or once per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    pub cell: Cell,
    pub sensor: Option<Sensor>,
    pub fifo: bool,
}

impl System {
    /// The MCU alone on `cell`: no sensor, one wake-up per window.
    pub fn mcu_only(cell: Cell) -> Self {
        Self {
            cell,
            sensor: None,
            fifo: false,
        }
    }
}

/// One part of the device's energy per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// `inference`, `mcu sleep`, `wake-ups`, `sample reads`, `sensor` or `self-discharge`.
    pub name: String,
    pub uj_per_window: Option<f64>,
    /// Mean current from the cell, µA.
    pub mean_ua: Option<f64>,
    /// Share of the total, 0–1; `None` while any part is unknown.
    pub share: Option<f64>,
}

/// The whole device's energy per window at one operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEnergy {
    pub parts: Vec<Part>,
    /// MCU wake-ups per window: one per sample without a FIFO, one per batch with it (the
    /// inference runs in the wake-up that completes the window).
    pub wakeups_per_window: f64,
    /// Inference + wake-ups + sample reads: what the MCU spends awake, the part an operating
    /// point changes.
    pub awake_uj_per_window: Option<f64>,
    /// Inference + wake-ups + sample reads + MCU sleep.
    pub mcu_uj_per_window: Option<f64>,
    /// Every part, self-discharge as the current that would drain the same charge.
    pub total_uj_per_window: Option<f64>,
    pub mean_ua: Option<f64>,
    pub battery_life_days: Option<f64>,
    /// Figures the total needs and no profile gives.
    pub unknown: Vec<String>,
}

/// One operating point of a board, priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPointEnergy {
    pub clock_mhz: f64,
    pub core_mv: Option<f64>,
    pub flash_wait_states: Option<u32>,
    pub active_ua_per_mhz: Option<f64>,
    /// Where the run current comes from: the profile, the point's own source, or derived from
    /// the default point by core voltage.
    pub active_current_from: String,
    /// The documented lower bound, cycles per instruction with every fetch a cache hit.
    pub cpi: f64,
    /// The bound with every instruction fetch paying the flash wait states (no cache hits).
    pub cpi_with_wait_states: Option<f64>,
    /// Worst window's active time, at the wait-state bound when known, ms.
    pub max_latency_ms: f64,
    /// Whether the worst window's inference ends before the next window is due.
    pub meets_deadline: bool,
    pub system: SystemEnergy,
    pub system_with_wait_states: Option<SystemEnergy>,
}

impl OperatingPointEnergy {
    pub fn inference_uj(&self) -> Option<f64> {
        self.system.parts.first().and_then(|p| p.uj_per_window)
    }
}

/// Instructions per window (mean and worst) and the window period: what every operating point
/// prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub mean_instructions: f64,
    pub max_instructions: f64,
    pub period_s: f64,
}

/// Run current per MHz at `point` and where it comes from: the point's own figure, the profile's
/// at the default point, or that figure scaled by core voltage (dynamic current ∝ C·V·f, so
/// µA/MHz ∝ V; board-sources.md's [DERIVED] note for CVFS chips).
fn active_ua_per_mhz(board: &BoardProfile, point: &OperatingPoint) -> (Option<f64>, String) {
    if let Some(a) = point.active_ua_per_mhz {
        return (Some(a), format!("operating point: {}", point.source));
    }
    let Some(a) = board.active_ua_per_mhz else {
        return (None, "unknown: active_ua_per_mhz".into());
    };
    let same_point = point.clock_mhz == board.clock_mhz && point.core_mv == board.core_mv;
    if same_point {
        return (Some(a), "profile".into());
    }
    match (board.core_mv, point.core_mv) {
        (Some(v0), Some(v)) if v == v0 => (
            Some(a),
            format!("profile (same {v} mV core voltage; per-MHz figure)"),
        ),
        (Some(v0), Some(v)) => (
            Some(a * v / v0),
            format!("derived: {a} µA/MHz × {v} mV / {v0} mV (current ∝ core voltage)"),
        ),
        _ => (
            None,
            format!(
                "unknown: active_ua_per_mhz at {} MHz (no core voltage to derive it from)",
                point.clock_mhz
            ),
        ),
    }
}

/// Prices `work` at `point` on `board` inside `system`.
pub fn price_point(
    board: &BoardProfile,
    point: &OperatingPoint,
    work: &Workload,
    system: &System,
) -> OperatingPointEnergy {
    let (ua_per_mhz, from) = active_ua_per_mhz(board, point);
    let cpi = board.cycles_per_instruction;
    let cpi_ws = point.flash_wait_states.map(|ws| cpi + f64::from(ws));
    let hz = point.clock_mhz * 1e6;
    let max_latency_s = work.max_instructions * cpi_ws.unwrap_or(cpi) / hz;
    let unknown_current = (ua_per_mhz.is_none()).then(|| {
        from.strip_prefix("unknown: ")
            .unwrap_or("active_ua_per_mhz")
            .to_string()
    });
    let energy = |c: f64| {
        system_energy(
            board,
            ua_per_mhz.map(|a| a * point.clock_mhz),
            unknown_current.as_deref(),
            work.mean_instructions * c / hz,
            work.period_s,
            system,
        )
    };
    OperatingPointEnergy {
        clock_mhz: point.clock_mhz,
        core_mv: point.core_mv,
        flash_wait_states: point.flash_wait_states,
        active_ua_per_mhz: ua_per_mhz,
        active_current_from: from,
        cpi,
        cpi_with_wait_states: cpi_ws,
        max_latency_ms: max_latency_s * 1e3,
        meets_deadline: max_latency_s <= work.period_s,
        system: energy(cpi),
        system_with_wait_states: cpi_ws.map(energy),
    }
}

/// The device's energy per window with the core awake `inference_s` for inference at
/// `active_ua`.
fn system_energy(
    board: &BoardProfile,
    active_ua: Option<f64>,
    unknown_current: Option<&str>,
    inference_s: f64,
    period_s: f64,
    system: &System,
) -> SystemEnergy {
    let v = board.supply_v;
    let mut unknown: Vec<String> = unknown_current.map(str::to_string).into_iter().collect();
    // Wake-ups and bus time per window from the sensor's rate, FIFO and bus clock.
    let (wakeups, read_s) = match &system.sensor {
        None => (1.0, Some(0.0)),
        Some(s) => {
            let samples = period_s * s.odr_hz;
            let bytes = samples * s.bytes_per_sample;
            let batches = match (system.fifo, s.fifo_bytes) {
                (true, Some(f)) => (bytes / f).ceil().max(1.0),
                _ => samples.max(1.0),
            };
            // I²C: 9 bit times per byte (8 data + ACK), 3 framing bytes per read
            // (address+W, register, address+R).
            let read = s.bus_khz.map(|k| (bytes + 3.0 * batches) * 9.0 / (k * 1e3));
            if read.is_none() {
                unknown.push(format!("bus_khz of {}", s.id));
            }
            (batches, read)
        }
    };
    let wake_s = board.wakeup_us.map(|us| us * 1e-6);
    if wake_s.is_none() {
        unknown.push("wakeup_us".into());
    }
    if board.sleep_ua.is_none() {
        unknown.push("sleep_ua".into());
    }
    let awake_s = inference_s + wakeups * wake_s.unwrap_or(0.0) + read_s.unwrap_or(0.0);
    let uj = |ua: Option<f64>, s: Option<f64>| Some(ua? * v * s?);
    let sensor = match &system.sensor {
        None => Some(0.0),
        Some(s) => {
            if s.current_ua.is_none() {
                unknown.push(format!("current_ua of {}", s.id));
            }
            s.current_ua.map(|i| i * v * period_s)
        }
    };
    let self_discharge_ua = system
        .cell
        .self_discharge_per_year
        .map(|r| system.cell.capacity_mah * r / HOURS_PER_YEAR * 1000.0);
    if self_discharge_ua.is_none() {
        unknown.push("self_discharge_per_year".into());
    }
    let values = [
        ("inference", uj(active_ua, Some(inference_s))),
        (
            "mcu sleep",
            uj(board.sleep_ua, Some((period_s - awake_s).max(0.0))),
        ),
        ("wake-ups", uj(active_ua, wake_s.map(|t| t * wakeups))),
        ("sample reads", uj(active_ua, read_s)),
        ("sensor", sensor),
        ("self-discharge", uj(self_discharge_ua, Some(period_s))),
    ];
    let total: Option<f64> = values.iter().map(|(_, e)| *e).sum();
    let mcu: Option<f64> = values[..4].iter().map(|(_, e)| *e).sum();
    let awake: Option<f64> = [values[0].1, values[2].1, values[3].1].into_iter().sum();
    let to_ua = |e: f64| e / (v * period_s);
    let parts = values
        .iter()
        .map(|&(name, e)| Part {
            name: name.into(),
            uj_per_window: e,
            mean_ua: e.map(to_ua),
            share: match (e, total) {
                (Some(e), Some(t)) if t > 0.0 => Some(e / t),
                _ => None,
            },
        })
        .collect();
    let mean_ua = total.map(to_ua);
    unknown.sort();
    unknown.dedup();
    SystemEnergy {
        parts,
        wakeups_per_window: wakeups,
        awake_uj_per_window: awake,
        mcu_uj_per_window: mcu,
        total_uj_per_window: total,
        mean_ua,
        battery_life_days: mean_ua
            .filter(|&i| i > 0.0)
            .map(|i| system.cell.capacity_mah / (i / 1000.0) / 24.0),
        unknown,
    }
}

/// The parts operating points are ranked by: those known at every point whose run current is
/// known (the sensor and self-discharge are the same at every point, so they change no
/// ranking; an unknown sleep or wake-up figure drops that part from every point alike).
pub fn ranking(points: &[OperatingPointEnergy]) -> Vec<String> {
    let priced: Vec<&OperatingPointEnergy> = points
        .iter()
        .filter(|p| p.active_ua_per_mhz.is_some())
        .collect();
    let Some(first) = priced.first() else {
        return Vec::new();
    };
    first
        .system
        .parts
        .iter()
        .filter(|part| {
            priced.iter().all(|p| {
                [Some(&p.system), p.system_with_wait_states.as_ref()]
                    .into_iter()
                    .flatten()
                    .all(|s| rank_key(s, std::slice::from_ref(&part.name)).is_some())
            })
        })
        .map(|part| part.name.clone())
        .collect()
}

/// The sum of the `parts` named, per window.
pub fn rank_key(s: &SystemEnergy, parts: &[String]) -> Option<f64> {
    s.parts
        .iter()
        .filter(|p| parts.contains(&p.name))
        .map(|p| p.uj_per_window)
        .sum()
}

/// The cheapest point that meets the deadline by the `parts` of [`ranking`], with the
/// lower-bound CPI (`with_wait_states` false) or the wait-state bound.
pub fn best_point(
    points: &[OperatingPointEnergy],
    parts: &[String],
    with_wait_states: bool,
) -> Option<usize> {
    if parts.is_empty() {
        return None;
    }
    let keyed = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.meets_deadline && p.active_ua_per_mhz.is_some())
        .filter_map(|(i, p)| {
            let s = if with_wait_states {
                p.system_with_wait_states.as_ref().unwrap_or(&p.system)
            } else {
                &p.system
            };
            rank_key(s, parts).map(|k| (i, k))
        })
        .collect::<Vec<_>>();
    let min = keyed.iter().map(|k| k.1).min_by(f64::total_cmp)?;
    // Points that cost the same (same voltage, no part that depends on time awake) are a tie;
    // the fastest of them finishes first, so it is the one named.
    keyed
        .iter()
        .filter(|k| k.1 <= min + min.abs() * 1e-9)
        .max_by(|a, b| points[a.0].clock_mhz.total_cmp(&points[b.0].clock_mhz))
        .map(|k| k.0)
}
