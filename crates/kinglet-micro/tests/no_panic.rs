//! Kernels validate before they compute: random (often inconsistent) shapes, paddings,
//! strides and quantisation parameters must give `Ok` or `Err`, never a panic.

use kinglet_micro::average_pool2d::{average_pool2d_f32, average_pool2d_i8};
use kinglet_micro::conv2d::{conv2d_f32, conv2d_i8, conv2d_u8};
use kinglet_micro::depthwise_conv2d::{DepthwiseParams, depthwise_conv2d_i8};
use kinglet_micro::fully_connected::{FcShape, fully_connected_i8};
use kinglet_micro::max_pool2d::max_pool2d_i8;
use kinglet_micro::mean::{MeanQuant, mean_hw_i8};
use kinglet_micro::pad::pad;
use kinglet_micro::softmax::{SoftmaxLut, SoftmaxQuant, softmax_i8};
use kinglet_micro::{
    ActivationF32, ConvParams, PoolParams, QuantParams, Requant, Shape4, TensorMut, TensorRef,
};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn upto(&mut self, n: u64) -> usize {
        (self.next() % (n + 1)) as usize
    }
    fn shape(&mut self) -> Shape4 {
        Shape4::new(self.upto(2), self.upto(4), self.upto(6), self.upto(4))
    }
}

#[test]
fn random_parameters_never_panic() {
    let mut r = Lcg(42);
    let data_i8: Vec<i8> = (0..4096).map(|i| (i * 37 % 256) as u8 as i8).collect();
    let data_u8: Vec<u8> = data_i8.iter().map(|&v| v as u8).collect();
    let data_f32: Vec<f32> = data_i8.iter().map(|&v| v as f32 * 0.1).collect();
    let mut out_i8 = vec![0i8; 4096];
    let mut out_u8 = vec![0u8; 4096];
    let mut out_f32 = vec![0f32; 4096];
    let mut ok = 0usize;
    for _ in 0..20_000 {
        let (is, fs, os) = (r.shape(), r.shape(), r.shape());
        let len = |s: Shape4, data_len: usize, r: &mut Lcg| {
            // Mostly the exact length, sometimes off by one.
            let n = s.checked_len().unwrap_or(0).min(data_len);
            if r.upto(9) == 0 {
                n.saturating_sub(1)
            } else {
                n
            }
        };
        let p = ConvParams {
            stride_h: r.upto(3),
            stride_w: r.upto(3),
            dilation_h: r.upto(3),
            dilation_w: r.upto(3),
            pad_top: r.upto(5),
            pad_left: r.upto(5),
        };
        let m = [r.next() as i32, r.next() as i32, r.next() as i32];
        let s = [
            r.upto(70) as i32 - 35,
            r.upto(70) as i32 - 35,
            r.upto(70) as i32 - 35,
        ];
        let nq = 1 + r.upto(2);
        let q = QuantParams {
            input_offset: r.upto(600) as i32 - 300,
            filter_offset: if r.upto(1) == 0 {
                0
            } else {
                r.upto(600) as i32 - 300
            },
            output_offset: r.upto(600) as i32 - 300,
            requant: Requant::new(&m[..nq], &s[..nq]),
            act_min: r.upto(400) as i32 - 200,
            act_max: r.upto(400) as i32 - 200,
        };
        let (li, lf, lo) = (
            len(is, 4096, &mut r),
            len(fs, 4096, &mut r),
            len(os, 4096, &mut r),
        );
        let bias = [7i32; 8];
        let b = if r.upto(1) == 0 {
            None
        } else {
            Some(&bias[..r.upto(8)])
        };
        let results = [
            conv2d_i8(
                &p,
                &q,
                TensorRef::new(&data_i8[..li], is),
                TensorRef::new(&data_i8[..lf], fs),
                b,
                TensorMut::new(&mut out_i8[..lo], os),
            ),
            conv2d_u8(
                &p,
                &q,
                TensorRef::new(&data_u8[..li], is),
                TensorRef::new(&data_u8[..lf], fs),
                b,
                TensorMut::new(&mut out_u8[..lo], os),
            ),
            depthwise_conv2d_i8(
                &DepthwiseParams {
                    conv: p,
                    depth_multiplier: r.upto(3),
                },
                &q,
                TensorRef::new(&data_i8[..li], is),
                TensorRef::new(&data_i8[..lf], fs),
                b,
                TensorMut::new(&mut out_i8[..lo], os),
            ),
            fully_connected_i8(
                FcShape {
                    batches: r.upto(3),
                    in_features: r.upto(20),
                    out_features: r.upto(8),
                },
                &q,
                &data_i8[..li],
                &data_i8[..lf],
                b,
                &mut out_i8[..lo],
            ),
            max_pool2d_i8(
                &PoolParams {
                    filter_h: r.upto(3),
                    filter_w: r.upto(3),
                    stride_h: r.upto(2),
                    stride_w: r.upto(2),
                    pad_top: r.upto(4),
                    pad_left: r.upto(4),
                },
                q.act_min,
                q.act_max,
                TensorRef::new(&data_i8[..li], is),
                TensorMut::new(&mut out_i8[..lo], os),
            ),
            average_pool2d_i8(
                &PoolParams {
                    filter_h: r.upto(3),
                    filter_w: r.upto(3),
                    stride_h: r.upto(2),
                    stride_w: r.upto(2),
                    pad_top: r.upto(4),
                    pad_left: r.upto(4),
                },
                q.act_min,
                q.act_max,
                TensorRef::new(&data_i8[..li], is),
                TensorMut::new(&mut out_i8[..lo], os),
            ),
            average_pool2d_f32(
                &PoolParams {
                    filter_h: r.upto(3),
                    filter_w: r.upto(3),
                    stride_h: r.upto(2),
                    stride_w: r.upto(2),
                    pad_top: r.upto(4),
                    pad_left: r.upto(4),
                },
                ActivationF32::NONE,
                TensorRef::new(&data_f32[..li], is),
                TensorMut::new(&mut out_f32[..lo], os),
            ),
            conv2d_f32(
                &p,
                ActivationF32::NONE,
                TensorRef::new(&data_f32[..li], is),
                TensorRef::new(&data_f32[..lf], fs),
                None,
                TensorMut::new(&mut out_f32[..lo], os),
            ),
            mean_hw_i8(
                &MeanQuant {
                    input_scale: r.upto(10) as f32 * 0.01,
                    input_zero_point: r.upto(20) as i32 - 10,
                    output_scale: r.upto(10) as f32 * 0.01,
                    output_zero_point: r.upto(20) as i32 - 10,
                },
                TensorRef::new(&data_i8[..li], is),
                &mut out_i8[..lo],
            ),
            pad(
                TensorRef::new(&data_i8[..li], is),
                [r.upto(2), r.upto(2), r.upto(2), r.upto(2)],
                [r.upto(2), r.upto(2), r.upto(2), r.upto(2)],
                0i8,
                TensorMut::new(&mut out_i8[..lo], os),
            ),
            softmax_i8(
                &SoftmaxLut::new(0.1, 1.0),
                &SoftmaxQuant {
                    output_scale: 1.0 / 256.0,
                    output_zero_point: -128,
                },
                &data_i8[..li],
                &mut out_i8[..li],
                r.upto(5),
            ),
        ];
        ok += results.iter().filter(|r| r.is_ok()).count();
    }
    // The generator must reach the compute loops, not only the validation errors.
    assert!(ok > 10_000, "only {ok} successful kernel calls");
}
