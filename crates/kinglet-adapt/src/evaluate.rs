//! Stream metrics: accuracy and macro-F1 (shared with every other command through
//! `kinglet_data::metrics`), invocation counts, and how fast an activity change is noticed.

use kinglet_data::metrics::Classification;
use serde::{Deserialize, Serialize};

use crate::{AdaptError, CheckKind, StreamRun};

/// How many windows it takes the reported label to follow a change of the true activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeNotice {
    /// Windows whose true label differs from the previous window's.
    pub changes: usize,
    /// Changes whose new label was reported before the activity changed again.
    pub noticed: usize,
    /// Mean / median / max windows from the change to the first correct report (0 = at once),
    /// over noticed changes.
    pub mean_windows: f64,
    pub median_windows: f64,
    pub max_windows: usize,
}

/// Everything measured on one pass over a labelled stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamEvaluation {
    /// Windows processed (a stream's unknown windows included: they cost energy).
    pub n: usize,
    /// Windows scored: those with a label.
    pub scored: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub big_runs: usize,
    /// Windows on which a little check ran (little, Dual, classifier, distance or signature).
    pub little_runs: usize,
    pub same_activity_runs: usize,
    pub dual_runs: usize,
    pub distance_runs: usize,
    pub classifier_runs: usize,
    pub signature_runs: usize,
    pub change_notice: ChangeNotice,
    pub classification: Classification,
}

/// Scores `run` against the true `labels` (same order, same length).
pub fn evaluate(
    run: &StreamRun,
    labels: &[u32],
    class_names: &[String],
) -> Result<StreamEvaluation, AdaptError> {
    evaluate_scored(run, labels, None, class_names)
}

/// [`evaluate`] on a continuous stream: only windows whose `known` entry is true are scored
/// (accuracy, F1 and the change-notice delay, which walks the scored windows in order), while
/// invocation counts cover every window, as the energy does.
pub fn evaluate_scored(
    run: &StreamRun,
    labels: &[u32],
    known: Option<&[bool]>,
    class_names: &[String],
) -> Result<StreamEvaluation, AdaptError> {
    if labels.len() != run.windows.len() || known.is_some_and(|k| k.len() != labels.len()) {
        return Err(AdaptError::Invalid(format!(
            "{} labels ({} known flags) for a run over {} windows",
            labels.len(),
            known.map_or(labels.len(), <[bool]>::len),
            run.windows.len()
        )));
    }
    let scored: Vec<usize> = (0..labels.len())
        .filter(|&i| known.is_none_or(|k| k[i]))
        .collect();
    let all_predictions = run.predictions();
    let labels: Vec<u32> = scored.iter().map(|&i| labels[i]).collect();
    let labels = &labels[..];
    let predictions: Vec<u32> = scored.iter().map(|&i| all_predictions[i]).collect();
    let k = class_names.len() as u32;
    if let Some(i) = labels.iter().position(|&l| l >= k) {
        return Err(AdaptError::Invalid(format!(
            "label {} of window {i} is not below the {k} classes",
            labels[i]
        )));
    }
    if let Some(i) = predictions.iter().position(|&p| p >= k) {
        return Err(AdaptError::Invalid(format!(
            "window {i}: the models answered class {}, but the data has {k} classes",
            predictions[i]
        )));
    }
    let classification = Classification::new(class_names, labels, &predictions);
    let count = |f: fn(&CheckKind) -> bool| run.windows.iter().filter(|w| f(&w.check)).count();
    Ok(StreamEvaluation {
        n: run.windows.len(),
        scored: labels.len(),
        accuracy: classification.accuracy(),
        macro_f1: classification.macro_f1(),
        big_runs: run.big_runs(),
        little_runs: run.check_runs(),
        same_activity_runs: count(|c| matches!(c, CheckKind::SameActivity(_))),
        dual_runs: count(|c| matches!(c, CheckKind::Dual)),
        distance_runs: count(|c| matches!(c, CheckKind::Distance)),
        classifier_runs: count(|c| matches!(c, CheckKind::Classifier(_))),
        signature_runs: count(|c| matches!(c, CheckKind::Signature)),
        change_notice: change_notice(labels, &predictions),
        classification,
    })
}

/// See [`ChangeNotice`].
pub fn change_notice(labels: &[u32], predictions: &[u32]) -> ChangeNotice {
    let mut delays = Vec::new();
    let mut changes = 0;
    for t in 1..labels.len() {
        if labels[t] == labels[t - 1] {
            continue;
        }
        changes += 1;
        let new = labels[t];
        let mut j = t;
        while j < labels.len() && labels[j] == new {
            if predictions[j] == new {
                delays.push(j - t);
                break;
            }
            j += 1;
        }
    }
    delays.sort_unstable();
    let noticed = delays.len();
    let mean_windows = if noticed == 0 {
        0.0
    } else {
        delays.iter().sum::<usize>() as f64 / noticed as f64
    };
    let median_windows = match noticed {
        0 => 0.0,
        n if n % 2 == 1 => delays[n / 2] as f64,
        n => (delays[n / 2 - 1] + delays[n / 2]) as f64 / 2.0,
    };
    ChangeNotice {
        changes,
        noticed,
        mean_windows,
        median_windows,
        max_windows: delays.last().copied().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_windows_are_processed_but_not_scored() {
        use crate::{StrategySpec, WindowRecord, strategy::StrategyKind};
        let rec = |big: bool, label: u8| WindowRecord {
            check: if big {
                CheckKind::None
            } else {
                CheckKind::Signature
            },
            big,
            label,
        };
        let run = StreamRun {
            strategy: StrategySpec::new(StrategyKind::Signature),
            windows: vec![rec(true, 0), rec(true, 1), rec(false, 1), rec(false, 0)],
        };
        let names = vec!["a".to_string(), "b".to_string()];
        // Window 1 is unknown (its label 0 is a placeholder): 3 scored, 2 of them right.
        let known = [true, false, true, true];
        let e = evaluate_scored(&run, &[0, 0, 1, 1], Some(&known), &names).unwrap();
        assert_eq!((e.n, e.scored, e.big_runs, e.little_runs), (4, 3, 2, 2));
        assert!((e.accuracy - 2.0 / 3.0).abs() < 1e-12);
        // The change from window 0 to 2 (the unknown one skipped) is noticed at once.
        assert_eq!((e.change_notice.changes, e.change_notice.noticed), (1, 1));
        assert!(evaluate_scored(&run, &[0, 0, 1, 1], Some(&known[..3]), &names).is_err());
    }

    #[test]
    fn change_notice_counts_delays_and_misses() {
        // changes at t=2 (to 1, noticed after 1 window) and t=5 (to 2, never reported)
        let labels = [0, 0, 1, 1, 1, 2, 2];
        let preds = [0, 0, 0, 1, 1, 1, 1];
        let c = change_notice(&labels, &preds);
        assert_eq!((c.changes, c.noticed, c.max_windows), (2, 1, 1));
        assert!((c.mean_windows - 1.0).abs() < 1e-12);
    }
}
