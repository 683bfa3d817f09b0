//! Sources kinglet carries inside its binary, so that nothing it writes or builds points back
//! into a kinglet checkout:
//! - the kernel crates a generated Rust crate calls (kinglet-micro's reference kernels,
//!   kinglet-m4's DSP kernels), written next to the generated code as `vendor/`: the crate
//!   builds with nothing but its own files, wherever it is copied;
//! - the QEMU firmware harnesses (`firmware/qemu-app` for the Arm cores,
//!   `firmware/qemu-app-riscv` for RISC-V) with the no_std controller they run
//!   (kinglet-adapt-core), unpacked once per kinglet build into a data folder
//!   ([`firmware_project`]) where `profile`, `optimize` and `cascade --target` build it.

use std::path::{Path, PathBuf};

use crate::error::CompileError;
use crate::firmware::write_atomic;

include!(concat!(env!("OUT_DIR"), "/runtime_sources.rs"));

/// Version of the carried crates: kinglet's own.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A `Cargo.toml` for a carried crate outside kinglet's workspace.
fn manifest(name: &str, about: &str, dependencies: &[&str]) -> String {
    let mut s = format!(
        "# {about} (kinglet {VERSION}), carried by kinglet.\n\
         [package]\nname = \"{name}\"\nversion = \"{VERSION}\"\nedition = \"2024\"\n\
         rust-version = \"1.95\"\nlicense = \"MIT OR Apache-2.0\"\npublish = false\n"
    );
    if !dependencies.is_empty() {
        s += "\n[dependencies]\n";
        for d in dependencies {
            s += &format!("{d} = {{ path = \"../{d}\" }}\n");
        }
    }
    s
}

fn write_crate(dir: &Path, manifest: &str, sources: &[(&str, &str)]) -> Result<(), CompileError> {
    write_atomic(&dir.join("Cargo.toml"), manifest.as_bytes())?;
    for (relative, text) in sources {
        write_atomic(&dir.join(relative), text.as_bytes())?;
    }
    Ok(())
}

fn write_kernel_crates(dir: &Path) -> Result<(), CompileError> {
    write_crate(
        &dir.join("kinglet-micro"),
        &manifest("kinglet-micro", "kinglet's reference kernels", &[]),
        MICRO_SOURCES,
    )?;
    write_crate(
        &dir.join("kinglet-m4"),
        &manifest(
            "kinglet-m4",
            "kinglet's Cortex-M4 DSP kernels",
            &["kinglet-micro"],
        ),
        M4_SOURCES,
    )
}

/// Writes `vendor/kinglet-micro` and `vendor/kinglet-m4` under `out`.
pub fn write_vendored_runtime(out: &Path) -> Result<(), CompileError> {
    write_kernel_crates(&out.join("vendor"))
}

/// FNV-1a over every carried file: a new kinglet build with other sources unpacks anew.
fn content_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for list in [
        MICRO_SOURCES,
        M4_SOURCES,
        ADAPT_CORE_SOURCES,
        FIRMWARE_SOURCES,
        FIRMWARE_RISCV_SOURCES,
    ] {
        for (path, text) in list {
            for b in path.bytes().chain([0]).chain(text.bytes()).chain([0]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    h
}

/// Where kinglet keeps what it unpacks and builds: `$KINGLET_HOME`, else
/// `$XDG_CACHE_HOME/kinglet`, else `~/.cache/kinglet`, else the system's temporary folder.
pub fn data_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("KINGLET_HOME")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("kinglet")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/kinglet")))
        .unwrap_or_else(|| std::env::temp_dir().join("kinglet"))
}

/// Writes the harness (`qemu-app`) and the crates it depends on side by side into `dir`, its
/// path dependencies pointing at those siblings instead of the checkout.
fn unpack_into(dir: &Path) -> Result<(), CompileError> {
    write_kernel_crates(dir)?;
    write_crate(
        &dir.join("kinglet-adapt-core"),
        &manifest(
            "kinglet-adapt-core",
            "kinglet's no_std big-little controller",
            &[],
        ),
        ADAPT_CORE_SOURCES,
    )?;
    for (app, sources) in [
        ("qemu-app", FIRMWARE_SOURCES),
        ("qemu-app-riscv", FIRMWARE_RISCV_SOURCES),
    ] {
        for (relative, text) in sources {
            let text = if *relative == "Cargo.toml" {
                text.replace("../../crates/kinglet-compile/runtime-m4", "../kinglet-m4")
                    .replace("../../crates/", "../")
            } else {
                (*text).to_string()
            };
            write_atomic(&dir.join(app).join(relative), text.as_bytes())?;
        }
    }
    Ok(())
}

/// The firmware harness's cargo project, unpacked into [`data_dir`] on first use (into a
/// temporary folder, then renamed into place, so a half-written project is never used).
pub fn firmware_project() -> Result<PathBuf, CompileError> {
    let root = data_dir().join(format!("firmware-{VERSION}-{:016x}", content_hash()));
    let app = root.join("qemu-app");
    if app.join("Cargo.toml").is_file() {
        return Ok(app);
    }
    std::fs::create_dir_all(data_dir()).map_err(|e| CompileError::io(&data_dir(), e))?;
    let staging = data_dir().join(format!(
        ".unpacking-{}-{:016x}",
        std::process::id(),
        content_hash()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    unpack_into(&staging)?;
    match std::fs::rename(&staging, &root) {
        Ok(()) => Ok(app),
        // Another process unpacked the same sources first: use theirs.
        Err(_) if app.join("Cargo.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(app)
        }
        Err(e) => Err(CompileError::io(&root, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_carried_crate_is_whole() {
        for sources in [MICRO_SOURCES, M4_SOURCES, ADAPT_CORE_SOURCES] {
            assert!(sources.iter().any(|(p, _)| *p == "src/lib.rs"));
            assert!(sources.iter().all(|(_, text)| !text.is_empty()));
        }
        assert!(M4_SOURCES.iter().any(|(p, _)| *p == "build.rs"));
        for file in [
            "Cargo.lock",
            "memory.x",
            ".cargo/config.toml",
            "src/main.rs",
        ] {
            assert!(FIRMWARE_SOURCES.iter().any(|(p, _)| *p == file), "{file}");
            assert!(
                FIRMWARE_RISCV_SOURCES.iter().any(|(p, _)| *p == file),
                "{file}"
            );
        }
    }

    #[test]
    fn the_unpacked_harness_names_no_path_outside_itself() {
        let dir = tempfile::tempdir().unwrap();
        unpack_into(dir.path()).unwrap();
        let riscv = std::fs::read_to_string(dir.path().join("qemu-app-riscv/Cargo.toml")).unwrap();
        assert!(!riscv.contains("../../"), "{riscv}");
        let manifest = std::fs::read_to_string(dir.path().join("qemu-app/Cargo.toml")).unwrap();
        assert!(!manifest.contains("../../"), "{manifest}");
        for sibling in ["kinglet-micro", "kinglet-m4", "kinglet-adapt-core"] {
            assert!(
                dir.path().join(sibling).join("src/lib.rs").is_file(),
                "{sibling}"
            );
            assert!(
                manifest.contains(&format!("path = \"../{sibling}\"")),
                "{manifest}"
            );
        }
    }
}
