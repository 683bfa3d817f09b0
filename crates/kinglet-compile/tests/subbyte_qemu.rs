//! Packed 4- and 2-bit weights (w4a8, w2a8 and mixed models, quantised here by
//! kinglet-compress from a small float HAR-shaped CNN) stay packed in flash and run on
//! kinglet-m4's sub-byte kernels: 1D convolution, depthwise and pointwise convolutions
//! (unpacked a block at a time) and fully-connected layers (unpacked in registers). On the host
//! (portable instruction models, many windows) and natively in QEMU, in Rust and C, they must
//! equal the host interpreter. A 2D convolution, which has no packed kernel, falls back to int8
//! weights and says so.
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, profile};
use kinglet_compile::program::StepKind;
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::{KernelSet, exec, lower};
use kinglet_compress::{PtqConfig, quantize_int8};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding};

mod common;
use common::{CHANNELS, Lcg, WIDTH, float_har_cnn};

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware-subbyte")
}

/// `graph` quantised with weight widths `bits` (one per weighted layer), calibrated on 32
/// seeded random windows.
fn quantised(graph: &Graph, bits: &[u32]) -> Graph {
    let mut rng = Lcg(5);
    let samples: Vec<Vec<Vec<f32>>> = (0..32)
        .map(|_| {
            vec![
                rng.units(WIDTH * CHANNELS)
                    .iter()
                    .map(|v| 4.0 * v)
                    .collect(),
            ]
        })
        .collect();
    let config = PtqConfig {
        weight_bits: bits.to_vec(),
        ..PtqConfig::default()
    };
    quantize_int8(graph, &samples, &config).expect("ptq").graph
}

/// Seeded int8 windows.
fn windows(count: usize, len: usize) -> Vec<Vec<i8>> {
    let mut rng = Lcg(99);
    (0..count)
        .map(|_| (0..len).map(|_| rng.range(-128, 127) as i8).collect())
        .collect()
}

/// Bits of each DSP step's stored weights, in schedule order.
fn stored_bits(graph: &Graph) -> Vec<u32> {
    let program = lower(graph, KernelSet::CortexM4).expect("lower");
    assert!(program.notes.is_empty(), "{:?}", program.notes);
    (program.steps.iter())
        .filter_map(|s| match &s.kind {
            StepKind::Conv1d { weights, .. }
            | StepKind::Depthwise1d { weights, .. }
            | StepKind::FullyConnectedQ15 { weights, .. } => Some(weights.bits()),
            _ => None,
        })
        .collect()
}

/// The requantisation form (`kinglet_m4::requant_form`) of each 1D DSP step.
fn requant_forms(graph: &Graph) -> Vec<u8> {
    let program = lower(graph, KernelSet::CortexM4).expect("lower");
    (program.steps.iter())
        .filter_map(|s| match &s.kind {
            StepKind::Conv1d {
                in_ch,
                kernel,
                bias,
                requant,
                ..
            } => Some((bias, requant, kinglet_m4::conv1d_row_len(*in_ch, *kernel))),
            StepKind::Depthwise1d {
                kernel,
                bias,
                requant,
                ..
            } => Some((bias, requant, *kernel)),
            _ => None,
        })
        .map(|(bias, r, row)| {
            kinglet_m4::requant_form_1d(&r.shifts, r.output_offset, r.act_min, bias, row)
        })
        .collect()
}

#[test]
fn sub_byte_models_on_host_and_in_qemu_match_interpreter() {
    let float = float_har_cnn();
    let mut forms = std::collections::BTreeSet::new();
    for (name, bits, stored) in [
        ("w4a8", [4, 4, 4, 4, 4], [4, 4, 4, 4, 4]),
        ("w2a8", [2, 2, 2, 2, 2], [2, 2, 2, 2, 2]),
        // int8 layers keep their usual storage: the small conv and depthwise ones widened.
        ("mixed", [8, 2, 4, 8, 2], [16, 2, 4, 8, 2]),
    ] {
        let graph = quantised(&float, &bits);
        let weight_types: Vec<DType> = (graph.ops.iter())
            .filter(|op| op.inputs.len() > 2)
            .map(|op| graph.tensor(op.inputs[1]).dtype)
            .collect();
        assert_eq!(
            weight_types,
            bits.map(|b| DType::signed_weights(b).unwrap()),
            "{name}"
        );
        assert_eq!(stored_bits(&graph), stored, "{name}: packed storage");
        let model_forms = requant_forms(&graph);
        eprintln!("{name}: requantisation forms {model_forms:?}");
        forms.extend(model_forms);
        // Many windows on the host, through both schedules (the DSP one on kinglet-m4's
        // portable instruction models).
        let mut distinct = std::collections::BTreeSet::new();
        let programs =
            [KernelSet::Reference, KernelSet::CortexM4].map(|k| lower(&graph, k).expect("lower"));
        for (w, input) in windows(64, WIDTH * CHANNELS).iter().enumerate() {
            let host = kinglet_compile::firmware::host_outputs(&graph, input).expect("host");
            distinct.extend(host.iter().copied());
            for program in &programs {
                let out: Vec<i32> = exec::run(program, input)
                    .expect("run")
                    .into_iter()
                    .map(i32::from)
                    .collect();
                assert_eq!(out, host, "{name} window {w} {:?}", program.kernels);
            }
        }
        assert!(
            distinct.len() > 20,
            "{name}: degenerate outputs {distinct:?}"
        );
        // Natively in QEMU, Rust and C, on the first window (one firmware build each).
        for (w, input) in windows(1, WIDTH * CHANNELS).iter().enumerate() {
            for lang in [Lang::Rust, Lang::C] {
                let p = profile(
                    &graph,
                    &format!("subbyte_{name}"),
                    input,
                    FirmwareKernels::Dsp,
                    lang,
                    &work_dir(),
                )
                .expect("profile");
                assert_eq!(
                    p.outputs, p.host_outputs,
                    "{name} window {w} {lang:?} in QEMU"
                );
            }
        }
    }
    // 2-bit weights' large scales give shift-0 channels: the one-rounding form for them
    // (BIT31) must be among the forms run above, beside the high-word one.
    use kinglet_m4::requant_form::{BIT31, HIGH_WORD};
    assert!(
        forms.contains(&BIT31) && forms.contains(&HIGH_WORD),
        "forms run: {forms:?}"
    );
}

/// A 2D convolution has no packed kernel: its 4-bit weights run as int8 (correctly) and the
/// lowering says so, naming the op.
#[test]
fn sub_byte_2d_convolution_falls_back_to_int8_and_says_so() {
    let mut rng = Lcg(3);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 8, 8, 2], DType::F32, None);
    let w = g
        .add_constant_f32("w", &[4, 3, 3, 2], &rng.units(72))
        .unwrap();
    let b = g.add_constant_f32("b", &[4], &rng.units(4)).unwrap();
    let conv = OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation: Activation::None,
    };
    let y = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    let samples: Vec<Vec<Vec<f32>>> = (0..8).map(|_| vec![rng.units(128)]).collect();
    let config = PtqConfig {
        weight_bits: vec![4],
        ..PtqConfig::default()
    };
    let graph = quantize_int8(&g, &samples, &config).expect("ptq").graph;
    let program = lower(&graph, KernelSet::CortexM4).expect("lower");
    assert!(
        matches!(program.notes.as_slice(), [n] if n.contains("CONV_2D") && n.contains("int8")),
        "{:?}",
        program.notes
    );
    for input in windows(16, 128) {
        let host = kinglet_compile::firmware::host_outputs(&graph, &input).expect("host");
        let out: Vec<i32> = exec::run(&program, &input)
            .expect("run")
            .into_iter()
            .map(i32::from)
            .collect();
        assert_eq!(out, host);
    }
}
