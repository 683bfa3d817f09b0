//! The generated Rust crate builds for every embedded target kinglet supports: Cortex-M4F
//! (DSP kernels), Cortex-M3 and RISC-V rv32imc (reference kernels), from a copy of its own
//! files alone (the kernels vendored beside it). Needs the three rustup targets (CI installs
//! them).
use std::path::PathBuf;
use std::process::Command;

use kinglet_compile::firmware::{compile, write_rust_crate};
use kinglet_graph::Graph;

#[test]
fn generated_crate_builds_for_m4_m3_and_riscv() {
    build_for_all_targets(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../kinglet-graph/tests/fixtures/S0_s3_int8.tflite"),
    );
}

/// kinglet's own models: three inputs with CONCATENATION; depthwise convolution and MEAN.
#[test]
fn own_models_build_for_m4_m3_and_riscv() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    build_for_all_targets(&dir.join("big3.int8.tflite"));
    build_for_all_targets(&dir.join("kinglet.int8.tflite"));
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn build_for_all_targets(path: &std::path::Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let graph = Graph::from_tflite_bytes(&std::fs::read(path).expect("seed model")).expect("parse");
    let written = tempfile::tempdir().unwrap();
    let crate_name =
        write_rust_crate(&compile(&graph, name).unwrap(), name, written.path()).unwrap();
    // The crate travels: copied alone elsewhere (the original removed), it names no path
    // outside itself and builds from its own files.
    let manifest = std::fs::read_to_string(written.path().join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("path = \"/"), "{manifest}");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(written.path(), dir.path());
    drop(written);
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
