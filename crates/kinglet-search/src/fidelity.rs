//! Successive halving: every candidate of a generation is first trained for a few epochs
//! (the lowest rung); only the best `1/eta` of each rung are trained again for `eta` times
//! as many epochs, up to the schedule's full length. Short trainings rank architectures well
//! enough to drop the clearly worse ones, so most of the compute goes to the promising few.
//!
//! Why synchronous (per generation) rather than asynchronous (ASHA): every worker must plan
//! the same next step from the study alone, and a rung that is complete is a fact every worker
//! sees the same way; a generation waits only for its slowest trial.

use crate::nsga2::{Point, ranked};

/// Epochs of each rung, shortest first, ending at `max_epochs`: `min`, `min·eta`, … .
pub fn rungs(min_epochs: usize, max_epochs: usize, eta: usize) -> Vec<usize> {
    let max_epochs = max_epochs.max(1);
    let mut epochs = min_epochs.clamp(1, max_epochs);
    let mut out = vec![];
    if eta < 2 {
        return vec![max_epochs];
    }
    while epochs < max_epochs {
        out.push(epochs);
        epochs = epochs.saturating_mul(eta);
    }
    out.push(max_epochs);
    out
}

/// Indices of `points` (one rung's finished trials) promoted to the next rung: the best
/// `ceil(n / eta)` in NSGA-II's order, never one outside the hard limits (its measured costs
/// do not change with longer training, so it would stay outside).
pub fn promote(points: &[Point], eta: usize) -> Vec<usize> {
    let keep = points.len().div_ceil(eta.max(1));
    let mut chosen: Vec<usize> = ranked(points)
        .into_iter()
        .filter(|&i| points[i].feasible())
        .take(keep)
        .collect();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_eta_and_end_at_the_full_schedule() {
        assert_eq!(rungs(1, 9, 3), vec![1, 3, 9]);
        assert_eq!(rungs(1, 10, 3), vec![1, 3, 9, 10]);
        assert_eq!(rungs(2, 40, 2), vec![2, 4, 8, 16, 32, 40]);
        assert_eq!(rungs(5, 3, 2), vec![3]);
        assert_eq!(rungs(1, 4, 1), vec![4]);
        assert_eq!(rungs(0, 1, 2), vec![1]);
    }

    #[test]
    fn promotion_keeps_the_best_share_within_the_limits() {
        let p = |acc: f64, bytes: f64, violation: f64| Point {
            objectives: vec![-acc, bytes],
            violation,
        };
        let points = vec![
            p(0.5, 100.0, 0.0), // dominated by 2
            p(0.9, 900.0, 0.0), // front
            p(0.6, 90.0, 0.0),  // front
            p(0.99, 10.0, 2.0), // best objectives but outside the limits
            p(0.4, 1000.0, 0.0),
            p(0.7, 500.0, 0.0), // front
        ];
        // ceil(6 / 2) = 3: the front of three, never the infeasible one.
        assert_eq!(promote(&points, 2), vec![1, 2, 5]);
        assert_eq!(promote(&points, 3).len(), 2);
        let outside = vec![p(0.9, 1.0, 1.0), p(0.8, 1.0, 0.5)];
        assert!(promote(&outside, 2).is_empty());
    }
}
