//! One module per subcommand.
pub mod cascade;
pub mod common;
pub mod compile;
pub mod data;
pub mod eval;
pub mod export;
pub mod inspect;
pub mod modes;
pub mod optimize;
pub mod pipeline;
pub mod profile;
pub mod prune;
pub mod quantize;
pub mod report;
pub mod search;
pub mod separable;
pub mod train;
// MODULES (keep this marker)
