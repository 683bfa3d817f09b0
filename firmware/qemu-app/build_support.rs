// Build-script help both test applications share (`include!`d by `qemu-app/build.rs` and
// `qemu-app-riscv/build.rs`): the generated Rust files kinglet hands over through environment
// variables.

/// Copies the generated file the environment variable `var` names (an absolute path) into
/// `out` as `name` and sets `cfg`; without it writes an empty `name`, so the `include!` in
/// `main.rs` always finds a file. Reruns when the variable or the file changes.
fn include_generated(out: &std::path::Path, var: &str, name: &str, cfg: &str) {
    println!("cargo:rerun-if-env-changed={var}");
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    let target = out.join(name);
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => {
            let path = std::path::PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::copy(&path, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
            println!("cargo:rustc-cfg={cfg}");
        }
        _ => std::fs::write(&target, "").unwrap_or_else(|e| panic!("write empty {name}: {e}")),
    }
}

/// Sets `cfg` when the generated file `name` in `out` holds the line `marker` (a cascade-mode
/// image that is a nested-width network's mode table rather than a big–little cascade).
fn cfg_if_marked(out: &std::path::Path, name: &str, marker: &str, cfg: &str) {
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    let text = std::fs::read_to_string(out.join(name)).unwrap_or_default();
    if text.lines().any(|line| line == marker) {
        println!("cargo:rustc-cfg={cfg}");
    }
}
