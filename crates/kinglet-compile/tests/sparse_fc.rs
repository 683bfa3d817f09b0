//! Pruned fully-connected layers compiled with compressed weights: same outputs as the dense
//! compilation and as kinglet-graph's interpreter, less flash — on the host and in QEMU (the
//! QEMU test needs qemu-system-arm and the thumbv7em-none-eabihf target, as tests/qemu.rs).

use std::path::PathBuf;

use kinglet_compile::firmware::{Lang, host_outputs, profile_with};
use kinglet_compile::lower::lower_with;
use kinglet_compile::program::StepKind;
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compile::{KernelSet, exec};
use kinglet_graph::{Activation, DType, Graph, Hw, OpKind, Padding, QuantParams, TensorId};

struct Lcg(u32);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }
    /// int8 weights, `zero_percent` % of them exactly zero (as magnitude pruning leaves).
    fn weights(&mut self, n: usize, zero_percent: u32) -> Vec<i8> {
        (0..n)
            .map(|_| {
                let zero = self.next() % 100 < zero_percent;
                let v = self.range(-127, 127);
                if zero { 0 } else { v as i8 }
            })
            .collect()
    }
}

fn fc(
    g: &mut Graph,
    rng: &mut Lcg,
    x: TensorId,
    (in_len, out_len, zero_percent): (usize, usize, u32),
    activation: Activation,
    out_q: (f32, i32),
) -> TensorId {
    let in_s = g.tensor(x).quant.as_ref().unwrap().scale[0];
    let scales: Vec<f32> = (0..out_len).map(|o| 0.003 + 0.0002 * o as f32).collect();
    let w = rng.weights(out_len * in_len, zero_percent);
    let w = g
        .add_constant_i8(
            "fc/w",
            &[out_len, in_len],
            &w,
            Some(QuantParams::per_axis(scales.clone(), vec![0; out_len], 0)),
        )
        .unwrap();
    let b: Vec<i32> = (0..out_len).map(|_| rng.range(-2000, 2000)).collect();
    let b = g
        .add_constant_i32(
            "fc/b",
            &[out_len],
            &b,
            Some(QuantParams::per_axis(
                scales.iter().map(|s| s * in_s).collect(),
                vec![0; out_len],
                0,
            )),
        )
        .unwrap();
    let kind = OpKind::FullyConnected {
        activation,
        keep_num_dims: false,
    };
    let y = g.add_op_inferred(kind, &[x, w, b], "fc").unwrap();
    g.tensor_mut(y).quant = Some(QuantParams::per_tensor(out_q.0, out_q.1));
    y
}

/// A small mnist-cnn look-alike: Conv2D(64, 3×3, SAME, ReLU, 90 % zeros) → MaxPool 2×2 →
/// Flatten → FC(32, ReLU, 80 % zeros) → FC(10, unpruned). The pruned layers are stored
/// compressed (the filter saves more than the sparse convolution's code); the unpruned one
/// stays dense.
fn pruned_cnn() -> Graph {
    let mut rng = Lcg(31);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        &[1, 8, 8, 16],
        DType::I8,
        Some(QuantParams::per_tensor(0.02, -10)),
    );
    let scales: Vec<f32> = (0..64).map(|o| 0.002 + 0.0001 * o as f32).collect();
    let w = rng.weights(64 * 3 * 3 * 16, 90);
    let w = g
        .add_constant_i8(
            "conv/w",
            &[64, 3, 3, 16],
            &w,
            Some(QuantParams::per_axis(scales.clone(), vec![0; 64], 0)),
        )
        .unwrap();
    let b: Vec<i32> = (0..64).map(|_| rng.range(-500, 500)).collect();
    let b = g
        .add_constant_i32(
            "conv/b",
            &[64],
            &b,
            Some(QuantParams::per_axis(
                scales.iter().map(|s| s * 0.02).collect(),
                vec![0; 64],
                0,
            )),
        )
        .unwrap();
    let conv = OpKind::Conv2D {
        stride: Hw::ONE,
        dilation: Hw::ONE,
        padding: Padding::Same,
        activation: Activation::Relu,
    };
    let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
    g.tensor_mut(c).quant = Some(QuantParams::per_tensor(0.05, -128));
    let pool = OpKind::MaxPool2D {
        filter: Hw::new(2, 2),
        stride: Hw::new(2, 2),
        padding: Padding::Valid,
        activation: Activation::None,
    };
    let p = g.add_op_inferred(pool, &[c], "pool").unwrap();
    g.tensor_mut(p).quant = Some(QuantParams::per_tensor(0.05, -128));
    let flat = g
        .add_op_inferred(
            OpKind::Reshape {
                new_shape: vec![1, 1024],
            },
            &[p],
            "flat",
        )
        .unwrap();
    g.tensor_mut(flat).quant = Some(QuantParams::per_tensor(0.05, -128));
    let h = fc(
        &mut g,
        &mut rng,
        flat,
        (1024, 32, 80),
        Activation::Relu,
        (0.08, -128),
    );
    let y = fc(&mut g, &mut rng, h, (32, 10, 0), Activation::None, (0.2, 3));
    g.mark_output(y);
    g
}

fn sparse_steps(p: &kinglet_compile::Program) -> usize {
    p.steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::SparseFc(_) | StepKind::SparseConv(_)))
        .count()
}

#[test]
fn compressed_layers_give_the_dense_results_on_the_host() {
    let g = pruned_cnn();
    let stream = lcg_input(1024 * 20);
    for kernels in [KernelSet::Reference, KernelSet::CortexM4] {
        let sparse = lower_with(&g, kernels, true).unwrap();
        let dense = lower_with(&g, kernels, false).unwrap();
        // Only the pruned layers are compressed; the unpruned one stays dense.
        assert_eq!((sparse_steps(&sparse), sparse_steps(&dense)), (2, 0));
        assert!(
            sparse.constant_bytes() * 2 < dense.constant_bytes(),
            "{kernels:?}: {} vs {} constant bytes",
            sparse.constant_bytes(),
            dense.constant_bytes()
        );
        for window in stream.chunks_exact(1024) {
            let want = host_outputs(&g, window).unwrap();
            let got: Vec<i32> = exec::run(&sparse, window)
                .unwrap()
                .into_iter()
                .map(i32::from)
                .collect();
            assert_eq!(got, want, "{kernels:?}");
            let dense_out: Vec<i32> = exec::run(&dense, window)
                .unwrap()
                .into_iter()
                .map(i32::from)
                .collect();
            assert_eq!(dense_out, want, "{kernels:?} dense");
        }
    }
}

#[test]
fn compressed_model_in_qemu_matches_the_host_in_less_flash() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-firmware");
    let g = pruned_cnn();
    let input = lcg_input(1024);
    let want = host_outputs(&g, &input).unwrap();
    let run = |kernels, lang, sparse| {
        let p =
            profile_with(&g, "pruned_cnn", &input, kernels, lang, &work, sparse).expect("profile");
        eprintln!("{}", serde_json::to_string(&p).unwrap());
        assert_eq!(p.outputs, want, "{kernels:?} {lang:?} sparse={sparse}");
        p
    };
    let sparse = run(FirmwareKernels::Dsp, Lang::Rust, true);
    let dense = run(FirmwareKernels::Dsp, Lang::Rust, false);
    assert!(
        sparse.flash_bytes + 5_000 < dense.flash_bytes,
        "flash: sparse {} dense {}",
        sparse.flash_bytes,
        dense.flash_bytes
    );
    let sparse_ref = run(FirmwareKernels::Reference, Lang::Rust, true);
    let dense_ref = run(FirmwareKernels::Reference, Lang::Rust, false);
    assert!(sparse_ref.flash_bytes < dense_ref.flash_bytes);
    let c = run(FirmwareKernels::Dsp, Lang::C, true);
    let c_dense = run(FirmwareKernels::Dsp, Lang::C, false);
    assert!(c.flash_bytes < c_dense.flash_bytes);
}
