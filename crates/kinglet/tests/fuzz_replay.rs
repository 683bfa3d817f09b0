//! Replays every committed fuzz input (issue 17) on stable Rust, through the very target
//! bodies the fuzzer runs (`fuzz/src/targets/*.rs`, included below): the corpora in
//! `fuzz/corpus/<target>/` and the crash inputs fixed since in `fuzz/regressions/<target>/`.
//! A panic here is a regression of a fixed crash, or a crash the corpus already held.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/targets/compile.rs"]
mod compile;
#[path = "../../../fuzz/src/targets/data.rs"]
mod data;
#[path = "../../../fuzz/src/targets/kgl.rs"]
mod kgl;
#[path = "../../../fuzz/src/targets/tflite.rs"]
mod tflite;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        files.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no committed inputs for fuzz target `{target}`"
    );
    for path in files {
        let bytes = std::fs::read(&path).expect("reading a committed fuzz input");
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(
            outcome.is_ok(),
            "fuzz target `{target}` panics on {}",
            path.display()
        );
    }
}

#[test]
fn fuzz_replay_tflite() {
    replay("tflite", tflite::run);
}

#[test]
fn fuzz_replay_compile() {
    replay("compile", compile::run);
}

#[test]
fn fuzz_replay_kgl() {
    replay("kgl", kgl::run);
}

#[test]
fn fuzz_replay_data() {
    replay("data", data::run);
}
