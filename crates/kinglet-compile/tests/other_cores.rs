//! On the cores beside the Cortex-M4: the emulated Cortex-M3 (QEMU mps2-an385, same CMSDK
//! timer as the M4) and RISC-V rv32imc (QEMU virt, minstret). On each the counter reads the
//! known loop exactly, and a small anchor model and one of kinglet's own models give the
//! host's (and TFLite's) outputs with a stable, non-zero count within the stack `compile`
//! states. Needs qemu-system-arm, qemu-system-riscv32 (Debian's qemu-system-misc) and the
//! thumbv7m-none-eabi and riscv32imc-unknown-none-elf targets (CI installs them).
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, profile_on, run_harness_on};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::target::{CortexM3, Riscv32, Target};
use kinglet_compile::testinput::{lcg_input, lcg_input_for};
use kinglet_graph::Graph;

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware")
}

fn model(path: &str) -> (Graph, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (Graph::from_tflite_bytes(&bytes).expect("parse"), name)
}

#[test]
fn m3_counter_measures_the_known_loop_exactly() {
    let (report, _) = run_harness_on(&CortexM3, &work_dir()).expect("harness runs");
    assert_eq!(report.known_loop, 3001);
}

#[test]
fn riscv_counter_measures_the_known_loop_exactly() {
    let (report, _) = run_harness_on(&Riscv32, &work_dir()).expect("harness runs");
    assert_eq!(report.known_loop, 3001);
}

/// Every core measures the adaptive checks beside the model, so each board's cascade is priced
/// by its own core's count of them: non-zero, stable from run to run.
#[test]
fn every_core_measures_the_adaptive_checks() {
    for target in [&CortexM3 as &dyn Target, &Riscv32] {
        let (first, _) = run_harness_on(target, &work_dir()).expect("harness runs");
        let (second, _) = run_harness_on(target, &work_dir()).expect("harness runs");
        for check in ["signature", "l1_distance"] {
            let count = |checks: &[(String, u64)]| {
                checks
                    .iter()
                    .find(|(name, _)| name == check)
                    .map(|&(_, n)| n)
            };
            let n = count(&first.checks);
            assert!(
                n.is_some_and(|n| n > 100),
                "{} {check}: {n:?}",
                target.name()
            );
            assert_eq!(count(&second.checks), n, "{}", target.name());
        }
    }
}

/// Runs `path` twice on `target` with its kernels (and once with the C output if asked) and
/// checks the outputs against the host interpreter and `expected`, when given.
fn check(target: &dyn Target, path: &str, expected: Option<&[i32]>, with_c: bool) {
    let (graph, name) = model(path);
    let input = lcg_input_for(&graph);
    let run = |lang| {
        profile_on(
            target,
            &graph,
            &name,
            &input,
            FirmwareKernels::Dsp,
            lang,
            &work_dir(),
            true,
        )
        .unwrap_or_else(|e| panic!("profile on {}: {e}", target.name()))
    };
    let first = run(Lang::Rust);
    eprintln!("{}", serde_json::to_string(&first).unwrap());
    assert_eq!(first.target, target.name());
    assert_eq!(first.kernels, target.kernel_tag());
    assert_eq!(first.known_loop_instructions, 3001);
    assert_eq!(
        first.outputs, first.host_outputs,
        "{name}: core against host"
    );
    if let Some(expected) = expected {
        assert_eq!(first.outputs, expected, "{name}: core against TFLite");
    }
    assert!(first.instructions > 0);
    assert!(first.layers.iter().all(|l| l.instructions > 0));
    assert!(
        first.stack_bytes <= first.stated_stack_bytes,
        "{name}: {} B of stack on {}, {} B stated",
        first.stack_bytes,
        target.name(),
        first.stated_stack_bytes
    );
    let second = run(Lang::Rust);
    assert_eq!(
        second.instructions, first.instructions,
        "{name}: count stable"
    );
    assert_eq!(second.outputs, first.outputs);
    if with_c {
        let c = run(Lang::C);
        assert_eq!(c.outputs, first.host_outputs, "{name}: C output");
    }
}

const LITTLE_ANCHOR: &str = "../kinglet-graph/tests/fixtures/S0_s3_int8.tflite";
const OWN_LITTLE: &str = "tests/fixtures/little0.int8.tflite";

#[test]
fn little_anchor_on_m3_matches_tflite_and_host() {
    check(&CortexM3, LITTLE_ANCHOR, Some(&[-44, 70]), true);
}

#[test]
fn own_little_model_on_m3_matches_host() {
    check(&CortexM3, OWN_LITTLE, None, false);
}

#[test]
fn little_anchor_on_riscv_matches_tflite_and_host() {
    check(&Riscv32, LITTLE_ANCHOR, Some(&[-44, 70]), false);
}

#[test]
fn own_little_model_on_riscv_matches_host() {
    check(&Riscv32, OWN_LITTLE, None, false);
}

/// Asking for the C output where the test application cannot build it is an error, not a
/// silent Rust run.
#[test]
fn c_output_on_riscv_is_refused() {
    let (graph, name) = model(LITTLE_ANCHOR);
    let input = lcg_input(graph.tensor(graph.inputs[0]).elements());
    let err = profile_on(
        &Riscv32,
        &graph,
        &name,
        &input,
        FirmwareKernels::Dsp,
        Lang::C,
        &work_dir(),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("riscv32"), "{err}");
}
