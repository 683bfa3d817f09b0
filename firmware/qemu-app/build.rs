//! Puts `memory.x` on the linker path and pulls in the generated model module named by
//! `KINGLET_MODEL_RS` (absolute path; a generated module plus `TEST_INPUT`); without it the
//! app only runs the counter self-test.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=KINGLET_MODEL_RS");
    println!("cargo:rerun-if-env-changed=KINGLET_KERNELS");
    println!("cargo::rustc-check-cfg=cfg(kinglet_model)");
    println!("cargo::rustc-check-cfg=cfg(kinglet_reference_kernels)");
    // `reference` forces kinglet-micro's kernels on this DSP-capable core, for comparison.
    if env::var("KINGLET_KERNELS").as_deref() == Ok("reference") {
        println!("cargo:rustc-cfg=kinglet_reference_kernels");
    }
    println!("cargo:rerun-if-env-changed=KINGLET_MODEL_C");
    if let Some(c_model) = env::var_os("KINGLET_MODEL_C").filter(|p| !p.is_empty()) {
        build_c_model(&PathBuf::from(c_model), &out);
    }
    let model = out.join("model.rs");
    match env::var_os("KINGLET_MODEL_RS") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            fs::copy(&path, &model).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
            println!("cargo:rustc-cfg=kinglet_model");
        }
        _ => {
            fs::write(&model, "").expect("write empty model.rs");
        }
    }
}

/// Compiles a generated C model (`KINGLET_MODEL_C`) with arm-none-eabi-gcc, as strictly as
/// users are told to, and links it; `KINGLET_MODEL_RS` is then its FFI shim.
fn build_c_model(source: &std::path::Path, out: &std::path::Path) {
    use std::process::Command;
    println!("cargo:rerun-if-changed={}", source.display());
    if let Some(dir) = source.parent() {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let object = out.join("kinglet_model_c.o");
    let status = Command::new("arm-none-eabi-gcc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-mcpu=cortex-m4",
            "-mthumb",
        ])
        .args([
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-ffunction-sections",
            "-fdata-sections",
            "-c",
        ])
        .arg(source)
        .arg("-o")
        .arg(&object)
        .status()
        .expect("arm-none-eabi-gcc (Debian package gcc-arm-none-eabi) must be installed");
    assert!(
        status.success(),
        "arm-none-eabi-gcc failed on {}",
        source.display()
    );
    let library = out.join("libkinglet_model_c.a");
    let _ = std::fs::remove_file(&library);
    let status = Command::new("arm-none-eabi-ar")
        .arg("rcs")
        .arg(&library)
        .arg(&object)
        .status()
        .expect("arm-none-eabi-ar must be installed");
    assert!(status.success(), "arm-none-eabi-ar failed");
    println!("cargo:rustc-link-lib=static=kinglet_model_c");
}
