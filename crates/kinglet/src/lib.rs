//! kinglet as a library: the stages the `kinglet` command strings together, for programs that
//! want them without the command line. Each stage is its own crate, re-exported here:
//!
//! | stage | module | entry points |
//! |---|---|---|
//! | datasets, streams, normalisation | [`data`] | [`data::DataSpec::parse`], [`data::load`] |
//! | training, the `.kgl` file, lowering to a graph | [`train`] | [`train::train()`], [`train::evaluate()`], [`train::lower()`], [`train::graph_inputs`] |
//! | graph IR, `.tflite` in and out, host interpreter | [`graph`] | [`graph::Graph`], [`graph::tflite`] |
//! | post-training quantisation (int8, 4/2-bit and mixed weights, 16×8), bit widths for a budget | [`compress`] | [`compress::quantize_int8`], [`compress::quantize_a16w8`], [`compress::bitwidth::choose_bits`] |
//! | firmware code, the emulated Cortex-M4 | [`compile`] | [`compile::firmware::compile`], [`compile::firmware::profile`] |
//! | big–little strategies, energy, reports | [`adapt`] | [`adapt::simulate()`], [`adapt::evaluate()`] |
//!
//! Whole commands (a training run with its checkpoint, a cascade from model files, the
//! pipeline) are in [`jobs`]: each takes the plain config struct the `kinglet` binary builds
//! from its arguments, so a program gets the command's files, messages and errors.
//!
//! From recordings to a profiled int8 model in a few lines (`cargo run --release -p kinglet
//! --example quickstart`; the profile needs QEMU and the Arm targets of `scripts/setup.sh`):
//!
//! ```no_run
//! use kinglet::{compile, compress, data, train};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = data::DataSpec::parse("uci-har:../shared/data/uci-har:train")?;
//! let windows = data::load(&spec, &data::LoadOptions::default())?;
//! let arch = train::Architecture::preset("kinglet-lite").ok_or("no such preset")?;
//! let options = train::TrainOptions { seed: 1, ..Default::default() };
//! let model = train::train(&arch, &windows, None, &options, &mut train::Silent)?.model;
//! let (samples, _) = train::graph_inputs(&model, &windows)?;
//! let int8 = compress::quantize_int8(&train::lower(&model)?, &samples[..300], &Default::default())?;
//! let compiled = compile::firmware::compile(&int8.graph, "har")?;
//! # let _ = compiled;
//! # Ok(())
//! # }
//! ```

pub mod jobs;

pub use kinglet_adapt as adapt;
pub use kinglet_compile as compile;
pub use kinglet_compress as compress;
pub use kinglet_data as data;
pub use kinglet_graph as graph;
pub use kinglet_train as train;
