//! Classification metrics shared by training (validation score), evaluation and the
//! adaptive stream evaluator, so that every command reports the same numbers.

use serde::Serialize;

/// Confusion matrix and the scores derived from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    pub class_names: Vec<String>,
}

/// Per-class precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

impl Classification {
    /// Builds the confusion matrix; labels and predictions must be below `class_names.len()`.
    pub fn new(class_names: &[String], labels: &[u32], predictions: &[u32]) -> Self {
        let k = class_names.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for (&t, &p) in labels.iter().zip(predictions) {
            confusion[t as usize][p as usize] += 1;
        }
        Self {
            confusion,
            class_names: class_names.to_vec(),
        }
    }

    /// Number of samples counted.
    pub fn n(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    /// Fraction of samples predicted correctly, in [0, 1].
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.confusion.len())
            .map(|i| self.confusion[i][i])
            .sum();
        ratio(correct, self.n())
    }

    /// Precision, recall and F1 for each class (0 where undefined, as scikit-learn does).
    pub fn per_class(&self) -> Vec<ClassScore> {
        let k = self.confusion.len();
        (0..k)
            .map(|c| {
                let tp = self.confusion[c][c];
                let predicted: u64 = (0..k).map(|t| self.confusion[t][c]).sum();
                let support: u64 = self.confusion[c].iter().sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassScore {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Unweighted mean of per-class F1 over classes that occur in labels or predictions.
    pub fn macro_f1(&self) -> f64 {
        let k = self.confusion.len();
        let scores = self.per_class();
        let present: Vec<f64> = (0..k)
            .filter(|&c| scores[c].support > 0 || (0..k).any(|t| self.confusion[t][c] > 0))
            .map(|c| scores[c].f1)
            .collect();
        if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        }
    }

    /// A plain-text table: per-class scores then the confusion matrix.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy {:.4}  macro-F1 {:.4}  n {}",
            self.accuracy(),
            self.macro_f1(),
            self.n()
        );
        let width = self
            .class_names
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(s, "{:width$}  precision  recall     f1  support", "class");
        for (name, sc) in self.class_names.iter().zip(self.per_class()) {
            let _ = writeln!(
                s,
                "{name:width$}  {:9.4}  {:6.4} {:6.4}  {:7}",
                sc.precision, sc.recall, sc.f1, sc.support
            );
        }
        let _ = writeln!(s, "confusion (rows true, columns predicted):");
        for (name, row) in self.class_names.iter().zip(&self.confusion) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:6}")).collect();
            let _ = writeln!(s, "{name:width$} {}", cells.join(""));
        }
        s
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn accuracy_and_macro_f1_match_hand_computation() {
        // true:  0 0 1 1 2 ; pred: 0 1 1 1 0
        let m = Classification::new(&names(3), &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0]);
        assert_eq!(m.n(), 5);
        assert!((m.accuracy() - 0.6).abs() < 1e-12);
        // class0 p=1/2 r=1/2 f1=.5; class1 p=2/3 r=1 f1=.8; class2 p=0 r=0 f1=0
        assert!((m.macro_f1() - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_do_not_dilute_macro_f1() {
        let m = Classification::new(&names(4), &[0, 1], &[0, 1]);
        assert!((m.macro_f1() - 1.0).abs() < 1e-12);
    }
}
