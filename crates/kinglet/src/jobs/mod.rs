//! What each `kinglet` command does, as functions of plain configuration structs, so that a
//! program can run a step exactly as the command line runs it (same files, same messages,
//! same errors) without going through `clap`. The `kinglet` binary only turns its arguments
//! into these structs and prints what they return.
//!
//! Why here and not in the stage crates: a job strings stages together (a cascade opens
//! `.kgl` models through the training crate before kinglet-adapt runs them; the pipeline and
//! optimize jobs train, quantise, compile and simulate), and only this crate depends on every
//! stage. What belongs to one stage alone lives in that stage's crate (e.g.
//! [`kinglet_adapt::stream::StreamModels`], the cascade summary on
//! [`kinglet_adapt::report::CascadeRecord`]). Jobs report errors with `anyhow`, carrying the
//! same context chain the command prints.
//!
//! | command | job |
//! |---|---|
//! | `kinglet train` | [`train::run`] |
//! | `kinglet eval` | [`eval::run`] |
//! | `kinglet cascade` | [`cascade::run`] |
//! | `kinglet quantize` | [`quantize::run`] |
//! | `kinglet pipeline` | [`pipeline::run`] |
//! | `kinglet optimize` | [`optimize::run`] |
//! | `kinglet modes` | [`modes::run`] |
//! | `kinglet report` | [`report::run`] |

pub mod bitwidth;
pub mod cascade;
pub mod eval;
pub mod modes;
pub mod optimize;
pub mod pipeline;
pub mod quantize;
pub mod report;
pub mod steps;
pub mod train;
