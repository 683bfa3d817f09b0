//! How the simulator sees a model: something that scores window `i` of the stream. The
//! simulator does not care whether that runs a `.tflite` graph, a trained network, or replays
//! outputs recorded elsewhere (TFLite interpreter, firmware in QEMU).

use crate::AdaptError;

/// What a classifier's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Already probabilities (e.g. a dequantised softmax output).
    Probabilities,
    /// Logits: the simulator applies the core's softmax before confidence measures.
    Logits,
}

/// A model that scores one window of the stream it was built over.
pub trait WindowClassifier {
    /// Name used in messages and reports.
    fn name(&self) -> &str;
    /// Scores for window `window` (class scores, or [changed, same] for same/changed models).
    fn scores(&mut self, window: usize) -> Result<Vec<f32>, AdaptError>;
    fn output_kind(&self) -> OutputKind {
        OutputKind::Probabilities
    }
}

/// The L1 distance between window `window` and the one before it (1BDD).
pub trait WindowDistance {
    fn distance(&mut self, window: usize) -> Result<u32, AdaptError>;
}

/// Outputs of one model on every window, computed once so that calibration sweeps can replay
/// the stream many times without re-running the model.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTable {
    pub name: String,
    pub kind: OutputKind,
    /// `rows[window]` = the model's outputs on that window.
    pub rows: Vec<Vec<f32>>,
}

impl OutputTable {
    /// Runs `model` on windows `0..n`.
    pub fn compute(model: &mut dyn WindowClassifier, n: usize) -> Result<Self, AdaptError> {
        let rows = (0..n)
            .map(|i| model.scores(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: model.name().to_string(),
            kind: model.output_kind(),
            rows,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl WindowClassifier for OutputTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&mut self, window: usize) -> Result<Vec<f32>, AdaptError> {
        self.rows
            .get(window)
            .cloned()
            .ok_or_else(|| AdaptError::Model {
                model: self.name.clone(),
                window,
                message: format!(
                    "no recorded output (the table has {} windows)",
                    self.rows.len()
                ),
            })
    }

    fn output_kind(&self) -> OutputKind {
        self.kind
    }
}

/// Precomputed distances (one per window; window 0 has none to compare with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistanceTable(pub Vec<u32>);

impl WindowDistance for DistanceTable {
    fn distance(&mut self, window: usize) -> Result<u32, AdaptError> {
        self.0
            .get(window)
            .copied()
            .ok_or_else(|| AdaptError::Model {
                model: "l1_distance".into(),
                window,
                message: format!("no distance (the table has {} windows)", self.0.len()),
            })
    }
}

/// L1 distances between consecutive windows of uint8 inputs (window 0 gets 0), computed with
/// the core's function so host and firmware agree.
pub fn l1_distances(windows: &[Vec<u8>]) -> DistanceTable {
    let mut out = Vec::with_capacity(windows.len());
    for (i, w) in windows.iter().enumerate() {
        out.push(if i == 0 {
            0
        } else {
            kinglet_adapt_core::l1_distance_u8(&windows[i - 1], w)
        });
    }
    DistanceTable(out)
}
