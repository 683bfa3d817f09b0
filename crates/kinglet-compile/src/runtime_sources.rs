//! The kernel crates a generated Rust crate calls (kinglet-micro's reference kernels and
//! kinglet-m4's DSP kernels), carried inside kinglet and written next to the generated code
//! as `vendor/`: the crate builds with nothing but its own files, wherever it is copied.

use std::path::Path;

use crate::error::CompileError;
use crate::firmware::write_atomic;

include!(concat!(env!("OUT_DIR"), "/runtime_sources.rs"));

/// Version of the vendored kernel crates: kinglet's own.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn write_crate(dir: &Path, manifest: &str, sources: &[(&str, &str)]) -> Result<(), CompileError> {
    write_atomic(&dir.join("Cargo.toml"), manifest.as_bytes())?;
    for (relative, text) in sources {
        write_atomic(&dir.join(relative), text.as_bytes())?;
    }
    Ok(())
}

/// Writes `vendor/kinglet-micro` and `vendor/kinglet-m4` under `out`.
pub fn write_vendored_runtime(out: &Path) -> Result<(), CompileError> {
    let vendor = out.join("vendor");
    let micro = format!(
        "# kinglet's reference kernels ({VERSION}), vendored by `kinglet compile`.\n\
         [package]\nname = \"kinglet-micro\"\nversion = \"{VERSION}\"\nedition = \"2024\"\n\
         rust-version = \"1.95\"\nlicense = \"MIT OR Apache-2.0\"\npublish = false\n"
    );
    let m4 = format!(
        "# kinglet's Cortex-M4 DSP kernels ({VERSION}), vendored by `kinglet compile`.\n\
         [package]\nname = \"kinglet-m4\"\nversion = \"{VERSION}\"\nedition = \"2024\"\n\
         rust-version = \"1.95\"\nlicense = \"MIT OR Apache-2.0\"\npublish = false\n\n\
         [dependencies]\nkinglet-micro = {{ path = \"../kinglet-micro\" }}\n"
    );
    write_crate(&vendor.join("kinglet-micro"), &micro, MICRO_SOURCES)?;
    write_crate(&vendor.join("kinglet-m4"), &m4, M4_SOURCES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kernel_crates_are_carried_whole() {
        for sources in [MICRO_SOURCES, M4_SOURCES] {
            assert!(sources.iter().any(|(p, _)| *p == "src/lib.rs"));
            assert!(sources.iter().all(|(_, text)| !text.is_empty()));
        }
        assert!(M4_SOURCES.iter().any(|(p, _)| *p == "build.rs"));
        assert!(MICRO_SOURCES.len() > 10, "{} files", MICRO_SOURCES.len());
    }
}
