//! Helpers shared by the CLI integration tests: run the `kinglet` binary, show its output.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
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

/// The committed 96 + 40-image MNIST fixture as a `--data` spec of the given split.
pub fn mnist(split: &str) -> String {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-train/tests/fixtures/mnist-tiny");
    format!("mnist:{}:{split}", dir.display())
}

/// The committed UCI-HAR fixture as a `--data` spec (no split: each command's default).
pub fn har() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-data/tests/fixtures/uci-har");
    format!("uci-har:{}", dir.display())
}

/// Runs `kinglet`, fails the test unless it succeeds, and returns its output.
pub fn run_ok(args: &[&str]) -> String {
    let o = kinglet(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    text(&o)
}

/// Trains `arch` for two epochs (seed 1, no validation) into `out`.
pub fn train(arch: &str, data: &str, out: &str) {
    run_ok(&[
        "train", "--arch", arch, "--data", data, "--no-val", "--epochs", "2", "--seed", "1",
        "--out", out, "--quiet",
    ]);
}
