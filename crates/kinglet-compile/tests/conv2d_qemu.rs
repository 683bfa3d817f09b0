//! int8 2D convolutions on kinglet-m4's 2D DSP kernels, natively on the emulated Cortex-M4F
//! (the host tests run their portable instruction models): an MNIST-like 3×3 VALID layer with
//! fused ReLU, a 3×3 SAME depthwise layer with ReLU, a SAME 5×3 layer with stride 2 and
//! vertical dilation 2 (odd filter rows, left-shift requantisation, no activation), a 2×3 SAME
//! depthwise layer with stride 2 (general requantisation), a 1×3 layer with stride 2 on a 2D
//! image — all must equal the host interpreter, in Rust (DSP kernels) and C (reference
//! kernels).
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, profile};
use kinglet_compile::program::StepKind;
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, lower};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding, QuantParams, TensorId};

mod common;
use common::{Lcg, assert_host_exec_matches, filter_layer, varied_host_outputs};

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware")
}

/// A Conv2D: (out_ch, kh, kw), stride, dilation, padding.
#[allow(clippy::too_many_arguments)]
fn conv(
    g: &mut Graph,
    rng: &mut Lcg,
    x: TensorId,
    (out_ch, kh, kw): (usize, usize, usize),
    stride: Hw,
    dilation: Hw,
    padding: Padding,
    act: Activation,
    out_q: (f32, i32),
) -> TensorId {
    let in_ch = *g.tensor(x).shape.last().unwrap();
    let kind = OpKind::Conv2D {
        stride,
        dilation,
        padding,
        activation: act,
    };
    let scales = (0..out_ch).map(|o| 0.003 + 0.0007 * o as f32).collect();
    filter_layer(g, rng, x, kind, [out_ch, kh, kw, in_ch], scales, out_q)
}

/// A depthwise Conv2D (multiplier 1): (kh, kw), stride, padding.
#[allow(clippy::too_many_arguments)]
fn depthwise(
    g: &mut Graph,
    rng: &mut Lcg,
    x: TensorId,
    (kh, kw): (usize, usize),
    stride: Hw,
    padding: Padding,
    act: Activation,
    out_q: (f32, i32),
) -> TensorId {
    let channels = *g.tensor(x).shape.last().unwrap();
    let kind = OpKind::DepthwiseConv2D {
        stride,
        dilation: Hw::ONE,
        padding,
        depth_multiplier: 1,
        activation: act,
    };
    let scales = (0..channels).map(|o| 0.01 + 0.002 * o as f32).collect();
    filter_layer(g, rng, x, kind, [1, kh, kw, channels], scales, out_q)
}

fn graph() -> Graph {
    let mut rng = Lcg(31);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        &[1, 12, 12, 1],
        DType::I8,
        Some(QuantParams::per_tensor(0.02, -9)),
    );
    // 10×10×12.
    let a = conv(
        &mut g,
        &mut rng,
        x,
        (12, 3, 3),
        Hw::ONE,
        Hw::ONE,
        Padding::Valid,
        Activation::Relu,
        (0.05, -128),
    );
    // 10×10×12.
    let a = depthwise(
        &mut g,
        &mut rng,
        a,
        (3, 3),
        Hw::ONE,
        Padding::Same,
        Activation::Relu,
        (0.08, -128),
    );
    // 5×5×5, left shifts (small output scale).
    let c = conv(
        &mut g,
        &mut rng,
        a,
        (5, 5, 3),
        Hw::new(2, 2),
        Hw::new(2, 1),
        Padding::Same,
        Activation::None,
        (0.0004, 6),
    );
    // 5×5×5 → 3×3×5.
    let c = depthwise(
        &mut g,
        &mut rng,
        c,
        (2, 3),
        Hw::new(2, 2),
        Padding::Same,
        Activation::None,
        (0.5, 4),
    );
    // 3×1×3.
    let d = conv(
        &mut g,
        &mut rng,
        c,
        (3, 1, 3),
        Hw::new(1, 2),
        Hw::ONE,
        Padding::Valid,
        Activation::Relu6,
        (0.01, -100),
    );
    let r = g
        .add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![1, 9],
            },
            &[d],
            "flat",
        )
        .unwrap();
    g.tensor_mut(r).quant = Some(QuantParams::per_tensor(0.01, -100));
    let w: Vec<i8> = (0..4 * 9).map(|_| rng.range(-127, 127) as i8).collect();
    let w = g
        .add_constant_i8("fc_w", &[4, 9], &w, Some(QuantParams::per_tensor(0.01, 0)))
        .unwrap();
    let b = g
        .add_constant_i32(
            "fc_b",
            &[4],
            &[100, -50, 20, 0],
            Some(QuantParams::per_tensor(0.0001, 0)),
        )
        .unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[r, w, b], "logits").unwrap();
    g.tensor_mut(y).quant = Some(QuantParams::per_tensor(0.03, 2));
    g.mark_output(y);
    g
}

#[test]
fn conv2d_dsp_kernel_on_host_and_in_qemu_matches_interpreter() {
    let graph = graph();
    let input = lcg_input(144);
    let host = varied_host_outputs(&graph, &input);
    let dsp = lower(&graph, KernelSet::CortexM4).unwrap();
    let dsp_convs = (dsp.steps.iter())
        .filter(|s| matches!(s.kind, StepKind::DspConv2D(_)))
        .count();
    assert_eq!(
        dsp_convs, 5,
        "every convolution should take a 2D DSP kernel"
    );
    assert_host_exec_matches(&graph, &input, &host);
    for (kernels, lang) in [
        (FirmwareKernels::Dsp, Lang::Rust),
        (FirmwareKernels::Reference, Lang::Rust),
        (FirmwareKernels::Dsp, Lang::C),
    ] {
        let p = profile(&graph, "conv2d", &input, kernels, lang, &work_dir()).expect("profile");
        eprintln!(
            "{kernels:?} {lang:?}: {}",
            serde_json::to_string(&p.layers).unwrap()
        );
        assert_eq!(p.outputs, host, "{kernels:?} {lang:?} in QEMU");
    }
}
