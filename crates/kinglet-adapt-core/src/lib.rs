//! The big–little controller: which model runs on each window, and which label is reported.
//!
//! `no_std`, no dependencies and no allocation, so that the firmware and the host simulator
//! (`kinglet-adapt`) run this very code and make identical wake/skip decisions by construction.
//!
//! One window goes through three calls:
//! 1. [`Controller::check`] says what to measure first ([`Check`]): nothing (Big must run), a
//!    little "same activity?" model, the Dual model, the L1 distance to the previous window, or a
//!    little multi-class classifier.
//! 2. [`Controller::decide`] takes that measurement ([`Evidence`]) and either answers
//!    ([`Verdict::Label`]) or asks for the Big model ([`Verdict::RunBig`]).
//! 3. After a Big run, [`Controller::big_result`] takes the Big model's label.
//!
//! Convention for the first window (and after [`Controller::reset`]): there is no label to
//! keep, so Big runs without a check. On the seed's 2,947 UCI-HAR test windows this gives the
//! published counts: a check on 2,946 windows, Big on 427.
//!
//! A device's main loop (the model calls are the firmware's own; here they return constants):
//!
//! ```
//! use kinglet_adapt_core::{Check, Controller, Evidence, Guards, SameRule, Strategy, Verdict};
//!
//! fn run_little(_model: u8, _window: &[u8]) -> [f32; 2] { [0.1, 0.9] } // [changed, same]
//! fn run_big(_window: &[u8]) -> usize { 4 }
//!
//! let mut ctl = Controller::new(Strategy::SameActivity { rule: SameRule::Argmax }, Guards::default());
//! let window = [0u8; 384];
//! let mut reported = [0u8; 3];
//! for slot in reported.iter_mut() {
//!     let scores;
//!     let evidence = match ctl.check() {
//!         Check::None => Evidence::None,
//!         Check::SameActivity { model } => {
//!             scores = run_little(model, &window);
//!             Evidence::SameScores(&scores)
//!         }
//!         _ => unreachable!("not used by this strategy"),
//!     };
//!     *slot = match ctl.decide(evidence).unwrap() {
//!         Verdict::Label(label) => label,
//!         Verdict::RunBig => ctl.big_result(run_big(&window)).unwrap(),
//!     };
//! }
//! assert_eq!(reported, [4, 4, 4]); // Big once, then the little for class 4 says "same"
//! ```
#![no_std]

pub mod math;
pub mod widths;

pub use math::{Signature, argmax, confidence, l1_distance_u8, softmax_in_place};
pub use widths::{
    ModeError, ModeSwitch, StepError, WidthMode, WidthStep, WidthVerdict, battery_mode,
};

/// Most labels a per-label threshold table holds (HAPT's 12 activities with transitions).
pub const MAX_LABELS: usize = 12;

/// How sure a multi-class little model is, each mapped to [0, 1] with 1 = certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfidenceMeasure {
    /// Largest class probability.
    MaxProbability,
    /// Largest minus second-largest probability.
    Margin,
    /// 1 − H(p) / ln(k): one minus the normalised entropy.
    Entropy,
}

/// When a same/changed model (little "still class k?" or Dual) counts as "same".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SameRule {
    /// "Same" when output index 1 is strictly the largest (ties mean "changed", as NumPy's
    /// `argmax` returns the first maximum) — the seed's rule.
    Argmax,
    /// "Same" when the probability of index 1 is at least this value: a threshold to calibrate.
    MinProbability(f32),
}

/// A wake-up policy for the Big model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Big on every window (the baseline).
    BigOnly,
    /// 1B6S: little model number `label` asks "still activity `label`?" for the last label.
    SameActivity { rule: SameRule },
    /// 1B1D: one Dual model looks at the previous and the current window.
    Dual { rule: SameRule },
    /// 1BDD: Big runs when the L1 distance between consecutive windows exceeds `threshold`.
    Distance { threshold: u32 },
    /// Signature distance: Big runs when the distance between the window's [`Signature`]
    /// (per-axis mean and spread of total_acc) and the previous window's exceeds the threshold
    /// of the last label. Walking windows differ sample by sample but keep their mean and spread, so
    /// this check (a few thousand instructions, no model) tells "same activity" where raw L1
    /// cannot; one threshold per activity because postures are quiet and gaits are not.
    Signature { thresholds: [u32; MAX_LABELS] },
    /// Confidence cascade: little multi-class model `model` answers unless its confidence is
    /// below `threshold`. After a low-confidence window the little must reach
    /// `threshold + hysteresis` before it answers alone again (hysteresis 0 = none).
    Confidence {
        model: u8,
        measure: ConfidenceMeasure,
        threshold: f32,
        hysteresis: f32,
    },
    /// Temporal check with confidence: little multi-class model `model` answers only when it
    /// agrees with the last label *and* is at least `threshold` confident; otherwise Big runs.
    TemporalConfidence {
        model: u8,
        measure: ConfidenceMeasure,
        threshold: f32,
    },
}

/// Limits on how often Big runs, on top of any strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guards {
    /// After a Big run that a check asked for (an activity change), Big also runs on this
    /// many following windows without a check (0 = none). A window that straddles a change
    /// is often labelled by its old half; the next window, wholly in the new activity, then
    /// sets the label the check will keep — what keeps continuous streams from sticking to
    /// a wrong label after postural changes.
    pub settle_windows: u8,
    /// After a Big run, Big may not run again for this many windows (0 = no limit).
    pub min_big_interval: u32,
    /// Big runs, without any check, once this many windows have passed since it last ran
    /// (0 = never forced).
    pub max_big_interval: u32,
    /// Consecutive windows that must ask for Big before it is woken (≥ 1; 1 = at once).
    pub confirm_windows: u8,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            settle_windows: 0,
            min_big_interval: 0,
            max_big_interval: 0,
            confirm_windows: 1,
        }
    }
}

/// What to measure on the current window before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: Big runs on this window.
    None,
    /// Run little "still activity `model`?" model number `model`; answer with
    /// [`Evidence::SameScores`].
    SameActivity { model: u8 },
    /// Run the Dual model on the previous and the current window; [`Evidence::SameScores`].
    Dual,
    /// Compute the L1 distance to the previous window; [`Evidence::Distance`].
    Distance,
    /// Compute the window's [`Signature`] and its distance to the previous window's;
    /// [`Evidence::Distance`].
    Signature,
    /// Run little multi-class model `model`; [`Evidence::ClassProbabilities`].
    Classifier { model: u8 },
}

/// The measurement asked for by [`Check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Evidence<'a> {
    /// For [`Check::None`].
    None,
    /// Outputs of a same/changed model: index 0 = changed, 1 = same. Raw scores work for
    /// [`SameRule::Argmax`]; [`SameRule::MinProbability`] needs probabilities.
    SameScores(&'a [f32]),
    /// L1 distance between the current and the previous window (or between their signatures).
    Distance(u32),
    /// Class probabilities of a multi-class little model.
    ClassProbabilities(&'a [f32]),
}

/// The controller's answer for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Report this label; Big stays asleep.
    Label(u8),
    /// Run Big on this window and pass its label to [`Controller::big_result`].
    RunBig,
}

/// Why a call sequence or a measurement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlError {
    /// The evidence does not match the check that was asked for.
    WrongEvidence,
    /// A same/changed model gave fewer than two outputs, or a classifier none.
    TooFewScores,
    /// `big_result` without a preceding `RunBig`, or `decide` while Big is pending.
    OutOfOrder,
    /// A label larger than 255 classes or a NaN in the scores.
    BadValue,
}

/// The controller's state: a handful of bytes, the same on host and target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Controller {
    strategy: Strategy,
    guards: Guards,
    /// Last reported label; `None` before the first Big run.
    label: Option<u8>,
    /// Windows since Big last ran (saturating).
    since_big: u32,
    /// Consecutive windows that asked for Big but were not granted it (for `confirm_windows`).
    pending: u8,
    /// Confidence hysteresis: true after a low-confidence window until confidence recovers.
    alert: bool,
    /// True between `RunBig` and `big_result`.
    awaiting_big: bool,
    /// Windows left on which Big runs without a check after a change (`settle_windows`).
    settle_left: u8,
    /// The check handed out for the current window.
    current_check: Check,
}

impl Controller {
    /// A controller at the start of a stream.
    pub const fn new(strategy: Strategy, guards: Guards) -> Self {
        Self {
            strategy,
            guards,
            label: None,
            since_big: 0,
            pending: 0,
            alert: false,
            awaiting_big: false,
            settle_left: 0,
            current_check: Check::None,
        }
    }

    /// Forget the stream (e.g. the device was re-attached): the next window runs Big.
    pub fn reset(&mut self) {
        *self = Self::new(self.strategy, self.guards);
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn guards(&self) -> Guards {
        self.guards
    }

    /// The last reported label, if any.
    pub fn label(&self) -> Option<u8> {
        self.label
    }

    /// What to measure on the next window.
    pub fn check(&mut self) -> Check {
        let check = match self.label {
            None => Check::None,
            Some(_) if self.settle_left > 0 => {
                self.settle_left -= 1;
                Check::None
            }
            Some(_)
                if self.guards.max_big_interval > 0
                    && self.since_big >= self.guards.max_big_interval =>
            {
                Check::None
            }
            Some(label) => match self.strategy {
                Strategy::BigOnly => Check::None,
                Strategy::SameActivity { .. } => Check::SameActivity { model: label },
                Strategy::Dual { .. } => Check::Dual,
                Strategy::Distance { .. } => Check::Distance,
                Strategy::Signature { .. } => Check::Signature,
                Strategy::Confidence { model, .. } | Strategy::TemporalConfidence { model, .. } => {
                    Check::Classifier { model }
                }
            },
        };
        self.current_check = check;
        check
    }

    /// Decide the current window from the measurement asked for by the last [`check`](Self::check).
    pub fn decide(&mut self, evidence: Evidence<'_>) -> Result<Verdict, ControlError> {
        if self.awaiting_big {
            return Err(ControlError::OutOfOrder);
        }
        // `wants_big`: the strategy asks for Big. `fallback`: the label reported if the guards
        // refuse it (the little's own answer for classifiers, else the last label).
        let (wants_big, fallback) = match (self.current_check, evidence) {
            (Check::None, Evidence::None) => return Ok(self.grant_big()),
            (Check::SameActivity { .. } | Check::Dual, Evidence::SameScores(scores)) => {
                let rule = match self.strategy {
                    Strategy::SameActivity { rule } | Strategy::Dual { rule } => rule,
                    _ => return Err(ControlError::WrongEvidence),
                };
                (!is_same(rule, scores)?, self.label)
            }
            (Check::Distance, Evidence::Distance(distance)) => match self.strategy {
                Strategy::Distance { threshold } => (distance > threshold, self.label),
                _ => return Err(ControlError::WrongEvidence),
            },
            (Check::Signature, Evidence::Distance(distance)) => match (self.strategy, self.label) {
                (Strategy::Signature { thresholds }, Some(label)) => {
                    // A label past the table has no calibrated threshold: always ask Big.
                    let threshold = thresholds.get(usize::from(label)).copied().unwrap_or(0);
                    (distance > threshold, self.label)
                }
                _ => return Err(ControlError::WrongEvidence),
            },
            (Check::Classifier { .. }, Evidence::ClassProbabilities(probabilities)) => {
                let little = argmax(probabilities).ok_or(ControlError::TooFewScores)?;
                let little = u8::try_from(little).map_err(|_| ControlError::BadValue)?;
                let conf = confidence_of(self.strategy, probabilities)?;
                let wants_big = match self.strategy {
                    Strategy::Confidence {
                        threshold,
                        hysteresis,
                        ..
                    } => {
                        let bar = if self.alert {
                            threshold + hysteresis
                        } else {
                            threshold
                        };
                        let low = conf < bar;
                        self.alert = low;
                        low
                    }
                    Strategy::TemporalConfidence { threshold, .. } => {
                        Some(little) != self.label || conf < threshold
                    }
                    _ => return Err(ControlError::WrongEvidence),
                };
                (wants_big, Some(little))
            }
            _ => return Err(ControlError::WrongEvidence),
        };
        self.since_big = self.since_big.saturating_add(1);
        if wants_big {
            self.pending = self.pending.saturating_add(1);
            let confirmed = self.pending >= self.guards.confirm_windows.max(1);
            let allowed = self.since_big >= self.guards.min_big_interval;
            if confirmed && allowed {
                // `since_big` was advanced for this window; grant_big resets it.
                self.settle_left = self.guards.settle_windows;
                return Ok(self.grant_big());
            }
        } else {
            self.pending = 0;
        }
        let label = fallback.ok_or(ControlError::OutOfOrder)?;
        self.label = Some(label);
        Ok(Verdict::Label(label))
    }

    /// Record the Big model's label for the window that asked for it; returns the label to report.
    pub fn big_result(&mut self, label: usize) -> Result<u8, ControlError> {
        if !self.awaiting_big {
            return Err(ControlError::OutOfOrder);
        }
        let label = u8::try_from(label).map_err(|_| ControlError::BadValue)?;
        self.awaiting_big = false;
        self.label = Some(label);
        Ok(label)
    }

    fn grant_big(&mut self) -> Verdict {
        self.awaiting_big = true;
        self.since_big = 0;
        self.pending = 0;
        Verdict::RunBig
    }
}

fn is_same(rule: SameRule, scores: &[f32]) -> Result<bool, ControlError> {
    if scores.len() < 2 {
        return Err(ControlError::TooFewScores);
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(ControlError::BadValue);
    }
    Ok(match rule {
        SameRule::Argmax => argmax(scores) == Some(1),
        SameRule::MinProbability(p) => scores[1] >= p,
    })
}

fn confidence_of(strategy: Strategy, probabilities: &[f32]) -> Result<f32, ControlError> {
    let measure = match strategy {
        Strategy::Confidence { measure, .. } | Strategy::TemporalConfidence { measure, .. } => {
            measure
        }
        _ => return Err(ControlError::WrongEvidence),
    };
    if probabilities.iter().any(|p| p.is_nan()) {
        return Err(ControlError::BadValue);
    }
    Ok(confidence(measure, probabilities))
}

#[cfg(test)]
mod tests;
