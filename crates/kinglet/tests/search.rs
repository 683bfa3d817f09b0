//! `kinglet search` on the UCI-HAR fixture with a tiny space (each trial a fraction of a second
//! of training and a few seconds in QEMU): Ctrl-C then rerun resumes without redoing finished
//! trials; a worker killed with SIGKILL mid-trial loses nothing (its trial completes in
//! another worker, once); three worker processes share a study on a real PostgreSQL server
//! the test starts and stops; bad spaces, impossible limits and unreachable databases get
//! clear errors and leave the study as it was.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kinglet_search::search::{PoolOptions, SearchJob};
use kinglet_search::storage::{self, Trial, TrialState};
use kinglet_search::study::{Limits, Objective};

mod common;
use common::{har, kinglet, run_ok, text};

const SPACE: &str = r#"name = "tiny"
window = 128

[[inputs]]
name = "total-acc"
[[inputs.branch]]
name = "total_acc"
channels = ["total_acc_x", "total_acc_y", "total_acc_z"]

[blocks]
count = [1, 2]
filters = [4, 8]
kernel = [3, 5]
pool = [2, 4]

[training]
learning_rate = 0.005
epochs = 2
"#;

fn space(dir: &Path) -> PathBuf {
    let path = dir.join("space.toml");
    std::fs::write(&path, SPACE).unwrap();
    path
}

/// The arguments of a search over the tiny space: `trials` candidates, two per generation,
/// rungs of 1 and 2 epochs.
fn search_args(space: &Path, out: &Path, trials: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "search",
        "--data",
        &har(),
        "--space",
        &space.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--objectives",
        "accuracy,weight-bytes,instructions",
        "--trials",
        &trials.to_string(),
        "--population",
        "2",
        "--min-epochs",
        "1",
        "--eta",
        "2",
        "--workers",
        "1",
        "--lease",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The same search as a library job (to create a study without running workers).
fn job(space: &Path, out: &Path, trials: usize, study: Option<String>) -> SearchJob {
    SearchJob {
        data: har(),
        validation: None,
        test: None,
        space: space.to_path_buf(),
        out: out.to_path_buf(),
        study,
        objectives: vec![
            Objective::Accuracy,
            Objective::WeightBytes,
            Objective::Instructions,
        ],
        limits: Limits::default(),
        board: "apollo3".into(),
        candidates: trials,
        hours: None,
        population: 2,
        min_epochs: 1,
        eta: 2,
        seed: 1,
        pool: PoolOptions {
            workers: 1,
            lease: Duration::from_secs(3),
            work_dir: kinglet_compile::firmware::default_work_dir(),
        },
        refit: None,
    }
}

fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kinglet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .expect("start kinglet")
}

fn trials(study: &str) -> Vec<Trial> {
    storage::open(study).unwrap().trials().unwrap()
}

/// Polls the study until `ready` holds (or fails the test after two minutes).
fn wait_for(study: &str, what: &str, ready: impl Fn(&[Trial]) -> bool) -> Vec<Trial> {
    let started = Instant::now();
    loop {
        if let Ok(mut s) = storage::open(study)
            && let Ok(t) = s.trials()
            && ready(&t)
        {
            return t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every trial finished once: done, claimed by one worker once, each (generation, rung,
/// slot) once; and the plan is complete (the rung-1 promotions of every generation).
fn assert_complete(all: &[Trial], candidates: usize) {
    let mut keys: Vec<(i64, i64, i64)> =
        all.iter().map(|t| (t.generation, t.rung, t.slot)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all.len());
    assert!(all.iter().all(|t| t.state == TrialState::Done), "{all:#?}");
    assert_eq!(all.iter().filter(|t| t.rung == 0).count(), candidates);
    // Two candidates a generation, eta 2: one promoted per generation.
    assert_eq!(
        all.iter().filter(|t| t.rung == 1).count(),
        candidates.div_ceil(2)
    );
}

#[test]
fn ctrl_c_then_rerun_resumes_without_redoing_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let space = space(dir.path());
    let out = dir.path().join("out");
    let study = out.join("study.sqlite").display().to_string();
    let args = search_args(&space, &out, 4, &[]);
    let mut child = spawn(&args, &dir.path().join("first.log"));
    let before = wait_for(&study, "a finished trial and a running one", |t| {
        t.iter().any(|t| t.state == TrialState::Done)
            && t.iter().any(|t| t.state == TrialState::Running)
    });
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert_eq!(code, Some(130), "{log}");
    assert!(log.contains("returned to study"), "{log}");
    // The trial in hand went back to the queue; the finished ones stayed.
    let after = trials(&study);
    assert!(
        after.iter().all(|t| t.state != TrialState::Running),
        "{after:#?}"
    );
    let done: Vec<&Trial> = before
        .iter()
        .filter(|t| t.state == TrialState::Done)
        .collect();
    for d in &done {
        assert!(after.contains(d));
    }

    let printed = run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let all = trials(&study);
    assert_complete(&all, 4);
    // Trials finished before the interrupt were not run again.
    for d in &done {
        let now = all.iter().find(|t| t.id == d.id).unwrap();
        assert_eq!(now, *d);
        assert_eq!(now.attempts, 1);
    }
    // The results: front files, plots, and each front model as architecture, .kgl, .tflite.
    assert!(printed.contains("front of"), "{printed}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("front.json")).unwrap()).unwrap();
    let front = report["front"].as_array().unwrap();
    assert!(!front.is_empty());
    for m in front {
        for key in ["architecture_file", "model_file", "tflite_file"] {
            let file = m[key].as_str().unwrap();
            assert!(Path::new(file).exists(), "{file}");
        }
        let arch = m["architecture_file"].as_str().unwrap();
        kinglet_train::Architecture::resolve(arch).unwrap();
        let test = m["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&test));
        assert_eq!(m["measured"]["epochs"], 2);
        assert!(m["measured"]["instructions"].as_u64().unwrap() > 1000);
    }
    let md = std::fs::read_to_string(out.join("front.md")).unwrap();
    assert!(md.contains("kinglet train --arch"), "{md}");
    for svg in [
        "accuracy-vs-weight-bytes.svg",
        "accuracy-vs-instructions.svg",
        "accuracy-vs-energy.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
    }
    // A rerun of a finished study measures nothing new.
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(trials(&study), all);

    // --refit: the same front, each model also retrained on training + validation windows,
    // measured again in QEMU and scored on the test split; the study is left as it was.
    let refit_args = search_args(&space, &out, 4, &["--refit"]);
    run_ok(&refit_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(trials(&study), all);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("front.json")).unwrap()).unwrap();
    let refitted = report["front"].as_array().unwrap();
    assert_eq!(refitted.len(), front.len());
    for m in refitted {
        let r = &m["refit"];
        for key in ["model_file", "tflite_file"] {
            let file = r[key].as_str().unwrap();
            assert!(Path::new(file).exists(), "{file}");
        }
        let test = r["measured"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&test));
        assert_eq!(r["measured"]["epochs"], m["measured"]["epochs"]);
        assert_eq!(r["measured"]["architecture"], m["measured"]["architecture"]);
        assert!(r["measured"]["instructions"].as_u64().unwrap() > 1000);
        let train = r["commands"][0].as_str().unwrap();
        assert!(train.contains("--merge-val"), "{train}");
    }
    let md = std::fs::read_to_string(out.join("front.md")).unwrap();
    assert!(md.contains("Refitted"), "{md}");

    // --refit-schedule: the refit trains on another file's [training] (3 epochs here), from
    // an architecture file of its own that `kinglet train` reads; a file without a usable
    // [training] is refused with its name and line, and the study is left as it was.
    let bad = dir.path().join("bad-schedule.toml");
    std::fs::write(&bad, "name = \"x\"\n[training]\nepochs = \"three\"\n").unwrap();
    let o = kinglet(
        &search_args(
            &space,
            &out,
            4,
            &["--refit-schedule", &bad.display().to_string()],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("bad-schedule.toml:2"), "{}", text(&o));
    assert_eq!(trials(&study), all);
    let longer = dir.path().join("longer.toml");
    std::fs::write(&longer, SPACE.replace("epochs = 2", "epochs = 3")).unwrap();
    let longer_args = search_args(
        &space,
        &out,
        4,
        &["--refit-schedule", &longer.display().to_string()],
    );
    run_ok(&longer_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(trials(&study), all);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("front.json")).unwrap()).unwrap();
    for m in report["front"].as_array().unwrap() {
        let r = &m["refit"];
        assert_eq!(r["measured"]["epochs"], 3);
        assert_eq!(
            m["measured"]["epochs"], 2,
            "the searched model is unchanged"
        );
        let train = r["commands"][0].as_str().unwrap();
        assert!(
            train.contains("--epochs 3") && train.contains(".refit.toml"),
            "{train}"
        );
        let arch_file = train
            .split_whitespace()
            .skip_while(|w| *w != "--arch")
            .nth(1)
            .unwrap();
        let arch = kinglet_train::Architecture::resolve(arch_file).unwrap();
        assert_eq!(arch.training.epochs, 3);
    }
}

#[test]
fn a_worker_killed_mid_trial_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let space = space(dir.path());
    let out = dir.path().join("out");
    let study = out.join("study.sqlite").display().to_string();
    kinglet_search::search::start(&job(&space, &out, 2, None)).unwrap();
    let worker = |log: &str| {
        spawn(
            &[
                "search",
                "worker",
                "--study",
                &study,
                "--workers",
                "1",
                "--lease",
                "3",
            ]
            .map(String::from),
            &dir.path().join(log),
        )
    };
    let mut first = worker("killed.log");
    let pid = first.id().to_string();
    let taken = wait_for(&study, "the first worker's trial", |t| {
        t.iter().any(|t| {
            t.state == TrialState::Running
                && t.worker
                    .as_deref()
                    .is_some_and(|w| w.contains(&format!(":{pid}:")))
        })
    });
    let taken = taken
        .into_iter()
        .find(|t| t.state == TrialState::Running)
        .unwrap();
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    let _ = first.wait();
    let second = worker("second.log");
    let output = second.wait_with_output().unwrap();
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(output.status.success(), "{log}");
    let all = trials(&study);
    assert_complete(&all, 2);
    let again = all.iter().find(|t| t.id == taken.id).unwrap();
    assert_eq!(again.attempts, 2, "{again:#?}");
    assert!(
        !again
            .worker
            .as_deref()
            .unwrap()
            .contains(&format!(":{pid}:"))
    );
    // Every other trial was claimed once.
    assert!(
        all.iter()
            .filter(|t| t.id != taken.id)
            .all(|t| t.attempts == 1)
    );
}

#[test]
fn three_workers_share_a_postgres_study() {
    if kinglet_search::local_postgres::binaries().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("PostgreSQL is not installed (scripts/setup.sh installs it): skipped");
        return;
    }
    let server = kinglet_search::local_postgres::LocalPostgres::start().unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let space = space(dir.path());
    let out = dir.path().join("out");
    kinglet_search::search::start(&job(&space, &out, 6, Some(url.clone()))).unwrap();
    let workers: Vec<Child> = (0..3)
        .map(|k| {
            spawn(
                &[
                    "search",
                    "worker",
                    "--study",
                    &url,
                    "--workers",
                    "1",
                    "--lease",
                    "10",
                ]
                .map(String::from),
                &dir.path().join(format!("worker{k}.log")),
            )
        })
        .collect();
    for (k, w) in workers.into_iter().enumerate() {
        let status = w.wait_with_output().unwrap().status;
        let log = std::fs::read_to_string(dir.path().join(format!("worker{k}.log"))).unwrap();
        assert!(status.success(), "worker {k}: {log}");
    }
    let all = trials(&url);
    assert_complete(&all, 6);
    assert!(all.iter().all(|t| t.attempts == 1), "{all:#?}");
    // The search command on the finished shared study only writes its front.
    let args = search_args(&space, &out, 6, &["--study", &url]);
    let printed = run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(printed.contains("front of"), "{printed}");
    assert_eq!(trials(&url), all);
}

#[test]
fn bad_spaces_impossible_limits_and_unreachable_studies_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = space(dir.path());
    let out = dir.path().join("out");
    let study = out.join("study.sqlite");
    // A study that exists, with its settings.
    kinglet_search::search::start(&job(&good, &out, 2, None)).unwrap();
    let settings = storage::open(&study.display().to_string())
        .unwrap()
        .settings(None)
        .unwrap();

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, SPACE.replace("kernel = [3, 5]", "kernel = [3, 0]")).unwrap();
    let o = kinglet(
        &search_args(&bad, &out, 2, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("{}:13:10: blocks.kernel", bad.display())),
        "{}",
        text(&o)
    );

    let o = kinglet(
        &search_args(&good, &out, 2, &["--max-flash", "40"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--max-flash 40: no candidate of"),
        "{}",
        text(&o)
    );
    // Other settings on the same study are refused, naming what differs.
    let o = kinglet(
        &search_args(&good, &out, 3, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--trials differs"), "{}", text(&o));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://kinglet@127.0.0.1:{port}/study");
    let o = kinglet(&["search", "worker", "--study", &url]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("study {url}: cannot connect")),
        "{}",
        text(&o)
    );
    // The study is as it was: same settings, no trials.
    let mut s = storage::open(&study.display().to_string()).unwrap();
    assert_eq!(s.settings(None).unwrap(), settings);
    assert!(s.trials().unwrap().is_empty());
}

/// The tiny space with per-block weight widths: each block 8 or 4 bits, the head 8 or 2.
fn mixed_space(dir: &Path) -> PathBuf {
    let path = dir.join("mixed.toml");
    let text = SPACE
        .replace("window = 128", "window = 128\nprecision = [\"mixed\"]")
        .replace("pool = [2, 4]", "pool = [2, 4]\nweight_bits = [8, 4]")
        .replace("[training]", "[head]\nweight_bits = [8, 2]\n\n[training]");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_mixed_precision_front_names_its_widths_and_its_quantize_command_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let space = mixed_space(dir.path());
    let out = dir.path().join("out");
    let args = search_args(&space, &out, 2, &[]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("front.json")).unwrap()).unwrap();
    let front = report["front"].as_array().unwrap();
    assert!(!front.is_empty());
    for m in front {
        let precision = m["measured"]["precision"].as_str().unwrap();
        let bits = precision.strip_prefix("mixed:").expect(precision);
        // One width per weighted layer: each block's convolution, then the output layer.
        let widths: Vec<&str> = bits.split(',').collect();
        assert!(widths.len() >= 2, "{precision}");
        assert!(
            widths.iter().all(|b| ["8", "4", "2"].contains(b)),
            "{precision}"
        );
        let arch = std::fs::read_to_string(m["architecture_file"].as_str().unwrap()).unwrap();
        assert!(
            arch.contains(&format!("--scheme mixed --bits {bits}")),
            "{arch}"
        );
        // The printed quantize command rebuilds the front's .tflite byte for byte.
        let commands: Vec<&str> = m["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let quantize = commands
            .iter()
            .find(|c| c.starts_with("kinglet quantize"))
            .unwrap();
        assert!(
            quantize.contains(&format!("--scheme mixed --bits {bits} ")),
            "{quantize}"
        );
        let rebuilt = dir.path().join("rebuilt.tflite");
        let tflite = m["tflite_file"].as_str().unwrap();
        let argv: Vec<String> = quantize
            .split_whitespace()
            .skip(1)
            .map(|w| {
                if w == tflite {
                    rebuilt.display().to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        run_ok(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            std::fs::read(&rebuilt).unwrap(),
            std::fs::read(tflite).unwrap()
        );
    }
}

#[test]
fn kinglet_report_shows_a_search_front_with_the_numbers_of_front_json() {
    let dir = tempfile::tempdir().unwrap();
    let space = space(dir.path());
    let out = dir.path().join("tiny-search");
    let args = search_args(&space, &out, 2, &[]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let report_dir = dir.path().join("report");
    run_ok(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    let front: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty());
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    assert!(
        md.contains("\n## Architecture search: tiny-search\n"),
        "{md}"
    );
    assert!(
        md.contains("| candidate | precision | val acc | test acc | weight B | flash B | RAM B | instructions | energy µJ | reproduce |"),
        "{md}"
    );
    for m in models {
        let x = &m["measured"];
        let commands: Vec<&str> = m["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(commands.len(), 3);
        let row = format!(
            "| {} | {} | {:.2} % | {:.2} % | {} | {} | {} | {} | {:.3} | `{}` |",
            x["architecture"].as_str().unwrap(),
            x["precision"].as_str().unwrap(),
            x["accuracy"].as_f64().unwrap() * 100.0,
            m["test_accuracy"].as_f64().unwrap() * 100.0,
            x["weight_bytes"].as_u64().unwrap(),
            x["flash_bytes"].as_u64().unwrap(),
            x["ram_bytes"].as_u64().unwrap(),
            x["instructions"].as_u64().unwrap(),
            x["energy_uj"].as_f64().unwrap(),
            commands.join(" && ")
        );
        assert!(md.contains(&row), "{row}\nnot in\n{md}");
        let cell = format!(
            "<td>{}</td><td>{}</td><td>{:.2} %</td>",
            x["architecture"].as_str().unwrap(),
            x["precision"].as_str().unwrap(),
            x["accuracy"].as_f64().unwrap() * 100.0
        );
        assert!(html.contains(&cell), "{cell}");
        assert!(html.contains(&format!("<td>{}</td>", x["instructions"])));
    }
    // The front's three plots: inline in the page, and as files beside report.md, the same
    // SVG the search wrote.
    assert_eq!(html.matches("<svg").count(), 3, "{html}");
    for file in [
        "accuracy-vs-weight-bytes.svg",
        "accuracy-vs-instructions.svg",
        "accuracy-vs-energy.svg",
    ] {
        let copy = format!("tiny-search-{file}");
        assert!(md.contains(&format!("]({copy})")), "{md}");
        assert_eq!(
            std::fs::read_to_string(report_dir.join(&copy)).unwrap(),
            std::fs::read_to_string(out.join(file)).unwrap()
        );
    }
    assert!(html.trim_end().ends_with("</html>"));
    // front.json itself is as good as its folder; anything else is refused by name.
    let again = dir.path().join("again");
    run_ok(&[
        "report",
        out.join("front.json").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(again.join("report.md")).unwrap(),
        md
    );
    let o = kinglet(&[
        "report",
        space.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains(space.to_str().unwrap()), "{}", text(&o));
}
