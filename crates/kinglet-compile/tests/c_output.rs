//! The C99 output compiles warning-free for Cortex-M4 (DSP) and Cortex-M3 (no DSP) with
//! arm-none-eabi-gcc, and, built for the host, gives the TFLite outputs on the anchor models.
use std::path::{Path, PathBuf};
use std::process::Command;

use kinglet_compile::emit_c::c_prefix;
use kinglet_compile::firmware::{compile, write_c};
use kinglet_graph::Graph;

fn seed_model(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures")
        .join(name);
    Graph::from_tflite_bytes(&std::fs::read(&path).expect("seed model")).expect("parse")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const STRICT: [&str; 5] = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"];

fn check(name: &str, expected: &str) {
    check_graph(
        &seed_model(name),
        name,
        &lcg(seed_model(name)
            .tensor(seed_model(name).inputs[0])
            .elements()),
        expected,
    );
}

fn lcg(len: usize) -> Vec<i8> {
    kinglet_compile::testinput::lcg_input(len)
}

/// Compiles `graph` to C, builds it for M4 and M3 (objects only) and for the host with a
/// main that feeds `input`, and compares the printed outputs with `expected`.
fn check_graph(graph: &Graph, name: &str, input: &[i8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let compiled = compile(graph, name).unwrap();
    let (_, c) = write_c(&compiled, name, dir.path()).unwrap();
    let obj = |flags: &[&str], out: &Path| {
        run(Command::new("arm-none-eabi-gcc")
            .args(STRICT)
            .args(flags)
            .arg("-c")
            .arg(&c)
            .arg("-o")
            .arg(out));
    };
    obj(
        &[
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
        ],
        &dir.path().join("m4.o"),
    );
    obj(&["-mcpu=cortex-m3", "-mthumb"], &dir.path().join("m3.o"));

    let p = c_prefix(name);
    let up = p.to_uppercase();
    let values: Vec<String> = input.iter().map(i8::to_string).collect();
    // The same inference through `_infer_inputs`, one pointer per graph input.
    let mut start = 0;
    let mut parts = Vec::new();
    for &id in &graph.inputs {
        parts.push(format!("in + {start}"));
        start += graph.tensor(id).elements();
    }
    let main = format!(
        "#include <stdio.h>\n#include \"{p}.h\"\n\
         static const int8_t in[{up}_INPUT_LEN] = {{ {} }};\n\
         int main(void) {{\n  int8_t out[{up}_OUTPUT_LEN];\n  int i;\n\
         \x20 if ({p}_infer(in, out) != 0) return 1;\n\
         \x20 for (i = 0; i < {up}_OUTPUT_LEN; i++) printf(i ? \" %d\" : \"%d\", out[i]);\n  printf(\"\\n\");\n\
         \x20 {{\n    const int8_t *const parts[] = {{ {} }};\n    if ({p}_infer_inputs(parts, out) != 0) return 1;\n  }}\n\
         \x20 for (i = 0; i < {up}_OUTPUT_LEN; i++) printf(i ? \" %d\" : \"%d\", out[i]);\n  printf(\"\\n\");\n  return 0;\n}}\n",
        values.join(", "),
        parts.join(", ")
    );
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    let exe = dir.path().join("model");
    run(Command::new("cc")
        .args(STRICT)
        .arg("-I")
        .arg(dir.path())
        .arg(dir.path().join("main.c"))
        .arg(&c)
        .arg("-o")
        .arg(&exe));
    let printed = run(&mut Command::new(&exe));
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [expected, expected],
        "{name}: _infer, then _infer_inputs"
    );
}

#[test]
fn big_anchor_c_compiles_and_matches_tflite() {
    check("B_s123_1IN_int8.tflite", "-38 -22 -32 -7 -20 -22");
}

#[test]
fn little_anchor_c_compiles_and_matches_tflite() {
    check("S0_s3_int8.tflite", "-44 70");
}

/// kinglet's own trained models (committed fixtures, TFLite goldens from
/// `scripts/compile_own_goldens.py`): three inputs joined by CONCATENATION, and depthwise
/// convolution with MEAN pooling. One LCG stream fills the inputs end to end.
#[test]
fn own_models_c_compile_and_match_tflite() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (name, expected) in [
        ("big3.int8.tflite", "-5 42 54 -33 -128 21"),
        ("kinglet.int8.tflite", "49 -97 30 -64 -128 -55"),
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("fixture");
        let graph = Graph::from_tflite_bytes(&bytes).expect("parse");
        let len = graph
            .inputs
            .iter()
            .map(|&i| graph.tensor(i).elements())
            .sum();
        check_graph(&graph, name, &lcg(len), expected);
    }
}

/// Ops outside the HAR kernels' shapes (strided VALID convolution, a max pool that cannot be
/// fused, a batched fully-connected layer) take the C reference kernels.
#[test]
fn reference_kernel_paths_in_c_match_the_host_interpreter() {
    use kinglet_graph::{Activation, DType, Hw, OpKind, Padding, QuantParams};
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        &[1, 1, 16, 3],
        DType::I8,
        Some(QuantParams::per_tensor(0.05, 3)),
    );
    let w: Vec<i8> = (0..5 * 3 * 3).map(|i| ((i * 37) % 255) as i8).collect();
    let w = g
        .add_constant_i8(
            "w",
            &[5, 1, 3, 3],
            &w,
            Some(QuantParams::per_axis(vec![0.004; 5], vec![0; 5], 0)),
        )
        .unwrap();
    let b = g
        .add_constant_i32(
            "b",
            &[5],
            &[100, -200, 300, -400, 500],
            Some(QuantParams::per_tensor(0.0002, 0)),
        )
        .unwrap();
    let conv = OpKind::Conv2D {
        stride: Hw::new(1, 2),
        dilation: Hw::ONE,
        padding: Padding::Valid,
        activation: Activation::Relu,
    };
    let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
    g.tensor_mut(c).quant = Some(QuantParams::per_tensor(0.2, -20));
    let pool = OpKind::MaxPool2D {
        filter: Hw::new(1, 3),
        stride: Hw::new(1, 1),
        padding: Padding::Same,
        activation: Activation::None,
    };
    let p = g.add_op_inferred(pool, &[c], "pool").unwrap();
    g.tensor_mut(p).quant = Some(QuantParams::per_tensor(0.2, -20));
    // (16 − 3) / 2 + 1 = 7 positions × 5 channels, as 5 rows of a batched FC.
    let r = g
        .add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![5, 7],
            },
            &[p],
            "row",
        )
        .unwrap();
    g.tensor_mut(r).quant = Some(QuantParams::per_tensor(0.2, -20));
    let in_len = *g.tensor(r).shape.last().unwrap();
    let fw: Vec<i8> = (0..4 * in_len).map(|i| ((i * 53) % 251) as i8).collect();
    let fw = g
        .add_constant_i8(
            "fw",
            &[4, in_len],
            &fw,
            Some(QuantParams::per_tensor(0.01, 0)),
        )
        .unwrap();
    let fb = g
        .add_constant_i32(
            "fb",
            &[4],
            &[10, 20, -30, 40],
            Some(QuantParams::per_tensor(0.002, 0)),
        )
        .unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[r, fw, fb], "y").unwrap();
    g.tensor_mut(y).quant = Some(QuantParams::per_tensor(0.3, 5));
    g.mark_output(y);

    let input = lcg(48);
    let host = kinglet_compile::firmware::host_outputs(&g, &input).expect("host interpreter");
    let program = kinglet_compile::lower(&g, kinglet_compile::KernelSet::CortexM4).unwrap();
    assert!(
        program.steps.iter().any(|s| matches!(
            s.kind,
            kinglet_compile::program::StepKind::RefConv2D { .. }
                | kinglet_compile::program::StepKind::DspConv2D(_)
        )),
        // The C output runs a 2D DSP step on the reference kl_conv2d_i8 too.
        "the strided conv must take the reference kernel in C"
    );
    let kinds: Vec<String> = program
        .steps
        .iter()
        .map(|s| format!("{:?}", s.kind).chars().take(40).collect())
        .collect();
    assert!(
        program.steps.iter().any(|s| matches!(
            s.kind,
            kinglet_compile::program::StepKind::RefFullyConnected { .. }
        )),
        "{kinds:?}"
    );
    let expected: Vec<String> = host.iter().map(i32::to_string).collect();
    check_graph(&g, "reference_paths", &input, &expected.join(" "));
}

/// The C kernels' fully-connected requantisation (integer arithmetic) against its definition,
/// TFLite's reference `round((double)acc · scale)`, on random values and on products whose
/// double rounding lands exactly on a half — where Q31 fixed point rounds the other way.
#[test]
fn c_fully_connected_requantisation_matches_tflite_reference_at_ties() {
    use kinglet_micro::fmath::round_f64;
    let mut state = 99u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 11
    };
    let mut cases: Vec<(i32, f64)> = Vec::new();
    for i in 0..4000 {
        let acc = ((next() % 3_000_000) as i32 + 1) * if i % 2 == 0 { 1 } else { -1 };
        let scale = if i % 4 < 2 {
            // acc · scale within an ulp of q + ½.
            f64::from(2 * (next() % 300) as i32 + 1) / 2.0 / f64::from(acc.unsigned_abs())
        } else {
            (next() % 1_000_000) as f64 * 1e-9
        };
        cases.push((acc, scale));
    }
    cases.extend([
        (-140_172, 5.386e-4),
        (3, 0.5),
        (-3, 0.5),
        (i32::MIN, 1.0),
        (i32::MAX, 3.0),
        (7, 0.0),
        (9, 1e300),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let kernels = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runtime-c/kinglet_kernels.c");
    let rows: Vec<String> = cases
        .iter()
        .map(|(a, s)| format!("{{ {a}, 0x{:016x}ull }}", s.to_bits()))
        .collect();
    let main = format!(
        "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n\
         #include \"{}\"\n\
         static const struct {{ int32_t acc; uint64_t scale; }} cases[] = {{ {} }};\n\
         int main(void) {{\n  size_t i;\n  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {{\n\
         \x20   double s;\n    memcpy(&s, &cases[i].scale, sizeof s);\n\
         \x20   printf(\"%ld\\n\", (long)kl_requantize_double(cases[i].acc, s));\n  }}\n  return 0;\n}}\n",
        kernels.display(),
        rows.join(",\n")
    );
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    let exe = dir.path().join("requant");
    run(Command::new("cc")
        .args(STRICT)
        .arg(dir.path().join("main.c"))
        .arg("-o")
        .arg(&exe));
    let printed = run(&mut Command::new(&exe));
    let got: Vec<i64> = printed.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len(), cases.len());
    let mut double_rounded_ties = 0;
    for (&(acc, scale), &c) in cases.iter().zip(&got) {
        let expected = round_f64(f64::from(acc) * scale) as i32;
        assert_eq!(c, i64::from(expected), "acc {acc} scale {scale:e}");
        if (f64::from(acc) * scale).abs().fract() == 0.5 {
            double_rounded_ties += 1;
        }
    }
    assert!(double_rounded_ties > 500, "{double_rounded_ties} ties");
}
