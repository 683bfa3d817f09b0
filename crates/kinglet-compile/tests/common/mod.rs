//! Deterministic test models shared by the integration tests (each test crate uses a part).
#![allow(dead_code)]

use kinglet_compile::{KernelSet, exec, lower};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding, QuantParams, TensorId};

/// Linear congruential generator: reproducible weights without a dependency.
pub struct Lcg(pub u32);

impl Lcg {
    /// The next 24-bit value.
    pub fn next(&mut self) -> i32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (self.0 >> 8) as i32
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.next().rem_euclid(hi - lo + 1)
    }

    /// Uniform in [-0.5, 0.5) on a 2^-24 grid (mostly not representable as float16).
    pub fn unit(&mut self) -> f32 {
        self.next() as f32 / 16_777_216.0 - 0.5
    }

    pub fn units(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

/// An int8 Conv2D or depthwise Conv2D (`kind`) on `x` with random weights of shape `filter`
/// (per-channel `scales`, zero points 0) and random bias, output quantised as `out_q`.
pub fn filter_layer(
    g: &mut Graph,
    rng: &mut Lcg,
    x: TensorId,
    kind: OpKind,
    filter: [usize; 4],
    scales: Vec<f32>,
    out_q: (f32, i32),
) -> TensorId {
    let (w_name, b_name, op_name, axis) = match kind {
        OpKind::DepthwiseConv2D { .. } => ("dw", "db", "depthwise", 3),
        _ => ("w", "b", "conv", 0),
    };
    let channels = filter[axis];
    let in_s = g.tensor(x).quant.as_ref().unwrap().scale[0];
    let w: Vec<i8> = (0..filter.iter().product::<usize>())
        .map(|_| rng.range(-127, 127) as i8)
        .collect();
    let w = g
        .add_constant_i8(
            w_name,
            &filter,
            &w,
            Some(QuantParams::per_axis(
                scales.clone(),
                vec![0; channels],
                axis,
            )),
        )
        .unwrap();
    let b: Vec<i32> = (0..channels).map(|_| rng.range(-3000, 3000)).collect();
    let bias_q = QuantParams::per_axis(
        scales.iter().map(|s| s * in_s).collect(),
        vec![0; channels],
        0,
    );
    let b = g
        .add_constant_i32(b_name, &[channels], &b, Some(bias_q))
        .unwrap();
    let y = g.add_op_inferred(kind, &[x, w, b], op_name).unwrap();
    g.tensor_mut(y).quant = Some(QuantParams::per_tensor(out_q.0, out_q.1));
    y
}

/// The host interpreter's outputs for `input`, which must take more than two values (a
/// degenerate model would hide wrong kernels).
pub fn varied_host_outputs(graph: &Graph, input: &[i8]) -> Vec<i32> {
    let host = kinglet_compile::firmware::host_outputs(graph, input).expect("host interpreter");
    let distinct: std::collections::BTreeSet<_> = host.iter().collect();
    assert!(distinct.len() > 2, "degenerate test model: {host:?}");
    host
}

/// The host executor gives `host` with both kernel sets.
pub fn assert_host_exec_matches(graph: &Graph, input: &[i8], host: &[i32]) {
    for kernels in [KernelSet::Reference, KernelSet::CortexM4] {
        let out: Vec<i32> = exec::run(&lower(graph, kernels).unwrap(), input)
            .unwrap()
            .into_iter()
            .map(i32::from)
            .collect();
        assert_eq!(out, host, "host exec {kernels:?}");
    }
}

pub const WIDTH: usize = 64;
pub const CHANNELS: usize = 6;

/// A small float HAR-shaped CNN (the sub-byte and a16w8 tests quantise it):
/// x [1,1,64,6] → conv 1×5 SAME ReLU (8) → max pool 1×2 → depthwise 1×3 SAME → pointwise conv
/// ReLU (12) → [1,384] → fully connected 16 ReLU → fully connected 6.
pub fn float_har_cnn() -> Graph {
    let mut rng = Lcg(41);
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 1, WIDTH, CHANNELS], DType::F32, None);
    let conv = |activation| OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation,
    };
    let w = g
        .add_constant_f32("c1_w", &[8, 1, 5, CHANNELS], &rng.units(8 * 5 * CHANNELS))
        .unwrap();
    let b = g.add_constant_f32("c1_b", &[8], &rng.units(8)).unwrap();
    let c1 = g
        .add_op_inferred(conv(Activation::Relu), &[x, w, b], "c1")
        .unwrap();
    let pool = OpKind::MaxPool2D {
        filter: Hw::new(1, 2),
        stride: Hw::new(1, 2),
        padding: Padding::Valid,
        activation: Activation::None,
    };
    let p = g.add_op_inferred(pool, &[c1], "pool").unwrap();
    let dw = g
        .add_constant_f32("dw_w", &[1, 1, 3, 8], &rng.units(24))
        .unwrap();
    let db = g.add_constant_f32("dw_b", &[8], &rng.units(8)).unwrap();
    let depthwise = OpKind::DepthwiseConv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        depth_multiplier: 1,
        activation: Activation::None,
    };
    let d = g.add_op_inferred(depthwise, &[p, dw, db], "dw").unwrap();
    let pw = g
        .add_constant_f32("pw_w", &[12, 1, 1, 8], &rng.units(96))
        .unwrap();
    let pb = g.add_constant_f32("pw_b", &[12], &rng.units(12)).unwrap();
    let c2 = g
        .add_op_inferred(conv(Activation::Relu), &[d, pw, pb], "pw")
        .unwrap();
    let flat = g
        .add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![1, WIDTH / 2 * 12],
            },
            &[c2],
            "flat",
        )
        .unwrap();
    let fc = |activation| OpKind::FullyConnected {
        activation,
        keep_num_dims: false,
    };
    let f1w = g
        .add_constant_f32(
            "f1_w",
            &[16, WIDTH / 2 * 12],
            &rng.units(16 * WIDTH / 2 * 12),
        )
        .unwrap();
    let f1b = g.add_constant_f32("f1_b", &[16], &rng.units(16)).unwrap();
    let f1 = g
        .add_op_inferred(fc(Activation::Relu), &[flat, f1w, f1b], "f1")
        .unwrap();
    let f2w = g
        .add_constant_f32("f2_w", &[6, 16], &rng.units(96))
        .unwrap();
    let f2b = g.add_constant_f32("f2_b", &[6], &rng.units(6)).unwrap();
    let y = g
        .add_op_inferred(fc(Activation::None), &[f1, f2w, f2b], "logits")
        .unwrap();
    g.outputs = vec![y];
    g.validate().unwrap();
    g
}
