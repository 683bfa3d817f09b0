//! Puts `memory.x` on the linker path and pulls in the generated model module named by
//! `KINGLET_MODEL_RS` (absolute path; a generated module plus `TEST_INPUT`); without it the
//! app only runs the counter self-test. `KINGLET_KERNELS=reference` forces kinglet-micro's
//! reference kernels, for comparison.
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
    if env::var("KINGLET_KERNELS").as_deref() == Ok("reference") {
        println!("cargo:rustc-cfg=kinglet_reference_kernels");
    }
    let model = out.join("model.rs");
    match env::var_os("KINGLET_MODEL_RS") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            fs::copy(&path, &model).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
            println!("cargo:rustc-cfg=kinglet_model");
        }
        _ => fs::write(&model, "").expect("write empty model.rs"),
    }
}
