//! TFLite's 16×8 scheme (a16w8: int16 activations, int8 weights, int64 biases) in firmware:
//! models quantised here by kinglet-compress from small float CNNs (every int16 op the compiler
//! lowers: convolution, depthwise convolution, max and average pools, mean, reshape, fully
//! connected, softmax) and kinglet's own a16w8 models (kinglet-lite, the three-input Big model
//! with its CONCATENATION; committed fixtures made by `kinglet quantize --scheme a16w8`). On the
//! host (many windows, both schedules) and natively in QEMU, in Rust and C, the int16 outputs
//! must equal kinglet-graph's interpreter.
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, host_outputs_i16, profile};
use kinglet_compile::program::{Elem, StepKind};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::{int16_test_input, lcg_input};
use kinglet_compile::{KernelSet, exec, lower};
use kinglet_compress::{PtqConfig, quantize_a16w8};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding};

mod common;
use common::{CHANNELS, Lcg, WIDTH, float_har_cnn};

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware-a16w8")
}

/// `graph` (one input of `len` values) in the 16×8 scheme, calibrated on 32 seeded windows.
fn a16w8(graph: &Graph, len: usize) -> Graph {
    let mut rng = Lcg(5);
    let samples: Vec<Vec<Vec<f32>>> = (0..32)
        .map(|_| vec![rng.units(len).iter().map(|v| 4.0 * v).collect()])
        .collect();
    quantize_a16w8(graph, &samples, &PtqConfig::default())
        .expect("a16w8")
        .graph
}

/// The HAR CNN with a softmax on its logits.
fn har_cnn_softmax() -> Graph {
    let mut g = float_har_cnn();
    let logits = g.outputs[0];
    let prob = g
        .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[logits], "prob")
        .unwrap();
    g.outputs = vec![prob];
    g.validate().unwrap();
    g
}

/// x [1,1,32,4] → conv 1×3 SAME ReLU (8) → average pool 1×3 stride 2 SAME (its last window
/// is clipped) → mean over H and W → fully connected 6.
fn pooled_cnn() -> Graph {
    let mut rng = Lcg(17);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 1, 32, 4], DType::F32, None);
    let w = g
        .add_constant_f32("w", &[8, 1, 3, 4], &rng.units(96))
        .unwrap();
    let b = g.add_constant_f32("b", &[8], &rng.units(8)).unwrap();
    let conv = OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation: Activation::Relu,
    };
    let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
    let pool = OpKind::AvgPool2D {
        filter: Hw::new(1, 3),
        stride: Hw::new(1, 2),
        padding: Padding::Same,
        activation: Activation::None,
    };
    let p = g.add_op_inferred(pool, &[c], "avg").unwrap();
    let m = g
        .add_op_inferred(
            OpKind::Mean {
                axes: vec![1, 2],
                keep_dims: false,
            },
            &[p],
            "mean",
        )
        .unwrap();
    let fw = g.add_constant_f32("fw", &[6, 8], &rng.units(48)).unwrap();
    let fb = g.add_constant_f32("fb", &[6], &rng.units(6)).unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[m, fw, fb], "logits").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}

/// Seeded int16 windows over the whole range.
fn windows(count: usize, len: usize) -> Vec<Vec<i16>> {
    let mut rng = Lcg(99);
    (0..count)
        .map(|_| (0..len).map(|_| rng.range(-32768, 32767) as i16).collect())
        .collect()
}

/// Both schedules on the host equal the interpreter on `count` windows; returns how many
/// distinct output values they gave (a degenerate model would give few).
fn host_check(name: &str, graph: &Graph, count: usize) -> usize {
    let programs =
        [KernelSet::Reference, KernelSet::CortexM4].map(|k| lower(graph, k).expect("lower"));
    let mut distinct = std::collections::BTreeSet::new();
    for program in &programs {
        assert_eq!(program.io, Elem::I16, "{name}");
        assert!(
            program
                .buffers
                .iter()
                .all(|b| b.elem == Elem::I16 || b.bytes() == 0),
            "{name}: every activation is int16"
        );
        assert!(
            (program.steps.iter()).any(|s| matches!(s.kind, StepKind::S16(_))),
            "{name}"
        );
    }
    for (w, input) in windows(count, programs[0].input_len).iter().enumerate() {
        let host = host_outputs_i16(graph, input).expect("host");
        distinct.extend(host.iter().copied());
        for program in &programs {
            let out: Vec<i32> = exec::run_i16(program, input)
                .expect("run")
                .into_iter()
                .map(i32::from)
                .collect();
            assert_eq!(out, host, "{name} window {w} {:?}", program.kernels);
        }
    }
    distinct.len()
}

/// Rust and C firmware in QEMU on the fixed LCG input (as int16, `int16_test_input`) equal
/// the interpreter.
fn qemu_check(name: &str, graph: &Graph) {
    let len = lower(graph, KernelSet::CortexM4).expect("lower").input_len;
    let input = lcg_input(len);
    let host = host_outputs_i16(graph, &int16_test_input(&input)).expect("host");
    for lang in [Lang::Rust, Lang::C] {
        let p =
            profile(graph, name, &input, FirmwareKernels::Dsp, lang, &work_dir()).expect("profile");
        assert_eq!(p.host_outputs, host, "{name} {lang:?}");
        assert_eq!(p.outputs, p.host_outputs, "{name} {lang:?} in QEMU");
        assert!(p.instructions > 0 && p.flash_bytes > 0, "{name} {lang:?}");
    }
}

#[test]
fn a16w8_cnns_on_host_and_in_qemu_match_interpreter() {
    for (name, graph, len) in [
        ("a16w8_har", har_cnn_softmax(), WIDTH * CHANNELS),
        ("a16w8_pooled", pooled_cnn(), 128),
    ] {
        let graph = a16w8(&graph, len);
        assert!(
            (graph.tensors.iter()).any(|t| t.dtype == DType::I64),
            "{name}: int64 biases"
        );
        let distinct = host_check(name, &graph, 64);
        assert!(distinct > 20, "{name}: degenerate outputs ({distinct})");
        qemu_check(name, &graph);
    }
}

fn fixture(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Graph::from_tflite_bytes(&bytes).expect("parse")
}

#[test]
fn own_a16w8_models_on_host_and_in_qemu_match_interpreter() {
    for name in ["kinglet-lite.a16w8.tflite", "big3.a16w8.tflite"] {
        let graph = fixture(name);
        let distinct = host_check(name, &graph, 16);
        assert!(distinct > 20, "{name}: degenerate outputs ({distinct})");
        qemu_check(name, &graph);
    }
}

/// The planner sizes int16 activations at two bytes per value and counts int64 biases as
/// eight-byte constants.
#[test]
fn int16_buffers_and_int64_biases_are_sized() {
    let graph = fixture("kinglet-lite.a16w8.tflite");
    let program = lower(&graph, KernelSet::CortexM4).expect("lower");
    // The first convolution writes [1, 1, 128, 16] int16 values.
    let first = (program.buffers.iter())
        .find(|b| b.len == 128 * 16)
        .expect("conv output buffer");
    assert_eq!(first.bytes(), 2 * 128 * 16);
    assert!(program.arena_bytes >= 2 * 128 * 16 + 2 * 32 * 16);
    let bias_bytes: usize = (graph.ops.iter())
        .filter_map(|op| op.inputs.get(2))
        .map(|&b| graph.tensor(b))
        .inspect(|t| assert_eq!(t.dtype, DType::I64))
        .map(|t| 8 * t.elements())
        .sum();
    let weight_bytes: usize = (graph.ops.iter())
        .filter(|op| op.inputs.len() > 2)
        .map(|op| graph.tensor(op.inputs[1]).elements())
        .sum();
    // Weights, int64 biases and 8 bytes of requantisation per output channel (conv: Q31
    // multiplier and shift; fully connected: one double scale).
    let channels: usize = (graph.ops.iter())
        .filter(|op| op.inputs.len() > 2)
        .map(|op| graph.tensor(op.inputs[2]).elements())
        .sum();
    assert_eq!(
        program.constant_bytes(),
        weight_bytes + bias_bytes + 8 * channels
    );
}

/// An int16 op without a compiled kernel is refused, naming the op.
#[test]
fn int16_op_without_kernel_is_refused_by_name() {
    let mut rng = Lcg(7);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 8], DType::F32, None);
    let c = g.add_constant_f32("c", &[1, 8], &rng.units(8)).unwrap();
    let y = g
        .add_op_inferred(
            OpKind::Add {
                activation: Activation::None,
            },
            &[x, c],
            "add",
        )
        .unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    let graph = a16w8(&g, 8);
    for kernels in [KernelSet::Reference, KernelSet::CortexM4] {
        let err = lower(&graph, kernels)
            .expect_err("ADD has no int16 kernel")
            .to_string();
        assert!(err.contains("ADD") && err.contains("int16"), "{err}");
    }
}
