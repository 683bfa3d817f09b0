//! Graph passes keep outputs bit-identical: every seed model and a hand-built graph per
//! pattern is run by the interpreter before and after, and the optimised model is written as
//! `.tflite`, read back and run again.

use std::path::PathBuf;

use kinglet_graph::passes::{
    Pass, PassOptions, fold_batch_norm, fold_constants, fuse_activations, optimize_graph,
    optimize_graph_with, remove_dead_ops, simplify_reshapes,
};
use kinglet_graph::{
    Activation, DType, Graph, Hw, Interpreter, OpKind, Padding, QuantParams, TfliteKernels,
};

fn fixture(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Graph::from_tflite_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Deterministic input bytes for every graph input (LCG of the seed README); float inputs get
/// values in [-4, 4).
fn inputs_for(g: &Graph, seed: u32) -> Vec<Vec<u8>> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        ((s >> 16) & 0xff) as u8
    };
    g.inputs
        .iter()
        .map(|id| {
            let t = g.tensor(*id);
            match t.dtype {
                DType::F32 => (0..t.elements())
                    .flat_map(|_| ((f32::from(next()) - 128.0) / 32.0).to_le_bytes())
                    .collect(),
                _ => (0..t.byte_size()).map(|_| next()).collect(),
            }
        })
        .collect()
}

fn run(g: &Graph, kernels: TfliteKernels, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut it = Interpreter::with_kernels(g, kernels).expect("interpreter");
    for (i, bytes) in inputs.iter().enumerate() {
        it.set_input_bytes(i, bytes).unwrap();
    }
    it.invoke().unwrap();
    (0..g.outputs.len())
        .map(|i| it.output_bytes(i).unwrap().to_vec())
        .collect()
}

/// Outputs of `after` (and of `after` written and read back) equal those of `before`, byte for
/// byte, in every kernel configuration, on several inputs.
fn assert_same_outputs(before: &Graph, after: &Graph, what: &str) {
    let bytes = after.to_tflite_bytes().unwrap();
    let reread = Graph::from_tflite_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    for kernels in [
        TfliteKernels::Default,
        TfliteKernels::Builtin,
        TfliteKernels::Reference,
    ] {
        for seed in [12345, 7, 99] {
            let inputs = inputs_for(before, seed);
            let want = run(before, kernels, &inputs);
            assert_eq!(
                run(after, kernels, &inputs),
                want,
                "{what} {kernels:?} {seed}"
            );
            assert_eq!(
                run(&reread, kernels, &inputs),
                want,
                "{what} re-read {kernels:?}"
            );
        }
    }
}

fn count(g: &Graph, name: &str) -> usize {
    g.ops.iter().filter(|o| o.kind.name() == name).count()
}

#[test]
fn seed_models_optimise_without_changing_a_bit() {
    for name in [
        "B_s123_1IN_91.tflite",
        "B_s123_3IN_91.tflite",
        "B_s123_1IN_int8.tflite",
        "S0_s3.tflite",
        "S0_s3_int8.tflite",
        "S1_s3.tflite",
        "S5_s3.tflite",
        "dual_motions.tflite",
        "zoo_f32.tflite",
        "zoo_i8.tflite",
    ] {
        let g = fixture(name);
        let (opt, reports) = optimize_graph(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reports.len(), Pass::DEFAULT_PIPELINE.len());
        assert!(opt.ops.len() <= g.ops.len(), "{name}");
        assert_eq!(reports[0].before.ops, g.ops.len());
        assert_eq!(reports.last().unwrap().after.ops, opt.ops.len());
        assert_same_outputs(&g, &opt, name);
    }
}

#[test]
fn seed_conv1d_blocks_lose_their_pool_reshapes() {
    // RESHAPE→CONV→RESHAPE→MAX_POOL(2×1)→RESHAPE blocks: the pool runs on W instead, and only
    // the input reshape (graph input rank 3 → conv rank 4) is left.
    for (name, pools) in [
        ("B_s123_1IN_91.tflite", 5),
        ("S0_s3.tflite", 3),
        ("dual_motions.tflite", 3),
    ] {
        let g = fixture(name);
        let (opt, _) = optimize_graph(&g).unwrap();
        assert_eq!(count(&g, "MAX_POOL_2D"), pools);
        assert_eq!(count(&opt, "MAX_POOL_2D"), pools, "{name}");
        assert_eq!(count(&opt, "RESHAPE"), 1, "{name}");
        assert_eq!(opt.ops.len(), g.ops.len() - 2 * pools, "{name}");
        for op in &opt.ops {
            if let OpKind::MaxPool2D { filter, stride, .. } = op.kind {
                assert_eq!((filter, stride), (Hw::new(1, 2), Hw::new(1, 2)));
            }
        }
    }
}

fn conv(act: Activation) -> OpKind {
    OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation: act,
    }
}

fn fc(act: Activation) -> OpKind {
    OpKind::FullyConnected {
        activation: act,
        keep_num_dims: false,
    }
}

fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (((s >> 16) & 0xff) as f32 - 127.5) * scale
        })
        .collect()
}

/// Float conv (optionally with bias) followed by `ADD(per-channel constant, relu)` and a FC.
fn conv_then_add(with_bias: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 1, 16, 3], DType::F32, None);
    let w = g
        .add_constant_f32("w", &[4, 1, 3, 3], &values(36, 1, 0.01))
        .unwrap();
    let mut ins = vec![x, w];
    if with_bias {
        ins.push(g.add_constant_f32("b", &[4], &values(4, 2, 0.003)).unwrap());
    }
    let y = g
        .add_op_inferred(conv(Activation::None), &ins, "y")
        .unwrap();
    let shift = values(4, 3, 0.01);
    let full: Vec<f32> = (0..16).flat_map(|_| shift.clone()).collect();
    let c = g
        .add_constant_f32("bn_shift", &[1, 1, 16, 4], &full)
        .unwrap();
    let z = g
        .add_op_inferred(
            OpKind::Add {
                activation: Activation::Relu,
            },
            &[y, c],
            "z",
        )
        .unwrap();
    let fw = g
        .add_constant_f32("fw", &[2, 64], &values(128, 4, 0.01))
        .unwrap();
    let out = g
        .add_op_inferred(fc(Activation::None), &[z, fw], "out")
        .unwrap();
    g.mark_output(out);
    g.validate().unwrap();
    g
}

#[test]
fn batch_norm_shift_folds_exactly_into_a_biasless_conv() {
    let g = conv_then_add(false);
    let (opt, report) = fold_batch_norm(&g, PassOptions::default()).unwrap();
    assert_eq!(count(&opt, "ADD"), 0, "{:?}", report.skipped);
    assert_eq!(opt.ops[0].inputs.len(), 3);
    assert_eq!(opt.ops[0].kind.activation(), Activation::Relu);
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.after.ops, 2);
    assert!(report.after.weight_bytes < report.before.weight_bytes);
    assert_same_outputs(&g, &opt, "conv+add");
}

#[test]
fn batch_norm_shift_into_a_biased_conv_needs_inexact_mode() {
    let g = conv_then_add(true);
    let (kept, report) = fold_batch_norm(&g, PassOptions::default()).unwrap();
    assert_eq!(kept, g);
    assert!(
        report.skipped[0].contains("round differently"),
        "{report:?}"
    );
    let (folded, report) = fold_batch_norm(
        &g,
        PassOptions {
            exact: false,
            ..PassOptions::default()
        },
    )
    .unwrap();
    assert_eq!(count(&folded, "ADD"), 0);
    assert!(report.changes[0].contains("may differ"));
    let inputs = inputs_for(&g, 5);
    let (a, b) = (
        run(&g, TfliteKernels::Default, &inputs),
        run(&folded, TfliteKernels::Default, &inputs),
    );
    let f = |v: &[u8]| -> Vec<f32> {
        v.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    for (x, y) in f(&a[0]).iter().zip(f(&b[0])) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
    }
}

/// Conv (no bias) → 1×1 depthwise scale with shift bias (a batch norm as a converter may emit
/// it) → output.
fn conv_then_depthwise_scale(scale: &[f32]) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 4, 4, 2], DType::F32, None);
    let w = g
        .add_constant_f32("w", &[3, 3, 3, 2], &values(54, 8, 0.02))
        .unwrap();
    let y = g
        .add_op_inferred(conv(Activation::None), &[x, w], "y")
        .unwrap();
    let s = g
        .add_constant_f32("bn_scale", &[1, 1, 1, 3], scale)
        .unwrap();
    let t = g
        .add_constant_f32("bn_shift", &[3], &values(3, 9, 0.01))
        .unwrap();
    let dw = OpKind::DepthwiseConv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Valid,
        depth_multiplier: 1,
        activation: Activation::Relu6,
    };
    let z = g.add_op_inferred(dw, &[y, s, t], "z").unwrap();
    g.mark_output(z);
    g.validate().unwrap();
    g
}

#[test]
fn power_of_two_batch_norm_scale_folds_exactly() {
    let g = conv_then_depthwise_scale(&[0.5, 2.0, 0.25]);
    let (opt, report) = fold_batch_norm(&g, PassOptions::default()).unwrap();
    assert_eq!(opt.ops.len(), 1, "{report:?}");
    assert_eq!(opt.ops[0].kind.activation(), Activation::Relu6);
    assert_same_outputs(&g, &opt, "conv+dw scale");

    let g = conv_then_depthwise_scale(&[0.3, 1.7, 0.9]);
    let (kept, _) = fold_batch_norm(&g, PassOptions::default()).unwrap();
    assert_eq!(kept.ops.len(), 2);
    let (folded, _) = fold_batch_norm(
        &g,
        PassOptions {
            exact: false,
            ..PassOptions::default()
        },
    )
    .unwrap();
    assert_eq!(folded.ops.len(), 1);
}

fn q(scale: f32, zp: i32) -> Option<QuantParams> {
    Some(QuantParams::per_tensor(scale, zp))
}

#[test]
fn max_pool_activation_moves_into_the_producer_float_and_int8() {
    // Float.
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 4, 4, 2], DType::F32, None);
    let w = g
        .add_constant_f32("w", &[3, 3, 3, 2], &values(54, 11, 0.05))
        .unwrap();
    let y = g
        .add_op_inferred(conv(Activation::None), &[x, w], "y")
        .unwrap();
    let pool = OpKind::MaxPool2D {
        filter: Hw::new(2, 2),
        stride: Hw::new(2, 2),
        padding: Padding::Valid,
        activation: Activation::Relu6,
    };
    let z = g.add_op_inferred(pool.clone(), &[y], "z").unwrap();
    g.mark_output(z);
    let (opt, report) = fuse_activations(&g).unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(opt.ops[0].kind.activation(), Activation::Relu6);
    assert_eq!(opt.ops[1].kind.activation(), Activation::None);
    assert_same_outputs(&g, &opt, "float conv+pool relu6");

    // Int8: the pool keeps its input's quantisation, so the clamp range is the same.
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 4, 4, 2], DType::I8, q(0.05, -3));
    let wv: Vec<i8> = (0..54).map(|i| ((i * 37) % 255 - 127) as i8).collect();
    let w = g
        .add_constant_i8("w", &[3, 3, 3, 2], &wv, q(0.01, 0))
        .unwrap();
    let b = g
        .add_constant_i32("b", &[3], &[100, -2000, 50], q(0.0005, 0))
        .unwrap();
    let y = g
        .add_op_inferred(conv(Activation::Relu), &[x, w, b], "y")
        .unwrap();
    g.tensor_mut(y).quant = q(0.04, -20);
    let z = g.add_op_inferred(pool, &[y], "z").unwrap();
    g.tensor_mut(z).quant = q(0.04, -20);
    g.mark_output(z);
    g.validate().unwrap();
    let (opt, report) = fuse_activations(&g).unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(opt.ops[0].kind.activation(), Activation::Relu6);
    assert_same_outputs(&g, &opt, "int8 conv+pool relu6");
}

/// x → FC(weights) with the weights given as `weights` (a constant or the result of ops on
/// constants), then softmax.
fn fc_graph(build_weights: impl FnOnce(&mut Graph) -> kinglet_graph::TensorId) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 8], DType::F32, None);
    let w = build_weights(&mut g);
    let b = g.add_constant_f32("b", &[4], &values(4, 20, 0.01)).unwrap();
    let y = g
        .add_op_inferred(fc(Activation::Relu), &[x, w, b], "y")
        .unwrap();
    let z = g
        .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[y], "z")
        .unwrap();
    g.mark_output(z);
    g.validate().unwrap();
    g
}

fn f16_bits(v: f32) -> u16 {
    // Test inputs are chosen exactly representable in f16 (k/64 for small k).
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if v == 0.0 {
        return sign;
    }
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    assert!(
        (1..31).contains(&exp) && bits & 0x1fff == 0,
        "{v} is not an f16 value"
    );
    sign | ((exp as u16) << 10) | ((bits >> 13) & 0x3ff) as u16
}

#[test]
fn float16_weights_fold_into_runnable_f32_constants() {
    let w: Vec<f32> = (0..32).map(|i| (i as f32 - 15.0) / 64.0).collect();
    let reference = fc_graph(|g| g.add_constant_f32("w", &[4, 8], &w).unwrap());
    let half = fc_graph(|g| {
        let bytes = w.iter().flat_map(|v| f16_bits(*v).to_le_bytes()).collect();
        let h = g
            .add_constant("w_f16", &[4, 8], DType::F16, None, bytes)
            .unwrap();
        g.add_op_inferred(OpKind::Dequantize, &[h], "w").unwrap()
    });
    // kinglet's FC kernel needs constant f32 weights, so the unfolded model does not run.
    assert!(Interpreter::new(&half).is_err());
    let (folded, report) = fold_constants(&half, PassOptions::default()).unwrap();
    assert_eq!(count(&folded, "DEQUANTIZE"), 0, "{report:?}");
    assert_eq!(report.before.weight_bytes, 64 + 16);
    assert_eq!(report.after.weight_bytes, 128 + 16);
    assert_same_outputs(&reference, &folded, "float16 fold");
}

#[test]
fn int8_dequantize_and_reshape_of_constants_fold() {
    let qv: Vec<i8> = (0..32).map(|i| (i * 7 - 100) as i8).collect();
    let (s, z) = (0.013f32, 3);
    let deq: Vec<f32> = qv
        .iter()
        .map(|v| (f64::from(s) * (f64::from(*v) - f64::from(z))) as f32)
        .collect();
    let reference = fc_graph(|g| g.add_constant_f32("w", &[4, 8], &deq).unwrap());
    let dynamic = fc_graph(|g| {
        let c = g.add_constant_i8("wq", &[32], &qv, q(s, z)).unwrap();
        let d = g.add_op_inferred(OpKind::Dequantize, &[c], "wd").unwrap();
        g.add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![4, 8],
            },
            &[d],
            "w",
        )
        .unwrap()
    });
    let (folded, report) = fold_constants(&dynamic, PassOptions::default()).unwrap();
    assert_eq!(report.changes.len(), 2, "{report:?}");
    assert_eq!(folded.ops.len(), 2);
    assert_same_outputs(&reference, &folded, "int8 dequantize + reshape fold");

    // Per-axis (per output row) int8 weights.
    let scales = [0.01f32, 0.02, 0.005, 0.03];
    let deq: Vec<f32> = qv
        .iter()
        .enumerate()
        .map(|(i, v)| (f64::from(scales[i / 8]) * f64::from(*v)) as f32)
        .collect();
    let reference = fc_graph(|g| g.add_constant_f32("w", &[4, 8], &deq).unwrap());
    let per_axis = fc_graph(|g| {
        let qp = QuantParams::per_axis(scales.to_vec(), vec![0; 4], 0);
        let c = g.add_constant_i8("wq", &[4, 8], &qv, Some(qp)).unwrap();
        g.add_op_inferred(OpKind::Dequantize, &[c], "w").unwrap()
    });
    let (folded, _) = fold_constants(&per_axis, PassOptions::default()).unwrap();
    assert_same_outputs(&reference, &folded, "per-axis dequantize fold");
}

#[test]
fn dead_ops_and_their_tensors_are_removed() {
    let mut g = conv_then_add(false);
    let x = g.inputs[0];
    let w2 = g
        .add_constant_f32("unused_w", &[2, 48], &values(96, 30, 0.01))
        .unwrap();
    let dead = g
        .add_op_inferred(fc(Activation::None), &[x, w2], "dead")
        .unwrap();
    g.add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[dead], "dead2")
        .unwrap();
    g.add_constant_f32("orphan", &[3], &[1.0, 2.0, 3.0])
        .unwrap();
    let (opt, report) = remove_dead_ops(&g).unwrap();
    assert_eq!(opt.ops.len(), g.ops.len() - 2);
    assert_eq!(opt.tensors.len(), g.tensors.len() - 4);
    assert_eq!(report.changes.len(), 3, "{report:?}");
    assert_same_outputs(&g, &opt, "dead ops");
}

#[test]
fn identity_and_chained_reshapes_collapse() {
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 2, 4, 3], DType::U8, q(0.5, 128));
    let r = |s: &[usize]| OpKind::Reshape {
        new_shape: s.to_vec(),
    };
    let a = g.add_op_inferred(r(&[1, 24]), &[x], "a").unwrap();
    g.tensor_mut(a).quant = q(0.5, 128);
    let b = g.add_op_inferred(r(&[1, 4, 2, 3]), &[a], "b").unwrap();
    g.tensor_mut(b).quant = q(0.5, 128);
    let pool = OpKind::AvgPool2D {
        filter: Hw::new(2, 2),
        stride: Hw::ONE,
        padding: Padding::Same,
        activation: Activation::None,
    };
    let c = g.add_op_inferred(pool, &[b], "c").unwrap();
    g.tensor_mut(c).quant = q(0.5, 128);
    let d = g.add_op_inferred(r(&[1, 4, 2, 3]), &[c], "d").unwrap();
    g.tensor_mut(d).quant = q(0.5, 128);
    g.mark_output(d);
    g.validate().unwrap();
    let (opt, report) = simplify_reshapes(&g).unwrap();
    // x → RESHAPE(one, collapsed) → AVG_POOL writing the output directly.
    assert_eq!(opt.ops.len(), 2, "{report:?}");
    assert_eq!(count(&opt, "RESHAPE"), 1);
    assert_eq!(opt.tensor(opt.outputs[0]).name, "d");
    assert_same_outputs(&g, &opt, "reshape chain");
}

#[test]
fn pipeline_is_idempotent_and_passes_compose_in_any_order() {
    let g = fixture("B_s123_3IN_91.tflite");
    let (once, _) = optimize_graph(&g).unwrap();
    let (twice, reports) = optimize_graph(&once).unwrap();
    assert_eq!(once, twice);
    assert!(reports.iter().all(|r| r.changes.is_empty()));
    let mut reversed = Pass::DEFAULT_PIPELINE;
    reversed.reverse();
    let (other, _) = optimize_graph_with(&g, &reversed, PassOptions::default()).unwrap();
    assert_same_outputs(&g, &other, "reversed pipeline");
}

#[test]
fn tensorflow_float16_model_becomes_runnable_and_matches_tflite() {
    // scripts/passes_float16_fixture.py: Keras conv → batch norm → relu → pool → dense,
    // converted to float16 weights (DEQUANTIZE ops feeding the conv and dense layers).
    let g = fixture("cnn_bn_f16.tflite");
    assert_eq!(count(&g, "DEQUANTIZE"), 3);
    assert!(Interpreter::new(&g).is_err());
    let (opt, reports) = optimize_graph(&g).unwrap();
    assert_eq!(count(&opt, "DEQUANTIZE"), 0);
    assert_eq!(count(&opt, "RESHAPE"), 0);
    assert_eq!(reports[0].changes.len(), 3, "{:?}", reports[0]);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/passes_cnn_f16.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let list = |key: &str| -> Vec<f32> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let input = list("input");
    let reread = Graph::from_tflite_bytes(&opt.to_tflite_bytes().unwrap()).unwrap();
    for (kernels, key) in [
        (TfliteKernels::Builtin, "builtin"),
        (TfliteKernels::Reference, "reference"),
    ] {
        for graph in [&opt, &reread] {
            let mut it = Interpreter::with_kernels(graph, kernels).unwrap();
            it.set_input(0, &input).unwrap();
            it.invoke().unwrap();
            let got = it.output::<f32>(0).unwrap();
            let want = list(key);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5, "{key}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn ops_on_constants_are_evaluated_by_the_interpreter_kernels() {
    // CONCATENATION of two constant halves → f32 FC weights.
    let w: Vec<f32> = values(32, 40, 0.01);
    let reference = fc_graph(|g| g.add_constant_f32("w", &[4, 8], &w).unwrap());
    let concat = fc_graph(|g| {
        let a = g.add_constant_f32("top", &[2, 8], &w[..16]).unwrap();
        let b = g.add_constant_f32("bottom", &[2, 8], &w[16..]).unwrap();
        let cat = OpKind::Concatenation {
            axis: 0,
            activation: Activation::None,
        };
        g.add_op_inferred(cat, &[a, b], "w").unwrap()
    });
    let (folded, report) = fold_constants(&concat, PassOptions::default()).unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert_same_outputs(&reference, &folded, "concat fold");

    // QUANTIZE of float weights (multiples of the scale, so no rounding ties) → int8 conv.
    let int8_conv = |weights: &dyn Fn(&mut Graph) -> kinglet_graph::TensorId| {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 8, 2], DType::I8, q(0.1, 5));
        let w = weights(&mut g);
        let y = g
            .add_op_inferred(conv(Activation::None), &[x, w], "y")
            .unwrap();
        g.tensor_mut(y).quant = q(0.2, -7);
        g.mark_output(y);
        g.validate().unwrap();
        g
    };
    let ks: Vec<i8> = (0..18).map(|i| (i * 13 % 41 - 20) as i8).collect();
    let reference = int8_conv(&|g| {
        g.add_constant_i8("w", &[3, 1, 3, 2], &ks, q(0.0625, 0))
            .unwrap()
    });
    let quantize = int8_conv(&|g| {
        let real: Vec<f32> = ks.iter().map(|k| f32::from(*k) * 0.0625).collect();
        let f = g.add_constant_f32("w_f32", &[3, 1, 3, 2], &real).unwrap();
        let w = g.add_op_inferred(OpKind::Quantize, &[f], "w").unwrap();
        let t = g.tensor_mut(w);
        t.dtype = DType::I8;
        t.quant = q(0.0625, 0);
        w
    });
    let (folded, _) = fold_constants(&quantize, PassOptions::default()).unwrap();
    assert_eq!(folded.ops.len(), 1);
    assert_eq!(
        folded.tensor(folded.ops[0].inputs[1]).data,
        reference.tensor(reference.ops[0].inputs[1]).data
    );
    assert_same_outputs(&reference, &folded, "quantize fold");
}

#[test]
fn passes_reject_invalid_graphs_instead_of_panicking() {
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 4], DType::F32, None);
    let y = g.add_activation("y", &[1, 4], DType::F32, None);
    g.add_op(OpKind::Softmax { beta: 1.0 }, &[], &[y]);
    g.mark_output(y);
    let _ = x;
    for pass in Pass::DEFAULT_PIPELINE {
        assert!(pass.run(&g, PassOptions::default()).is_err(), "{pass:?}");
    }
}
