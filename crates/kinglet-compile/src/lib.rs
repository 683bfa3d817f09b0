//! kinglet-compile: turns a kinglet-graph [`Graph`](kinglet_graph::Graph) into allocation-free
//! firmware source (a `#![no_std]` Rust module or self-contained C99), runs it on an emulated
//! core ([`target`]: Cortex-M4F on QEMU `mps2-an386`, Cortex-M3 on `mps2-an385`) and
//! measures it exactly.
//!
//! Flow: [`lower::lower`] (kernel choice, constant layouts, arena plan) → [`emit_rust`] /
//! [`emit_c`] → [`qemu`] (build the firmware app, run it, parse its report); [`firmware`]
//! ties them together for the `compile` and `profile` commands; [`exec`] runs a program on
//! the host. The Cortex-M4 kernels live in `runtime-m4/` (crate `kinglet-m4`, `#![no_std]`),
//! their C counterparts in `runtime-c/`; the QEMU test application in `firmware/qemu-app`.
//! Int8 and a16w8 (int16 activations, [`s16`]) models compile to both languages; float models
//! (float32, float16 weights, dynamic range) to Rust only, through [`float`].

pub mod conv2d_dsp;
pub mod emit_c;
pub mod emit_rust;
pub mod error;
pub mod exec;
pub mod firmware;
pub mod float;
pub mod guard;
pub mod lower;
pub mod nested;
pub mod plan;
pub mod program;
pub mod qemu;
pub mod runtime_sources;
pub mod s16;
pub mod sparse;
pub mod target;
pub mod testinput;

pub use error::CompileError;
pub use lower::lower;
pub use program::{KernelSet, Program};
