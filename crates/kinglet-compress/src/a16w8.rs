//! TFLite's 16×8 post-training quantisation (`a16w8`): int16 activations, int8 weights,
//! int64 biases, as the converter's `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`
//! mode makes them:
//!
//! - activations: int16 symmetric (zero point 0), per tensor, scale `max(|min|, |max|) / 32767`
//!   of the calibrated range ([`crate::params::activation_params_int16`]) — 256 times finer
//!   than int8 over the same range, which is the point of the scheme;
//! - weights: int8 symmetric per output channel, exactly as [`crate::quantize_int8`];
//! - biases of Conv2D, DepthwiseConv2D and FullyConnected: int64, scale
//!   `input_scale · weight_scale[c]` (TFLite's int16 kernels accumulate in int64);
//! - Softmax output: scale 1/32768, zero point 0 (what TFLite's int16 softmax requires);
//! - same-scale ops (pools, reshape, pad, concatenation) share parameters as in int8.
//!
//! Inputs and outputs follow [`PtqConfig::float_io`] as for int8: int16 by default, float
//! with QUANTIZE/DEQUANTIZE at the edges on request. The calibration, logit centring and
//! every other option mean what they mean for int8; the machinery is ptq.rs's.

use std::collections::BTreeMap;

use kinglet_graph::Graph;

use crate::error::CompressError;
use crate::ptq::{Activations, CalibrationSample, PtqConfig, PtqResult, quantize_full_integer};

/// Quantises a float graph to the 16×8 scheme, calibrating activations on `samples`.
pub fn quantize_a16w8(
    graph: &Graph,
    samples: &[CalibrationSample],
    config: &PtqConfig,
) -> Result<PtqResult, CompressError> {
    quantize_full_integer(graph, samples, config, &BTreeMap::new(), Activations::Int16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinglet_graph::{Activation, DType, Hw, Interpreter, OpKind, Padding};

    /// input [1,1,8,2] → conv 1×3 + ReLU → avg pool 1×2 → mean → FC (4 → 3) → softmax.
    fn small_graph() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 8, 2], DType::F32, None);
        let w: Vec<f32> = (0..4 * 3 * 2)
            .map(|i| ((i * 5) % 7) as f32 / 7.0 - 0.4)
            .collect();
        let w = g.add_constant_f32("w", &[4, 1, 3, 2], &w).unwrap();
        let b = g
            .add_constant_f32("b", &[4], &[0.1, -0.2, 0.3, 0.0])
            .unwrap();
        let conv = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Same,
            activation: Activation::Relu,
        };
        let c = g.add_op_inferred(conv, &[x, w, b], "conv").unwrap();
        let pool = OpKind::AvgPool2D {
            filter: Hw::new(1, 2),
            stride: Hw::new(1, 2),
            padding: Padding::Valid,
            activation: Activation::None,
        };
        let p = g.add_op_inferred(pool, &[c], "pool").unwrap();
        let mean = OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        };
        let m = g.add_op_inferred(mean, &[p], "mean").unwrap();
        let fw: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 4.0).collect();
        let fw = g.add_constant_f32("fw", &[3, 4], &fw).unwrap();
        let fc = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        let f = g.add_op_inferred(fc, &[m, fw], "fc").unwrap();
        let s = g
            .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[f], "softmax")
            .unwrap();
        g.mark_output(s);
        g
    }

    fn samples() -> Vec<CalibrationSample> {
        (0..6)
            .map(|k| {
                vec![
                    (0..16)
                        .map(|i| ((i * 7 + k * 3) % 11) as f32 / 5.0 - 1.0)
                        .collect(),
                ]
            })
            .collect()
    }

    #[test]
    fn activations_are_symmetric_int16_and_biases_int64() {
        let q = quantize_a16w8(&small_graph(), &samples(), &PtqConfig::default())
            .unwrap()
            .graph;
        for t in q.tensors.iter().filter(|t| t.data.is_none()) {
            assert_eq!(t.dtype, DType::I16, "{}", t.name);
            assert_eq!(t.quant.as_ref().unwrap().zero_point, vec![0], "{}", t.name);
        }
        let by_name = |n: &str| q.tensors.iter().find(|t| t.name == n).unwrap();
        assert_eq!(by_name("b").dtype, DType::I64);
        assert_eq!(by_name("w").dtype, DType::I8);
        assert_eq!(by_name("w").quant.as_ref().unwrap().scale.len(), 4);
        assert_eq!(
            by_name("softmax").quant.as_ref().unwrap().scale,
            vec![1.0 / 32768.0]
        );
        // The pool shares the conv's parameters.
        assert_eq!(by_name("pool").quant, by_name("conv").quant);
        // It runs and agrees with the float model to int16 precision.
        let (mut fi, mut qi) = (
            Interpreter::new(&small_graph()).unwrap(),
            Interpreter::new(&q).unwrap(),
        );
        for s in samples() {
            fi.set_input(0, &s[0]).unwrap();
            qi.set_input_real(0, &s[0]).unwrap();
            fi.invoke().unwrap();
            qi.invoke().unwrap();
            let (f, g) = (fi.output_f32(0).unwrap(), qi.output_f32(0).unwrap());
            for (a, b) in f.iter().zip(&g) {
                assert!((a - b).abs() < 2e-3, "{f:?} vs {g:?}");
            }
        }
    }

    #[test]
    fn float_io_puts_int16_behind_quantize_and_dequantize() {
        let config = PtqConfig {
            float_io: true,
            ..PtqConfig::default()
        };
        let q = quantize_a16w8(&small_graph(), &samples(), &config)
            .unwrap()
            .graph;
        assert_eq!(q.tensor(q.inputs[0]).dtype, DType::F32);
        assert_eq!(q.tensor(q.ops[0].outputs[0]).dtype, DType::I16);
        assert_eq!(q.ops.last().map(|o| o.kind.name()), Some("DEQUANTIZE"));
    }

    #[test]
    fn quantised_model_is_refused() {
        let once = quantize_a16w8(&small_graph(), &samples(), &PtqConfig::default())
            .unwrap()
            .graph;
        let err = quantize_a16w8(&once, &samples(), &PtqConfig::default()).unwrap_err();
        assert!(err.to_string().contains("i16"), "{err}");
    }
}
