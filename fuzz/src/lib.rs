//! Bodies of the fuzz targets, shared with the stable replay test
//! (`crates/kinglet/tests/fuzz_replay.rs` includes the same files), so that a committed
//! crash input is replayed through exactly the code that found it.

#[path = "targets/compile.rs"]
pub mod compile;
#[path = "targets/data.rs"]
pub mod data;
#[cfg(feature = "kgl")]
#[path = "targets/kgl.rs"]
pub mod kgl;
#[path = "targets/tflite.rs"]
pub mod tflite;
