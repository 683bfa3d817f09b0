//! Nested-width networks (`train --widths`): one training run, every width usable as an
//! ordinary model (`eval --width`, `export --width`, then `quantize`), shared int8 weights.

mod common;

use std::path::Path;

use common::{har, kinglet, run_ok, text};
use kinglet_graph::OpKind;
use kinglet_graph::tflite::read_tflite_file;

/// int8 filter bytes of the first convolution and of the first depthwise convolution.
fn first_filters(path: &str) -> (Vec<usize>, Vec<u8>, Vec<usize>, Vec<u8>) {
    let graph = read_tflite_file(Path::new(path)).unwrap();
    let filter = |pick: &dyn Fn(&OpKind) -> bool| {
        let op = graph.ops.iter().find(|o| pick(&o.kind)).unwrap();
        let t = graph.tensor(op.inputs[1]);
        (t.shape.clone(), t.data.clone().unwrap())
    };
    let (cs, cd) = filter(&|k| matches!(k, OpKind::Conv2D { .. }));
    let (ds, dd) = filter(&|k| matches!(k, OpKind::DepthwiseConv2D { .. }));
    (cs, cd, ds, dd)
}

#[test]
fn a_nested_model_trains_once_and_every_width_evaluates_and_quantises() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let nested = p("nested.kgl");
    let data = har();
    run_ok(&[
        "train",
        "--arch",
        "kinglet-lite",
        "--widths",
        "0.25,0.5,0.75,1.0",
        "--data",
        &data,
        "--epochs",
        "2",
        "--seed",
        "1",
        "--out",
        &nested,
        "--quiet",
    ]);
    // Deterministic: the same seed gives the same file, byte for byte (the sandwich rule's
    // width draw has its own seeded stream).
    let again = p("again.kgl");
    run_ok(&[
        "train",
        "--arch",
        "kinglet-lite",
        "--widths",
        "0.25,0.5,0.75,1.0",
        "--data",
        &data,
        "--epochs",
        "2",
        "--seed",
        "1",
        "--out",
        &again,
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read(&nested).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let mut filters = Vec::new();
    for width in ["0.25", "0.5", "0.75", "1"] {
        let eval = run_ok(&[
            "eval", "--model", &nested, "--width", width, "--data", &data, "--json",
        ]);
        assert!(eval.contains("\"accuracy\""), "{eval}");
        let (kgl, int8) = (p(&format!("w{width}.kgl")), p(&format!("w{width}.tflite")));
        let out = run_ok(&[
            "export", "--model", &nested, "--width", width, "--format", "kgl", "--out", &kgl,
        ]);
        assert!(out.contains(&format!("width {width}")), "{out}");
        // The exported width is an ordinary model: same scores as `eval --width`.
        let alone = run_ok(&["eval", "--model", &kgl, "--data", &data, "--json"]);
        let accuracy = |s: &str| s.split("\"accuracy\":").nth(1).unwrap()[..8].to_string();
        assert_eq!(accuracy(&alone), accuracy(&eval), "width {width}");
        run_ok(&[
            "quantize", "--model", &kgl, "--data", &data, "--scheme", "int8", "--out", &int8,
        ]);
        filters.push(first_filters(&int8));
    }
    // Positive folded batch-norm scales and per-channel int8 scales: the leading channels of
    // the first convolution and of the depthwise convolution are the same int8 values at every
    // width (their channels see all of their inputs at every width).
    let (full_cs, full_cd, full_ds, full_dd) = filters.last().unwrap().clone();
    for (cs, cd, ds, dd) in &filters {
        assert_eq!(cs[1..], full_cs[1..]);
        assert_eq!(cd[..], full_cd[..cd.len()], "first convolution");
        // Depthwise filters are [1, 1, kernel, channels]: each kernel tap's leading channels.
        let (c, full_c) = (ds[3], full_ds[3]);
        for tap in 0..ds[2] {
            assert_eq!(
                dd[tap * c..(tap + 1) * c],
                full_dd[tap * full_c..tap * full_c + c],
                "depthwise tap {tap}"
            );
        }
    }
    // The full width of a nested model is also the model itself.
    let full = run_ok(&["eval", "--model", &nested, "--data", &data, "--json"]);
    assert!(full.contains("\"accuracy\""));

    // Operating modes (MAC costs: this test builds no firmware; the QEMU path is the same code
    // with `profile_with` in front).
    let modes = p("modes");
    let out = run_ok(&[
        "modes",
        "--model",
        &nested,
        "--data",
        &data,
        "--out",
        &modes,
        "--no-firmware",
    ]);
    assert!(out.contains("estimate"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{modes}/modes.json")).unwrap())
            .unwrap();
    let rows = json["modes"].as_array().unwrap();
    // Four fixed widths and at least one adaptive chain per chain of two or more widths.
    assert!(rows.len() >= 4 + 11, "{}", rows.len());
    assert_eq!(
        rows.iter().filter(|m| m["rule"] == "fixed").count(),
        4,
        "{json}"
    );
    assert!(rows.iter().any(|m| m["pareto"] == true));
    for m in rows {
        let (mean, worst) = (
            m["mean_cost"].as_f64().unwrap(),
            m["worst_cost"].as_f64().unwrap(),
        );
        assert!(mean > 0.0 && mean <= worst + 1e-9, "{m}");
    }
    let md = std::fs::read_to_string(format!("{modes}/modes.md")).unwrap();
    assert!(md.contains("MAC-proportional estimate"), "{md}");
    let svg = std::fs::read_to_string(format!("{modes}/modes.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");

    // The three-branch, flattening Big-3IN narrows too (its dense layer takes strided rows).
    let big3 = p("big3.kgl");
    run_ok(&[
        "train", "--arch", "big3", "--widths", "0.5,1", "--data", &data, "--epochs", "1", "--seed",
        "1", "--out", &big3, "--quiet",
    ]);
    let eval = run_ok(&[
        "eval", "--model", &big3, "--width", "0.5", "--data", &data, "--json",
    ]);
    assert!(eval.contains("\"accuracy\""), "{eval}");

    // Bad input: widths on a plain model, a width the model lacks, a bad width list.
    let plain = p("plain.kgl");
    common::train("kinglet-lite", &data, &plain);
    let o = kinglet(&["eval", "--model", &plain, "--width", "0.5", "--data", &data]);
    assert!(
        !o.status.success() && text(&o).contains("no nested widths"),
        "{}",
        text(&o)
    );
    let o = kinglet(&[
        "eval", "--model", &nested, "--width", "0.3", "--data", &data,
    ]);
    assert!(
        !o.status.success() && text(&o).contains("not one of the model's widths"),
        "{}",
        text(&o)
    );
    let o = kinglet(&[
        "train",
        "--arch",
        "kinglet-lite",
        "--widths",
        "0.5,0.25",
        "--data",
        &data,
        "--out",
        &p("x.kgl"),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("strictly increasing"),
        "{}",
        text(&o)
    );
}

/// `kinglet modes` on `model` and the windows of `data`, into `out`, with `extra` flags.
fn run_modes(model: &str, data: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["modes", "--model", model, "--data", data, "--out", out];
    args.extend_from_slice(extra);
    kinglet(&args)
}

/// The `modes.json` a `kinglet modes` run wrote into `out`.
fn modes_json(out: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{out}/modes.json")).unwrap()).unwrap()
}

/// Trains kinglet-lite with nested `widths` on the fixture for two epochs into `out`, with
/// `extra` flags.
fn train_nested(out: &str, widths: &str, seed: &str, extra: &[&str]) {
    let data = har();
    let mut args = vec![
        "train",
        "--arch",
        "kinglet-lite",
        "--widths",
        widths,
        "--data",
        data.as_str(),
        "--epochs",
        "2",
        "--seed",
        seed,
        "--out",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
}

/// `modes --device-stream`: the widths and three modes in one image on the emulated
/// Cortex-M4, the battery-aware policy switching them twice as the charge drains over 200
/// windows; every window's mode, widths run and label equal the host simulator's (the command
/// fails otherwise, and the test requires success), and each mode's instructions are measured.
#[test]
fn modes_switch_at_run_time_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let nested = p("nested.kgl");
    let data = har();
    train_nested(&nested, "0.25,0.5,1.0", "1", &[]);
    let modes = p("modes");
    let work = p("work");
    let run_modes = |out: &str, extra: &[&str]| run_modes(&nested, &data, out, extra);
    let o = run_modes(&modes, &["--work-dir", &work, "--device-stream", "200"]);
    assert!(o.status.success(), "{}", text(&o));
    let json = modes_json(&modes);
    let device = &json["device"];
    assert_eq!(device["windows"], 200, "{device}");
    // 100 % → 0 % over 200 windows: full width until 60 %, the adaptive mode until 25 %,
    // then the narrowest width — two switches, each mode running a share of the stream.
    let switches = device["switches"].as_array().unwrap();
    assert_eq!(switches.len(), 2, "{device}");
    let modes_run = device["modes"].as_array().unwrap();
    assert_eq!(modes_run.len(), 3);
    let windows: Vec<u64> = modes_run
        .iter()
        .map(|m| m["windows"].as_u64().unwrap())
        .collect();
    assert_eq!(windows.iter().sum::<u64>(), 200);
    assert!(windows.iter().all(|&w| w > 0), "{windows:?}");
    let mean = |k: usize| modes_run[k]["mean_instructions"].as_f64().unwrap();
    // The narrowest width costs less than the full one on the device. A device window costs
    // the width's inference (its single-model profile) plus turning the float samples into
    // the int8 input (about 32k instructions for 128 × 9 samples on the M4's FPU) and the
    // decision.
    assert!(mean(2) < mean(0), "{device}");
    assert_eq!(modes_run[0]["widths"], serde_json::json!([1.0]));
    assert_eq!(modes_run[2]["widths"], serde_json::json!([0.25]));
    let full_profile = json["widths"][2]["instructions"].as_f64().unwrap();
    assert!(
        mean(0) > full_profile && mean(0) < full_profile + 50_000.0,
        "{} vs {full_profile}",
        mean(0)
    );
    let md = std::fs::read_to_string(format!("{modes}/modes.md")).unwrap();
    assert!(md.contains("Switched at run time on the device"), "{md}");
    // Its own batch norm per width: each width carries its own weights, and they cannot be
    // compiled over one blob (the compiler checks the weights, it does not assume them).
    assert!(device["blob"].is_null(), "{device}");
    let graphs: Vec<kinglet_graph::Graph> = json["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let path = w["model"].as_str().unwrap();
            read_tflite_file(Path::new(path)).unwrap()
        })
        .collect();
    let refs: Vec<&kinglet_graph::Graph> = graphs.iter().collect();
    let err = match kinglet_compile::nested::compile_widths(
        &refs,
        &["a", "b", "c"],
        kinglet_compile::nested::Layout::PerWidth,
    ) {
        Ok(_) => panic!("own-norm widths compiled over one blob"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("not the full width's"), "{err}");

    // Bad input: a device stream without firmware, an unknown core.
    let o = run_modes(&p("m2"), &["--no-firmware", "--device-stream", "10"]);
    assert!(
        !o.status.success() && text(&o).contains("drop --no-firmware"),
        "{}",
        text(&o)
    );
    // A mode id beyond the table, and a list that is not three ids.
    let count = json["modes"].as_array().unwrap().len();
    let beyond = format!("0,1,{count}");
    for (list, says) in [
        (beyond.as_str(), "out of range"),
        ("0,1", "three mode ids"),
        ("0,x,1", "not a mode id"),
    ] {
        let o = run_modes(
            &p("m3"),
            &[
                "--work-dir",
                &work,
                "--device-stream",
                "10",
                "--device-modes",
                list,
            ],
        );
        assert!(
            !o.status.success() && text(&o).contains(says),
            "{list}: {}",
            text(&o)
        );
    }
}

/// A network trained with `--width-norm shared-scale` runs every width from one weight blob
/// on the device: `modes` quantises the narrower widths over the full width's int8 weights,
/// compiles them to read the blob, and the stream still matches the host simulator window by
/// window (the command fails otherwise). The report says what the widths keep of their own:
/// biases only.
#[test]
fn one_weight_blob_serves_every_width_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let nested = p("shared.kgl");
    let data = har();
    train_nested(
        &nested,
        "0.25,0.5,1.0",
        "3",
        &["--width-norm", "shared-scale"],
    );
    let modes = p("modes");
    let work = p("work");
    let o = run_modes(
        &nested,
        &data,
        &modes,
        &["--work-dir", &work, "--device-stream", "120"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = modes_json(&modes);
    let memory = &json["memory"];
    assert_eq!(memory["differing_weight_bytes"], 0, "{memory}");
    assert_eq!(memory["per_width_requant_bytes"], 0, "{memory}");
    assert!(
        memory["per_width_bias_bytes"].as_u64().unwrap() > 0,
        "{memory}"
    );
    let blob = &json["device"]["blob"];
    assert_eq!(blob["narrower_requant_bytes"], 0, "{blob}");
    assert_eq!(
        blob["full_int8_weight_bytes"], memory["full_weight_bytes"],
        "{blob} {memory}"
    );
    assert_eq!(
        blob["narrower_bias_bytes"], memory["per_width_bias_bytes"],
        "{blob} {memory}"
    );
    assert_eq!(json["device"]["switches"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(format!("{modes}/modes.md")).unwrap();
    assert!(md.contains("One weight blob"), "{md}");
    assert_eq!(blob["one_schedule"], false, "{blob}");

    // The widths sharing one schedule: the same windows' decisions on the device (the command
    // checks them against the host), in less flash.
    let one = p("one");
    let o = run_modes(
        &nested,
        &data,
        &one,
        &[
            "--work-dir",
            &work,
            "--device-stream",
            "120",
            "--one-schedule",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let json_one = modes_json(&one);
    let device_one = &json_one["device"];
    assert_eq!(device_one["blob"]["one_schedule"], true, "{device_one}");
    let flash = |d: &serde_json::Value| d["image_flash_bytes"].as_u64().unwrap();
    assert!(flash(device_one) < flash(&json["device"]), "{device_one}");
    // The full width's schedule at its strides serving every width: the least flash of the
    // three layouts, every window still as the host simulator decides it.
    let stride = p("stride");
    let o = run_modes(
        &nested,
        &data,
        &stride,
        &[
            "--work-dir",
            &work,
            "--device-stream",
            "120",
            "--full-stride",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let json_stride = modes_json(&stride);
    let device_stride = &json_stride["device"];
    assert_eq!(
        device_stride["blob"]["full_stride"], true,
        "{device_stride}"
    );
    assert!(flash(device_stride) < flash(device_one), "{device_stride}");
    // The table prices the widths as the full-stride image runs them: measured there, the
    // narrowest no longer at its own image's cost, the widths still in increasing order.
    assert!(
        json_stride["cost_unit"]
            .as_str()
            .unwrap()
            .contains("full-stride image")
    );
    let costs: Vec<u64> = json_stride["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["full_stride_instructions"].as_u64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|p| p[0] < p[1]), "{costs:?}");
    let own = json_stride["widths"][0]["instructions"].as_u64().unwrap();
    assert!(costs[0] > own, "{costs:?} against {own}");
    let o = run_modes(
        &nested,
        &data,
        &p("bad"),
        &["--device-stream", "10", "--full-stride", "--one-schedule"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let o = run_modes(&nested, &data, &p("bad"), &["--one-schedule"]);
    assert!(
        !o.status.success() && text(&o).contains("--device-stream"),
        "{}",
        text(&o)
    );

    // A network trained with a batch norm per width cannot share its weights: `train`
    // refuses the norm without widths, and the own-norm widths compile with their own.
    let o = kinglet(&[
        "train",
        "--arch",
        "kinglet-lite",
        "--width-norm",
        "shared-scale",
        "--data",
        &data,
        "--out",
        &p("x.kgl"),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("--widths"), "{}", text(&o));
}

/// Quantisation-aware training of a nested network (`train --qat --init` a shared-scale
/// model): its widths quantise with the recorded ranges and still read one int8 blob on the
/// device (the command checks every window against the host simulator); 4-bit widths
/// (`modes --scheme w4a8`) quantise each with weights of its own and run on the device too.
#[test]
fn nested_networks_train_quantisation_aware_and_quantise_to_four_bits() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (nested, qat) = (p("shared.kgl"), p("qat.kgl"));
    let data = har();
    train_nested(&nested, "0.5,1.0", "4", &["--width-norm", "shared-scale"]);
    let qat_args = |extra: &[&str]| {
        let mut args = vec![
            "train", "--qat", "--init", &nested, "--data", &data, "--epochs", "1", "--seed", "4",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = qat_args(&["--out", &qat, "--quiet"]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let work = p("work");
    let modes = p("modes");
    let o = run_modes(
        &qat,
        &data,
        &modes,
        &["--work-dir", &work, "--device-stream", "60"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = modes_json(&modes);
    assert_eq!(json["scheme"], "int8");
    assert_eq!(json["memory"]["differing_weight_bytes"], 0, "{json}");
    assert!(json["device"]["blob"].is_object(), "{json}");
    for w in json["widths"].as_array().unwrap() {
        let graph = read_tflite_file(Path::new(w["model"].as_str().unwrap())).unwrap();
        let ptq = &graph.metadata["kinglet.ptq"];
        // The full width quantises with its QAT ranges; the narrower width calibrates, and
        // its activations are then the full width's times its factors.
        if w["width"] == 1.0 {
            assert!(ptq.contains("quantisation-aware training"), "{ptq}");
        }
        assert!(!ptq.contains("centred"), "logits stay uncentred: {ptq}");
    }

    let four = p("four");
    let o = run_modes(
        &qat,
        &data,
        &four,
        &[
            "--work-dir",
            &work,
            "--device-stream",
            "60",
            "--scheme",
            "w4a8",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = modes_json(&four);
    assert_eq!(json["scheme"], "w4a8");
    assert!(json["device"]["blob"].is_null(), "{json}");
    assert!(
        json["memory"]["differing_weight_bytes"].as_u64().unwrap() > 0,
        "{json}"
    );
    for w in json["widths"].as_array().unwrap() {
        let graph = read_tflite_file(Path::new(w["model"].as_str().unwrap())).unwrap();
        let conv = graph
            .ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::Conv2D { .. }))
            .unwrap();
        assert_eq!(graph.tensor(conv.inputs[1]).dtype, kinglet_graph::DType::I4);
    }

    // Bad input: one schedule without the int8 blob, a scheme modes does not take, 4-bit QAT.
    let o = run_modes(
        &qat,
        &data,
        &p("bad"),
        &[
            "--device-stream",
            "10",
            "--one-schedule",
            "--scheme",
            "w4a8",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("--scheme int8"),
        "{}",
        text(&o)
    );
    let o = run_modes(&qat, &data, &p("bad2"), &["--scheme", "float16"]);
    assert!(
        !o.status.success() && text(&o).contains("float16"),
        "{}",
        text(&o)
    );
    let args = qat_args(&["--bits", "4", "--out", &p("q4.kgl")]);
    let o = kinglet(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !o.status.success() && text(&o).contains("modes --scheme w4a8"),
        "{}",
        text(&o)
    );
}
