//! Lists the board profiles in `boards/` for `include_str!`: kinglet carries them, so that an
//! installed kinglet prices energy with no checkout present.
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let boards = manifest
        .join("../../boards")
        .canonicalize()
        .expect("boards/ present");
    println!("cargo:rerun-if-changed={}", boards.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&boards)
        .expect("read boards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut code = String::from("pub static BUILT_IN_BOARDS: &[(&str, &str)] = &[\n");
    for f in files {
        let name = f
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        );
    }
    code += "];\n";
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("boards.rs"), code).expect("write the board list");
}
