//! Stable Rust cannot test `target_feature = "dsp"` on Arm, so the core is inferred from the
//! target name: every `thumbv7em-*` core (Cortex-M4/M7) has the DSP extension; `thumbv7m-*`
//! (Cortex-M3) has only the base multiply-accumulates (MLA, SMULL, SMLAL); `riscv32*` cores
//! run the portable arithmetic, which compiles to plain MUL/ADD there.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kinglet_dsp)");
    println!("cargo::rustc-check-cfg=cfg(kinglet_armv7m)");
    println!("cargo::rustc-check-cfg=cfg(kinglet_packed)");
    println!("cargo:rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=kinglet_dsp");
    } else if target.starts_with("thumbv7m") {
        println!("cargo:rustc-cfg=kinglet_armv7m");
    }
    if ["thumbv7em", "thumbv7m", "riscv32"]
        .iter()
        .any(|t| target.starts_with(t))
    {
        println!("cargo:rustc-cfg=kinglet_packed");
    }
}
