//! The firmware cascade in QEMU (mps2-an386, Cortex-M4F; two strategies also on mps2-an385,
//! Cortex-M3) must make the same wake/skip decisions and report the same labels as the host
//! simulator running the same int8 models through kinglet-graph's interpreter, on 200
//! consecutive official UCI-HAR test windows.
//!
//! Windows: tests/fixtures/uci_har_test_w0_n200.i8, test windows 0–199 with the seed's min-max
//! scaling as int8 (scale 1, zero point 0); regenerate with scripts/make_cascade_fixture.py.
//! Models: the int8 seed architectures (random weights — enough to prove identical decisions);
//! `CASCADE_BIG` / `CASCADE_LITTLE` (paths) swap in other int8 models with the same input
//! quantisation.

use std::path::PathBuf;
use std::rc::Rc;

use kinglet_adapt::classifier::DistanceTable;
use kinglet_adapt::firmware::{CascadeModel, Int8Windows, StreamWindows, run_in_qemu_on};
use kinglet_adapt::models::{GraphClassifier, load_tflite, signature_distances};
use kinglet_adapt::strategy::StrategyKind;
use kinglet_adapt::{Models, StrategySpec, WindowClassifier, simulate};
use kinglet_compile::target::{CortexM3, CortexM4, Riscv32, Target};
use kinglet_graph::Graph;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        manifest()
            .join("../kinglet-graph/tests/fixtures")
            .join(default)
    })
}

fn windows() -> Int8Windows {
    Int8Windows::read(
        &manifest().join("tests/fixtures/uci_har_test_w0_n200.i8"),
        128,
        9,
        1.0,
        0,
    )
    .unwrap()
}

/// The signature distances of the embedded int8 bytes, as the firmware computes them.
fn signature_table(windows: &Int8Windows) -> DistanceTable {
    let chunks: Vec<&[i8]> = windows.data.chunks_exact(128 * 9).collect();
    signature_distances(&chunks, 9)
}

fn name(path: &std::path::Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn big_path() -> PathBuf {
    model_path("CASCADE_BIG", "B_s123_1IN_int8.tflite")
}

/// Runs `spec` on the host simulator and in QEMU with `littles` copies of `little_path` and
/// checks they agree window for window.
fn host_and_firmware(spec: &StrategySpec, little_path: &std::path::Path, littles: usize) {
    host_and_firmware_on(&CortexM4, spec, little_path, littles);
}

/// [`host_and_firmware`] with the firmware on `target`.
fn host_and_firmware_on(
    target: &dyn Target,
    spec: &StrategySpec,
    little_path: &std::path::Path,
    littles: usize,
) {
    let big_path = big_path();
    let (big_name, little_name) = (name(&big_path), name(little_path));
    let big_graph = load_tflite(&big_path).unwrap();
    let little_graph = load_tflite(little_path).unwrap();
    let windows = windows();
    assert!(windows.n >= 200);
    let data = Rc::new(windows.window_data());

    let mut big = GraphClassifier::new(&big_name, &big_graph, data.clone(), None).unwrap();
    let mut little_models: Vec<GraphClassifier> = (0..littles)
        .map(|_| GraphClassifier::new(&little_name, &little_graph, data.clone(), None).unwrap())
        .collect();
    let mut distances = data.s3_distances().unwrap();
    let mut signatures = signature_table(&windows);
    let host = simulate(
        spec,
        &mut Models {
            big: &mut big,
            littles: little_models
                .iter_mut()
                .map(|m| m as &mut dyn WindowClassifier)
                .collect(),
            dual: None,
            distance: Some(&mut distances),
            signature: Some(&mut signatures),
        },
        windows.n,
    )
    .unwrap();

    let graphs: Vec<&Graph> = vec![&little_graph; littles];
    let little_cascade: Vec<CascadeModel> = graphs
        .iter()
        .map(|g| CascadeModel {
            name: &little_name,
            graph: g,
            normalise: None,
        })
        .collect();
    // One work directory (one incremental firmware build); runs are serialised inside.
    let work = manifest().join("../../target/kinglet-cascade-test");
    let fw = run_in_qemu_on(
        target,
        spec,
        &CascadeModel {
            name: &big_name,
            graph: &big_graph,
            normalise: None,
        },
        &little_cascade,
        None,
        &StreamWindows::Int8(windows.clone()),
        &work,
    )
    .unwrap();

    assert_eq!(fw.known_loop_instructions, 3001);
    assert_eq!(fw.windows.len(), windows.n);
    for (i, (h, f)) in host.windows.iter().zip(&fw.windows).enumerate() {
        assert_eq!(h, f, "window {i}: host {h:?}, firmware {f:?}");
    }
    // One arena for all: the largest model's.
    let largest = fw.model_arena_bytes.iter().map(|(_, b)| *b).max().unwrap();
    assert_eq!(fw.shared_arena_bytes, largest);
    assert_eq!(fw.model_arena_bytes.len(), 1 + littles);
    // Both paths exercised, so agreement is not trivial.
    let big_runs = host.big_runs();
    assert!(
        big_runs > 1 && big_runs < windows.n,
        "Big ran on {big_runs} windows"
    );
    // Windows on which Big ran cost more than those it slept through.
    let mean = |big: bool| fw.mean_instructions_where(big).unwrap();
    assert!(mean(true) > mean(false));
    eprintln!(
        "{} on {}: {} windows identical; Big on {big_runs}; {:.0} instructions/window (Big windows {:.0}, others {:.0}); shared arena {} B",
        spec.label(),
        target.name(),
        windows.n,
        fw.mean_instructions(),
        mean(true),
        mean(false),
        fw.shared_arena_bytes
    );
}

#[test]
fn one_big_six_little_matches_the_host_simulator_in_qemu() {
    let little = model_path("CASCADE_LITTLE", "S0_s3_int8.tflite");
    host_and_firmware(
        &StrategySpec::new(StrategyKind::OneBigSixLittle),
        &little,
        6,
    );
}

#[test]
fn distance_strategy_matches_the_host_simulator_in_qemu() {
    // A threshold inside the fixture's distance range, so Big both wakes and sleeps.
    let windows = windows();
    let mut d = windows.window_data().s3_distances().unwrap().0;
    d.remove(0);
    d.sort_unstable();
    let mut spec = StrategySpec::new(StrategyKind::OneBigDistance);
    spec.threshold = Some(f64::from(d[d.len() * 3 / 4]));
    host_and_firmware(&spec, &big_path(), 0);
}

/// Per-label thresholds spread over the fixture's distances, so Big both wakes and sleeps
/// and several labels' thresholds are used.
fn signature_spec() -> StrategySpec {
    let mut d = signature_table(&windows()).0;
    d.remove(0);
    d.sort_unstable();
    let mut spec = StrategySpec::new(StrategyKind::Signature);
    spec.thresholds = (0..6)
        .map(|k| f64::from(d[d.len() * (4 + k) / 10]))
        .collect();
    spec
}

#[test]
fn signature_strategy_matches_the_host_simulator_in_qemu() {
    host_and_firmware(&signature_spec(), &big_path(), 0);
}

/// The same cascade on the Cortex-M3 (its MLA kernels, soft-float signature arithmetic).
#[test]
fn signature_strategy_matches_the_host_simulator_on_cortex_m3() {
    host_and_firmware_on(&CortexM3, &signature_spec(), &big_path(), 0);
}

/// The same cascade on RISC-V rv32imc (its kernels, soft-float signature arithmetic, the very
/// decision code of the Arm application).
#[test]
fn signature_strategy_matches_the_host_simulator_on_riscv32() {
    host_and_firmware_on(&Riscv32, &signature_spec(), &big_path(), 0);
}

/// The confidence cascade runs the core's softmax and confidence on the device: they must give
/// the host's f32 values bit for bit. There is no small multi-class int8 model here, so the
/// Big model stands in as the little classifier; the threshold is the median confidence of
/// the stream, so the little both answers and defers.
fn confidence_spec() -> StrategySpec {
    let graph = load_tflite(&big_path()).unwrap();
    let data = Rc::new(windows().window_data());
    let mut classifier =
        GraphClassifier::new(&name(&big_path()), &graph, data.clone(), None).unwrap();
    let mut confidences: Vec<f32> = (0..data.n)
        .map(|i| {
            let mut p = classifier.scores(i).unwrap();
            kinglet_adapt_core::softmax_in_place(&mut p);
            kinglet_adapt_core::confidence(
                kinglet_adapt_core::ConfidenceMeasure::MaxProbability,
                &p,
            )
        })
        .collect();
    confidences.sort_by(f32::total_cmp);
    let mut spec = StrategySpec::new(StrategyKind::Confidence);
    spec.threshold = Some(f64::from(confidences[confidences.len() / 2]));
    spec
}

#[test]
fn confidence_cascade_matches_the_host_simulator_in_qemu() {
    host_and_firmware(&confidence_spec(), &big_path(), 1);
}

/// On the Cortex-M3 the softmax and confidence run in soft-float: still the host's values bit
/// for bit.
#[test]
fn confidence_cascade_matches_the_host_simulator_on_cortex_m3() {
    host_and_firmware_on(&CortexM3, &confidence_spec(), &big_path(), 1);
}

/// Softmax and confidence in soft-float on RISC-V: the host's values bit for bit.
#[test]
fn confidence_cascade_matches_the_host_simulator_on_riscv32() {
    host_and_firmware_on(&Riscv32, &confidence_spec(), &big_path(), 1);
}
