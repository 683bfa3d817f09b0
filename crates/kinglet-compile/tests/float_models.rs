//! Float models on the emulated Cortex-M4F: a small float32 CNN (conv, depthwise, max pool,
//! reshape, fully connected), its float16-weight version and its dynamic-range version each
//! compile, run in QEMU and give exactly (bit for bit) the host interpreter's float outputs;
//! float16 and dynamic range take less flash than float32. Needs qemu-system-arm and the
//! thumbv7em-none-eabihf target (CI installs both).
use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, Profile, compile, profile, write_c};
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compress::{DynamicConfig, quantize_dynamic, quantize_float16};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding};

mod common;
use common::Lcg;

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware-float")
}

/// x [1,12,12,2] → Conv2D 8×3×3 SAME ReLU → depthwise 3×3 VALID → max pool 2×2 → [1,200] →
/// fully connected 10 (logits).
fn float_cnn() -> Graph {
    let mut rng = Lcg(7);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 12, 12, 2], DType::F32, None);
    let w = g
        .add_constant_f32("conv_w", &[8, 3, 3, 2], &rng.units(144))
        .unwrap();
    let b = g.add_constant_f32("conv_b", &[8], &rng.units(8)).unwrap();
    let conv = OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation: Activation::Relu,
    };
    let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
    let dw = g
        .add_constant_f32("dw_w", &[1, 3, 3, 8], &rng.units(72))
        .unwrap();
    let db = g.add_constant_f32("dw_b", &[8], &rng.units(8)).unwrap();
    let depthwise = OpKind::DepthwiseConv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Valid,
        depth_multiplier: 1,
        activation: Activation::None,
    };
    let d = g.add_op_inferred(depthwise, &[c, dw, db], "dw").unwrap();
    let pool = OpKind::MaxPool2D {
        filter: Hw::new(2, 2),
        stride: Hw::new(2, 2),
        padding: Padding::Valid,
        activation: Activation::None,
    };
    let p = g.add_op_inferred(pool, &[d], "pool").unwrap();
    let flat = g
        .add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![1, 200],
            },
            &[p],
            "flat",
        )
        .unwrap();
    let fw = g
        .add_constant_f32("fc_w", &[10, 200], &rng.units(2000))
        .unwrap();
    let fb = g.add_constant_f32("fc_b", &[10], &rng.units(10)).unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[flat, fw, fb], "logits").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}

fn run(graph: &Graph, name: &str) -> Profile {
    let input = lcg_input(graph.tensor(graph.inputs[0]).elements());
    let p = profile(
        graph,
        name,
        &input,
        FirmwareKernels::Dsp,
        Lang::Rust,
        &work_dir(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("{}", serde_json::to_string(&p).unwrap());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(p.float_outputs.len(), 10, "{name}");
    assert_eq!(
        bits(&p.float_outputs),
        bits(&p.host_float_outputs),
        "{name}: QEMU {:?} vs host {:?}",
        p.float_outputs,
        p.host_float_outputs
    );
    assert!(p.outputs.is_empty() && p.host_outputs.is_empty());
    assert!(
        p.float_outputs.iter().any(|&v| v != p.float_outputs[0]),
        "{name}: degenerate outputs"
    );
    assert_eq!(p.known_loop_instructions, 3001);
    p
}

#[test]
fn float32_float16_and_dynamic_range_match_the_host_in_qemu() {
    let float = float_cnn();
    let half = quantize_float16(&float).expect("float16");
    let (dynamic, quantised) =
        quantize_dynamic(&float, &DynamicConfig { min_elements: 1 }).expect("dynamic");
    assert_eq!(quantised, 3, "conv, depthwise and FC weights become int8");

    let p32 = run(&float, "float_cnn_f32");
    let p16 = run(&half, "float_cnn_f16");
    let p8 = run(&dynamic, "float_cnn_dynamic");
    assert_eq!(p8.layers[0].name, "CONV_2D(hybrid)");

    // Float16 keeps half-float constants in flash; dynamic range int8 weights.
    assert_eq!(p32.model_constant_bytes, 4 * (144 + 8 + 72 + 8 + 2000 + 10));
    assert_eq!(p16.model_constant_bytes, 2 * (144 + 8 + 72 + 8 + 2000 + 10));
    assert!(p16.flash_bytes < p32.flash_bytes, "{p16:?} vs {p32:?}");
    assert!(p8.model_constant_bytes < p16.model_constant_bytes);
    // Float16 weights round the float32 ones (relative error ≤ 2^-11): the outputs stay
    // close but differ, so both the firmware and the host really used the half floats.
    assert_ne!(p16.float_outputs, p32.float_outputs);
    for (a, b) in p16.float_outputs.iter().zip(&p32.float_outputs) {
        assert!((a - b).abs() < 0.05, "{a} vs {b}");
    }
}

#[test]
fn c_output_rejects_float_models_clearly() {
    let compiled = compile(&float_cnn(), "float_cnn").expect("compiles to Rust");
    let dir = tempfile::tempdir().unwrap();
    let err = write_c(&compiled, "float_cnn", dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("C output covers int8 and a16w8 models"),
        "{err}"
    );
}

#[test]
fn mixed_int8_and_float_ends_are_rejected() {
    let mut g = float_cnn();
    let y = g.outputs[0];
    g.tensor_mut(y).dtype = DType::I8;
    let err = compile(&g, "mixed").err().expect("rejected");
    assert!(err.to_string().contains("mix float32"), "{err}");
}

/// Two graph inputs concatenated, then two fully-connected layers: exercises the caller's
/// input parts, float concatenation and the row-by-row float16 fully-connected kernel reading
/// the arena and writing the caller's output.
fn two_input_mlp() -> Graph {
    let mut rng = Lcg(11);
    let mut g = Graph::new();
    let a = g.add_input("a", &[1, 4], DType::F32, None);
    let b = g.add_input("b", &[1, 3], DType::F32, None);
    let cat = OpKind::Concatenation {
        axis: 1,
        activation: Activation::None,
    };
    let x = g.add_op_inferred(cat, &[a, b], "cat").unwrap();
    let w1 = g.add_constant_f32("w1", &[5, 7], &rng.units(35)).unwrap();
    let b1 = g.add_constant_f32("b1", &[5], &rng.units(5)).unwrap();
    let relu = OpKind::FullyConnected {
        activation: Activation::Relu,
        keep_num_dims: false,
    };
    let h = g.add_op_inferred(relu, &[x, w1, b1], "hidden").unwrap();
    let w2 = g.add_constant_f32("w2", &[3, 5], &rng.units(15)).unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[h, w2], "logits").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}

/// One fully-connected layer from the caller's input straight to the caller's output, with
/// weights that become float16 subnormals, signed zero, the largest half and ordinary values.
fn single_layer() -> Graph {
    let mut rng = Lcg(5);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 6], DType::F32, None);
    let weights = [
        5.960_464_5e-8,
        -0.0,
        1.0e-5,
        -3.0e-6,
        0.333,
        -2.0,
        6.103_515_6e-5,
        65504.0,
        -1.5,
        0.1,
        7.0e-7,
        -0.25,
    ];
    let w = g.add_constant_f32("w", &[2, 6], &weights).unwrap();
    let b = g.add_constant_f32("b", &[2], &rng.units(2)).unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[x, w, b], "y").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}

/// A mean over time (global average pooling of a [1, 5, 6] signal), then a fully-connected
/// layer.
fn mean_then_dense() -> Graph {
    let mut rng = Lcg(3);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 5, 6], DType::F32, None);
    let mean = OpKind::Mean {
        axes: vec![1],
        keep_dims: false,
    };
    let m = g.add_op_inferred(mean, &[x], "mean").unwrap();
    let w = g.add_constant_f32("w", &[2, 6], &rng.units(12)).unwrap();
    let b = g.add_constant_f32("b", &[2], &rng.units(2)).unwrap();
    let fc = OpKind::FullyConnected {
        activation: Activation::None,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(fc, &[m, w, b], "y").unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}

#[test]
fn float16_multi_input_mean_and_input_to_output_layers_match_the_host_in_qemu() {
    for (name, graph, outputs) in [
        ("two_input_mlp_f16", two_input_mlp(), 3),
        ("single_layer_f16", single_layer(), 2),
        ("mean_then_dense_f16", mean_then_dense(), 2),
    ] {
        let graph = quantize_float16(&graph).expect("float16");
        let len = graph
            .inputs
            .iter()
            .map(|&i| graph.tensor(i).elements())
            .sum();
        let p = profile(
            &graph,
            name,
            &lcg_input(len),
            FirmwareKernels::Dsp,
            Lang::Rust,
            &work_dir(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(p.float_outputs.len(), outputs, "{name}");
        assert_eq!(
            bits(&p.float_outputs),
            bits(&p.host_float_outputs),
            "{name}"
        );
        assert!(p.float_outputs.iter().any(|&v| v != 0.0), "{name}");
    }
}
