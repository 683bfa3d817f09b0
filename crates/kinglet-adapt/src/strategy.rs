//! Strategies as users name them (`1b6s`, `1b1d`, `1bdd`, `confidence`, …) and their mapping
//! onto the core controller's [`Strategy`] and [`Guards`].

use kinglet_adapt_core::{ConfidenceMeasure, Guards, SameRule, Strategy};
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
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::BigOnly,
        StrategyKind::OneBigSixLittle,
        StrategyKind::OneBigOneDual,
        StrategyKind::OneBigDistance,
        StrategyKind::Confidence,
        StrategyKind::TemporalConfidence,
    ];

    pub fn parse(name: &str) -> Result<Self, AdaptError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "big-only" | "big" => Self::BigOnly,
            "1b6s" => Self::OneBigSixLittle,
            "1b1d" => Self::OneBigOneDual,
            "1bdd" => Self::OneBigDistance,
            "confidence" => Self::Confidence,
            "temporal-confidence" => Self::TemporalConfidence,
            other => {
                return Err(AdaptError::Invalid(format!(
                    "unknown strategy `{other}` (expected big-only, 1b6s, 1b1d, 1bdd, confidence or temporal-confidence)"
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
}

/// The seed's 1BDD threshold (L1 over a uint8 [128, 3] total_acc window).
pub const SEED_DISTANCE_THRESHOLD: u32 = 2000;

impl StrategySpec {
    /// Defaults: the seed's rules (argmax, distance 2000), confidence 0.9 max-softmax.
    pub fn new(kind: StrategyKind) -> Self {
        let threshold = match kind {
            StrategyKind::OneBigDistance => Some(f64::from(SEED_DISTANCE_THRESHOLD)),
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
            min_big_interval: self.min_big_interval,
            max_big_interval: self.max_big_interval,
            confirm_windows: self.confirm_windows.max(1),
        };
        Ok((strategy, guards))
    }
}
