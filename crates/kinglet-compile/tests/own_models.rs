//! kinglet's own trained int8 models (committed fixtures made by `kinglet pipeline`): the
//! three-input Big model (sensor branches joined by CONCATENATION), kinglet's default model
//! (depthwise-separable blocks, MEAN global pooling, hidden dense) and a Little model. Host
//! execution of both kernel sets, then QEMU (Rust DSP, Rust reference, C) must give the TFLite
//! reference-kernel goldens of `scripts/compile_own_goldens.py` and kinglet-graph's outputs.
//! Multi-input models take one LCG byte stream filling input 0, then input 1, …
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, host_outputs, profile};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, exec, lower};
use kinglet_graph::Graph;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model(name: &str) -> Graph {
    let path = fixtures().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Graph::from_tflite_bytes(&bytes).expect("parse")
}

/// (input sizes, TFLite BUILTIN_REF output) for `name`.
fn golden(name: &str) -> (Vec<usize>, Vec<i32>) {
    let path = fixtures().join("own_goldens.json");
    let text = std::fs::read_to_string(&path).expect("goldens");
    let json: serde_json::Value = serde_json::from_str(&text).expect("golden json");
    let entry = &json[name];
    let list = |key: &str| -> Vec<i64> {
        entry[key]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no {key} in goldens"))
            .iter()
            .map(|v| v.as_i64().expect("integer"))
            .collect()
    };
    let lens = list("input_lens").into_iter().map(|v| v as usize).collect();
    let reference = list("reference").into_iter().map(|v| v as i32).collect();
    (lens, reference)
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware-own")
}

fn host_check(name: &str) -> (Graph, Vec<i8>, Vec<i32>) {
    let graph = model(name);
    let (lens, expected) = golden(name);
    for kernels in [KernelSet::Reference, KernelSet::CortexM4] {
        let program = lower(&graph, kernels).expect("lower");
        assert_eq!(program.input_lens, lens, "{name}");
        assert_eq!(program.input_len, lens.iter().sum::<usize>());
        let input = lcg_input(program.input_len);
        let out: Vec<i32> = exec::run(&program, &input)
            .expect("run")
            .into_iter()
            .map(i32::from)
            .collect();
        assert_eq!(out, expected, "{name} {kernels:?} on the host");
    }
    let input = lcg_input(lens.iter().sum());
    assert_eq!(host_outputs(&graph, &input).expect("interpreter"), expected);
    (graph, input, expected)
}

#[test]
fn big3_three_inputs_on_host_match_tflite() {
    host_check("big3.int8.tflite");
}

#[test]
fn kinglet_default_on_host_matches_tflite() {
    host_check("kinglet.int8.tflite");
}

#[test]
fn little0_on_host_matches_tflite() {
    host_check("little0.int8.tflite");
}

/// A Little model (`kinglet pipeline`, HAR little 4) whose fully-connected layer hits a tie of
/// Q31 fixed-point requantisation: output 1 is `−140172 · 5.386e−4 = −75.4997` (→ −75 in
/// TFLite's double-precision reference), but the fixed-point intermediate is exactly
/// `−77312 / 2^10 = −75.5`, which rounds away from zero to −76. TFLite gives `87 −99`.
#[test]
fn little_with_fully_connected_tie_on_host_matches_tflite() {
    let (_, _, expected) = host_check("little4_fc_tie.int8.tflite");
    assert_eq!(expected, [87, -99]);
}

/// Runs `name` in QEMU with every kernel set; the DSP Rust run must also stay within
/// `dsp_budget` instructions, about 1 % above its count when the budget was set: a guard
/// against a kernel change that keeps outputs exact but slows a layer (one did, unnoticed for
/// a session: a closure the optimiser stopped inlining cost the kinglet default 3.6 %).
fn qemu_check(name: &str, dsp_budget: u64) {
    let (graph, input, expected) = host_check(name);
    let runs = [
        (FirmwareKernels::Dsp, Lang::Rust),
        (FirmwareKernels::Reference, Lang::Rust),
        (FirmwareKernels::Dsp, Lang::C),
    ];
    for (kernels, lang) in runs {
        let p = profile(&graph, name, &input, kernels, lang, &work_dir()).expect("profile");
        eprintln!("{}", serde_json::to_string(&p).unwrap());
        assert_eq!(p.outputs, expected, "{name} {kernels:?} {lang:?} in QEMU");
        assert_eq!(p.host_outputs, expected, "{name} host interpreter");
        assert_eq!(p.known_loop_instructions, 3001);
        if (kernels, lang) == (FirmwareKernels::Dsp, Lang::Rust) {
            assert!(
                p.instructions <= dsp_budget,
                "{name}: {} instructions on the Cortex-M4, budget {dsp_budget}",
                p.instructions
            );
        }
    }
}

#[test]
fn big3_three_inputs_in_qemu_match_tflite_and_host() {
    qemu_check("big3.int8.tflite", 269000);
}

#[test]
fn kinglet_default_in_qemu_matches_tflite_and_host() {
    qemu_check("kinglet.int8.tflite", 1031000);
}

#[test]
fn little0_in_qemu_matches_tflite_and_host() {
    qemu_check("little0.int8.tflite", 19800);
}

#[test]
fn little_with_fully_connected_tie_in_qemu_matches_tflite_and_host() {
    qemu_check("little4_fc_tie.int8.tflite", 18_950);
}

/// The generated Rust crate, built for the host (reference kernels): `infer` on the inputs end
/// to end and `infer_inputs` on separate slices give the TFLite golden; a slice of the wrong
/// size is a `ShapeError`, not a panic.
#[test]
fn generated_rust_multi_input_api_on_host() {
    use std::process::Command;
    let name = "big3.int8.tflite";
    let graph = model(name);
    let (lens, expected) = golden(name);
    let dir = tempfile::tempdir().unwrap();
    let compiled = kinglet_compile::firmware::compile(&graph, name).expect("compile");
    let crate_name =
        kinglet_compile::firmware::write_rust_crate(&compiled, name, dir.path()).expect("write");
    let input: Vec<String> = lcg_input(lens.iter().sum())
        .iter()
        .map(i8::to_string)
        .collect();
    let lib = crate_name.replace('-', "_");
    let example = format!(
        "use {lib}::*;\n\
         static INPUT: [i8; INPUT_LEN] = [{}];\n\
         fn main() {{\n\
         \x20   assert_eq!(INPUT_LENS, {lens:?});\n\
         \x20   let mut model = Model::new();\n\
         \x20   let mut out = [0i8; OUTPUT_LEN];\n\
         \x20   model.infer(&INPUT, &mut out).unwrap();\n\
         \x20   println!(\"{{:?}}\", out);\n\
         \x20   let (a, rest) = INPUT.split_at(INPUT_LENS[0]);\n\
         \x20   let (b, c) = rest.split_at(INPUT_LENS[1]);\n\
         \x20   let mut out2 = [0i8; OUTPUT_LEN];\n\
         \x20   model.infer_inputs(&[a, b, c], &mut out2).unwrap();\n\
         \x20   println!(\"{{:?}}\", out2);\n\
         \x20   println!(\"{{}}\", model.infer_inputs(&[a, b, &c[1..]], &mut out2).is_err());\n\
         }}\n",
        input.join(", ")
    );
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    std::fs::write(dir.path().join("examples/run.rs"), example).unwrap();
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("generated-host");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir.path())
        .args(["run", "--quiet", "--example", "run", "--target-dir"])
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected = format!("{expected:?}");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines, [expected.as_str(), expected.as_str(), "true"]);
}

/// A CONCATENATION whose inputs are quantised differently from its output would need
/// requantisation, which is not compiled: a clear error naming the op, not wrong outputs.
#[test]
fn concatenation_with_requantisation_is_refused_by_name() {
    let mut graph = model("big3.int8.tflite");
    let (index, first_input) = graph
        .ops
        .iter()
        .enumerate()
        .find(|(_, op)| op.kind.name() == "CONCATENATION")
        .map(|(i, op)| (i, op.inputs[0]))
        .expect("big3 has a concatenation");
    let quant = graph.tensors[first_input.0]
        .quant
        .as_mut()
        .expect("quantised");
    quant.scale[0] *= 2.0;
    let err = lower(&graph, KernelSet::Reference)
        .expect_err("requantising concatenation")
        .to_string();
    assert!(
        err.contains(&format!("op {index} (CONCATENATION)")) && err.contains("input 0"),
        "{err}"
    );
}
