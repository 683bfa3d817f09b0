//! One module per subcommand.
pub mod eval;
pub mod train;
pub mod export;
pub mod inspect;
pub mod cascade;
pub mod report;
pub mod data;
pub mod compile;
pub mod profile;
pub mod quantize;
pub mod pipeline;
// MODULES (keep this marker)
