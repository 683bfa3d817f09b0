//! A stream whose model outputs were computed once (here, by the TFLite interpreter, or on the
//! device) and are replayed by the simulator. Calibration sweeps use it to try hundreds of
//! thresholds without re-running any model.
//!
//! CSV format (lines starting with `#` are comments): a header, then one row per window in
//! stream order. Columns: `label` (0-based true class), `big_q<j>` (Big output j),
//! `little<k>_q<j>` (little model k), `dual_q<j>`, `s3_l1` (L1 distance between this and
//! the previous uint8 total_acc window) and `signature` (distance between this and the previous
//! window's total_acc signature). Only `label` and `big_q*` are required.

use std::collections::BTreeMap;
use std::path::Path;

use crate::classifier::DistanceTable;
use crate::{AdaptError, Models, OutputKind, OutputTable};

/// Per-window outputs of every model of a cascade, with the true labels.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStream {
    pub labels: Vec<u32>,
    /// On a continuous stream, which windows have a label to score (`None`: all).
    pub known: Option<Vec<bool>>,
    pub big: OutputTable,
    pub littles: Vec<OutputTable>,
    pub dual: Option<OutputTable>,
    pub distances: Option<DistanceTable>,
    pub signatures: Option<DistanceTable>,
}

impl RecordedStream {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The models for [`simulate`](crate::simulate()), borrowing this stream's tables.
    pub fn models(&mut self) -> Models<'_> {
        Models::borrow(
            &mut self.big,
            &mut self.littles,
            self.dual.as_mut(),
            self.distances.as_mut(),
            self.signatures.as_mut(),
        )
    }

    /// Reads the CSV format above; `kind` says whether the outputs are logits or probabilities.
    pub fn load_csv(path: &Path, kind: OutputKind) -> Result<Self, AdaptError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
        Self::parse_csv(&text, path, kind)
    }

    pub fn parse_csv(text: &str, path: &Path, kind: OutputKind) -> Result<Self, AdaptError> {
        let err = |line: usize, message: String| AdaptError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (header_line, header) = lines
            .next()
            .ok_or_else(|| err(1, "no header line".into()))?;
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let label_col = columns
            .iter()
            .position(|c| *c == "label")
            .ok_or_else(|| err(header_line + 1, "no `label` column".into()))?;
        let l1_col = columns.iter().position(|c| *c == "s3_l1");
        let signature_col = columns.iter().position(|c| *c == "signature");
        // model name -> [(output index, column)]
        let mut groups: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        for (col, name) in columns.iter().enumerate() {
            if let Some((model, j)) = name.rsplit_once("_q") {
                let j: usize = j.parse().map_err(|_| {
                    err(
                        header_line + 1,
                        format!("column `{name}`: bad output index"),
                    )
                })?;
                groups.entry(model.to_string()).or_default().push((j, col));
            }
        }
        for (model, cols) in groups.iter_mut() {
            cols.sort_unstable();
            if cols.iter().enumerate().any(|(i, &(j, _))| i != j) {
                return Err(err(
                    header_line + 1,
                    format!("outputs of `{model}` are not numbered 0, 1, 2, …"),
                ));
            }
        }
        let mut labels = Vec::new();
        let mut rows: BTreeMap<String, Vec<Vec<f32>>> =
            groups.keys().map(|k| (k.clone(), Vec::new())).collect();
        let mut distances = Vec::new();
        let mut signatures = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != columns.len() {
                return Err(err(
                    i + 1,
                    format!("{} cells, header has {}", cells.len(), columns.len()),
                ));
            }
            let label: u32 = cells[label_col].parse().map_err(|_| {
                err(
                    i + 1,
                    format!("label `{}` is not a class index", cells[label_col]),
                )
            })?;
            labels.push(label);
            for (model, cols) in &groups {
                let mut out = Vec::with_capacity(cols.len());
                for &(j, col) in cols {
                    let v: f32 = cells[col].parse().map_err(|_| {
                        err(
                            i + 1,
                            format!("{model} output {j}: `{}` is not a number", cells[col]),
                        )
                    })?;
                    if !v.is_finite() {
                        return Err(err(i + 1, format!("{model} output {j} is {v}")));
                    }
                    out.push(v);
                }
                if let Some(r) = rows.get_mut(model) {
                    r.push(out);
                }
            }
            if let Some(col) = l1_col {
                distances.push(cells[col].parse().map_err(|_| {
                    err(i + 1, format!("s3_l1 `{}` is not a distance", cells[col]))
                })?);
            }
            if let Some(col) = signature_col {
                signatures.push(cells[col].parse().map_err(|_| {
                    err(
                        i + 1,
                        format!("signature `{}` is not a distance", cells[col]),
                    )
                })?);
            }
        }
        let mut take = |name: &str| {
            rows.remove(name).map(|rows| OutputTable {
                name: name.to_string(),
                kind,
                rows,
            })
        };
        let big = take("big").ok_or_else(|| err(header_line + 1, "no `big_q*` columns".into()))?;
        let dual = take("dual");
        let mut littles = Vec::new();
        while let Some(t) = take(&format!("little{}", littles.len())) {
            littles.push(t);
        }
        if let Some(extra) = rows.keys().next() {
            return Err(err(
                header_line + 1,
                format!(
                    "unknown model columns `{extra}_q*` (littles must be numbered from 0 without gaps)"
                ),
            ));
        }
        Ok(Self {
            labels,
            known: None,
            big,
            littles,
            dual,
            distances: l1_col.map(|_| DistanceTable(distances)),
            signatures: signature_col.map(|_| DistanceTable(signatures)),
        })
    }
}
