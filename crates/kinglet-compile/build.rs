//! Lists the kernel crates' source files (kinglet-micro, kinglet-m4) for `include_str!`, so that
//! kinglet carries them and a generated crate can vendor the runtime it calls: the crate then
//! builds anywhere, with no path back into a kinglet checkout.
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut code = String::new();
    for (name, root) in [
        ("MICRO_SOURCES", manifest.join("../kinglet-micro")),
        ("M4_SOURCES", manifest.join("runtime-m4")),
    ] {
        let root = root.canonicalize().expect("kernel crate present");
        println!("cargo:rerun-if-changed={}", root.join("src").display());
        let mut list = files(&root.join("src"));
        if root.join("build.rs").is_file() {
            println!("cargo:rerun-if-changed={}", root.join("build.rs").display());
            list.push(root.join("build.rs"));
        }
        let _ = writeln!(code, "pub static {name}: &[(&str, &str)] = &[");
        for file in list {
            let relative = file
                .strip_prefix(&root)
                .expect("inside the crate")
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
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("runtime_sources.rs");
    std::fs::write(&out, code).expect("write the source list");
}
