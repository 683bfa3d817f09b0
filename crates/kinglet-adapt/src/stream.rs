//! Every model of a cascade opened on one stream's windows: what [`crate::simulate()`] runs
//! and what a threshold sweep records once ([`StreamModels::record`]). Kept apart from how the
//! models are read from files (kinglet's cascade job, which also knows `.kgl` models), so any
//! program holding graphs can run a cascade over a dataset.

use std::rc::Rc;

use kinglet_data::Dataset;

use crate::classifier::DistanceTable;
use crate::models::{DualClassifier, GraphClassifier, WindowData};
use crate::report::StreamCounts;
use crate::strategy::StrategyKind;
use crate::{AdaptError, Models, OutputTable, RecordedStream};

/// The cascade's models on one stream, with the labels they are scored against.
pub struct StreamModels {
    pub labels: Vec<u32>,
    /// Continuous streams: which windows are scored.
    pub known: Option<Vec<bool>>,
    /// Continuous streams: the grid and straddle counts.
    pub counts: Option<StreamCounts>,
    /// Seconds between windows, for the sleep and battery figures.
    pub window_period_s: f64,
    pub class_names: Vec<String>,
    pub big: GraphClassifier,
    pub littles: Vec<GraphClassifier>,
    pub dual: Option<DualClassifier>,
    /// The 1BDD check's L1 distances between consecutive windows (only for that strategy).
    pub distances: Option<DistanceTable>,
    /// The signature check's distances (only for that strategy).
    pub signatures: Option<DistanceTable>,
}

impl StreamModels {
    /// The models on `data`'s windows (`windows`, which the classifiers were built on), with
    /// the distance table `kind`'s check reads computed once up front.
    pub fn new(
        data: &Dataset,
        windows: &Rc<WindowData>,
        window_period_s: f64,
        kind: StrategyKind,
        big: GraphClassifier,
        littles: Vec<GraphClassifier>,
        dual: Option<DualClassifier>,
    ) -> Result<Self, AdaptError> {
        let distances = if kind == StrategyKind::OneBigDistance {
            Some(windows.s3_distances()?)
        } else {
            None
        };
        let signatures = if kind == StrategyKind::Signature {
            Some(windows.signature_distances()?)
        } else {
            None
        };
        let counts = data.stream.as_ref().map(|s| StreamCounts {
            scored: s.known.iter().filter(|k| **k).count(),
            straddling: s.straddles.iter().filter(|k| **k).count(),
            window: s.window,
            step: s.step,
        });
        Ok(StreamModels {
            window_period_s,
            labels: data.labels.clone(),
            known: data.stream.as_ref().map(|s| s.known.clone()),
            counts,
            class_names: data.class_names.clone(),
            big,
            littles,
            dual,
            distances,
            signatures,
        })
    }

    /// The models as [`crate::simulate()`] takes them.
    pub fn models(&mut self) -> Models<'_> {
        Models::borrow(
            &mut self.big,
            &mut self.littles,
            self.dual.as_mut(),
            self.distances.as_mut(),
            self.signatures.as_mut(),
        )
    }

    /// Runs every model on every window once, for threshold sweeps.
    pub fn record(&mut self) -> Result<RecordedStream, AdaptError> {
        let n = self.labels.len();
        Ok(RecordedStream {
            labels: self.labels.clone(),
            known: self.known.clone(),
            big: OutputTable::compute(&mut self.big, n)?,
            littles: self
                .littles
                .iter_mut()
                .map(|m| OutputTable::compute(m, n))
                .collect::<Result<_, _>>()?,
            dual: self
                .dual
                .as_mut()
                .map(|m| OutputTable::compute(m, n))
                .transpose()?,
            distances: self.distances.clone(),
            signatures: self.signatures.clone(),
        })
    }
}
