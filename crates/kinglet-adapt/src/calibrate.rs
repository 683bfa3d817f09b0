//! Threshold calibration: sweep a strategy's threshold over a (validation) stream, keep the
//! accuracy-vs-energy Pareto front, and pick the cheapest point within an accuracy budget
//! relative to running Big on every window.
//!
//! Energy is ranked by mean instructions per window: on every board profile energy is a
//! positive multiple of it (plus a strategy-independent sleep term), so the choice is the same
//! for all boards.

use serde::{Deserialize, Serialize};

use crate::energy::{CostTable, instructions_per_window};
use crate::strategy::StrategyKind;
use crate::{AdaptError, RecordedStream, StrategySpec, evaluate, simulate};

/// One evaluated threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub spec: StrategySpec,
    pub label: String,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub big_runs: usize,
    pub little_runs: usize,
    pub instructions_per_window: f64,
}

/// Result of [`calibrate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Big on every window, on the calibration stream.
    pub reference_accuracy: f64,
    pub reference_instructions_per_window: f64,
    pub budget_pp: f64,
    /// Whether `chosen` is within the budget (otherwise it is the most accurate point).
    pub within_budget: bool,
    pub chosen: SweepPoint,
    pub front: Vec<SweepPoint>,
    pub points: Vec<SweepPoint>,
}

/// Parses an accuracy budget such as `0.5pp` or `0.5` (percentage points).
pub fn parse_budget(text: &str) -> Result<f64, AdaptError> {
    let t = text.trim();
    let number = t.strip_suffix("pp").unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(AdaptError::Invalid(format!(
            "accuracy budget `{text}`: expected percentage points such as 0.5pp"
        ))),
    }
}

/// The thresholds tried for a strategy kind.
pub fn threshold_grid(kind: StrategyKind, stream: &RecordedStream) -> Vec<Option<f64>> {
    match kind {
        StrategyKind::BigOnly => vec![None],
        StrategyKind::OneBigSixLittle | StrategyKind::OneBigOneDual => {
            let mut g = vec![None];
            g.extend((50..=99).map(|p| Some(f64::from(p) / 100.0)));
            g
        }
        StrategyKind::OneBigDistance => {
            let mut d: Vec<u32> = stream
                .distances
                .as_ref()
                .map(|t| t.0.clone())
                .unwrap_or_default();
            d.sort_unstable();
            d.dedup();
            let step = (d.len() / 200).max(1);
            let mut g: Vec<Option<f64>> = d
                .iter()
                .step_by(step)
                .map(|&v| Some(f64::from(v)))
                .collect();
            g.push(Some(f64::from(crate::strategy::SEED_DISTANCE_THRESHOLD)));
            g
        }
        StrategyKind::Confidence | StrategyKind::TemporalConfidence => {
            (0..=100).map(|p| Some(f64::from(p) / 100.0)).collect()
        }
    }
}

/// Evaluates `base` with every threshold of [`threshold_grid`].
pub fn sweep(
    base: &StrategySpec,
    stream: &mut RecordedStream,
    costs: &CostTable,
    class_names: &[String],
) -> Result<Vec<SweepPoint>, AdaptError> {
    let grid = threshold_grid(base.kind, stream);
    let mut points = Vec::with_capacity(grid.len());
    for threshold in grid {
        let spec = StrategySpec {
            threshold,
            ..base.clone()
        };
        points.push(point(&spec, stream, costs, class_names)?);
    }
    Ok(points)
}

fn point(
    spec: &StrategySpec,
    stream: &mut RecordedStream,
    costs: &CostTable,
    class_names: &[String],
) -> Result<SweepPoint, AdaptError> {
    let n = stream.len();
    let labels = stream.labels.clone();
    let run = simulate(spec, &mut stream.models(), n)?;
    let e = evaluate(&run, &labels, class_names)?;
    Ok(SweepPoint {
        label: spec.label(),
        spec: spec.clone(),
        accuracy: e.accuracy,
        macro_f1: e.macro_f1,
        big_runs: e.big_runs,
        little_runs: e.little_runs,
        instructions_per_window: instructions_per_window(&run, costs),
    })
}

/// Points not beaten by another that is at least as accurate and at most as costly (and
/// strictly better in one). Sorted by cost.
pub fn pareto_front(points: &[SweepPoint]) -> Vec<SweepPoint> {
    let mut sorted: Vec<&SweepPoint> = points.iter().collect();
    sorted.sort_by(|a, b| {
        a.instructions_per_window
            .total_cmp(&b.instructions_per_window)
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut front: Vec<SweepPoint> = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for p in sorted {
        if p.accuracy > best {
            best = p.accuracy;
            front.push(p.clone());
        }
    }
    front
}

/// Sweeps `base`'s threshold on `stream` and picks the cheapest point whose accuracy is at
/// most `budget_pp` percentage points below Big-only on the same stream.
pub fn calibrate(
    base: &StrategySpec,
    stream: &mut RecordedStream,
    costs: &CostTable,
    class_names: &[String],
    budget_pp: f64,
) -> Result<Calibration, AdaptError> {
    let reference = point(
        &StrategySpec::new(StrategyKind::BigOnly),
        stream,
        costs,
        class_names,
    )?;
    let points = sweep(base, stream, costs, class_names)?;
    let front = pareto_front(&points);
    let floor = reference.accuracy - budget_pp / 100.0;
    // Tolerance for rounding in the accuracy ratio.
    let ok: Vec<&SweepPoint> = front
        .iter()
        .filter(|p| p.accuracy >= floor - 1e-12)
        .collect();
    let (chosen, within_budget) = match ok.first() {
        Some(p) => ((*p).clone(), true),
        None => {
            let best = front
                .iter()
                .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
                .ok_or_else(|| AdaptError::Invalid("empty threshold sweep".into()))?;
            (best.clone(), false)
        }
    };
    Ok(Calibration {
        reference_accuracy: reference.accuracy,
        reference_instructions_per_window: reference.instructions_per_window,
        budget_pp,
        within_budget,
        chosen,
        front,
        points,
    })
}
