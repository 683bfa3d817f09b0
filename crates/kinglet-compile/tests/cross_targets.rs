//! The generated Rust crate builds for every embedded target kinglet supports: Cortex-M4F
//! (DSP kernels), Cortex-M3 and RISC-V rv32imc (reference kernels). Needs the three rustup
//! targets (CI installs them).
use std::path::PathBuf;
use std::process::Command;

use kinglet_compile::firmware::{compile, write_rust_crate};
use kinglet_graph::Graph;

#[test]
fn generated_crate_builds_for_m4_m3_and_riscv() {
    let name = "S0_s3_int8.tflite";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed-models/int8")
        .join(name);
    let graph =
        Graph::from_tflite_bytes(&std::fs::read(&path).expect("seed model")).expect("parse");
    let dir = tempfile::tempdir().unwrap();
    let crate_name = write_rust_crate(&compile(&graph, name).unwrap(), name, dir.path()).unwrap();
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("generated-crate");
    for target in [
        "thumbv7em-none-eabihf",
        "thumbv7m-none-eabi",
        "riscv32imc-unknown-none-elf",
    ] {
        let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(dir.path())
            .args(["build", "--release", "--target", target, "--target-dir"])
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("cargo runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{target}: {stderr}");
        assert!(
            !stderr.contains(&format!("`{crate_name}` (lib) generated")),
            "{target}: warnings in generated code:\n{stderr}"
        );
    }
}
