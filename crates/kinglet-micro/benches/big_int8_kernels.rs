//! Kernel throughput on the Big-1IN int8 architecture (five 1×3 convs with ReLU and 1×2 max
//! pools, 9→4→8→16→32→8 channels over 128 samples, then a 32→6 dense layer: 63,168 MACs),
//! with deterministic pseudo-random weights and inputs. Measures the kernels alone (no graph
//! executor); the model-level benchmark against the TFLite interpreter lives in the CLI.
//!
//! Run: `cargo bench -p kinglet-micro --bench big_int8_kernels` (prints windows/s and µs per
//! window, wall clock and, on Linux, thread CPU time, which is robust to a busy machine).

use std::time::Instant;

use kinglet_micro::conv2d::conv2d_i8;
use kinglet_micro::fully_connected::{FcShape, fully_connected_i8};
use kinglet_micro::max_pool2d::max_pool2d_i8;
use kinglet_micro::{ConvParams, PoolParams, QuantParams, Requant, Shape4, TensorMut, TensorRef};

fn lcg(s: &mut u32) -> i8 {
    *s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    ((*s >> 16) & 0xff) as u8 as i8
}

/// Thread CPU time in ns from /proc (None elsewhere).
fn cpu_ns() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut seed = 1u32;
    let chans = [9usize, 4, 8, 16, 32, 8];
    let filters: Vec<Vec<i8>> = (0..5)
        .map(|l| {
            (0..chans[l + 1] * 3 * chans[l])
                .map(|_| lcg(&mut seed))
                .collect()
        })
        .collect();
    let fc_w: Vec<i8> = (0..6 * 32).map(|_| lcg(&mut seed)).collect();
    let multipliers = [1 << 30; 32];
    let shifts = [-8; 32];
    let bias = [100i32; 32];
    let windows: Vec<Vec<i8>> = (0..64)
        .map(|_| (0..128 * 9).map(|_| lcg(&mut seed)).collect())
        .collect();
    let conv = ConvParams {
        pad_left: 1,
        ..ConvParams::unit()
    };
    let pool = PoolParams {
        filter_h: 1,
        filter_w: 2,
        stride_h: 1,
        stride_w: 2,
        pad_top: 0,
        pad_left: 0,
    };
    let mut a = vec![0i8; 128 * 32];
    let mut b = vec![0i8; 128 * 32];
    let n = 20_000usize;
    let mut checksum = 0i64;
    let (t0, c0) = (Instant::now(), cpu_ns());
    for i in 0..n {
        a[..128 * 9].copy_from_slice(&windows[i % windows.len()]);
        let mut w = 128;
        for l in 0..5 {
            let (ci, co) = (chans[l], chans[l + 1]);
            let q = QuantParams {
                input_offset: 3,
                filter_offset: 0,
                output_offset: -5,
                requant: Requant::new(&multipliers[..co], &shifts[..co]),
                act_min: -5,
                act_max: 127,
            };
            conv2d_i8(
                &conv,
                &q,
                TensorRef::new(&a[..w * ci], Shape4::new(1, 1, w, ci)),
                TensorRef::new(&filters[l], Shape4::new(co, 1, 3, ci)),
                Some(&bias[..co]),
                TensorMut::new(&mut b[..w * co], Shape4::new(1, 1, w, co)),
            )
            .expect("conv");
            max_pool2d_i8(
                &pool,
                -128,
                127,
                TensorRef::new(&b[..w * co], Shape4::new(1, 1, w, co)),
                TensorMut::new(&mut a[..w / 2 * co], Shape4::new(1, 1, w / 2, co)),
            )
            .expect("pool");
            w /= 2;
        }
        let q = QuantParams {
            input_offset: 3,
            filter_offset: 0,
            output_offset: -5,
            requant: Requant::new(&multipliers[..1], &shifts[..1]),
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 6];
        let shape = FcShape {
            batches: 1,
            in_features: 32,
            out_features: 6,
        };
        fully_connected_i8(shape, &q, &a[..32], &fc_w, Some(&bias[..6]), &mut out).expect("fc");
        checksum += i64::from(out[0]);
    }
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "big_int8_kernels: {n} windows, wall {:.2} us/window ({:.0} windows/s), checksum {checksum}",
        wall / n as f64 * 1e6,
        n as f64 / wall
    );
    if let (Some(c0), Some(c1)) = (c0, cpu_ns()) {
        let per = (c1 - c0) / n as f64 / 1e3;
        println!(
            "big_int8_kernels: thread CPU {per:.2} us/window ({:.0} windows/s)",
            1e6 / per
        );
    }
}
