//! Kill tests (issue 17): `train`, `optimize`, `pipeline` and `search` are killed with SIGKILL
//! (the whole process group, children included) at random moments; after every kill each file
//! present must be whole, and rerunning the same command must finish with the outputs an
//! uninterrupted run writes (models and `.tflite` files byte for byte; for the search, the
//! same trials in its study and the same front.json but for wall times).
//!
//! `KINGLET_KILL_POINTS` sets the kills per command (default 3, what CI runs);
//! `KINGLET_KILL_SEED` the seed of the kill moments; `KINGLET_KILL_FIRMWARE=1` lets the
//! pipeline run its QEMU steps too (slow). The long run, as in BENCHMARKS.md:
//! `KINGLET_KILL_POINTS=25 cargo test --release -p kinglet --test kill -- --nocapture --test-threads 1`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{har, mnist, text, train};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic kill moments (SplitMix64), so a failing run can be replayed.
struct Moments(u64);
impl Moments {
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Starts `args` with standard error into `log` (shown when a run fails).
fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kinglet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        // Its own process group, so that the kill reaches the steps it runs as children.
        .process_group(0)
        .spawn()
        .expect("start kinglet")
}

fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let status = Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL -- {group}");
    let _ = child.wait();
}

/// Runs to the end; fails the test unless the command succeeds.
fn run_to_end(args: &[String]) -> Duration {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_kinglet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kinglet");
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    started.elapsed()
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<PathBuf, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                found.insert(relative, path);
            }
        }
    }
    found
}

/// `x.tmp` (kinglet's own atomic writes) or `.tmpXXXXXX` (the tempfile crate's).
fn is_temporary(relative: &Path) -> bool {
    relative.extension().is_some_and(|e| e == "tmp")
        || relative
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
}

/// SQLite's journal files beside a study (`study.sqlite-wal`, `-shm`): present while a
/// connection is open or after a kill, gone after a clean exit; the database is what is checked.
fn is_journal(relative: &Path) -> bool {
    relative
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .is_some_and(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.ends_with("-journal"))
}

/// Whether `path` is a whole file of its kind; `reference` is the same file of the
/// uninterrupted run, where it has one.
fn check_whole(path: &Path, reference: Option<&Path>) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let reference_bytes = reference.map(|r| std::fs::read(r).unwrap());
    let same_as_reference = || match &reference_bytes {
        Some(r) if *r != bytes => Err(format!(
            "differs from the uninterrupted run's ({} against {} bytes)",
            bytes.len(),
            r.len()
        )),
        _ => Ok(()),
    };
    if name.ends_with(".ckpt") {
        // Whole if the rerun resumes from it and ends with the reference model (checked).
        return if bytes.len() > 8 {
            Ok(())
        } else {
            Err("empty".into())
        };
    }
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        // A study is whole when SQLite opens it (recovering its journal) and its trials read.
        "sqlite" => kinglet_search::storage::open(&path.display().to_string())
            .and_then(|mut s| s.trials())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "kgl" => {
            kinglet_train::TrainedModel::from_bytes(&bytes).map_err(|e| e.to_string())?;
            same_as_reference()
        }
        "tflite" => {
            kinglet_graph::Graph::from_tflite_bytes(&bytes).map_err(|e| e.to_string())?;
            same_as_reference()
        }
        "json" => serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|_| ())
            .map_err(|e| format!("not JSON: {e}")),
        "svg"
            if !String::from_utf8_lossy(&bytes)
                .trim_end()
                .ends_with("</svg>") =>
        {
            Err("no closing </svg>".into())
        }
        "html"
            if !String::from_utf8_lossy(&bytes)
                .trim_end()
                .ends_with("</html>") =>
        {
            Err("no closing </html>".into())
        }
        // Text whose numbers vary with timing: as many lines as the uninterrupted run's.
        _ => match &reference_bytes {
            Some(r) if r.split(|b| *b == b'\n').count() != bytes.split(|b| *b == b'\n').count() => {
                Err("not as many lines as the uninterrupted run's".into())
            }
            _ => Ok(()),
        },
    }
}

/// Checks every file in `work` against `reference`; after a kill, `finished` is false and
/// temporary files and missing outputs are allowed.
fn check_outputs(work: &Path, reference: &Path, finished: bool, when: &str) {
    let expected = files(reference);
    let present = files(work);
    for (relative, path) in &present {
        if is_journal(relative) {
            continue;
        }
        if is_temporary(relative) {
            assert!(
                !finished,
                "{when}: temporary file {} left",
                relative.display()
            );
            continue;
        }
        let twin = expected.get(relative);
        assert!(
            twin.is_some() || relative.extension().is_some_and(|e| e == "ckpt"),
            "{when}: {} is not among the uninterrupted run's outputs",
            relative.display()
        );
        if let Err(why) = check_whole(path, twin.map(PathBuf::as_path)) {
            panic!("{when}: {}: {why}", relative.display());
        }
    }
    if finished {
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !is_journal(k) && !present.contains_key(*k))
            .collect();
        assert!(missing.is_empty(), "{when}: missing {missing:?}");
    }
}

/// Kills `args` (which write into `work`) `kills` times at random moments, checks the
/// outputs after each kill and after the final rerun.
fn kill_and_rerun(name: &str, args: &[String], work: &Path, kills: u64, seed: u64) {
    kill_and_rerun_with(name, args, work, kills, seed, &|| true, &|_, _| {});
}

/// [`kill_and_rerun`], where a kill waits at its moment until `may_kill` holds (or the run
/// ends), and `finally` checks the final outputs against the uninterrupted run's (work,
/// reference) before the reference is removed.
fn kill_and_rerun_with(
    name: &str,
    args: &[String],
    work: &Path,
    kills: u64,
    seed: u64,
    may_kill: &dyn Fn() -> bool,
    finally: &dyn Fn(&Path, &Path),
) {
    let reference = work.with_file_name(format!("{name}-uninterrupted"));
    let _ = std::fs::remove_dir_all(work);
    let _ = std::fs::remove_dir_all(&reference);
    std::fs::create_dir_all(work).unwrap();
    // The uninterrupted run writes into the same folder (paths inside reports match), then
    // moves aside.
    let full = run_to_end(args);
    std::fs::rename(work, &reference).unwrap();
    std::fs::create_dir_all(work).unwrap();
    let mut moments = Moments(seed);
    let (mut done, mut completed, mut attempts) = (0, 0, 0);
    let started = Instant::now();
    while done < kills {
        attempts += 1;
        assert!(attempts < 20 * kills + 20, "{name}: the kills never landed");
        let wait = full.mul_f64(moments.fraction());
        let log = work.with_file_name(format!("{name}.stderr"));
        let mut child = spawn(args, &log);
        std::thread::sleep(wait);
        while child.try_wait().unwrap().is_none() && !may_kill() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                status.success(),
                "{name}, run {attempts}: {status}: {stderr}"
            );
            // It finished first: the outputs must be complete; start over from nothing.
            check_outputs(work, &reference, true, &format!("{name}, run {attempts}"));
            completed += 1;
            std::fs::remove_dir_all(work).unwrap();
            std::fs::create_dir_all(work).unwrap();
            continue;
        }
        kill_group(&mut child);
        done += 1;
        let when = format!("{name}, kill {done} at {:.2} s", wait.as_secs_f64());
        check_outputs(work, &reference, false, &when);
    }
    run_to_end(args);
    check_outputs(work, &reference, true, &format!("{name}, final rerun"));
    finally(work, &reference);
    println!(
        "{name}: {done} kills (uninterrupted run {:.1} s; {completed} runs finished before \
         their kill), every rerun clean, final outputs equal; {:.0} s",
        full.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&reference);
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn kills() -> u64 {
    env_number("KINGLET_KILL_POINTS", 3)
}

#[test]
fn train_survives_kills() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("train");
    let model = work.join("lite.kgl");
    let history = work.join("history.json");
    let data = format!("{}:train", har());
    let args = strings(&[
        "train",
        "--arch",
        "kinglet-lite",
        "--data",
        &data,
        "--epochs",
        "40",
        "--seed",
        "3",
        "--quiet",
        "--history",
        history.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    kill_and_rerun(
        "train",
        &args,
        &work,
        kills(),
        env_number("KINGLET_KILL_SEED", 1),
    );
}

#[test]
fn optimize_survives_kills() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist("train");
    let model = dir.path().join("cnn.kgl");
    train("mnist-cnn", &data, model.to_str().unwrap());
    let work = dir.path().join("optimize");
    let args = strings(&[
        "optimize",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--pipeline",
        "float,dynamic,int8,qat+int8,prune+int8,w4a8,qat+w2a8,a16w8",
        "--windows",
        "40",
        "--no-firmware",
        "--out",
        work.to_str().unwrap(),
    ]);
    kill_and_rerun(
        "optimize",
        &args,
        &work,
        kills(),
        env_number("KINGLET_KILL_SEED", 1) + 1,
    );
}

#[test]
fn pipeline_survives_kills() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("pipeline");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-data/tests/fixtures");
    let mut args = strings(&[
        "pipeline",
        "--data",
        fixtures.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        work.to_str().unwrap(),
    ]);
    if env_number("KINGLET_KILL_FIRMWARE", 0) == 0 {
        args.push("--no-firmware".into());
    }
    kill_and_rerun(
        "pipeline",
        &args,
        &work,
        kills(),
        env_number("KINGLET_KILL_SEED", 1) + 2,
    );
}

/// A search's space for the kill test: the tiny space of tests/search.rs.
const SEARCH_SPACE: &str = r#"name = "tiny"
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

/// A JSON value without its wall times (`train_seconds`, `measure_seconds`), which no two
/// runs share.
fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(map) => {
            map.remove("train_seconds");
            map.remove("measure_seconds");
            for x in map.values_mut() {
                *x = without_timings(x.take());
            }
        }
        serde_json::Value::Array(items) => {
            for x in items.iter_mut() {
                *x = without_timings(x.take());
            }
        }
        _ => {}
    }
    v
}

/// A trial as two runs of one study must agree on it: genome, epochs, state, result.
type TrialSummary = (Vec<usize>, i64, String, serde_json::Value);

/// Each trial of a study by (generation, rung, slot): its genome, epochs, state and result
/// without wall times; fails on a (generation, rung, slot) held twice.
fn study_trials(study: &Path) -> BTreeMap<(i64, i64, i64), TrialSummary> {
    let trials = kinglet_search::storage::open(&study.display().to_string())
        .and_then(|mut s| s.trials())
        .unwrap();
    let mut out = BTreeMap::new();
    for t in trials {
        let result = t
            .result
            .as_deref()
            .map(|r| without_timings(serde_json::from_str(r).unwrap()))
            .unwrap_or_default();
        let key = (t.generation, t.rung, t.slot);
        let value = (t.genome, t.epochs, format!("{:?}", t.state), result);
        assert!(out.insert(key, value).is_none(), "trial {key:?} twice");
    }
    out
}

#[test]
fn search_survives_kills() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("search");
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SEARCH_SPACE).unwrap();
    let study = work.join("study.sqlite");
    let args = strings(&[
        "search",
        "--data",
        &har(),
        "--space",
        space.to_str().unwrap(),
        "--out",
        work.to_str().unwrap(),
        "--objectives",
        "accuracy,weight-bytes,instructions",
        "--trials",
        "4",
        "--population",
        "2",
        "--min-epochs",
        "1",
        "--eta",
        "2",
        "--workers",
        "1",
        "--lease",
        "2",
    ]);
    // A trial whose worker dies MAX_ATTEMPTS times is failed on purpose (a trial that crashes
    // its worker must not be retried forever), and a kill of the whole search is such a
    // death. So a kill waits while the trial in hand has been claimed MAX_ATTEMPTS - 1 times:
    // every trial dies at most MAX_ATTEMPTS - 1 times (a claim racing the kill included), and
    // the moments stay seeded otherwise.
    let may_kill = || {
        if !study.exists() {
            return true;
        }
        let Ok(trials) = kinglet_search::storage::open(&study.display().to_string())
            .and_then(|mut s| s.trials())
        else {
            return true;
        };
        !trials.iter().any(|t| {
            t.state == kinglet_search::storage::TrialState::Running
                && t.attempts >= kinglet_search::storage::MAX_ATTEMPTS - 1
        })
    };
    let finally = |work: &Path, reference: &Path| {
        // The study holds every trial once, each finished as in the uninterrupted run.
        let now = study_trials(&work.join("study.sqlite"));
        let before = study_trials(&reference.join("study.sqlite"));
        assert_eq!(now, before);
        assert!(now.values().all(|t| t.2 == "Done"), "{now:#?}");
        // The final front equals the uninterrupted run's but for wall times.
        let front = |d: &Path| {
            without_timings(
                serde_json::from_slice(&std::fs::read(d.join("front.json")).unwrap()).unwrap(),
            )
        };
        let (now, before) = (front(work), front(reference));
        assert!(!before["front"].as_array().unwrap().is_empty());
        // The study's location is the same path: the reference run wrote into `work` too.
        assert_eq!(now, before);
    };
    kill_and_rerun_with(
        "search",
        &args,
        &work,
        kills(),
        env_number("KINGLET_KILL_SEED", 1) + 3,
        &may_kill,
        &finally,
    );
}
