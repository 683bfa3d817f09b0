//! Lists, for `include_str!`, the sources kinglet carries inside its binary: the kernel crates
//! (kinglet-micro, kinglet-m4) a generated crate vendors, and the QEMU firmware harnesses with
//! the no_std controller they run (firmware/qemu-app, firmware/qemu-app-riscv, kinglet-adapt-core). An installed kinglet
//! then compiles, profiles and runs firmware cascades with no checkout anywhere.
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Every file below `dir` whose name `keep` accepts, sorted.
fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(files(&path, keep));
        } else if keep(&path) {
            out.push(path);
        }
    }
    out
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rust = |p: &Path| p.extension().is_some_and(|e| e == "rs");
    let crates: [(&str, PathBuf, &[&str]); 5] = [
        ("MICRO_SOURCES", manifest.join("../kinglet-micro"), &[]),
        ("M4_SOURCES", manifest.join("runtime-m4"), &["build.rs"]),
        (
            "ADAPT_CORE_SOURCES",
            manifest.join("../kinglet-adapt-core"),
            &[],
        ),
        (
            "FIRMWARE_SOURCES",
            manifest.join("../../firmware/qemu-app"),
            &[
                "Cargo.toml",
                "Cargo.lock",
                "build.rs",
                "build_support.rs",
                "memory.x",
                ".cargo/config.toml",
            ],
        ),
        (
            "FIRMWARE_RISCV_SOURCES",
            manifest.join("../../firmware/qemu-app-riscv"),
            &[
                "Cargo.toml",
                "Cargo.lock",
                "build.rs",
                "memory.x",
                ".cargo/config.toml",
            ],
        ),
    ];
    let mut code = String::new();
    for (name, root, extra) in crates {
        let root = root.canonicalize().expect("source folder present");
        println!("cargo:rerun-if-changed={}", root.join("src").display());
        let mut list = files(&root.join("src"), &rust);
        for file in extra {
            println!("cargo:rerun-if-changed={}", root.join(file).display());
            list.push(root.join(file));
        }
        let _ = writeln!(code, "pub static {name}: &[(&str, &str)] = &[");
        for file in list {
            let relative = file
                .strip_prefix(&root)
                .expect("inside the folder")
                .to_string_lossy()
                .replace('\\', "/");
            let _ = writeln!(
                code,
                "    ({relative:?}, include_str!({:?})),",
                file.display().to_string()
            );
        }
        let _ = writeln!(code, "];");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("runtime_sources.rs"), code).expect("write the source list");
}
