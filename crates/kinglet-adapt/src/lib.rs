//! Big–little adaptive inference on a stream of windows: the strategies (decided by
//! [`kinglet_adapt_core`], shared with the firmware), a stream simulator over any
//! [`WindowClassifier`], stream metrics, an energy model from measured instruction counts and
//! datasheet board profiles, threshold calibration, and the HTML/Markdown report.
//!
//! Typical use: build the models as [`WindowClassifier`]s (or load recorded outputs with
//! [`RecordedStream`]), pick a [`StrategySpec`], call [`simulate()`], then [`evaluate()`] the run
//! and price it with [`energy::price_run`] on a [`BoardProfile`].

pub mod calibrate;
pub mod classifier;
pub mod energy;
pub mod error;
pub mod evaluate;
pub mod firmware;
pub mod firmware_modes;
pub mod models;
pub mod recorded;
pub mod report;
pub mod simulate;
pub mod strategy;
pub mod stream;

pub use classifier::{OutputKind, OutputTable, WindowClassifier, WindowDistance};
pub use energy::{BoardProfile, CostTable, EnergyReport};
pub use error::AdaptError;
pub use evaluate::{ChangeNotice, StreamEvaluation, evaluate, evaluate_scored};
pub use recorded::RecordedStream;
pub use simulate::{CheckKind, Models, StreamRun, WindowRecord, simulate};
pub use strategy::StrategySpec;

/// Seconds between two windows: 128 samples at 50 Hz with 50 % overlap.
pub const WINDOW_PERIOD_S: f64 = 1.28;
