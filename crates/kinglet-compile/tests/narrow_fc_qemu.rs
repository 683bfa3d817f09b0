//! Fully-connected layers with int8 ("narrow") weights in flash, unpacked in registers by
//! `SXTB16` as kinglet-m4 reads them: natively on the emulated Cortex-M4F and through the
//! portable instruction models on the host, in Rust and C, they must equal the host
//! interpreter. The three layers cover the 2-, 4- and 1-channel blocks, odd input lengths
//! (a zero-padded last pair) and odd and even pair counts (the kernels' unrolled loop and
//! its odd first pair).
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, profile};
use kinglet_compile::program::{ConvWeights, StepKind};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, lower};
use kinglet_graph::{Activation, DType, Graph, OpKind, QuantParams, TensorId};

mod common;
use common::{Lcg, assert_host_exec_matches, varied_host_outputs};

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware")
}

/// A fully-connected layer `x → outputs` with random weights (scale 0.01) and bias.
fn fc(
    g: &mut Graph,
    rng: &mut Lcg,
    x: TensorId,
    outputs: usize,
    activation: Activation,
    out_q: (f32, i32),
) -> TensorId {
    let inputs = *g.tensor(x).shape.last().unwrap();
    let in_s = g.tensor(x).quant.as_ref().unwrap().scale[0];
    let name = format!("fc{outputs}");
    let w: Vec<i8> = (0..outputs * inputs)
        .map(|_| rng.range(-128, 127) as i8)
        .collect();
    let w = g
        .add_constant_i8(
            format!("{name}_w"),
            &[outputs, inputs],
            &w,
            Some(QuantParams::per_tensor(0.01, 0)),
        )
        .unwrap();
    let b: Vec<i32> = (0..outputs).map(|_| rng.range(-20000, 20000)).collect();
    let b = g
        .add_constant_i32(
            format!("{name}_b"),
            &[outputs],
            &b,
            Some(QuantParams::per_tensor(in_s * 0.01, 0)),
        )
        .unwrap();
    let kind = OpKind::FullyConnected {
        activation,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(kind, &[x, w, b], &name).unwrap();
    g.tensor_mut(y).quant = Some(QuantParams::per_tensor(out_q.0, out_q.1));
    y
}

fn graph() -> Graph {
    let mut rng = Lcg(2027);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        &[1, 129],
        DType::I8,
        Some(QuantParams::per_tensor(0.02, 5)),
    );
    // 102 outputs: blocks of 2, 65 pairs.
    let a = fc(&mut g, &mut rng, x, 102, Activation::Relu, (0.15, -128));
    // 44 outputs: blocks of 4, 51 pairs.
    let b = fc(&mut g, &mut rng, a, 44, Activation::None, (1.0, 3));
    // 27 outputs: blocks of 1, 22 pairs.
    let c = fc(&mut g, &mut rng, b, 27, Activation::None, (3.0, -2));
    g.mark_output(c);
    g
}

#[test]
fn narrow_fully_connected_layers_on_host_and_in_qemu_match_interpreter() {
    let graph = graph();
    let input = lcg_input(129);
    let host = varied_host_outputs(&graph, &input);
    let dsp = lower(&graph, KernelSet::CortexM4).unwrap();
    let narrow = (dsp.steps.iter())
        .filter(|s| {
            matches!(
                s.kind,
                StepKind::FullyConnectedQ15 {
                    weights: ConvWeights::Narrow(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(narrow, 3, "every layer should keep its weights int8");
    assert_host_exec_matches(&graph, &input, &host);
    for lang in [Lang::Rust, Lang::C] {
        let p = profile(
            &graph,
            "narrow_fc",
            &input,
            FirmwareKernels::Dsp,
            lang,
            &work_dir(),
        )
        .expect("profile");
        assert_eq!(p.outputs, host, "{lang:?} in QEMU");
    }
}
