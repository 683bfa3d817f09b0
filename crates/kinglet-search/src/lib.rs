//! kinglet-search: architecture search for tiny HAR networks. A search space (TOML) names the
//! choices; NSGA-II proposes candidates, successive halving trains them for few epochs first
//! and fully only when promising; each trial is trained, quantised, compiled and profiled in
//! QEMU, so its costs are measured, not estimated; a study database (SQLite by default,
//! PostgreSQL to share one study among workers on many machines) journals every trial, so a
//! stopped search resumes and a dead worker's trial is claimed again.
//!
//! Flow: [`space`] (genome → architecture) → [`study`] (plan the next generation or rung from
//! the study's finished trials) → [`storage`] (queue, atomic claim, lease, result) →
//! [`evaluate`] (train, quantise, profile) → [`worker`] (the claim–evaluate–record loop) →
//! [`front`] (the Pareto front's files and plots).

pub mod error;
pub mod evaluate;
pub mod fidelity;
pub mod front;
pub mod local_postgres;
pub mod nsga2;
pub mod search;
pub mod space;
pub mod storage;
pub mod study;
pub mod worker;

pub use error::SearchError;
pub use space::{Candidate, SearchSpace};
