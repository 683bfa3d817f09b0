//! `kinglet pipeline` as a library call: the whole flow on a data folder, as a user would run it step by step —
//! rebuild windows, train the Big and Little networks and kinglet's default, evaluate them on
//! the official test windows, quantise to int8, profile on the emulated Cortex-M4 (and on the
//! Cortex-M3 and RISC-V cores, which price the boards built on them), run the calibrated
//! big–little cascade and write the report.
//!
//! Every step is this same binary run with the arguments printed beside it, so each number in
//! the summary can be reproduced by copying one line. A step whose output already exists is
//! skipped (rerun with `--force`), so an interrupted pipeline resumes where it stopped.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::steps::{self, Runner, which, write_atomic};

/// Everything `kinglet pipeline` is told.
#[derive(Debug, Clone)]
pub struct PipelineJob {
    /// The `kinglet` executable every step runs.
    pub kinglet: PathBuf,
    /// Folder holding `hapt.zip` (or an unpacked `hapt/`) and `uci-har/UCI HAR Dataset/`.
    pub data: PathBuf,
    /// Where models, evaluations, profiles and the report go.
    pub out: PathBuf,
    /// Training epochs for every network (default: each architecture's own schedule).
    pub epochs: Option<usize>,
    pub seed: u64,
    /// Skip the firmware steps (QEMU profile) even when QEMU is installed.
    pub no_firmware: bool,
    /// Rerun steps whose outputs already exist.
    pub force: bool,
}

/// The little networks of the seed's 1B6S strategy, one per activity.
const LITTLES: [&str; 6] = [
    "little0", "little1", "little2", "little3", "little4", "little5",
];

/// The cores besides the Cortex-M4 whose boards the energy tables price: `profile --target`,
/// the core name `cascade --cost KEY@CORE=…` takes (the boards' `core`, see
/// `kinglet_adapt::energy::core_id`), and the QEMU the profile needs.
const OTHER_CORES: [(&str, &str, &str); 2] = [
    ("cortex-m3", "cortex-m3", "qemu-system-arm"),
    ("riscv32", "rv32imc", "qemu-system-riscv32"),
];

/// Windows on which Big also runs after the signature check notices a change: on continuous
/// streams the noticing window straddles the change (see BENCHMARKS.md, issue 11).
const SIGNATURE_SETTLE: &str = "1";

/// The checks a profile record measured (`checks.<name>` set), read once per profile.
fn measured_checks(profile: &Path) -> Vec<String> {
    let json = std::fs::read_to_string(profile).ok();
    let json = json.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    json.as_ref()
        .and_then(|j| j["checks"].as_object())
        .map(|checks| {
            (checks.iter())
                .filter(|(_, v)| v.is_u64())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `kinglet pipeline`: every step as a `kinglet` command (see [`steps`]),
/// the summary table written to `out`; steps that may fail without stopping the rest (the
/// firmware ones, the compression variants) are named in the final error.
pub fn run(args: &PipelineJob, summary: &mut dyn Write) -> Result<()> {
    let hapt = ["hapt.zip", "hapt"]
        .iter()
        .map(|name| args.data.join(name))
        .find(|p| p.exists())
        .with_context(|| format!("no hapt.zip or hapt/ in {}", args.data.display()))?;
    let uci = args.data.join("uci-har");
    if !uci.join("UCI HAR Dataset").exists() {
        bail!("no uci-har/UCI HAR Dataset in {}", args.data.display());
    }
    let out = &args.out;
    for sub in ["data", "models", "eval", "profile", "cascade", "report"] {
        std::fs::create_dir_all(out.join(sub))
            .with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    let mut runner = Runner::new(args.kinglet.clone(), args.force);
    let hapt_spec = format!("hapt:{}", hapt.display());
    let test_spec = format!("uci-har:{}:test", uci.display());
    let val_stream = format!("{hapt_spec}:val:stream");
    let test_stream = format!("{hapt_spec}:test:stream");
    let os = steps::args;

    let compare = out.join("data/compare-official.json");
    runner.run(
        "rebuilt HAPT windows against the official UCI-HAR test windows",
        &compare,
        &os(&[
            "data",
            "compare-official",
            "--uci",
            &uci.display().to_string(),
            "--hapt",
            &hapt.display().to_string(),
            "--json",
        ]),
        Some(&compare),
    )?;

    let seed = args.seed.to_string();
    let epochs = args.epochs.map(|e| e.to_string());
    let mut trained = Vec::new();
    for arch in ["big3", "kinglet", "kinglet-lite", "dual"]
        .into_iter()
        .chain(LITTLES)
    {
        let model = out.join(format!("models/{arch}.kgl"));
        let mut argv = os(&[
            "train",
            "--arch",
            arch,
            "--data",
            &format!("{hapt_spec}:train"),
            // All 21 UCI training subjects, as the seed trained; the presets average the last
            // epochs' weights instead of picking one on a validation split.
            "--merge-val",
            "--seed",
            &seed,
            "--out",
            &model.display().to_string(),
        ]);
        if let Some(e) = &epochs {
            argv.extend(os(&["--epochs", e]));
        }
        runner.run(&format!("train {arch}"), &model, &argv, None)?;
        let eval = out.join(format!("eval/{arch}.json"));
        runner.run(
            &format!("evaluate {arch} on the official test windows"),
            &eval,
            &os(&[
                "eval",
                "--model",
                &model.display().to_string(),
                "--data",
                &test_spec,
                "--json",
            ]),
            Some(&eval),
        )?;
        trained.push((arch, model));
    }

    let mut int8 = Vec::new();
    for (arch, model) in &trained {
        let q = out.join(format!("models/{arch}.int8.tflite"));
        runner.run(
            &format!("int8 post-training quantisation of {arch}"),
            &q,
            &os(&[
                "quantize",
                "--model",
                &model.display().to_string(),
                "--data",
                &format!("{hapt_spec}:train"),
                "--scheme",
                "int8",
                "--out",
                &q.display().to_string(),
            ]),
            None,
        )?;
        int8.push((*arch, q.clone()));
        // `kinglet eval` scores a Dual's window pairs from the .kgl only; its int8 file is
        // scored by the 1B1D stream evaluation below.
        if *arch == "dual" {
            continue;
        }
        let eval = out.join(format!("eval/{arch}.int8.json"));
        runner.run(
            &format!("evaluate int8 {arch} on the official test windows"),
            &eval,
            &os(&[
                "eval",
                "--model",
                &q.display().to_string(),
                "--data",
                &test_spec,
                "--json",
            ]),
            Some(&eval),
        )?;
    }

    let qemu = !args.no_firmware && which("qemu-system-arm");
    let mut costs = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    if qemu {
        for (arch, q) in &int8 {
            let profile = out.join(format!("profile/{arch}.json"));
            let profiled = runner.run(
                &format!("profile int8 {arch} on the emulated Cortex-M4F"),
                &profile,
                &os(&[
                    "profile",
                    &q.display().to_string(),
                    "--target",
                    "cortex-m4",
                    "--json",
                ]),
                Some(&profile),
            );
            // A firmware output that differs from the host is a finding to report, not a reason
            // to drop the remaining steps: keep going, fail at the end.
            if let Err(e) = profiled {
                eprintln!("     {e:#}");
                failed.push(format!("profile {arch}"));
                continue;
            }
            let checks = measured_checks(&profile);
            costs.push((*arch, None, profile, checks));
        }
        for (target, core, emulator) in OTHER_CORES {
            if !which(emulator) {
                eprintln!("{emulator} not found: no {target} profiles, its boards' energy unknown");
                continue;
            }
            for (arch, q) in &int8 {
                let profile = out.join(format!("profile/{arch}.{target}.json"));
                let profiled = runner.run(
                    &format!("profile int8 {arch} on the emulated {target}"),
                    &profile,
                    &os(&[
                        "profile",
                        &q.display().to_string(),
                        "--target",
                        target,
                        "--json",
                    ]),
                    Some(&profile),
                );
                if let Err(e) = profiled {
                    eprintln!("     {e:#}");
                    failed.push(format!("profile {arch} on {target}"));
                    continue;
                }
                let checks = measured_checks(&profile);
                costs.push((*arch, Some(core), profile, checks));
            }
        }
    } else {
        eprintln!(
            "qemu-system-arm not found (or --no-firmware): firmware profiles and measured energy skipped"
        );
    }

    let find = |arch: &str| {
        int8.iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, p)| p.clone())
    };
    // `--cost KEY=…` from the Cortex-M4 profile of `arch`, and `--cost KEY@CORE=…` from each
    // other core's, so every board is priced by its own core's counts.
    // The checks (signature, L1 distance) come from the harness's `checks` record, which a
    // core's application may not measure: such a core's boards then show the check unknown.
    let cost_args = |key: &str, arch: &str| -> Vec<OsString> {
        let mut argv = Vec::new();
        let is_check = matches!(key, "signature" | "l1_distance");
        for (_, core, p, checks) in costs.iter().filter(|(a, ..)| *a == arch) {
            if is_check && !checks.iter().any(|c| c == key) {
                continue;
            }
            let key = match core {
                None => key.to_string(),
                Some(core) => format!("{key}@{core}"),
            };
            argv.extend(os(&["--cost", &format!("{key}={}", p.display())]));
        }
        argv
    };
    let littles: Vec<String> = LITTLES
        .iter()
        .filter_map(|l| int8.iter().find(|(a, _)| a == l))
        .map(|(_, p)| p.display().to_string())
        .collect();
    let mut runs = Vec::new();
    // Savings are counted against kinglet's int8 Big-3IN on every window, whichever model is
    // the cascade's Big.
    let reference = cost_args("reference", "big3");
    // Strategy, its Big, and what it needs beyond it.
    let dual = find("dual");
    let plan: [(&str, &str); 5] = [
        ("big-only", "big3"),
        ("1b6s", "big3"),
        ("1b1d", "big3"),
        ("1bdd", "big3"),
        // The signature check needs no little model, so the Big may be the stronger
        // kinglet-lite: its accuracy is the headroom for the windows the check lets pass.
        ("signature", "kinglet-lite"),
    ];
    for (strategy, big_arch) in plan {
        let Some(big) = find(big_arch) else { continue };
        let record = out.join(format!("cascade/{strategy}.json"));
        let summary = out.join(format!("cascade/{strategy}.summary.json"));
        let mut argv = cascade_argv(strategy, &big, &test_spec, &record);
        // Thresholds calibrated on the validation subjects. The signature check's six
        // per-activity thresholds get the tighter budget: with three subjects, 0.5 pp lets one
        // posture threshold drift high on some trainings (see BENCHMARKS.md).
        let budget = if strategy == "signature" {
            "0.25pp"
        } else {
            "0.5pp"
        };
        if strategy == "1b1d" {
            let Some(d) = &dual else { continue };
            argv.extend(os(&["--dual", &d.display().to_string()]));
            argv.extend(cost_args("dual", "dual"));
        }
        match strategy {
            "1b6s" => argv.extend(os(&["--little", &littles.join(",")])),
            // Calibrated on the continuous stream of the validation subjects, as a device
            // sees them: windows on a fixed grid that straddle changes and unlabelled stretches.
            "1b1d" | "1bdd" | "signature" => {
                argv.extend(os(&["--budget", budget, "--validation", &val_stream]))
            }
            _ => {}
        }
        if strategy == "signature" {
            argv.extend(os(&["--settle", SIGNATURE_SETTLE]));
        }
        // The harness measures the checks beside the model, in the same image.
        for key in ["big", "signature", "l1_distance"] {
            argv.extend(cost_args(key, big_arch));
        }
        argv.extend(reference.iter().cloned());
        if strategy == "1b6s" {
            for l in LITTLES {
                argv.extend(cost_args(l, l));
            }
        }
        runner.run(
            &format!("stream evaluation, strategy {strategy} (Big: {big_arch})"),
            &summary,
            &argv,
            Some(&summary),
        )?;
        runs.push(record);
    }
    // The Big alone and the calibrated signature cascade on continuous streams: the
    // validation subjects' (where the thresholds were chosen) and the test subjects' (never
    // seen in training or calibration).
    if let Some(lite) = find("kinglet-lite") {
        for (stream_name, stream_spec) in
            [("val-stream", &val_stream), ("test-stream", &test_stream)]
        {
            for strategy in ["big-only", "signature"] {
                let name = format!("{strategy}.{stream_name}");
                let record = out.join(format!("cascade/{name}.json"));
                let summary = out.join(format!("cascade/{name}.summary.json"));
                let mut argv = cascade_argv(strategy, &lite, stream_spec, &record);
                if strategy == "signature" {
                    argv.extend(os(&[
                        "--budget",
                        "0.25pp",
                        "--validation",
                        &val_stream,
                        "--settle",
                        SIGNATURE_SETTLE,
                    ]));
                }
                for key in ["big", "signature"] {
                    argv.extend(cost_args(key, "kinglet-lite"));
                }
                argv.extend(reference.iter().cloned());
                runner.run(
                    &format!(
                        "stream evaluation on the {stream_name}, {strategy} (Big: kinglet-lite)"
                    ),
                    &summary,
                    &argv,
                    Some(&summary),
                )?;
                runs.push(record);
            }
        }
    }
    // The calibrated signature cascade, 1B6S and 1B1D on the device: the int8 models compiled
    // into one image in QEMU, next to the host simulator on the first 200 test windows — on
    // the Cortex-M4 and on every other core whose QEMU is installed.
    let device_targets: Vec<&str> = std::iter::once("cortex-m4")
        .chain(
            OTHER_CORES
                .iter()
                .filter(|(_, _, emulator)| which(emulator))
                .map(|(target, _, _)| *target),
        )
        .collect();
    if qemu {
        let calibrated = |strategy: &str| {
            std::fs::read(out.join(format!("cascade/{strategy}.summary.json")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|v| v["spec"].clone())
        };
        let device_runs = device_targets.iter().flat_map(|target| {
            [
                ("signature", "kinglet-lite"),
                ("1b6s", "big3"),
                ("1b1d", "big3"),
            ]
            .map(|(strategy, big)| (*target, strategy, big))
        });
        for (target, strategy, big_arch) in device_runs {
            let Some(big) = find(big_arch) else { continue };
            let summary = out.join(format!("cascade/{strategy}.{target}.json"));
            let mut argv = os(&[
                "cascade",
                "--target",
                target,
                "--strategy",
                strategy,
                "--big",
                &big.display().to_string(),
                "--data",
                &test_spec,
                "--firmware-windows",
                "200",
                "--json",
            ]);
            // The thresholds the host calibration chose.
            let Some(spec) = calibrated(strategy) else {
                continue;
            };
            match strategy {
                "signature" => {
                    let Some(list) = spec["thresholds"].as_array() else {
                        continue;
                    };
                    let text: Vec<String> = list.iter().map(|t| t.to_string()).collect();
                    argv.extend(os(&["--thresholds", &text.join(",")]));
                    argv.extend(os(&["--settle", SIGNATURE_SETTLE]));
                }
                "1b1d" => {
                    let Some(d) = &dual else { continue };
                    argv.extend(os(&["--dual", &d.display().to_string()]));
                    if let Some(t) = spec["threshold"].as_f64() {
                        argv.extend(os(&["--threshold", &t.to_string()]));
                    }
                }
                _ => argv.extend(os(&["--little", &littles.join(",")])),
            }
            let ran = runner.run(
                &format!(
                    "firmware cascade {strategy} on the {target} in QEMU beside the host simulator"
                ),
                &summary,
                &argv,
                Some(&summary),
            );
            if let Err(e) = ran {
                eprintln!("     {e:#}");
                failed.push(format!("firmware cascade {strategy} on the {target}"));
            }
        }
    }
    if !runs.is_empty() {
        let report = out.join("report");
        let mut argv = os(&["report"]);
        argv.extend(runs.iter().map(OsString::from));
        argv.extend(os(&["--out", &report.display().to_string()]));
        runner.run("report", &report.join("report.html"), &argv, None)?;
    }

    // Every compression step and combination on the Big-3IN, each variant scored on the
    // official test windows and run in QEMU (`kinglet optimize`, its own table and plot).
    if let Some((_, big3)) = trained.iter().find(|(arch, _)| *arch == "big3") {
        let dir = out.join("optimize");
        let mut argv = os(&[
            "optimize",
            "--model",
            &big3.display().to_string(),
            "--data",
            &format!("{hapt_spec}:train"),
            "--eval",
            &test_spec,
            "--out",
            &dir.display().to_string(),
            // big3's convolutions have 4–32 filters: removing half costs 6 pp, a quarter 0.2.
            "--filters",
            "0.25",
            "--pipeline",
            "float,dynamic,float16,int8,prune+int8,prune-filters+int8,prune-filters+qat+int8,\
             qat+dynamic,qat+int8,separable+int8,graph-opt+int8",
        ]);
        if !qemu {
            argv.push("--no-firmware".into());
        }
        let ran = runner.run(
            "compression variants of big3",
            &dir.join("optimize.md"),
            &argv,
            None,
        );
        if let Err(e) = ran {
            eprintln!("     {e:#}");
            failed.push("compression variants of big3".into());
        }
    }

    let commands = out.join("commands.txt");
    write_atomic(&commands, (runner.log.join("\n") + "\n").as_bytes())?;
    print_summary(
        summary,
        out,
        &trained.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
    )?;
    eprintln!("every step's command is in {}", commands.display());
    if !failed.is_empty() {
        bail!("steps failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `kinglet cascade` of `strategy` with `big` over `data`, printing JSON and saving the full
/// record to `record`; callers add calibration and costs.
fn cascade_argv(strategy: &str, big: &Path, data: &str, record: &Path) -> Vec<OsString> {
    [
        "cascade",
        "--strategy",
        strategy,
        "--big",
        &big.display().to_string(),
        "--data",
        data,
        "--json",
        "--save",
        &record.display().to_string(),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// One line per model: float and int8 accuracy on the official test windows, and the
/// measured instruction count when the firmware step ran.
fn print_summary(w: &mut dyn Write, out: &Path, archs: &[&str]) -> Result<()> {
    writeln!(
        w,
        "{:12} {:>9} {:>9} {:>9} {:>13}",
        "model", "float", "int8", "macro-F1", "instructions"
    )?;
    for arch in archs {
        let read = |p: PathBuf| -> Option<serde_json::Value> {
            serde_json::from_slice(&std::fs::read(p).ok()?).ok()
        };
        let float = read(out.join(format!("eval/{arch}.json")));
        let int8 = read(out.join(format!("eval/{arch}.int8.json")));
        let profile = read(out.join(format!("profile/{arch}.json")));
        let pct = |v: &Option<serde_json::Value>, key: &str| {
            v.as_ref()
                .and_then(|v| v[key].as_f64())
                .map_or("-".to_string(), |a| format!("{:.2}", a * 100.0))
        };
        let instructions = profile
            .as_ref()
            .and_then(|p| p["instructions"].as_u64())
            .map_or("-".to_string(), |n| n.to_string());
        writeln!(
            w,
            "{arch:12} {:>8}% {:>8}% {:>9} {:>13}",
            pct(&float, "accuracy"),
            pct(&int8, "accuracy"),
            pct(&int8, "macro_f1"),
            instructions
        )?;
    }
    for strategy in [
        "big-only",
        "1b6s",
        "1b1d",
        "1bdd",
        "signature",
        "big-only.val-stream",
        "signature.val-stream",
        "big-only.test-stream",
        "signature.test-stream",
    ] {
        let path = out.join(format!("cascade/{strategy}.summary.json"));
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            writeln!(
                w,
                "cascade {strategy:21}: accuracy {:.2}%  big runs {}  little runs {}  energy/window {} µJ  inference {:.3}× int8 Big-3IN on every window",
                v["accuracy"].as_f64().unwrap_or(f64::NAN) * 100.0,
                v["big_runs"],
                v["little_runs"],
                v["energy_per_window_uj"],
                v["inference_ratio_to_reference"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            )?;
        }
    }
    Ok(())
}
