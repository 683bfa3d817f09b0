//! Stable Rust cannot test `target_feature = "dsp"` on Arm, so the DSP extension is inferred
//! from the target name: every `thumbv7em-*` core (Cortex-M4/M7) has it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kinglet_dsp)");
    println!("cargo:rerun-if-env-changed=TARGET");
    if std::env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv7em")) {
        println!("cargo:rustc-cfg=kinglet_dsp");
    }
}
