//! The stream simulator: walks the windows in time order and lets the core controller decide,
//! window by window, which model runs. Models are only asked for the windows on which the
//! controller runs them, exactly as on the device.

use kinglet_adapt_core::{Check, ControlError, Controller, Evidence, Verdict, softmax_in_place};
use serde::{Deserialize, Serialize};

use crate::{AdaptError, OutputKind, StrategySpec, WindowClassifier, WindowDistance};

/// The models a strategy may call. Only those the strategy needs must be present.
pub struct Models<'a> {
    pub big: &'a mut dyn WindowClassifier,
    /// 1B6S: little k answers "still activity k?". Confidence kinds: multi-class littles.
    pub littles: Vec<&'a mut dyn WindowClassifier>,
    pub dual: Option<&'a mut dyn WindowClassifier>,
    pub distance: Option<&'a mut dyn WindowDistance>,
    /// Signature strategy: distances between consecutive windows' total_acc signatures.
    pub signature: Option<&'a mut dyn WindowDistance>,
}

impl<'a> Models<'a> {
    /// Borrows a cascade's owned models (recorded tables or live classifiers alike), as the
    /// simulator takes them.
    pub fn borrow<L: WindowClassifier + 'a, D: WindowClassifier + 'a>(
        big: &'a mut dyn WindowClassifier,
        littles: &'a mut [L],
        dual: Option<&'a mut D>,
        distance: Option<&'a mut crate::classifier::DistanceTable>,
        signature: Option<&'a mut crate::classifier::DistanceTable>,
    ) -> Self {
        Models {
            big,
            littles: littles
                .iter_mut()
                .map(|m| m as &mut dyn WindowClassifier)
                .collect(),
            dual: dual.map(|m| m as &mut dyn WindowClassifier),
            distance: distance.map(|d| d as &mut dyn WindowDistance),
            signature: signature.map(|d| d as &mut dyn WindowDistance),
        }
    }
}

/// What was measured on a window before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    None,
    SameActivity(u8),
    Dual,
    Distance,
    Classifier(u8),
    Signature,
}

/// One window's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub check: CheckKind,
    /// Big ran on this window.
    pub big: bool,
    /// Reported label.
    pub label: u8,
}

/// Per-window decisions and labels of one pass over a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRun {
    pub strategy: StrategySpec,
    pub windows: Vec<WindowRecord>,
}

impl StreamRun {
    pub fn predictions(&self) -> Vec<u32> {
        self.windows.iter().map(|w| u32::from(w.label)).collect()
    }

    pub fn big_runs(&self) -> usize {
        self.windows.iter().filter(|w| w.big).count()
    }

    /// Windows on which a check (little, Dual, distance or classifier) ran.
    pub fn check_runs(&self) -> usize {
        self.windows
            .iter()
            .filter(|w| w.check != CheckKind::None)
            .count()
    }

    /// One line per window, `window,check,big,label` (check: `none`, `little<k>`, `dual`,
    /// `distance`, `classifier<k>`, `signature`; big: 0/1): what the firmware's cascade must reproduce.
    pub fn decisions_csv(&self) -> String {
        let mut s = String::from("window,check,big,label\n");
        for (i, w) in self.windows.iter().enumerate() {
            let check = match w.check {
                CheckKind::None => "none".to_string(),
                CheckKind::SameActivity(k) => format!("little{k}"),
                CheckKind::Dual => "dual".to_string(),
                CheckKind::Distance => "distance".to_string(),
                CheckKind::Classifier(k) => format!("classifier{k}"),
                CheckKind::Signature => "signature".to_string(),
            };
            s += &format!("{i},{check},{},{}\n", u8::from(w.big), w.label);
        }
        s
    }
}

/// Reads decisions in the format of [`StreamRun::decisions_csv`] (e.g. printed by the firmware
/// cascade in QEMU), so both sides can be compared window by window. `origin` names the source
/// in errors.
pub fn parse_decisions_csv(text: &str, origin: &str) -> Result<Vec<WindowRecord>, AdaptError> {
    let err = |line: usize, message: String| AdaptError::Parse {
        path: origin.into(),
        line,
        message,
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("window,") {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let [window, check, big, label] = cells[..] else {
            return Err(err(
                i + 1,
                format!("expected window,check,big,label, got `{line}`"),
            ));
        };
        if window.parse::<usize>().ok() != Some(out.len()) {
            return Err(err(
                i + 1,
                format!("window `{window}` out of order (expected {})", out.len()),
            ));
        }
        let index = |prefix: &str| {
            check
                .strip_prefix(prefix)
                .and_then(|k| k.parse::<u8>().ok())
        };
        let check = match check {
            "none" => CheckKind::None,
            "dual" => CheckKind::Dual,
            "distance" => CheckKind::Distance,
            "signature" => CheckKind::Signature,
            _ => match (index("little"), index("classifier")) {
                (Some(k), _) => CheckKind::SameActivity(k),
                (_, Some(k)) => CheckKind::Classifier(k),
                _ => return Err(err(i + 1, format!("unknown check `{check}`"))),
            },
        };
        let big = match big {
            "0" => false,
            "1" => true,
            other => return Err(err(i + 1, format!("big must be 0 or 1, got `{other}`"))),
        };
        let label = label
            .parse()
            .map_err(|_| err(i + 1, format!("label `{label}` is not 0–255")))?;
        out.push(WindowRecord { check, big, label });
    }
    Ok(out)
}

/// Runs `spec` over windows `0..n` of the stream the models were built on.
pub fn simulate(
    spec: &StrategySpec,
    models: &mut Models<'_>,
    n: usize,
) -> Result<StreamRun, AdaptError> {
    let (strategy, guards) = spec.to_core()?;
    let mut controller = Controller::new(strategy, guards);
    let mut windows = Vec::with_capacity(n);
    for window in 0..n {
        let check = controller.check();
        let scores: Vec<f32>;
        let (kind, evidence) = match check {
            Check::None => (CheckKind::None, Evidence::None),
            Check::SameActivity { model } => {
                let count = models.littles.len();
                let little = models.littles.get_mut(usize::from(model)).ok_or_else(|| {
                    AdaptError::Invalid(format!(
                        "1B6S needs a little model for class {model}, but {count} little model(s) were given"
                    ))
                })?;
                scores = probabilities(&mut **little, window)?;
                (
                    CheckKind::SameActivity(model),
                    Evidence::SameScores(&scores),
                )
            }
            Check::Dual => {
                let dual = models
                    .dual
                    .as_deref_mut()
                    .ok_or_else(|| AdaptError::Invalid("1B1D needs a Dual model".into()))?;
                scores = probabilities(dual, window)?;
                (CheckKind::Dual, Evidence::SameScores(&scores))
            }
            Check::Distance => {
                let d = models
                    .distance
                    .as_deref_mut()
                    .ok_or_else(|| AdaptError::Invalid("1BDD needs window distances".into()))?;
                (CheckKind::Distance, Evidence::Distance(d.distance(window)?))
            }
            Check::Signature => {
                let d = models.signature.as_deref_mut().ok_or_else(|| {
                    AdaptError::Invalid("the signature strategy needs signature distances".into())
                })?;
                (
                    CheckKind::Signature,
                    Evidence::Distance(d.distance(window)?),
                )
            }
            Check::Classifier { model } => {
                let count = models.littles.len();
                let little = models.littles.get_mut(usize::from(model)).ok_or_else(|| {
                    AdaptError::Invalid(format!(
                        "little model {model} asked for, but {count} little model(s) were given"
                    ))
                })?;
                scores = probabilities(&mut **little, window)?;
                (
                    CheckKind::Classifier(model),
                    Evidence::ClassProbabilities(&scores),
                )
            }
        };
        let verdict = controller
            .decide(evidence)
            .map_err(|e| control(window, e))?;
        let record = match verdict {
            Verdict::Label(label) => WindowRecord {
                check: kind,
                big: false,
                label,
            },
            Verdict::RunBig => {
                let big_scores = models.big.scores(window)?;
                let top =
                    kinglet_adapt_core::argmax(&big_scores).ok_or_else(|| AdaptError::Model {
                        model: models.big.name().to_string(),
                        window,
                        message: "no output or only NaN".into(),
                    })?;
                let label = controller.big_result(top).map_err(|e| control(window, e))?;
                WindowRecord {
                    check: kind,
                    big: true,
                    label,
                }
            }
        };
        windows.push(record);
    }
    Ok(StreamRun {
        strategy: spec.clone(),
        windows,
    })
}

fn probabilities(model: &mut dyn WindowClassifier, window: usize) -> Result<Vec<f32>, AdaptError> {
    let mut scores = model.scores(window)?;
    if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
        return Err(AdaptError::Model {
            model: model.name().to_string(),
            window,
            message: format!("output {i} is {}", scores[i]),
        });
    }
    if model.output_kind() == OutputKind::Logits {
        softmax_in_place(&mut scores);
    }
    Ok(scores)
}

fn control(window: usize, e: ControlError) -> AdaptError {
    let message = match e {
        ControlError::WrongEvidence => "evidence does not match the check",
        ControlError::TooFewScores => "model gave too few outputs",
        ControlError::OutOfOrder => "calls out of order",
        ControlError::BadValue => "label above 255 or NaN score",
    };
    AdaptError::Control {
        window,
        message: message.into(),
    }
}
