//! `kinglet optimize` on the committed MNIST fixture: every variant of a short pipeline is
//! built, measured and tabulated, with the plot and the commands written beside it.

use std::path::{Path, PathBuf};

mod common;
use common::{kinglet, mnist, text, train};

/// `mnist-cnn` trained for two epochs on the committed MNIST fixture: the folder holding it,
/// the data spec and the model path.
fn trained_cnn() -> (tempfile::TempDir, String, PathBuf) {
    let data = mnist("train");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cnn.kgl");
    train("mnist-cnn", &data, model.to_str().unwrap());
    (dir, data, model)
}

#[test]
fn optimize_measures_every_variant_of_the_pipeline() {
    let (dir, data, model) = trained_cnn();
    let out = dir.path().join("opt");
    let o = kinglet(&[
        "optimize",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--pipeline",
        "float,dynamic,qat+int8,w4a8,qat+w2a8,a16w8",
        "--windows",
        "40",
        "--no-firmware",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("optimize.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["float", "dynamic", "qat+int8", "w4a8", "qat+w2a8", "a16w8"]
    );
    let size = |i: usize| rows[i]["size_bytes"].as_u64().unwrap();
    // int8 weights make the files about four times smaller than float, and 4- and 2-bit
    // weights smaller again; 16-bit activations leave the weights int8.
    assert!(size(1) * 3 < size(0) && size(2) * 3 < size(0), "{rows:?}");
    assert!(size(4) < size(3) && size(3) < size(2), "{rows:?}");
    assert!(size(5) * 3 < size(0), "{rows:?}");
    for r in rows {
        let a = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a));
        assert!(Path::new(r["file"].as_str().unwrap()).exists());
    }
    let table = std::fs::read_to_string(out.join("optimize.md")).unwrap();
    assert!(table.contains("| qat+int8 |"), "{table}");
    let svg = std::fs::read_to_string(out.join("optimize.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("qat+int8"));
    let commands = std::fs::read_to_string(out.join("commands.txt")).unwrap();
    assert!(commands.contains("kinglet train --init") && commands.contains("--qat"));
    assert!(
        commands.contains("--bits 2") && commands.contains("--scheme w2a8"),
        "{commands}"
    );

    // A variant in the wrong order is refused before anything runs.
    let o = kinglet(&[
        "optimize",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--pipeline",
        "int8+qat",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("must come last"), "{}", text(&o));
}

#[test]
fn pruning_and_separable_steps_run_and_every_variant_runs_on_the_cortex_m4() {
    let (dir, data, model) = trained_cnn();
    let out = dir.path().join("opt");
    let firmware = std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut args = vec![
        "optimize",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--pipeline",
        "int8,prune+int8,prune-filters+int8,separable+float16",
        "--sparsity",
        "0.8",
        "--windows",
        "40",
        "--out",
        out.to_str().unwrap(),
    ];
    if !firmware {
        args.push("--no-firmware");
    }
    let o = kinglet(&args);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("optimize.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    let size = |i: usize| rows[i]["size_bytes"].as_u64().unwrap();
    // 80 % pruned weights are stored sparse (CSR with 16-bit indices pays from about 67 %),
    // fewer filters make a smaller network.
    assert!(size(1) < size(0) && size(2) < size(0), "{rows:?}");
    if firmware {
        // `profile` fails unless QEMU's outputs equal the host's, so a number means a match.
        for r in rows {
            assert!(r["instructions"].as_u64().is_some_and(|n| n > 0), "{r}");
            assert_eq!(r["target"], "cortex-m4", "{r}");
        }
        let flash = |i: usize| rows[i]["flash_bytes"].as_u64().unwrap();
        assert!(flash(1) < flash(0), "{rows:?}");
    }
    let commands = std::fs::read_to_string(out.join("commands.txt")).unwrap();
    assert!(
        commands.contains("kinglet prune") && commands.contains("--structured 0.5"),
        "{commands}"
    );
    assert!(commands.contains("kinglet separable"), "{commands}");
}
