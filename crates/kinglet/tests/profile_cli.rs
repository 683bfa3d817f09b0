//! `kinglet profile --target cortex-m3|riscv32`: the little anchor model on each core, its
//! counts and the core named in the report; outputs equal TFLite's (the command itself fails
//! unless QEMU's outputs equal the host interpreter's). Needs qemu-system-arm,
//! qemu-system-riscv32 and the two rustup targets (CI installs them).

use std::path::PathBuf;

mod common;
use common::{kinglet, text};

fn little_anchor() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures/S0_s3_int8.tflite")
        .display()
        .to_string()
}

fn work_dir() -> String {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("kinglet-profile-cli")
        .display()
        .to_string()
}

#[test]
fn profile_reports_each_cores_counts() {
    let model = little_anchor();
    let work = work_dir();
    let mut counts = Vec::new();
    for (target, board) in [("cortex-m3", "mps2-an385"), ("riscv32", "virt")] {
        let o = kinglet(&[
            "profile",
            &model,
            "--target",
            target,
            "--work-dir",
            &work,
            "--json",
        ]);
        assert!(o.status.success(), "{target}: {}", text(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(p["target"], target, "{p}");
        assert!(p["core"].as_str().unwrap().contains(board), "{p}");
        assert_eq!(p["outputs"], serde_json::json!([-44, 70]), "{p}");
        assert_eq!(p["known_loop_instructions"], 3001, "{p}");
        let n = p["instructions"].as_u64().unwrap();
        assert!(n > 0, "{p}");
        counts.push(n);
        // The text report names the core and its count.
        let o = kinglet(&["profile", &model, "--target", target, "--work-dir", &work]);
        assert!(o.status.success(), "{target}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(board) && out.contains(&n.to_string()), "{out}");
    }
    // Different cores, different instruction sets: the counts are the cores' own.
    assert_ne!(counts[0], counts[1]);
}
