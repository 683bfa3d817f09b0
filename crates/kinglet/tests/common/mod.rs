//! Helpers shared by the CLI integration tests: run the `kinglet` binary, show its output.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

/// Runs the `kinglet` binary built for these tests, from the crate's folder (so relative
/// defaults such as `--boards-dir boards` resolve the same way in every test).
pub fn kinglet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinglet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kinglet")
}

/// Standard output then standard error, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
