//! Strategies as users name them (`1b6s`, `1b1d`, `1bdd`, `confidence`, …) and their mapping
//! onto the core controller's [`Strategy`] and [`Guards`].

use kinglet_adapt_core::{ConfidenceMeasure, Guards, MAX_LABELS, SameRule, Strategy};
use serde::{Deserialize, Serialize};

use crate::AdaptError;

/// Which strategy family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Big on every window.
    BigOnly,
    /// 1B6S: one "still activity k?" little per class.
    #[serde(rename = "1b6s")]
    OneBigSixLittle,
    /// 1B1D: one Dual model on previous + current window.
    #[serde(rename = "1b1d")]
    OneBigOneDual,
    /// 1BDD: L1 distance between consecutive total_acc windows.
    #[serde(rename = "1bdd")]
    OneBigDistance,
    /// Little multi-class model answers unless unsure.
    Confidence,
    /// Little multi-class model answers only if it agrees with the last label and is sure.
    TemporalConfidence,
    /// Per-activity thresholds on the distance between consecutive windows' total_acc
    /// signatures (per-axis mean and spread): no little model at all.
    Signature,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 7] = [
        StrategyKind::BigOnly,
        StrategyKind::OneBigSixLittle,
        StrategyKind::OneBigOneDual,
        StrategyKind::OneBigDistance,
        StrategyKind::Confidence,
        StrategyKind::TemporalConfidence,
        StrategyKind::Signature,
    ];

    pub fn parse(name: &str) -> Result<Self, AdaptError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "big-only" | "big" => Self::BigOnly,
            "1b6s" => Self::OneBigSixLittle,
            "1b1d" => Self::OneBigOneDual,
            "1bdd" => Self::OneBigDistance,
            "confidence" => Self::Confidence,
            "temporal-confidence" => Self::TemporalConfidence,
            "signature" => Self::Signature,
            other => {
                return Err(AdaptError::Invalid(format!(
                    "unknown strategy `{other}` (expected big-only, 1b6s, 1b1d, 1bdd, confidence, temporal-confidence or signature)"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::BigOnly => "big-only",
            Self::OneBigSixLittle => "1b6s",
            Self::OneBigOneDual => "1b1d",
            Self::OneBigDistance => "1bdd",
            Self::Confidence => "confidence",
            Self::TemporalConfidence => "temporal-confidence",
            Self::Signature => "signature",
        }
    }
}

/// Confidence measure names: `max` (max softmax), `margin` (top-2), `entropy`.
pub fn parse_measure(name: &str) -> Result<ConfidenceMeasure, AdaptError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "max" | "max-softmax" | "max-probability" => ConfidenceMeasure::MaxProbability,
        "margin" | "top2" | "top-2-margin" => ConfidenceMeasure::Margin,
        "entropy" => ConfidenceMeasure::Entropy,
        other => {
            return Err(AdaptError::Invalid(format!(
                "unknown confidence measure `{other}` (max, margin, entropy)"
            )));
        }
    })
}

pub fn measure_name(m: ConfidenceMeasure) -> &'static str {
    match m {
        ConfidenceMeasure::MaxProbability => "max",
        ConfidenceMeasure::Margin => "margin",
        ConfidenceMeasure::Entropy => "entropy",
    }
}

/// A fully specified strategy with its thresholds and guards; serialisable so runs record
/// exactly what was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySpec {
    pub kind: StrategyKind,
    /// 1B6S / 1B1D: `None` = the seed's argmax rule; `Some(p)` = "same" when P(same) ≥ p.
    /// 1BDD: the L1 distance threshold. Confidence kinds: the confidence threshold in [0, 1].
    pub threshold: Option<f64>,
    /// Confidence measure name for the confidence kinds (`max`, `margin`, `entropy`).
    pub measure: String,
    /// Confidence hysteresis band (0 = none).
    pub hysteresis: f64,
    /// Index of the little multi-class model (confidence kinds).
    pub little_model: u8,
    pub min_big_interval: u32,
    pub max_big_interval: u32,
    pub confirm_windows: u8,
    /// Big also runs on this many windows after a change a check noticed (see
    /// [`Guards::settle_windows`]).
    #[serde(default)]
    pub settle_windows: u8,
    /// Signature: one distance threshold per label (label k uses entry k; labels past the end
    /// use `threshold`). Empty for the other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<f64>,
}

/// Signature distances are computed on total_acc quantised to int8 at this many g per step:
/// ±2 g full scale, what an 8-bit accelerometer reports.
pub const SIGNATURE_SCALE_G: f32 = 1.0 / 64.0;

/// A signature threshold that wakes Big on every activity change worth the name on UCI-HAR
/// (a starting point; calibrate with `--budget`).
pub const DEFAULT_SIGNATURE_THRESHOLD: f64 = 600.0;

/// The seed's 1BDD threshold (L1 over a uint8 [128, 3] total_acc window).
pub const SEED_DISTANCE_THRESHOLD: u32 = 2000;

impl StrategySpec {
    /// Defaults: the seed's rules (argmax, distance 2000), confidence 0.9 max-softmax.
    pub fn new(kind: StrategyKind) -> Self {
        let threshold = match kind {
            StrategyKind::OneBigDistance => Some(f64::from(SEED_DISTANCE_THRESHOLD)),
            StrategyKind::Signature => Some(DEFAULT_SIGNATURE_THRESHOLD),
            StrategyKind::Confidence | StrategyKind::TemporalConfidence => Some(0.9),
            _ => None,
        };
        Self {
            kind,
            threshold,
            measure: "max".into(),
            hysteresis: 0.0,
            little_model: 0,
            min_big_interval: 0,
            max_big_interval: 0,
            confirm_windows: 1,
            settle_windows: 0,
            thresholds: Vec::new(),
        }
    }

    /// Short label for tables and plots, e.g. `1b6s`, `confidence(max≥0.85)`.
    pub fn label(&self) -> String {
        let mut s = self.kind.name().to_string();
        match (self.kind, self.threshold) {
            (StrategyKind::OneBigSixLittle | StrategyKind::OneBigOneDual, Some(p)) => {
                s += &format!("(P(same)≥{p:.2})")
            }
            (StrategyKind::OneBigDistance, Some(t)) => s += &format!("(L1>{t:.0})"),
            (StrategyKind::Signature, _) if !self.thresholds.is_empty() => {
                let list: Vec<String> = self.thresholds.iter().map(|t| format!("{t:.0}")).collect();
                s += &format!("(d>{})", list.join("/"))
            }
            (StrategyKind::Signature, Some(t)) => s += &format!("(d>{t:.0})"),
            (StrategyKind::Confidence | StrategyKind::TemporalConfidence, Some(t)) => {
                s += &format!("({}≥{t:.2})", self.measure)
            }
            _ => {}
        }
        if self.hysteresis > 0.0 {
            s += &format!("+hyst {:.2}", self.hysteresis);
        }
        if self.min_big_interval > 0 {
            s += &format!("+min {}", self.min_big_interval);
        }
        if self.max_big_interval > 0 {
            s += &format!("+max {}", self.max_big_interval);
        }
        if self.confirm_windows > 1 {
            s += &format!("+confirm {}", self.confirm_windows);
        }
        if self.settle_windows > 0 {
            s += &format!("+settle {}", self.settle_windows);
        }
        s
    }

    /// The core controller's configuration for this spec.
    pub fn to_core(&self) -> Result<(Strategy, Guards), AdaptError> {
        let same_rule = |t: Option<f64>| -> Result<SameRule, AdaptError> {
            match t {
                None => Ok(SameRule::Argmax),
                Some(p) if (0.0..=1.0).contains(&p) => Ok(SameRule::MinProbability(p as f32)),
                Some(p) => Err(AdaptError::Invalid(format!(
                    "P(same) threshold {p} is outside [0, 1]"
                ))),
            }
        };
        let conf_threshold = |t: Option<f64>| -> Result<f32, AdaptError> {
            match t {
                Some(p) if (0.0..=1.0).contains(&p) => Ok(p as f32),
                Some(p) => Err(AdaptError::Invalid(format!(
                    "confidence threshold {p} is outside [0, 1]"
                ))),
                None => Err(AdaptError::Invalid(
                    "a confidence strategy needs --threshold".into(),
                )),
            }
        };
        let strategy = match self.kind {
            StrategyKind::BigOnly => Strategy::BigOnly,
            StrategyKind::OneBigSixLittle => Strategy::SameActivity {
                rule: same_rule(self.threshold)?,
            },
            StrategyKind::OneBigOneDual => Strategy::Dual {
                rule: same_rule(self.threshold)?,
            },
            StrategyKind::OneBigDistance => {
                let t = self.threshold.unwrap_or(f64::from(SEED_DISTANCE_THRESHOLD));
                if !(0.0..=f64::from(u32::MAX)).contains(&t) {
                    return Err(AdaptError::Invalid(format!(
                        "distance threshold {t} is out of range"
                    )));
                }
                Strategy::Distance {
                    threshold: t as u32,
                }
            }
            StrategyKind::Signature => {
                let fallback = self.threshold.unwrap_or(DEFAULT_SIGNATURE_THRESHOLD);
                if self.thresholds.len() > MAX_LABELS {
                    return Err(AdaptError::Invalid(format!(
                        "{} signature thresholds given, at most {MAX_LABELS} labels are supported",
                        self.thresholds.len()
                    )));
                }
                let mut thresholds = [0u32; MAX_LABELS];
                for (k, slot) in thresholds.iter_mut().enumerate() {
                    let t = self.thresholds.get(k).copied().unwrap_or(fallback);
                    if !(0.0..=f64::from(u32::MAX)).contains(&t) {
                        return Err(AdaptError::Invalid(format!(
                            "signature threshold {t} (label {k}) is out of range"
                        )));
                    }
                    *slot = t as u32;
                }
                Strategy::Signature { thresholds }
            }
            StrategyKind::Confidence => {
                if !(0.0..=1.0).contains(&self.hysteresis) {
                    return Err(AdaptError::Invalid(format!(
                        "hysteresis {} is outside [0, 1]",
                        self.hysteresis
                    )));
                }
                Strategy::Confidence {
                    model: self.little_model,
                    measure: parse_measure(&self.measure)?,
                    threshold: conf_threshold(self.threshold)?,
                    hysteresis: self.hysteresis as f32,
                }
            }
            StrategyKind::TemporalConfidence => Strategy::TemporalConfidence {
                model: self.little_model,
                measure: parse_measure(&self.measure)?,
                threshold: conf_threshold(self.threshold)?,
            },
        };
        let guards = Guards {
            settle_windows: self.settle_windows,
            min_big_interval: self.min_big_interval,
            max_big_interval: self.max_big_interval,
            confirm_windows: self.confirm_windows.max(1),
        };
        Ok((strategy, guards))
    }
}
