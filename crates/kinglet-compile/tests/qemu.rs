//! On the emulated Cortex-M4F: the instruction counter is exact, and compiled anchor models
//! give the TFLite outputs with both kernel sets; the synthetic shapes also run on the
//! Cortex-M3 and RISC-V (tests/other_cores.rs has the rest of those cores). Needs
//! qemu-system-arm, qemu-system-riscv32 and the rustup targets (CI installs them).
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, profile, run_harness};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, exec, lower};
use kinglet_graph::Graph;

mod common;
use common::{assert_host_exec_matches, varied_host_outputs};

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware")
}

fn seed_model(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-graph/tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Graph::from_tflite_bytes(&bytes).expect("parse")
}

#[test]
fn counter_measures_the_known_loop_exactly() {
    let (report, _) = run_harness(&work_dir()).expect("harness runs");
    assert_eq!(report.known_loop, 3001);
}

fn check_model(name: &str, expected: &[i32]) {
    let graph = seed_model(name);
    let input = lcg_input(graph.tensor(graph.inputs[0]).elements());
    let host: Vec<i32> = exec::run(&lower(&graph, KernelSet::Reference).unwrap(), &input)
        .unwrap()
        .into_iter()
        .map(i32::from)
        .collect();
    assert_eq!(host, expected);
    for kernels in [FirmwareKernels::Dsp, FirmwareKernels::Reference] {
        let p = profile(&graph, name, &input, kernels, Lang::Rust, &work_dir()).expect("profile");
        eprintln!("{}", serde_json::to_string(&p).unwrap());
        assert_eq!(p.outputs, expected, "{name} {kernels:?}");
        assert_eq!(p.host_outputs, expected, "{name} host interpreter");
        assert_eq!(p.known_loop_instructions, 3001);
        assert_eq!(
            p.layers.len(),
            p.layers.iter().filter(|l| l.instructions > 0).count()
        );
    }
    let p = profile(
        &graph,
        name,
        &input,
        FirmwareKernels::Dsp,
        Lang::C,
        &work_dir(),
    )
    .expect("profile C");
    eprintln!("{}", serde_json::to_string(&p).unwrap());
    assert_eq!(p.outputs, expected, "{name} C output in QEMU");
}

#[test]
fn big_anchor_in_qemu_matches_tflite_and_host() {
    check_model("B_s123_1IN_int8.tflite", &[-38, -22, -32, -7, -20, -22]);
}

#[test]
fn little_anchor_in_qemu_matches_tflite_and_host() {
    check_model("S0_s3_int8.tflite", &[-44, 70]);
}

mod synthetic {
    use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding, QuantParams, TensorId};

    use crate::common::{Lcg, filter_layer};

    fn conv(
        g: &mut Graph,
        rng: &mut Lcg,
        x: TensorId,
        in_ch: usize,
        out_ch: usize,
        act: Activation,
        out_q: (f32, i32),
    ) -> TensorId {
        conv_k(g, rng, x, (in_ch, out_ch, 3, Padding::Same), act, out_q)
    }

    /// A 1D convolution with `kernel` taps: (in_ch, out_ch, kernel, padding).
    fn conv_k(
        g: &mut Graph,
        rng: &mut Lcg,
        x: TensorId,
        (in_ch, out_ch, kernel, padding): (usize, usize, usize, Padding),
        act: Activation,
        out_q: (f32, i32),
    ) -> TensorId {
        let kind = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding,
            activation: act,
        };
        let scales = (0..out_ch).map(|o| 0.004 + 0.001 * o as f32).collect();
        filter_layer(g, rng, x, kind, [out_ch, 1, kernel, in_ch], scales, out_q)
    }

    /// A 1D depthwise convolution (multiplier 1, SAME) with `kernel` taps.
    fn depthwise(
        g: &mut Graph,
        rng: &mut Lcg,
        x: TensorId,
        (channels, kernel): (usize, usize),
        act: Activation,
        out_q: (f32, i32),
    ) -> TensorId {
        let kind = OpKind::DepthwiseConv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Same,
            depth_multiplier: 1,
            activation: act,
        };
        let scales = (0..channels).map(|o| 0.01 + 0.002 * o as f32).collect();
        filter_layer(g, rng, x, kind, [1, 1, kernel, channels], scales, out_q)
    }

    /// Shapes and quantisation the anchor models do not reach: a two-channel block with an
    /// odd number of pairs and no activation (general requantisation), single-channel blocks,
    /// a left-shift multiplier, convolutions without pooling, kernels 5 and 7, a pointwise
    /// and a VALID convolution, a depthwise convolution, a fully-connected block of one.
    pub fn graph() -> Graph {
        let mut rng = Lcg(99);
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            &[1, 1, 20, 3],
            DType::I8,
            Some(QuantParams::per_tensor(0.05, 3)),
        );
        let a = conv(&mut g, &mut rng, x, 3, 6, Activation::None, (0.9, -5));
        let c = conv(&mut g, &mut rng, a, 6, 3, Activation::Relu, (0.4, -100));
        let pool = OpKind::MaxPool2D {
            filter: Hw::new(1, 2),
            stride: Hw::new(1, 2),
            padding: Padding::Valid,
            activation: Activation::None,
        };
        let p = g.add_op_inferred(pool, &[c], "pool").unwrap();
        g.tensor_mut(p).quant = Some(QuantParams::per_tensor(0.4, -100));
        let d = conv(&mut g, &mut rng, p, 3, 4, Activation::Relu6, (0.0015, -128));
        let same = Padding::Same;
        let e = conv_k(
            &mut g,
            &mut rng,
            d,
            (4, 5, 5, same),
            Activation::None,
            (0.002, 10),
        );
        let f = depthwise(&mut g, &mut rng, e, (5, 5), Activation::None, (0.003, -7));
        let h = conv_k(
            &mut g,
            &mut rng,
            f,
            (5, 6, 1, Padding::Valid),
            Activation::Relu,
            (0.004, -128),
        );
        let i = conv_k(
            &mut g,
            &mut rng,
            h,
            (6, 4, 7, same),
            Activation::Relu,
            (0.01, -128),
        );
        let j = conv_k(
            &mut g,
            &mut rng,
            i,
            (4, 5, 3, Padding::Valid),
            Activation::None,
            (0.02, 3),
        );
        // Width 10 − 2 = 8 positions × 5 channels.
        let r = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 40],
                },
                &[j],
                "flat",
            )
            .unwrap();
        g.tensor_mut(r).quant = Some(QuantParams::per_tensor(0.02, 3));
        let w: Vec<i8> = (0..5 * 40).map(|_| rng.range(-127, 127) as i8).collect();
        let w = g
            .add_constant_i8("fc_w", &[5, 40], &w, Some(QuantParams::per_tensor(0.01, 0)))
            .unwrap();
        let b: Vec<i32> = (0..5).map(|_| rng.range(-500, 500)).collect();
        let b = g
            .add_constant_i32("fc_b", &[5], &b, Some(QuantParams::per_tensor(0.000015, 0)))
            .unwrap();
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let y = g.add_op_inferred(fc, &[r, w, b], "logits").unwrap();
        g.tensor_mut(y).quant = Some(QuantParams::per_tensor(0.05, 7));
        g.mark_output(y);
        g
    }
}

#[test]
fn synthetic_shapes_in_qemu_match_host() {
    let graph = synthetic::graph();
    let input = lcg_input(60);
    let host = varied_host_outputs(&graph, &input);
    let dsp = lower(&graph, KernelSet::CortexM4).unwrap();
    let reference_steps: Vec<String> = (dsp.steps.iter())
        .filter(|s| format!("{:?}", s.kind).starts_with("Ref"))
        .map(|s| format!("{:?}", s.kind).chars().take(30).collect())
        .collect();
    assert!(
        reference_steps.is_empty(),
        "every op should take a DSP kernel: {reference_steps:?}"
    );
    assert_host_exec_matches(&graph, &input, &host);
    let p = profile(
        &graph,
        "synthetic",
        &input,
        FirmwareKernels::Dsp,
        Lang::Rust,
        &work_dir(),
    )
    .expect("profile");
    assert_eq!(p.outputs, host);
    let p = profile(
        &graph,
        "synthetic",
        &input,
        FirmwareKernels::Dsp,
        Lang::C,
        &work_dir(),
    )
    .expect("profile C");
    assert_eq!(p.outputs, host);
}

/// The same shapes with the Cortex-M3's and RISC-V's inner loops (two-channel blocks with an
/// odd pair count, single-channel blocks, convolutions with and without pooling), each against
/// the host.
#[test]
fn synthetic_shapes_on_m3_and_riscv_match_host() {
    use kinglet_compile::firmware::profile_on;
    use kinglet_compile::target::{CortexM3, Riscv32, Target};
    let graph = synthetic::graph();
    let input = lcg_input(60);
    let host = varied_host_outputs(&graph, &input);
    let cores: [&dyn Target; 2] = [&CortexM3, &Riscv32];
    for core in cores {
        let p = profile_on(
            core,
            &graph,
            "synthetic",
            &input,
            FirmwareKernels::Dsp,
            Lang::Rust,
            &work_dir(),
            true,
        )
        .unwrap_or_else(|e| panic!("profile on {}: {e}", core.name()));
        assert_eq!(p.outputs, host, "{}", core.name());
    }
}
